"""Every terminal table fits 80 and 120 columns with runtime names never cut.

The bench report is built from measurement data (the real types, samples chosen to give the
widest cells: long CIs, thousands of ms, 4-digit noise); verify's table comes from a real
verify run on the tiny model."""

import io
import re

import numpy as np
import pytest
from rich.console import Console

from lstm_bench.bench.tables import summary_table
from lstm_bench.bench.report import BenchReport, Skip
from lstm_bench.verify.report import VerifySummary
from lstm_bench.bench.stats import Block, Measurement
from lstm_bench.cli.terminal import print_report, print_table
from lstm_bench.runtimes.registry import RUNTIMES

NAMES = list(RUNTIMES) + ["torch-source"]


def samples(median_ms, spread, n=40, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(int(x) for x in median_ms * 1e6 * rng.lognormal(0.0, spread, n))


def wide_report() -> BenchReport:
    """Every registered runtime at two batches and two thread counts, with figures of every
    width from 0.06 ms to 2,200 ms and noise from 3 % to thousands of percent."""
    measurements = []
    for i, name in enumerate(NAMES):
        for batch in (1, 32):
            for threads in (1, 16):
                median = 0.0667 * (1 + i) ** 3 * batch / threads
                measurements.append(Measurement(
                    name, batch, 100, threads, samples(median, 0.03 + 0.6 * (i % 3), seed=i),
                    flops=8 * 50 * 51 * batch * 100, peak_gflops=20.0,
                    cold={"open": 0.5 * (1 + i) ** 4, "first_run": 1.5 * i},
                    peak_memory_mb=12.5 * i))
    verify = VerifySummary.from_verify_json({"passed": False, "inputs": {"seq_len": 100},
                                             "results": [
        {"runtime": name, "status": ("pass", "fail", "skip")[i % 3],
         "reason": "no CUDA device: libcuda.so.1 (the NVIDIA driver) is not installed"
         if i % 3 == 2 else None, "precision": "float32",
         "tolerance": {"atol": 1e-5, "rtol": 1e-4},
         "outputs": [{"name": "Y", "dtype": "float32", "shape": [100, 1, 1, 50],
                      "max_abs": 10.0 ** -(i + 3)}]}
        for i, name in enumerate(NAMES)]})
    return BenchReport(model={"path": "seed.onnx"}, machine={}, settings={},
                       measurements=measurements, verify=verify,
                       skipped=[Skip("ort-cuda", "no CUDA device: libcuda.so.1 (the NVIDIA "
                                     "driver) is not installed on this machine")])


def render(width, draw) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    draw(console)
    return console.export_text()


def assert_fits(text, width, names):
    lines = text.splitlines()
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, too_long[:3]
    assert "…" not in text  # rich's ellipsis: a cut cell
    for name in names:  # each name whole at the start of a row, followed by space
        assert any(re.match(rf"\s*{re.escape(name)}(\s|$)", line) for line in lines), name


@pytest.mark.parametrize("width", [80, 120])
def test_bench_report_fits(width):
    report = wide_report()
    text = render(width, lambda c: print_report(report, c))
    assert_fits(text, width, NAMES)
    assert text.lstrip().startswith("decision:")
    if width >= 100:
        assert "p99 ms" in text and "% peak" in text  # the wide set
    else:
        assert "p99 ms" not in text


@pytest.mark.parametrize("width", [80, 120])
def test_run_summary_fits_with_one_verdict_per_runtime(width):
    report = wide_report()
    text = render(width, lambda c: print_table(c, summary_table(report)))
    assert_fits(text, width, NAMES)
    for name in NAMES:
        (row,) = [line for line in text.splitlines() if re.match(rf"\s*{re.escape(name)}\s", line)]
        assert len(re.findall(r"\b(pass|fail|skip|error)\b", row)) == 1


@pytest.mark.parametrize("width", [80, 120])
def test_verify_table_fits(tiny, width):
    from cases import verify_file
    from lstm_bench.cli.verify import render as render_verify

    names = ["ort-cpu", "numpy", "onnx-reference", "ort-cpu-int8", "ort-cuda",
             max(RUNTIMES, key=len)]  # the longest name
    report = verify_file(tiny, names, batch=2, seq_len=3)
    text = render(width, lambda c: render_verify(report, c))
    assert_fits(text, width, names)
    assert ("max ulp" in text) == (width >= 100)


def test_plots_give_each_runtime_one_colour_and_each_thread_count_one_style():
    from lstm_bench.bench.plots import runtime_colours, thread_styles

    colours = runtime_colours(NAMES)
    assert len(set(colours[n] for n in NAMES)) == len(NAMES)
    # the colour of a runtime does not depend on which others are in the plot
    assert runtime_colours(["numpy"])["numpy"] == colours["numpy"]
    styles = thread_styles([1, 2, 4, 16])
    assert len({line for line, _ in styles.values()}) == 4
    assert len({marker for _, marker in styles.values()}) == 4


# compare, history and the lines around the tables, through the command line as a user runs
# it: the width from $COLUMNS (no terminal under pytest), the output as a pipe or a log gets it

def blocked(runtime, median_ms, threads=1, batch=1, seq_len=100, blocks=12, mode="sequence"):
    """A measurement of ``blocks`` blocks of 3 calls, block medians spread 4 % evenly."""
    medians = median_ms * (1 + 0.04 * np.linspace(-1, 1, blocks))
    return Measurement(runtime, batch, seq_len, threads,
                       tuple(int(m * 1e6) for m in medians for _ in range(3)),
                       blocks=tuple(Block(0, i, i, 3) for i in range(blocks)), mode=mode)


def sweep(factor, names=NAMES, sha="ab" * 32, path="m.onnx"):
    """Every runtime at two thread counts, whole sequences and streaming chunks; runtime i
    slowed by ``factor(i)``."""
    rows = []
    for i, name in enumerate(names):
        for threads in (1, 16):
            base = 0.0667 * (1 + i) ** 2 / threads * factor(i)
            rows += [blocked(name, base, threads), blocked(name, base * 300, threads, batch=32),
                     blocked(name, base / 50, threads, seq_len=1, mode="streaming")]
    return BenchReport(model={"path": path, "sha256": sha}, machine={"cpu": "Some CPU",
                       "cores": 2, "git_commit": "0123456789abcdef"}, settings={},
                       measurements=rows)


def cli_out(capsys, monkeypatch, width, argv, code=0):
    from lstm_bench.cli import main

    monkeypatch.setenv("COLUMNS", str(width))
    assert main(argv) == code
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line != line.rstrip()]  # no padding
    return out


