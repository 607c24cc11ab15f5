"""Every terminal table fits 80 and 120 columns with runtime names never cut.

The bench report is built from measurement data (the real types, samples chosen to give the
widest cells: long CIs, thousands of ms, 4-digit noise); verify's table comes from a real
verify run on the tiny model."""

import io
import re

import numpy as np
import pytest
from rich.console import Console

from lstm_bench.bench.cli_run import summary_table
from lstm_bench.bench.report import BenchReport, Skip, VerifySummary
from lstm_bench.bench.stats import Measurement
from lstm_bench.bench.terminal import print_report
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
         "outputs": [{"name": "Y", "max_abs": 10.0 ** -(i + 3)}]}
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
    text = render(width, lambda c: c.print(summary_table(report)))
    assert_fits(text, width, NAMES)
    for name in NAMES:
        (row,) = [line for line in text.splitlines() if re.match(rf"\s*{re.escape(name)}\s", line)]
        assert len(re.findall(r"\b(pass|fail|skip|error)\b", row)) == 1


@pytest.mark.parametrize("width", [80, 120])
def test_verify_table_fits(tiny, width):
    from lstm_bench.runtimes.cli_verify import render as render_verify
    from lstm_bench.runtimes.verify import verify

    names = ["ort-cpu", "numpy", "onnx-reference", "ort-cpu-int8", "ort-cuda",
             max(RUNTIMES, key=len)]  # the longest name
    report = verify(tiny, names, batch=2, seq_len=3)
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
