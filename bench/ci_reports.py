"""verify's, bench's and compare's verdicts as CI reads them: JUnit test cases
(``lstm_bench.junit``), the Markdown decision for a GitHub step summary, and the one-line
reason of a failing gate (its ``::error`` annotation, ``lstm_bench.ci``).

verify: a test case per runtime and output (the model's outputs, then each LSTM layer's alone),
one for a run that could not start (an error) or was skipped (the reason), one for the
streaming check and one for the file at a second shape. A case fails exactly where verify's
exit code counts a failure: an LSTM layer alone beyond the tolerance while the model's output
is within it is a drift, stated in the case's output, not a failure. compare: a case per row,
a regression is its failure; rows only in one report are skipped.
"""

from __future__ import annotations

from lstm_bench.bench.compare_report import Comparison, render_markdown as compare_markdown
from lstm_bench.bench.decision import plural
from lstm_bench.bench.markdown import decision_markdown, md_table, md_text
from lstm_bench.bench.tables import named_outputs, verify_table
from lstm_bench.bench.text import ms_text, p_short
from lstm_bench.junit import FAILURE, SKIPPED, Case, Suite
from lstm_bench.junit import ERROR as ERRED
from lstm_bench.verify.report import VerifyReport, VerifySummary
from lstm_bench.verify.verdict import DRIFT, ERROR, SKIP, Verdict, error_text

SHOWN_FAILURES = 5  # in an annotation: the first few, and how many more


def _figures(output, verdict: Verdict) -> str:
    return (f"max abs error {error_text(output.max_abs, '.3g')}, max rel error "
            f"{error_text(output.max_rel, '.3g')}, limit at the worst element "
            f"{error_text(output.limit_at_worst, '.3g')}; tolerance of {verdict.precision}: "
            f"{verdict.limit()}")


def _brief(failures) -> str:
    return "; ".join(f.brief() for f in failures)


def verdict_cases(verdict: Verdict, shape: str) -> list[Case]:
    """The cases of one runtime's verdict at ``shape`` (e.g. "batch 1, seq_len 100")."""
    group = f"lstm-bench.verify.{verdict.runtime}"
    if verdict.status == SKIP:
        return [Case(group, f"run ({shape})", SKIPPED, verdict.reason or "not available")]
    if verdict.status == ERROR:
        return [Case(group, f"run ({shape})", ERRED, verdict.reason or "error", kind="error")]
    cases = []
    if verdict.errors:
        cases.append(Case(group, f"run ({shape})", FAILURE, _brief(verdict.errors),
                          kind="run"))
    layers = {f"{layer.label}: {o.name}" for layer in verdict.lstm_layers for o in layer.outputs}
    for name, output in named_outputs(verdict):
        figures = _figures(output, verdict)
        if not output.failures:
            cases.append(Case(group, f"{name} ({shape})", detail=f"pass: {figures}"))
        elif name in layers:  # the layer alone beyond, the model within: stated, not failed
            cases.append(Case(group, f"{name} ({shape})", detail=f"{DRIFT}: "
                              f"{_brief(output.failures)}; {figures}"))
        else:
            cases.append(Case(group, f"{name} ({shape})", FAILURE, _brief(output.failures),
                              figures, kind=",".join(f.metric for f in output.failures)))
    for layer in verdict.lstm_layers:  # a layer that could not run
        if layer.errors:
            cases.append(Case(group, f"{layer.label} ({shape})", FAILURE,
                              _brief(layer.errors), layer.reason or "", kind="run"))
        elif layer.status == ERROR:
            cases.append(Case(group, f"{layer.label} ({shape})", SKIPPED,
                              layer.reason or "could not run"))
    stream = verdict.streaming
    if stream is not None and stream.status != SKIP:  # a case where the check ran
        name = f"streaming ({shape})"
        if stream.failures:
            cases.append(Case(group, name, FAILURE, _brief(stream.failures),
                              f"chunks {stream.chunks}", kind="streaming"))
        else:
            cases.append(Case(group, name, detail=f"pass: chunks {stream.chunks}"))
    return cases


def verify_suite(report: VerifyReport, shape: str, seconds: float = 0.0) -> Suite:
    """verify's report at one shape (``shape``: how the command names it) as a test suite;
    ``seconds``: how long verify took at that shape."""
    cases = [case for verdict in report.results for case in verdict_cases(verdict, shape)]
    second = report.second_shape
    if second is not None:
        name = f"outputs follow the inputs at a second shape ({shape})"
        if second.findings:
            cases.append(Case("lstm-bench.verify.file", name, FAILURE,
                              "; ".join(f.message for f in second.findings),
                              second.moved_text(), kind="baked shape"))
        else:
            cases.append(Case("lstm-bench.verify.file", name, detail=second.moved_text()))
    return Suite(f"lstm-bench verify {report.model} ({shape})", tuple(cases),
                 {"model": str(report.model), "sha256": report.model.sha256 or "",
                  "inputs": str(report.inputs.get("source", ""))}, time=seconds)


