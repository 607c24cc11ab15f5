"""Trained torch and Keras models, and raw weights, to ONNX graphs with one LSTM node per layer.

The entry points are imported on first use, so that ``import exporters`` pulls in neither torch
nor onnx: ``export_torch`` (torch modules), ``export_keras`` (Keras 3 archives),
``export_weights`` (``LSTMWeights``), and ``export_source`` / ``ExportResult`` (any of the three
from a file, proven in onnxruntime: the engine of ``lstm-bench export``).
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_LAZY = {
    "export_torch": "exporters.torch_export",
    "export_keras": "exporters.keras",
    "keras_reference": "exporters.keras",
    "export_weights": "exporters.weights",
    "export_source": "exporters.source",
    "ExportResult": "exporters.source",
    "ExportParityError": "exporters.source",
    "load_seed_model": "exporters.seed",
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
