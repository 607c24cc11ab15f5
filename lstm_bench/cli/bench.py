"""`lstm-bench bench`: latency and throughput of each runtime on one model, over a sweep."""

from __future__ import annotations

from dataclasses import replace

from lstm_bench.bench import history
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.machine import check_threads
from lstm_bench.bench.plan import RuntimeChoice, SweepPlan, quiet, sweep_shapes
from lstm_bench.bench.ci_reports import bench_markdown
from lstm_bench.bench.report import WRITERS, write_formats
from lstm_bench.bench.runner import DEFAULT_PROCESSES, MIN_SPAN_PER_PROCESS, \
    default_processes, run_plan
from lstm_bench.cli import gates, options
from lstm_bench.cli.progress import LiveDisplay
from lstm_bench.cli.terminal import print_paths, print_recorded, print_report
from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds import load_inputs
from lstm_bench.outputs import check_distinct, check_target, is_stdout, sqlite_files
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_options import parse_ort_options
from lstm_bench.verify.report import VerifySummary


def add_shape_arguments(parser) -> None:
    """--batch, --seq-len, --threads and --ort-option (shared with `compare A.onnx B.onnx` and
    `python -m tools.fidelity`)."""
    options.add_batch(parser, default=(1,))
    options.add_seq_len(parser)  # the model's: fixed, else 100
    options.add_given(parser)
    options.add_threads(parser)
    options.add_ort_option(parser)


def add_timing_arguments(parser) -> None:
    """How long and in how many blocks (see docs/bench.md, "What one figure means")."""
    d = Settings()
    parser.add_argument("--span", type=float, default=d.span, metavar="S",
                        help="seconds of wall time the blocks of each thread count are spread "
                             f"over, to see the machine's slow and fast phases (default {d.span:g})")
    parser.add_argument("--blocks", type=int, default=d.blocks,
                        help=f"blocks per runtime and shape, the unit of the statistics "
                             f"(default {d.blocks})")
    parser.add_argument("--processes", type=int, default=None,
                        help="fresh worker processes the blocks are spread over, one after "
                             f"another (default: {DEFAULT_PROCESSES} when the span gives each "
                             f"{MIN_SPAN_PER_PROCESS:g} s or more, else this process; the live "
                             "compare: this process)")
    options.add_min_time(parser, default=d.min_time, help_="seconds of timed calls per runtime "
                                                           f"and shape, at least (default {d.min_time:g})")
    parser.add_argument("--min-reps", type=options.positive_int, default=d.min_reps,
                        help=f"timed calls per runtime and shape, at least (default {d.min_reps})")
    parser.add_argument("--max-reps", type=options.positive_int, default=d.max_reps,
                        help=f"timed calls per runtime and shape, at most (default {d.max_reps})")
    parser.add_argument("--block", type=int, default=d.block,
                        help=f"timed calls per block, at least (default {d.block})")
    options.add_quiet(parser)


def add_arguments(parser) -> None:
    parser.add_argument("model", help="the ONNX model: with an LSTM node, or an LSTM cell "
                                      "unrolled or looped (timed as a whole graph, no FLOPs)")
    options.add_runtimes(parser)
    add_shape_arguments(parser)
    parser.add_argument("--inputs", metavar="F.npz", default=None,
                        help="feed these arrays (as verify does) instead of random inputs; "
                             "their shape is measured (a --batch or --seq-len beside them "
                             "must equal the file's; --seed is refused)")
    # the random inputs' seed (recorded in the report's model.inputs_fed); None: not given,
    # so that one given beside --inputs is refused
    options.add_seed(parser, default=None)
    add_timing_arguments(parser)
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip the GEMM peak calibration timed in the rotation (no "
                             "share-of-peak figures)")
    parser.add_argument("--verify-json", metavar="PATH",
                        help="a `lstm-bench verify --json` report to show beside the timings "
                             "(the HTML then plots the error per time step); refused when "
                             "it judged another model (its sha256 differs)")
    parser.add_argument("--allow-different-models", action="store_true",
                        help="use a --verify-json of a model with a different sha256")
    parser.add_argument("--json", metavar="PATH", help="write the full report (raw samples too; "
                                                       "'-': standard output)")
    parser.add_argument("--md", metavar="PATH", help="write a Markdown report ('-': standard "
                                                     "output)")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    options.add_history(parser, default_db="lstm-bench-out/history.sqlite")
    # streaming latency (bench/streaming.py)
    parser.add_argument("--streaming", action="store_true",
                        help="time one chunk per call with h and c carried between calls "
                             "(--seq-len is refused: give --chunk); a model without state inputs and outputs "
                             "is timed as its stateful variant, and the report says so")
    parser.add_argument("--chunk", default=None,
                        help="with --streaming: comma list of steps per call (default: 1)")
    options.add_state(parser)


def settings_from(args) -> Settings:
    processes = default_processes(args.span) if args.processes is None else args.processes
    return Settings(span=args.span, blocks=args.blocks, processes=processes,
                    min_time=args.min_time, min_reps=args.min_reps,
                    max_reps=max(args.max_reps, args.min_reps),
                    warmup_time=min(0.05, args.min_time / 4), block=args.block)


def sweep_lists(args) -> tuple[list[int], list[int], list[int]]:
    """(batches or None, seq_lens or None, threads) from the options, the threads checked
    against the cores."""
    # None where not given: the command's default, or what the model fixes
    return (None if args.batch is None else list(args.batch),
            None if args.seq_len is None else list(args.seq_len),
            check_threads(options.threads_or_default(args.threads)))


