"""ONNX operators as torch functions: elementwise, logic, and the tensor and shape operators.

Each entry of ``TENSOR_OPS`` is ``op_type -> (maker, host)``: ``maker(attrs, ctx)`` is called once
when the graph is translated (``runtimes.onnx_torch``) and returns the function a call runs,
``fn(*inputs) -> tensor or tuple``, with None for an absent optional input. ``host`` names the
input positions the function reads as Python values (a shape, axes, starts): the translation
converts them once where they are known before the call (constants, shapes of the feeds), so
static shape arithmetic never goes through torch in the timed path. A maker raises
``Untranslated`` for a form of the operator it does not compute.

Imported only by ``runtimes.onnx_torch`` (it imports torch).
"""

from __future__ import annotations

import math

import torch

# ONNX TensorProto data type -> torch dtype
DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32,
          7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 12: torch.uint32,
          13: torch.uint64, 16: torch.bfloat16}


class Untranslated(Exception):
    """A node (or a form of it) that the torch translation does not compute: the message says
    which and why."""


def dtype_of(onnx_type: int):
    if onnx_type not in DTYPES:
        raise Untranslated(f"data type {onnx_type} has no torch dtype here")
    return DTYPES[onnx_type]


def host(value):
    """A shape-like input as Python ints (a list, or a number for a 0-d tensor)."""
    return value.tolist() if isinstance(value, torch.Tensor) else value


def axis_of(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _plain(fn):
    """An op without attributes: the torch function itself."""
    return lambda attrs, ctx: fn


def _with(fn, **defaults):
    """A unary op with float attributes (defaults as the spec gives them)."""
    return lambda attrs, ctx: (lambda x: fn(x, **{k: attrs.get(k, v)
                                                  for k, v in defaults.items()}))


def _div(a, b):
    if a.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")  # C integer division, as onnxruntime


def _pow(a, b):
    return torch.pow(a, b).to(a.dtype)


def _mod(attrs, ctx):
    return torch.fmod if attrs.get("fmod", 0) else torch.remainder


def _variadic(fn):
    def make(attrs, ctx):
        def run(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = fn(out, x)
            return out
        return run
    return make


def _mean(attrs, ctx):
    total = _variadic(torch.add)(attrs, ctx)
    return lambda *xs: total(*xs) / len(xs)


def _clip(attrs, ctx):
    if ctx.opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
        return lambda x: torch.clamp(x, low, high)
    return lambda x, low=None, high=None: torch.clamp(x, low, high)


def _hard_sigmoid(x, alpha, beta):
    return torch.clamp(alpha * x + beta, 0.0, 1.0)


def _leaky_relu(x, alpha):
    return torch.nn.functional.leaky_relu(x, alpha)


def _elu(x, alpha):
    return torch.nn.functional.elu(x, alpha)


def _selu(x, alpha, gamma):
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


def _thresholded_relu(x, alpha):
    return torch.where(x > alpha, x, torch.zeros_like(x))


def _gelu(attrs, ctx):
    approximate = attrs.get("approximate", "none")
    return lambda x: torch.nn.functional.gelu(x, approximate=approximate)


def _is_inf(attrs, ctx):
    negative, positive = attrs.get("detect_negative", 1), attrs.get("detect_positive", 1)
    return lambda x: (torch.isneginf(x) & bool(negative)) | (torch.isposinf(x) & bool(positive))


# --- shapes and layout -----------------------------------------------------------------------

def _shape(attrs, ctx):
    start, end = attrs.get("start", 0), attrs.get("end")
    return lambda x: torch.tensor(x.shape[start:end], dtype=torch.int64)


def _reshape(attrs, ctx):
    allowzero = attrs.get("allowzero", 0)

    def run(x, shape):
        shape = host(shape)
        if not allowzero and 0 in shape:
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)
    return run


def _flatten(attrs, ctx):
    axis = attrs.get("axis", 1)

    def run(x):
        a = axis_of(axis, x.dim())
        return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))
    return run


def _transpose(attrs, ctx):
    perm = attrs.get("perm")
    return lambda x: x.permute(perm if perm is not None else tuple(range(x.dim() - 1, -1, -1)))


def _squeeze(attrs, ctx):
    given = attrs.get("axes")

    def run(x, axes=None):
        axes = given if ctx.opset < 13 else host(axes)
        if axes is None:
            return x.squeeze()
        if isinstance(axes, int) or len(axes) == 1:
            return x.squeeze(axes if isinstance(axes, int) else axes[0])
        return x.squeeze(tuple(axes)) if axes else x
    return run


def _unsqueeze(attrs, ctx):
    given = attrs.get("axes")

    def run(x, axes=None):
        axes = given if ctx.opset < 13 else host(axes)
        axes = [axes] if isinstance(axes, int) else axes
        rank = x.dim() + len(axes)
        for a in sorted(axis_of(a, rank) for a in axes):
            x = x.unsqueeze(a)
        return x
    return run


