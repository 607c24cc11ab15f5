"""The harness and its statistics against an injected fake clock: exact figures.

The fake clock only moves when a scripted runtime "runs" (or opens), by the durations in its
script, so every sample, every stopping decision and every statistic is known in advance.
"""

import math

import numpy as np
import pytest

from lstm_bench.bench.harness import Cell, Settings, Subject, Timeline, measure, sweep, \
    time_call
from lstm_bench.bench.machine import _openblas_threads_api, blas_threads, busy_warning, \
    check_threads, cpu_snapshot, default_threads, other_cores, usable_cores
from lstm_bench.bench.stats import Block, Measurement, find_phases, latency_stats, merge
from lstm_bench.errors import LSTMBenchError
from lstm_bench.runtimes.base import BaseRuntime

MS = 1_000_000  # ns


class FakeClock:
    def __init__(self):
        self.now = 0
        self.reads = 0

    def __call__(self):
        self.reads += 1
        return self.now


class ScriptedRuntime(BaseRuntime):
    """Each run() advances the fake clock by the next duration of its script (cycled)."""

    device = "cpu"

    def __init__(self, name, clock, durations_ms, open_ms=0.0, log=None):
        self.name, self.clock, self.durations = name, clock, [int(d * MS) for d in durations_ms]
        self.open_ns, self.calls, self.log = int(open_ms * MS), 0, log if log is not None else []
        self.opened_with = None
        self.synced = 0

    def available(self):
        return None

    def open(self, model, *, threads=None):
        self.opened_with = threads
        self.clock.now += self.open_ns

    def run(self, feeds):
        self.clock.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1
        self.log.append(self.name)
        return {}

    def synchronize(self):
        self.synced += 1

    def close(self):
        pass


def test_statistics_exact():
    stats = latency_stats([i * MS for i in range(1, 11)])  # 1..10 ms
    assert (stats.min, stats.median, stats.mean, stats.max) == (1.0, 5.5, 5.5, 10.0)
    assert stats.p90 == pytest.approx(9.1) and stats.p99 == pytest.approx(9.91)
    assert stats.stddev == pytest.approx(math.sqrt(sum((i - 5.5) ** 2 for i in range(1, 11)) / 9))
    assert stats.iqr == pytest.approx(7.75 - 3.25)
    # order-statistic CI, n = 10: (x(2), x(9)) covers 1 - 2*11/1024 = 97.9 %, (x(3), x(8)) 89 %
    assert stats.median_ci == (2.0, 9.0)


@pytest.mark.parametrize("n", [2, 5, 6, 7, 10, 39, 40, 41, 250, 1001, 4000])
def test_median_ci_is_scipys_quantile_test_interval(n):
    from scipy.stats import quantile_test

    from lstm_bench.bench.stats import median_ci

    values = np.random.default_rng(n).lognormal(size=n)
    ci = quantile_test(values, q=float(np.median(values)), p=0.5).confidence_interval(0.95)
    expected = ((float(ci.low), float(ci.high)) if np.isfinite(ci.low) and np.isfinite(ci.high)
                else None)
    assert median_ci(values) == expected


def test_one_sample_has_no_spread_and_no_ci():
    stats = latency_stats([5 * MS])
    assert (stats.median, stats.stddev, stats.iqr, stats.median_ci) == (5.0, 0.0, 0.0, None)


def test_measurement_derived_figures_and_noise():
    m = Measurement("x", batch=8, seq_len=100, threads=2, samples_ns=(2 * MS,) * 5,
                    flops=10**9, peak_gflops=1000.0)
    assert m.sequences_per_s == pytest.approx(4000)
    assert m.steps_per_s == pytest.approx(400_000)
    assert m.gflops == pytest.approx(500) and m.peak_share == pytest.approx(0.5)
    assert not m.noisy and m.warning() is None
    noisy = Measurement("x", 1, 10, 1, samples_ns=(10 * MS, 10 * MS, 10 * MS, 12 * MS, 14 * MS))
    assert noisy.noise == pytest.approx(2 / 10) and noisy.noisy  # IQR 10..12 = 2, median 10
    assert noisy.warning() == "x b=1 T=10 threads=1: IQR over blocks is 20% of the median"
    row = m.as_dict()
    assert row["latency_ms"]["median"] == 2.0 and row["samples_ns"] == [2 * MS] * 5
    assert Measurement.from_dict(row).stats == m.stats


