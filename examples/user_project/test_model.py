"""The team's tests of its LSTM model, gated with lstm-bench's pytest plugin.

model.onnx is what export.py wrote. In CI (docs/pytest.md):

    pytest --lstm-bench-runtimes ort-cpu,onnx-reference --lstm-bench-baseline main/model.onnx
"""

from pathlib import Path

MODEL = Path(__file__).with_name("model.onnx")


def test_model_matches_the_float64_truth(lstm_verify):
    # every runtime we ship on (--lstm-bench-runtimes) against lstm-bench's float64 truth
    lstm_verify(MODEL, seq_len=16)


def test_no_latency_regression(lstm_latency_gate):
    # a live A/B run against the model of the main branch (--lstm-bench-baseline), on the
    # runtime we deploy on
    lstm_latency_gate(MODEL, runtimes="ort-cpu", seq_len=16)
