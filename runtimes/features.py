"""Which LSTM features a runtime supports: the type each runtime describes itself with.

An LSTM node can use features beyond the plain operator (``node_features``). Each runtime says,
in its ``lstm_support`` (an ``LSTMSupport`` declared in its own module), what it does with
them: refuses (an error), ignores (silently computes as if the feature were absent: wrong), or
runs on another path (falls back: onnxruntime's CUDA provider hands the node to the CPU, torch
leaves nn.LSTM for an explicit recurrence).
verify uses it to explain a failure, an error or a fallback; ort-cuda predicts its CPU fallback
and torch picks nn.LSTM by it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_bench.reference.activations import DEFAULT_ACTIVATIONS

# In the order messages list them.
FEATURES = ("layout", "reverse", "sequence_lens", "activations", "activation_alpha",
            "activation_beta", "clip", "input_forget", "peepholes")


def node_features(node) -> dict[str, str]:
    """feature -> how this LSTM NodeProto uses it, for every non-default feature it uses."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inputs = list(node.input) + [""] * 8
    used = {}
    if int(attrs.get("layout", 0)):
        used["layout"] = "layout = 1"
    direction = attrs.get("direction", b"forward")
    if (direction.decode() if isinstance(direction, bytes) else str(direction)) == "reverse":
        used["reverse"] = "direction = reverse"  # a runtime may run it forward (tract)
    if inputs[4]:
        used["sequence_lens"] = "sequence_lens"
    if "activations" in attrs:
        names = [a.decode() if isinstance(a, bytes) else str(a) for a in attrs["activations"]]
        default = [n.lower() for n in DEFAULT_ACTIVATIONS]
        if [n.lower() for n in names] != default * (len(names) // 3 or 1):
            used["activations"] = f"activations {names}"
    for name in ("activation_alpha", "activation_beta", "clip"):
        if name in attrs:
            used[name] = f"{name} is set"
    if int(attrs.get("input_forget", 0)):
        used["input_forget"] = "input_forget = 1"
    if inputs[7]:
        used["peepholes"] = "peepholes (P)"
    return used


def lstm_node_protos(model) -> list[tuple[str, object]]:
    """(label, NodeProto) of every standard LSTM node of a ModelProto's main graph."""
    return [(node.name or f"LSTM#{index}", node) for index, node in enumerate(model.graph.node)
            if node.op_type == "LSTM" and node.domain in ("", "ai.onnx")]


@dataclass(frozen=True)
class LSTMSupport:
    """What a runtime does with the features it does not compute exactly as the operator says."""

    refuses: frozenset[str] = frozenset()
    ignores: frozenset[str] = frozenset()
    falls_back: frozenset[str] = frozenset()
    fallback: str = "another path"  # where a falling-back node runs, for the message

    def unsupported(self, node, kind: str) -> dict[str, str]:
        """feature -> how ``node`` uses it, for the features of one kind ("refuses",
        "ignores", "falls_back") that the node uses."""
        wanted = getattr(self, kind)
        return {feature: how for feature, how in node_features(node).items() if feature in wanted}

    def explain(self, model) -> list[str]:
        """One line per LSTM node of ``model`` (a ModelProto) that this runtime does not run
        exactly and natively."""
        lines = []
        for label, node in lstm_node_protos(model):
            for kind, verb in (("refuses", "refuses"), ("ignores", "ignores"),
                               ("falls_back", f"runs on {self.fallback} for")):
                found = self.unsupported(node, kind)
                if found:
                    lines.append(f"{label}: {verb} {', '.join(found.values())}")
        return lines


EVERYTHING = LSTMSupport()  # a runtime that computes every feature as the operator says

# nn.LSTM has none of these; torch_lstm.OnnxLSTM then runs the operator's recurrence in torch
# (the torch runtimes' support, here so that the translation and the runtime share it without
# importing each other)
TORCH = LSTMSupport(falls_back=frozenset({"activations", "activation_alpha", "activation_beta",
                                          "clip", "input_forget", "peepholes"}),
                    fallback="a torch recurrence (not nn.LSTM)")


def nn_lstm_fallback(node) -> str | None:
    """Why nn.LSTM cannot compute this LSTM NodeProto (None: it can)."""
    return ", ".join(TORCH.unsupported(node, "falls_back")) or None
