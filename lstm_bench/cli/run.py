"""`lstm-bench run`: the whole job on the built-in seed model.

Four steps, each a function: export the seed's trained LSTM to ONNX, verify it on every
runtime against the float64 truth, benchmark every runtime that runs it over a small sweep,
and write the reports. Each run writes into a fresh timestamped folder under ``--out``, so an
earlier report is never overwritten; the folder is printed at the start and the end.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lstm_bench.bench.runner import check_memory, fit_batches, pick_runtimes, \
    requested_runtimes
from lstm_bench.cli.progress import LiveDisplay


BATCHES = (1, 8, 32)
SEQ_LEN = 100  # the seed model's sequence length
RUN_MAX_TIME = 2.0  # seconds of timed calls per runtime and shape, at most (3 calls at least)
INTERRUPTED = "INTERRUPTED"  # written into a run folder whose report set is incomplete


def add_arguments(parser) -> None:
    from lstm_bench.cli import options

    parser.add_argument("--out", default="lstm-bench-out", metavar="DIR",
                        help="reports go to DIR/run-<timestamp>/ (default ./lstm-bench-out); "
                             f"a run that stops early leaves a file {INTERRUPTED} there")
    options.add_runtimes(parser)
    options.add_batch(parser, many=True, default=BATCHES)
    options.add_threads(parser)
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
    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.files import check_writable

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
    from lstm_bench.errors import LSTMBenchError

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


def check_seed_batches(batches) -> None:
    """The seed's input at each batch within the size limit (``BenchModel.check_shapes`` for
    the model that is not exported yet): a batch too large fails before the export."""
    import numpy as np

    from lstm_bench import seed
    from lstm_bench.files import check_array_size

    for batch in batches:
        check_array_size((batch, seed.SEQ_LEN, seed.INPUT_SIZE), np.float32, f"--batch {batch}")


def seed_exporter():
    """(shipped checkpoint path, export_source), or a clear error while they are missing."""
    from lstm_bench.errors import LSTMBenchError

    try:
        from lstm_bench.seed import shipped_checkpoint
        from lstm_bench.exporters.source import export_source
    except ImportError as exc:
        raise LSTMBenchError(f"the seed model exporter is not available ({exc}); "
                             "pass --model MODEL.onnx") from None
    return shipped_checkpoint, export_source


def step_export(folder) -> tuple[Path, dict]:
    """The shipped seed checkpoint, exported to folder/seed.onnx and proven against torch."""
    shipped_checkpoint, export_source = seed_exporter()
    result = export_source(shipped_checkpoint(), folder / "seed.onnx")
    return result.path, {"source": str(result.source), "exporter": result.exporter,
                         "compared_with": result.reference,
                         "max_abs_error": result.max_abs_error,
                         "check_shape": list(result.check_shape), "passed": result.passed}


def step_verify(model_path, runtimes, folder, source=None, ort_options=None):
    """Verify on every runtime (folder/verify.json). verify judges the model's LSTM layer alone
    too (batch 8): its hidden states show the drift over time that the seed's one-probability
    output hides, and count in each runtime's one verdict. Returns the ``VerifySummary``.
    ``source``: the checkpoint the model was exported from, run as torch-source.
    """
    from lstm_bench.bench.report import VerifySummary
    from lstm_bench.files import write_json
    from lstm_bench.verify.run import verify

    report = verify(model_path, runtimes=runtimes, source=source,  # batch 1, or the model's
                    ort_options=ort_options)
    write_json(folder / "verify.json", report.to_dict())
    return VerifySummary.of(report)


def run_settings(args):
    """The harness settings of the bench step (checked in ``main`` before any work)."""
    from lstm_bench.bench.harness import Settings

    # max_time bounds a runtime that turns slow (torch's per-step OpenMP barrier on a busy
    # machine reached 0.4 s a call here) so that the whole run stays near a minute.
    return Settings(span=args.span, min_time=args.min_time,
                    warmup_time=min(0.05, args.min_time / 4), max_time=RUN_MAX_TIME)


def step_bench(model_path, args, verify, batches, threads, ort_options=None):
    """The sweep: every batch at the model's sequence length; returns the ``BenchReport``."""
    from lstm_bench.bench.runner import run_bench

    settings = run_settings(args)
    report = run_bench(model_path, runtimes=args.runtimes, batches=batches,
                       seq_lens=(verify.inputs.get("seq_len") or SEQ_LEN,), threads_list=threads,
                       settings=settings, verify=verify, display=None if args.quiet else LiveDisplay,
                       ort_options=ort_options, default_batches=BATCHES)
    # and the latency of streaming it, one step per call with h and c carried (bench/streaming.py)
    from lstm_bench.bench.streaming import add_streaming

    return add_streaming(report, model_path, runtimes=args.runtimes, threads_list=threads,
                         settings=settings, display=None if args.quiet else LiveDisplay,
                         ort_options=ort_options)


