"""What a parsed Keras model computes, in float64 NumPy: the independent check of an export.

Walks the layers itself, without the exported graph: each LSTM through ``reference.lstm``
(a masked one sequence by sequence over its valid steps, as Keras skips masked steps, carrying
the last output over masked steps), the other layers in a few lines of NumPy each.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.reference import lstm
from lstm_bench.exporters.keras_layers import (
    NUMPY_ACTIVATIONS, KerasAffine, KerasConv1D, KerasEmbedding, KerasFlatten, KerasGlobalPool,
    KerasLayerNorm, KerasLSTM, KerasMasking, KerasMerge, KerasModel, KerasPool1D, KerasReshape)


def _merge(mode: str, forward, backward):
    if mode == "concat":
        return np.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    return (forward + backward) / 2.0


def _lstm_unmasked(layer: KerasLSTM, x):
    """Keras' output for x [B, T, F] with every step valid."""
    spec, w = layer.weights.spec, layer.weights
    Y, Y_h, _ = lstm(x.transpose(1, 0, 2), w.W, w.R, w.B, direction=spec.direction,
                     activations=spec.activations, activation_alpha=spec.activation_alpha,
                     activation_beta=spec.activation_beta)
    if layer.return_sequences:  # Y [T, D, B, H]
        if spec.direction == "bidirectional":
            seq = _merge(layer.merge_mode, Y[:, 0], Y[:, 1])
        else:
            seq = Y[::-1, 0] if spec.direction == "reverse" else Y[:, 0]
        return seq.transpose(1, 0, 2)
    return _merge(layer.merge_mode, Y_h[0], Y_h[1]) if spec.direction == "bidirectional" \
        else Y_h[0]


def _lstm_masked(layer: KerasLSTM, x, mask):
    """Keras' output with a mask: each sequence over its valid steps only."""
    spec = layer.weights.spec
    out = []
    for b in range(x.shape[0]):
        valid = np.flatnonzero(mask[b])
        y = _lstm_unmasked(layer, x[b:b + 1, valid])[0] if valid.size else None
        if not layer.return_sequences:
            width = layer.output_size
            out.append(y if y is not None else np.zeros(width))
            continue
        if spec.direction == "reverse":
            raise LSTMBenchError(f"{layer.name}: go_backwards with return_sequences on a masked "
                                 "input is not supported")
        seq = np.zeros((x.shape[1], layer.output_size))
        last = np.zeros(layer.output_size)
        for t in range(x.shape[1]):  # a masked step repeats the last output (or is zero)
            if mask[b, t]:
                last = y[np.searchsorted(valid, t)]
                seq[t] = last
            elif not layer.zero_output_for_mask:
                seq[t] = last
        out.append(seq)
    return np.stack(out)


