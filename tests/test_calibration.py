"""The GEMM peak that % of peak divides by: timed in the sweep's rotation at each thread count
(fake clock: exact rates), left out with a note when unsteady or too short, carried per row
through JSON and worker processes."""

import json

import numpy as np
import pytest

from lstm_bench.bench.harness import Settings, Subject, Timeline, sweep
from lstm_bench.bench.machine import MAX_SPREAD, MIN_BLOCKS, Calibration, GemmProbe, \
    blas_threads, calibration_text
from lstm_bench.bench.report import BenchReport
from lstm_bench.bench.runner import finish_document, with_peaks
from lstm_bench.cli import main
from tests.test_bench_harness import FakeClock, ScriptedRuntime

FLOPS = 10 ** 9  # the scripted GEMM: 1 GFLOP a call, so 1 ms a call is 1000 GFLOP/s


class ScriptedGemm(ScriptedRuntime):
    """A GEMM probe whose calls advance the fake clock by its script."""

    size = 8
    flops = FLOPS

    def __init__(self, clock, durations_ms):
        super().__init__("float32 GEMM", clock, durations_ms)


def run_sweep(gemm_scripts, threads=(1, 2), blocks=6):
    """One runtime (2 ms a call, 8 MFLOP) and a scripted GEMM per thread count."""
    clock = FakeClock()
    scripts = iter(gemm_scripts)
    settings = Settings(span=0, blocks=blocks, block=1, block_time=1, min_time=0, min_reps=1,
                        warmup_reps=1, warmup_time=0)
    subject = Subject("m.onnx", lambda b, t: {}, lambda b, t: 8 * 10 ** 6)
    (result,) = sweep([subject], {"r": lambda: ScriptedRuntime("r", clock, [2])}, [(1, 10)],
                      list(threads), settings, timeline=Timeline(clock),
                      probes={"gemm": lambda: ScriptedGemm(clock, next(scripts))})
    return with_peaks(result)


def test_each_thread_count_gets_its_own_peak_from_blocks_spread_through_its_rotation():
    result = run_sweep([[1], [0.5]])  # 1 thread: 1000 GFLOP/s; 2 threads: 2000
    assert [(c.threads, c.peak_gflops) for c in result.calibrations] == [(1, 1000.0), (2, 2000.0)]
    for c in result.calibrations:
        assert len(c.block_gflops) == 6 and c.spread == 0 and c.problem is None
    for m in result.measurements:  # 8 MFLOP in 2 ms = 4 GFLOP/s
        assert m.peak_gflops == 1000.0 * m.threads
        assert m.peak_share == pytest.approx(4.0 / (1000.0 * m.threads))


def test_an_unsteady_calibration_gives_no_peak_share_and_says_why():
    # 1 thread steady; 2 threads: one fast block, the others 3x slower (a lucky moment).
    # The GEMM's calls: one warm-up, then per round one untimed and one timed (block=1).
    result = run_sweep([[1], [1.5, 1.5, 0.5] + [1.5] * 20])
    steady, unsteady = result.calibrations
    assert steady.problem is None
    assert unsteady.spread == pytest.approx(1 - (2000 / 3) / 2000) and unsteady.spread > MAX_SPREAD
    assert "unsteady" in unsteady.problem and unsteady.usable_peak is None
    by_threads = {m.threads: m for m in result.measurements}
    assert by_threads[1].peak_share is not None
    assert by_threads[2].peak_gflops is None and by_threads[2].peak_share is None
    report = finish_document(result, model={"path": "m.onnx"}, threads_list=[1, 2],
                             load={"before": None, "after": None, "other_cores": None})
    (note,) = [n for n in report.notes if "% peak" in n]
    assert note.startswith("% peak left out at 2 threads: the GEMM rate was unsteady")
    assert "unreliable" in calibration_text(report.calibrations)
    # read back from JSON: each row keeps its own peak (None stays None, not the top-level one)
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["peak_gflops"] == 1000.0 and [c["reliable"] for c in doc["calibration"]] == [
        True, False]
    back = BenchReport.from_dict(doc)
    assert [(m.threads, m.peak_gflops) for m in back.measurements] == [(1, 1000.0), (2, None)]
    assert [c.block_gflops for c in back.calibrations] == [c.block_gflops
                                                           for c in report.calibrations]


def test_more_threads_peaking_below_fewer_threads_give_no_peak_share():
    # steady at both thread counts, but 2 threads at a third of the rate of 1 (held up)
    result = run_sweep([[1], [3]])
    one, two = result.calibrations
    assert one.problem is None and two.spread == 0 and two.fewer_threads_peak == 1000.0
    assert "below the 1000 it reached on fewer threads" in two.problem
    assert [m.peak_share is None for m in result.measurements] == [False, True]


def test_too_few_blocks_give_no_peak_share():
    result = run_sweep([[1]], threads=(1,), blocks=MIN_BLOCKS - 1)
    (calibration,) = result.calibrations
    assert calibration.problem.startswith(f"only {MIN_BLOCKS - 1} GEMM blocks")
    assert result.measurements[0].peak_share is None


def test_calibrations_of_worker_processes_pool_their_blocks_per_thread_count():
    parts = [Calibration(1, 384, (100.0, 90.0)), Calibration(2, 384, (150.0,)),
             Calibration(1, 384, (95.0,)), Calibration(2, 384, (160.0,), threads_set=False)]
    one, two = Calibration.merge(parts)
    assert (one.threads, one.block_gflops, one.threads_set) == (1, (100.0, 90.0, 95.0), True)
    assert (two.threads, two.block_gflops, two.threads_set) == (2, (150.0, 160.0), False)
    assert "cannot be set" in two.problem


def test_the_real_probe_multiplies_its_float32_matrices_at_the_thread_count_set():
    probe = GemmProbe(64)
    with blas_threads(1):
        probe.run({})
    assert probe.out.dtype == np.float32 and probe.flops == 2 * 64 ** 3
    np.testing.assert_allclose(probe.out, probe.a.astype(np.float64) @ probe.b, rtol=1e-4,
                               atol=1e-3)


def test_bench_in_worker_processes_records_one_calibration_and_each_row_its_peak(tiny, tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", str(tiny), "--runtimes", "ort-cpu", "--batch", "1,2", "--span", "0",
                 "--blocks", "3", "--min-time", "0.002", "--min-reps", "3", "--processes", "2",
                 "--quiet", "--no-history", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    (calibration,) = doc["calibration"]
    assert calibration["threads"] == 1 and calibration["size"] == 384
    assert calibration["blocks"] == len(calibration["block_gflops"]) >= 2  # both workers'
    peak = calibration["peak_gflops"] if calibration["reliable"] else None
    assert [row["peak_gflops"] for row in doc["results"]] == [peak, peak]
    assert any(n.startswith("% peak left out") for n in doc["notes"]) == (peak is None)