@pytest.mark.parametrize("width", [80, 120])
def test_compare_fits_and_shows_what_decides_each_verdict(tmp_path, capsys, monkeypatch, width):
    from lstm_bench.files import write_json

    base, new = tmp_path / "base.json", tmp_path / "new.json"
    write_json(base, sweep(lambda i: 1.0).to_dict())
    # every third runtime 20 % slower, every third 20 % faster, the rest unchanged
    write_json(new, sweep(lambda i: (1.0, 1.2, 0.8)[i % 3]).to_dict())
    out = cli_out(capsys, monkeypatch, width, ["compare", str(base), str(new)], code=1)
    assert_fits(out, width, NAMES)
    verdicts = {"regression", "faster", "within noise"}
    rows = [line for line in out.splitlines() if re.match(r"(\S+)\s+\d", line)
            and line.split()[0] in NAMES]
    assert len(rows) == len(NAMES) * 2 * 3
    # each value whole on the runtime's line: change, the interval the verdict tested (issue
    # 21: over the worker processes' medians), the spread it came from (wide), the verdict
    for line in rows:
        assert re.search(r"[+-]\d+\.\d %\s+[+-]\d+\.\d\.\.[+-]\d+\.\d\s+"
                         r"(1\+1 proc, 4 % assumed\s+)?(regression|faster|within noise)$",
                         line), line
    assert {v for v in verdicts if any(line.endswith(v) for line in rows)} == verdicts
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("runtime"))
    header = "\n".join(lines[at - 1:at + 1])  # two-line headers: "90 %" over "interval"
    assert "90 %" in header and "interval" in header
    assert "A regression: the whole interval above +5 %" in " ".join(out.split())
    # threads and streaming chunks are headings, not cells that could wrap
    assert "b=1 T=100 thr=16" in out.splitlines() and "stream c=1 b=1 thr=1" in out.splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_compare_with_the_machine_speed_fits(tmp_path, capsys, monkeypatch, width):
    """Two reports with the machine's speed probe (bench.speed), the machine 30 % slower for
    NEW: the machine column on wide terminals only, the note at every width."""
    from lstm_bench.bench.speed import identity
    from lstm_bench.files import write_json

    paths = []
    for name, probe_ms in (("base", 0.17), ("new", 0.221)):
        doc = sweep(lambda i: 1.3 if name == "new" else 1.0).to_dict()
        doc["machine"]["speed"] = [{**identity(), "threads": t, "median_ms": probe_ms,
                                    "process_ms": [probe_ms], "calls": 100} for t in (1, 16)]
        paths.append(tmp_path / f"{name}.json")
        write_json(paths[-1], doc)
    out = cli_out(capsys, monkeypatch, width, ["compare", *map(str, paths)])
    assert_fits(out, width, NAMES)
    header = next(line for line in out.splitlines() if line.startswith("runtime"))
    assert ("machine" in header) == (width >= 120)
    assert "the machine itself ran 30 % slower while NEW was measured" in " ".join(out.split())


