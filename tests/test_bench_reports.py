"""`lstm-bench bench` on a tiny model with the real ort-cpu and numpy runtimes, and every report
format read back: JSON through the same types that wrote it, the Markdown table, a
self-contained HTML page; the decision on top of each; one verdict per runtime; NaN safe."""

import base64
import io
import json
import math
import os
import re
import sqlite3

import pytest
from rich.console import Console

from lstm_bench.bench.decision import decide
from lstm_bench.bench.history import DB_ENV
from lstm_bench.bench.markdown import render_markdown
from lstm_bench.bench.page import render_html
from lstm_bench.bench.report import BenchReport, load_report
from lstm_bench.bench.stats import Measurement
from lstm_bench.cli.terminal import print_report
from lstm_bench.cli import main
from lstm_bench.verify.report import VerifySummary

FAST = ["--span", "0", "--blocks", "3", "--min-time", "0.002", "--min-reps", "3", "--no-calibrate",
        "--quiet"]


def strict_json(text):
    """JSON as strict readers take it: NaN or Infinity anywhere is an error."""
    def refuse(constant):
        raise ValueError(f"{constant} in JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def reports(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    paths = {kind: out / f"bench.{kind}" for kind in ("json", "md", "html")}
    argv = ["bench", str(tiny), "--runtimes", "ort-cpu,numpy", "--batch", "1,3", "--seq-len",
            "2,5", "--threads", "1,2", *FAST, "--no-history"]
    assert main(argv + [f"--{kind}={path}" for kind, path in paths.items()]) == 0
    return paths


def output_json(name, max_abs, per_step=None, failures=()):
    """One output's verdict (the layout of ``OutputParity.to_dict``)."""
    return {"name": name, "dtype": "float32", "shape": [len(per_step or ()), 1, 1, 4],
            "max_abs": max_abs, "per_step_max_abs": None if per_step is None else list(per_step),
            "failures": [{"output": name, **f} for f in failures]}


def verify_json(per_step=(1e-8, 5e-8, 2e-7)):
    """A verify report's JSON (the layout of ``VerifyReport.to_dict``), two runtimes."""
    tol = {"atol": 1e-5, "rtol": 1e-4}
    return {"passed": True, "inputs": {"seq_len": len(per_step)}, "results": [
        {"runtime": "ort-cpu", "status": "pass", "reason": None, "precision": "float32",
         "tolerance": tol, "outputs": [output_json("Y", 2e-7, per_step)]},
        {"runtime": "numpy", "status": "pass", "reason": None, "precision": "float32",
         "tolerance": tol, "outputs": [output_json("Y", 3e-7, per_step)]},
        {"runtime": "ort-cuda", "status": "skip", "reason": "no GPU", "outputs": []}]}


def test_json_has_every_figure_the_decision_and_reads_back_through_the_types(reports):
    doc = strict_json(reports["json"].read_text())
    assert {"results", "machine", "settings", "model", "skipped", "decision"} <= set(doc)
    assert {"cpu", "cores", "libraries", "thread_settings", "git_commit"} <= set(doc["machine"])
    rows = doc["results"]
    assert {(r["runtime"], r["batch"], r["seq_len"], r["threads"]) for r in rows} == {
        (rt, b, t, n) for rt in ("ort-cpu", "numpy") for b in (1, 3) for t in (2, 5)
        for n in (1, 2)}
    for row in rows:
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p99"]
        assert len(row["samples_ns"]) == row["reps"] >= 3
        assert row["flops"] == 8 * 4 * (2 + 4) * row["batch"] * row["seq_len"]
    report = load_report(reports["json"])
    assert isinstance(report, BenchReport) and len(report.measurements) == len(rows)
    assert report.to_dict() == doc  # the same types wrote it and read it
    # no verify data: every shape is decided by speed alone, and the report says so
    decision = doc["decision"]
    assert decision["verified"] is False and len(decision["shapes"]) == 4
    for shape in decision["shapes"]:
        winner, runner_up = shape["winner"], shape["runner_up"]
        assert {winner["runtime"], runner_up["runtime"]} == {"ort-cpu", "numpy"}
        assert winner["median_ms"] <= runner_up["median_ms"]
        assert shape["margin"] == pytest.approx(runner_up["median_ms"] / winner["median_ms"])


def test_markdown_opens_with_the_decision_and_its_tables_parse_back(reports):
    doc = strict_json(reports["json"].read_text())
    text = reports["md"].read_text()
    assert text.index("## Decision") < text.index("## Latency and throughput")
    for shape in doc["decision"]["shapes"]:
        assert shape["sentence"] in text
    lines = text.splitlines()
    body = []
    for start in (i for i, line in enumerate(lines) if line.startswith("| runtime | batch")):
        header = [c.strip() for c in lines[start].strip("|").split("|")]
        for line in lines[start + 2:]:
            if not line.startswith("|"):
                break
            body.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    assert len(body) == len(doc["results"])
    by_key = {(r["runtime"], r["batch"], r["seq_len"], r["threads"]): r for r in doc["results"]}
    for cells in body:
        row = by_key[(cells["runtime"], int(cells["batch"]), int(cells["seq_len"]),
                      int(cells["threads"]))]
        assert float(cells["median ms"]) == pytest.approx(row["latency_ms"]["median"], rel=1e-3)
    assert "### 1 thread\n" in text and "### 2 threads" in text  # one table per thread count


def test_html_is_self_contained_with_the_decision_first_and_the_plots(reports):
    page = reports["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.index('class="decision"') < page.index("<h2>Plots</h2>") < page.index(
        "<h2>Latency and throughput</h2>")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    captions = [c for c, _ in images]
    assert {"Latency against batch", "Throughput against sequence length",
            "Latency against threads", "Cold start"} <= set(captions)
    for _, data in images:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG")
        width = int.from_bytes(png[16:20], "big")
        assert width >= 1200  # drawn for the page's full width
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert "<script" not in page and "<link" not in page


def test_verify_data_gives_verdicts_exclusions_and_the_error_per_step_plot(reports):
    report = load_report(reports["json"])
    data = verify_json()
    # numpy: the model's output passed, its LSTM layer alone did not
    data["results"][1].update(status="fail", lstm_layer={
        "label": "lstm alone", "status": "fail", "outputs": [output_json(
            "Y", 0.4, [0.1, 0.4, 0.2], [{"metric": "abs_error", "value": 0.4, "limit": 1e-4}])]})
    report.verify = VerifySummary.from_verify_json(data)
    verdicts = report.verify.verdicts
    assert verdicts["ort-cpu"].status == "pass"
    # one verdict, both figures, no contradiction
    assert verdicts["numpy"].status == "fail"
    statement = verdicts["numpy"].statement()
    assert "model output within float32 tolerance (max abs 3e-07)" in statement
    assert "hidden states beyond it (max abs 0.4)" in statement
    assert verdicts["numpy"].per_step_max_abs_error == [0.1, 0.4, 0.2]  # the layer's drift
    decision = decide(report)
    assert decision.verified
    assert set(decision.excluded) == {"numpy", "ort-cuda"}
    assert "hidden states" in decision.excluded["numpy"]
    assert "no GPU" in decision.excluded["ort-cuda"]
    assert all(s.winner.runtime == "ort-cpu" and s.runner_up is None for s in decision.shapes)
    page = render_html(report)
    assert "Verify: error per time step" in page
    markdown = render_markdown(report)
    assert "| ort-cpu | pass | 2e-07 |" in markdown and "| numpy | fail | 3e-07 | 0.4 |" in markdown
    # through JSON and back, the verdicts stay the same objects
    again = BenchReport.from_dict(strict_json(json.dumps(report.to_dict())))
    assert again.verify.verdicts == verdicts


def test_non_finite_errors_are_written_as_null_and_stay_failures(reports, tmp_path):
    from lstm_bench.bench.report import write_reports

    report = load_report(reports["json"])
    data = verify_json(per_step=(1e-8, math.inf, math.nan))
    data["passed"] = False
    data["results"][0].update(status="fail")
    data["results"][0]["outputs"][0].update(max_abs=math.nan, failures=[
        {"output": "Y", "metric": "non_finite", "value": 2.0, "limit": 0.0}])
    report.verify = VerifySummary.from_verify_json(data)
    assert report.verify.verdicts["ort-cpu"].max_abs_error == math.inf
    (path,) = write_reports(report, json=tmp_path / "nan.json")
    doc = strict_json(path.read_text())  # strict JSON: no NaN, no Infinity
    assert doc["verify"]["runtimes"]["ort-cpu"]["outputs"][0]["per_step_max_abs"][1:] == \
        [None, None]
    assert "ort-cpu" in doc["decision"]["excluded"]
    again = load_report(path).verify
    assert again.verdicts["ort-cpu"].status == "fail"
    assert again.verdicts["ort-cpu"].per_step_max_abs_error[1:] == [math.inf, math.inf]
    assert "Verify: error per time step" in render_html(load_report(path))  # still drawn


def test_bench_takes_a_verify_report(tiny, tmp_path, capsys):
    import hashlib

    from lstm_bench.verify.report import SCHEMA

    path = tmp_path / "verify.json"  # a verify report of this model: its schema and sha256
    path.write_text(json.dumps({**verify_json(), "schema": SCHEMA,
                                "sha256": hashlib.sha256(tiny.read_bytes()).hexdigest()}))
    out_json = tmp_path / "b.json"
    assert main(["bench", str(tiny), "--runtimes", "ort-cpu,numpy", "--batch", "2",
                 "--seq-len", "3", *FAST, "--verify-json", str(path), "--json",
                 str(out_json)]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("decision: fastest runtime that passed verify")
    assert "excluded ort-cuda" in out
    assert strict_json(out_json.read_text())["decision"]["verified"] is True


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory):
    """A real model whose float32 runtimes overflow to inf and NaN (Relu activations and
    weights of 1e15) while the float64 truth stays finite for the first steps."""
    import dataclasses

    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.spec import LSTMSpec, LSTMWeights

    weights = LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=4,
                                          activations=("Relu", "Relu", "Relu")))
    weights = dataclasses.replace(weights, W=weights.W * 1e15, R=weights.R * 1e15)
    path = tmp_path_factory.mktemp("overflow") / "overflow.onnx"
    export_weights(weights, path)
    return path


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the truth overflows too, later on
def test_run_with_a_nan_output_fails_verify_cleanly(overflowing, tmp_path, capsys):
    """A runtime that outputs NaN is a verify failure (exit 1) with every report written as
    strict JSON, never a traceback; the decision, first in the output, excludes it."""
    argv = ["run", "--model", str(overflowing), "--out", str(tmp_path), "--runtimes",
            "ort-cpu,numpy", "--batch", "1", "--min-time", "0.002", "--span", "0", "--quiet"]
    assert main(argv) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("lstm-bench run: writing to") and out[1].startswith("decision:")
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    for name in ("bench.json", "verify.json"):
        strict_json((folder / name).read_text())
    report = load_report(folder / "bench.json")
    assert {v.status for v in report.verify.verdicts.values()} == {"fail"}
    assert decide(report).shapes[0].winner is None
    assert set(decide(report).excluded) == {"ort-cpu", "numpy"}
    # and the run went into the history, verdicts included
    with sqlite3.connect(os.environ[DB_ENV]) as con:
        rows = con.execute("SELECT runtime, verdict FROM results").fetchall()
    assert sorted(rows) == [("numpy", "fail"), ("ort-cpu", "fail")]


