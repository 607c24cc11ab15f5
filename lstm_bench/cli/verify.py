"""``lstm-bench verify``: one model on every runtime, judged against the float64 truth.

Exit 0 when every runtime that ran passes, 1 when any fails (each failure printed with its
runtime, output, metric, value and limit), 2 for bad input. A runtime whose model output passes
but whose LSTM layer alone is beyond the tolerance is ``drift``: stated (both figures), not a
failure. Skipped runtimes are listed with their reason. No torch or onnxruntime at import: they
load when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lstm_bench.cli import options
from lstm_bench.bench.tables import named_outputs, verdicts_table
from lstm_bench.cli.terminal import make_console, print_table
from lstm_bench.errors import LSTMBenchError
from lstm_bench.outputs import check_distinct, check_writable
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_options import parse_ort_options
from lstm_bench.runtimes.registry import RUNTIMES, make_factories
from lstm_bench.verify.run import VerifyPlan, verify
from lstm_bench.verify.sensitivity import widened_note
from lstm_bench.verify.verdict import DRIFT, DRIFT_MEANING, SKIP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model to verify")
    options.add_runtimes(parser)
    options.add_batch(parser, many=False, default=1)
    options.add_seq_len(parser, many=False, default=None)
    parser.add_argument("--inputs", metavar="FILE.npz",
                        help="feeds from an .npz, one array per model input (checked); "
                             "--batch/--seq-len must then equal its shape or be left out, "
                             "and --seed, --range, --ragged are refused")
    options.add_seed(parser, default=None)  # None: not given (refused with --inputs)
    parser.add_argument("--range", dest="value_range", type=options.value_range,
                        default=None, metavar="LOW,HIGH",
                        help="range of random float inputs (default -1,1)")
    parser.add_argument("--ragged", action="store_true",
                        help="random sequence_lens in 1..seq_len (needs --batch >= 2)")
    parser.add_argument("--zero-length", action="store_true",
                        help="with --ragged, make one sequence of length 0")
    parser.add_argument("--no-streaming", dest="streaming", action="store_false",
                        help="skip the chunked-vs-whole check on models with state inputs")
    parser.add_argument("--source", metavar="CHECKPOINT",
                        help="the train checkpoint (.pt) the model was exported from: also run "
                             "its torch module, as runtime torch-source")
    options.add_ort_option(parser)
    parser.add_argument("--no-lstm-layer", dest="lstm_layer", action="store_false",
                        help="do not also judge the model's first LSTM layer alone (batch 8) "
                             "where the model wraps it")
    parser.add_argument("--json", metavar="PATH", help="write the full report as JSON")


def render(report, console) -> None:
    """The verdicts as a table that fits the console (``bench.tables.verdicts_table``), then
    each runtime's reason and notes below it, hanging."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    inputs = report.inputs
    console.print(f"[bold]verify {escape(str(report.model))}[/bold] (batch {inputs['batch']}, seq_len "
                  f"{inputs['seq_len']}, inputs: {escape(str(inputs['source']))})", highlight=False)
    print_table(console, verdicts_table(report))
    notes_of = {}
    for result in report.results:
        # a skip's reason is printed once, under the table, by main
        notes = ([result.reason] if result.reason and result.status != SKIP else []) \
            + list(result.notes)
        if result.streaming is not None and result.streaming.status != "skip":
            s = result.streaming
            notes.append(f"streaming {s.status} (chunks {s.chunks}: max abs "
                         f"{max(s.max_abs.values()):.1e})")
        widened = [(name, o) for name, o in named_outputs(result) if o.float32_floor is not None]
        if widened:
            notes.append(f"limit of {', '.join(name for name, _ in widened)} "
                         f"{widened_note([o for _, o in widened], result.runtime)}")
        if notes:
            notes_of[result.runtime] = notes
    if notes_of:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for name, notes in notes_of.items():
            grid.add_row(Text(name, style="bold"), Text("; ".join(notes)))
        console.print(grid)


def checkpoint_files(label: str, path) -> dict:
    """A train checkpoint's two files (NAME.pt and NAME.json, either named), as inputs of
    ``check_distinct``: an output may replace neither."""
    if path is None:
        return {}
    pt = Path(path).with_suffix(".pt") if Path(path).suffix == ".json" else Path(path)
    return {label: Path(path), f"{label}'s checkpoint {pt.name}": pt,
            f"{label}'s config {pt.with_suffix('.json').name}": pt.with_suffix(".json")}


def main(args) -> int:
    check_writable(args.json, "--json")
    check_distinct({"MODEL": args.model, "--inputs": args.inputs,
                    **checkpoint_files("--source", args.source)}, {"--json": args.json},
                   models=("MODEL",))
    ort_options = parse_ort_options(args.ort_options)
    if args.zero_length and not args.ragged:
        raise LSTMBenchError("--zero-length needs --ragged")
    options.refuse_with_inputs(args, {"--seed": args.seed is not None,
                                      "--range": args.value_range is not None,
                                      "--ragged": args.ragged})
    names = list(RUNTIMES) if args.runtimes is None else list(args.runtimes)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise LSTMBenchError(f"unknown runtime(s) {unknown}; known: {', '.join(RUNTIMES)}")
    plan = VerifyPlan(make_factories(names, ort_options), batch=args.batch, seq_len=args.seq_len,
                      inputs=args.inputs, seed=options.seed_or_default(args.seed),
                      value_range=args.value_range or (-1.0, 1.0), ragged=args.ragged,
                      zero_length=args.zero_length, streaming=args.streaming, source=args.source,
                      lstm_layer_batch=8 if args.lstm_layer else None)
    report = verify(Model.load(args.model).check_lstm(), plan)
    console = make_console()  # names from the model and paths shown, never obeyed
    render(report, console)
    if args.json:
        report.write(args.json)
        console.print(f"report written to {args.json}", markup=False)
    ran = [r for r in report.results if r.status != SKIP]
    stream_skips = {r.streaming.reason for r in ran if r.streaming is not None
                    and r.streaming.status == SKIP}
    for reason in sorted(stream_skips):
        console.print(f"streaming check skipped: {reason}", highlight=False, markup=False)
    for name, reason in report.skipped.items():
        console.print(f"skipped {name}: {reason}", highlight=False, markup=False)
    drifted = [r for r in ran if r.status == DRIFT]
    for result in drifted:
        console.print(f"DRIFT {result.runtime}: {result.sentence().removeprefix(DRIFT + ': ')}",
                      highlight=False, markup=False)
    failed = [r for r in ran if r.failed]
    if failed:
        for failure in (f for r in failed for f in r.failures):
            console.print(f"FAIL {failure}", highlight=False, markup=False)
        console.print(f"{len(failed)} of {len(ran)} runtime(s) failed", highlight=False)
        return 1
    if drifted:
        console.print(f"none of the {len(ran)} runtime(s) that ran failed: "
                      f"{len(ran) - len(drifted)} pass, {len(drifted)} drift ({DRIFT_MEANING})",
                      highlight=False)
    else:
        console.print(f"all {len(ran)} runtime(s) that ran passed", highlight=False)
    return 0