def record_two_models(db):
    from lstm_bench.bench import history

    for factor in (1.0, 1.0, 1.3):
        history.record(sweep(lambda i: factor), db, "bench")
        history.record(sweep(lambda i: 1 / factor, names=NAMES[:3], sha="cd" * 32,
                             path="other.onnx"), db, "bench")


@pytest.mark.parametrize("width", [80, 120])
def test_history_fits_with_a_heading_per_model(tmp_path, capsys, monkeypatch, width):
    db = tmp_path / "h.sqlite"
    record_two_models(db)
    out = cli_out(capsys, monkeypatch, width, ["history", "--db", str(db)])
    assert_fits(out, width, NAMES)
    joined = " ".join(out.split())
    headings = [line for line in out.splitlines() if "(sha256 " in line]
    assert "m.onnx (sha256 abababababab) on Some CPU" in joined
    assert "other.onnx (sha256 cdcdcdcdcdcd) on Some CPU" in joined
    assert joined.index("m.onnx (sha256") < joined.index("other.onnx (sha256")
    assert len(headings) == 2
    # every series row whole: runs, first, last and its change points on one line
    figure = r"[\d.,e+-]+"
    rows = [line for line in out.splitlines()
            if re.match(rf"\S+\s+3\s+{figure}\s+{figure}\s", line)]
    assert len(rows) == (len(NAMES) + 3) * 2 * 3
    assert all(line.rstrip().endswith(("%", "none")) or re.search(r"[0-9a-f]{12}$", line)
               for line in rows)