def test_compare_writes_json_markdown_and_html(reports, tmp_path, capsys):
    # the same report twice, recorded as measured on an idle machine: "within noise" on every
    # row (the load this suite puts on the machine would make them "inconclusive: busy")
    doc = strict_json(reports["json"].read_text())
    doc["machine"]["load_average"].update(before=[0.0, 0.0, 0.0], after=[0.0, 0.0, 0.0],
                                          other_cores=0.0)
    base, new = tmp_path / "base.json", tmp_path / "new.json"
    for path in (base, new):
        path.write_text(json.dumps(doc))
    outs = {kind: tmp_path / f"compare.{kind}" for kind in ("json", "md", "html")}
    assert main(["compare", str(base), str(new),
                 *[f"--{kind}={path}" for kind, path in outs.items()]]) == 0
    rows = len(strict_json(reports["json"].read_text())["results"])
    verdicts = strict_json(outs["json"].read_text())
    assert len(verdicts["changes"]) == rows  # one verdict per row
    assert outs["md"].read_text().count("| within noise |") == rows
    page = outs["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count(">within noise</td>") == rows


def test_verify_json_with_the_lstm_layer_inside_each_result():
    """verify may judge the LSTM layer alone inside each runtime's result (its own
    ``lstm_layer`` with its outputs): one verdict, both figures, the layer's drift."""
    tol = {"atol": 5e-2, "rtol": 5e-2}
    data = {"passed": False, "inputs": {"seq_len": 3}, "results": [
        {"runtime": "ort-cpu-int8", "status": "fail", "precision": "int8", "tolerance": tol,
         "reason": None,
         "lstm_layer": {"label": "lstm alone", "status": "fail", "outputs": [output_json(
             "Y", 0.4, [0.01, 0.2, 0.4], [{"metric": "abs_error", "value": 0.4, "limit": 0.06}])]},
         "outputs": [output_json("output", 8e-6)]}]}
    verdict = VerifySummary.from_verify_json(data).verdicts["ort-cpu-int8"]
    assert (verdict.status, verdict.model_ok, verdict.layer_status) == ("fail", True, "fail")
    assert verdict.max_abs_error == 8e-6 and verdict.layer_max_abs_error == 0.4
    assert verdict.per_step_max_abs_error == [0.01, 0.2, 0.4]
    statement = verdict.statement()
    assert "model output within int8 tolerance" in statement and "beyond it (max abs 0.4)" \
        in statement


def test_streaming_rows_are_their_own_shapes():
    """Rows of a streaming bench (mode, chunk in the row) are decided and drawn apart from the
    whole-sequence rows, per call and per step."""
    def row(name, median_ms, seq_len=100, **streaming):
        samples = tuple(int(median_ms * 1e6 * f) for f in (0.99, 1.0, 1.01) * 4)
        return Measurement(name, 1, seq_len, 1, samples, **streaming)

    report = BenchReport(
        model={"path": "m.onnx"}, machine={}, settings={},
        measurements=[row("ort-cpu", 1.0), row("numpy", 2.0),
                      row("ort-cpu", 0.08, seq_len=4, mode="streaming"),
                      row("numpy", 0.04, seq_len=4, mode="streaming")],
        extra={"streaming": {"note": "m.onnx does not carry its state; timed its stateful "
                                     "variant"}})
    lines = decide(report).lines()
    assert lines[0].startswith("batch 1, T 100: ort-cpu, 1 ms")
    assert lines[1].startswith("streaming, chunk 4, batch 1: numpy, 0.04 ms per call "
                               "(0.01 ms per step)")
    console = Console(width=80, record=True, file=io.StringIO())
    print_report(report, console)
    text = console.export_text()
    assert "stream c=4 b=1" in text and "stateful variant" in text
    assert "Latency against batch" in render_html(report)


def test_one_busy_note_when_both_of_run_s_sweeps_noted_it():
    from lstm_bench.bench.report import BenchReport
    from lstm_bench.bench.text import machine_warnings

    report = BenchReport(model={}, machine={}, settings={}, measurements=[], notes=[
        "the machine was busy: other processes kept 0.80 of its 2 cores busy",
        "the machine was busy: other processes kept 0.70 of its 2 cores busy",
        "another note"])
    assert machine_warnings(report) == [report.notes[0], "another note"]
