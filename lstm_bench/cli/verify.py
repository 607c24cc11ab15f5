"""``lstm-bench verify``: one model on every runtime, judged against the float64 truth.

Exit 0 when every runtime that ran passes, 1 when any fails (each failure printed with its
runtime, output, metric, value and limit) or the file's outputs do not follow its inputs at a
second length and batch (``verify.baked``), 2 for bad input. A runtime whose model output passes
but whose LSTM layer alone is beyond the tolerance is ``drift``: stated (both figures), not a
failure. Skipped runtimes are listed with their reason. No torch or onnxruntime at import: they
load when the command runs.

``--batch``, ``--seq-len`` and ``--threads`` take lists, as bench's: verify runs at every
combination, and fails when any run fails. ``--json`` and ``--junit-xml`` take ``-`` for
standard output; in GitHub Actions the verdicts go to the step summary and a failure is an
``::error`` annotation (``lstm_bench.cli.gates``, docs/ci.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from lstm_bench.bench.ci_reports import verify_failure_text, verify_markdown, verify_suite
from lstm_bench.bench.machine import check_threads
from lstm_bench.bench.tables import named_outputs, verdicts_table
from lstm_bench.cli import gates, options
from lstm_bench.cli.terminal import print_table
from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.branches import branch_cases
from lstm_bench.files import to_json
from lstm_bench.outputs import check_distinct
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_options import parse_ort_options
from lstm_bench.runtimes.registry import RUNTIMES, make_factories
from lstm_bench.verify.run import VerifyPlan, verify
from lstm_bench.verify.sensitivity import widened_note
from lstm_bench.verify.state_pairs import check_given_states
from lstm_bench.verify.verdict import DRIFT, DRIFT_MEANING, SKIP

# `verify --json` of several shapes (a sweep): a report of each (`bench --verify-json` takes one)
SWEEP_SCHEMA = "lstm-bench/verify-sweep/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the ONNX model to verify")
    options.add_runtimes(parser)
    options.add_batch(parser, default=(1,), what=": verify runs at each")
    options.add_seq_len(parser, what=": verify runs at each")
    options.add_threads(parser, help_="comma list of intra-op thread counts, the same for "
                                      "every CPU runtime: verify runs at each (default: 1, as "
                                      "bench; at most 4 x the usable cores)")
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
    parser.add_argument("--json", metavar="PATH",
                        help="write the full report as JSON ('-': standard output; several "
                             "shapes: one document with a report each)")
    options.add_junit_xml(parser)


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


def shapes_of(args) -> list[tuple]:
    """(batch, seq_len, threads) of each verify run: every combination of the lists given
    (None: the default, or what the model or --inputs fixes)."""
    if args.inputs:  # the file fixes one shape: a sweep would need random inputs
        options.single(args.batch, "--batch", "--inputs fixes the batch")
        options.single(args.seq_len, "--seq-len", "--inputs fixes the sequence length")
    threads = check_threads(options.threads_or_default(args.threads))
    return [(batch, seq_len, n) for batch in args.batch or [None]
            for seq_len in args.seq_len or [None] for n in threads]


def shape_label(report, threads: int) -> str:
    values = "".join(f", {name}={value}" for name, value in report.inputs.get("values", {}).items())
    return f"batch {report.inputs['batch']}, seq_len {report.inputs['seq_len']}, " \
           f"threads {threads}{values}"


def every_branch(model: Model, console) -> list[Model]:
    """The model once per choice of its If branches that inputs not given make (a sample rate
    the graph compares with 16000: 16000 and 8000), each fed the values that make it; the model
    alone where there is no such input. A choice it cannot work out stays the user's: synth's
    check asks for --value."""
    cases = branch_cases(model.proto, model.given.values)
    if not cases:
        return [model]
    text = "; ".join(", ".join(f"{k}={v}" for k, v in case.items()) for case in cases)
    console.print(f"the model's If branches are chosen by {', '.join(map(repr, cases[0]))}: "
                  f"verify runs once for each choice ({text})", highlight=False, markup=False)
    return [model.with_given(replace(model.given, values={**model.given.values, **case}))
            for case in cases]


def report_json(reports) -> str:
    """One report's JSON as ever; several (a sweep): a document holding each, by shape."""
    if len(reports) == 1:
        return to_json(reports[0][1].to_dict(), indent=2)
    return to_json({"schema": SWEEP_SCHEMA, "passed": all(bool(r) for _, r in reports),
                    "reports": [{"shape": shape, **r.to_dict()} for shape, r in reports]},
                   indent=2)