def test_history_writes_its_page_before_a_closed_pipe_and_exits_0(tmp_path):
    """`lstm-bench history --html h.html | head -2`: the reader has gone before the first
    line; the page is written all the same, no traceback, exit 0."""
    import subprocess
    import sys

    db = tmp_path / "h.sqlite"
    record_two_models(db)
    page = tmp_path / "h.html"
    proc = subprocess.Popen([sys.executable, "-m", "lstm_bench.cli", "history", "--db", str(db),
                             "--html", str(page)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # no reader left: the first write finds the pipe broken
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_paths_and_commands_are_never_broken_across_lines(tiny, tmp_path, capsys, monkeypatch):
    """At 80 columns, bench's `wrote` and `recorded as run #N` lines keep each path whole on
    a line, and the decision lines carry no padding (``cli_out``)."""
    deep = tmp_path / ("a-folder-with-a-long-name-" * 3) / "reports"
    deep.mkdir(parents=True)
    db = deep / "history.sqlite"
    argv = ["bench", str(tiny), "--runtimes", "ort-cpu,numpy", "--batch", "1", "--seq-len", "3",
            "--span", "0", "--blocks", "3", "--min-time", "0.002", "--min-reps", "3",
            "--no-calibrate", "--quiet", "--db", str(db), "--json", str(deep / "b.json"),
            "--md", str(deep / "b.md")]
    out = cli_out(capsys, monkeypatch, 80, argv)
    lines = out.splitlines()
    for path in (db, deep / "b.json", deep / "b.md", f"lstm-bench history --db {db}"):
        assert any(str(path) in line for line in lines), path
    # a line longer than 80 columns is one path (or the command) alone
    for line in (line for line in lines if len(line) > 80):
        assert line.strip() in {str(db), str(deep / "b.json"), str(deep / "b.md"),
                                f"lstm-bench history --db {db}"}, line
    assert re.search(r"^recorded as run #1 in", out, re.M)


@pytest.mark.parametrize("width", [80, 120])
def test_streaming_tables_drop_columns_rather_than_cut_a_figure(width):
    """Four runtimes at chunks 1 and 10, batches 1 and 4, 1 and 2 threads, figures as wide as
    a fast streaming call gives (0.002634 ms, 0.0002634 ms a step): the table keeps fewer
    columns, never a cut heading or figure; the per-call median, its ratio and the noise stay."""
    names = ["ort-cpu", "numpy", "onnx-reference", "openvino-cpu-static"]
    rows = [blocked(name, 0.002634 * (1 + i) * chunk * batch / threads, threads, batch=batch,
                    seq_len=chunk, mode="streaming")
            for i, name in enumerate(names) for chunk in (1, 10) for batch in (1, 4)
            for threads in (1, 2)]
    report = BenchReport(model={"path": "seed.onnx"}, machine={}, settings={},
                         measurements=rows)
    text = render(width, lambda c: print_report(report, c))
    assert_fits(text, width, names)
    part = text[text.index("streaming: latency per call"):]
    header = next(line for line in part.splitlines() if line.lstrip().startswith("runtime"))
    for column in ("thr", "p50 ms", "vs best", "p50/step", "noise"):
        assert column in header.split("  ") or f" {column}" in header, (column, header)
    assert "0.002634" in part  # a figure of 7 significant places whole


@pytest.mark.parametrize("width", [80, 120])
def test_streaming_bench_through_the_command_line_fits(tiny, capsys, monkeypatch, width):
    """`lstm-bench bench M --streaming --chunk 1,10 --threads 1,2` as the review ran it."""
    argv = ["bench", str(tiny), "--streaming", "--runtimes", "ort-cpu,numpy", "--chunk", "1,10",
            "--threads", "1,2", "--span", "0", "--blocks", "3", "--min-time", "0.002",
            "--min-reps", "3", "--no-calibrate", "--no-history"]
    out = cli_out(capsys, monkeypatch, width, argv)
    assert_fits(out, width, ["ort-cpu", "numpy"])
    assert "streaming: latency per call" in out


@pytest.mark.parametrize("width", [80, 100, 108, 117, 120])
def test_verify_table_never_splits_an_output_name(tiny, width):
    """The widest cells verify prints: a layer-alone output name ("node_lstm__2 alone: Y"),
    a ULP count of 10 figures and a widened limit, on the longest runtime names. Columns go
    (max ulp first) rather than an identifier being folded."""
    import dataclasses

    from cases import verify_file
    from lstm_bench.cli.verify import render as render_verify
    from lstm_bench.verify.verdict import LayerVerdict

    names = ["ort-cpu", "openvino-cpu-static", "ort-cpu-int8"]
    report = verify_file(tiny, names, batch=2, seq_len=3)

    def with_layer(result):  # shown as "node_lstm__2 alone: <output>"
        outputs = tuple(dataclasses.replace(o, max_ulp=1986537725, ulp_dtype="float32",
                                            float32_floor=1e-3) for o in result.outputs)
        return dataclasses.replace(result, lstm_layers=(LayerVerdict(
            "node_lstm__2 alone", "Y, batch 8, seq_len 3", result.status, outputs=outputs),))

    report = dataclasses.replace(report, results=tuple(map(with_layer, report.results)))
    text = render(width, lambda c: render_verify(report, c))
    ran = [r.runtime for r in report.results if r.status != "skip"]
    assert_fits(text, width, ran)
    body = text.splitlines()
    # every identifier whole on its line, in the table and in the notes under it
    assert "node_lstm__2" in text
    for line in body:
        assert set(re.findall(r"\w*(?:lstm|__)\w*", line)) <= {"node_lstm__2"}, line
        assert set(re.findall(r"(\S+) alone", line)) <= {"node_lstm__2"}, line


def test_history_says_a_single_run_is_nothing_compared_yet(tmp_path, capsys, monkeypatch):
    """A model recorded once has no change points because nothing was tested, not because its
    series stayed within noise: each model's line says which, on the terminal and the page."""
    from lstm_bench.bench import history

    db, page = tmp_path / "h.sqlite", tmp_path / "h.html"
    history.record(sweep(lambda i: 1.0, names=NAMES[:2]), db, "bench")
    for _ in range(2):
        history.record(sweep(lambda i: 1.0, names=NAMES[:2], sha="cd" * 32,
                             path="other.onnx"), db, "bench")
    out = cli_out(capsys, monkeypatch, 80, ["history", "--db", str(db), "--html", str(page)])
    joined = " ".join(out.split())
    once = joined[joined.index("m.onnx (sha256"):joined.index("other.onnx (sha256")]
    twice = joined[joined.index("other.onnx (sha256"):]
    assert "only one run so far: nothing to compare yet" in once
    assert "within noise" not in once
    assert "stayed within noise" in twice and "nothing to compare" not in twice
    html = page.read_text()
    assert html.count("only one run so far: nothing to compare yet") == 1
    assert "3 runs," in html and "1 runs" not in html
