"""`lstm-bench run`: the whole job on the built-in seed model.

Four steps, each a function: export the seed's trained LSTM to ONNX, verify it on every
runtime against the float64 truth, benchmark every runtime that runs it over a small sweep,
and write the reports. Each run writes into a fresh timestamped folder under ``--out``, so an
earlier report is never overwritten; the folder is printed at the start and the end.
"""

from __future__ import annotations

import time
from pathlib import Path


BATCHES = (1, 8, 32)
SEQ_LEN = 100  # the seed model's sequence length
RUN_MAX_TIME = 2.0  # seconds of timed calls per runtime and shape, at most (3 calls at least)
INTERRUPTED = "INTERRUPTED"  # written into a run folder whose report set is incomplete


def add_arguments(parser) -> None:
    from lstm_bench import options

    parser.add_argument("--out", default="lstm-bench-out", metavar="DIR",
                        help="reports go to DIR/run-<timestamp>/ (default ./lstm-bench-out); "
                             f"a run that stops early leaves a file {INTERRUPTED} there")
    options.add_runtimes(parser)
    options.add_batch(parser, many=True, default=BATCHES)
    options.add_threads(parser)
    options.add_min_time(parser, default=0.2, help_="seconds of timed calls per runtime and "
                                                    "shape (default 0.2)")
    parser.add_argument("--model", metavar="MODEL.onnx",
                        help="run the job on this ONNX model instead of exporting the seed")
    options.add_quiet(parser)


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


def lstm_layer_model(model_path, folder) -> Path | None:
    """The model's first LSTM node alone, with its Y output, so that verify can show the error
    per time step (the seed's own output is one probability per sequence)."""
    import onnx

    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.graph import lstm_nodes

    nodes = lstm_nodes(onnx.load(str(model_path)))
    if not nodes or nodes[0].spec.layout:
        return None
    path = folder / "lstm-layer.onnx"
    export_weights(nodes[0].weights, path, outputs=("Y",))
    return path


def step_verify(model_path, runtimes, folder, source=None) -> dict:
    """Verify on every runtime; writes folder/verify.json; returns the report as a dict.
    ``source``: the checkpoint the model was exported from, verified too as torch-source.

    The LSTM layer alone is verified too (folder/verify-lstm-layer.json) at batch 8: its
    error per time step is what the report's drift plot shows."""
    from lstm_bench.runtimes.verify import verify, write_json

    report = verify(model_path, runtimes=runtimes, batch=1, source=source)
    write_json(report, folder / "verify.json")
    result = report.to_dict()
    layer = lstm_layer_model(model_path, folder)
    if layer is not None:
        layer_report = verify(layer, runtimes=runtimes, batch=8,
                              seq_len=result["inputs"].get("seq_len") or SEQ_LEN, streaming=False)
        write_json(layer_report, folder / "verify-lstm-layer.json")
        result["lstm_layer"] = layer_report.to_dict()
    return result


def step_bench(model_path, args, verify: dict, batches, threads) -> dict:
    """The sweep: every batch at the model's sequence length; returns the report document."""
    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.report import verify_section
    from lstm_bench.bench.runner import run_bench

    # max_time bounds a runtime that turns slow (torch's per-step OpenMP barrier on a busy
    # machine reached 0.4 s a call here) so that the whole run stays near a minute.
    settings = Settings(min_time=args.min_time, warmup_time=min(0.05, args.min_time / 4),
                        max_time=RUN_MAX_TIME)
    section = verify_section(verify)
    if verify.get("lstm_layer"):
        # The drift curve comes from the LSTM layer's Y: the seed's output has no time axis.
        layer = verify_section(verify["lstm_layer"])["runtimes"]
        for name, entry in section["runtimes"].items():
            entry["per_step_max_abs_error"] = (layer.get(name) or {}).get("per_step_max_abs_error")
        section["per_step_model"] = "the model's LSTM layer alone (output Y, batch 8)"
    doc = run_bench(model_path, runtimes=args.runtimes, batches=batches,
                    seq_lens=(verify["inputs"]["seq_len"] or SEQ_LEN,), threads_list=threads,
                    settings=settings, verify=section, show_progress=not args.quiet)
    # and the latency of streaming it, one step per call with h and c carried (bench/streaming.py)
    from lstm_bench.bench.streaming import add_streaming

    return add_streaming(doc, model_path, runtimes=args.runtimes, threads_list=threads,
                         settings=settings, show_progress=not args.quiet)


def step_reports(doc, folder) -> list:
    from lstm_bench.bench.report import render_html, render_markdown, write_json, write_text

    return [write_json(doc, folder / "bench.json"),
            write_text(folder / "bench.md", render_markdown(doc)),
            write_text(folder / "bench.html", render_html(doc))]