def test_time_call_reads_the_clock_around_run_and_synchronize():
    clock = FakeClock()
    runtime = ScriptedRuntime("a", clock, [3])
    assert time_call(runtime, {}, clock) == 3 * MS
    assert clock.reads == 2 and runtime.synced == 1


def cell_of(m):
    """(runtime, batch, seq_len, threads) of a measurement."""
    return m.key.runtime, m.key.batch, m.key.seq_len, m.key.threads


def cells_of(*runtimes):
    return [Cell(r, {}) for r in runtimes]


def test_calls_per_block_from_min_time_min_reps_max_reps_and_max_time():
    s = Settings(blocks=10, block=5, block_time=0.002, min_time=0.2, min_reps=10,
                 max_reps=10_000, max_time=10)
    assert s.calls_per_block(1 * MS) == 20  # 10 blocks x 20 calls x 1 ms = 0.2 s
    assert Settings(min_time=0, block=5).calls_per_block(0.1 * MS) == 5  # at least `block` ...
    assert Settings(min_time=0, block=5).calls_per_block(0.7 * MS) == 3  # ... or 2 ms of calls
    assert s.calls_per_block(100 * MS) == 1  # 1 call fills 2 ms; 10 x 100 ms >= min_time
    # what is missing, spread over the blocks left: 0.1 s in 5 blocks of 1 ms calls
    assert s.calls_per_block(1 * MS, timed_ns=100 * MS, reps=100, blocks_done=5) == 20
    assert s.calls_per_block(1_000) == 1000  # 10 x 1000 = 10_000 = max_reps
    assert s.calls_per_block(2_000 * MS) == 1  # 3 blocks of 1 call fit in max_time
    assert Settings(blocks=2, block=1, min_time=0, min_reps=10).calls_per_block(MS) == 5


def test_rounds_interleave_blocks_with_one_untimed_call_each():
    clock, log = FakeClock(), []
    a = ScriptedRuntime("a", clock, [1], log=log)
    b = ScriptedRuntime("b", clock, [2], log=log)
    settings = Settings(span=0, blocks=3, block=2, block_time=1, min_time=0, min_reps=1,
                        warmup_reps=1, warmup_time=0)
    cells = cells_of(a, b)
    measure(cells, settings, Timeline(clock, process=4))
    # warm-up: one call each; then 3 rounds of (1 untimed + 2 timed) per runtime
    assert log == ["a", "b"] + (["a"] * 3 + ["b"] * 3) * 3
    assert cells[0].samples == [MS] * 6 and cells[1].samples == [2 * MS] * 6
    # the sweep's origin is the clock after the warm-up (3 ms); a round takes 3 + 6 ms
    assert cells[0].blocks == [Block(4, 0, 1 * MS, 2), Block(4, 1, 10 * MS, 2),
                               Block(4, 2, 19 * MS, 2)]
    assert [blk.start_ns for blk in cells[1].blocks] == [5 * MS, 14 * MS, 23 * MS]


def test_rounds_are_spread_over_the_span_with_untimed_calls_between():
    clock, log = FakeClock(), []
    a = ScriptedRuntime("a", clock, [1], log=log)
    settings = Settings(span=0.012, blocks=3, block=2, min_time=0, min_reps=1, warmup_reps=0,
                        warmup_time=0)
    cells = cells_of(a)
    measure(cells, settings, Timeline(clock))
    # rounds due at 0, 4 and 8 ms; a round takes 3 ms, so one untimed call fills each gap
    assert [blk.start_ns for blk in cells[0].blocks] == [1 * MS, 5 * MS, 9 * MS]
    assert a.calls == 3 * 3 + 2 and cells[0].samples == [MS] * 6


