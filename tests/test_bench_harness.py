"""The harness and its statistics against an injected fake clock: exact figures.

The fake clock only moves when a scripted runtime "runs" (or opens), by the durations in its
script, so every sample, every stopping decision and every statistic is known in advance.
"""

import math

import pytest

from lstm_bench.bench.harness import Settings, round_robin, sweep, time_call
from lstm_bench.bench.stats import Measurement, latency_stats
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

    def open(self, model_path, *, threads=None, ort_options=None):
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
    assert noisy.warning() == "x b=1 T=10 threads=1: IQR is 20% of the median"
    row = m.as_dict()
    assert row["latency_ms"]["median"] == 2.0 and row["samples_ns"] == [2 * MS] * 5
    assert Measurement.from_dict(row).stats == m.stats


def test_time_call_reads_the_clock_around_run_and_synchronize():
    clock = FakeClock()
    runtime = ScriptedRuntime("a", clock, [3])
    assert time_call(runtime, {}, clock) == 3 * MS
    assert clock.reads == 2 and runtime.synced == 1


def test_round_robin_interleaves_and_stops_on_time_and_count():
    clock, log = FakeClock(), []
    a = ScriptedRuntime("a", clock, [1], log=log)
    b = ScriptedRuntime("b", clock, [2, 4], log=log)
    settings = Settings(min_time=0.010, min_reps=3, max_reps=100, block=1)
    samples_a, samples_b = round_robin([a, b], {}, settings, clock)
    assert samples_a == [MS] * 10  # 10 ms reached after 10 calls
    assert samples_b == [2 * MS, 4 * MS, 2 * MS, 4 * MS]  # 12 ms >= 10 ms after 4 calls
    assert log == ["a", "b"] * 4 + ["a"] * 6  # one call each per round, then a alone


def test_round_robin_min_reps_max_reps_and_max_time():
    clock = FakeClock()
    fast = ScriptedRuntime("fast", clock, [1])
    settings = Settings(min_time=0.001, min_reps=7, block=1)
    assert len(round_robin([fast], {}, settings, clock)[0]) == 7
    assert len(round_robin([fast], {}, Settings(min_time=1.0, min_reps=1, max_reps=50,
                                                block=1), clock)[0]) == 50
    slow = ScriptedRuntime("slow", clock, [400])
    settings = Settings(min_time=0.1, min_reps=10, max_time=1.0, block=1)
    assert len(round_robin([slow], {}, settings, clock)[0]) == 3  # 1.2 s >= max_time at 3 calls


def test_block_adds_one_untimed_call_per_runtime_per_round():
    clock, log = FakeClock(), []
    a = ScriptedRuntime("a", clock, [1], log=log)
    b = ScriptedRuntime("b", clock, [1], log=log)
    samples = round_robin([a, b], {}, Settings(min_time=0, min_reps=4, block=2), clock)
    assert samples == [[MS] * 4, [MS] * 4]
    assert log == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3


def test_sweep_cold_start_warmup_and_threads():
    clock = FakeClock()
    made = []

    def factory(name, durations, open_ms):
        def make():
            made.append(ScriptedRuntime(name, clock, durations, open_ms))
            return made[-1]
        return make

    # a: first call 9 ms (cold), then 1 ms; b: always 2 ms. Warm-up: 3 calls, no minimum time.
    factories = {"a": factory("a", [9] + [1] * 99, 50), "b": factory("b", [2], 20)}
    settings = Settings(min_time=0.004, min_reps=2, warmup_reps=3, warmup_time=0, block=1)
    result = sweep("model.onnx", factories, [(4, 10)], [1, 2], lambda b, t: {}, settings,
                   clock=clock, flops_for=lambda b, t: 8 * b * t, peak_gflops=100.0)
    assert [r.opened_with for r in made] == [1, 1, 2, 2]
    by_key = {(m.runtime, m.threads): m for m in result.measurements}
    a1 = by_key["a", 1]
    assert a1.cold == {"open": 50.0, "first_run": 9.0}
    assert a1.samples_ns == (MS,) * 4  # the 9 ms call was the first run, not a sample
    assert by_key["b", 2].cold == {"open": 20.0, "first_run": 2.0}
    assert by_key["b", 2].samples_ns == (2 * MS,) * 2
    assert a1.stats.median == 1.0 and a1.steps_per_s == pytest.approx(40 / 1e-3)
    assert a1.flops == 320 and a1.gflops == pytest.approx(320 / 1e-3 / 1e9)
    assert result.skipped == []


def test_sweep_skips_a_runtime_that_cannot_open():
    clock = FakeClock()

    class Broken(ScriptedRuntime):
        def open(self, model_path, *, threads=None, ort_options=None):
            raise LSTMBenchError("broken: cannot load")

    result = sweep("m.onnx", {"ok": lambda: ScriptedRuntime("ok", clock, [1]),
                              "broken": lambda: Broken("broken", clock, [1])},
                   [(1, 1)], [1], lambda b, t: {}, Settings(min_time=0, min_reps=2, block=1),
                   clock=clock)
    assert [m.runtime for m in result.measurements] == ["ok"]
    assert result.skipped == [{"runtime": "broken", "threads": 1, "reason": "broken: cannot load"}]


@pytest.mark.parametrize("changes", [{"min_reps": 0}, {"max_reps": 1, "min_reps": 2},
                                     {"min_time": -1}, {"block": 0}])
def test_bad_settings(changes):
    with pytest.raises(LSTMBenchError):
        Settings(**changes)


def test_sweep_skips_a_runtime_whose_first_run_raises_its_own_error():
    clock = FakeClock()

    class Failing(ScriptedRuntime):
        def run(self, feeds):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : no kernel\nsecond line")

    result = sweep("m.onnx", {"failing": lambda: Failing("failing", clock, [1])}, [(1, 1)], [2],
                   lambda b, t: {}, Settings(min_time=0, min_reps=2, block=1), clock=clock)
    assert result.measurements == []
    (skip,) = result.skipped
    assert skip == {"runtime": "failing", "threads": 2, "reason":
                    "failing: first run failed: [ONNXRuntimeError] : 1 : FAIL : no kernel"}
