"""Verdicts the tables respect (issue 22, item 4): a runtime the decision leaves out (drift,
fail, skip, not verified) is marked in every table and plot and never ranked "best", and % of
peak is given only where the work and the GEMM peak are of one precision. Built from real
``Measurement``s and a verify report's JSON; the plots drawn by the real matplotlib."""

import io
import json

import numpy as np
from rich.console import Console

from lstm_bench.bench.decision import decide
from lstm_bench.bench.markdown import render_markdown
from lstm_bench.bench.page import render_html
from lstm_bench.bench.plots import report_figures
from lstm_bench.bench.report import BenchReport
from lstm_bench.bench.stats import Block, Measurement
from lstm_bench.bench.tables import latency_table, streaming_table
from lstm_bench.bench.text import peak_text
from lstm_bench.cli.terminal import print_report
from lstm_bench.verify.report import VerifySummary

TOL = {"atol": 1e-5, "rtol": 1e-4}


def row(runtime, median_ms, batch=1, seq_len=100, **streaming):
    """20 blocks of 3 equal calls at ``median_ms``, against a GEMM peak of 50 GFLOP/s."""
    samples = tuple(int(median_ms * 1e6) for _ in range(60))
    return Measurement(runtime, batch, seq_len, 1, samples,
                       blocks=tuple(Block(0, i, i, 3) for i in range(20)),
                       flops=8 * 50 * 51 * batch * seq_len, peak_gflops=50.0, **streaming)


def output(max_abs, failed=False):
    return {"name": "Y", "dtype": "float32", "shape": [2, 1, 1, 4], "max_abs": max_abs,
            "per_step_max_abs": [max_abs / 2, max_abs],
            "failures": [{"output": "Y", "metric": "abs_error", "value": max_abs,
                          "limit": 1e-2}] if failed else []}


def verify_data():
    """ort-cpu passes; ort-cpu-int8 drifts (its output within tolerance, its LSTM layer alone
    beyond it); numpy fails; torch-cpu is measured but absent from the verify data."""
    return VerifySummary.from_verify_json({"passed": False, "results": [
        {"runtime": "ort-cpu", "status": "pass", "precision": "float32", "tolerance": TOL,
         "outputs": [output(2e-7)]},
        {"runtime": "ort-cpu-int8", "status": "drift", "precision": "int8",
         "tolerance": {"atol": 5e-2, "rtol": 5e-2}, "outputs": [output(1e-3)],
         "lstm_layer": {"label": "lstm alone", "status": "fail", "outputs": [output(0.2, True)]}},
        {"runtime": "numpy", "status": "fail", "precision": "float32", "tolerance": TOL,
         "outputs": [output(0.3, True)]}]})


def the_report():
    # int8 is the fastest at every shape; ort-cpu the fastest candidate
    rows = [row("ort-cpu-int8", 0.5, b) for b in (1, 4)] + \
        [row("ort-cpu", 1.0, b) for b in (1, 4)] + [row("numpy", 0.7, b) for b in (1, 4)] + \
        [row("torch-cpu", 2.0, b) for b in (1, 4)] + \
        [row(name, median, 1, 4, mode="streaming")
         for name, median in (("ort-cpu-int8", 0.2), ("ort-cpu", 0.4))]
    return BenchReport(model={"path": "m.onnx"}, machine={}, settings={}, measurements=rows,
                       verify=verify_data())


def cells(table, runtime):
    """runtime -> its rows' cells by column name."""
    names = [c.name for c in table.columns]
    return [dict(zip(names, r.cells)) for r in table.rows if r.cells[0] == runtime]


def test_the_decision_says_what_left_each_runtime_out():
    decision = decide(the_report())
    assert decision.marks() == {"ort-cpu-int8": "excluded: drift", "numpy": "excluded: fail",
                                "torch-cpu": "excluded: not verified"}
    assert decision.mark("ort-cpu") is None
    assert all(s.winner.runtime == "ort-cpu" for s in decision.shapes)
    assert decision.to_dict()["excluded_as"]["ort-cpu-int8"] == "drift"


