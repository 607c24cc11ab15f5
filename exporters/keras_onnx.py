"""A parsed Keras model (``keras_layers``) as an ONNX graph with one LSTM node per Keras LSTM.

The graph takes Keras' ``(batch, time, features)`` input (or token ids ``(batch, time)``) with
batch and time dynamic, runs each LSTM at layout 0 between Transposes (onnxruntime rejects
layout 1) and computes in float32.

Masks (``Embedding(mask_zero=True)``, ``Masking``) become ``sequence_lens``. Keras skips masked
steps wherever they are (``pad_sequences`` pads in front by default), while ONNX's
sequence_lens counts valid steps from the start, so each masked LSTM first moves its valid
steps to the front, in order (a TopK over ``t`` + ``T`` * masked: a stable compaction), runs on
them with their count as sequence_lens, and, with return_sequences, puts each step's output
back where Keras has it: the output of the last valid step at or before it (zeros before the
first; zeros at masked steps with ``zero_output_for_mask``, as Bidirectional forces).
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.keras_layers import (
    SELU_ALPHA, SELU_SCALE, KerasAffine, KerasConv1D, KerasEmbedding, KerasFlatten,
    KerasGlobalPool, KerasLayerNorm, KerasLSTM, KerasMasking, KerasMerge, KerasModel, KerasPool1D,
    KerasReshape)

DEFAULT_OPSET = 22
SUPPORTED_OPSETS = tuple(range(14, 23))
OUTPUT_NAME = "output"


class _Graph:
    """Nodes and initializers under construction, with unique names per Keras layer."""

    def __init__(self, opset: int):
        self.opset = opset  # some ops moved attributes to inputs over the opsets
        self.nodes, self.initializers, self._used = [], [], set()

    def name(self, base: str) -> str:
        candidate, k = base, 0
        while candidate in self._used:
            k += 1
            candidate = f"{base}_{k}"
        self._used.add(candidate)
        return candidate

    def const(self, base: str, array) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, scope: str, op_type: str, inputs, n_outputs: int = 1, **attrs):
        from onnx import helper

        node_name = self.name(f"{scope}/{op_type}")
        outputs = [f"{node_name}:{k}" for k in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs))
        return outputs[0] if n_outputs == 1 else outputs


def _emit_activation(g: _Graph, scope: str, activation: str, x: str) -> str:
    f32 = np.float32
    if activation == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
              "softsign": "Softsign", "exponential": "Exp", "hard_silu": "HardSwish",
              "hard_swish": "HardSwish"}
    if activation in simple:
        return g.op(scope, simple[activation], [x])
    if activation in ("softmax", "log_softmax"):
        return g.op(scope, "Softmax" if activation == "softmax" else "LogSoftmax", [x], axis=-1)
    if activation == "elu":
        return g.op(scope, "Elu", [x], alpha=1.0)
    if activation == "selu":
        return g.op(scope, "Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE)
    if activation == "hard_sigmoid":
        return g.op(scope, "HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if activation == "leaky_relu":
        return g.op(scope, "LeakyRelu", [x], alpha=0.2)
    if activation in ("relu6", "hard_tanh"):
        low, high = (0.0, 6.0) if activation == "relu6" else (-1.0, 1.0)
        bounds = [g.const(f"{scope}/min", f32(low)), g.const(f"{scope}/max", f32(high))]
        return g.op(scope, "Clip", [x, *bounds])
    if activation in ("silu", "swish"):
        return g.op(scope, "Mul", [x, g.op(scope, "Sigmoid", [x])])
    if activation == "mish":
        return g.op(scope, "Mul", [x, g.op(scope, "Tanh", [g.op(scope, "Softplus", [x])])])
    if activation == "gelu":  # exact (erf) form, Keras' default approximate=False
        scaled = g.op(scope, "Mul", [x, g.const(f"{scope}/rsqrt2", f32(1.0 / np.sqrt(2.0)))])
        one_plus = g.op(scope, "Add", [g.op(scope, "Erf", [scaled]), g.const(f"{scope}/one", f32(1.0))])
        half_x = g.op(scope, "Mul", [x, g.const(f"{scope}/half", f32(0.5))])
        return g.op(scope, "Mul", [half_x, one_plus])
    raise LSTMBenchError(f"activation {activation!r} has no ONNX form here")  # guarded by read_keras


def _emit_merge(g: _Graph, scope: str, mode: str, forward: str, backward: str) -> str:
    if mode == "concat":
        return g.op(scope, "Concat", [forward, backward], axis=-1)
    if mode == "sum":
        return g.op(scope, "Add", [forward, backward])
    if mode == "mul":
        return g.op(scope, "Mul", [forward, backward])
    total = g.op(scope, "Add", [forward, backward])  # ave
    return g.op(scope, "Mul", [total, g.const(f"{scope}/half", np.float32(0.5))])


def _i64(g: _Graph, scope: str, key: str, values) -> str:
    return g.const(f"{scope}/{key}", np.array(values, np.int64))


def _reduce(g: _Graph, scope: str, op: str, x: str, axes: list[int], keepdims: int) -> str:
    """ReduceMean / ReduceMax / ReduceSum: axes an attribute before opset 18, an input after."""
    if g.opset >= 18 or op == "ReduceSum":
        return g.op(scope, op, [x, _i64(g, scope, "axes", axes)], keepdims=keepdims)
    return g.op(scope, op, [x], axes=axes, keepdims=keepdims)


def _shape(g: _Graph, scope: str, x: str, start: int, end: int | None = None) -> str:
    """Shape(x)[start:end] (Shape's own start/end need opset 15)."""
    shape = g.op(scope, "Shape", [x])
    if end is None:
        end = np.iinfo(np.int64).max
    return g.op(scope, "Slice", [shape, _i64(g, scope, "from", [start]), _i64(g, scope, "to", [end])])


def _gather_time(g: _Graph, scope: str, seq: str, index: str) -> str:
    """seq [B, T', H] gathered along time by index [B, T] -> [B, T, H]."""
    expanded = g.op(scope, "Unsqueeze", [index, _i64(g, scope, "axis2", [2])])
    shape = g.op(scope, "Concat", [g.op(scope, "Shape", [index]), _shape(g, scope, seq, 2)], axis=0)
    return g.op(scope, "GatherElements", [seq, g.op(scope, "Expand", [expanded, shape])], axis=1)


class _Mask:
    """The compaction of a mask [B, T] (bool), built once per masked LSTM input."""

    def __init__(self, g: _Graph, scope: str, mask: str):
        counts = g.op(scope, "Cast", [mask], to=7)  # int64
        steps = _shape(g, scope, mask, 1, 2)
        t = g.op(scope, "Range", [_i64(g, scope, "zero", 0),
                                  g.op(scope, "Squeeze", [steps]), _i64(g, scope, "one", 1)])
        key = g.op(scope, "Add", [t, g.op(scope, "Mul", [g.op(scope, "Sub", [
            _i64(g, scope, "one1", 1), counts]), steps])])
        # valid steps first, in time order (keys are distinct, so TopK's order is exact)
        self.order = g.op(scope, "TopK", [key, steps], 2, axis=1, largest=0, sorted=1)[1]
        self.lengths = g.op(scope, "Cast", [_reduce(g, scope, "ReduceSum", counts, [1], 0)], to=6)
        self.position = g.op(scope, "CumSum", [counts, _i64(g, scope, "axis1", 1)])  # [B, T]
        self.mask = mask


def _emit_lstm(g: _Graph, layer: KerasLSTM, x: str, mask: str | None) -> str:
    from onnx import helper

    scope, spec = layer.name, layer.weights.spec
    compact = _Mask(g, scope, mask) if layer.masked and mask else None
    if compact is not None:
        x = _gather_time(g, scope, x, compact.order)
    time_major = g.op(scope, "Transpose", [x], perm=[1, 0, 2])
    tensors = layer.weights.tensors()
    inputs = [time_major] + [g.const(f"{scope}/{key}", tensors[key]) if key in tensors else ""
                             for key in ("W", "R", "B")]
    if compact is not None:
        inputs.append(compact.lengths)
    while inputs[-1] == "":
        inputs.pop()
    node_name = g.name(scope)
    Y, Y_h = f"{node_name}/Y", f"{node_name}/Y_h"
    g.nodes.append(helper.make_node("LSTM", inputs, [Y, Y_h], name=node_name, **spec.attributes()))
    if layer.return_sequences:  # Y [T, D, B, H]
        if spec.direction == "bidirectional":
            idx = [g.const(f"{scope}/index{d}", np.int64(d)) for d in (0, 1)]
            halves = [g.op(scope, "Gather", [Y, i], axis=1) for i in idx]
        else:
            halves = [g.op(scope, "Squeeze", [Y, _i64(g, scope, "axis1", [1])])]
            if spec.direction == "reverse":
                if compact is not None:
                    raise LSTMBenchError(f"{scope}: go_backwards with return_sequences on a "
                                         "masked input is not supported; use Bidirectional")
                # Keras returns go_backwards output in step order
                flip = [_i64(g, scope, k, [v]) for k, v in
                        (("start", -1), ("end", np.iinfo(np.int64).min), ("axis0", 0), ("step", -1))]
                halves = [g.op(scope, "Slice", [halves[0], *flip])]
        halves = [g.op(scope, "Transpose", [h], perm=[1, 0, 2]) for h in halves]  # [B, T, H]
        if compact is not None:
            out = []
            for h in halves:  # zero row first: position 0 (no valid step yet) reads it
                zero = g.op(scope, "Mul", [g.op(scope, "Slice", [h, _i64(g, scope, "s0", [0]),
                            _i64(g, scope, "s1", [1]), _i64(g, scope, "ax1", [1])]),
                            g.const(f"{scope}/zero_f", np.float32(0))])
                padded = g.op(scope, "Concat", [zero, h], axis=1)
                h = _gather_time(g, scope, padded, compact.position)
                if layer.zero_output_for_mask:
                    keep = g.op(scope, "Unsqueeze", [g.op(scope, "Cast", [mask], to=1),
                                                     _i64(g, scope, "axis2", [2])])
                    h = g.op(scope, "Mul", [h, keep])
                out.append(h)
            halves = out
        if spec.direction == "bidirectional":
            return _emit_merge(g, scope, layer.merge_mode, *halves)
        return halves[0]
    if spec.direction == "bidirectional":  # Y_h [2, B, H]
        idx = [g.const(f"{scope}/index{d}", np.int64(d)) for d in (0, 1)]
        forward, backward = (g.op(scope, "Gather", [Y_h, i], axis=0) for i in idx)
        return _emit_merge(g, scope, layer.merge_mode, forward, backward)
    return g.op(scope, "Squeeze", [Y_h, _i64(g, scope, "axis0", [0])])


def _channels_first(g, scope, x):
    return g.op(scope, "Transpose", [x], perm=[0, 2, 1])


def _emit_conv(g: _Graph, layer: KerasConv1D, x: str) -> str:
    scope = layer.name
    k = layer.kernel.shape[0]
    x = _channels_first(g, scope, x)
    attrs = {"strides": [layer.strides], "dilations": [layer.dilation]}
    if layer.padding == "causal":
        pads = _i64(g, scope, "pads", [0, 0, layer.dilation * (k - 1), 0, 0, 0])
        x = g.op(scope, "Pad", [x, pads])
    elif layer.padding == "same":
        attrs["auto_pad"] = "SAME_UPPER"  # TensorFlow's "same": the extra pad at the end
    weight = g.const(f"{scope}/kernel", np.ascontiguousarray(layer.kernel.transpose(2, 1, 0)))
    inputs = [x, weight] + ([g.const(f"{scope}/bias", layer.bias)] if layer.bias is not None else [])
    y = g.op(scope, "Conv", inputs, kernel_shape=[k], **attrs)
    return _emit_activation(g, scope, layer.activation, _channels_first(g, scope, y))


def _emit_pool(g: _Graph, layer: KerasPool1D, x: str) -> str:
    scope = layer.name
    attrs = {"kernel_shape": [layer.pool_size], "strides": [layer.strides]}
    if layer.padding == "same":
        attrs["auto_pad"] = "SAME_UPPER"
    op = "MaxPool" if layer.kind == "max" else "AveragePool"
    return _channels_first(g, scope, g.op(scope, op, [_channels_first(g, scope, x)], **attrs))


def _emit_global_pool(g: _Graph, layer: KerasGlobalPool, x: str, mask: str | None) -> str:
    scope = layer.name
    if layer.kind == "max":
        return _reduce(g, scope, "ReduceMax", x, [1], 0)
    if not (layer.masked and mask):
        return _reduce(g, scope, "ReduceMean", x, [1], 0)
    weights = g.op(scope, "Unsqueeze", [g.op(scope, "Cast", [mask], to=1), _i64(g, scope, "axis2", [2])])
    total = _reduce(g, scope, "ReduceSum", g.op(scope, "Mul", [x, weights]), [1], 0)
    return g.op(scope, "Div", [total, _reduce(g, scope, "ReduceSum", weights, [1], 0)])


def _emit_layer_norm(g: _Graph, layer: KerasLayerNorm, x: str) -> str:
    scope = layer.name
    mean = _reduce(g, scope, "ReduceMean", x, [-1], 1)
    centred = g.op(scope, "Sub", [x, mean])
    var = _reduce(g, scope, "ReduceMean", g.op(scope, "Mul", [centred, centred]), [-1], 1)
    eps = g.const(f"{scope}/epsilon", np.float32(layer.epsilon))
    y = g.op(scope, "Div", [centred, g.op(scope, "Sqrt", [g.op(scope, "Add", [var, eps])])])
    if layer.gamma is not None:
        y = g.op(scope, "Mul", [y, g.const(f"{scope}/gamma", layer.gamma)])
    if layer.beta is not None:
        y = g.op(scope, "Add", [y, g.const(f"{scope}/beta", layer.beta)])
    return y


def _emit_merge_layer(g: _Graph, layer: KerasMerge, inputs: list[str]) -> str:
    scope = layer.name
    if layer.kind == "concat":
        return g.op(scope, "Concat", inputs, axis=-1)
    if layer.kind == "subtract":
        return g.op(scope, "Sub", inputs)
    if layer.kind == "multiply":
        out = inputs[0]
        for other in inputs[1:]:
            out = g.op(scope, "Mul", [out, other])
        return out
    op = {"add": "Sum", "average": "Mean", "maximum": "Max", "minimum": "Min"}[layer.kind]
    return g.op(scope, op, inputs)


def build_keras_model(parsed: KerasModel, *, opset: int = DEFAULT_OPSET):
    """The ONNX ModelProto of a parsed Keras model; checked with full shape inference."""
    import onnx
    from onnx import TensorProto, helper

    if opset not in SUPPORTED_OPSETS:
        raise LSTMBenchError(f"opset {opset} is not supported for Keras models; choose one of "
                             f"{SUPPORTED_OPSETS[0]}..{SUPPORTED_OPSETS[-1]}")
    g = _Graph(opset)
    x = parsed.input_name
    g.name(x)
    output_name = g.name(OUTPUT_NAME)  # "output" unless the input already took that name
    mask = None
    token_type = helper.np_dtype_to_tensor_dtype(np.dtype(parsed.token_dtype))
    if parsed.tokens and token_type != TensorProto.INT64:  # the graph below indexes with int64
        x = g.op(parsed.input_name, "Cast", [x], to=TensorProto.INT64)
    env = {parsed.source: x}  # Keras tensor id -> ONNX name
    for layer, (sources, target) in zip(parsed.layers, parsed.wiring):
        scope = layer.name
        x = env[sources[0]]
        if isinstance(layer, KerasMerge):
            x = _emit_merge_layer(g, layer, [env[s] for s in sources])
        elif isinstance(layer, KerasEmbedding):
            if layer.mask_zero:
                mask = g.op(scope, "Not", [g.op(scope, "Equal", [x, _i64(g, scope, "pad", 0)])])
            x = g.op(scope, "Gather", [g.const(f"{scope}/embeddings", layer.table), x], axis=0)
        elif isinstance(layer, KerasMasking):
            value = g.const(f"{scope}/mask_value", np.float32(layer.mask_value))
            differs = g.op(scope, "Cast", [g.op(scope, "Not", [g.op(scope, "Equal", [x, value])])], to=1)
            mask = g.op(scope, "Cast", [_reduce(g, scope, "ReduceMax", differs, [-1], 0)], to=9)
            keep = g.op(scope, "Unsqueeze", [g.op(scope, "Cast", [mask], to=1), _i64(g, scope, "axis2", [2])])
            x = g.op(scope, "Mul", [x, keep])
        elif isinstance(layer, KerasLSTM):
            x = _emit_lstm(g, layer, x, mask)
        elif isinstance(layer, KerasConv1D):
            x = _emit_conv(g, layer, x)
        elif isinstance(layer, KerasPool1D):
            x = _emit_pool(g, layer, x)
        elif isinstance(layer, KerasGlobalPool):
            x = _emit_global_pool(g, layer, x, mask)
        elif isinstance(layer, KerasAffine):
            x = g.op(scope, "Add", [g.op(scope, "Mul", [x, g.const(f"{scope}/scale", layer.scale)]),
                                    g.const(f"{scope}/shift", layer.shift)])
        elif isinstance(layer, KerasLayerNorm):
            x = _emit_layer_norm(g, layer, x)
        elif isinstance(layer, KerasFlatten):
            x = g.op(scope, "Flatten", [x], axis=1)
        elif isinstance(layer, KerasReshape) and layer.repeat:  # [B, F] -> [B, n, F]
            x = g.op(scope, "Unsqueeze", [x, _i64(g, scope, "axis1", [1])])
            x = g.op(scope, "Tile", [x, _i64(g, scope, "repeats", [1, layer.target[0], 1])])
        elif isinstance(layer, KerasReshape):
            shape = g.op(scope, "Concat", [_shape(g, scope, x, 0, 1),
                                           _i64(g, scope, "target", list(layer.target))], axis=0)
            x = g.op(scope, "Reshape", [x, shape])
        else:  # Dense / TimeDistributed(Dense) / Activation
            if layer.kernel is not None:
                x = g.op(scope, "MatMul", [x, g.const(f"{scope}/kernel", layer.kernel)])
                if layer.bias is not None:
                    x = g.op(scope, "Add", [x, g.const(f"{scope}/bias", layer.bias)])
            x = _emit_activation(g, scope, layer.activation, x)
        env[target] = x
    x = env[parsed.output]
    if x == parsed.input_name:  # cannot happen: read_keras demands an LSTM layer
        raise LSTMBenchError("the model computes nothing")
    for node in g.nodes:  # give the last tensor its public name
        node.output[:] = [output_name if o == x else o for o in node.output]
    # a Flatten or Reshape over time needs the saved length; otherwise any length goes
    T = parsed.time_steps if parsed.fixed_length else "seq_len"
    if parsed.tokens:  # the integer type Keras was fed, so that serving code feeds the same
        graph_input = helper.make_tensor_value_info(parsed.input_name, token_type, ["batch", T])
    else:
        graph_input = helper.make_tensor_value_info(parsed.input_name, TensorProto.FLOAT,
                                                    ["batch", T, parsed.input_size])
    graph = helper.make_graph(g.nodes, parsed.name, [graph_input],
                              [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None)],
                              initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="lstm-bench",
                              doc_string=f"exported from Keras model {parsed.name!r}")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    if parsed.masked:  # how a ragged batch is padded for this model (lstm_bench.feeds reads it)
        helper.set_model_props(model, {"lstm_bench.padding": "pre",
                                       "lstm_bench.pad_value": repr(float(parsed.mask_value)),
                                       "lstm_bench.padded_inputs": parsed.input_name})
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    _name_dims(model.graph.output[0], T)
    onnx.checker.check_model(model, full_check=True)
    return model


def _name_dims(value_info, T) -> None:
    """Give inference's unnamed output dims the input's names where they follow them."""
    dims = value_info.type.tensor_type.shape.dim
    if len(dims) and not dims[0].HasField("dim_value"):
        dims[0].dim_param = "batch"