def summary_table(report):
    """One line per runtime: one verdict with both checks' errors, latency at the smallest
    batch, best throughput. Fits 80 columns."""
    from rich import box
    from rich.table import Table

    from lstm_bench.bench.decision import row_field

    verdicts = report.verify.verdicts if report.verify else {}
    latency: dict[str, dict] = {}
    best: dict[str, float] = {}
    # whole sequences only: the streaming rows' figures are per call of a chunk
    sequence = [m for m in report.measurements if row_field(m, "mode") != "streaming"]
    for m in sequence:
        latency.setdefault(m.runtime, {}).setdefault(m.batch, m.stats.median)
        latency[m.runtime][m.batch] = min(latency[m.runtime][m.batch], m.stats.median)
        best[m.runtime] = max(best.get(m.runtime, 0.0), m.sequences_per_s)
    smallest = min((m.batch for m in sequence), default=1)
    names = list(dict.fromkeys(list(latency) + list(verdicts)))
    table = Table(title="summary: one verdict per runtime", header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    table.add_column("runtime", no_wrap=True, min_width=max(map(len, names or ["runtime"])))
    table.add_column("verify", no_wrap=True)
    for col in ("model err", "layer err", f"ms b={smallest}", "best seq/s"):
        table.add_column(col, justify="right", no_wrap=True)
    styles = {"pass": "green", "fail": "bold red", "error": "bold red", "skip": "dim",
              "drift": "yellow"}

    def err(value):
        if value is None:
            return "–"
        return "non-finite" if value == float("inf") else f"{value:.1e}"

    for name in names:
        v = verdicts.get(name)
        status = v.status if v else "–"
        shown = f"[{styles[status]}]{status}[/]" if status in styles else status
        table.add_row(name, shown, err(v and v.max_abs_error),
                      err(v and v.layer_max_abs_error),
                      f"{latency[name][smallest]:.4g}" if smallest in latency.get(name, {}) else "–",
                      f"{best[name]:,.0f}" if name in best else "–")
    return table


def pipeline(args, folder, runtimes, batches, threads, step, ort_options=None):
    """The four steps; returns the ``BenchReport`` and the paths written."""
    from lstm_bench.bench.report import write_reports

    if args.model:
        step(1, f"using {args.model} (no export)")
        model_path = Path(args.model)
    else:
        step(1, "exporting the seed model to ONNX and proving it against torch")
        model_path, export = step_export(folder)
        step(1, f"export max abs error vs {export['compared_with']}: "
                f"{export['max_abs_error']:.2e} ({export['exporter']})")
    step(2, "verifying on every runtime against the float64 reference")
    verify = step_verify(model_path, runtimes, folder,
                         source=None if args.model else export["source"], ort_options=ort_options)
    step(3, "benchmarking")
    report = step_bench(model_path, args, verify, batches, threads, ort_options)
    if not args.model:
        report.export = export
    step(4, "writing reports")
    paths = write_reports(report, json=folder / "bench.json", md=folder / "bench.md",
                          html=folder / "bench.html")
    return report, paths


def main(args) -> int:
    from rich.markup import escape

    from lstm_bench import interrupts
    from lstm_bench.bench import history
    from lstm_bench.bench.machine import check_threads
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.cli.terminal import make_console, print_decision, print_paths, \
        print_recorded
    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.cli.options import threads_or_default
    from lstm_bench.runtimes.ort_options import parse_ort_options

    started = time.perf_counter()
    console = make_console()
    err = make_console(stderr=True)
    batches = args.batch
    threads = threads_or_default(args.threads)
    # Bad input fails here, before any folder is made: nothing is left behind.
    ort_options = parse_ort_options(args.ort_options)
    check_threads(threads)
    run_settings(args)
    model = None  # the seed's sizes are known without exporting it
    if args.model:  # readable, within the limits, with an LSTM node, feedable at each batch
        model = BenchModel(args.model)
        model.check_shapes([(batch, None) for batch in fit_batches(model, batches, BATCHES)[0]])
    else:
        seed_exporter()
        check_seed_batches(batches or BATCHES)
    made = check_out(args.out)
    # checked, not created: record() makes it once there is a result
    db = None if args.no_history else history.check_db(args.db or history.default_db(args.out))
    check_run_memory(model, batches, args.runtimes)  # the sweep's feeds fit
    # last: checking that a runtime is available loads its library (onnxruntime and OpenVINO
    # write telemetry files into $HOME as they load), so only once all else is known good
    names = list(pick_runtimes(args.runtimes)[0]) if args.runtimes is not None else None
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
        report, paths = pipeline(args, folder, names, batches, threads, step, ort_options)
        interrupts.check()
    except BaseException as exc:
        if not any(folder.iterdir()):  # nothing written: leave no empty folder behind
            remove_run_folder(folder, made)
        else:  # say so in the folder itself: its report set is incomplete
            from lstm_bench.errors import first_line
            from lstm_bench.files import write_text

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
    console.print(summary_table(report))
    print_paths(console, "reports:", [*paths, folder / "verify.json"])
    if db is not None:
        print_recorded(console, history.record(report, db, "run"), db)
    console.print(f"done in {time.perf_counter() - started:.1f} s", highlight=False)
    failed = [v.runtime for v in report.verify.verdicts.values() if v.failed]
    if failed:
        console.print(f"[bold red]verification failed[/bold red] on {', '.join(failed)} "
                      f"(details in {escape(str(folder / 'verify.json'))})", highlight=False)
        return 1
    return 0


class SeedSizes:
    """The seed model as ``check_memory`` sizes it before `lstm-bench run` exports it: one
    LSTM over X [batch, SEQ_LEN, INPUT_SIZE] of float32 (``lstm_bench.seed``)."""

    def __init__(self):
        from pathlib import Path

        from lstm_bench.seed import HIDDEN_SIZE, INPUT_SIZE, SEQ_LEN

        self.path, self.seq_len = Path("seed.onnx"), SEQ_LEN
        self.layer_sizes = [(INPUT_SIZE, HIDDEN_SIZE, 1)]

    def feed_bytes(self, batch: int, seq_len: int) -> int:
        return 4 * batch * seq_len * self.layer_sizes[0][0]

    def output_bytes(self, batch: int, seq_len: int) -> int:
        from lstm_bench.bench.model import output_bytes

        return output_bytes(self.layer_sizes, batch, seq_len)


def check_run_memory(model, batches, runtimes) -> None:
    """`lstm-bench run`'s sweep (``batches`` at the model's sequence length, None: run's
    default) checked by ``check_memory`` before its folder is made, a batch the model cannot
    take refused; ``model``: the ``BenchModel`` run has read, None for the seed."""
    from lstm_bench.feeds import fed_seq_len

    if model is None:
        model = SeedSizes()
        seq_len = model.seq_len
        batches = list(batches or BATCHES)
    else:
        seq_len = fed_seq_len(model.proto)
        batches, _ = fit_batches(model, batches, BATCHES)
    check_memory([model], [(b, seq_len) for b in batches], len(requested_runtimes(runtimes)),
                 "run")
