"""Figures as text, the same in every report (terminal, Markdown, HTML): how a latency, a
throughput, a confidence interval and the noise of a row are written, and which rows are
streaming rows."""

from __future__ import annotations

from lstm_bench.bench.decision import plural
from lstm_bench.bench.stats import NOISE_THRESHOLD, Shape
from lstm_bench.runtimes.registry import RUNTIMES

# the caption of every latency table: what the central figure and its interval are
MEDIAN_CAPTION = ("ms: median of the block medians, its 95% CI over the blocks; p99 over calls; "
                  "floor ms: the same call on a model that computes nothing (bench.floor), "
                  "and its share of the median")
NO_PEAK = ("no % peak for streaming rows: a call of a few steps is bound by its overhead, "
           "and the GEMM peak is no ceiling for it")


def split_rows(measurements) -> tuple[list, list]:
    """(whole-sequence rows, streaming rows)."""
    return ([m for m in measurements if not m.streaming],
            [m for m in measurements if m.streaming])


# the precision of the GEMM whose peak % of peak divides by (``bench.machine.GemmProbe``)
PEAK_PRECISION = "float32"
NO_PEAK_FOR = "no % peak for "  # how ``no_peak_note`` opens (a report's note: shown by the table)


def work_precision(runtime: str) -> str:
    """The precision a runtime computes in, as it declares it (``precision``; None: its
    outputs', float32 for every registered runtime that declares none)."""
    return getattr(RUNTIMES.get(runtime), "precision", None) or PEAK_PRECISION


def peak_comparable(m) -> bool:
    """Whether a row's work and the GEMM peak are of one precision: int8 or float16 work
    divided by a float32 peak is no share of anything (int8 came out at "103 %")."""
    return work_precision(m.runtime) == PEAK_PRECISION


def no_peak_note(measurements) -> str | None:
    """Why the whole-sequence rows of other precisions have no % of peak, or None."""
    other = {m.runtime: work_precision(m.runtime) for m in measurements
             if not m.streaming and not peak_comparable(m)}
    if not other:
        return None
    names = ", ".join(f"{name} ({precision})" for name, precision in other.items())
    return (f"{NO_PEAK_FOR}{names}: the peak is a {PEAK_PRECISION} GEMM's, and work of "
            "another precision is no share of it")


def peak_text(m) -> str:
    """% of the GEMM peak; none for streaming rows (``NO_PEAK``) nor for work of another
    precision than the peak's (``no_peak_note``), in every report alike."""
    share = None if m.streaming or not peak_comparable(m) else m.peak_share
    return fmt(None if share is None else 100 * share, ".1f")


def per_step(m, which: str) -> float:
    """A streaming row's p50 or p99 over the steps its call carries (ms)."""
    figure = m.stats.median if which == "p50" else m.stats.p99
    return figure / max(m.seq_len, 1)  # a streaming row's seq_len is its chunk


def fmt(value, spec=".4g") -> str:
    return "–" if value is None else format(value, spec)


def num(value) -> str:
    """Throughput-style figures: 12,345 rather than 1.234e+04."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def ms_text(value) -> str:
    """A latency in 7 characters at most: 4 figures where they fit (0.06276, 1.343), else 3
    (0.00417, 8.3e-05), whole above a second (12,345)."""
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.4g}"
    return text if len(text) <= 7 else f"{value:.3g}"


def p_short(p: float | None) -> str:
    """A p value in at most 6 characters: below 0.001 it only matters that it is small."""
    return "–" if p is None else "<0.001" if p < 0.001 else f"{p:.2g}"


def short_number(value) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def ci_text(m) -> str:
    ci = m.stats.median_ci
    return f"{short_number(ci[0])}–{short_number(ci[1])}" if ci else "–"


def noise_text(m) -> str:
    """IQR / median, and "2 ph" when the blocks fell into a fast and a slow phase."""
    text = f"{m.noise:.0%}"
    if m.phases:
        text += " 2 ph"
    return text


def ranked_groups(measurements) -> list[tuple[Shape, list]]:
    """(shape, measurements fastest first) in shape order."""
    groups: dict[tuple, list] = {}
    for m in measurements:
        groups.setdefault(m.key.shape, []).append(m)
    return [(key, sorted(groups[key], key=lambda m: m.stats.median)) for key in sorted(groups)]


def first_per_runtime(measurements) -> list:
    """One measurement per (runtime, threads): cold start and memory are per opened runtime."""
    seen = {}
    for m in measurements:
        seen.setdefault((m.runtime, m.threads), m)
    return list(seen.values())


def noise_line(report) -> str | None:
    """One sentence on the noise, instead of one warning per row."""
    noisy = [m for m in report.measurements if m.noisy]
    phased = [m for m in report.measurements if m.phases]
    if not noisy and not phased:
        return None
    # "1 of 16 rows has": the verb agrees with the count of noisy rows
    text = (f"noise: {len(noisy)} of {plural(len(report.measurements), 'row')} "
            f"{'has' if len(noisy) == 1 else 'have'} an IQR above {NOISE_THRESHOLD:.0%} of the "
            "median")
    if phased:
        text += (f", {len(phased)} fell into a fast and a slow phase of the machine "
                 "(marked 2 ph)")
    return text + ("; where runtimes are marked ~ their order is within noise. Rerun on an "
                   "idle machine or over a longer span; `lstm-bench compare A.onnx B.onnx` "
                   "compares two models in the same phases.")


def machine_warnings(report) -> list[str]:
    """What the measuring side noted: the machine (busy, load average...), and for a streaming
    bench which file was timed (the model, or its stateful variant)."""
    streaming = report.extra.get("streaming")
    note = streaming.get("note") if isinstance(streaming, dict) else None
    # run measures its sequence and streaming rows in two sweeps, each noting a busy machine
    # with its own figures: the first says it
    busy = [n for n in report.notes if n.startswith("the machine was busy")]
    # the note on % peak is the latency table's footnote, not a warning
    notes = [n for n in report.notes if n not in busy[1:] and not n.startswith(NO_PEAK_FOR)]
    return notes + ([f"streaming: {note}"] if note else [])
