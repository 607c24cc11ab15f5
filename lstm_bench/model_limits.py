"""Limits checked on a user's ONNX model as it is read, before anything runs or is allocated.

``check_limits`` refuses: names that are not UTF-8 text (protobuf hands them back as bytes), a
tensor or value whose static size is above ``LSTM_BENCH_MAX_ARRAY_MB`` (a fixed dim of 10**12,
a ConstantOfShape bomb: sizes from onnx's shape inference with data propagation), a constant
tensor that declares more values than it holds (external data too: measured from its file
before onnx reads it), and a Loop whose constant trip count is above ``MAX_LOOP_TRIPS``. ONNX
external data outside the model's folder is refused by onnx's own loader. A Loop whose count is
computed at run time is stopped by the float64 reference's time limit (``reference.model``).

``check_values_at`` bounds the values whose size the feeds decide (a ConstantOfShape of
Shape(X) * k) at the shapes about to be fed, before any runtime runs them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import check_array_size, size_text

MAX_LOOP_TRIPS = 10 ** 7  # an LSTM model has no business looping longer than this
# Initializers above this many values become graph inputs in ``graph_only``: shape inference
# and the checker need their type and shape, not their values (a shape is a few values).
MAX_INLINE_VALUES = 1024


def graphs(graph):
    """The graph and every subgraph (Loop, If, Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from graphs(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from graphs(g)


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


def _copy_fields(source, target, skip: str) -> None:
    """Copy every field of protobuf message ``source`` into ``target`` but ``skip``."""
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        mine = getattr(target, field.name)
        if hasattr(mine, "extend"):  # a repeated field
            mine.extend(value)
        elif hasattr(mine, "CopyFrom"):  # a message
            mine.CopyFrom(value)
        else:
            setattr(target, field.name, value)


def graph_only(model):
    """A copy of ``model`` whose large or external initializers are graph inputs of the same
    type and shape: all that shape inference and onnx.checker need of them, without their
    data (which may not be loaded yet) being copied or serialized for every inference."""
    copy = onnx.ModelProto()
    _copy_fields(model, copy, "graph")
    _copy_fields(model.graph, copy.graph, "initializer")
    declared = {value.name for value in copy.graph.input}
    for tensor in model.graph.initializer:  # by declared size: reading raw_data copies it
        if (tensor.data_location != TensorProto.EXTERNAL
                and math.prod(tensor.dims) <= MAX_INLINE_VALUES):
            copy.graph.initializer.add().CopyFrom(tensor)
        elif tensor.name not in declared:
            declared.add(tensor.name)
            copy.graph.input.append(onnx.helper.make_tensor_value_info(
                tensor.name, tensor.data_type, list(tensor.dims)))
    return copy


def _static_shapes(model):
    """(name, dims, elem_type) of every value whose dims are all known, after shape inference
    with data propagation (so a ConstantOfShape of a constant shape has its size). A negative
    dim counts as unknown: the input that declares it is blamed where it is fed
    (``lstm_bench.feeds``), not a value downstream."""
    try:
        inferred = onnx.shape_inference.infer_shapes(graph_only(model), data_prop=True)
    except Exception:  # an inconsistent graph: onnx.checker says why (``model_check``)
        return
    graph = inferred.graph
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None
                for d in tensor.shape.dim]
        if tensor.HasField("shape") and dims and None not in dims and tensor.elem_type:
            yield value.name, dims, tensor.elem_type


def fed_at(skeleton, shapes: dict):
    """A copy of ``skeleton`` (a ``graph_only`` model) whose inputs named in ``shapes`` (input
    name -> sizes) declare those sizes: what shape inference reads at one shape of a sweep."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(skeleton)
    for value in fixed.graph.input:
        if value.name in shapes:
            shape = value.type.tensor_type.shape
            shape.Clear()
            for size in shapes[value.name]:
                shape.dim.add().dim_value = int(size)
    return fixed


def values_at(skeleton, shapes: dict) -> list:
    """(name, dims, elem_type) of every value of the main graph whose size shape inference
    (with data propagation) tells when its inputs are fed at ``shapes`` (input name ->
    shape); ``skeleton``: the model's ``graph_only`` copy."""
    return list(_static_shapes(fed_at(skeleton, shapes)))


def check_values_at(skeleton, shapes: dict, where: str) -> None:
    """Refuse, before anything runs, a value of the model above LSTM_BENCH_MAX_ARRAY_MB when
    its inputs are fed at ``shapes`` (input name -> shape): shape inference with data
    propagation on the model with those inputs fixed, so that a ConstantOfShape or Reshape of
    Shape(X) * k has its size. (A size computed from the feeds' values, or by an operator
    whose inference does not propagate, such as Expand, is bounded by the float64 reference's
    memory cap instead, ``reference.model``.) ``skeleton``: the model's ``graph_only`` copy,
    made once for all the shapes of a sweep."""
    fed = ", ".join(f"{name} {list(map(int, shape))}" for name, shape in shapes.items())
    for name, dims, elem_type in values_at(skeleton, shapes):
        if name not in shapes:
            check_array_size(dims, _itemsize(elem_type),
                             f"{where}: value {name!r} with the inputs fed at {fed}")


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


def _external_bytes(tensor, folder: Path, where: str) -> tuple[int, str] | None:
    """(bytes onnx would read, where) for a tensor with external data: its ``length``, else
    the rest of its file from ``offset``, measured without opening the file; None where onnx
    refuses it anyway (a file outside the model's folder, missing, or not a regular file)."""
    from onnx.external_data_helper import ExternalDataInfo

    try:
        info = ExternalDataInfo(tensor)
    except ValueError as exc:  # a negative or non-integer offset or length
        raise LSTMBenchError(f"{where}: not a readable ONNX model "
                             f"({first_line(exc, with_type=True)[:300]})") from None
    if info.length is not None:
        return info.length, f"its external data entry gives length {info.length}"
    path = folder / info.location
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    if not inside or not os.path.isfile(path):
        return None
    nbytes = status.st_size - (info.offset or 0)
    return nbytes, (f"its external data has no length, and {info.location!r} holds "
                    f"{size_text(max(nbytes, 0))} from offset {info.offset or 0}")


def check_external_data(model, folder, where: str) -> None:
    """Refuse a tensor whose external data is not the size its shape declares, before onnx
    reads it: without a ``length`` onnx reads the rest of the file, whatever its size (a
    1.5 GB sparse file takes no disk and 1.5 GB of memory). Their declared shapes were checked
    against LSTM_BENCH_MAX_ARRAY_MB already (``check_limits``)."""
    from onnx.external_data_helper import _get_all_tensors  # every tensor onnx.load reads

    folder = Path(folder)
    for tensor in _get_all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        found = _external_bytes(tensor, folder, where)
        declared = math.prod(tensor.dims) * _itemsize(tensor.data_type)
        if found is not None and found[0] != declared:
            raise LSTMBenchError(
                f"{where}: tensor {tensor.name!r} declares shape {list(tensor.dims)} "
                f"({size_text(declared)}) but {found[1]}")


def check_limits(model, where: str, folder=None) -> None:
    """Refuse sizes and loops that no real LSTM model needs, before anything is allocated,
    and names that are not text (protobuf hands invalid UTF-8 back as bytes). ``folder``: where
    the model's external data lies (not loaded yet: its sizes are measured from its files)."""
    for graph in graphs(model.graph):
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
            # (a trip count in external data is not loaded yet: such a loop is bounded by the
            # time limits, LSTM_BENCH_CALL_TIMEOUT_S and LSTM_BENCH_REFERENCE_TIMEOUT_S)
            if node.op_type == "Loop" and node.input and node.input[0] in constants \
                    and constants[node.input[0]].data_location != TensorProto.EXTERNAL:
                trips = numpy_helper.to_array(constants[node.input[0]]).reshape(-1)
                if trips.size == 1 and int(trips[0]) > MAX_LOOP_TRIPS:
                    raise LSTMBenchError(f"{where}: Loop {node.name or '(unnamed)'!r} runs "
                                         f"{int(trips[0])} iterations, above the limit of "
                                         f"{MAX_LOOP_TRIPS}")
    if folder is not None:
        check_external_data(model, folder, where)
    for name, dims, elem_type in _static_shapes(model):
        check_array_size(dims, _itemsize(elem_type), f"{where}: value {name!r}")
