"""Graph surgery on torch's ONNX exports: symbolic axes back, baked lengths out, weights folded.

Used by ``torch_export`` after either exporter ran; each step is judged afterwards by the proof
in onnxruntime (``torch_proof``), never trusted on its own.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.torch_quiet import quiet


def set_dims(value_info, dims):
    shape = value_info.type.tensor_type.shape
    for index, name in dims.items():
        dim = shape.dim[index]
        dim.Clear()
        dim.dim_param = name


def relax_shapes(model, symbolic, probes=None):
    """Give the inputs' axes in ``symbolic`` (per input, {axis: name}) their symbolic names and
    infer every other shape again.

    ``probes`` is ``[(sizes, outputs), (sizes, outputs)]``: torch's outputs at two input shapes,
    each with its size per name. An output dim that shape inference leaves unknown is fixed
    when it is the same in both, and given the first name whose sizes it follows.
    """
    import onnx

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    for value, axes in zip(inputs, symbolic):
        set_dims(value, axes)
    declared = {}
    for output in graph.output:
        declared[output.name] = [d.dim_param or None for d in output.type.tensor_type.shape.dim]
        output.type.tensor_type.ClearField("shape")
    del graph.value_info[:]
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output}
    for position, output in enumerate(graph.output):
        rank = len(declared[output.name])
        found = inferred.get(output.name)
        dims = [None] * rank
        if found is not None and found.type.tensor_type.HasField("shape"):
            dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                    for d in found.type.tensor_type.shape.dim]
        shape = output.type.tensor_type.shape
        for index, dim in enumerate(dims):
            entry = shape.dim.add()
            if isinstance(dim, str) and dim.startswith("unk__"):
                dim = None
            if probes:
                (sizes0, outs0), (sizes1, outs1) = probes
                n0, n1 = outs0[position].shape[index], outs1[position].shape[index]
                if isinstance(dim, int) and n0 != n1:  # inference kept a baked size torch varies
                    dim = None
                if dim is None:
                    dim = n0 if n0 == n1 else next(
                        (name for name, size in sizes0.items() if (size, sizes1[name]) == (n0, n1)),
                        None)
            if dim is None and index < rank:
                dim = declared[output.name][index]  # the exporter's own symbolic name, if any
            if isinstance(dim, int):
                entry.dim_value = dim
            elif dim:
                entry.dim_param = dim
            # else: left unknown, which is valid ONNX and honest
    return model


def static_dims(proto, shapes) -> dict:
    """Every value's dims inferred with the inputs at the example's ``shapes``: an int where
    known (a Shape computation of a symbolic dim then gives the example's size too)."""
    import onnx

    pinned = onnx.ModelProto()
    pinned.CopyFrom(proto)
    initializers = {t.name for t in pinned.graph.initializer}
    inputs = [v for v in pinned.graph.input if v.name not in initializers]
    for value, shape in zip(inputs, shapes):
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shape):
            dim.Clear()
            dim.dim_value = int(size)
    del pinned.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(pinned, data_prop=True)
    return {v.name: [d.dim_value if d.HasField("dim_value") else None
                     for d in v.type.tensor_type.shape.dim]
            for v in list(inferred.graph.value_info) + list(inferred.graph.input)}


def unbake_lengths(proto, before: dict) -> int:
    """Let Reshapes copy an axis from their input instead of a length baked in at the example.

    After ``torch.export`` fixed a length (and, for a length it kept symbolic but computed from
    an input's, like a CRNN's width / 4, even then), the dynamo exporter writes Reshapes of LSTM
    outputs with a constant target like ``[steps, -1, D*H]``. ``before`` holds every value's
    dims at the example (``static_dims``). Where the data's axis k was the target's entry k
    there and is symbolic now that the inputs' axes are (``relax_shapes``), entry k becomes 0
    (ONNX: copy that axis from the input): the same reshape at the example's shape and the
    right one at any other. Only constants without other zeros are touched (a constant other
    nodes share too is copied first), and the proof in onnxruntime still judges the result. Shapes are inferred again after each change, as a
    freed Reshape frees the layers after it (a stack). Returns the number of Reshapes changed.
    """
    changed = 0
    while _unbake_one(proto, before):
        changed += 1
    return changed


def _unbake_one(proto, before: dict) -> bool:
    """Free the first Reshape that ``unbake_lengths`` would; whether there was one."""
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    dims = {v.name: [d.dim_value if d.HasField("dim_value") else None
                     for d in v.type.tensor_type.shape.dim]
            for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    initializers = {t.name: t for t in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        target = initializers.get(node.input[1])
        now, then = dims.get(node.input[0]), before.get(node.input[0])
        if target is None or now is None or then is None:
            continue
        shape = numpy_helper.to_array(target).copy()
        freed = [k for k in range(min(len(shape), len(now), len(then)))
                 if now[k] is None and then[k] is not None and shape[k] == then[k]]
        if len(freed) != 1 or np.any(shape == 0):
            continue
        shape[freed[0]] = 0
        if users[node.input[1]] > 1:  # a constant the exporter shares: this Reshape's own copy
            name = f"{node.input[1]}_{node.name or 'reshape'}_unbaked"
            proto.graph.initializer.append(numpy_helper.from_array(shape, name))
            node.input[1] = name
        else:
            target.CopyFrom(numpy_helper.from_array(shape, target.name))
        for attr in node.attribute:
            if attr.name == "allowzero":
                attr.i = 0
        return True
    return False


def fold_weights(proto):
    """Fold the dynamo exporter's weight preprocessing (gate reordering) into initializers.

    Its own optimizer leaves alone any constant above 8192 elements, so R of an LSTM with
    hidden_size >= 46 stays a Slice/Concat chain computed on every run, and tools that read
    W and R from the file (``lstm_bench.graph``) cannot. Run after the axes are symbolic, so
    that no Shape of the input is folded into a constant.
    """
    import onnxscript.optimizer

    limit = max(sum(int(np.prod(t.dims)) for t in proto.graph.initializer), 8192)
    with quiet():
        return onnxscript.optimizer.optimize(proto, input_size_limit=limit,
                                             output_size_limit=limit)


def assert_structure(model, expected_layers: int, has_lengths: bool):
    """One LSTM node per nn.LSTM layer, no Loop or Scan anywhere, sequence_lens when ragged."""

    def walk(graph):
        for node in graph.node:
            yield node
            for attr in node.attribute:
                if attr.HasField("g"):
                    yield from walk(attr.g)
                for sub in attr.graphs:
                    yield from walk(sub)

    nodes = list(walk(model.graph))
    for function in model.functions:
        nodes.extend(function.node)
    loops = sorted({n.op_type for n in nodes if n.op_type in ("Loop", "Scan")})
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    if loops or len(lstms) != expected_layers:
        raise LSTMBenchError(
            f"the exported graph has {len(lstms)} LSTM node(s) for {expected_layers} nn.LSTM "
            f"layer(s){' and ' + '/'.join(loops) + ' nodes' if loops else ''}; expected exactly "
            "one LSTM node per layer and no Loop or Scan (was an LSTM unrolled, called twice, "
            "or left unused?)")
    if has_lengths:
        missing = [n.name or "LSTM" for n in lstms if len(n.input) < 5 or not n.input[4]]
        if missing:
            raise LSTMBenchError(
                f"the model takes lengths but LSTM node(s) {missing} have no sequence_lens "
                "input; pack the input with pack_padded_sequence before the nn.LSTM")
