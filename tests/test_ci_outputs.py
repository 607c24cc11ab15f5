"""Issue 23, items 1 and 2: gates in a user's CI.

JUnit XML from verify (a case per runtime and output, failures with their figures, skips with
the reason) and compare (a case per row, a regression a failure), valid by the rules of
Jenkins' junit-10.xsd (xunit-plugin) checked by hand here, whatever the names hold; in GitHub
Actions the Markdown decision appended to the step summary (never through a link, never the
command's failure) and a failing gate as one ``::error`` line; ``--json -`` and ``--md -`` on
standard output, alone there.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from hostile import QUICK, assert_bad_input, run_cli, snapshot
from lstm_bench import ci, junit
from lstm_bench.bench.stats import Block, Measurement
from lstm_bench.cli.console import PipeSafe
from lstm_bench.exporters.weights import export_weights
from lstm_bench.spec import LSTMSpec, LSTMWeights

# --- junit-10.xsd (jenkinsci/xunit-plugin), as rules: element -> (attributes it may have,
# attributes it must have, children it may have); testcase's classname and time are required
# too, as Ant's schema (the stricter one some servers use) has them
SCHEMA = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set(), {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors", "group", "time", "skipped",
                   "timestamp", "hostname", "id", "package", "file", "log", "url"},
                  {"name", "tests", "failures", "errors"},
                  {"testsuite", "properties", "testcase", "system-out", "system-err"}),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, {"name", "value"}, set()),
    "testcase": ({"name", "time", "classname", "group"}, {"name", "classname", "time"},
                 {"skipped", "error", "failure", "system-out", "system-err"}),
    "failure": ({"type", "message"}, set(), set()),
    "error": ({"type", "message"}, set(), set()),
    "skipped": ({"type", "message"}, set(), set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")
OUTCOMES = ("failure", "error", "skipped")
# characters XML 1.0 allows (its production 2)
XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def check_junit(text: str) -> ET.Element:
    """``text`` parsed and checked against the schema's rules and its own counts."""
    assert XML_CHAR.fullmatch(text), "a character XML 1.0 cannot hold"
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    for element in root.iter():
        allowed, required, children = SCHEMA[element.tag]
        assert set(element.attrib) <= allowed, (element.tag, element.attrib)
        assert required <= set(element.attrib), (element.tag, element.attrib)
        assert {child.tag for child in element} <= children, element.tag
        if "time" in element.attrib:
            assert SUREFIRE_TIME.fullmatch(element.attrib["time"]), element.attrib["time"]
    totals = dict.fromkeys(("tests", "failure", "error"), 0)
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        outcomes = [[c.tag for c in case if c.tag in OUTCOMES] for case in cases]
        assert all(len(found) <= 1 for found in outcomes), "one outcome per case"
        counted = {tag: sum(found == [tag] for found in outcomes) for tag in OUTCOMES}
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == counted["failure"]
        assert int(suite.get("errors")) == counted["error"]
        assert int(suite.get("skipped")) == counted["skipped"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
        totals["tests"] += len(cases)
        totals["failure"] += counted["failure"]
        totals["error"] += counted["error"]
    assert (int(root.get("tests")), int(root.get("failures")), int(root.get("errors"))) == \
        (totals["tests"], totals["failure"], totals["error"])
    return root


def outcome(case: ET.Element):
    return next((c for c in case if c.tag in OUTCOMES), None)


HOSTILE = "m\x1b[2J\x00<&\"']]>\u202e\ufffe\udcff\n%0A::x,y"


def test_junit_writer_escapes_whatever_a_name_holds():
    case = junit.Case(HOSTILE, HOSTILE, junit.FAILURE, HOSTILE, HOSTILE, HOSTILE, float("nan"))
    suite = junit.Suite(HOSTILE, (case, junit.Case("c", "n", detail=HOSTILE),
                                  junit.Case("c", "s", junit.SKIPPED, HOSTILE)),
                        {HOSTILE: HOSTILE}, time=1e-7)
    root = check_junit(junit.render(HOSTILE, [suite]))
    (suite_element,) = root
    assert suite_element.get("failures") == "1" and suite_element.get("skipped") == "1"
    first = suite_element.find("testcase")
    assert "\\x1b" in first.get("name") and "<&" in first.get("name")
    assert outcome(first).get("message").startswith("m\\x1b[2J\\x00<&")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A model whose clip and sequence_lens onnx-reference ignores: it fails there."""
    path = tmp_path_factory.mktemp("clip") / "clip.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(2, 8, clip=0.5), seed=0), path,
                   sequence_lens=True)
    return path


CLIP_RUN = ["--runtimes", "numpy,onnx-reference", "--batch", "4", "--seq-len", "20",
            "--ragged", "--no-lstm-layer", "--no-second-shape"]


def test_verify_junit_fails_each_output_with_its_figures(clip, tmp_path, capsys):
    out = tmp_path / "verify.xml"
    rc, stdout, _ = run_cli(capsys, "verify", clip, *CLIP_RUN, "--junit-xml", out)
    assert rc == 1, stdout
    root = check_junit(out.read_text(encoding="utf-8"))
    cases = {(c.get("classname"), c.get("name").split(" (")[0]): c for c in root.iter("testcase")}
    for name in ("Y", "Y_h", "Y_c"):
        failed = outcome(cases[("lstm-bench.verify.onnx-reference", name)])
        assert failed.tag == "failure" and "abs_error" in failed.get("message")
        assert "limit" in failed.get("message")
        for figure in ("max abs error", "max rel error", "tolerance of float32"):
            assert figure in failed.text
        assert outcome(cases[("lstm-bench.verify.numpy", name)]) is None
    assert "batch 4, seq_len 20, threads 1" in next(iter(cases.values())).get("name")
    assert int(root.get("failures")) + int(root.get("errors")) > 0  # as the exit code says


def test_verify_junit_skip_and_pass_and_hostile_model_name(tiny, tmp_path, capsys):
    model = tmp_path / "m\x1b[2J<&\"]]>\u202e.onnx"
    shutil.copy(tiny, model)
    out = tmp_path / "v.xml"
    rc, stdout, _ = run_cli(capsys, "verify", model, "--runtimes", "numpy,ort-cuda",
                            "--no-streaming", "--junit-xml", out)
    assert rc == 0, stdout
    root = check_junit(out.read_text(encoding="utf-8"))
    assert root.get("failures") == "0" and root.get("errors") == "0"
    (suite,) = root
    assert "\\x1b[2J<&" in suite.get("name")
    skipped = [c for c in suite.iter("testcase") if c.get("classname").endswith("ort-cuda")]
    assert len(skipped) == 1 and outcome(skipped[0]).tag == "skipped"
    assert outcome(skipped[0]).get("message")  # the reason


# --- compare -----------------------------------------------------------------------------

def rows(runtime, median_ms, seed):
    medians = (median_ms * np.random.default_rng(seed).lognormal(0.0, 0.05, 30)).tolist()
    samples = tuple(round(m * 1e6) for m in medians for _ in range(5))
    blocks = tuple(Block(0, i, i * 10_000_000, 5) for i in range(30))
    return Measurement(runtime, 1, 100, 1, samples, blocks=blocks).as_dict()


def report(path, results):
    path.write_text(json.dumps({"schema": "lstm-bench/bench/1",
                                "model": {"path": "m.onnx", "sha256": "ab" * 32},
                                "machine": {"cpu": "Some CPU", "cores": 2},
                                "results": results}))
    return path


@pytest.fixture
def regressed(tmp_path):
    """BASE and NEW reports: ort-cpu 30 % slower (a regression), numpy unchanged, and a row
    of tract only in NEW."""
    base = report(tmp_path / "base.json", [rows("ort-cpu", 1.0, 1), rows("numpy", 1.0, 3)])
    new = report(tmp_path / "new.json", [rows("ort-cpu", 1.3, 2), rows("numpy", 1.0, 4),
                                         rows("tract", 1.0, 5)])
    return base, new


def test_compare_junit_a_regression_is_a_failure_with_both_figures(regressed, tmp_path, capsys):
    out = tmp_path / "c.xml"
    rc, stdout, _ = run_cli(capsys, "compare", *regressed, "--junit-xml", out)
    assert rc == 1, stdout
    root = check_junit(out.read_text(encoding="utf-8"))
    cases = {c.get("classname").rsplit(".", 1)[1]: c for c in root.iter("testcase")}
    assert set(cases) == {"ort-cpu", "numpy", "tract"}
    failed = outcome(cases["ort-cpu"])
    assert failed.tag == "failure" and failed.get("type") == "regression"
    assert "base 1" in failed.text and "new 1.3" in failed.text and "5 %" in failed.text
    assert outcome(cases["numpy"]) is None
    assert outcome(cases["tract"]).tag == "skipped"
    assert root.get("failures") == "1"


# --- GitHub Actions ----------------------------------------------------------------------

@pytest.fixture
def actions(tmp_path, monkeypatch):
    """A GitHub Actions step: its summary file, holding what an earlier step wrote."""
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("::error")]


def test_failing_verify_in_actions_appends_summary_and_one_annotation(clip, actions, capsys):
    rc, stdout, stderr = run_cli(capsys, "verify", clip, *CLIP_RUN)
    assert rc == 1
    (line,) = error_lines(stdout)
    assert line.startswith("::error title=lstm-bench verify failed::")
    assert "onnx-reference" in line and "abs_error" in line
    text = actions.read_text()
    assert text.startswith("earlier\n") and "## lstm-bench verify" in text
    assert "FAIL" in text and "| onnx-reference |" in text
    assert "warning" not in stderr


def test_compare_regression_in_actions_annotates(regressed, actions, capsys):
    rc, stdout, _ = run_cli(capsys, "compare", *regressed)
    assert rc == 1
    (line,) = error_lines(stdout)
    assert "lstm-bench compare failed" in line and "ort-cpu" in line and "regression" in line
    assert "# lstm-bench compare: 1 regression" in actions.read_text()


def test_passing_gates_and_outside_actions_nothing_changes(tiny, regressed, tmp_path, actions,
                                                          capsys, monkeypatch):
    rc, stdout, _ = run_cli(capsys, "verify", tiny, "--runtimes", "numpy", "--no-streaming")
    assert rc == 0 and not error_lines(stdout)
    assert "## lstm-bench verify" in actions.read_text()
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    before = actions.read_text()
    rc, stdout, _ = run_cli(capsys, "compare", *regressed)
    assert rc == 1 and not error_lines(stdout) and actions.read_text() == before


def test_bench_appends_its_decision(tiny, actions, capsys):
    rc, _, _ = run_cli(capsys, "bench", tiny, "--runtimes", "numpy", *QUICK)
    assert rc == 0
    text = actions.read_text()
    assert "## lstm-bench bench" in text and "## Decision" in text


@pytest.mark.parametrize("kind", ["symlink", "fifo", "missing"])
def test_a_summary_that_is_not_a_plain_file_is_a_warning_not_a_failure(regressed, tmp_path,
                                                                        actions, capsys, kind):
    target = tmp_path / "elsewhere.md"
    target.write_text("keep\n")
    actions.unlink()
    if kind == "symlink":
        actions.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(actions)  # opening it to write would block: never opened
    rc, _, stderr = run_cli(capsys, "compare", *regressed)
    assert rc == 1  # the gate's own verdict
    (warning,) = [line for line in stderr.splitlines() if "warning" in line]
    assert warning.startswith("lstm-bench compare: warning: step summary not written")
    assert target.read_text() == "keep\n"


def test_annotation_escapes_by_the_runner_s_rules():
    line = ci.error_command("a:b,c%", "50% done\nnext::x\x1b")
    assert line == "::error title=a%3Ab%2Cc%25::50%25 done%0Anext::x\\x1b"
    assert "\n" not in line


def test_user_text_never_starts_a_workflow_command(monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    stream = io.StringIO()
    out = PipeSafe(stream)
    out.write("  ::add-mask::secret\nok ::x\n::stop")
    out.write("-commands::t\n")
    out.write("a")
    out.write("::not a start\n")
    lines = stream.getvalue().splitlines()
    assert not any(line.lstrip().startswith("::") for line in lines), lines
    assert lines[1] == "ok ::x" and lines[3] == "a::not a start"
    out.write_document("::error title=t::ours\n")  # the command's own annotation
    assert stream.getvalue().endswith("\n::error title=t::ours\n")


# --- `-`: standard output ------------------------------------------------------------------

def test_verify_json_to_standard_output_holds_the_document_alone(tiny, tmp_path, capsys,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, stdout, stderr = run_cli(capsys, "verify", tiny, "--runtimes", "numpy",
                                 "--no-streaming", "--json", "-")
    assert rc == 0
    assert json.loads(stdout)["schema"] == "lstm-bench/verify/1"
    assert "all 1 runtime(s) that ran passed" in stderr  # the terminal report
    assert not (tmp_path / "-").exists()


def test_bench_markdown_to_standard_output(tiny, tmp_path, capsys):
    rc, stdout, stderr = run_cli(capsys, "bench", tiny, "--runtimes", "numpy", *QUICK,
                                 "--md", "-", "--json", tmp_path / "b.json")
    assert rc == 0
    assert stdout.startswith("# lstm-bench") and "## Decision" in stdout
    assert "wrote" in stderr and (tmp_path / "b.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["verify", "{m}", "--json", "-", "--junit-xml", "-"], "--json - and --junit-xml -"),
    (["compare", "{m}", "{m}", "--md", "-", "--json", "-"], "--json - and --md -"),
    (["bench", "{m}", "--html", "-"], "--html -: standard output is not an output here"),
])
def test_two_outputs_on_standard_output_are_refused(tiny, tmp_path, capsys, argv, message):
    before = snapshot(tmp_path)
    assert_bad_input(run_cli(capsys, *[a.format(m=tiny) for a in argv]), message)
    assert snapshot(tmp_path) == before


def test_junit_fails_exactly_where_verify_s_exit_code_does(tiny):
    """Hand-made verdicts, one of each kind: an error, a drift (the layer alone beyond, the
    model within: not a failure), a streaming failure and a pass."""
    from lstm_bench.bench.ci_reports import verify_suite
    from lstm_bench.model import Model
    from lstm_bench.verify.report import VerifyReport
    from lstm_bench.verify.verdict import Verdict

    tol = {"atol": 1e-5, "rtol": 1e-4}
    fine = {"name": "Y", "dtype": "float32", "shape": [1], "max_abs": 1e-7}
    beyond = {**fine, "max_abs": 0.5, "failures": [
        {"output": "Y", "metric": "abs_error", "value": 0.5, "limit": 1e-5}]}
    layer = {"label": "lstm alone", "detail": "Y", "status": "fail", "outputs": [beyond]}
    stream = {"runtime": "c", "status": "fail", "chunks": [3, 4], "max_abs": {"Y": 0.1},
              "failures": [{"output": "Y", "metric": "streaming", "value": 0.1,
                            "limit": 1e-5}]}
    verdicts = [Verdict.from_dict(d) for d in (
        {"runtime": "a", "status": "error", "reason": "it crashed"},
        {"runtime": "b", "status": "drift", "precision": "float32", "tolerance": tol,
         "outputs": [fine], "lstm_layers": [layer]},
        {"runtime": "c", "status": "fail", "precision": "float32", "tolerance": tol,
         "outputs": [fine], "streaming": stream},
        {"runtime": "d", "status": "pass", "precision": "float32", "tolerance": tol,
         "outputs": [fine]})]
    report = VerifyReport(Model.load(tiny), {"batch": 1, "seq_len": 7}, tuple(verdicts))
    root = check_junit(junit.render("v", [verify_suite(report, "batch 1")]))
    found = {(c.get("classname").rsplit(".", 1)[1], c.get("name")):
             None if outcome(c) is None else outcome(c).tag for c in root.iter("testcase")}
    assert found == {("a", "run (batch 1)"): "error", ("b", "Y (batch 1)"): None,
                     ("b", "lstm alone: Y (batch 1)"): None, ("c", "Y (batch 1)"): None,
                     ("c", "streaming (batch 1)"): "failure", ("d", "Y (batch 1)"): None}
    drift = next(c for c in root.iter("testcase") if c.get("name").startswith("lstm alone"))
    assert drift.find("system-out").text.startswith("drift: Y: abs_error = 0.5")
