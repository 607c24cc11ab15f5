"""Fixtures shared by several test modules."""

import os

import pytest

# Keras runs on PyTorch here; TensorFlow is neither needed nor installed.
os.environ.setdefault("KERAS_BACKEND", "torch")

from lstm_bench.exporters.weights import export_weights
from lstm_bench.spec import LSTMSpec, LSTMWeights


@pytest.fixture(autouse=True)
def _history_db(tmp_path_factory, monkeypatch):
    """bench and run record every result in a history database; in tests, a throwaway one."""
    monkeypatch.setenv("LSTM_BENCH_DB", str(tmp_path_factory.mktemp("history") / "h.sqlite"))
    # run inside GitHub Actions, commands would write to the job's summary and annotate
    # (tests/test_ci_outputs.py sets these itself)
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small one-node LSTM model file (input 2, hidden 4), fast on every runtime."""
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=4)), path)
    return path


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """A real LSTM model that takes batch 4 only (``cases.fixed_batch_model``)."""
    from cases import fixed_batch_model

    return fixed_batch_model(tmp_path_factory.mktemp("fixed") / "fixed.onnx")