def _conv(layer: KerasConv1D, x):
    k, d, s = layer.kernel.shape[0], layer.dilation, layer.strides
    span = d * (k - 1) + 1
    T = x.shape[1]
    if layer.padding == "causal":
        left, right = span - 1, 0
    elif layer.padding == "same":
        total = max((-(-T // s) - 1) * s + span - T, 0)
        left, right = total // 2, total - total // 2
    else:
        left = right = 0
    x = np.pad(x, ((0, 0), (left, right), (0, 0)))
    steps = (x.shape[1] - span) // s + 1
    kernel = layer.kernel.astype(np.float64)
    y = sum(x[:, j * d: j * d + (steps - 1) * s + 1: s] @ kernel[j] for j in range(k))
    if layer.bias is not None:
        y = y + layer.bias
    return NUMPY_ACTIVATIONS[layer.activation](y)


def _pool(layer: KerasPool1D, x):
    p, s, T = layer.pool_size, layer.strides, x.shape[1]
    if layer.padding == "same":
        steps = -(-T // s)
        total = max((steps - 1) * s + p - T, 0)
        left = total // 2
    else:
        steps, left = (T - p) // s + 1, 0
    windows = []
    for i in range(steps):  # padded cells are left out, as Keras (TensorFlow "same") does
        lo, hi = max(i * s - left, 0), min(i * s - left + p, T)
        window = x[:, lo:hi]
        windows.append(window.max(axis=1) if layer.kind == "max" else window.mean(axis=1))
    return np.stack(windows, axis=1)


def walk(parsed: KerasModel, X) -> np.ndarray:
    """What the parsed model computes on ``X`` in float64 (see the module doc).

    ``X``: floats ``(batch, time, features)``, or token ids ``(batch, time)`` for a model that
    starts with an Embedding.
    """
    x = np.asarray(X)
    if parsed.tokens:
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
            raise LSTMBenchError(f"X has shape {list(x.shape)} and dtype {x.dtype}; the model "
                                 "takes token ids of shape [batch, time]")
    elif x.ndim != 3 or x.shape[2] != parsed.input_size or not np.issubdtype(x.dtype, np.floating):
        raise LSTMBenchError(f"X has shape {list(x.shape)} and dtype {x.dtype}; the model takes "
                             f"floats of shape [batch, time, {parsed.input_size}]")
    if not parsed.tokens:
        x = x.astype(np.float64)
    mask = None
    env = {parsed.source: x}
    for layer, (sources, target) in zip(parsed.layers, parsed.wiring):
        x = env[sources[0]]
        if isinstance(layer, KerasMerge):
            x = _merge_layer(layer.kind, [env[s] for s in sources])
        elif isinstance(layer, KerasEmbedding):
            if layer.mask_zero:
                mask = x != 0
            x = layer.table.astype(np.float64)[x]
        elif isinstance(layer, KerasMasking):
            mask = np.any(x != np.float32(layer.mask_value), axis=-1)
            x = x * mask[..., None]
        elif isinstance(layer, KerasLSTM):
            x = _lstm_masked(layer, x, mask) if layer.masked and mask is not None \
                else _lstm_unmasked(layer, x)
        elif isinstance(layer, KerasConv1D):
            x = _conv(layer, x)
        elif isinstance(layer, KerasPool1D):
            x = _pool(layer, x)
        elif isinstance(layer, KerasGlobalPool):
            if layer.kind == "max":
                x = x.max(axis=1)
            elif layer.masked and mask is not None:
                x = (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1)[:, None]
            else:
                x = x.mean(axis=1)
        elif isinstance(layer, KerasAffine):
            x = x * layer.scale.astype(np.float64) + layer.shift.astype(np.float64)
        elif isinstance(layer, KerasLayerNorm):
            centred = x - x.mean(axis=-1, keepdims=True)
            x = centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + layer.epsilon)
            if layer.gamma is not None:
                x = x * layer.gamma
            if layer.beta is not None:
                x = x + layer.beta
        elif isinstance(layer, KerasFlatten):
            x = x.reshape(x.shape[0], -1)
        elif isinstance(layer, KerasReshape) and layer.repeat:
            x = np.repeat(x[:, None, :], layer.target[0], axis=1)
        elif isinstance(layer, KerasReshape):
            x = x.reshape(x.shape[0], *layer.target)
        else:
            if layer.kernel is not None:
                x = x @ layer.kernel.astype(np.float64)
                if layer.bias is not None:
                    x = x + layer.bias.astype(np.float64)
            x = NUMPY_ACTIVATIONS[layer.activation](x)
        env[target] = x
    return env[parsed.output]


def _merge_layer(kind: str, inputs: list):
    if kind == "concat":
        return np.concatenate(inputs, axis=-1)
    if kind == "subtract":
        return inputs[0] - inputs[1]
    reduce = {"add": np.sum, "average": np.mean, "maximum": np.max, "minimum": np.min,
              "multiply": np.prod}[kind]
    return reduce(np.stack(inputs), axis=0)