def test_a_cell_stays_until_min_time_and_a_slow_one_leaves_at_max_time():
    clock = FakeClock()
    # the warm-up call takes 10 ms, so 1 call a block looks like enough for 2 blocks and 6 ms;
    # the calls then take 1 ms: the second block takes the 5 calls still missing
    fast = ScriptedRuntime("fast", clock, [10] + [1] * 99)
    settings = Settings(span=0, blocks=2, block=1, min_time=0.006, min_reps=1, warmup_reps=1,
                        warmup_time=0)
    cells = cells_of(fast)
    measure(cells, settings, Timeline(clock))
    assert [b.calls for b in cells[0].blocks] == [1, 5] and cells[0].samples == [MS] * 6
    slow = ScriptedRuntime("slow", clock, [400])
    cells = cells_of(slow)
    measure(cells, Settings(span=0, blocks=10, max_time=1.0, warmup_reps=1, warmup_time=0),
            Timeline(clock))
    assert len(cells[0].blocks) == 3 and len(cells[0].samples) == 3  # 1.2 s >= 1 s, 3 blocks


def test_sweep_cold_start_warmup_threads_and_shared_rotation():
    clock = FakeClock()
    made = []

    def factory(name, durations, open_ms):
        def make():
            made.append(ScriptedRuntime(name, clock, durations, open_ms))
            return made[-1]
        return make

    # a: first call 9 ms (cold), then 1 ms; b: always 2 ms. Warm-up: 3 calls, no minimum time.
    factories = {"a": factory("a", [9] + [1] * 99, 50), "b": factory("b", [2], 20)}
    settings = Settings(span=0, blocks=2, block=2, block_time=1, min_time=0, min_reps=2,
                        warmup_reps=3, warmup_time=0)
    subject = Subject("model.onnx", lambda b, t: {}, lambda b, t: 8 * b * t)
    (result,) = sweep([subject], factories, [(4, 10), (1, 10)], [1, 2], settings,
                      timeline=Timeline(clock))
    assert [r.opened_with for r in made] == [1, 1, 2, 2]
    assert [cell_of(m) for m in result.measurements] == [
        ("a", 4, 10, 1), ("b", 4, 10, 1), ("a", 1, 10, 1), ("b", 1, 10, 1),
        ("a", 4, 10, 2), ("b", 4, 10, 2), ("a", 1, 10, 2), ("b", 1, 10, 2)]
    by_key = {cell_of(m): m for m in result.measurements}
    a1 = by_key["a", 4, 10, 1]
    assert a1.cold == {"open": 50.0, "first_run": 9.0}
    assert a1.samples_ns == (MS,) * 4  # the 9 ms call was the first run, not a sample
    assert [blk.round for blk in a1.blocks] == [0, 1]
    assert by_key["b", 1, 10, 2].cold == {"open": 20.0, "first_run": 2.0}
    assert by_key["b", 1, 10, 2].samples_ns == (2 * MS,) * 4
    assert a1.stats.median == 1.0 and a1.steps_per_s == pytest.approx(40 / 1e-3)
    assert a1.flops == 320 and a1.gflops == pytest.approx(320 / 1e-3 / 1e9)
    # one rotation for both shapes: round 0 of shape (1, 10) starts before round 1 of (4, 10)
    assert by_key["a", 1, 10, 1].blocks[0].start_ns < a1.blocks[1].start_ns
    assert result.skipped == []


def test_sweep_of_two_models_interleaves_them_block_by_block():
    clock, log = FakeClock(), []
    factories = {"r": lambda: ScriptedRuntime("r", clock, [1], log=log)}
    feeds_base, feeds_new = {"which": "base"}, {"which": "new"}
    seen = []

    class Recording(ScriptedRuntime):
        def run(self, feeds):
            seen.append(feeds["which"])
            return super().run(feeds)

    factories = {"r": lambda: Recording("r", clock, [1], log=log)}
    subjects = [Subject("base.onnx", lambda b, t: feeds_base),
                Subject("new.onnx", lambda b, t: feeds_new)]
    settings = Settings(span=0, blocks=2, block=1, min_time=0, min_reps=1, warmup_reps=0,
                        warmup_time=0)
    base, new = sweep(subjects, factories, [(1, 1)], [1], settings, timeline=Timeline(clock))
    assert [m.key for m in base.measurements] == [m.key for m in new.measurements]
    # open + first run for each, then rounds of (untimed, timed) base, then new
    assert seen == ["base", "new"] + ["base", "base", "new", "new"] * 2
    assert [b.round for b in base.measurements[0].blocks] == [0, 1]
    assert [b.round for b in new.measurements[0].blocks] == [0, 1]


