"""The operators lstm-bench evaluates itself, where onnx's ReferenceEvaluator fails or errs.

The float64 truth runs whole models in ``onnx.reference.ReferenceEvaluator``; ``REPLACED``
lists the operators of exported LSTM models whose onnx implementation it replaces, each with
the reason beside its adapter. The math is written from the ONNX spec
(https://onnx.ai/onnx/operators/) in plain NumPy, keeps the input's dtype (the numpy and torch
runtimes run the same evaluator on the float32 model) and follows onnxruntime CPU where the
spec leaves a choice; tests/test_reference_ops.py checks every one against onnxruntime.

``overrides(model)`` turns the table into the ``new_ops`` classes of the evaluator, at the
model's opset (an operator onnx gets wrong only at old opsets is replaced only there); onnx is
imported only then, when a model is evaluated.
"""

from __future__ import annotations

import math

import numpy as np


def gather_elements(data, indices, axis=0):
    """GatherElements: ``out[i][j][k] = data[i][indices[i][j][k]][k]`` (for axis 1); indices
    may be negative, and smaller than data on the other axes."""
    axis = axis % data.ndim
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    data = data[tuple(slice(None) if d == axis else slice(0, n)
                      for d, n in enumerate(indices.shape))]
    return np.take_along_axis(data, indices.astype(np.int64), axis)


def global_max_pool(x):
    """GlobalMaxPool: the max over every spatial axis (all but N and C), kept as size 1."""
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def _pool_extent(n, kernel_span, stride, pads, ceil_mode, auto_pad):
    """(pad before, pad after, output length) of one spatial axis of length ``n``, as
    onnxruntime computes them: SAME pads to ceil(n / stride) outputs, the extra pad after for
    SAME_UPPER, before for SAME_LOWER; ceil_mode rounds the count of windows up but drops a
    last window that would start past the input and its leading pad."""
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel_span - n, 0)
        before = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return before, total - before, out
    before, after = (0, 0) if auto_pad == "VALID" else pads
    room = n + before + after - kernel_span
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + before:
        out -= 1
    return before, after, out


def _pool_windows(shape, attributes):
    """For pooling [N, C, D1, ...] of ``shape`` with ONNX ``attributes``: (the pad widths of
    every axis, ceil_mode's overhang included; the explicit pads alone; the overhangs; a
    function from an array padded so to its windows [N, C, O1, ..., K1, ...])."""
    kernel_shape = attributes["kernel_shape"]
    nd = len(kernel_shape)
    strides = attributes.get("strides") or [1] * nd
    dilations = attributes.get("dilations") or [1] * nd
    pads = attributes.get("pads") or [0] * 2 * nd
    spans = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilations)]
    extents = [_pool_extent(n, span, s, (pads[i], pads[i + nd]), attributes.get("ceil_mode"),
                            attributes.get("auto_pad") or "NOTSET")
               for i, (n, span, s) in enumerate(zip(shape[2:], spans, strides))]
    pad_widths = [(before, after) for before, after, _ in extents]
    overhangs = [max((out - 1) * s + span - n - before - after, 0)
                 for (before, after, out), n, span, s in zip(extents, shape[2:], spans, strides)]
    widths = [(0, 0)] * 2 + [(before, after + over)
                             for (before, after), over in zip(pad_widths, overhangs)]
    pick = (Ellipsis,) + tuple(slice(None, out * s, s) for (_, _, out), s in zip(extents, strides))
    pick += tuple(slice(None, None, d) for d in dilations)

    def windows(padded):
        view = np.lib.stride_tricks.sliding_window_view(padded, spans, axis=range(2, 2 + nd))
        return view[pick]

    return widths, pad_widths, overhangs, windows


def max_pool(x, attributes):
    """MaxPool over the spatial axes of [N, C, D1, ...]: the max of each window of
    ``kernel_shape`` (every ``dilations``-th element) every ``strides``, padding (``pads``,
    ``auto_pad``, ``ceil_mode``'s overhang) never winning. Returns (Y, Indices): where each max
    is in x flattened, row-major (column-major over the spatial axes with storage_order 1)."""
    widths, _, _, windows = _pool_windows(x.shape, attributes)
    low = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
    candidates = windows(np.pad(x, widths, constant_values=low))
    nd = x.ndim - 2
    y = candidates.max(axis=tuple(range(-nd, 0)))
    flat = candidates.reshape(y.shape + (-1,))
    spatial = math.prod(x.shape[2:])
    order = "F" if attributes.get("storage_order") else "C"
    positions = (np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * nd) * spatial
                 + np.arange(spatial).reshape(x.shape[2:], order=order))
    at = windows(np.pad(positions, widths)).reshape(flat.shape)
    return y, np.take_along_axis(at, flat.argmax(axis=-1)[..., None], -1)[..., 0]


