"""``onnx.reference.ReferenceEvaluator`` as it is: a runtime under test, not a truth.

Its LSTM ignores sequence_lens, activations, activation_alpha/beta, clip and input_forget, and
computes in the input dtype. ``ignored_features`` names what a given model uses of that list,
so that verify can say why this runtime fails on it.
"""

from __future__ import annotations

import numpy as np


def ignored_features(model) -> list[str]:
    """What onnx's reference LSTM would silently ignore in this model, per LSTM node."""
    from onnx import helper

    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type != "LSTM":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ignored = []
        if len(node.input) > 4 and node.input[4]:
            ignored.append("sequence_lens")
        if "activations" in attrs:
            names = [a.decode().lower() for a in attrs["activations"]]
            if names != ["sigmoid", "tanh", "tanh"] * (len(names) // 3 or 1):
                ignored.append("activations")
        ignored += [a for a in ("activation_alpha", "activation_beta", "clip") if a in attrs]
        if int(attrs.get("input_forget", 0)):
            ignored.append("input_forget")
        if ignored:
            found.append(f"{node.name or f'LSTM#{index}'}: ignores {', '.join(ignored)}")
    return found


class OnnxReferenceRuntime:
    name = "onnx-reference"
    device = "cpu"

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

    def open(self, model_path: str, *, threads: int | None = None) -> None:
        from onnx.reference import ReferenceEvaluator

        from lstm_bench.reference.model import load_model

        self.model = load_model(model_path)
        self.ignored = ignored_features(self.model)
        self.evaluator = ReferenceEvaluator(self.model)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from lstm_bench.runtimes.evaluator import run_evaluator

        return run_evaluator(self.evaluator, self.model, feeds)

    def notes(self) -> list[str]:
        return list(self.ignored)

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        self.evaluator = self.model = None
