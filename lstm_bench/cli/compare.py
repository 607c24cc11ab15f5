"""`lstm-bench compare`: exit 1 when a row got slower beyond noise.

Two forms: ``compare BASE.json NEW.json`` judges two saved bench reports;
``compare BASE.onnx NEW.onnx`` measures both models live, interleaved block by block in the
same process(es), so that both see the same phases of the machine (the fair gate on a shared
machine).
"""

from __future__ import annotations

from lstm_bench.bench.compare import compare_reports, gate_notes, inputs_differ, machine_drift
from lstm_bench.bench.ci_reports import compare_failure_text, compare_suite
from lstm_bench.bench.compare_report import WRITERS, Comparison, changes_table, \
    render_markdown as compare_markdown
from lstm_bench.bench.machine import busy_warning
from lstm_bench.bench.report import load_json
from lstm_bench.bench.runner import run_plan
from lstm_bench.cli import gates, options
from lstm_bench.cli.bench import ab_plan, add_shape_arguments, add_timing_arguments, \
    report_outputs, write_outputs
from lstm_bench.cli.terminal import print_lines, print_paths, print_table
from lstm_bench.errors import LSTMBenchError
from lstm_bench.outputs import check_distinct


def add_arguments(parser) -> None:
    parser.add_argument("base", help="the reference: a bench --json report, or an ONNX model")
    parser.add_argument("new", help="the one to judge: a report, or an ONNX model")
    parser.add_argument("--fail-above", type=options.percent, default=5.0, metavar="PCT",
                        help="a significant slowdown of the median above PCT percent is a "
                             "regression (default 5)")
    parser.add_argument("--allow-different-models", action="store_true",
                        help="compare reports of models with different sha256")
    parser.add_argument("--allow-different-machines", action="store_true",
                        help="compare reports from different CPUs or core counts")
    for option, what in (("json", "JSON ('-': standard output)"),
                         ("md", "Markdown ('-': standard output)"), ("html", "HTML")):
        parser.add_argument(f"--{option}", metavar="PATH", help=f"write the verdicts as {what}")
    options.add_junit_xml(parser)
    group = parser.add_argument_group("live A/B (two .onnx models)")
    group.add_argument("--runtimes", type=options.runtime_names, default=["ort-cpu"],
                       metavar="A,B,...|all", help="comma-separated runtime names, or 'all' "
                                                   "(default: ort-cpu)")
    add_shape_arguments(group)
    add_timing_arguments(group)


BUSY = "the machine was busy"  # how bench.machine.busy_warning begins


def busy_note(doc: dict, which: str) -> str | None:
    """The busy-machine warning of a report, from the load averages it recorded."""
    machine = doc.get("machine") or {}
    load = machine.get("load_average") or {}
    threads = max((t for t in (machine.get("thread_settings") or {}).get("threads") or [1]
                   if isinstance(t, int)), default=1)
    note = busy_warning(load.get("before"), load.get("after"), threads, load.get("other_cores"))
    return f"{which}: {note}" if note else None


def _is_model(path: str) -> bool:
    return str(path).lower().endswith(".onnx")


def main(args) -> int:
    outputs, piped = report_outputs(args)  # --json, --md, --html, --junit-xml ('-': stdout)
    check_distinct({"BASE": args.base, "NEW": args.new}, outputs,
                   models=tuple(k for k, p in (("BASE", args.base), ("NEW", args.new))
                                if _is_model(p)))
    live = _is_model(args.base), _is_model(args.new)
    if live[0] != live[1]:
        raise LSTMBenchError("give two bench reports (.json) or two models (.onnx), not one "
                             f"of each: {args.base}, {args.new}")
    if live[0]:
        reports = run_plan(ab_plan(args))
        base, new = (report.to_dict() for report in reports)
        allow_models = True  # two models are the point of a live comparison
    else:
        base, new = load_json(args.base), load_json(args.new)
        allow_models = args.allow_different_models
    changes = compare_reports(base, new, fail_above=args.fail_above, paired=live[0],
                              allow_different_models=allow_models,
                              allow_different_machines=args.allow_different_machines)
    if live[0]:  # one rotation: one state of the machine
        # what the run chose for the user (the batch a fixed-batch model takes...), then
        # the busy note, once, with the run's own figures
        warnings = [n for n in base.get("notes") or [] if not n.startswith(BUSY)] \
            + [busy_note(new, "the live run")]
    else:
        warnings = [machine_drift(base, new), busy_note(base, "BASE"), busy_note(new, "NEW"),
                    inputs_differ(base, new), *gate_notes(base, new, changes)]
    comparison = Comparison(changes, args.base, args.new, args.fail_above,
                            tuple(w for w in warnings if w), paired=live[0])
    console = gates.console_for(piped)
    print_lines(console, [f"changes from BASE {args.base} to NEW {args.new}"], indent=0,
                style="bold")
    print_table(console, changes_table(changes), compact=True)
    print_lines(console, [comparison.caption], indent=0, style="dim")
    for warning in comparison.notes:
        print_lines(console, [f"warning: {warning}"], indent=0, style="yellow")
    written = write_outputs(WRITERS, comparison, args, piped)
    written += gates.write_junit(args.junit_xml, "lstm-bench compare", [compare_suite(comparison)])
    print_paths(console, "wrote", written)
    style = ("bold red" if comparison.regression else "yellow" if comparison.inconclusive
             else "green")
    console.print(f"[{style}]{comparison.headline}[/{style}]", highlight=False)
    gates.to_ci("compare", lambda: compare_markdown(comparison),
                compare_failure_text(comparison), piped)
    return 1 if comparison.regression else 0
