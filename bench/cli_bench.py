"""`lstm-bench bench`: latency and throughput of each runtime on one model, over a sweep."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from lstm_bench import options

    parser.add_argument("model", help="the ONNX model (with at least one LSTM node)")
    options.add_runtimes(parser)
    options.add_batch(parser, many=True, default=(1,))
    options.add_seq_len(parser, many=True, default=[100])
    parser.add_argument("--inputs", metavar="F.npz", default=None,
                        help="feed these arrays (as verify does) instead of random inputs; "
                             "their shape replaces --batch and --seq-len")
    options.add_threads(parser)
    options.add_min_time(parser, default=0.2, help_="seconds of timed calls per runtime and "
                                                    "shape, at least (default 0.2)")
    parser.add_argument("--min-reps", type=int, default=10,
                        help="timed calls per runtime and shape, at least (default 10)")
    parser.add_argument("--max-reps", type=int, default=10_000,
                        help="timed calls per runtime and shape, at most (default 10000)")
    parser.add_argument("--block", type=int, default=5,
                        help="timed calls per runtime in each round-robin round (default 5; 1: "
                             "call by call; more keeps runtimes' spinning thread pools apart)")
    parser.add_argument("--ort-option", dest="ort_options", action="append", default=[],
                        metavar="KEY=VALUE", help="an onnxruntime session option for every "
                        "onnxruntime-based runtime, recorded in each row (repeatable; see "
                        "`lstm-bench verify --help`), e.g. intra_op_spinning=0")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="skip the GEMM peak measurement (no share-of-peak figures)")
    parser.add_argument("--verify-json", metavar="PATH",
                        help="a `lstm-bench verify --json` report to show beside the timings "
                             "(the HTML then plots the error per time step)")
    parser.add_argument("--json", metavar="PATH", help="write the full report (raw samples too)")
    parser.add_argument("--md", metavar="PATH", help="write a Markdown report")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    options.add_quiet(parser)
    # streaming latency (bench/streaming.py)
    parser.add_argument("--streaming", action="store_true",
                        help="time one chunk per call with h and c carried between calls "
                             "(--seq-len is not used); a model without state inputs and outputs "
                             "is timed as its stateful variant, and the report says so")
    parser.add_argument("--chunk", default="1",
                        help="with --streaming: comma list of steps per call (default: 1)")


def settings_from(args):
    from lstm_bench.bench.harness import Settings

    return Settings(min_time=args.min_time, min_reps=args.min_reps,
                    max_reps=max(args.max_reps, args.min_reps),
                    warmup_time=min(0.05, args.min_time / 4), block=args.block)


def write_reports(doc, args, console) -> None:
    from lstm_bench.bench.report import render_html, render_markdown, write_json, write_text

    for option, write in (("json", lambda p: write_json(doc, p)),
                          ("md", lambda p: write_text(p, render_markdown(doc))),
                          ("html", lambda p: write_text(p, render_html(doc)))):
        path = getattr(args, option)
        if path:
            console.print(f"wrote {write(path)}", highlight=False)


def main(args) -> int:
    from lstm_bench import options
    from lstm_bench.bench.report import make_console, print_terminal
    from lstm_bench.bench.runner import run_bench
    from lstm_bench.files import check_distinct, check_writable, read_json
    from lstm_bench.options import threads_or_default

    for option in ("json", "md", "html"):
        check_writable(getattr(args, option), f"--{option}")
    check_distinct({"MODEL": args.model, "--verify-json": args.verify_json,
                    "--inputs": args.inputs},
                   {f"--{o}": getattr(args, o) for o in ("json", "md", "html")})
    if args.min_reps < 1 or args.max_reps < 1 or args.block < 1:
        from lstm_bench.errors import LSTMBenchError

        raise LSTMBenchError("--min-reps, --max-reps and --block must be at least 1")
    from lstm_bench.runtimes.ort_options import parse_ort_options

    ort_options = parse_ort_options(args.ort_options)
    verify = None
    if args.verify_json:
        from lstm_bench.bench.report import verify_section

        verify = verify_section(read_json(args.verify_json, "verify report"))
    threads = threads_or_default(args.threads)
    if args.streaming:  # streaming latency (bench/streaming.py)
        from lstm_bench.bench.streaming import run_streaming
        from lstm_bench.errors import LSTMBenchError

        if args.inputs:
            raise LSTMBenchError("--inputs and --streaming cannot be combined: the streaming "
                                 "bench feeds random chunks of --chunk steps")
        try:  # parsed here, not by argparse: only --streaming reads it
            chunks = options.sizes(args.chunk)
        except LSTMBenchError as exc:
            raise LSTMBenchError(f"--chunk: {exc}") from None
        doc = run_streaming(args.model, runtimes=args.runtimes, batches=args.batch,
                            chunks=chunks, threads_list=threads,
                            settings=settings_from(args), verify=verify,
                            calibrate=not args.no_calibrate, show_progress=not args.quiet,
                            ort_options=ort_options)
    else:
        doc = run_bench(args.model, runtimes=args.runtimes, batches=args.batch,
                        seq_lens=args.seq_len, threads_list=threads,
                        settings=settings_from(args), verify=verify,
                        calibrate=not args.no_calibrate, show_progress=not args.quiet,
                        ort_options=ort_options, inputs=args.inputs)
    console = make_console()
    print_terminal(doc, console)
    write_reports(doc, args, console)
    return 0