def counted_failures(verdict: Verdict) -> list:
    """The failures that fail ``verdict`` (a layer alone beyond the tolerance is a drift)."""
    found = list(verdict.errors) + [f for o in verdict.outputs for f in o.failures]
    if verdict.streaming is not None:
        found += verdict.streaming.failures
    return found + [f for layer in verdict.lstm_layers for f in layer.errors]


def verify_failure_text(report: VerifyReport) -> str | None:
    """Why verify fails at this shape, in one line (None: it does not)."""
    failed = [r for r in report.results if r.failed]
    parts = []
    if failed:
        ran = [r for r in report.results if r.status != SKIP]
        failures = [str(f) for r in failed for f in counted_failures(r)]
        shown = failures[:SHOWN_FAILURES] or [f"{r.runtime}: {r.why_failed()}" for r in failed]
        more = len(failures) - len(shown)
        parts.append(f"{len(failed)} of {plural(len(ran), 'runtime')} failed: "
                     + "; ".join(shown) + (f"; and {more} more" if more > 0 else ""))
    if not report.file_ok:
        parts.append("the file's outputs do not follow its inputs: "
                     + "; ".join(f.message for f in report.second_shape.findings))
    return "; ".join(parts) or None


def verify_markdown(reports) -> str:
    """verify's decision for a step summary: ``reports``, (shape, ``VerifyReport``) pairs."""
    parts = []
    for shape, report in reports:
        failed = verify_failure_text(report)
        verdict = f"FAIL: {failed}" if failed else "pass"
        parts += [f"## lstm-bench verify {md_text(report.model)} ({md_text(shape)}): "
                  f"{md_text(verdict.split(': ')[0])}", "",
                  md_table(verify_table(VerifySummary.of(report))), ""]
        if failed:
            parts += [f"- {md_text(failed)}", ""]
        parts += [f"- skipped {md_text(name)}: {md_text(reason)}"
                  for name, reason in report.skipped.items()]
    return "\n".join(parts).rstrip() + "\n"


def bench_markdown(report) -> str:
    """bench's decision for a step summary: the report's title and its decision section."""
    return "\n".join([f"## lstm-bench bench: {md_text(report.title)}", "",
                      *decision_markdown(report)]).rstrip() + "\n"


def _row(change) -> str:
    k = change.key
    threads = "" if k.threads is None else f", threads {k.threads}"
    chunk = f", chunk {k.chunk}" if k.chunk else ""
    return f"batch {k.batch}, seq_len {k.seq_len}{threads}{chunk}, {k.mode}"


def _change_text(c, fail_above: float) -> str:
    """The row's verdict with the figures it rests on, in one line."""
    change = "–" if c.change_pct is None else f"{c.change_pct:+.1f} %"
    figures = [f"base {ms_text(c.base_median_ms)} ms", f"new {ms_text(c.new_median_ms)} ms"]
    low, high = getattr(c, "low_pct", None), getattr(c, "high_pct", None)
    if low is not None and high is not None:
        figures.append(f"interval of the change {low:+.1f} .. {high:+.1f} %")
    if c.p_slower is not None:
        figures.append(f"p slower {p_short(c.p_slower)}")
    if c.base_blocks is not None:
        figures.append(f"blocks {c.base_blocks}/{c.new_blocks}")
    return (f"{c.verdict}: {change} ({'; '.join(figures)}; a regression is slower than base "
            f"by more than {fail_above:g} % beyond the noise)")


def compare_suite(comparison: Comparison) -> Suite:
    """compare's verdicts as a test suite: one case per row."""
    cases = []
    for c in comparison.changes:
        group, name = f"lstm-bench.compare.{c.key.runtime}", _row(c)
        text = _change_text(c, comparison.fail_above)
        reason = c.reason  # the verdict's own words
        if c.regression:
            cases.append(Case(group, name, FAILURE, reason or text.split(" (")[0],
                              text, kind="regression"))
        elif c.verdict.startswith("only in"):
            cases.append(Case(group, name, SKIPPED, f"{c.verdict}: not compared"))
        elif c.inconclusive:  # not a pass: the load hid what changed
            cases.append(Case(group, name, SKIPPED, f"{c.verdict}: {text}"))
        else:
            cases.append(Case(group, name, detail=text))
    return Suite(f"lstm-bench compare {comparison.base} -> {comparison.new}", tuple(cases),
                 {"base": str(comparison.base), "new": str(comparison.new),
                  "fail_above_pct": f"{comparison.fail_above:g}", "test": comparison.caption})


def compare_failure_text(comparison: Comparison) -> str | None:
    """Why compare fails, in one line (None: no regression)."""
    regressions = [c for c in comparison.changes if c.regression]
    if not regressions:
        return None
    shown = [f"{c.key.runtime} {_row(c)}: {_change_text(c, comparison.fail_above)}"
             for c in regressions[:SHOWN_FAILURES]]
    more = len(regressions) - len(shown)
    return f"{comparison.headline}: " + "; ".join(shown) + (f"; and {more} more" if more else "")


def compare_summary(comparison: Comparison) -> str:
    return compare_markdown(comparison)