def _concat(attrs, ctx):
    axis = attrs["axis"]
    return lambda *xs: torch.cat([x for x in xs if x is not None], axis)


def _split(attrs, ctx):
    axis, given, parts = attrs.get("axis", 0), attrs.get("split"), ctx.outputs

    def run(x, split=None):
        sizes = host(split) if split is not None else given
        if sizes is None:
            sizes = -(-x.shape[axis] // parts)  # equal parts, the last one smaller
        return tuple(torch.split(x, sizes, axis))
    return run


def _slice_axis(n: int, start: int, end: int, step: int):
    """ONNX Slice's clamping of one axis of length ``n``: a Python slice, or the indices of a
    negative step (torch slices take positive steps only)."""
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), n), min(max(end, 0), n), step)
    start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    return list(range(start, end, step))


def _slice(attrs, ctx):
    def run(x, starts, ends, axes=None, steps=None):
        starts, ends = host(starts), host(ends)
        axes = list(range(len(starts))) if axes is None else host(axes)
        steps = [1] * len(starts) if steps is None else host(steps)
        index = [slice(None)] * x.dim()
        picks = []
        for a, s, e, st in zip(axes, starts, ends, steps):
            a = axis_of(a, x.dim())
            part = _slice_axis(x.shape[a], s, e, st)
            if isinstance(part, list):
                picks.append((a, part))
            else:
                index[a] = part
        x = x[tuple(index)]
        for a, indices in picks:
            x = x.index_select(a, torch.tensor(indices, dtype=torch.long, device=x.device))
        return x
    if ctx.opset < 10:
        starts, ends, axes = attrs["starts"], attrs["ends"], attrs.get("axes")
        return lambda x: run(x, starts, ends, axes)
    return run


def index_of(indices):
    return indices if indices.dtype == torch.int64 else indices.long()


def _gather(attrs, ctx):
    axis = attrs.get("axis", 0)
    fixed = ctx.constant(ctx.node.input[1])
    if fixed is not None and fixed.dim() == 0:  # one index known: a view, no indexing
        index = int(fixed)
        return lambda data, indices: data.select(axis, index)

    def run(data, indices):
        # advanced indexing takes negative indices as ONNX does
        indices = index_of(indices).to(data.device)
        return data[(slice(None),) * axis_of(axis, data.dim()) + (indices,)]
    return run


def _gather_elements(attrs, ctx):
    axis = attrs.get("axis", 0)

    def run(data, indices):
        a = axis_of(axis, data.dim())
        indices = index_of(indices)
        return torch.gather(data, a, torch.where(indices < 0, indices + data.shape[a], indices))
    return run


def _gather_nd(attrs, ctx):
    if attrs.get("batch_dims", 0):
        raise Untranslated("GatherND with batch_dims")
    return lambda data, indices: data[tuple(index_of(indices).unbind(-1))]


def _scatter_elements(attrs, ctx):
    axis, reduction = attrs.get("axis", 0), attrs.get("reduction", "none")
    if reduction != "none":
        raise Untranslated(f"ScatterElements with reduction={reduction}")

    def run(data, indices, updates):
        a = axis_of(axis, data.dim())
        indices = index_of(indices)
        indices = torch.where(indices < 0, indices + data.shape[a], indices)
        return data.scatter(a, indices, updates)
    return run


def _scatter_nd(attrs, ctx):
    if attrs.get("reduction", "none") != "none":
        raise Untranslated(f"ScatterND with reduction={attrs['reduction']}")

    def run(data, indices, updates):
        out = data.clone()
        out[tuple(index_of(indices).unbind(-1))] = updates
        return out
    return run


def _expand(attrs, ctx):
    def run(x, shape):
        return x.expand(torch.broadcast_shapes(tuple(x.shape), tuple(host(shape))))
    return run


def _tile(attrs, ctx):
    return lambda x, repeats: x.repeat(host(repeats))


def _constant_of_shape(attrs, ctx):
    value = attrs.get("value")
    fill = value.reshape(()) if value is not None else torch.tensor(0.0)
    number, dtype = fill.item(), fill.dtype
    return lambda shape: torch.full(host(shape), number, dtype=dtype, device=ctx.device)


def _range(attrs, ctx):
    def run(start, limit, delta):
        dtype = start.dtype
        return torch.arange(host(start), host(limit), host(delta), dtype=dtype,
                            device=start.device)
    return run


def _cast(attrs, ctx):
    dtype = dtype_of(attrs["to"])
    return lambda x: x.to(dtype)


def _where(attrs, ctx):
    return lambda cond, x, y: torch.where(cond, x, y)


def _dropout(attrs, ctx):
    def run(x, *_):
        return (x, torch.ones(x.shape, dtype=torch.bool, device=x.device))[:ctx.outputs]
    return run


def _nonzero(attrs, ctx):
    return lambda x: torch.nonzero(x).T.contiguous()


