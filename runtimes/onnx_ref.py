"""``onnx.reference.ReferenceEvaluator`` as it is: a runtime under test, not a truth.

Its LSTM ignores sequence_lens, activations, activation_alpha/beta, clip and input_forget, and
computes in the input dtype (``features.ONNX_REFERENCE``); its notes name what a given model
uses of that list, so that verify can say why this runtime fails on it.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.runtimes import features
from lstm_bench.runtimes.base import BaseRuntime


class OnnxReferenceRuntime(BaseRuntime):
    name = "onnx-reference"
    device = "cpu"
    lstm_support = features.ONNX_REFERENCE

    def __init__(self):
        self.evaluator = None
        self.model = None
        self.ignored: list[str] = []

    def available(self) -> str | None:
        try:
            import onnx.reference  # noqa: F401
        except ImportError as exc:
            return f"onnx.reference is not importable ({exc})"
        return None

    def open(self, model, *, threads: int | None = None, ort_options=None) -> None:
        from onnx.reference import ReferenceEvaluator

        from lstm_bench.model import as_model

        self.model = as_model(model).proto
        self.ignored = self.lstm_support.explain(self.model)
        self.evaluator = ReferenceEvaluator(self.model)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lstm_bench.runtimes.evaluator import run_evaluator

        return run_evaluator(self.evaluator, self.model, feeds)

    def notes(self) -> list[str]:
        return list(self.ignored)

    def close(self) -> None:
        self.evaluator = self.model = None
