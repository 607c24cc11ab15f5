"""Read LSTM layers and a summary out of an ONNX graph.

Shared by the export summary, the torch runtime (which rebuilds modules from the file's LSTM
weights) and the benchmark (which counts FLOPs).

Exporters do not always store W and R as initializers: torch 2.13's default (dynamo) exporter
computes them with Slice/Concat chains over separate tensors once a model is large enough
(Embedding(1000, 32) + a 2-layer bidirectional LSTM(64) is). Those chains depend on constants
only, so onnxscript's constant folding (the optimizer torch.onnx itself runs) turns them into
tensors; ``lstm_nodes`` folds a copy of the model when it must and reads the weights from it.
The model itself is never changed: onnxruntime runs the file as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.spec import LSTMSpec, LSTMWeights

_OPERATOR_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
# What to do when a graph has no LSTM node: the two ways people get one.
HOW_TO_EXPORT = (
    "export an LSTM node: in torch, build the model on torch.nn.LSTM (not a loop over "
    "nn.LSTMCell) and export it with torch.onnx.export or `lstm-bench export`; in Keras, use "
    "keras.layers.LSTM and `lstm-bench export model.keras -o model.onnx`")


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


def constants(graph, max_values: int | None = None) -> dict[str, np.ndarray]:
    """Initializers and Constant outputs of a graph, by name, as arrays; with ``max_values``,
    only those of at most that many values (the others are not converted at all)."""
    from onnx import numpy_helper

    def small(tensor) -> bool:
        return max_values is None or int(np.prod(tensor.dims)) <= max_values

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if small(t)}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and small(attr.t):
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
                elif attr.name in ("value_int", "value_float"):
                    values[node.output[0]] = np.asarray(attr.i if attr.name == "value_int"
                                                        else attr.f)
    return values


def _attributes(node) -> dict:
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for key in ("activations", "direction"):
        if key in attrs:
            value = attrs[key]
            attrs[key] = [v.decode() for v in value] if isinstance(value, list) else value.decode()
    return attrs


def lstm_node(node, tensors: dict, label: str | None = None) -> LSTMNode:
    """An ``LSTMNode`` from an ONNX LSTM node and its operator inputs' values (by input name,
    None where unknown): the weights must be known; X and the states need not be."""
    label = label or node.name or "LSTM"
    names = list(node.input) + [""] * (8 - len(node.input))
    values = {key: tensors.get(name) if name else None for key, name in zip(_OPERATOR_INPUTS, names)}
    if values["W"] is None or values["R"] is None:
        raise LSTMBenchError(f"{label}: W and R are computed from graph inputs at run time, not "
                             "from constants, so they cannot be read from the file (runtimes "
                             "that evaluate the graph, onnxruntime first, still run it)")
    attrs = _attributes(node)
    W, R = (np.array(values[k]) for k in ("W", "R"))  # writable copies (torch warns otherwise)
    spec = LSTMSpec(
        input_size=int(W.shape[2]), hidden_size=int(R.shape[2]),
        direction=attrs.get("direction", "forward"), layout=int(attrs.get("layout", 0)),
        bias=values["B"] is not None, peepholes=values["P"] is not None,
        clip=attrs.get("clip"), input_forget=int(attrs.get("input_forget", 0)),
        activations=tuple(attrs["activations"]) if "activations" in attrs else None,
        activation_alpha=tuple(attrs["activation_alpha"]) if "activation_alpha" in attrs else None,
        activation_beta=tuple(attrs["activation_beta"]) if "activation_beta" in attrs else None,
    )
    weights = LSTMWeights(spec, W, R, values["B"], values["P"], name=label)
    outputs = tuple(node.output) + ("",) * (3 - len(node.output))
    return LSTMNode(label, weights, tuple(names), outputs)


def _main_lstms(model) -> list[tuple[int, object]]:
    return [(index, node) for index, node in enumerate(model.graph.node)
            if node.op_type == "LSTM" and node.domain in ("", "ai.onnx")]


def fold_constants(model):
    """A copy of ``model`` with every constant-only computation folded into tensors.

    onnxscript's constant folding, without its size limits (an LSTM's R is larger than its
    default). Graph inputs, outputs and node names are kept.
    """
    import onnx
    import onnxscript.optimizer

    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    limit = max(sum(int(np.prod(t.dims)) for t in folded.graph.initializer), 1 << 20)
    try:
        onnxscript.optimizer.fold_constants(folded, input_size_limit=limit,
                                            output_size_limit=limit)
    except Exception as exc:  # the optimizer raises many types on graphs it cannot read
        raise LSTMBenchError(f"the LSTM weights are computed by graph ops and folding them to "
                             f"constants failed ({first_line(exc, with_type=True)[:200]}); onnxruntime "
                             "still runs the model (--runtimes ort-cpu)") from None
    return folded


def lstm_nodes(model) -> list[LSTMNode]:
    """Every LSTM node of the main graph, in graph order, with its weights.

    Where W, R, B or P are computed from constants by other nodes, they are read from a folded
    copy of the model (``fold_constants``); the node keeps its own input and output names.
    """
    found = _main_lstms(model)
    if not found:
        return []
    values = constants(model.graph)
    needed = {name for _, node in found for name in list(node.input)[1:4] + list(node.input)[7:8]
              if name}
    if needed - set(values):
        values.update(_folded_weights(model, found, set(values)))
    return [lstm_node(node, values, node.name or f"LSTM#{index}") for index, node in found]


_FOLDED: dict[bytes, dict] = {}  # model digest -> folded weights: verify and bench ask often


def _folded_weights(model, found, known: set) -> dict[str, np.ndarray]:
    """The LSTM operator inputs that only a folded copy of ``model`` holds, by name."""
    import hashlib

    key = hashlib.sha256(model.SerializeToString()).digest()
    if key not in _FOLDED:
        folded = fold_constants(model)
        folded_values = constants(folded.graph)
        weights = {}
        # the folded copy's LSTM nodes in the same order (folding never adds or removes one)
        for (_, node), (_, twin) in zip(found, _main_lstms(folded)):
            for name, twin_name in zip(node.input, twin.input):
                if name and name not in known and twin_name in folded_values:
                    weights[name] = folded_values[twin_name]
        if len(_FOLDED) >= 4:
            _FOLDED.pop(next(iter(_FOLDED)))
        _FOLDED[key] = weights
    return _FOLDED[key]


def _walk(graph, where: str = ""):
    """(node, where) for every node of ``graph`` and its subgraphs; where = "" in the main graph."""
    for node in graph.node:
        yield node, where
        for attr in node.attribute:
            subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subgraphs:
                yield from _walk(sub, f"{where + ' > ' if where else ''}{node.op_type} "
                                      f"{node.name or '?'} ({attr.name})")


def subgraph_lstms(model) -> list[dict]:
    """LSTM nodes inside If / Loop / Scan bodies (and functions): name and where they sit."""
    found = [{"name": node.name or "LSTM", "in": where}
             for node, where in _walk(model.graph) if where and node.op_type == "LSTM"]
    for function in model.functions:
        found += [{"name": node.name or "LSTM", "in": f"function {function.name}"}
                  for node in function.node if node.op_type == "LSTM"]
    return found


def _ops(model) -> set[str]:
    """Every op_type of the model: its graphs, subgraphs and functions."""
    ops = {node.op_type for node, _ in _walk(model.graph)}
    for function in model.functions:
        ops |= {node.op_type for node in function.node}
    return ops


def recurrences(model) -> list[str]:
    """What a graph holds in place of an LSTM node, one phrase per kind of recurrence lstm-bench
    recognises (an unrolled cell, a Loop/Scan, GRU/RNN nodes); empty where it holds none."""
    ops = _ops(model)
    holds = []
    if "Loop" in ops or "Scan" in ops:
        holds.append("a " + "/".join(sorted(ops & {"Loop", "Scan"})) + " (a recurrence written "
                     "as a loop, e.g. a scripted loop over nn.LSTMCell)")
    if {"Sigmoid", "Tanh"} <= ops and ({"MatMul", "Gemm"} & ops):
        holds.append("Sigmoid/Tanh over MatMul/Gemm (an LSTM cell unrolled step by step)")
    if {"GRU", "RNN"} & ops:
        holds.append("/".join(sorted({"GRU", "RNN"} & ops)) + " nodes (another recurrent layer)")
    return holds


def has_lstm(model) -> bool:
    """Whether the model has an LSTM node anywhere (main graph, subgraphs, functions)."""
    return bool(_main_lstms(model) or subgraph_lstms(model))


def no_lstm_reason(model) -> str | None:
    """None when the model has an LSTM node anywhere, else what it holds instead and what to do."""
    if has_lstm(model):
        return None
    holds = recurrences(model)
    what = "; it holds " + " and ".join(holds) if holds else ""
    return f"the model has no LSTM node{what}. lstm-bench measures ONNX LSTM nodes: {HOW_TO_EXPORT}"


def unmeasurable_reason(model) -> str | None:
    """Why lstm-bench refuses the model: it has neither an LSTM node nor a recurrence in
    another form (``recurrences``); None where it takes it. A graph whose recurrence is
    unrolled or looped is verified and benched as a whole (``no_lstm_note``)."""
    if has_lstm(model) or recurrences(model):
        return None
    return no_lstm_reason(model)


def without_lstm(model) -> str | None:
    """"no LSTM node, but ..." (what it holds) for a model with no LSTM node anywhere, else
    None."""
    if has_lstm(model):
        return None
    holds = recurrences(model)
    return "no LSTM node" + (f", but {' and '.join(holds)}" if holds else "")


def no_lstm_note(model) -> str | None:
    """What verify says of a model with no LSTM node (None where it has one): its whole graph
    is judged against the float64 truth, and there is no LSTM layer to lift out."""
    what = without_lstm(model)
    return what and f"{what}: nothing to diagnose per layer"


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


def _node_summary(node: LSTMNode) -> dict:
    return {"name": node.name, **node.spec.attributes(), "input_size": node.spec.input_size,
            "bias": node.spec.bias, "peepholes": node.spec.peepholes,
            "sequence_lens": bool(node.inputs[4]),
            "initial_states": bool(node.inputs[5] or node.inputs[6])}


def summary(model) -> dict:
    """Opset, inputs and outputs with their (dynamic) dims, LSTM nodes and their attributes.

    LSTM nodes inside If / Loop / Scan are listed under ``subgraph_lstm_nodes``; a model with
    no LSTM node at all has an empty ``lstm_nodes`` and ``no_lstm_node``, what it holds instead
    (``no_lstm_note``).
    """
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
    try:
        nodes = [_node_summary(n) for n in lstm_nodes(model)]
    except LSTMBenchError as exc:  # weights only known at run time: onnxruntime still runs it
        nodes = [{"name": node.name or f"LSTM#{index}", **_attributes(node),
                  "weights": f"not readable from the file ({exc})"}
                 for index, node in _main_lstms(model)]
    result = {
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "inputs": [describe(v) for v in graph.input if v.name not in initializers],
        "outputs": [describe(v) for v in graph.output],
        "lstm_nodes": nodes,
        "op_counts": op_counts,
    }
    nested = subgraph_lstms(model)
    if nested:
        result["subgraph_lstm_nodes"] = nested
    note = no_lstm_note(model)
    if note:
        result["no_lstm_node"] = note
    return result


def layer_sizes(model) -> list[tuple[int, int, int]]:
    """(input_size, hidden_size, directions) per main-graph LSTM node, from the weights or,
    where they are only known at run time, from W's inferred shape [D, 4H, I]."""
    try:
        return [(n.spec.input_size, n.spec.hidden_size, n.spec.num_directions)
                for n in lstm_nodes(model)]
    except LSTMBenchError:
        import onnx

        inferred = onnx.shape_inference.infer_shapes(model)
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
        sizes = []
        for _, node in _main_lstms(model):
            D, _, I = (shapes.get(node.input[1]) or [0, 0, 0])[:3]
            H = int(_attributes(node).get("hidden_size", 0))
            if not (D and I and H):
                raise LSTMBenchError(f"{node.name or 'LSTM'}: neither W's values nor its shape "
                                     "are known before run time; FLOPs cannot be counted")
            sizes.append((I, H, D))
        return sizes


def flops_of(sizes, batch: int, seq_len: int) -> int:
    """Multiply-add FLOPs of LSTM layers of these ``layer_sizes``: 8*H*(I+H) per step, batch
    and direction."""
    return sum(8 * H * (I + H) * batch * seq_len * D for I, H, D in sizes)


def lstm_flops(model, batch: int, seq_len: int) -> int:
    """Multiply-add FLOPs of the model's LSTM layers (see ``flops_of``)."""
    return flops_of(layer_sizes(model), batch, seq_len)
