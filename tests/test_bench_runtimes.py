"""The bench cases as a pytest-benchmark suite, so pytest-benchmark's own tooling works on them
(--benchmark-autosave, --benchmark-compare, --benchmark-histogram ...), and the harness's
fidelity recorded beside a bare onnxruntime loop.

The project's addopts disable benchmarks (each case runs once, as a smoke test). Measure with

    pytest tests/test_bench_runtimes.py --benchmark-enable --benchmark-only

The model is the seed's shape (one LSTM layer, input 1, hidden 50, T = 100); every CPU runtime
gets the same thread count as in `lstm-bench bench` (its default, 1).

The harness's fidelity (``test_harness_fidelity``) is a timing check: it runs only when
benchmarks are enabled (``--benchmark-enable``), never in the default test run.
"""

import numpy as np
import pytest

from lstm_bench.bench.machine import default_threads
from lstm_bench.exporters.weights import export_weights
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import RUNTIMES
from lstm_bench.spec import LSTMSpec, LSTMWeights
from tools.fidelity import fidelity

SHAPES = [(1, 100), (8, 100), (32, 100)]
# what a runtime cannot run of these (tests/test_tract.py holds it as an error that must stay)
CANNOT = {"tract-cpu": (lambda batch: batch > 1, "tract errs on a one-way LSTM without initial "
                        "states at batch > 1 when Y_h and Y_c are both outputs")}


@pytest.fixture(scope="module")
def seed_shaped(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "seed_shape.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=1, hidden_size=50)), path)
    return Model.load(path)


@pytest.mark.parametrize("batch, seq_len", SHAPES, ids=[f"b{b}-T{t}" for b, t in SHAPES])
@pytest.mark.parametrize("name", list(RUNTIMES))
def test_runtime(benchmark, seed_shaped, name, batch, seq_len):
    runtime = RUNTIMES[name]()
    reason = runtime.available()
    if reason:
        pytest.skip(f"{name}: {reason}")
    cannot, why = CANNOT.get(name, (lambda batch: False, None))
    if cannot(batch):
        pytest.skip(f"{name}: {why}")
    feeds = seed_shaped.feeds(batch, seq_len)
    runtime.open(str(seed_shaped.path), threads=default_threads())
    try:
        outputs = runtime.run(feeds)  # the first run (cold start) is not part of the figures
        assert {key: out.shape for key, out in outputs.items()} == {
            "Y": (seq_len, 1, batch, 50), "Y_h": (1, batch, 50), "Y_c": (1, batch, 50)}
        assert all(np.isfinite(out).all() for out in outputs.values())

        def call():
            runtime.run(feeds)
            runtime.synchronize()  # the device's work is part of the call

        benchmark.group = f"batch {batch}, seq_len {seq_len}"
        benchmark.extra_info.update(runtime=name, batch=batch, seq_len=seq_len,
                                    threads=default_threads(),
                                    flops=seed_shaped.flops(batch, seq_len))
        benchmark(call)
    finally:
        runtime.close()


def test_harness_fidelity(benchmark):
    """The harness's ort-cpu median within 5 % of a bare InferenceSession.run loop.

    Other work on a shared machine can push any single attempt apart; the harness is faithful
    if one of three short attempts agrees (docs/bench.md has the recorded figures).
    """
    if benchmark.disabled:
        pytest.skip("a timing check: run it with --benchmark-enable (see docs/bench.md)")

    attempts = []
    for _ in range(3):
        figures = fidelity(rounds=4, reps=100)
        attempts.append(figures)
        if abs(figures["median_difference_pct"]) < 5:
            break
    benchmark.extra_info.update(attempts[-1])
    benchmark.extra_info["attempts"] = len(attempts)
    benchmark(lambda: None)  # the figures ride in extra_info; the timed body is nothing
    assert abs(attempts[-1]["median_difference_pct"]) < 5, attempts
    assert attempts[-1]["timed_call_overhead_ns"] < 5_000