def test_sweep_skips_a_runtime_that_cannot_open():
    clock = FakeClock()

    class Broken(ScriptedRuntime):
        def open(self, model, *, threads=None):
            raise LSTMBenchError("broken: cannot load")

    (result,) = sweep([Subject("m.onnx", lambda b, t: {})],
                      {"ok": lambda: ScriptedRuntime("ok", clock, [1]),
                       "broken": lambda: Broken("broken", clock, [1])},
                      [(1, 1)], [1], Settings(span=0, min_time=0, min_reps=2, block=1, blocks=2),
                      timeline=Timeline(clock))
    assert [m.runtime for m in result.measurements] == ["ok"]
    # the skip names the runtime; its reason does not again
    assert result.skipped == [{"runtime": "broken", "threads": 1, "reason": "cannot load"}]


@pytest.mark.parametrize("changes", [{"min_reps": 0}, {"max_reps": 1, "min_reps": 2},
                                     {"min_time": -1}, {"block": 0}, {"blocks": 0},
                                     {"processes": 0}, {"span": -1}, {"span": float("nan")}])
def test_bad_settings(changes):
    with pytest.raises(LSTMBenchError):
        Settings(**changes)


def test_sweep_skips_a_runtime_whose_first_run_raises_its_own_error():
    clock = FakeClock()

    class Failing(ScriptedRuntime):
        def run(self, feeds):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : no kernel\nsecond line")

    (result,) = sweep([Subject("m.onnx", lambda b, t: {})],
                      {"failing": lambda: Failing("failing", clock, [1])}, [(1, 1)], [2],
                      Settings(span=0, min_time=0, min_reps=2, block=1),
                      timeline=Timeline(clock))
    assert result.measurements == []
    (skip,) = result.skipped
    assert skip == {"runtime": "failing", "threads": 2, "reason":
                    "first run failed: [ONNXRuntimeError] : 1 : FAIL : no kernel"}


def blocks_of(*sizes, process=0):
    return tuple(Block(process, i, i * MS, n) for i, n in enumerate(sizes))


def test_the_block_is_the_unit_of_the_statistics():
    # three blocks: medians 1, 3 and 10 ms; the calls' own median would be 3
    samples = (1, 1, 5, 3, 3, 3, 10, 10, 10, 10)
    m = Measurement("x", 1, 10, 1, samples_ns=tuple(s * MS for s in samples),
                    blocks=blocks_of(3, 3, 4))
    assert list(m.block_ms) == [1.0, 3.0, 10.0]
    assert m.stats.median == 3.0  # median of the block medians
    assert m.stats.min == 1.0 and m.stats.max == 10.0 and m.stats.mean == pytest.approx(5.6)
    assert m.block_iqr == pytest.approx(6.5 - 2.0)  # percentiles of [1, 3, 10]
    assert m.noise == pytest.approx(4.5 / 3)
    row = m.as_dict()
    assert row["block_count"] == 3 and row["processes"] == [0]
    assert row["blocks"][2] == {"process": 0, "round": 2, "start_s": 0.002, "calls": 4}
    back = Measurement.from_dict(row)
    assert back.blocks == m.blocks and back.stats == m.stats
    with pytest.raises(ValueError, match="blocks hold 9 calls"):
        Measurement("x", 1, 1, 1, samples_ns=(MS,) * 10, blocks=blocks_of(3, 3, 3))


def test_median_ci_counts_blocks_not_calls():
    # 10 blocks of 100 identical calls each: the CI is that of 10 values, x(2)..x(9)
    medians = list(range(1, 11))
    samples = tuple(v * MS for v in medians for _ in range(100))
    m = Measurement("x", 1, 1, 1, samples_ns=samples, blocks=blocks_of(*[100] * 10))
    assert m.stats.median == 5.5 and m.stats.median_ci == (2.0, 9.0)


