"""lstm-bench: ONNX export and multi-backend runtime benchmark suite for LSTM models."""

from lstm_bench.errors import LSTMBenchError

__version__ = "0.1.0"
__all__ = ["LSTMBenchError", "__version__"]
