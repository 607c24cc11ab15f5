"""`lstm-bench run`: the whole job on the built-in seed model.

Four steps (``bench.pipeline``): export the seed's trained LSTM to ONNX, verify it on every
runtime against the float64 truth, benchmark every runtime that runs it over a small sweep,
and write the reports. Each run writes into a fresh timestamped folder under ``--out``, so an
earlier report is never overwritten; the folder is printed at the start and the end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lstm_bench import interrupts, seed
from lstm_bench.bench import history
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.machine import check_threads
from lstm_bench.bench.pipeline import BATCHES, bench_and_stream, check_run, export_seed, \
    verify_model
from lstm_bench.bench.plan import RuntimeChoice, SweepPlan, sweep_shapes
from lstm_bench.bench.report import write_reports
from lstm_bench.bench.tables import summary_table
from lstm_bench.cli import options
from lstm_bench.cli.bench import display_of
from lstm_bench.cli.terminal import make_console, print_decision, print_paths, \
    print_recorded, print_table
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import write_text
from lstm_bench.outputs import check_target, check_writable
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_options import parse_ort_options

RUN_MAX_TIME = 2.0  # seconds of timed calls per runtime and shape, at most (3 calls at least)
INTERRUPTED = "INTERRUPTED"  # written into a run folder whose report set is incomplete


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="lstm-bench-out", metavar="DIR",
                        help="reports go to DIR/run-<timestamp>/ (default ./lstm-bench-out); "
                             f"a run that stops early leaves a file {INTERRUPTED} there")
    options.add_runtimes(parser)
    options.add_batch(parser, default=BATCHES)
    options.add_seq_len(parser, what=": bench measures each, verify runs at the longest")
    options.add_given(parser)
    options.add_threads(parser, help_="comma list of intra-op thread counts, the same for "
                                      "every CPU runtime: bench measures each, verify runs at "
                                      "the first (default: 1; at most 4 x the usable cores)")
    options.add_min_time(parser, default=0.2, help_="seconds of timed calls per runtime and "
                                                    "shape (default 0.2)")
    parser.add_argument("--span", type=float, default=10.0, metavar="S",
                        help="seconds the timed blocks are spread over (default 10)")
    parser.add_argument("--model", metavar="MODEL.onnx",
                        help="run the job on this ONNX model instead of exporting the seed")
    options.add_ort_option(parser)
    options.add_history(parser, default_db="DIR/history.sqlite")
    options.add_quiet(parser)


def check_out(out) -> Path | None:
    """``--out`` checked without creating it: a folder, or one that could be made. Returns the
    topmost folder of it that does not exist yet (None: it exists), for ``remove_run_folder``."""
    base = Path(out)
    if base.exists() and not base.is_dir():
        raise LSTMBenchError(f"--out {base}: not a directory")
    # the run folder to come: its nearest existing folder must take a new folder
    check_writable(base / "run-YYYYmmdd-HHMMSS", "--out")
    base = Path(os.path.abspath(base))  # "x/../y" names x and y, not x/..
    missing = [p for p in (base, *base.parents) if not p.exists()]
    return missing[-1] if missing else None


def remove_run_folder(folder: Path, made: Path | None) -> None:
    """Remove an empty run folder and the folders of --out that this run made (``made``:
    ``check_out``'s answer), innermost first, keeping any that is not empty."""
    folder = Path(os.path.abspath(folder))
    for path in (folder, *folder.parents):
        try:
            path.rmdir()
        except OSError:  # not empty (another run's), or gone: stop here
            return
        if made is None or path == made:
            return


def run_folder(out) -> Path:
    """A new folder DIR/run-YYYYmmdd-HHMMSS[-N] that no earlier run wrote into."""
    base = Path(out)
    stamp = time.strftime("run-%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return folder
        except FileExistsError:
            continue
        except OSError as exc:
            raise LSTMBenchError(f"cannot create the report folder {folder}: "
                                 f"{exc.strerror or exc}") from None
    raise LSTMBenchError(f"{base}: too many runs in the same second")


def run_settings(args) -> Settings:
    """The harness settings of the bench step (checked in ``main`` before any work)."""
    # max_time bounds a runtime that turns slow (torch's per-step OpenMP barrier on a busy
    # machine reached 0.4 s a call here) so that the whole run stays near a minute.
    return Settings(span=args.span, min_time=args.min_time,
                    warmup_time=min(0.05, args.min_time / 4), max_time=RUN_MAX_TIME)


def pipeline(args, folder, model, runtimes, verify_runtimes, threads, step):
    """The four steps; returns the ``BenchReport`` and the paths written. ``model``: the
    ``Model`` of --model (None: export the seed); ``runtimes``: the bench's, every one asked
    for; ``verify_runtimes``: verify's."""
    export = None
    if model is not None:
        step(1, f"using {args.model} (no export)")
    else:
        step(1, "exporting the seed model to ONNX and proving it against torch")
        model, export = export_seed(folder)
        step(1, f"export max abs error vs {export['compared_with']}: "
                f"{export['max_abs_error']:.2e} ({export['exporter']})")
    step(2, "verifying on every runtime against the float64 reference")
    verify = verify_model(model, verify_runtimes, folder, source=export and export["source"],
                          seq_len=max(args.seq_len) if args.seq_len else None,
                          threads=threads[0])
    step(3, "benchmarking")
    # every batch at the lengths asked for, else at the sequence length verify fed
    lengths = args.seq_len or [verify.inputs.get("seq_len") or seed.SEQ_LEN]
    shapes, notes = sweep_shapes([model], args.batch, lengths, default_batches=BATCHES)
    plan = SweepPlan((model,), runtimes, shapes, tuple(threads), run_settings(args),
                     notes=notes, command="run", display=display_of(args),
                     calibrate=model.flops_note is None)  # no FLOPs: no % of peak
    report = bench_and_stream(plan, verify)
    report.export = export
    step(4, "writing reports")
    paths = write_reports(report, json=folder / "bench.json", md=folder / "bench.md",
                          html=folder / "bench.html")
    return report, paths


def main(args) -> int:
    from rich.markup import escape

    started = time.perf_counter()
    console = make_console()
    err = make_console(stderr=True)
    # Bad input fails here, before any folder is made: nothing is left behind.
    threads = check_threads(options.threads_or_default(args.threads))
    runtimes = RuntimeChoice.of(args.runtimes, parse_ort_options(args.ort_options))
    run_settings(args)
    # readable, within the limits, with an LSTM node, feedable at each batch (the seed's
    # sizes are known without exporting it)
    if args.model is None and (args.shapes or args.values):
        raise LSTMBenchError("--shape and --value need --model: the seed model's inputs are known")
    model = None if args.model is None else (
        Model.load(args.model).check_lstm().with_given(options.given(args)))
    check_run(model, args.batch, runtimes, args.seq_len)
    made = check_out(args.out)
    # checked, not created: record() makes it once there is a result
    db_path = (None if args.no_history
               else history.location(args.db or history.default_db(args.out)))
    # SQLite writes it in place: a regular file or none (a server's URL is no file)
    check_target(history.local_path(db_path), "--db")
    db = None if db_path is None else history.check_db(db_path)
    # last: checking that a runtime is available loads its library (onnxruntime and OpenVINO
    # write telemetry files into $HOME as they load), so only once all else is known good.
    # verify judges the available ones of those named, or every registered one (listing those
    # that cannot run here as skipped)
    verify_runtimes = runtimes if args.runtimes is None else RuntimeChoice.of(
        list(runtimes.pick()[0]), runtimes.ort_options)
    folder = run_folder(args.out)
    # one line, first: scripts read the folder from it (its paths follow, one a line, at the end)
    console.print(f"lstm-bench run: writing to {folder} (earlier runs are kept)", highlight=False,
                  soft_wrap=True, markup=False)

    def step(number, text):
        interrupts.check()  # between steps: a Ctrl-C that a finalizer swallowed ends it here
        if not args.quiet:
            err.print(f"[bold]\\[{number}/4][/bold] {escape(text)} "
                      f"[dim]({time.perf_counter() - started:.1f} s)[/dim]", highlight=False)

    try:
        report, paths = pipeline(args, folder, model, runtimes, verify_runtimes, threads, step)
        interrupts.check()
    except BaseException as exc:
        if not any(folder.iterdir()):  # nothing written: leave no empty folder behind
            remove_run_folder(folder, made)
        else:  # say so in the folder itself: its report set is incomplete
            why = ("interrupted" if isinstance(exc, KeyboardInterrupt) or interrupts.received()
                   else first_line(exc))
            try:
                write_text(folder / INTERRUPTED, f"this run stopped before its reports were "
                           f"complete: {why}\n")
            except LSTMBenchError:
                pass
        raise
    print_decision(report, console)
    console.print()
    print_table(console, summary_table(report))
    print_paths(console, "reports:", [*paths, folder / "verify.json"])
    if db is not None:
        print_recorded(console, history.record(report, db, "run", args.series),
                       history.shown(db))
    console.print(f"done in {time.perf_counter() - started:.1f} s", highlight=False)
    failed = [v.runtime for v in report.verify.verdicts.values() if v.failed]
    if failed:
        console.print(f"[bold red]verification failed[/bold red] on {', '.join(failed)} "
                      f"(details in {escape(str(folder / 'verify.json'))})", highlight=False)
        return 1
    return 0