def test_two_phases_are_found_and_one_phase_is_not():
    fast, slow = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0], [1.8, 1.85, 1.75, 1.8, 1.82, 1.78, 1.8, 1.79]
    phases = find_phases(fast + slow)
    assert phases.fast_share == pytest.approx(6 / 14)
    assert phases.fast_ms == pytest.approx(1.0) and phases.slow_ms == pytest.approx(1.8)
    assert phases.separation > 0.99
    assert find_phases([1.0 + 0.01 * i for i in range(14)]) is None  # one spread-out phase
    assert find_phases([1.0] * 13 + [9.0]) is None  # one slow block is no phase (under 15 %)
    assert find_phases(fast[:3]) is None  # too few blocks to tell
    m = Measurement("x", 1, 1, 1, samples_ns=tuple(round(v * MS) for v in fast + slow),
                    blocks=blocks_of(*[1] * 14))
    assert "two phases, 43% of the blocks at 1 ms and 57% at 1.8 ms" in m.warning()
    assert m.as_dict()["phases"]["fast_share"] == pytest.approx(6 / 14)


def test_merge_of_worker_processes_keeps_each_block_s_process():
    a = Measurement("x", 1, 1, 1, samples_ns=(MS, MS), blocks=blocks_of(2, process=0),
                    cold={"open": 4.0, "first_run": 1.0}, peak_memory_mb=3.0)
    b = Measurement("x", 1, 1, 1, samples_ns=(3 * MS, 3 * MS), blocks=blocks_of(1, 1, process=1),
                    cold={"open": 6.0, "first_run": 3.0}, peak_memory_mb=5.0)
    m = merge([a, b])
    assert m.samples_ns == (MS, MS, 3 * MS, 3 * MS)
    assert [blk.process for blk in m.blocks] == [0, 1, 1] and list(m.block_ms) == [1, 3, 3]
    assert m.cold == {"open": 5.0, "first_run": 2.0} and m.peak_memory_mb == 5.0
    assert m.as_dict()["processes"] == [0, 1]


def test_thread_counts_are_checked_against_the_cores():
    assert default_threads() == 1
    assert check_threads([1, 4 * usable_cores()]) == [1, 4 * usable_cores()]
    for bad in (0, 4 * usable_cores() + 1, 1_000_000_000):
        with pytest.raises(LSTMBenchError, match="--threads"):
            check_threads([bad])


def test_busy_warning_from_the_load_average():
    half = 0.5 * usable_cores()
    assert busy_warning([0.1, 0, 0], [1.0, 0, 0], threads=1) is None  # our own thread after
    assert "busy" in busy_warning([half + 0.5, 0, 0], [0.0, 0, 0])
    assert "busy" in busy_warning(None, [half + 1.5, 0, 0], threads=1)
    assert busy_warning(None, None) is None


def test_busy_warning_from_other_processes_cpu_time():
    cores = usable_cores()
    # measured CPU of other processes decides, whatever the load average says
    assert busy_warning([9.0, 0, 0], [9.0, 0, 0], threads=1, other=0.0) is None
    assert "other processes kept" in busy_warning([0.0, 0, 0], [0.0, 0, 0], other=0.3 * cores)


def test_other_cores_sees_a_busy_process_and_not_our_own_work():
    import subprocess
    import sys
    import time

    before = cpu_snapshot()
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:  # our own work is not "other"
        pass
    own_only = other_cores(before, cpu_snapshot())
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start
        before = cpu_snapshot()
        time.sleep(0.6)
        with_spinner = other_cores(before, cpu_snapshot())
    finally:
        spinner.kill()
        spinner.wait()
    # a spinning process holds about one core; our own spinning counted as ours
    assert with_spinner > own_only + 0.3, (own_only, with_spinner)


def test_blas_threads_sets_numpy_s_pool_and_restores_it():
    get, _ = _openblas_threads_api()
    if get is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS this process can reach")
    before = get()
    with blas_threads(1):
        assert get() == 1
    assert get() == before
