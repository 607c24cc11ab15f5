"""``onnx.reference.ReferenceEvaluator`` as it is: a runtime under test, not a truth.

Its LSTM ignores sequence_lens, activations, activation_alpha/beta, clip and input_forget, and
computes in the input dtype (``ONNX_REFERENCE``); its notes name what a given model
uses of that list, so that verify can say why this runtime fails on it. What is under test is
its LSTM: the other operators whose onnx implementation fails or errs (``reference.ops``, e.g.
GatherElements past 64 steps) are replaced here as in the truth, so that this row does not
fail for an operator that is not an LSTM.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.model import as_model
from lstm_bench.reference.ops import overrides
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.features import LSTMSupport

# onnx.reference's LSTM reads neither these attributes nor sequence_lens.
ONNX_REFERENCE = LSTMSupport(ignores=frozenset({"sequence_lens", "activations", "activation_alpha",
                                                "activation_beta", "clip", "input_forget"}))


class OnnxReferenceRuntime(BaseRuntime):
    name = "onnx-reference"
    native_code = False  # NumPy alone: it runs in the process that asks
    device = "cpu"
    lstm_support = ONNX_REFERENCE
    libraries = ("onnx",)

    def __init__(self):
        self.evaluator = None
        self.ignored: list[str] = []

    def available(self) -> str | None:
        try:
            import onnx.reference  # noqa: F401
        except ImportError as exc:
            return f"onnx.reference is not importable ({exc})"
        return None

    def open(self, model, *, threads: int | None = None) -> None:
        from onnx.reference import ReferenceEvaluator

        proto = as_model(model).proto
        self.ignored = self.lstm_support.explain(proto)
        self.evaluator = ReferenceEvaluator(proto, new_ops=overrides(proto))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.evaluator.output_names, self.evaluator.run(None, feeds)))

    def notes(self) -> list[str]:
        return list(self.ignored)

    def close(self) -> None:
        self.evaluator = None
