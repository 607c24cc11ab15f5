"""Benchmarks: ``reference.lstm`` (float64 truth, float32 option) against torch's ``nn.LSTM``.

The issue's goal: at B=32, T=100, I=128, H=256 the float64 reference costs at most 3x torch's
float32 time on the same machine, with the same thread count. The seed shape (B=1, T=100, I=1,
H=50) shows the per-step Python overhead. The project's pytest config passes
``--benchmark-disable``, so a normal test run calls each once as a smoke test (the outputs are
checked against each other); to measure:

    .venv/bin/python -m pytest tests/test_bench_reference.py --benchmark-enable
"""

from __future__ import annotations

import os

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
    torch.set_num_threads(os.cpu_count() or 1)
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


@pytest.mark.parametrize("shape", SHAPES)
def test_bench_torch_lstm(benchmark, bench_reference_torch, shape):
    torch = bench_reference_torch
    benchmark.group = f"LSTM {shape} B,T,I,H={SHAPES[shape]}"
    X, W, R, B = _inputs(SHAPES[shape])
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

    Y, (Y_h, Y_c) = benchmark(run)
    # The same LSTM as the reference computes, so the timings compare like with like.
    truth = reference.lstm(X, W, R, B)
    np.testing.assert_allclose(Y.numpy(), truth[0][:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Y_c.numpy(), truth[2], rtol=1e-4, atol=1e-5)