def average_pool(x, attributes):
    """AveragePool over the spatial axes of [N, C, D1, ...]: the mean of each window, the pads
    counted only with ``count_include_pad`` (the part a ``ceil_mode`` window hangs past the
    pads never counts)."""
    widths, pad_widths, overhangs, windows = _pool_windows(x.shape, attributes)
    axes = tuple(range(-(x.ndim - 2), 0))
    counted = np.ones((1, 1) + x.shape[2:])
    if attributes.get("count_include_pad"):
        counted = np.pad(counted, [(0, 0)] * 2 + pad_widths, constant_values=1)
        counted = np.pad(counted, [(0, 0)] * 2 + [(0, over) for over in overhangs])
    else:
        counted = np.pad(counted, widths)
    total = windows(np.pad(x, widths)).sum(axis=axes)
    return (total / windows(counted).sum(axis=axes)).astype(x.dtype)


def softmax(x, axis):
    """Softmax along ``axis``: exp(x - max) / sum(exp(x - max))."""
    shifted = x - x.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    """LogSoftmax along ``axis``: x - max - log(sum(exp(x - max))), finite wherever x is."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def hardmax(x, axis):
    """Hardmax along ``axis``: 1 at the first maximum, 0 elsewhere."""
    y = np.zeros_like(x)
    np.put_along_axis(y, np.expand_dims(x.argmax(axis=axis), axis), 1, axis=axis)
    return y


def coerced_2d(function, x, axis=1):
    """Softmax, LogSoftmax and Hardmax before opset 13: the input is flattened to 2-D at
    ``axis`` ([d0 * ... * d(axis-1), d(axis) * ... * dn]) and normalized along its second axis,
    not along ``axis`` alone."""
    axis = axis % x.ndim if x.ndim else 0
    rows = math.prod(x.shape[:axis])
    return function(x.reshape(rows, -1), 1).reshape(x.shape)


def batch_normalization_inference(x, scale, bias, mean, var, epsilon=1e-5):
    """BatchNormalization in inference: ``scale * (x - mean) / sqrt(var + epsilon) + bias``
    with the running statistics, along axis 1."""
    def channels(stat):
        return stat.reshape(stat.shape + (1,) * (x.ndim - 1 - stat.ndim))

    normalized = (x - channels(mean)) / np.sqrt(channels(var) + epsilon)
    return channels(scale) * normalized + channels(bias)


def dequantize_linear(x, scale, zero_point=None, axis=1):
    """DequantizeLinear (opsets 10 and 13): ``(x - zero_point) * scale``, per tensor or, for a
    1-D scale, per slice along ``axis``; the result has the scale's dtype."""
    shape = [1] * x.ndim
    if np.ndim(scale) == 1 and np.size(scale) > 1:
        shape[axis % x.ndim] = -1
    zero = 0 if zero_point is None else np.reshape(zero_point, shape).astype(np.int64)
    return ((x.astype(np.int64) - zero) * np.reshape(scale, shape)).astype(scale.dtype)


def mean_variance_normalization(x, axes=(0, 2, 3)):
    """MeanVarianceNormalization: ``(x - E[x]) / sqrt(E[x^2] - E[x]^2 + 1e-9)`` over ``axes``,
    as its function body computes it."""
    axes = tuple(axes)
    mean = x.mean(axis=axes, keepdims=True)
    variance = (x * x).mean(axis=axes, keepdims=True) - mean * mean
    return (x - mean) / np.sqrt(variance + 1e-9)


def one_hot(indices, depth, values, axis=-1):
    """OneHot: ``values[1]`` where the new ``axis`` equals the index (negative indices count
    from ``depth``), ``values[0]`` elsewhere; depth is a scalar or a one-element tensor."""
    depth = int(np.asarray(depth).reshape(-1)[0])
    indices = indices.astype(np.int64)
    indices = np.where(indices < 0, indices + depth, indices)
    axis = axis % (indices.ndim + 1)
    positions = np.arange(depth).reshape((-1,) + (1,) * (indices.ndim - axis))
    return np.where(np.expand_dims(indices, axis) == positions, values[1], values[0])


def scatter_elements(data, indices, updates, axis=0):
    """Scatter / ScatterElements without reduction: ``data`` with ``updates`` written at
    ``indices`` along ``axis``; indices may be smaller than data on the other axes."""
    out = data.copy()
    axis = axis % data.ndim
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    corner = out[tuple(slice(None) if d == axis else slice(0, n)
                       for d, n in enumerate(indices.shape))]  # a view: written through
    np.put_along_axis(corner, indices.astype(np.int64), updates, axis)
    return out