def display_of(args):
    """The sweep's progress display: a live one on stderr, or none with --quiet."""
    return quiet if args.quiet else LiveDisplay


def check_combinations(args) -> None:
    """Refuse options that the run would silently not use (one line, exit 2)."""
    options.refuse_with_inputs(args, {"--seed": args.seed is not None,
                                      "--shape": bool(args.shapes), "--value": bool(args.values)})
    if args.streaming:
        if args.seq_len is not None:
            raise LSTMBenchError("--seq-len does not apply to --streaming: use --chunk")
        if args.inputs:
            raise LSTMBenchError("--inputs and --streaming cannot be combined: the streaming "
                                 "bench feeds random chunks of --chunk steps")
    elif args.chunk is not None:
        raise LSTMBenchError("--chunk needs --streaming")
    elif args.states:
        raise LSTMBenchError("--state needs --streaming")


def chunks_of(args) -> list[int] | None:
    """--chunk's steps per call (with --streaming; default 1), None without --streaming."""
    if not args.streaming:
        return None
    try:  # parsed here, not by argparse: only --streaming reads it
        return options.sizes(args.chunk or "1")
    except LSTMBenchError as exc:
        raise LSTMBenchError(f"--chunk: {exc}") from None


def ab_plan(args) -> SweepPlan:
    """`compare BASE.onnx NEW.onnx`: both models in one rotation (interleaved blocks, the same
    processes), at the batches the base model is measured at (the new one must take them) and
    its sequence length, with no GEMM calibration."""
    ort_options = parse_ort_options(args.ort_options)
    batches, seq_lens, threads = sweep_lists(args)
    settings = settings_from(args)
    if args.processes is None:  # paired blocks cancel the machine: no workers needed
        settings = replace(settings, processes=1)
    models = tuple(Model.load(path).check_lstm().with_given(options.given(args))
                   for path in (args.base, args.new))
    shapes, notes = sweep_shapes(models, batches, seq_lens)
    return SweepPlan(models, RuntimeChoice.of(args.runtimes, ort_options), shapes,
                     tuple(threads), settings, calibrate=False, notes=notes,
                     command="compare", display=display_of(args))


def report_outputs(args) -> tuple[dict, str | None]:
    """--json, --md, --html and (compare's) --junit-xml checked, all but --html taking ``-``
    (standard output), and the option that writes to standard output, if one does."""
    outputs = {f"--{o}": getattr(args, o) for o in ("json", "md", "html")}
    if hasattr(args, "junit_xml"):
        outputs["--junit-xml"] = args.junit_xml
    return outputs, gates.check_outputs(outputs, takes_stdout=("--json", "--md", "--junit-xml"))


def write_outputs(writers: dict, subject, args, piped: str | None) -> list:
    """Each report asked for (``writers``: format -> renderer, as ``bench.report.WRITERS``):
    files through ``write_formats``, the one for ``-`` onto standard output. Returns the files
    written."""
    files = {o: getattr(args, o) for o in writers if not is_stdout(getattr(args, o))}
    written = write_formats(writers, subject, files)
    if piped and piped.lstrip("-") in writers:  # --junit-xml - is its own writer's
        gates.emit("-", writers[piped.lstrip("-")](subject))
    return written


def main(args) -> int:
    outputs, piped = report_outputs(args)
    db_path = None if args.no_history else history.location(args.db or history.default_db())
    # SQLite writes it in place: a regular file or none (a server's URL is no file)
    check_target(history.local_path(db_path), "--db")
    check_distinct({"MODEL": args.model, "--verify-json": args.verify_json,
                    "--inputs": args.inputs,
                    **sqlite_files("--db", history.local_path(db_path))},
                   outputs, models=("MODEL",))
    ort_options = parse_ort_options(args.ort_options)
    check_combinations(args)
    chunks = chunks_of(args)
    batches, seq_lens, threads = sweep_lists(args)
    settings = settings_from(args)
    model = Model.load(args.model).check_lstm().with_given(options.given(args))
    verify = None
    if args.verify_json:
        verify = VerifySummary.read(args.verify_json, model,
                                    allow_different_models=args.allow_different_models)
    db = None if db_path is None else history.check_db(db_path)
    fed = None if args.inputs is None else load_inputs(args.inputs, model.proto)
    shapes, notes = sweep_shapes([model], batches, chunks or seq_lens, inputs=fed)
    plan = SweepPlan((model,), RuntimeChoice.of(args.runtimes, ort_options), shapes,
                     tuple(threads), settings, inputs=fed,
                     # no FLOPs (no LSTM node): no % of peak to calibrate for
                     calibrate=not args.no_calibrate and model.flops_note is None,
                     seed=options.seed_or_default(args.seed), streaming=args.streaming,
                     notes=notes, command="bench --streaming" if args.streaming
                     else "bench", display=display_of(args))
    (doc,) = run_plan(plan, verify)
    console = gates.console_for(piped)
    print_report(doc, console)
    print_paths(console, "wrote", write_outputs(WRITERS, doc, args, piped))
    if db is not None:
        print_recorded(console, history.record(doc, db, "bench", args.series),
                       history.shown(db))
    gates.to_ci("bench", lambda: bench_markdown(doc), None, piped)
    return 0
