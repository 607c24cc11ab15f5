"""Two bench reports side by side: which rows got slower beyond noise.

A row is a regression only when both hold: the raw samples of the new run are significantly
slower than the base run's (one-sided Mann-Whitney U test, ``scipy.stats.mannwhitneyu``,
p < ``alpha``), and the median slowed down by more than ``fail_above`` percent. A shift the
test cannot tell from noise is "within noise" whatever its size; a significant shift below
the threshold is "slower" (or "faster") but does not fail. Rows are matched on
(runtime, batch, seq_len, threads); rows only in one report are listed, never failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_bench.errors import LSTMBenchError

ALPHA = 0.01


@dataclass(frozen=True)
class Change:
    key: tuple  # (runtime, batch, seq_len, threads)
    base_median_ms: float | None
    new_median_ms: float | None
    change_pct: float | None  # (new - base) / base, in percent
    p_slower: float | None  # one-sided p-value that new is slower
    p_faster: float | None
    verdict: str  # regression | slower | faster | within noise | only in base | only in new

    @property
    def regression(self) -> bool:
        return self.verdict == "regression"


def _key(row) -> tuple:
    return (row["runtime"], int(row["batch"]), int(row["seq_len"]), row.get("threads"))


def compare_samples(base_ns, new_ns, *, fail_above: float, alpha: float = ALPHA) -> tuple:
    """(change_pct, p_slower, p_faster, verdict) for two sets of raw samples."""
    from scipy.stats import mannwhitneyu

    base = np.asarray(base_ns, dtype=np.float64)
    new = np.asarray(new_ns, dtype=np.float64)
    base_median, new_median = float(np.median(base)), float(np.median(new))
    change = 100.0 * (new_median - base_median) / base_median if base_median > 0 else float("inf")
    p_slower = float(mannwhitneyu(new, base, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(new, base, alternative="less").pvalue)
    if p_slower < alpha and change > fail_above:
        verdict = "regression"
    elif p_slower < alpha and change > 0:
        verdict = "slower"
    elif p_faster < alpha and change < 0:
        verdict = "faster"
    else:
        verdict = "within noise"
    return change, p_slower, p_faster, verdict


MACHINE_DRIFT = 0.10  # calibration GEMM rates further apart than this: warn


def machine_drift(base: dict, new: dict) -> str | None:
    """A warning when the two reports ran on machines of different speed or model.

    Each bench report records the GEMM rate measured when it started (``peak_gflops``). On
    shared virtual machines that rate moved by up to 2x between two runs a minute apart here,
    and every runtime moved with it: the test on the samples cannot tell that from a change of
    the code, so compare says it out loud.
    """
    notes = []
    cpus = [doc.get("machine").get("cpu") if isinstance(doc.get("machine"), dict) else None
            for doc in (base, new)]
    if all(cpus) and cpus[0] != cpus[1]:
        notes.append(f"different CPUs ({cpus[0]} / {cpus[1]})")
    rates = [doc.get("peak_gflops") for doc in (base, new)]
    if all(isinstance(r, (int, float)) and r > 0 for r in rates):
        change = rates[1] / rates[0] - 1
        if abs(change) > MACHINE_DRIFT:
            notes.append(f"the machine's GEMM calibration moved {change:+.0%} "
                         f"({rates[0]:.0f} -> {rates[1]:.0f} GFLOP/s)")
    if not notes:
        return None
    return ("machine drift: " + "; ".join(notes) + ". Changes of that size may be the "
            "machine's, not the code's: rerun both on one idle machine.")


def _rows(doc: dict, which: str) -> dict:
    """Rows by (runtime, batch, seq_len, threads); a key twice would hide one of them."""
    rows = {}
    for row in doc["results"]:
        key = _key(row)
        if key in rows:
            raise LSTMBenchError(f"{which} report has two rows for (runtime, batch, seq_len, "
                                 f"threads) = {key}; merge or remove one")
        rows[key] = row
    return rows


def compare_reports(base: dict, new: dict, *, fail_above: float = 5.0,
                    alpha: float = ALPHA) -> list[Change]:
    if not fail_above >= 0:  # NaN too: it would make every slowdown pass
        raise LSTMBenchError(f"--fail-above must be >= 0 percent, got {fail_above}")
    base_rows, new_rows = _rows(base, "BASE"), _rows(new, "NEW")
    if base_rows and new_rows and not set(base_rows) & set(new_rows):
        raise LSTMBenchError("the two reports share no (runtime, batch, seq_len, threads) row; "
                             "nothing to compare")
    changes = []
    for key in list(base_rows) + [k for k in new_rows if k not in base_rows]:
        b, n = base_rows.get(key), new_rows.get(key)
        if b is None or n is None:
            row = b or n
            median = float(np.median(row["samples_ns"])) / 1e6
            changes.append(Change(key, median if b else None, median if n else None, None, None,
                                  None, "only in base" if b else "only in new"))
            continue
        change, p_slower, p_faster, verdict = compare_samples(
            b["samples_ns"], n["samples_ns"], fail_above=fail_above, alpha=alpha)
        changes.append(Change(key, float(np.median(b["samples_ns"])) / 1e6,
                              float(np.median(n["samples_ns"])) / 1e6, change, p_slower,
                              p_faster, verdict))
    return changes


STYLES = {"regression": "bold red", "slower": "yellow", "faster": "green"}


def changes_table(changes: list[Change], fail_above: float):
    from rich.table import Table
    from rich.text import Text  # a runtime name from a user's file is shown as written

    table = Table(title=f"changes (regression: slower beyond noise, p < {ALPHA}, "
                        f"and median +{fail_above:g} % or more)", header_style="bold")
    for i, col in enumerate(("runtime", "batch", "seq_len", "threads", "base ms", "new ms",
                             "change", "p (slower)", "verdict")):
        table.add_column(col, justify="left" if i in (0, 8) else "right")

    def fmt(value, spec):
        return "–" if value is None else format(value, spec)

    for c in changes:
        runtime, batch, seq_len, threads = c.key
        table.add_row(Text(runtime), str(batch), str(seq_len), fmt(threads, "d"),
                      fmt(c.base_median_ms, ".4g"), fmt(c.new_median_ms, ".4g"),
                      fmt(c.change_pct, "+.1f") + (" %" if c.change_pct is not None else ""),
                      fmt(c.p_slower, ".2g"), c.verdict, style=STYLES.get(c.verdict))
    return table