def summary_table(doc):
    """One line per runtime: verify verdict, error, latency at batch 1, best throughput."""
    from rich.table import Table

    verify = (doc.get("verify") or {}).get("runtimes", {})
    rows: dict[str, dict] = {}
    sequence_rows = [r for r in doc["results"] if r.get("mode") != "streaming"]
    for row in sequence_rows:
        entry = rows.setdefault(row["runtime"], {"latency": {}, "throughput": 0.0})
        entry["latency"][row["batch"]] = row["latency_ms"]["median"]
        entry["throughput"] = max(entry["throughput"], row["throughput"]["sequences_per_s"])
    smallest = min((r["batch"] for r in sequence_rows), default=1)
    table = Table(title="lstm-bench run: summary", header_style="bold")
    for i, col in enumerate(("runtime", "verify", "max abs error",
                             f"median ms (batch {smallest})", "best sequences/s")):
        table.add_column(col, justify="left" if i < 2 else "right")
    names = list(dict.fromkeys(list(rows) + list(verify)))
    styles = {"pass": "green", "fail": "bold red", "error": "bold red", "skip": "dim"}
    for name in names:
        v = verify.get(name, {})
        status = v.get("status") or "–"
        err = v.get("max_abs_error")
        r = rows.get(name)
        shown = f"[{styles[status]}]{status}[/]" if status in styles else status
        table.add_row(name, shown,
                      "–" if err is None else f"{err:.1e}",
                      f"{r['latency'][smallest]:.4g}" if r and smallest in r["latency"] else "–",
                      f"{r['throughput']:,.0f}" if r else "–")
    return table


def pipeline(args, folder, runtimes, batches, threads, step):
    """The four steps; returns the bench document, the verify report (a dict), the paths."""
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
                         source=None if args.model else export["source"])
    step(3, "benchmarking")
    doc = step_bench(model_path, args, verify, batches, threads)
    if not args.model:
        doc["export"] = export
    step(4, "writing reports")
    paths = step_reports(doc, folder)
    return doc, verify, paths


def main(args) -> int:
    from rich.markup import escape

    from lstm_bench.bench.report import make_console
    from lstm_bench.bench.runner import pick_runtimes
    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.options import threads_or_default

    started = time.perf_counter()
    console = make_console()
    err = make_console(stderr=True)
    batches = args.batch
    threads = threads_or_default(args.threads)
    names = list(pick_runtimes(args.runtimes)[0]) if args.runtimes is not None else None
    if args.model and not Path(args.model).is_file():
        raise LSTMBenchError(f"{args.model}: no such model file")
    if not args.model:
        seed_exporter()  # fail before any folder is made
    folder = run_folder(args.out)
    console.print(f"lstm-bench run: writing to {folder} (earlier runs are kept)", highlight=False,
                  markup=False)

    def step(number, text):
        if not args.quiet:
            err.print(f"[bold]\\[{number}/4][/bold] {escape(text)} "
                      f"[dim]({time.perf_counter() - started:.1f} s)[/dim]", highlight=False)

    try:
        doc, verify, paths = pipeline(args, folder, names, batches, threads, step)
    except BaseException as exc:
        if not any(folder.iterdir()):  # nothing written: leave no empty folder behind
            folder.rmdir()
        else:  # say so in the folder itself: its report set is incomplete
            from lstm_bench.errors import first_line
            from lstm_bench.files import write_text

            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else first_line(exc)
            try:
                write_text(folder / INTERRUPTED, f"this run stopped before its reports were "
                           f"complete: {why}\n")
            except LSTMBenchError:
                pass
        raise
    console.print(summary_table(doc))
    for skip in doc.get("skipped", []):
        console.print(f"[dim]skipped {skip['runtime']}: {escape(skip['reason'])}[/dim]",
                      highlight=False)
    console.print("reports: " + ", ".join(str(p) for p in paths)
                  + f", {folder / 'verify.json'}", highlight=False, markup=False)
    console.print(f"done in {time.perf_counter() - started:.1f} s", highlight=False)
    layer_failed = [f"{r['runtime']} ({max(o['max_abs'] for o in r['outputs']):.2g})"
                    for r in (verify.get("lstm_layer") or {}).get("results", [])
                    if r.get("status") == "fail" and r.get("outputs")]
    if layer_failed:
        console.print("[yellow]note:[/yellow] the LSTM layer's hidden states (Y, batch 8) exceed "
                      f"the tolerance on {', '.join(layer_failed)}, though the model's output "
                      f"passes; details in {escape(str(folder / 'verify-lstm-layer.json'))}",
                      highlight=False)
    failed = [r["runtime"] for r in verify.get("results", [])
              if r.get("status") in ("fail", "error")]
    if failed:
        console.print(f"[bold red]verification failed[/bold red] on {', '.join(failed)} "
                      f"(details in {escape(str(folder / 'verify.json'))})", highlight=False)
        return 1
    return 0
