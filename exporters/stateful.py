"""A stateful variant of an LSTM model: the states enter as inputs and leave as outputs.

Streaming deployments (speech, sensors, online forecasting) call a model one step or one short
chunk at a time and carry the LSTM's (h, c) from one call to the next. That needs the LSTM's
``initial_h`` / ``initial_c`` as graph inputs and its ``Y_h`` / ``Y_c`` as graph outputs, which
most exports lack: torch's exporters bake zero initial states into the graph (an Expand of a
zeros constant), and keep only the model's own output.

``stateful_variant`` rewires such a model and changes nothing else it computes:

- every LSTM node's initial states become graph inputs ``initial_h`` and ``initial_c``
  (``initial_h_2``... for a stack's further layers; ``[num_directions, batch, hidden_size]``);
  whatever computed them before is pruned;
- its ``Y_h`` and ``Y_c`` become graph outputs named ``Y_h`` and ``Y_c`` (``Y_h_2``...),
  unless they already were graph outputs, under whatever name;
- in a one-LSTM model whose X is a ``Transpose`` of a graph input (a batch-first model), the
  variant takes X time-major as the node does, under the name ``X``: a chunk of steps is then
  a slice of the node's own input. A stack keeps its inputs: streaming cuts the model's own
  input along the axis that is the LSTMs' steps (``verify.streaming``).

The model's other outputs stay; with zero states the variant computes what the model did.
"""

from __future__ import annotations

from lstm_bench.errors import LSTMBenchError
from lstm_bench.graph import lstm_nodes

METADATA_STATEFUL = "lstm_bench.stateful_variant"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def _dim(value_info, axis: int):
    """The (dim_value or dim_param) of one axis of a graph value, for a new value's shape."""
    dims = value_info.type.tensor_type.shape.dim
    if axis >= len(dims):
        return None
    d = dims[axis]
    return d.dim_value if d.HasField("dim_value") else (d.dim_param or None)


def _prune(graph) -> None:
    """Drop nodes whose outputs nothing reads, then initializers and graph inputs nothing reads."""
    outputs = {o.name for o in graph.output}
    while True:
        read = outputs | {name for node in graph.node for name in node.input}
        dead = [node for node in graph.node if not any(o in read for o in node.output if o)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = outputs | {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in read]:
        graph.initializer.remove(tensor)
    for value in [v for v in graph.input if v.name not in read]:
        graph.input.remove(value)


def stateful_variant(model):
    """A copy of ``model`` (unidirectional LSTM nodes) with every LSTM's state as graph inputs
    and outputs; see the module docstring. Raises LSTMBenchError when it cannot be made."""
    import onnx
    from onnx import TensorProto, helper

    nodes = lstm_nodes(model)
    if not nodes:
        raise LSTMBenchError("a stateful variant needs an LSTM node in the main graph")
    if any(found.spec.direction == "bidirectional" for found in nodes):
        raise LSTMBenchError("a bidirectional LSTM reads the whole sequence: it cannot carry "
                             "its state from one chunk to the next")
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    graph = variant.graph
    taken = ({v.name for v in graph.input} | {v.name for v in graph.output}
             | {t.name for t in graph.initializer}
             | {name for n in graph.node for name in (*n.input, *n.output)})
    inputs = {v.name: v for v in graph.input}
    producers = {name: n for n in graph.node for name in n.output}
    first = next(n for n in graph.node if n.op_type == "LSTM")
    if len(nodes) == 1 and first.input[0] not in inputs:
        x_input = _time_major_input(graph, producers.get(first.input[0]), inputs, taken)
        first = next(n for n in graph.node if n.op_type == "LSTM")  # the node list was rebuilt
        first.input[0] = x_input.name
    x_value = next((v for v in graph.input if v.name == first.input[0]), None)
    layout = nodes[0].spec.layout
    batch = (_dim(x_value, 0 if layout else 1) if x_value is not None else None) or "batch"
    elem = x_value.type.tensor_type.elem_type if x_value is not None else TensorProto.FLOAT
    for node, found in zip([n for n in graph.node if n.op_type == "LSTM"], nodes):
        _carry_state(graph, node, found.spec, (batch, elem), taken)
    _prune(graph)
    helper.set_model_props(variant, {**{p.key: p.value for p in variant.metadata_props},
                                     METADATA_STATEFUL: "1"})
    try:
        onnx.checker.check_model(variant, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise LSTMBenchError(f"the stateful variant fails onnx's checker: "
                             f"{str(exc).strip().splitlines()[0]}") from None
    return variant


def _carry_state(graph, node, spec, state, taken) -> None:
    """``node``'s initial states as new graph inputs, its final states as graph outputs;
    ``state``: (the batch dim, the element type) they are declared with."""
    from onnx import helper

    while len(node.input) < 7:
        node.input.append("")
    while len(node.output) < 3:
        node.output.append("")
    inputs = {v.name for v in graph.input}
    batch, elem = state
    D, H = spec.num_directions, spec.hidden_size
    state_shape = [batch, D, H] if spec.layout else [D, batch, H]
    for slot, name in ((5, "initial_h"), (6, "initial_c")):
        if node.input[slot] not in inputs:
            node.input[slot] = _unique(name, taken)
            graph.input.append(helper.make_tensor_value_info(node.input[slot], elem, state_shape))
    graph_outputs = {o.name for o in graph.output}
    for slot, name in ((1, "Y_h"), (2, "Y_c")):
        if node.output[slot] in graph_outputs:
            continue
        old, node.output[slot] = node.output[slot], _unique(name, taken)
        if old:  # an internal name (torch's "getitem_1"): its readers follow the new name
            for reader in graph.node:
                reader.input[:] = [node.output[slot] if n == old else n for n in reader.input]
            for info in [v for v in graph.value_info if v.name == old]:
                graph.value_info.remove(info)
        graph.output.append(helper.make_tensor_value_info(node.output[slot], elem, state_shape))


def _time_major_input(graph, transpose, inputs, taken):
    """A new graph input ``X`` in the LSTM's own layout, for X = Transpose(graph input)."""
    from onnx import helper

    source = transpose.input[0] if transpose is not None and transpose.op_type == "Transpose" \
        else None
    if source not in inputs:
        made_by = f"a {transpose.op_type} node" if transpose is not None else "nothing"
        raise LSTMBenchError(f"the LSTM's X is computed inside the graph (by {made_by}); a "
                             "stateful variant needs X as a graph input, or a Transpose of one")
    perm = next(helper.get_attribute_value(a) for a in transpose.attribute if a.name == "perm")
    original = inputs[source]
    x = helper.make_tensor_value_info(_unique("X", taken), original.type.tensor_type.elem_type,
                                      [_dim(original, p) for p in perm])
    graph.input.append(x)
    # Whatever else read the original input reads it back from X (pruned when nothing does).
    inverse = [perm.index(axis) for axis in range(len(perm))]
    nodes = [helper.make_node("Transpose", [x.name], [source], perm=inverse), *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)  # first: nodes stay in topological order
    graph.input.remove(original)
    return x

