"""The float64 ground truth: the ONNX LSTM operator in NumPy and whole-model evaluation."""

from lstm_bench.reference.lstm import lstm
from lstm_bench.reference.model import run_model

__all__ = ["lstm", "run_model"]
