"""Trained torch and Keras models, and raw weights, to ONNX graphs with one LSTM node per layer.

The entry points are imported on first use, so that ``import exporters`` pulls in neither torch
nor onnx: ``export_torch`` (torch modules), ``export_keras`` (Keras 3 archives),
``export_program`` / ``load_program`` (``torch.export`` programs saved as ``.pt2``, loaded
without unpickling more than tensors), ``export_weights`` (``LSTMWeights``), and
``export_source`` / ``ExportResult`` (any of these from a file, proven in onnxruntime: the
engine of ``lstm-bench export``).
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_LAZY = {
    "export_torch": "lstm_bench.exporters.torch_export",
    "export_keras": "lstm_bench.exporters.keras",
    "keras_reference": "lstm_bench.exporters.keras",
    "export_weights": "lstm_bench.exporters.weights",
    "export_program": "lstm_bench.exporters.torch_program",
    "load_program": "lstm_bench.exporters.torch_program",
    "export_source": "lstm_bench.exporters.source",
    "ExportResult": "lstm_bench.exporters.source",
    "ExportParityError": "lstm_bench.exporters.source",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'exporters' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
