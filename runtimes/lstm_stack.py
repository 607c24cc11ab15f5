"""Stacked LSTM nodes run as one multi-layer ``nn.LSTM``, as the torch program they came from.

torch exports ``nn.LSTM(num_layers=n)`` as n LSTM nodes, each layer's Y squeezed into the next
one's X. Run node by node, torch pays its per-call cost (oneDNN's set-up on the CPU, a cuDNN
call on a GPU) once per layer, where the native module pays it once: measured on the 2-layer
embedding model of ``tools/torch_native``, 30 % slower at one step and 8 % at 100. So a chain
of LSTM nodes that nn.LSTM computes (forward, no sequence_lens, the same hidden size, weights
known when the graph is read), each Y read by a Squeeze of its direction axis alone and that by
the next layer alone, becomes one step at the last layer's place in the graph.

Imported only by ``runtimes.onnx_torch`` (it imports torch).
"""

from __future__ import annotations

import torch

from lstm_bench.graph import lstm_node
from lstm_bench.runtimes.features import nn_lstm_fallback
from lstm_bench.runtimes.torch_lstm import OnnxLSTM


def _attr(node, name, default):
    from onnx import helper

    found = [helper.get_attribute_value(a) for a in node.attribute if a.name == name]
    value = found[0] if found else default
    return value.decode() if isinstance(value, bytes) else value


def _plain(node, constant) -> bool:
    """An LSTM node nn.LSTM computes alone, with its weights known now."""
    inputs = list(node.input) + [""] * (8 - len(node.input))
    return (node.op_type == "LSTM" and node.domain in ("", "ai.onnx")
            and _attr(node, "direction", "forward") == "forward"
            and not _attr(node, "layout", 0) and not inputs[4] and not inputs[7]
            and nn_lstm_fallback(node) is None
            and all(constant(name) is not None for name in inputs[1:4] if name))


def _squeezes_axis_1(node, constant) -> bool:
    if node.op_type != "Squeeze":
        return False
    axes = _attr(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = constant(node.input[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return axes is not None and [a % 4 for a in axes] == [1]


def stacks(graph, constant) -> list[list[int]]:
    """Chains of two or more node indices [LSTM, Squeeze, LSTM, ...] to fuse (see the module
    doc); ``constant(name)`` gives a constant's value or None."""
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers.setdefault(name, []).append(index)
    outputs = {o.name for o in graph.output}
    nodes = graph.node

    def next_layer(index):
        """(squeeze index, next LSTM index) after the LSTM at ``index``, or None."""
        y = nodes[index].output[0] if nodes[index].output else ""
        if not y or y in outputs or len(readers.get(y, [])) != 1:
            return None
        squeeze = readers[y][0]
        if not _squeezes_axis_1(nodes[squeeze], constant):
            return None
        x = nodes[squeeze].output[0]
        after = readers.get(x, [])
        if x in outputs or len(after) != 1 or not _plain(nodes[after[0]], constant) \
                or list(nodes[after[0]].input)[0] != x:
            return None
        return squeeze, after[0]

    chains, taken = [], set()
    for index, node in enumerate(nodes):
        if index in taken or not _plain(node, constant):
            continue
        chain = [index]
        while (step := next_layer(chain[-1])) is not None:
            chain += step
        layers = chain[::2]
        sizes = {_attr(nodes[i], "hidden_size", None) for i in layers}
        if len(layers) < 2 or len(sizes) != 1:
            continue
        # the layers' other outputs (Y_h, Y_c) must not be read before the last layer runs
        last = chain[-1]
        early = [r for i in layers[:-1] for name in nodes[i].output[1:] if name
                 for r in readers.get(name, []) if r < last]
        if not early:
            chains.append(chain)
            taken.update(chain)
    return chains


def fused_lstm(nodes, constant, device):
    """(the function of a fused chain's step, the per-layer OnnxLSTM modules). The step takes
    X, then (initial_h, initial_c) per layer, and returns the last layer's Y, then (Y_h, Y_c)
    per layer."""
    layers = []
    for node in nodes:
        names = [n for n in list(node.input)[1:4] if n]
        weights = lstm_node(node, {n: constant(n).cpu().numpy() for n in names}).weights
        layers.append(OnnxLSTM(weights, None))
    first = layers[0].lstm
    stack = torch.nn.LSTM(first.input_size, first.hidden_size, num_layers=len(layers))
    with torch.no_grad():
        for k, layer in enumerate(layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(stack, f"{kind}_l{k}").copy_(getattr(layer.lstm, f"{kind}_l0"))
    stack = stack.to(device).eval()

    def run(X, *states):
        dtype = X.dtype
        if dtype != torch.float32:  # the module computes in float32
            X, states = X.float(), [None if s is None else s.float() for s in states]
        hx = None
        if any(s is not None for s in states):
            zeros = X.new_zeros(1, X.shape[1], stack.hidden_size)
            hx = tuple(torch.cat([zeros if s is None else s for s in states[part::2]])
                       for part in (0, 1))
        Y, (h, c) = stack(X, hx)
        out = [Y.unsqueeze(1)]
        for k in range(len(layers)):
            out += [h[k:k + 1], c[k:k + 1]]
        return tuple(t.to(dtype) for t in out) if dtype != torch.float32 else tuple(out)
    return run, layers
