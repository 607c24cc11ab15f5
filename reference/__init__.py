"""The float64 ground truth: the ONNX LSTM operator in NumPy and whole-model evaluation."""

from lstm_bench.reference.lstm import lstm

__all__ = ["lstm", "run_model"]


def run_model(model, feeds):
    """Evaluate an ONNX model (path or ModelProto) in float64; see reference.model."""
    from lstm_bench.reference.model import run_model as _run_model

    return _run_model(model, feeds)
