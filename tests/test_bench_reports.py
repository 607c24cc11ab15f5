"""`lstm-bench bench` on a tiny model with the real ort-cpu runtime, and every report format
parsed back: JSON with the required keys, the Markdown table, a self-contained HTML page."""

import base64
import json
import re

import pytest

from lstm_bench.bench.report import load_json, render_html, render_markdown, verify_section
from lstm_bench.cli import main

FAST = ["--span", "0", "--blocks", "3", "--min-time", "0.002", "--min-reps", "3", "--no-calibrate",
        "--quiet"]


@pytest.fixture(scope="module")
def reports(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    paths = {kind: out / f"bench.{kind}" for kind in ("json", "md", "html")}
    argv = ["bench", str(tiny), "--runtimes", "ort-cpu", "--batch", "1,3", "--seq-len", "2,5",
            "--threads", "1,2", *FAST[:-2], "--quiet"]
    assert main(argv + [f"--{kind}={path}" for kind, path in paths.items()]) == 0
    return paths


def test_json_has_every_figure_and_the_raw_samples(reports):
    doc = json.loads(reports["json"].read_text())
    assert {"results", "machine", "settings", "model", "skipped"} <= set(doc)
    assert {"cpu", "cores", "libraries", "thread_settings", "git_commit"} <= set(doc["machine"])
    assert doc["machine"]["libraries"]["onnxruntime"]
    rows = doc["results"]
    assert {(r["batch"], r["seq_len"], r["threads"]) for r in rows} == {
        (b, t, n) for b in (1, 3) for t in (2, 5) for n in (1, 2)}
    for row in rows:
        assert row["runtime"] == "ort-cpu"
        assert set(row["latency_ms"]) >= {"min", "median", "mean", "p90", "p99"}
        lat = row["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p99"]
        assert row["throughput"]["sequences_per_s"] > 0 and row["throughput"]["steps_per_s"] > 0
        assert len(row["samples_ns"]) == row["reps"] >= 3
        assert row["cold_start_ms"]["open"] > 0 and row["cold_start_ms"]["first_run"] > 0
        assert row["flops"] == 8 * 4 * (2 + 4) * row["batch"] * row["seq_len"]
    assert load_json(reports["json"]) == doc


def test_markdown_table_parses_back(reports):
    doc = json.loads(reports["json"].read_text())
    lines = reports["md"].read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| runtime | batch"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    body = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        body.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    assert len(body) == len(doc["results"])
    for cells, row in zip(body, doc["results"]):
        assert (cells["runtime"], int(cells["batch"]), int(cells["seq_len"]),
                int(cells["threads"])) == (row["runtime"], row["batch"], row["seq_len"],
                                           row["threads"])
        assert float(cells["median ms"]) == pytest.approx(row["latency_ms"]["median"], rel=1e-3)


def test_html_is_self_contained_with_the_plots(reports):
    page = reports["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    captions = [c for c, _ in images]
    assert {"Latency against batch", "Throughput against sequence length",
            "Latency against threads", "Cold start"} <= set(captions)
    for _, data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    # nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<script" not in page and "<link" not in page


def test_verify_data_gives_the_error_per_step_plot(reports):
    doc = json.loads(reports["json"].read_text())
    verify = {"passed": True, "inputs": {"seq_len": 5}, "results": [
        {"runtime": "ort-cpu", "status": "pass", "reason": None,
         "outputs": [{"name": "Y", "max_abs": 2e-7, "per_step_max_abs": [1e-8, 5e-8, 2e-7]}]},
        {"runtime": "ort-cuda", "status": "skip", "reason": "no GPU", "outputs": []}]}
    doc["verify"] = verify_section(verify)
    assert doc["verify"]["runtimes"]["ort-cpu"]["per_step_max_abs_error"] == [1e-8, 5e-8, 2e-7]
    assert "Verify: error per time step" in render_html(doc)
    markdown = render_markdown(doc)
    assert "| ort-cpu | 2e-07 | pass |" in markdown and "skip: no GPU" in markdown


def test_terminal_table_lists_every_row(tiny, capsys):
    assert main(["bench", str(tiny), "--runtimes", "ort-cpu", "--batch", "2",
                 "--seq-len", "3", *FAST]) == 0
    out = capsys.readouterr().out
    assert "ort-cpu" in out and "median ms" in out and "cold start" in out
