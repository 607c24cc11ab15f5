"""Read LSTM layers and a summary out of an ONNX graph.

Shared by the export summary, the torch runtime (which rebuilds modules from the file's LSTM
weights) and the benchmark (which counts FLOPs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.spec import LSTMSpec, LSTMWeights


@dataclass(frozen=True, eq=False)
class LSTMNode:
    """One LSTM node of a graph: its weights (spec included) and its input and output names."""

    name: str
    weights: LSTMWeights
    inputs: tuple[str, ...]  # X, W, R, B, sequence_lens, initial_h, initial_c, P ("" = absent)
    outputs: tuple[str, ...]  # Y, Y_h, Y_c ("" = absent)

    @property
    def spec(self) -> LSTMSpec:
        return self.weights.spec


def constants(graph) -> dict[str, np.ndarray]:
    """Initializers and Constant outputs of a graph, by name, as arrays."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _attributes(node) -> dict:
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for key in ("activations", "direction"):
        if key in attrs:
            value = attrs[key]
            attrs[key] = [v.decode() for v in value] if isinstance(value, list) else value.decode()
    return attrs


def lstm_nodes(model) -> list[LSTMNode]:
    """Every LSTM node of the main graph whose W and R are constants, in graph order."""
    values = constants(model.graph)
    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type != "LSTM" or node.domain not in ("", "ai.onnx"):
            continue
        names = list(node.input) + [""] * (8 - len(node.input))
        tensors = {key: values.get(name) if name else None
                   for key, name in zip(("X", "W", "R", "B", "sequence_lens", "initial_h",
                                         "initial_c", "P"), names)}
        label = node.name or f"LSTM#{index}"
        if tensors["W"] is None or tensors["R"] is None:
            raise LSTMBenchError(f"{label}: W and R must be initializers or constants")
        attrs = _attributes(node)
        W, R = tensors["W"], tensors["R"]
        spec = LSTMSpec(
            input_size=int(W.shape[2]), hidden_size=int(R.shape[2]),
            direction=attrs.get("direction", "forward"), layout=int(attrs.get("layout", 0)),
            bias=tensors["B"] is not None, peepholes=tensors["P"] is not None,
            clip=attrs.get("clip"), input_forget=int(attrs.get("input_forget", 0)),
            activations=tuple(attrs["activations"]) if "activations" in attrs else None,
            activation_alpha=tuple(attrs["activation_alpha"]) if "activation_alpha" in attrs else None,
            activation_beta=tuple(attrs["activation_beta"]) if "activation_beta" in attrs else None,
        )
        weights = LSTMWeights(spec, W, R, tensors["B"], tensors["P"], name=label)
        outputs = tuple(node.output) + ("",) * (3 - len(node.output))
        found.append(LSTMNode(label, weights, tuple(names), outputs))
    return found


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


def summary(model) -> dict:
    """Opset, inputs and outputs with their (dynamic) dims, LSTM nodes and their attributes."""
    from onnx import helper

    graph = model.graph
    initializers = {t.name for t in graph.initializer}

    def describe(value_info):
        elem = value_info.type.tensor_type.elem_type
        return {"name": value_info.name, "dtype": helper.tensor_dtype_to_np_dtype(elem).name
                if elem else "?", "shape": _dims(value_info)}

    op_counts: dict[str, int] = {}
    for node in graph.node:
        op_counts[node.op_type] = op_counts.get(node.op_type, 0) + 1
    return {
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "inputs": [describe(v) for v in graph.input if v.name not in initializers],
        "outputs": [describe(v) for v in graph.output],
        "lstm_nodes": [{"name": n.name, **n.spec.attributes(), "input_size": n.spec.input_size,
                        "bias": n.spec.bias, "peepholes": n.spec.peepholes,
                        "sequence_lens": bool(n.inputs[4]),
                        "initial_states": bool(n.inputs[5] or n.inputs[6])}
                       for n in lstm_nodes(model)],
        "op_counts": op_counts,
    }


def lstm_flops(model, batch: int, seq_len: int) -> int:
    """Multiply-add FLOPs of the model's LSTM layers: 8*H*(I+H) per step, batch and direction."""
    return sum(8 * n.spec.hidden_size * (n.spec.input_size + n.spec.hidden_size)
               * batch * seq_len * n.spec.num_directions for n in lstm_nodes(model))
