"""The bench report on a terminal: the decision first, then tables that fit the width.

At any width the tables keep runtime names whole: rows are grouped by shape (a heading row per
shape, runtimes fastest first) so that batch and sequence length need no columns, and below
100 columns only the figures a reader compares are shown (median, its 95 % CI, the ratio to
the fastest, noise); the full figures are in the JSON, Markdown and HTML files.
"""

from __future__ import annotations

import os

from lstm_bench.bench.decision import decide, overlap, ratio, row_field, shape_key, shape_label
from lstm_bench.bench.stats import NOISE_THRESHOLD

WIDE = 100  # from this many columns on, the tables show every figure


def make_console(stderr: bool = False):
    """A rich console as wide as the terminal; into a pipe or a log, 120 columns unless
    COLUMNS says otherwise."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120
    return console


def fmt(value, spec=".4g") -> str:
    return "–" if value is None else format(value, spec)


def num(value) -> str:
    """Throughput-style figures: 12,345 rather than 1.234e+04."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def short_number(value) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def ci_text(m) -> str:
    ci = m.stats.median_ci
    return f"{short_number(ci[0])}–{short_number(ci[1])}" if ci else "–"


def noise_text(m) -> str:
    """IQR / median, and "2 ph" when the blocks fell into a fast and a slow phase."""
    text = f"{m.noise:.0%}"
    if row_field(m, "phases"):
        text += " 2 ph"
    return text


def ranked_groups(measurements) -> list[tuple[tuple, list]]:
    """(shape, measurements fastest first) in shape order."""
    groups: dict[tuple, list] = {}
    for m in measurements:
        groups.setdefault(shape_key(m), []).append(m)
    return [(key, sorted(groups[key], key=lambda m: m.stats.median)) for key in sorted(groups)]


def results_table(measurements, width: int = 80, title: str | None = None):
    """Latency and throughput, one section per shape; ``~`` marks a runtime whose median's
    95 % CI overlaps the one ranked just above it (their order is within noise)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    wide = width >= WIDE
    many_threads = len({m.threads for m in measurements}) > 1
    groups = ranked_groups(measurements)
    labels = [m.runtime for m in measurements] + [shape_label(k, short=True) for k, _ in groups]
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  title_justify="left")
    table.add_column("runtime", no_wrap=True, min_width=max(map(len, labels or ["runtime"])))
    columns = (["thr"] if many_threads or wide else []) + ["median ms", "95% CI", "vs best"]
    if wide:
        columns += ["p99 ms", "seq/s", "GFLOP/s", "% peak"]
    columns += ["noise"]
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for key, ranked in groups:
        table.add_row(Text(shape_label(key, short=True), style="bold"), *[""] * len(columns))
        best = ranked[0].stats.median
        for i, m in enumerate(ranked):
            tie = i > 0 and overlap(m, ranked[i - 1])
            cells = {"thr": fmt(m.threads, "d"), "median ms": fmt(m.stats.median),
                     "95% CI": ci_text(m),
                     "vs best": ratio(m.stats.median / max(best, 1e-12)) + ("~" if tie else " "),
                     "p99 ms": fmt(m.stats.p99), "seq/s": num(m.sequences_per_s),
                     "GFLOP/s": fmt(m.gflops, ".3g"),
                     "% peak": fmt(None if m.peak_share is None else 100 * m.peak_share, ".1f"),
                     "noise": noise_text(m)}
            table.add_row(m.runtime, *(cells[c] for c in columns))
    return table


def cold_table(measurements):
    from rich import box
    from rich.table import Table

    names = [m.runtime for m in measurements] or ["runtime"]
    table = Table(title="cold start and memory", header_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False, title_justify="left")
    table.add_column("runtime", no_wrap=True, min_width=max(map(len, names)))
    for col in ("thr", "open ms", "first run ms", "peak MB"):
        table.add_column(col, justify="right", no_wrap=True)
    for m in first_per_runtime(measurements):
        cold = m.cold or {}
        table.add_row(m.runtime, fmt(m.threads, "d"), fmt(cold.get("open")),
                      fmt(cold.get("first_run")), fmt(m.peak_memory_mb, ".1f"))
    return table


def first_per_runtime(measurements) -> list:
    """One measurement per (runtime, threads): cold start and memory are per opened runtime."""
    seen = {}
    for m in measurements:
        seen.setdefault((m.runtime, m.threads), m)
    return list(seen.values())


def noise_line(report) -> str | None:
    """One sentence on the noise, instead of one warning per row."""
    noisy = [m for m in report.measurements if m.noisy]
    phased = [m for m in report.measurements if row_field(m, "phases")]
    if not noisy and not phased:
        return None
    text = (f"noise: {len(noisy)} of {len(report.measurements)} rows have an IQR above "
            f"{NOISE_THRESHOLD:.0%} of the median")
    if phased:
        text += (f", {len(phased)} fell into a fast and a slow phase of the machine "
                 "(marked 2 ph)")
    return text + ("; where runtimes are marked ~ their order is within noise. Rerun on an "
                   "idle machine or over a longer span; `lstm-bench compare A.onnx B.onnx` "
                   "compares two models in the same phases.")


def print_decision(report, console) -> None:
    """The decision: the fastest verified runtime per shape, then who was left out and why,
    then what makes the figures less sure (noise, a busy machine). Bullets hang, so a wrapped
    line never reads as a new item."""
    from rich.table import Table
    from rich.text import Text

    decision = decide(report)
    title = "decision: fastest runtime that passed verify" if decision.verified else \
        "decision: fastest runtime (not verified)"
    console.print(f"[bold]{title}[/bold]", highlight=False)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for line in decision.lines():
        grid.add_row("  *", Text(line))
    for line in decision.excluded_lines():
        grid.add_row("  -", Text(f"excluded {line}", style="dim"))
    for line in machine_warnings(report) + [x for x in [noise_line(report)] if x]:
        grid.add_row("  !", Text(line, style="yellow"))
    console.print(grid)


def machine_warnings(report) -> list[str]:
    """What the measuring side noted: the machine (busy, load average...), and for a streaming
    bench which file was timed (the model, or its stateful variant)."""
    streaming = report.extra.get("streaming")
    note = streaming.get("note") if isinstance(streaming, dict) else None
    # run measures its sequence and streaming rows in two sweeps, each noting a busy machine
    # with its own figures: the first says it
    busy = [n for n in report.notes if n.startswith("the machine was busy")]
    notes = [n for n in report.notes if n not in busy[1:]]
    return notes + ([f"streaming: {note}"] if note else [])


def print_report(report, console=None) -> None:
    console = console or make_console()
    print_decision(report, console)
    console.print()
    console.print(results_table(report.measurements, console.width,
                                title="latency and throughput (median of the samples)"))
    console.print(cold_table(report.measurements))
    measured = {m.runtime for m in report.measurements}
    for skip in report.skipped:  # runtimes not measured at all are in the decision already
        if skip.runtime in measured:
            from rich.markup import escape

            console.print(f"[dim]skipped {skip.runtime} at {skip.threads} threads: "
                          f"{escape(skip.reason)}[/dim]", highlight=False)
