"""`lstm-bench history`: every series in the history database over time, change points flagged.

A change point is a run whose figure differs from the run before by compare's test (beyond
noise; a regression when also slower by more than --fail-above percent). Exit 0, or 2 for bad
input (no database, not a history database).
"""

from __future__ import annotations

from lstm_bench.bench.decision import plural
from lstm_bench.bench.history import default_db
from lstm_bench.bench.series import change_lines, load_series, machine_line, quiet_line, \
    series_table
from lstm_bench.bench.history_page import render_history
from lstm_bench.cli import options
from lstm_bench.cli.terminal import make_console, print_lines, print_paths, print_table
from lstm_bench.files import write_text
from lstm_bench.outputs import check_distinct, check_writable, sqlite_files


def add_arguments(parser) -> None:
    parser.add_argument("--db", metavar="PATH",
                        help="the history database (default: $LSTM_BENCH_DB, else "
                             "lstm-bench-out/history.sqlite)")
    parser.add_argument("--html", metavar="PATH", help="write an HTML page with a plot per shape")
    parser.add_argument("--fail-above", type=options.percent, default=5.0, metavar="PCT",
                        help="a significant slowdown above PCT percent is a regression "
                             "(default 5, as compare)")


def model_label(s) -> str:
    """The model and CPU a series ran on: path (short sha256) on CPU."""
    sha, cpu = s.model_cpu
    return f"{s.model_path or 'model'} (sha256 {(sha or '?')[:12]}) on {cpu or '?'}"


def by_model(series) -> list[tuple[str, list]]:
    """(model label, its series) per model and CPU, in the order the database gave them."""
    groups: dict[tuple, list] = {}
    for s in series:
        groups.setdefault(s.model_cpu, []).append(s)
    return [(model_label(group[0]), group) for group in groups.values()]


def print_history(series, db, console) -> None:
    """The series of each model (a heading per model and CPU when the database holds
    several: ``bench.series.series_table``), then the change points, as hanging bullets."""
    runs = {p.run_id for s in series for p in s.points}
    print_paths(console, f"{plural(len(runs), 'run')}, {plural(len(series), 'series', 'series')}"
                f" in", [db])
    for label, group in by_model(series):
        console.print()
        print_lines(console, [f"{label}: median ms of each series, oldest run -> newest"],
                    indent=0, style="bold")
        print_table(console, series_table(group), compact=True)
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
    check_writable(args.html, "--html")
    db = args.db or default_db()
    check_distinct(sqlite_files("--db", db), {"--html": args.html})
    series = load_series(db, fail_above=args.fail_above)
    written = []
    if args.html:  # first: a reader that stops early (`| head`) must not cost the page
        written.append(write_text(args.html, render_history(series, db)))
    console = make_console()
    print_history(series, db, console)
    print_paths(console, "wrote", written)
    return 0