def _reverse_sequence(attrs, ctx):
    batch_axis, time_axis = attrs.get("batch_axis", 1), attrs.get("time_axis", 0)

    def run(x, lens):
        x = x.movedim((time_axis, batch_axis), (0, 1))
        steps = torch.arange(x.shape[0], device=x.device)[:, None]
        lens = lens.to(device=x.device, dtype=torch.long)[None, :]
        order = torch.where(steps < lens, lens - 1 - steps, steps)  # padding stays in place
        out = x[order, torch.arange(x.shape[1], device=x.device)[None, :]]
        return out.movedim((0, 1), (time_axis, batch_axis))
    return run


def _size(attrs, ctx):
    return lambda x: torch.tensor(x.numel(), dtype=torch.int64)


F = torch.nn.functional
TENSOR_OPS = {
    "Add": (_plain(torch.add), ()), "Sub": (_plain(torch.sub), ()),
    "Mul": (_plain(torch.mul), ()), "Div": (_plain(_div), ()), "Pow": (_plain(_pow), ()),
    "Mod": (_mod, ()), "Max": (_variadic(torch.maximum), ()),
    "Min": (_variadic(torch.minimum), ()), "Sum": (_variadic(torch.add), ()),
    "Mean": (_mean, ()),
    "Equal": (_plain(torch.eq), ()), "Less": (_plain(torch.lt), ()),
    "LessOrEqual": (_plain(torch.le), ()), "Greater": (_plain(torch.gt), ()),
    "GreaterOrEqual": (_plain(torch.ge), ()), "And": (_plain(torch.logical_and), ()),
    "Or": (_plain(torch.logical_or), ()), "Xor": (_plain(torch.logical_xor), ()),
    "Not": (_plain(torch.logical_not), ()), "Where": (_where, ()),
    "Sigmoid": (_plain(torch.sigmoid), ()), "Tanh": (_plain(torch.tanh), ()),
    "Relu": (_plain(torch.relu), ()), "Exp": (_plain(torch.exp), ()),
    "Log": (_plain(torch.log), ()), "Sqrt": (_plain(torch.sqrt), ()),
    "Neg": (_plain(torch.neg), ()), "Abs": (_plain(torch.abs), ()),
    "Reciprocal": (_plain(torch.reciprocal), ()), "Floor": (_plain(torch.floor), ()),
    "Ceil": (_plain(torch.ceil), ()), "Round": (_plain(torch.round), ()),
    "Erf": (_plain(torch.erf), ()), "Sign": (_plain(torch.sign), ()),
    "Sin": (_plain(torch.sin), ()), "Cos": (_plain(torch.cos), ()),
    "Tan": (_plain(torch.tan), ()), "Atan": (_plain(torch.atan), ()),
    "IsNaN": (_plain(torch.isnan), ()), "IsInf": (_is_inf, ()),
    "Softplus": (_plain(F.softplus), ()), "Softsign": (_plain(F.softsign), ()),
    "HardSwish": (_plain(F.hardswish), ()), "Mish": (_plain(F.mish), ()),
    "PRelu": (_plain(lambda x, slope: torch.where(x >= 0, x, x * slope)), ()),
    "HardSigmoid": (_with(_hard_sigmoid, alpha=0.2, beta=0.5), ()),
    "LeakyRelu": (_with(_leaky_relu, alpha=0.01), ()), "Elu": (_with(_elu, alpha=1.0), ()),
    "Selu": (_with(_selu, alpha=1.67326319217681884765625,
                   gamma=1.05070102214813232421875), ()),
    "ThresholdedRelu": (_with(_thresholded_relu, alpha=1.0), ()),
    "Gelu": (_gelu, ()), "Clip": (_clip, ()),
    "Identity": (_plain(lambda x: x), ()), "Dropout": (_dropout, ()),
    "Cast": (_cast, ()), "CastLike": (_plain(lambda x, like: x.to(like.dtype)), ()),
    "Shape": (_shape, ()), "Size": (_size, ()),
    "Reshape": (_reshape, (1,)), "Flatten": (_flatten, ()), "Transpose": (_transpose, ()),
    "Squeeze": (_squeeze, (1,)), "Unsqueeze": (_unsqueeze, (1,)), "Concat": (_concat, ()),
    "Split": (_split, (1,)), "Slice": (_slice, (1, 2, 3, 4)), "Gather": (_gather, ()),
    "GatherElements": (_gather_elements, ()), "GatherND": (_gather_nd, ()),
    "ScatterElements": (_scatter_elements, ()), "Scatter": (_scatter_elements, ()),
    "ScatterND": (_scatter_nd, ()),
    "Expand": (_expand, (1,)), "Tile": (_tile, (1,)),
    "ConstantOfShape": (_constant_of_shape, (0,)), "Range": (_range, ()),
    "NonZero": (_nonzero, ()), "ReverseSequence": (_reverse_sequence, ()),
}
