"""The bench report on a terminal: the decision first, then tables that fit the width.

At any width the tables keep runtime names whole: rows are grouped by shape (a heading row per
shape, runtimes fastest first) so that batch and sequence length need no columns, and below
100 columns only the figures a reader compares are shown (median, its 95 % CI, the ratio to
the fastest, noise); the full figures are in the JSON, Markdown and HTML files. Streaming rows
(one call of a chunk of steps, h and c carried) have their own table: their figures are per
call and per step, not per sequence.

The width: the terminal's, also when standard output is piped (`| head`, `| less`: the
terminal of standard error or input); with no terminal at all (a log, cron) $COLUMNS, else 80.
"""

from __future__ import annotations

import re
import textwrap

from lstm_bench.bench.decision import decide, overlap, plural, ratio, shape_label
from lstm_bench.bench.text import MEDIAN_CAPTION, WIDE, ci_text, first_per_runtime, fmt, \
    machine_warnings, noise_line, noise_text, num, per_step, peak_text, ranked_groups, \
    split_rows, streaming


def make_console(stderr: bool = False):
    """A rich console as wide as the terminal (see the module doc)."""
    from rich.console import Console

    return Console(stderr=stderr)


def print_lines(console, lines, marker: str = "", style: str | None = None,
                indent: int = 2) -> None:
    """Lines as hanging bullets that wrap at spaces only (a path or a URL stays whole, on a
    line of its own when it is long), with no padding after them."""
    from rich.text import Text

    lead = " " * indent + (marker + " " if marker else "")
    width = max(console.width - len(lead), 20)
    for line in lines:
        # "95 %", "12 ms": a figure and its unit stay on one line
        glued = re.sub(r" (?=(%|ms|x)\b)", "\0", line)
        wrapped = textwrap.wrap(glued, width, break_long_words=False,
                                break_on_hyphens=False) or [""]
        for i, part in enumerate(wrapped):
            text = (lead if i == 0 else " " * len(lead)) + part.replace("\0", " ")
            console.print(Text(text, style=style), soft_wrap=True, highlight=False)


def print_paths(console, label: str, paths) -> None:
    """``label: path`` when it fits the width, else the label and then one path per line:
    a path is never broken across lines (a terminal's own wrap would cut it anywhere)."""
    paths = [str(p) for p in paths]
    if not paths:
        return
    one_line = f"{label} " + ", ".join(paths)
    if len(one_line) <= console.width:
        console.print(one_line, soft_wrap=True, highlight=False, markup=False)
        return
    console.print(label.rstrip(":") + ":", highlight=False, markup=False)
    for path in paths:
        console.print(f"  {path}", soft_wrap=True, highlight=False, markup=False)


def print_recorded(console, run_id: int, db) -> None:
    """Where the history database got this run, and the command that shows it: the path and
    the command each kept whole (``print_paths``)."""
    print_paths(console, f"recorded as run #{run_id} in", [db])
    print_paths(console, "see:", [f"lstm-bench history --db {db}"])


# the columns that go first when a table is too wide: least important last (a column not
# listed, the runtime name, always stays)
IMPORTANCE = {
    "sequence": ["thr", "median ms", "vs best", "noise", "95% CI", "p99 ms", "seq/s", "GFLOP/s",
                 "% peak"],
    "streaming": ["thr", "p50 ms", "vs best", "p50/step", "noise", "95% CI", "p99 ms",
                  "p99/step", "steps/s", "GFLOP/s"],
}


def table_columns(measurements, width: int) -> list[str]:
    """The figure columns of a latency table at this width: sequence rows, or streaming rows
    (per call and per step; steps/s, not seq/s: a call carries a chunk, not a sequence).
    Before they are drawn, ``results_table`` drops those the width cannot hold whole."""
    wide = width >= WIDE
    threads = ["thr"] if wide or len({m.threads for m in measurements}) > 1 else []
    if measurements and all(streaming(m) for m in measurements):
        return threads + ["p50 ms"] + (["95% CI"] if wide else []) + [
            "vs best", "p99 ms", "p50/step", "p99/step"] + (
            ["steps/s", "GFLOP/s"] if wide else []) + ["noise"]
    return threads + ["median ms", "95% CI", "vs best"] + (
        ["p99 ms", "seq/s", "GFLOP/s", "% peak"] if wide else []) + ["noise"]


