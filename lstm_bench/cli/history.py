"""`lstm-bench history`: every series in the history database over time, change points flagged.

A series is one runtime at one shape and thread count, of one named series (bench/run
--series, default the model file's name) on one machine. A change point is a run where the
series' level changes: ruptures' PELT splits the series into segments, and compare's test
between two segments' runs says beyond noise (a regression when also slower by more than
--fail-above percent); each comes with what changed since the run before (model, commit,
libraries).
--series and --runtime pick by exact name, --machine by any part of the machine's label or id
(case-insensitive). Exit 0, or 2 for bad input (no database, not a history database, nothing
matching the filters).
"""

from __future__ import annotations

from lstm_bench.bench.decision import plural
from lstm_bench.bench.history import default_db, local_path, location
from lstm_bench.bench.history_page import by_series, history_json, machine_label, \
    render_history, time_span
from lstm_bench.bench.history_sql import shown
from lstm_bench.bench.series import change_lines, load_series, machine_line, quiet_line, \
    series_table
from lstm_bench.cli import gates, options
from lstm_bench.cli.terminal import print_lines, print_paths, print_table
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import to_json, write_text
from lstm_bench.outputs import check_distinct, check_one_stdout, check_writable, is_stdout, \
    sqlite_files


def add_arguments(parser) -> None:
    parser.add_argument("--db", metavar="PATH|URL",
                        help="the history database: a SQLite file or postgresql://user@host:"
                             "port/dbname (default: $LSTM_BENCH_DB, else "
                             "lstm-bench-out/history.sqlite)")
    parser.add_argument("--series", metavar="NAME", type=options.series_name,
                        help="only this series (bench/run --series; default there: the model "
                             "file's name)")
    parser.add_argument("--runtime", metavar="NAME", help="only this runtime")
    parser.add_argument("--machine", metavar="TEXT",
                        help="only machines whose label (name, CPU, GPU) or id contains TEXT")
    parser.add_argument("--html", metavar="PATH", help="write an HTML page with a plot per shape")
    parser.add_argument("--json", metavar="PATH",
                        help="write every point of every series shown as JSON ('-': standard "
                             "output)")
    parser.add_argument("--fail-above", type=options.percent, default=5.0, metavar="PCT",
                        help="a significant slowdown above PCT percent is a regression "
                             "(default 5, as compare)")


def pick(series, args) -> list:
    """The series the filters keep; none at all is bad input (a typo must not look like an
    empty history), said with the names the database does hold."""
    if not series:
        return series
    wanted = [s for s in series
              if (args.series is None or s.key.series == args.series)
              and (args.runtime is None or s.runtime == args.runtime)
              and (args.machine is None or args.machine.lower() in
                   machine_label(s.machine).lower())]
    if not wanted:
        held = {"--series": {s.key.series for s in series},
                "--runtime": {s.runtime for s in series},
                "--machine": {machine_label(s.machine) for s in series}}
        asked = [(o, getattr(args, o[2:])) for o in held if getattr(args, o[2:]) is not None]
        raise LSTMBenchError("no series match " + " ".join(f"{o} {v}" for o, v in asked) + "; "
                             + "; ".join(f"{o}: {', '.join(sorted(held[o])[:8])}"
                                         for o, _ in asked))
    return wanted


def print_history(series, db, console) -> None:
    """The series of each name and machine (a heading each, with its runs' time span:
    ``bench.series.series_table``), then the change points, as hanging bullets."""
    runs = {p.run_id for s in series for p in s.points}
    print_paths(console, f"{plural(len(runs), 'run')}, {plural(len(series), 'series', 'series')}"
                f" in", [shown(db)])
    for label, group in by_series(series):
        console.print()
        print_lines(console, [label], indent=0, style="bold")
        print_lines(console, [f"{time_span(group)}: median ms of each series, oldest run -> "
                              "newest"], indent=0)
        print_table(console, series_table(group), compact=True)
        lines = change_lines(group)
        if lines:
            print_lines(console, ["change points (PELT's segments, compare's test between "
                                  "them):"],
                        indent=0)
            for line in lines:
                print_lines(console, [line], "*", style="red" if ": regression" in line
                            else None)
        else:
            print_lines(console, [quiet_line(group)], indent=0)
        machine = machine_line(group)
        if machine:
            print_lines(console, [machine], indent=0, style="dim")


def main(args) -> int:
    check_writable(args.html, "--html")
    check_writable(args.json, "--json", stdout=True)
    piped = check_one_stdout({"--json": args.json})
    db = location(args.db) if args.db else default_db()
    check_distinct(sqlite_files("--db", local_path(db)), {"--html": args.html,
                                                         "--json": args.json})
    series = pick(load_series(db, fail_above=args.fail_above), args)
    written = []
    if args.html:  # first: a reader that stops early (`| head`) must not cost the page
        written.append(write_text(args.html, render_history(series, db)))
    if args.json and not is_stdout(args.json):
        written += gates.emit(args.json, to_json(history_json(series, db)))
    console = gates.console_for(piped)
    print_history(series, db, console)
    print_paths(console, "wrote", written)
    if piped:
        gates.emit("-", to_json(history_json(series, db)))
    return 0
