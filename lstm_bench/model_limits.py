"""Limits checked on a user's ONNX model as it is read, before anything runs or is allocated.

``check_limits`` refuses: names that are not UTF-8 text (protobuf hands them back as bytes), a
tensor or value whose static size is above ``LSTM_BENCH_MAX_ARRAY_MB`` (a fixed dim of 10**12,
a ConstantOfShape bomb: sizes from onnx's shape inference with data propagation), a constant
tensor that declares more values than it holds, and a Loop whose constant trip count is above
``MAX_LOOP_TRIPS``. ONNX external data outside the model's folder is refused by onnx.load
itself. A Loop whose count is computed at run time is stopped by the float64 reference's time
limit (``reference.model``).
"""

from __future__ import annotations

import math

import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import check_array_size

MAX_LOOP_TRIPS = 10 ** 7  # an LSTM model has no business looping longer than this


def _graphs(graph):
    """The graph and every subgraph (Loop, If, Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def _tensor_values(tensor) -> int | None:
    """How many values a TensorProto holds inline (None: external or not countable here)."""
    if tensor.data_location == TensorProto.EXTERNAL:
        return None
    if tensor.HasField("raw_data"):
        if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
            return None
        size = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        return len(tensor.raw_data) // size if size else None
    fields = ("float_data", "int32_data", "string_data", "int64_data", "double_data",
              "uint64_data")
    count = sum(len(getattr(tensor, f)) for f in fields)
    if tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        count //= 2
    return count


def _static_shapes(model):
    """(name, dims, elem_type) of every value whose dims are all known, after shape inference
    with data propagation (so a ConstantOfShape of a constant shape has its size)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # an inconsistent graph: the evaluator or the runtime says why
        inferred = model
    graph = inferred.graph
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if tensor.HasField("shape") and dims and None not in dims and tensor.elem_type:
            yield value.name, dims, tensor.elem_type


def _itemsize(elem_type) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize or 8
    except (KeyError, ValueError, TypeError):
        return 8


def _texts(graph):
    """Every name of a graph that lstm-bench reads as text."""
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        yield value.name
        yield from (d.dim_param for d in value.type.tensor_type.shape.dim)
    for node in graph.node:
        yield from (node.name, node.op_type, node.domain, *node.input, *node.output)
    yield from (t.name for t in graph.initializer)


def check_limits(model, where: str) -> None:
    """Refuse sizes and loops that no real LSTM model needs, before anything is allocated,
    and names that are not text (protobuf hands invalid UTF-8 back as bytes)."""
    for graph in _graphs(model.graph):
        if not all(isinstance(text, str) for text in _texts(graph)):
            raise LSTMBenchError(f"{where}: a name in the graph is not valid UTF-8 text")
        tensors = [(t.name, t) for t in graph.initializer]
        tensors += [(n.output[0] if n.output else n.op_type, a.t) for n in graph.node
                    for a in n.attribute if a.type == AttributeProto.TENSOR]
        for name, tensor in tensors:
            dims = list(tensor.dims)
            check_array_size(dims, _itemsize(tensor.data_type), f"{where}: tensor {name!r}")
            held = _tensor_values(tensor)
            if held is not None and held != math.prod(dims):
                raise LSTMBenchError(f"{where}: tensor {name!r} declares shape {dims} "
                                     f"({math.prod(dims)} values) but holds {held}")
        constants = {t.name: t for t in graph.initializer}
        constants.update({n.output[0]: a.t for n in graph.node if n.op_type == "Constant"
                          and n.output for a in n.attribute if a.name == "value"})
        for node in graph.node:
            if node.op_type == "Loop" and node.input and node.input[0] in constants:
                trips = numpy_helper.to_array(constants[node.input[0]]).reshape(-1)
                if trips.size == 1 and int(trips[0]) > MAX_LOOP_TRIPS:
                    raise LSTMBenchError(f"{where}: Loop {node.name or '(unnamed)'!r} runs "
                                         f"{int(trips[0])} iterations, above the limit of "
                                         f"{MAX_LOOP_TRIPS}")
    for name, dims, elem_type in _static_shapes(model):
        check_array_size(dims, _itemsize(elem_type), f"{where}: value {name!r}")
