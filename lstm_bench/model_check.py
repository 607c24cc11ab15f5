"""Whether a user's ONNX model is valid ONNX: checked as it is read, before anything runs.

An invalid model is bad input, never a runtime's failure (issue 18): a model with two
initializers named W was evaluated anyway, the float64 truth took one copy and onnxruntime the
other, and a correct runtime was marked fail. ``check_model`` refuses, in this order:

1. an IR version or a default-domain opset outside what onnx and onnxruntime run;
2. a name defined twice in the graph (single static assignment: two initializers, a Constant
   or node output and an initializer, a node output and a graph input), two nodes of one name,
   a graph output listed twice or that is a graph input (it computes nothing);
3. a NaN or infinite float attribute of a recurrent node (activation_alpha, activation_beta,
   clip), which the float64 reference and the runtimes would each treat their own way;
4. whatever ``onnx.checker.check_model(full_check=True)`` refuses, its strict shape and type
   inference included (an output declared int64 that an LSTM computes in float).

The checker looks at a copy of the graph (``model_limits.graph_only``: large and external
initializers become graph inputs of their type and shape), so that it runs before external data
is read and never serializes the weights again. One relaxation: a graph output without a shape
(its rank unknown, which onnxruntime accepts and the checker does not) gets its inferred shape
in that copy, or is left out of it where nothing infers one; the evaluator then says what is
wrong with it, as before.
"""

from __future__ import annotations

import math
from collections import Counter

import onnx
from onnx import AttributeProto

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.model_limits import graph_only, graphs

# onnxruntime implements no LSTM before opset 7 (LSTM-1), and guarantees nothing below it.
MIN_OPSET = 7
MIN_IR_VERSION = 3  # the first with opset imports; the checker refuses older ones with them
RECURRENT = ("LSTM", "GRU", "RNN")
FLOAT_ATTRIBUTES = ("activation_alpha", "activation_beta", "clip")


def _versions(model) -> str | None:
    ir, newest_ir = model.ir_version, onnx.IR_VERSION
    if not MIN_IR_VERSION <= ir <= newest_ir:
        return (f"ir_version {ir} is not one onnx {onnx.__version__} reads "
                f"({MIN_IR_VERSION} to {newest_ir})")
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not MIN_OPSET <= opset.version <= newest:
            return (f"opset {opset.version} of the default domain is not one that onnx "
                    f"{onnx.__version__} and onnxruntime both run ({MIN_OPSET} to {newest})")
    return None


def _names(graph) -> str | None:
    """Single static assignment and unique names in the main graph (subgraphs: the checker)."""
    defined: dict[str, str] = {}
    inputs = [value.name for value in graph.input]
    for name, count in Counter(inputs).items():
        if count > 1:
            return f"graph input {name!r} is declared {count} times"
    for name in inputs:
        defined[name] = "a graph input"
    seen_initializers = set()
    for tensor in graph.initializer:  # an initializer of an input's name is its default value
        if tensor.name in seen_initializers:
            return f"{tensor.name!r} is defined twice (by two initializers)"
        seen_initializers.add(tensor.name)
        defined.setdefault(tensor.name, "an initializer")
    for node in graph.node:
        what = f"{node.op_type} node {node.name!r}" if node.name else f"a {node.op_type} node"
        for name in node.output:
            if not name:  # an optional output left out
                continue
            if name in defined:
                return (f"{name!r} is defined twice (by {defined[name]} and by {what}): "
                        "ONNX graphs assign each name once")
            defined[name] = what
    names = Counter(node.name for node in graph.node if node.name)
    for name, count in names.items():
        if count > 1:
            return f"node name {name!r} is used by {count} nodes"
    outputs = Counter(value.name for value in graph.output)
    for name, count in outputs.items():
        if count > 1:
            return f"graph output {name!r} is listed {count} times"
    for name in outputs:
        if name in set(inputs):
            return f"graph output {name!r} is the graph input of that name: it computes nothing"
    return None


def _attributes(model) -> str | None:
    for node in (node for graph in graphs(model.graph) for node in graph.node):
        if node.op_type not in RECURRENT:
            continue
        for attr in node.attribute:
            values = (list(attr.floats) if attr.type == AttributeProto.FLOATS
                      else [attr.f] if attr.type == AttributeProto.FLOAT else [])
            if attr.name in FLOAT_ATTRIBUTES and not all(map(math.isfinite, values)):
                return (f"{node.op_type} node {node.name!r}: {attr.name} {values} holds NaN or "
                        "inf")
    return None


def _for_checker(model):
    """The copy the checker reads (see the module's docstring)."""
    copy = graph_only(model)
    inferred = onnx.shape_inference.infer_shapes(copy)  # errors: the checker's reason too
    shapes = {value.name: value.type.tensor_type.shape for value in inferred.graph.output
              if value.type.tensor_type.HasField("shape")}
    for at in reversed(range(len(copy.graph.output))):
        value = copy.graph.output[at]
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor.HasField("shape"):
            continue
        if value.name in shapes:
            tensor.shape.CopyFrom(shapes[value.name])
        else:
            del copy.graph.output[at]
    return copy


def check_model(model, where: str) -> None:
    """Refuse a model that is not valid ONNX (see the module's docstring): LSTMBenchError
    with the reason, ``where`` (the model's path) first."""
    reason = _versions(model) or _names(model.graph) or _attributes(model)
    if reason is None:
        try:
            onnx.checker.check_model(_for_checker(model), full_check=True)
        except Exception as exc:  # ValidationError, InferenceError, ... (onnx's own types)
            reason = first_line(exc)[:300]
    if reason is not None:
        raise LSTMBenchError(f"{where}: invalid ONNX model: {reason}")
