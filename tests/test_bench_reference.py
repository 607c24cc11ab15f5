"""Benchmarks: ``reference.lstm`` (float64 truth, float32 option) against torch's ``nn.LSTM``.

The issue's goal: at B=32, T=100, I=128, H=256 the float64 reference costs at most 3x torch's
float32 time on the same machine, with the same thread count. The seed shape (B=1, T=100, I=1,
H=50) shows the per-step Python overhead. The project's pytest config passes
``--benchmark-disable``, so a normal test run calls each once as a smoke test (the outputs are
checked against each other); to measure:

    .venv/bin/python -m pytest tests/test_bench_reference.py --benchmark-enable

pytest-benchmark times the two one after the other, minutes apart on a shared machine. The
ratio itself comes from this file run as a script, which alternates torch and the reference
in one process, round by round, so that the machine's drift hits both alike:

    .venv/bin/python tests/test_bench_reference.py [--rounds 30] [--shape issue]
    OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/test_bench_reference.py --threads 1

On a busy machine torch's per-step OpenMP barrier with one thread per core stalls whenever a
worker is descheduled (torch then took 200 ms instead of 10 ms here): the one-thread ratio is
the one to trust there.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from lstm_bench import reference

# name -> (batch, seq_length, input_size, hidden_size)
SHAPES = {"issue": (32, 100, 128, 256), "seed": (1, 100, 1, 50)}
TORCH_GATE_ROWS = (0, 2, 3, 1)  # torch's i, f, g, o blocks taken from ONNX's i, o, f, c


@pytest.fixture(scope="module")
def bench_reference_torch():
    """torch with one intra-op thread per core, as the reference's BLAS gets; restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    yield torch
    torch.set_num_threads(threads)


def _inputs(shape):
    batch, T, I, H = shape
    rng = np.random.default_rng(0)
    k = 1 / np.sqrt(H)
    X = rng.standard_normal((T, batch, I)).astype(np.float32)
    W = rng.uniform(-k, k, (1, 4 * H, I)).astype(np.float32)
    R = rng.uniform(-k, k, (1, 4 * H, H)).astype(np.float32)
    B = rng.uniform(-k, k, (1, 8 * H)).astype(np.float32)
    return X, W, R, B


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bench_reference_lstm(benchmark, shape, dtype):
    benchmark.group = f"LSTM {shape} B,T,I,H={SHAPES[shape]}"
    X, W, R, B = _inputs(SHAPES[shape])
    Y, Y_h, Y_c = benchmark(reference.lstm, X, W, R, B, dtype=dtype)
    assert Y.dtype == np.dtype(dtype) and Y.shape == (X.shape[0], 1, X.shape[1], R.shape[2])
    np.testing.assert_array_equal(Y[-1], Y_h)
    assert np.all(np.isfinite(Y_c))


def torch_lstm(torch, X, W, R, B):
    """torch's nn.LSTM holding the ONNX weights W, R, B (gate rows reordered to torch's)."""
    H = R.shape[2]
    rows = np.concatenate([np.arange(g * H, (g + 1) * H) for g in TORCH_GATE_ROWS])
    module = torch.nn.LSTM(X.shape[2], H).eval()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(W[0][rows]))
        module.weight_hh_l0.copy_(torch.from_numpy(R[0][rows]))
        module.bias_ih_l0.copy_(torch.from_numpy(B[0, :4 * H][rows]))
        module.bias_hh_l0.copy_(torch.from_numpy(B[0, 4 * H:][rows]))
    x = torch.from_numpy(X)

    def run():
        with torch.inference_mode():
            return module(x)

    return run


@pytest.mark.parametrize("shape", SHAPES)
def test_bench_torch_lstm(benchmark, bench_reference_torch, shape):
    benchmark.group = f"LSTM {shape} B,T,I,H={SHAPES[shape]}"
    X, W, R, B = _inputs(SHAPES[shape])
    Y, (Y_h, Y_c) = benchmark(torch_lstm(bench_reference_torch, X, W, R, B))
    # The same LSTM as the reference computes, so the timings compare like with like.
    truth = reference.lstm(X, W, R, B)
    np.testing.assert_allclose(Y.numpy(), truth[0][:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Y_c.numpy(), truth[2], rtol=1e-4, atol=1e-5)


def interleaved_ratio(shape="issue", rounds=30, calls=3, threads=None,
                      clock=time.perf_counter_ns) -> dict:
    """The float64 reference's time over torch's float32 nn.LSTM, the two alternating.

    Each round times ``calls`` calls of torch, then ``calls`` of the reference, and keeps
    the fastest of each (the call least disturbed by other load); the ratio is the median
    of the rounds' ratios. torch runs with ``threads`` intra-op threads (default one per
    core, as NumPy's BLAS; give NumPy the same count with OPENBLAS_NUM_THREADS).
    """
    import torch

    X, W, R, B = _inputs(SHAPES[shape])
    torch.set_num_threads(threads or os.cpu_count() or 1)
    candidates = {"torch": torch_lstm(torch, X, W, R, B),
                  "reference": lambda: reference.lstm(X, W, R, B)}
    best = {name: [] for name in candidates}
    for run in candidates.values():  # warm up: first-call allocations, thread pools
        run()
    for _ in range(rounds):
        for name, run in candidates.items():
            durations = []
            for _ in range(calls):
                start = clock()
                run()
                durations.append(clock() - start)
            best[name].append(min(durations) / 1e6)
    ratios = np.array(best["reference"]) / np.array(best["torch"])
    return {"shape": dict(zip(("batch", "seq_len", "input_size", "hidden_size"),
                              SHAPES[shape])),
            "rounds": rounds, "threads": torch.get_num_threads(),
            "torch_ms": float(np.median(best["torch"])),
            "reference_ms": float(np.median(best["reference"])),
            "ratio_median": float(np.median(ratios)),
            "ratio_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])]}


def test_interleaved_ratio_reports_both_timings():
    result = interleaved_ratio("seed", rounds=2, calls=1)
    assert result["rounds"] == 2 and result["shape"]["hidden_size"] == 50
    assert result["torch_ms"] > 0 and result["reference_ms"] > 0
    low, high = result["ratio_quartiles"]
    assert low <= result["ratio_median"] <= high


if __name__ == "__main__":
    import argparse
    import json

    from lstm_bench.bench.machine import cpu_model

    parser = argparse.ArgumentParser(description="float64 reference time / torch float32 time")
    parser.add_argument("--shape", choices=SHAPES, default="issue")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's threads (default: one per core); run with "
                             "OPENBLAS_NUM_THREADS set to the same for NumPy")
    args = parser.parse_args()
    result = {"cpu": cpu_model(), "load_average": os.getloadavg(),
              "numpy_blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default (cores)"),
              **interleaved_ratio(args.shape, args.rounds, threads=args.threads)}
    print(json.dumps(result, indent=1))
    print(f"reference / torch = {result['ratio_median']:.2f} (median of {args.rounds} rounds; "
          f"torch {result['torch_ms']:.2f} ms, reference {result['reference_ms']:.2f} ms; "
          f"{result['cpu']}, {result['threads']} threads)")
