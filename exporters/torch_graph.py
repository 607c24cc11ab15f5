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


def relax_shapes(model, batch_axis, time_axis, has_lengths, probes=None):
    """Give the inputs' batch and time axes symbolic names and infer every other shape again.

    ``probes`` is ``[(batch, steps, outputs), ...]``: torch's outputs at two input shapes. An
    output dim that shape inference leaves unknown is fixed when it is the same in both, and
    named "batch" or "seq" when it follows that axis.
    """
    import onnx

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    set_dims(inputs[0], {axis: name for axis, name in ((batch_axis, "batch"), (time_axis, "seq"))
                         if axis is not None})  # None: that axis stays as exported
    if has_lengths:
        set_dims(inputs[1], {0: "batch"})
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
            if isinstance(dim, int) and probes:  # inference kept a baked size torch varies
                (_, _, outs0), (_, _, outs1) = probes
                if outs0[position].shape[index] != outs1[position].shape[index]:
                    dim = None
            if dim is None and probes:
                (b0, t0, outs0), (b1, t1, outs1) = probes
                n0, n1 = outs0[position].shape[index], outs1[position].shape[index]
                dim = (n0 if n0 == n1 else "batch" if (n0, n1) == (b0, b1)
                       else "seq" if (n0, n1) == (t0, t1) else None)
            if dim is None and index < rank:
                dim = declared[output.name][index]  # the exporter's own symbolic name, if any
            if isinstance(dim, int):
                entry.dim_value = dim
            elif dim:
                entry.dim_param = dim
            # else: left unknown, which is valid ONNX and honest
    return model


def unbake_sequence_length(proto, steps: int) -> int:
    """Let Reshapes copy the sequence axis from their input instead of a baked-in length.

    After ``torch.export`` fixed the sequence length, the dynamo exporter writes Reshapes of
    time-major LSTM outputs with a constant target like ``[steps, -1, D*H]``. Where the data's
    axis k is the symbolic "seq" and the target's entry k is the example's length, entry k
    becomes 0 (ONNX: copy that axis from the input), which is the same reshape at that length
    and the right one at any other. Only constants without other zeros are touched, and the
    proof in onnxruntime still judges the result. Returns the number of Reshapes changed.
    """
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    dims = {v.name: [d.dim_param or None for d in v.type.tensor_type.shape.dim]
            for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    initializers = {t.name: t for t in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        target = initializers.get(node.input[1])
        data_dims = dims.get(node.input[0])
        if target is None or data_dims is None or users.get(node.input[1]) != 1:
            continue
        shape = numpy_helper.to_array(target).copy()
        seq_axes = [k for k, name in enumerate(data_dims[:len(shape)])
                    if name == "seq" and shape[k] == steps]
        if len(seq_axes) != 1 or np.any(shape == 0):
            continue
        shape[seq_axes[0]] = 0
        target.CopyFrom(numpy_helper.from_array(shape, target.name))
        for attr in node.attribute:
            if attr.name == "allowzero":
                attr.i = 0
        changed += 1
    return changed


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