def by_scales(x, scales, mode):
    """Upsample and Resize-10: output = floor(input * scale) per axis, sampled at input =
    output / scale (the "asymmetric" mapping), nearest rounding down: onnx's Resize-11."""
    from onnx.reference.ops.op_resize import Resize

    return Resize._run(None, x, None, np.asarray(scales, np.float64), mode=mode,
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                       cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0,
                       keep_aspect_ratio_policy="stretch")[0]


# --- adapters: (the evaluator's OpRun, the node's inputs, its attributes by name) -> outputs.
# Attributes an adapter does not read (the schema's newer ones) fall into **_.

def _opset(op) -> int:
    return op.run_params["opsets"][""]


def _gather_elements(op, data, indices, axis=0, **_):
    # onnx's uses np.choose, which takes at most 64 choices: it fails past 64 along the axis
    # (a masked Keras model at T > 64), and on indices smaller than data on other axes.
    return (gather_elements(data, indices, axis),)


def _max_pool(op, x, **attributes):
    # onnx's fails on 1-D pooling with stride 1 and padding (an IndexError), gives other shapes
    # than onnxruntime with ceil_mode, refuses ceil_mode with auto_pad, misplaces Indices.
    y, indices = max_pool(x, attributes)
    return (y, indices.astype(np.int64))[:len(op.onnx_node.output)]


def _average_pool(op, x, **attributes):
    # onnx's averages ceil_mode's last window wrongly, refuses ceil_mode with auto_pad, and
    # loops in Python (18 s for [8, 64, 4000]).
    return (average_pool(x, attributes),)


def _global_max_pool(op, x, **_):
    # onnx's reduces axes 1 and 2 of a 3-D input (channels too): right for 2-D pooling only.
    return (global_max_pool(x),)


def _normalized(function):
    # Softmax, LogSoftmax, Hardmax: onnx implements only opset 13's meaning (along `axis`
    # alone, default -1); before 13 the input is flattened to 2-D at `axis` (default 1).
    # LogSoftmax at every opset: onnx's takes the log of Softmax, -inf where a logit lies ~745
    # below the max (CTC heads over wide logits), where log_softmax stays finite.
    def run(op, x, axis=-1, **_):
        if _opset(op) >= 13:
            return (function(x, axis),)
        given = any(a.name == "axis" for a in op.onnx_node.attribute)
        return (coerced_2d(function, x, axis if given else 1),)

    return run


def _batch_normalization(op, x, scale, bias, mean, var, epsilon=1e-5, **_):
    # onnx's opset 9-13 version computes batch statistics (training) whenever momentum is set,
    # and torch always sets it: an exported model is an inference graph.
    y = batch_normalization_inference(x, scale, bias, mean, var, epsilon)
    return (y, mean, var, mean, var)[:len(op.onnx_node.output)]


def _dequantize_linear(op, x, scale, zero_point=None, axis=1, **_):
    # onnx implements DequantizeLinear from opset 19 only.
    return (dequantize_linear(x, scale, zero_point, axis),)


def _mean_variance_normalization(op, x, axes=(0, 2, 3), **_):
    # onnx runs the schema's function body, whose epsilon is a float32 Constant that the
    # model's promotion cannot reach: on float64 data it fails ("float64 != float32").
    return (mean_variance_normalization(x, axes),)


def _one_hot(op, indices, depth, values, axis=-1, **_):
    # onnx's takes a scalar depth only; torch and older exports pass a one-element tensor.
    return (one_hot(indices, depth, values, axis),)


def _scatter(op, data, indices, updates, axis=0, **_):
    # Scatter (opsets 9-10) is ScatterElements under its old name; onnx has no Scatter.
    return (scatter_elements(data, indices, updates, axis),)


def _upsample(op, x, scales=None, mode="nearest", **attributes):
    # onnx's handles mode "nearest" with integer scales only (scales: an input from opset 9).
    return (by_scales(x, attributes["scales"] if scales is None else scales, mode),)


def _resize_10(op, x, scales, mode="nearest", **_):
    # onnx implements Resize from opset 11 (X, roi, scales, sizes): opset 10's (X, scales)
    # fails, "output_size is None and scale_factors is None".
    return (by_scales(x, scales, mode),)


