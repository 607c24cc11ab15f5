"""Every LSTM layer of a model, lifted out to be judged alone: which layers, at which steps.

A model whose output is one value per sequence (a classifier over the last hidden state)
hides the drift of its hidden states over time, and a stack hides which layer drifts. Each
LSTM node the model runs on its feeds is therefore built alone (its weights in a model of one
node that returns Y, ``exporters.weights.build_lstm_model``) and judged by every runtime
beside the model: each layer of a stack, a bidirectional layer (one node, both directions),
the LSTMs inside the If branch the feeds choose (``feeds.branches``), or inside both branches
where the feeds choose none. Each is fed at the steps that layer sees at the shapes fed, as
shape inference tells them (``feeds.probe``: a decoder's own length, the frames after a front
end), or at the feeds' seq_len where inference cannot tell; all at one batch of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_bench import graph
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.feeds import Inputs, make_inputs
from lstm_bench.feeds.axes import axis_map
from lstm_bench.feeds.branches import chosen_branches
from lstm_bench.feeds.probe import lstm_nodes_anywhere
from lstm_bench.model import Model


@dataclass(frozen=True)
class Layer:
    """One LSTM node of the model built alone, and its feeds."""

    label: str  # "<node name> alone"
    model: Model
    inputs: Inputs


def _subgraph_nodes(model) -> dict:
    """Outputs -> (the constants it can read, a name for its messages) of every LSTM node
    inside a subgraph (an If branch, a Loop or Scan body): the constants of its own graph and
    of the graphs around it."""
    found = {}

    def walk(body, known: dict, inside: bool):
        known = {**known, **graph.constants(body)}
        for index, node in enumerate(body.node):
            if node.op_type == "LSTM" and inside:
                found[tuple(node.output)] = (known, node.name or f"{body.name}/LSTM#{index}")
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    walk(sub, known, True)

    walk(model.graph, {}, False)
    return found


def lstm_layers(model) -> list:
    """``graph.LSTMNode`` of every LSTM node of ``model`` (a ModelProto), in the order of
    ``probe.lstm_nodes_anywhere``: the main graph's with their weights folded where they are
    computed (``graph.lstm_nodes``), a subgraph's from constants; None for one whose
    weights only the run tells (it cannot be lifted out)."""
    main = {node.outputs: node for node in graph.lstm_nodes(model)}
    inner = _subgraph_nodes(model)
    found = []
    for node in lstm_nodes_anywhere(model):
        outputs = tuple(node.output) + ("",) * (3 - len(node.output))
        if outputs in main:
            found.append(main[outputs])
        elif tuple(node.output) in inner:
            known, label = inner[tuple(node.output)]
            try:
                found.append(graph.lstm_node(node, known, label))
            except LSTMBenchError:  # W or R computed inside the body
                found.append(None)
        else:  # an LSTM of another domain: not the ONNX operator
            found.append(None)
    return found


def layers_alone(model: Model, shapes: dict[str, tuple] | None, *, batch: int,
                 seq_len: int | None, seed: int = 0,
                 value_range=(-1.0, 1.0)) -> tuple[Layer, ...]:
    """Every LSTM layer of ``model`` alone, fed at ``batch`` and at the steps it sees when the
    model is fed at ``shapes`` (input name -> shape; at ``seq_len`` where inference cannot
    tell, or ``shapes`` is None). Empty where the model is one LSTM node returning Y already
    (its own check is the layer's) or has no LSTM node; a layer whose weights only the run
    tells is left out."""
    proto = model.proto
    outputs = {o.name for o in proto.graph.output}
    if len(proto.graph.node) == 1 and proto.graph.node[0].op_type == "LSTM" \
            and proto.graph.node[0].output[0] in outputs:
        return ()
    run = chosen_branches(proto, model.given.values)  # the If branches the feeds take
    try:
        nodes = lstm_layers(run)
    except LSTMBenchError:  # weights folded from graph ops that cannot be folded
        return ()
    prober = axis_map(proto, model.given).prober if shapes is not None else None
    views = prober.views(shapes) if prober is not None else ()
    if len(views) != len(nodes):  # a prober of other nodes: inference tells nothing here
        views = ((None,),) * len(nodes)
    layers, names = [], []
    for node, proto_node, view in zip(nodes, lstm_nodes_anywhere(run), views):
        if node is None:
            continue
        # an unnamed node by its output's name (a branch's node has no index in the graph)
        name = proto_node.name or f"LSTM {next((o for o in proto_node.output if o), '')}"
        names.append(name)  # two branches may hold nodes of one name: numbered
        count = names.count(name)
        label = f"{name} alone" if count == 1 else f"{name} #{count} alone"
        alone = Model.built(build_lstm_model(node.weights, outputs=("Y",)))
        steps = view[0] or seq_len
        layers.append(Layer(label, alone, make_inputs(alone.proto, batch=batch, seq_len=steps,
                                                      seed=seed, value_range=value_range)))
    return tuple(layers)

