"""Two measurements of the same rows side by side: which rows got slower beyond noise.

Two forms, each with the unit its design allows:

- two saved reports (``compare BASE.json NEW.json``): the unit is the **invocation**. Within
  one invocation the blocks are a sample of that invocation, not of the code: invocations of
  the same code differ by several percent (process start, memory layout, the machine's state),
  and a test over the blocks of two single invocations calls that difference certain (5 of 15
  identical pairs failed that way, issue 21). A report measures its rotation in several
  worker processes (``bench.runner``), each a fresh invocation; the spread of their own
  figures (``Measurement.process_ms``) is the noise a saved report carries. The change is the
  ratio of the two central figures (the medians the table shows), and its 90 % interval is
  built from the per-process spread both reports show (pooled, Student's t; never below
  ``SPREAD_FLOOR``). A report whose rows come from one process (an older lstm-bench, or
  ``--processes 1``) has no such spread: it is assumed to be ``ASSUMED_SPREAD``, a wider
  interval than three processes give. A report measured on a busy machine (its recorded
  load, ``busy_cores``) widens the interval on its side by what the load may have cost
  (``busy_allowance``). Where both reports timed the machine's speed probe (``bench.speed``),
  each process's figure is divided by the probe's of the same process first: the change is
  at equal machine speed, and the interval is widened by ``gate.TRACKING`` of the machine's
  change (the rows follow the probe at a slope below 1); where that alone keeps a row from a
  regression, the row is "inconclusive: machine speed changed".
- a live A/B run (``compare BASE.onnx NEW.onnx``): both models ran in one rotation, block for
  block, so each round gives one pair that saw the same phase of the machine; the test is a
  one-sided Wilcoxon signed-rank test on the log ratios of the pairs
  (``scipy.stats.wilcoxon``), and the change is the median ratio. The machine's drift cancels.

Verdicts of saved reports: a **regression** when the whole interval lies above +``fail_above``
percent (slower than base by more than the threshold, beyond the noise); "slower" / "faster"
when it lies above / below 0; else "within noise". Where a busy report's allowance decides
(a regression but for NEW's load, or one that BASE's load may hide), the row is
"inconclusive: busy machine": the load and the change cannot be told apart (the live A/B
command can), and the gate does not fail. Live verdicts: regression when the Wilcoxon test
says slower (p < ``alpha``) *and* the paired change exceeds ``fail_above``. Rows are matched
on their ``stats.RowKey``; rows only in one report are listed, never failed. Rows are read
back through ``stats.Measurement``, the type that wrote them.

Reports of different models (sha256) or machines (CPU model and core count) are refused
unless the caller allows them: their differences are not regressions of the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lstm_bench.bench import speed
from lstm_bench.bench.gate import ASSUMED_SPREAD, INCONCLUSIVE, LIVE_COMMAND, SPEED_CHANGED, \
    TRACKING, busy_allowance, busy_cores, compare_processes
from lstm_bench.bench.machine import usable_cores
from lstm_bench.bench.report import SCHEMA
from lstm_bench.bench.stats import Measurement, RowKey
from lstm_bench.errors import LSTMBenchError

ALPHA = 0.01  # the live (paired) test's level
SAVED_TEST = "t interval (per-process medians)"
PAIRED_TEST = "wilcoxon (paired blocks)"


@dataclass(frozen=True)
class Change:
    """One row judged. ``change_pct`` is the figure the verdict tests: the change of the
    medians for saved reports, the median of the paired ratios for a live run (then
    ``median_change_pct`` is the medians' own change, shown beside it)."""

    key: RowKey
    base_median_ms: float | None
    new_median_ms: float | None
    change_pct: float | None
    p_slower: float | None  # one-sided p-value that new is slower (busy allowance aside)
    p_faster: float | None
    verdict: str  # regression | slower | faster | within noise | INCONCLUSIVE | only in ...
    base_blocks: int | None = None
    new_blocks: int | None = None
    test: str | None = None  # SAVED_TEST or PAIRED_TEST
    median_change_pct: float | None = None  # new median / base median - 1, in percent
    low_pct: float | None = None  # the interval of the change the verdict used (saved
    high_pct: float | None = None  # reports: noise and busy allowances included)
    spread: str | None = None  # which spread built the interval, in words
    spread_pct: float | None = None  # that spread of one invocation (None: assumed)
    base_processes: int | None = None
    new_processes: int | None = None
    speed_pct: float | None = None  # how much slower the machine ran for NEW (bench.speed)

    @property
    def regression(self) -> bool:
        return self.verdict == "regression"

    @property
    def inconclusive(self) -> bool:
        return self.verdict.startswith("inconclusive")

    @property
    def reason(self) -> str | None:
        """The verdict in words, with the figure it tested (None: no test was run)."""
        if self.change_pct is None:
            return None
        if self.test == PAIRED_TEST:
            medians = ("" if self.median_change_pct is None
                       else f" (medians {self.median_change_pct:+.1f} %)")
            return (f"{self.verdict}: paired change {self.change_pct:+.1f} %{medians}, p "
                    f"slower {self.p_slower:.2g}")
        return (f"{self.verdict}: {self.change_pct:+.1f} %, 90 % interval "
                f"{self.low_pct:+.1f}..{self.high_pct:+.1f} % ({self.spread})")


def _verdict(change: float, p_slower: float, p_faster: float, fail_above: float,
             alpha: float) -> str:
    if p_slower < alpha and change > fail_above:
        return "regression"
    if p_slower < alpha and change > 0:
        return "slower"
    if p_faster < alpha and change < 0:
        return "faster"
    return "within noise"


def compare_paired(base_ms, new_ms, *, fail_above: float, alpha: float = ALPHA) -> tuple:
    """(change_pct, p_slower, p_faster, verdict) for block medians taken in pairs (same round
    of one rotation): the change is the median of the ratios new / base."""
    from scipy.stats import wilcoxon

    base = np.maximum(np.asarray(base_ms, dtype=np.float64), 1e-12)
    new = np.maximum(np.asarray(new_ms, dtype=np.float64), 1e-12)
    log_ratio = np.log(new / base)
    change = 100.0 * (float(np.exp(np.median(log_ratio))) - 1.0)
    if np.all(log_ratio == 0):
        return 0.0, 1.0, 1.0, "within noise"
    p_slower = float(wilcoxon(log_ratio, alternative="greater").pvalue)
    p_faster = float(wilcoxon(log_ratio, alternative="less").pvalue)
    return change, p_slower, p_faster, _verdict(change, p_slower, p_faster, fail_above, alpha)


def paired_block_ms(base: Measurement, new: Measurement) -> tuple[np.ndarray, np.ndarray]:
    """The block medians of two measurements of one rotation, matched on (process, round)."""
    index = {(b.process, b.round): i for i, b in enumerate(new.blocks)}
    pairs = [(i, index[(b.process, b.round)]) for i, b in enumerate(base.blocks)
             if (b.process, b.round) in index]
    if not pairs:
        raise LSTMBenchError(f"{base.label()}: no block of the two runs shares a round; a "
                             "paired comparison needs both models measured in one rotation")
    a, b = zip(*pairs)
    return base.block_ms[list(a)], new.block_ms[list(b)]


def compare_measurements(base: Measurement, new: Measurement, *, fail_above: float,
                         alpha: float = ALPHA, paired: bool = False, busy=(0.0, 0.0),
                         probes=(None, None)) -> Change:
    """One row judged: over its per-process figures (two saved reports; ``busy``: the cores
    other processes took while each was measured, ``busy_cores``; ``probes``: each report's
    speed probe at the row's thread count, ``speed.probe``), or paired by round (one
    rotation, the live ``compare A.onnx B.onnx``)."""
    medians = base.stats.median, new.stats.median
    common = dict(base_blocks=len(base.block_ms), new_blocks=len(new.block_ms),
                  median_change_pct=100.0 * (medians[1] / medians[0] - 1) if medians[0] > 0
                  else None, base_processes=len(base.process_ms),
                  new_processes=len(new.process_ms))
    if paired:
        base_ms, new_ms = paired_block_ms(base, new)
        figures = compare_paired(base_ms, new_ms, fail_above=fail_above, alpha=alpha)
        return Change(base.key, *medians, *figures, test=PAIRED_TEST, **common)
    # the central figures (the medians shown) stand for the processes' own: their ratio is
    # the change, the processes' spread its noise
    pairs = ((base, medians[0], probes[0]), (new, medians[1], probes[1]))
    if speed.comparable(*probes):  # at the machine's equal speed (bench.speed)
        centre = [speed.at_equal_speed(m.process_ms, c, p) for m, c, p in pairs]
        shift = math.log(float(probes[1]["median_ms"]) / float(probes[0]["median_ms"]))
    else:
        centre = [m.process_ms * (c / max(float(np.median(m.process_ms)), 1e-12))
                  for m, c, _ in pairs]
        shift = None
    busy_logs = tuple(math.log1p(busy_allowance(taken, base.threads)) for taken in busy)
    return Change(base.key, *medians, test=SAVED_TEST, **common,
                  **compare_processes(*centre, fail_above=fail_above, busy=busy_logs,
                                      speed=shift))


def machine_identity(doc: dict) -> tuple:
    machine = doc.get("machine") or {}
    return machine.get("cpu"), machine.get("cores")


def _model_text(doc: dict) -> str:
    model = doc.get("model") or {}
    return f"{model.get('path', '?')} (sha256 {str(model.get('sha256'))[:12]})"


def check_comparable(base: dict, new: dict, *, allow_different_models: bool = False,
                     allow_different_machines: bool = False) -> None:
    """Refuse (LSTMBenchError) two reports whose difference would not be the code's."""
    shas = [(doc.get("model") or {}).get("sha256") for doc in (base, new)]
    if shas[0] != shas[1] and not allow_different_models:
        raise LSTMBenchError(f"the reports measured different models: BASE {_model_text(base)}"
                             f", NEW {_model_text(new)}; pass --allow-different-models to "
                             "compare them anyway")
    machines = [machine_identity(doc) for doc in (base, new)]
    if machines[0] != machines[1] and not allow_different_machines:
        raise LSTMBenchError(f"the reports come from different machines: BASE {machines[0]}, "
                             f"NEW {machines[1]} (CPU, cores); pass --allow-different-machines "
                             "to compare them anyway")


def measurements(doc: dict, which: str) -> dict[RowKey, Measurement]:
    """A report's rows as Measurements by their key, checked: an lstm-bench bench report (its
    schema), with rows, each with its blocks, no key twice."""
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise LSTMBenchError(f"{which} is not an lstm-bench bench report (schema "
                             f"{schema!r}, expected {SCHEMA!r})")
    if not doc.get("results"):
        raise LSTMBenchError(f"{which} report has no results: nothing to compare")
    for key in ("model", "machine"):
        if not isinstance(doc.get(key), dict):
            raise LSTMBenchError(f"{which} report has no '{key}' section")
    rows: dict[RowKey, Measurement] = {}
    for i, row in enumerate(doc["results"]):
        try:
            m = Measurement.from_dict(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise LSTMBenchError(f"{which} results[{i}] is malformed ({exc})") from None
        if not m.blocks:
            raise LSTMBenchError(f"{which} results[{i}] ({m.label()}) has no blocks: its calls "
                                 "cannot be compared fairly; measure it again")
        if m.key in rows:
            raise LSTMBenchError(f"{which} report has two rows for {m.key}; merge or remove one")
        rows[m.key] = m
    return rows


def compare_reports(base: dict, new: dict, *, fail_above: float = 5.0, alpha: float = ALPHA,
                    paired: bool = False, allow_different_models: bool = False,
                    allow_different_machines: bool = False) -> list[Change]:
    """Every row of two bench reports judged (see the module doc). ``paired``: both were
    measured in one rotation (the live compare), so blocks pair by round. ``fail_above``:
    0 or more (``lstm_bench.cli.options.percent``)."""
    base_rows, new_rows = measurements(base, "BASE"), measurements(new, "NEW")
    check_comparable(base, new, allow_different_models=allow_different_models,
                     allow_different_machines=allow_different_machines)
    if not set(base_rows) & set(new_rows):
        raise LSTMBenchError("the two reports share no (runtime, batch, seq_len, threads) row; "
                             "nothing to compare")
    # a live run's pairs share the load; saved reports each carry their own
    busy = (0.0, 0.0) if paired else (busy_cores(base), busy_cores(new))
    changes = []
    for key in list(base_rows) + [k for k in new_rows if k not in base_rows]:
        b, n = base_rows.get(key), new_rows.get(key)
        if b is None or n is None:
            m = b or n
            changes.append(Change(key, m.stats.median if b else None,
                                  m.stats.median if n else None, None, None, None,
                                  "only in base" if b else "only in new"))
            continue
        probes = (None, None) if paired else (speed.probe(base, key.threads),
                                              speed.probe(new, key.threads))
        changes.append(compare_measurements(b, n, fail_above=fail_above, alpha=alpha,
                                            paired=paired, busy=busy, probes=probes))
    return changes


MACHINE_DRIFT = 0.10  # calibration GEMM rates further apart than this: warn


def _peaks(base: dict, new: dict) -> list:
    """[(threads, (base peak, new peak))] of the thread counts both calibrated reliably
    (``bench.machine``)."""
    def reliable(doc):
        return {c.get("threads"): c.get("peak_gflops") for c in doc.get("calibration") or []
                if isinstance(c, dict) and c.get("reliable")}

    a, b = reliable(base), reliable(new)
    pairs = [(t, (a[t], b[t])) for t in a if t in b]
    return [(t, rates) for t, rates in pairs
            if all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0
                   for r in rates)]


def machine_drift(base: dict, new: dict) -> str | None:
    """A warning when the two reports ran on machines of different speed or model.

    Each bench report records the GEMM rate of each thread count (``calibration``), compared
    where both calibrations were reliable. On
    shared virtual machines that rate moved by up to 2x between two runs a minute apart here,
    and every runtime moved with it: the test on the blocks of two runs cannot tell that from
    a change of the code, so compare says it out loud.
    """
    notes = []
    cpus = [doc.get("machine").get("cpu") if isinstance(doc.get("machine"), dict) else None
            for doc in (base, new)]
    if all(cpus) and cpus[0] != cpus[1]:
        notes.append(f"different CPUs ({cpus[0]} / {cpus[1]})")
    for threads, rates in _peaks(base, new):
        change = rates[1] / rates[0] - 1
        if abs(change) > MACHINE_DRIFT:
            at = f" at {threads} thread{'s' * (threads != 1)}" if threads else ""
            notes.append(f"the machine's GEMM calibration{at} moved {change:+.0%} "
                         f"({rates[0]:.0f} -> {rates[1]:.0f} GFLOP/s)")
    if not notes:
        return None
    return ("machine drift: " + "; ".join(notes) + ". Changes of that size may be the "
            "machine's, not the code's: rerun both on one idle machine, or compare the two "
            "models live (`lstm-bench compare BASE.onnx NEW.onnx`).")


def inputs_differ(base: dict, new: dict) -> str | None:
    """A warning when both reports say what they were fed (``model.inputs_fed``) and it
    differs: another seed, range or file content, or other feeds at a shape both measured."""
    fed = [(doc.get("model") or {}).get("inputs_fed") for doc in (base, new)]
    if not all(isinstance(f, dict) for f in fed):
        return None

    def key(f):  # a file by its content, not its path; shapes by (batch, seq_len)
        shapes = f.get("per_shape") if isinstance(f.get("per_shape"), list) else []
        rest = {k: v for k, v in f.items() if k != "per_shape"
                and not (k == "source" and f.get("sha256"))}
        return rest, {(s.get("batch"), s.get("seq_len")): s for s in shapes if isinstance(s, dict)}

    (a, a_shapes), (b, b_shapes) = key(fed[0]), key(fed[1])
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    differ += [f"batch {k[0]} x seq_len {k[1]}" for k in a_shapes.keys() & b_shapes.keys()
               if a_shapes[k] != b_shapes[k]]
    if not differ:
        return None
    return ("the reports were fed differently (" + ", ".join(map(str, differ)) + "; see "
            "model.inputs_fed in each): a change may come from the inputs, not the code.")


def gate_notes(base: dict, new: dict, changes: list[Change]) -> list[str]:
    """What widened the saved-report intervals, in words: a side of one process per row (its
    spread assumed), a busy report (its allowance), and what settles an inconclusive row."""
    notes = []
    for side, doc, attr in (("BASE", base, "base_processes"), ("NEW", new, "new_processes")):
        single = sum(getattr(c, attr) == 1 for c in changes)
        if single:
            notes.append(f"{side} has one worker process in {single} row(s) (a report of an "
                         "older lstm-bench, or --processes 1): no spread between invocations "
                         f"to measure, so {100 * ASSUMED_SPREAD:g} % is assumed and the "
                         "interval is wider; bench with the default worker processes for a "
                         "tighter gate")
        taken = busy_cores(doc)
        if taken:
            notes.append(f"{side} was measured on a busy machine (other processes kept "
                         f"{taken:.2f} of {usable_cores()} cores busy): its load alone may have "
                         f"made a one-thread figure up to {100 * busy_allowance(taken, 1):.0f} "
                         "% slower, and its side of each interval is widened by that")
    shifts = [c.speed_pct for c in changes if c.speed_pct is not None]
    if shifts and max(map(abs, shifts)) >= 1:
        way = "slower" if max(shifts, key=abs) > 0 else "faster"
        notes.append(f"the machine itself ran {_range(shifts)} % {way} while NEW was measured "
                     "(its speed probe, timed beside the rows in both reports: machine.speed):"
                     " each change is at equal speed, divided by that, and its interval "
                     f"widened by {100 * TRACKING:g} % of it")
    elif not shifts and any(c.low_pct is not None for c in changes):
        notes.append("no machine speed probe in both reports (an older lstm-bench, or "
                     "another NumPy or Python): the changes are not corrected for the "
                     "machine's own speed")
    for verdict, cause in ((INCONCLUSIVE, "load"), (SPEED_CHANGED, "machine's change of speed")):
        if any(c.verdict == verdict for c in changes):
            notes.append(f"{verdict}: the change of some rows cannot be told apart from the "
                         f"{cause}; the gate does not fail on them. Measure both live, "
                         f"`{LIVE_COMMAND}`: both models in one rotation see the same machine")
    return notes


def _range(values) -> str:
    low, high = min(values, key=abs), max(values, key=abs)
    return f"{abs(high):.0f}" if round(abs(low)) == round(abs(high)) else \
        f"{abs(low):.0f} to {abs(high):.0f}"


def caption(fail_above: float, paired: bool, alpha: float = ALPHA) -> str:
    """What decides a verdict, in one sentence or two for every renderer."""
    if paired:
        return (f"paired change: the median over the rounds of NEW / BASE block medians (both "
                f"models in one rotation), the figure the verdict tests; medians change: "
                f"NEW ms / BASE ms. p slower / p faster: a one-sided Wilcoxon signed-rank test "
                f"on the paired blocks; a verdict needs p < {alpha:g} in the direction of the "
                f"change (else: within noise); a regression is slower by more than "
                f"+{fail_above:g} %. Medians in ms: the median of the block medians.")
    return (f"machine: how much slower the machine itself ran for NEW (its speed probe, timed "
            f"beside the rows); change: NEW ms / BASE ms (the medians shown: the median of the "
            f"block medians), at equal machine speed (divided by the machine's change) where "
            f"both reports have the probe; 90 % interval: built from the spread of the worker "
            f"processes' own figures in both reports (pooled, Student's t; a report of one "
            f"process is assumed to spread {100 * ASSUMED_SPREAD:g} %), widened on a busy "
            f"report's side by what its load may have cost and both ways by "
            f"{100 * TRACKING:g} % of the machine's change. A regression: the whole interval "
            f"above +{fail_above:g} %; slower / faster: above / below 0; inconclusive: the "
            f"load's or the machine's allowance decides (measure both live: "
            f"`{LIVE_COMMAND}`).")
