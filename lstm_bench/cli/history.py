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


def model_label(s) -> str:
    """The model and CPU a series ran on: path (short sha256) on CPU."""
    sha, cpu = s.key[:2]
    return f"{s.model_path or 'model'} (sha256 {(sha or '?')[:12]}) on {cpu or '?'}"


def by_model(series) -> list[tuple[str, list]]:
    """(model label, its series) per model and CPU, in the order the database gave them."""
    groups: dict[tuple, list] = {}
    for s in series:
        groups.setdefault(s.key[:2], []).append(s)
    return [(model_label(group[0]), group) for group in groups.values()]


def series_table(series, width: int):
    """One model's series: a heading row per shape and thread count, then its runtimes, so
    that names and figures are never cut: fits 80 columns; from ``terminal.WIDE`` on, the
    last commit too."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lstm_bench.bench.decision import shape_label
    from lstm_bench.bench.text import WIDE, ms_text

    many_threads = len({s.key[7] for s in series}) > 1

    def heading(key):
        shape, threads = key
        return shape_label(shape, short=True) + (f" thr={threads}" if many_threads else "")

    groups: dict[tuple, list] = {}
    for s in series:
        groups.setdefault((s.shape, s.key[7] or 0), []).append(s)
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
                  padding=(0, 1, 0, 0))
    labels = [s.runtime for s in series] + [heading(k) for k in groups] or ["runtime"]
    table.add_column("runtime", no_wrap=True, min_width=max(map(len, labels)))
    columns = ["runs", "first ms", "last ms", "change points"] + (
        ["last commit"] if width >= WIDE else [])
    for col in columns:
        table.add_column(col, justify="left" if col == "last commit" else "right",
                         no_wrap=True)
    for key in sorted(groups):
        table.add_row(Text(heading(key), style="bold"), *[""] * len(columns))
        for s in groups[key]:
            first, last = s.points[0].measurement, s.points[-1].measurement
            flagged = s.change_points
            # the last two change points: the whole list is below the table
            changes = ", ".join(f"#{p.run_id} {p.change.change_pct:+.0f}%" for p in flagged[-2:])
            if len(flagged) > 2:
                changes = "... " + changes
            cells = [str(len(s.points)), ms_text(first.stats.median),
                     ms_text(last.stats.median), changes or "none"]
            if width >= WIDE:
                cells.append((s.points[-1].git_commit or "?")[:12])
            style = "red" if any(p.change.regression for p in flagged) else None
            table.add_row(Text(s.runtime), *cells, style=style)
    return table


def print_history(series, db, console) -> None:
    """The series of each model (a heading per model and CPU when the database holds
    several), then the change points, as hanging bullets."""
    from lstm_bench.bench.decision import plural
    from lstm_bench.bench.history import change_lines, machine_line, quiet_line
    from lstm_bench.cli.terminal import print_lines, print_paths

    runs = {p.run_id for s in series for p in s.points}
    print_paths(console, f"{plural(len(runs), 'run')}, {plural(len(series), 'series', 'series')}"
                f" in", [db])
    for label, group in by_model(series):
        console.print()
        print_lines(console, [f"{label}: median ms of each series, oldest run -> newest"],
                    indent=0, style="bold")
        console.print(series_table(group, console.width))
        lines = change_lines(group)
        if lines:
            print_lines(console, ["change points (compare's test against the run before):"],
                        indent=0)
            for line in lines:
                print_lines(console, [line], "*", style="red" if line.endswith("regression")
                            else None)
        else:
            print_lines(console, [quiet_line(group)], indent=0)
        machine = machine_line(group)
        if machine:
            print_lines(console, [machine], indent=0, style="dim")


def main(args) -> int:
    from lstm_bench.bench.history import default_db, load_series
    from lstm_bench.cli.terminal import make_console, print_paths
    from lstm_bench.files import check_writable, write_text

    from lstm_bench.errors import LSTMBenchError

    check_writable(args.html, "--html")
    if not args.fail_above >= 0:  # NaN too
        raise LSTMBenchError(f"--fail-above must be >= 0 percent, got {args.fail_above}")
    db = args.db or default_db()
    series = load_series(db, fail_above=args.fail_above)
    written = []
    if args.html:  # first: a reader that stops early (`| head`) must not cost the page
        from lstm_bench.bench.history_page import render_history

        written.append(write_text(args.html, render_history(series, db)))
    console = make_console()
    print_history(series, db, console)
    print_paths(console, "wrote", written)
    return 0