def main(args) -> int:
    outputs = {"--json": args.json, "--junit-xml": args.junit_xml}
    piped = gates.check_outputs(outputs, takes_stdout=outputs)
    check_distinct({"MODEL": args.model, "--inputs": args.inputs,
                    **checkpoint_files("--source", args.source)}, outputs, models=("MODEL",))
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
    if args.states and not args.streaming:
        raise LSTMBenchError("--state is for the streaming check, which --no-streaming skips")
    shapes = shapes_of(args)
    model = Model.load(args.model).check_lstm().with_given(options.given(args))
    check_given_states(model.proto, model.given)  # --state names what the model has
    console = gates.console_for(piped)  # names from the model and paths shown, never obeyed
    models = [model] if args.inputs else every_branch(model, console)  # a file fixes them
    runs = [(shape, one) for shape in shapes for one in models]
    reports, took, code = [], [], 0
    for (batch, seq_len, threads), model in runs:
        plan = VerifyPlan(make_factories(names, ort_options), batch=batch, seq_len=seq_len,
                          inputs=args.inputs, seed=options.seed_or_default(args.seed),
                          value_range=args.value_range or (-1.0, 1.0), ragged=args.ragged,
                          zero_length=args.zero_length, streaming=args.streaming,
                          source=args.source, lstm_layer_batch=8 if args.lstm_layer else None,
                          second_shape=args.second_shape, threads=threads)
        started = time.perf_counter()
        report = verify(model, plan)
        took.append(time.perf_counter() - started)
        reports.append((shape_label(report, threads), report))
        if len(runs) > 1:  # which run of the sweep this is
            from rich.markup import escape

            console.print(f"{chr(10) if len(reports) > 1 else ''}[bold]{len(reports)} of "
                          f"{len(runs)}: {escape(reports[-1][0])}[/bold]", highlight=False)
        code = max(code, show(report, console))
    written = gates.emit(args.json, report_json(reports)) if args.json else []
    written += gates.write_junit(args.junit_xml, "lstm-bench verify",
                                 [verify_suite(r, shape, seconds) for (shape, r), seconds
                                  in zip(reports, took)])
    for path in written:
        console.print(f"report written to {path}", markup=False)
    failures = [f"{shape}: {text}" if len(reports) > 1 else text for shape, r in reports
                if (text := verify_failure_text(r))]
    gates.to_ci("verify", lambda: verify_markdown(reports),
                f"{args.model}: {'; '.join(failures)}" if failures else None, piped)
    return code


def show(report, console) -> int:
    """One verify run on the terminal: the table, notes, skips and verdict lines; returns its
    exit code (1: a runtime or the file failed)."""
    render(report, console)
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
    failing = failure_lines(report)
    if failing:
        for line in failing[:-1]:
            console.print(line, highlight=False, markup=False)
        console.print(failing[-1], highlight=False)
        return 1
    if drifted:
        console.print(f"none of the {len(ran)} runtime(s) that ran failed: "
                      f"{len(ran) - len(drifted)} pass, {len(drifted)} drift ({DRIFT_MEANING})",
                      highlight=False)
    else:
        console.print(f"all {len(ran)} runtime(s) that ran passed", highlight=False)
    return 0


def failure_lines(report) -> list[str]:
    """verify's closing lines for a run that fails: each runtime's failures (``FAIL ...``),
    then the count, which says whether the file failed at its second shape; none when neither
    a runtime nor the file failed. The pytest plugin fails a test with the same lines."""
    ran = [r for r in report.results if r.status != SKIP]
    failed = [r for r in ran if r.failed]
    file_failed = "" if report.file_ok else (
        f"the file fails: {len(report.second_shape.findings)} finding(s) at a second shape "
        "(above); ")
    if failed:
        return [f"FAIL {failure}" for r in failed for failure in r.failures] + [
            f"{file_failed}{len(failed)} of {len(ran)} runtime(s) failed"]
    if file_failed:
        return [f"{file_failed}none of the {len(ran)} runtime(s) that ran failed"]
    return []
