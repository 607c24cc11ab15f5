"""`lstm-bench history`: every series in the history database over time, change points flagged.

A change point is a run whose figure differs from the run before by compare's test (beyond
noise; a regression when also slower by more than --fail-above percent). Exit 0, or 2 for bad
input (no database, not a history database).
"""

from __future__ import annotations

HELP = "show the history of bench results over time, with change points flagged"


def add_arguments(parser) -> None:
    parser.add_argument("--db", metavar="PATH",
                        help="the history database (default: $LSTM_BENCH_DB, else "
                             "lstm-bench-out/history.sqlite)")
    parser.add_argument("--html", metavar="PATH", help="write an HTML page with a plot per shape")
    parser.add_argument("--fail-above", type=float, default=5.0, metavar="PCT",
                        help="a significant slowdown above PCT percent is a regression "
                             "(default 5, as compare)")


def series_table(series, width: int):
    from rich import box
    from rich.table import Table

    from lstm_bench.bench.decision import shape_label

    table = Table(title="history: each series over time (median ms, oldest -> newest)",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    names = [s.runtime for s in series] or ["runtime"]
    table.add_column("runtime", no_wrap=True, min_width=max(map(len, names)))
    for col in ("shape", "thr", "runs", "first", "last", "changes"):
        table.add_column(col, justify="left" if col == "shape" else "right", no_wrap=True)
    if width >= 100:
        table.add_column("last commit", no_wrap=True)
    for s in series:
        first, last = s.points[0].measurement, s.points[-1].measurement
        flagged = s.change_points
        changes = ", ".join(f"#{p.run_id} {p.change.change_pct:+.0f}%" for p in flagged[-2:])
        cells = [s.runtime, shape_label(s.shape, short=True), str(s.key[7]), str(len(s.points)), f"{first.stats.median:.4g}",
                 f"{last.stats.median:.4g}", changes or "none"]
        if width >= 100:
            cells.append((s.points[-1].git_commit or "?")[:12])
        style = "red" if any(p.change.regression for p in flagged) else None
        table.add_row(*cells, style=style)
    return table


def change_lines(series) -> list[str]:
    lines = []
    for s in series:
        for p in s.change_points:
            c = p.change
            lines.append(f"run #{p.run_id} ({p.recorded}, commit {(p.git_commit or '?')[:12]}): "
                         f"{s.label}: {c.base_median_ms:.4g} -> {c.new_median_ms:.4g} ms "
                         f"({c.change_pct:+.1f} %, p = {min(c.p_slower, c.p_faster):.2g}): "
                         f"{c.verdict}")
    return lines


def print_changes(series, console) -> None:
    """The change points, one hanging bullet each."""
    from rich.table import Table
    from rich.text import Text

    lines = change_lines(series)
    if not lines:
        console.print("no change points: every series stayed within noise", highlight=False)
        return
    console.print("[bold]change points[/bold] (compare's test against the run before)")
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for line in lines:
        grid.add_row("  *", Text(line, style="red" if line.endswith("regression") else ""))
    console.print(grid)


def main(args) -> int:
    from lstm_bench.bench.history import default_db, load_series
    from lstm_bench.bench.terminal import make_console
    from lstm_bench.files import check_writable, write_text

    from lstm_bench.errors import LSTMBenchError

    check_writable(args.html, "--html")
    if not args.fail_above >= 0:  # NaN too
        raise LSTMBenchError(f"--fail-above must be >= 0 percent, got {args.fail_above}")
    db = args.db or default_db()
    series = load_series(db, fail_above=args.fail_above)
    console = make_console()
    runs = {p.run_id for s in series for p in s.points}
    console.print(f"{db}: {len(runs)} runs, {len(series)} series", highlight=False)
    if series:
        console.print(series_table(series, console.width))
    print_changes(series, console)
    if args.html:
        from lstm_bench.bench.history_page import render_history

        console.print(f"wrote {write_text(args.html, render_history(series, db))}",
                      highlight=False)
    return 0