def test_tables_rank_only_candidates_and_mark_the_rest():
    report = the_report()
    marks = decide(report).marks()
    sequence = [m for m in report.measurements if not m.streaming]
    table = latency_table(sequence, marks)
    for group in table.groups:  # the candidate first, at 1.00x; the excluded after it, marked
        first = dict(zip([c.name for c in table.columns], group.rows[0].cells))
        assert first["runtime"] == "ort-cpu" and first["vs best"].strip() == "1.00x"
        assert [r.style for r in group.rows[1:]] == ["dim"] * 3
    for runtime, mark in marks.items():
        assert {c["vs best"] for c in cells(table, runtime)} == {mark}
    stream = streaming_table([m for m in report.measurements if m.streaming], marks)
    assert cells(stream, "ort-cpu")[0]["vs best"].strip() == "1.00x"
    assert cells(stream, "ort-cpu-int8")[0]["vs best"] == "excluded: drift"
    # without a decision (the live progress table) every row is ranked as before
    assert latency_table(sequence).rows[0].cells[0] == "ort-cpu-int8"


def test_every_writer_marks_the_excluded_rows():
    report = the_report()
    markdown = render_markdown(report)
    int8_rows = [line for line in markdown.splitlines() if line.startswith("| ort-cpu-int8 |")]
    assert int8_rows and all("excluded: drift" in line and "1.00x" not in line
                             for line in int8_rows[:3])
    page = render_html(report)
    assert page.count('<tr class="excluded">') + page.count('<tr class="group excluded">') >= 7
    assert "<td>excluded: drift</td>" in page and "tr.excluded td{" in page
    assert "no % peak for ort-cpu-int8 (int8)" in page
    console = Console(file=io.StringIO(), width=120, color_system=None)
    print_report(report, console)
    text = console.file.getvalue()
    assert "excluded: drift" in text and "excluded: not verified" in text


def test_every_plot_labels_the_excluded_runtimes():
    for caption, fig in report_figures(the_report()):
        labels = [t.get_text() for t in fig.texts] + [
            t.get_text() for ax in fig.axes for t in ax.get_yticklabels()] + [
            text.get_text() for legend in fig.legends for text in legend.get_texts()] + [
            label for ax in fig.axes for label in ax.get_legend_handles_labels()[1]]
        assert any("ort-cpu-int8" in label and "(excluded: drift)" in label
                   for label in labels), (caption, labels)
        assert not any(label == "ort-cpu-int8" for label in labels), caption


def test_excluded_lines_are_faded_and_do_not_set_the_fastest():
    (_, throughput) = [(c, f) for c, f in report_figures(the_report()) if "Throughput" in c][0]
    alphas = {line.get_label(): line.get_alpha() for ax in throughput.axes
              for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert alphas["ort-cpu-int8 (excluded: drift)"] == 0.4 and alphas["ort-cpu"] in (None, 1.0)


def test_no_peak_share_for_work_of_another_precision():
    int8, fp32 = row("ort-cpu-int8", 0.5), row("ort-cpu", 1.0)
    assert fp32.peak_share is not None and peak_text(fp32) != "–"
    assert peak_text(int8) == "–"  # int8 work against a float32 GEMM: no share of it
    markdown = render_markdown(the_report())
    assert "no % peak for ort-cpu-int8 (int8): the peak is a float32 GEMM's" in markdown


def test_a_bench_json_row_of_int8_work_has_no_peak_share(tiny, tmp_path):
    """The real runner: a calibrated bench of ort-cpu and ort-cpu-int8 writes no peak_share for
    the int8 rows, and says why in the report's notes."""
    from lstm_bench.cli import main

    out = tmp_path / "b.json"
    assert main(["bench", str(tiny), "--runtimes", "ort-cpu,ort-cpu-int8", "--batch", "1",
                 "--seq-len", "4", "--span", "0", "--blocks", "2", "--min-time", "0.002",
                 "--min-reps", "3", "--quiet", "--no-history", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = {r["runtime"]: r for r in doc["results"]}
    assert rows["ort-cpu-int8"]["peak_share"] is None
    assert rows["ort-cpu-int8"]["peak_gflops"] is None
    assert any(n.startswith("no % peak for ort-cpu-int8 (int8)") for n in doc["notes"])
    assert np.isfinite(rows["ort-cpu"]["gflops"])