def results_table(measurements, width: int = 80, title: str | None = None):
    """Latency and throughput, one section per shape; ``~`` marks a runtime whose median's
    95 % CI overlaps the one ranked just above it (their order is within noise). Rows all of
    one kind: whole sequences, or streaming calls (``split_rows``). Only the columns whose
    every cell fits whole at this width (``lstm_bench.cli.columns.fitting``): a figure or a
    heading is never cut."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lstm_bench.cli.columns import fitting

    groups = ranked_groups(measurements)
    labels = [m.runtime for m in measurements] + [shape_label(k, short=True) for k, _ in groups]
    columns = table_columns(measurements, width)
    rows = []  # (label, {column: cell}) with None for a shape's heading row
    for key, ranked in groups:
        rows.append((shape_label(key, short=True), None))
        best = ranked[0].stats.median
        for i, m in enumerate(ranked):
            tie = i > 0 and overlap(m, ranked[i - 1])
            cells = {"thr": fmt(m.threads, "d"), "median ms": fmt(m.stats.median),
                     "p50 ms": fmt(m.stats.median), "95% CI": ci_text(m),
                     "vs best": ratio(m.stats.median / max(best, 1e-12)) + ("~" if tie else " "),
                     "p99 ms": fmt(m.stats.p99), "seq/s": num(m.sequences_per_s),
                     "steps/s": num(m.steps_per_s), "GFLOP/s": fmt(m.gflops, ".3g"),
                     "% peak": peak_text(m), "noise": noise_text(m)}
            if streaming(m):
                cells.update({"p50/step": fmt(per_step(m, "p50")),
                              "p99/step": fmt(per_step(m, "p99"))})
            rows.append((m.runtime, cells))
    needed = {c: max([len(c)] + [len(cells[c]) for _, cells in rows if cells]) for c in columns}
    needed["runtime"] = max(map(len, labels or ["runtime"]))
    kind = "streaming" if measurements and all(streaming(m) for m in measurements) else "sequence"
    columns = fitting(["runtime"] + columns, needed, width, IMPORTANCE[kind])[1:]
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  title_justify="left")
    table.add_column("runtime", no_wrap=True, min_width=needed["runtime"])
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for label, cells in rows:
        if cells is None:
            table.add_row(Text(label, style="bold"), *[""] * len(columns))
        else:
            table.add_row(label, *(cells[c] for c in columns))
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


def print_decision(report, console) -> None:
    """The decision: the fastest verified runtime per shape, then who was left out and why,
    then what makes the figures less sure (noise, a busy machine). Bullets hang, so a wrapped
    line never reads as a new item."""
    decision = decide(report)
    title = "decision: fastest runtime that passed verify" if decision.verified else \
        "decision: fastest runtime (not verified)"
    console.print(f"[bold]{title}[/bold]", highlight=False)
    print_lines(console, decision.lines(), "*")
    print_lines(console, [f"excluded {line}" for line in decision.excluded_lines()], "-",
                style="dim")
    print_lines(console, machine_warnings(report) + [x for x in [noise_line(report)] if x], "!",
                style="yellow")


def print_report(report, console=None) -> None:
    console = console or make_console()
    print_decision(report, console)
    sequence, stream = split_rows(report.measurements)
    for title, rows in (("latency and throughput", sequence),
                        ("streaming: latency per call, and per step of the chunk", stream)):
        if rows:
            console.print()
            console.print(f"[bold]{title}[/bold]", highlight=False)
            print_lines(console, [MEDIAN_CAPTION], indent=0, style="dim")
            console.print(results_table(rows, console.width))
    console.print(cold_table(report.measurements))
    measured = {m.runtime for m in report.measurements}
    for skip in report.skipped:  # runtimes not measured at all are in the decision already
        if skip.runtime in measured:
            from rich.markup import escape

            console.print(f"[dim]skipped {skip.runtime} at {plural(skip.threads, 'thread')}: "
                          f"{escape(skip.reason)}[/dim]", highlight=False)
