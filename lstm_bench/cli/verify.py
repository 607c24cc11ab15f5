"""``lstm-bench verify``: one model on every runtime, judged against the float64 truth.

Exit 0 when every runtime that ran passes, 1 when any fails (each failure printed with its
runtime, output, metric, value and limit) or the file's outputs do not follow its inputs at a
second length and batch (``verify.baked``), 2 for bad input. A runtime whose model output passes
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
from lstm_bench.verify.state_pairs import check_given_states
from lstm_bench.verify.verdict import DRIFT, DRIFT_MEANING, SKIP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model to verify")
    options.add_runtimes(parser)
    options.add_batch(parser, many=False, default=1)
    options.add_seq_len(parser, many=False, default=None)
    options.add_given(parser)
    options.add_state(parser)
    parser.add_argument("--inputs", metavar="FILE.npz",
                        help="feeds from an .npz, one array per model input (checked); "
                             "--batch/--seq-len must then equal its shape or be left out, "
                             "and --seed, --range, --ragged are refused")
    options.add_seed(parser, default=None)  # None: not given (refused with --inputs)
    parser.add_argument("--range", dest="value_range", type=options.value_range,
                        default=None, metavar="LOW,HIGH",
                        help="range of random float inputs (default -1,1)")
    parser.add_argument("--ragged", action="store_true",
                        help="random sequence_lens in 1..seq_len (without --batch: batch 2, the "
                             "smallest that can be ragged, or the model's own)")
    parser.add_argument("--zero-length", action="store_true",
                        help="with --ragged, make one sequence of length 0")
    parser.add_argument("--no-streaming", dest="streaming", action="store_false",
                        help="skip the chunked-vs-whole check on models with state inputs")
    parser.add_argument("--source", metavar="CHECKPOINT",
                        help="the train checkpoint (.pt) the model was exported from: also run "
                             "its torch module, as runtime torch-source")
    options.add_ort_option(parser)
    parser.add_argument("--no-second-shape", dest="second_shape", action="store_false",
                        help="do not also run the model at a second length and batch "
                             "(onnxruntime CPU) to catch an export that baked its example's "
                             "shape into its outputs")
    parser.add_argument("--no-lstm-layer", dest="lstm_layer", action="store_false",
                        help="do not also judge each of the model's LSTM layers alone (batch "
                             "8, at the steps each sees) where the model wraps them")
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
    if report.model.no_lstm_note:  # judged as a whole graph: no LSTM layer check, no drift
        console.print(f"note: {report.model.no_lstm_note}", highlight=False, markup=False)
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
    render_second_shape(report.second_shape, console)


def render_second_shape(second, console) -> None:
    """The file at a second length and batch (``verify.baked``), a section of its own: what
    moved, then each finding, or that every output follows its inputs."""
    if second is None:
        return
    if second.moves or second.findings:
        how = "; ".join(x for x in (second.moved_text(), second.checked_by) if x)
        verdict = ("its outputs do not follow its inputs" if second.findings
                   else "every output follows its inputs")
        console.print(f"the file at a second shape{f' ({how})' if how else ''}: {verdict}",
                      highlight=False, markup=False)
    for finding in second.findings:
        console.print(f"FAIL file: {finding.message}", highlight=False, markup=False)
    if second.note:
        console.print(f"second shape: {second.note}", highlight=False, markup=False)


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
                                      "--ragged": args.ragged,
                                      "--shape": bool(args.shapes), "--value": bool(args.values)})
    names = list(RUNTIMES) if args.runtimes is None else list(args.runtimes)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise LSTMBenchError(f"unknown runtime(s) {unknown}; known: {', '.join(RUNTIMES)}")
    plan = VerifyPlan(make_factories(names, ort_options), batch=args.batch, seq_len=args.seq_len,
                      inputs=args.inputs, seed=options.seed_or_default(args.seed),
                      value_range=args.value_range or (-1.0, 1.0), ragged=args.ragged,
                      zero_length=args.zero_length, streaming=args.streaming, source=args.source,
                      lstm_layer_batch=8 if args.lstm_layer else None,
                      second_shape=args.second_shape)
    if args.states and not args.streaming:
        raise LSTMBenchError("--state is for the streaming check, which --no-streaming skips")
    model = Model.load(args.model).check_lstm().with_given(options.given(args))
    check_given_states(model.proto, model.given)  # --state names what the model has
    report = verify(model, plan)
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
    for note in sorted({r.streaming.note for r in ran if r.streaming is not None
                        and r.streaming.status != SKIP and r.streaming.note}):
        console.print(f"streaming check: {note}", highlight=False, markup=False)
    for name, reason in report.skipped.items():
        console.print(f"skipped {name}: {reason}", highlight=False, markup=False)
    drifted = [r for r in ran if r.status == DRIFT]
    for result in drifted:
        console.print(f"DRIFT {result.runtime}: {result.sentence().removeprefix(DRIFT + ': ')}",
                      highlight=False, markup=False)
    failed = [r for r in ran if r.failed]
    file_failed = "" if report.file_ok else (
        f"the file fails: {len(report.second_shape.findings)} finding(s) at a second shape "
        "(above); ")
    if failed:
        for failure in (f for r in failed for f in r.failures):
            console.print(f"FAIL {failure}", highlight=False, markup=False)
        console.print(f"{file_failed}{len(failed)} of {len(ran)} runtime(s) failed",
                      highlight=False)
        return 1
    if file_failed:
        console.print(f"{file_failed}none of the {len(ran)} runtime(s) that ran failed",
                      highlight=False)
        return 1
    if drifted:
        console.print(f"none of the {len(ran)} runtime(s) that ran failed: "
                      f"{len(ran) - len(drifted)} pass, {len(drifted)} drift ({DRIFT_MEANING})",
                      highlight=False)
    else:
        console.print(f"all {len(ran)} runtime(s) that ran passed", highlight=False)
    return 0