def _empty_scan(op, index):
    """A scan output of a body that ran no iteration: [0, declared dims...] of its declared
    type (a dim the body does not declare counts 0)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    body = next(a.g for a in op.onnx_node.attribute if a.name == "body")
    tensor = body.output[index].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
    return np.empty([0] + dims, dtype=tensor_dtype_to_np_dtype(tensor.elem_type))


def _loop(op, M, cond, *carried, context=None, attributes=None, bindings=None, **_):
    # onnx's runs no iteration when the optional `cond` is absent, joins scan outputs with
    # np.vstack (rows of a 2-D step are concatenated, not stacked; a scalar becomes [N, 1]),
    # fails on zero iterations, and lets outer values shadow the loop-carried ones.
    carried, steps = list(carried), []
    keep_going = True if cond is None else bool(cond)
    while keep_going and (M is None or len(steps) < int(M)):
        inputs = dict(context or {})
        inputs.update(zip(op.body.input_names,
                          [np.array(len(steps), np.int64), np.array(keep_going)] + carried))
        outputs = op._run_body(inputs, attributes=attributes, bindings=bindings)
        keep_going = bool(outputs[0])
        carried = list(outputs[1:1 + len(carried)])
        steps.append(outputs[1 + len(carried):])
    first_scan = 1 + len(carried)
    scans = [np.stack([step[k] for step in steps]) if steps else _empty_scan(op, first_scan + k)
             for k in range(len(op.body.output_names) - first_scan)]
    return tuple(carried + scans)


def _scan(op, *args, context=None, attributes=None, bindings=None, **scan):
    # onnx's handles neither reverse directions (a backward recurrence written as a Scan) nor
    # axes other than 0.
    n_states = len(args) - scan["num_scan_inputs"]
    states, xs = list(args[:n_states]), args[n_states:]
    n_scans = len(op.body.output_names) - n_states

    def per_input(name):
        return scan.get(name) or [0] * len(xs)

    def per_output(name):
        return scan.get(name) or [0] * n_scans

    xs = [np.moveaxis(x, axis, 0) for x, axis in zip(xs, per_input("scan_input_axes"))]
    xs = [x[::-1] if reverse else x for x, reverse in zip(xs, per_input("scan_input_directions"))]
    steps = []
    for t in range(xs[0].shape[0]):
        inputs = dict(context or {})
        inputs.update(zip(op.body.input_names, states + [x[t] for x in xs]))
        outputs = op._run_body(inputs, attributes=attributes, bindings=bindings)
        states = list(outputs[:n_states])
        steps.append(outputs[n_states:])
    ys = [np.stack([step[k] for step in steps]) if steps else _empty_scan(op, n_states + k)
          for k in range(n_scans)]
    ys = [y[::-1] if reverse else y for y, reverse in zip(ys, per_output("scan_output_directions"))]
    return tuple(states + [np.moveaxis(y, 0, axis)
                           for y, axis in zip(ys, per_output("scan_output_axes"))])


# op type -> (adapter, the first opset at which onnx's own is right, None: never yet)
REPLACED = {
    "GatherElements": (_gather_elements, None),
    "MaxPool": (_max_pool, None),
    "AveragePool": (_average_pool, None),
    "GlobalMaxPool": (_global_max_pool, None),
    "Softmax": (_normalized(softmax), 13),
    "LogSoftmax": (_normalized(log_softmax), None),
    "Hardmax": (_normalized(hardmax), 13),
    "BatchNormalization": (_batch_normalization, 14),
    "DequantizeLinear": (_dequantize_linear, 19),
    "MeanVarianceNormalization": (_mean_variance_normalization, None),
    "OneHot": (_one_hot, None),
    "Scatter": (_scatter, None),
    "Upsample": (_upsample, None),
    "Resize": (_resize_10, 11),
    "Loop": (_loop, None),
    "Scan": (_scan, None),
}
_WITH_SUBGRAPHS = {"Loop", "Scan"}  # they read the enclosing graph's values (the context)
_FROM = {"Scan": 9}  # Scan-8 has a batch axis and sequence_lens first: another operator


def overrides(model) -> list:
    """The OpRun classes that replace onnx's at ``model``'s opset (the evaluator's
    ``new_ops``)."""
    from onnx.reference.op_run import OpRun

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)

    def op_class(name, adapter):
        def _run(self, *inputs, **attributes):
            return adapter(self, *inputs, **attributes)

        def need_context(self):
            return name in _WITH_SUBGRAPHS

        # named as the operator: the evaluator matches new_ops by class name (and reads the
        # schema's attribute defaults by it)
        return type(name, (OpRun,), {"op_domain": "", "_run": _run, "need_context": need_context})

    return [op_class(name, adapter) for name, (adapter, fixed_at) in REPLACED.items()
            if (fixed_at is None or opset < fixed_at) and opset >= _FROM.get(name, 0)]
