"""ONNX operators as torch functions: the layers (Gemm, MatMul, Conv, pooling, normalizations),
softmax, the reductions, and CumSum, OneHot, TopK, Pad and Einsum. Entries as in
``runtimes.torch_ops`` (``op_type -> (maker, host)``).

Imported only by ``runtimes.onnx_torch`` (it imports torch).
"""

from __future__ import annotations

import math

import torch

from lstm_bench.runtimes.torch_ops import Untranslated, axis_of, host, index_of

F = torch.nn.functional


def _gemm(attrs, ctx):
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)

    if (alpha, beta, trans_a, trans_b) == (1.0, 1.0, 0, 1):
        # nn.Linear's layout and its own call
        return lambda a, b, c=None: F.linear(a, b, c) if c is None or c.dim() == 1 else \
            torch.addmm(c, a, b.T)

    def run(a, b, c=None):
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if c is None:
            out = a @ b
            return out if alpha == 1.0 else alpha * out
        return torch.addmm(c, a, b, beta=beta, alpha=alpha)
    return run


def _same_pads(sizes, kernel, strides, dilations, upper: bool) -> list[int]:
    """ONNX auto_pad SAME_UPPER / SAME_LOWER: (begins..., ends...) so that out = ceil(in / s)."""
    begins, ends = [], []
    for n, k, s, d in zip(sizes, kernel, strides, dilations):
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small = total // 2
        begins.append(small if upper else total - small)
        ends.append(total - small if upper else small)
    return begins + ends


def _padded(x, attrs, kernel, strides, dilations, fill=0.0):
    """``x`` with the ONNX pads (or auto_pad) of its spatial axes applied: torch's layers take
    symmetric padding only, so every pad is applied here."""
    spatial = x.dim() - 2
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = _same_pads(x.shape[2:], kernel, strides, dilations, auto == "SAME_UPPER")
    elif auto == "VALID":
        pads = [0] * 2 * spatial
    else:
        pads = attrs.get("pads", [0] * 2 * spatial)
    if not any(pads):
        return x
    widths = []
    for a in reversed(range(spatial)):
        widths += [pads[a], pads[a + spatial]]
    return F.pad(x, widths, value=fill)


def _conv(attrs, ctx):
    group = attrs.get("group", 1)

    def run(x, w, b=None):
        spatial = x.dim() - 2
        conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
        strides = attrs.get("strides", [1] * spatial)
        dilations = attrs.get("dilations", [1] * spatial)
        x = _padded(x, attrs, w.shape[2:], strides, dilations)
        return conv(x, w, b, strides, 0, dilations, group)
    return run


def _pool(kind: str):
    def make(attrs, ctx):
        kernel = attrs["kernel_shape"]
        spatial = len(kernel)
        strides = attrs.get("strides", [1] * spatial)
        dilations = attrs.get("dilations", [1] * spatial)
        ceil = bool(attrs.get("ceil_mode", 0))
        if ceil or attrs.get("storage_order", 0):
            raise Untranslated(f"{kind} with ceil_mode or storage_order")
        if kind == "MaxPool":
            pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[spatial - 1]
            return lambda x: pool(_padded(x, attrs, kernel, strides, dilations, -math.inf),
                                  kernel, strides, 0, dilations)
        if any(d != 1 for d in dilations):
            raise Untranslated("AveragePool with dilations")
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[spatial - 1]
        include = bool(attrs.get("count_include_pad", 0))

        def average(x):
            padded = _padded(x, attrs, kernel, strides, dilations)
            total = pool(padded, kernel, strides)
            if include or padded is x:
                return total
            counts = pool(_padded(torch.ones_like(x[:1, :1]), attrs, kernel, strides,
                                  dilations), kernel, strides)
            return total / counts
        return average
    return make


def _global(reduce):
    return lambda attrs, ctx: (lambda x: reduce(x, tuple(range(2, x.dim())), keepdim=True))


def _batch_norm(attrs, ctx):
    eps = attrs.get("epsilon", 1e-5)
    return lambda x, scale, bias, mean, var: F.batch_norm(x, mean, var, scale, bias, False,
                                                          0.0, eps)


def _instance_norm(attrs, ctx):
    eps = attrs.get("epsilon", 1e-5)
    return lambda x, scale, bias: F.instance_norm(x, weight=scale, bias=bias, eps=eps)


def _layer_norm(attrs, ctx):
    axis, eps = attrs.get("axis", -1), attrs.get("epsilon", 1e-5)
    if ctx.outputs > 1:
        raise Untranslated("LayerNormalization with its Mean and InvStdDev outputs")

    def run(x, scale, bias=None):
        shape = x.shape[axis_of(axis, x.dim()):]
        return F.layer_norm(x, shape, scale.expand(shape), None if bias is None
                            else bias.expand(shape), eps)
    return run


def _mvn(attrs, ctx):
    axes = tuple(attrs.get("axes", (0, 2, 3)))

    def run(x):
        mean = x.mean(axes, keepdim=True)
        var = (x * x).mean(axes, keepdim=True) - mean * mean
        return (x - mean) / torch.sqrt(var + 1e-9)
    return run


def _softmax(fn):
    def make(attrs, ctx):
        old = ctx.opset < 13  # before 13: coerced to 2-D at axis (default 1)
        axis = attrs.get("axis", 1 if old else -1)
        if not old:
            return lambda x: fn(x, axis)

        def coerced(x):
            a = axis_of(axis, x.dim())
            return fn(x.reshape(math.prod(x.shape[:a]), -1), 1).reshape(x.shape)
        return coerced
    return make


def _hardmax(x, axis):
    return F.one_hot(x.argmax(axis), x.shape[axis]).movedim(-1, axis_of(axis, x.dim())) \
        .to(x.dtype)


# opset from which each reduction takes its axes as an input, not an attribute
_AXES_INPUT = {"ReduceSum": 13}


def _reduce(op: str, fn):
    def make(attrs, ctx):
        keep = bool(attrs.get("keepdims", 1))
        noop = attrs.get("noop_with_empty_axes", 0)
        as_input = ctx.opset >= _AXES_INPUT.get(op, 18)

        def run(x, axes=None):
            axes = host(axes) if as_input else attrs.get("axes")
            if not axes:
                if noop and as_input:
                    return x
                axes = list(range(x.dim()))
            return fn(x, tuple(axis_of(a, x.dim()) for a in axes), keep)
        return run
    return make


def _prod(x, axes, keep):
    for a in sorted(axes, reverse=True):
        x = torch.prod(x, a, keepdim=keep)
    return x


def _arg(fn):
    def make(attrs, ctx):
        axis, keep, last = attrs.get("axis", 0), attrs.get("keepdims", 1), attrs.get(
            "select_last_index", 0)

        def run(x):
            if not last:
                return fn(x, axis, keepdim=bool(keep))
            a = axis_of(axis, x.dim())
            return x.shape[a] - 1 - fn(x.flip(a), a, keepdim=bool(keep))
        return run
    return make


def _dequantize(attrs, ctx):
    axis = attrs.get("axis", 1)

    def run(x, scale, zero_point=None):
        x = x.to(scale.dtype) if zero_point is None else x.to(scale.dtype) - zero_point.to(
            scale.dtype)
        if scale.dim() == 1 and x.dim() > 1:
            shape = [1] * x.dim()
            shape[axis_of(axis, x.dim())] = -1
            scale = scale.reshape(shape)
            if zero_point is not None:  # subtracted per channel too
                raise Untranslated("per-axis DequantizeLinear with a zero point")
        return x * scale
    return run


def _cumsum(attrs, ctx):
    exclusive, reverse = attrs.get("exclusive", 0), attrs.get("reverse", 0)

    def run(x, axis):
        a = int(host(axis))
        y = x.flip(a) if reverse else x
        out = torch.cumsum(y, a).to(x.dtype)
        if exclusive:
            out = out - y
        return out.flip(a) if reverse else out
    return run


def _one_hot(attrs, ctx):
    axis = attrs.get("axis", -1)

    def run(indices, depth, values):
        depth = int(host(depth))
        indices = index_of(indices)
        indices = torch.where(indices < 0, indices + depth, indices)
        hot = torch.nn.functional.one_hot(indices.clamp(0, depth - 1), depth)
        hot = hot * ((indices >= 0) & (indices < depth)).unsqueeze(-1)
        hot = hot.movedim(-1, axis_of(axis, indices.dim() + 1))
        return torch.where(hot.bool(), values[1], values[0])
    return run


def _top_k(attrs, ctx):
    axis, largest, ordered = attrs.get("axis", -1), attrs.get("largest", 1), attrs.get("sorted", 1)

    def run(x, k):
        k = host(k)
        values, indices = torch.topk(x, int(k[0] if isinstance(k, list) else k), axis,
                                     bool(largest), bool(ordered))
        return values, indices
    return run


def _edge_indices(n: int, before: int, after: int, reflect: bool, device):
    """The source index of each position of an axis of length ``n`` padded by edge or
    reflect (torch's own pads take the last axes only)."""
    index = torch.arange(-before, n + after, device=device)
    if reflect:
        index = index.abs()
        return torch.where(index >= n, 2 * (n - 1) - index, index)
    return index.clamp(0, n - 1)


def _pad(attrs, ctx):
    mode = attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise Untranslated(f"Pad mode {mode}")
    given = attrs.get("pads")
    fill = attrs.get("value", 0.0)

    def run(x, pads=None, value=None, axes=None):
        pads = given if ctx.opset < 11 else host(pads)
        axes = list(range(x.dim())) if axes is None else [axis_of(a, x.dim()) for a in host(axes)]
        n = len(axes)
        if mode != "constant":
            for i, a in enumerate(axes):
                if pads[i] or pads[i + n]:
                    x = x.index_select(a, _edge_indices(x.shape[a], pads[i], pads[i + n],
                                                        mode == "reflect", x.device))
            return x
        widths = [0] * (2 * x.dim())
        for i, a in enumerate(axes):  # torch lists the last axis first, (before, after) each
            widths[2 * (x.dim() - 1 - a)] = pads[i]
            widths[2 * (x.dim() - 1 - a) + 1] = pads[i + n]
        constant = fill if value is None else value.item()
        return torch.nn.functional.pad(x, widths, "constant", constant)
    return run


def _einsum(attrs, ctx):
    equation = attrs["equation"]
    return lambda *xs: torch.einsum(equation, *xs)


NN_OPS = {
    "Gemm": (_gemm, ()), "MatMul": (lambda attrs, ctx: torch.matmul, ()),
    "Conv": (_conv, ()),
    "MaxPool": (_pool("MaxPool"), ()), "AveragePool": (_pool("AveragePool"), ()),
    "GlobalAveragePool": (_global(torch.mean), ()), "GlobalMaxPool": (_global(torch.amax), ()),
    "BatchNormalization": (_batch_norm, ()), "InstanceNormalization": (_instance_norm, ()),
    "LayerNormalization": (_layer_norm, ()), "MeanVarianceNormalization": (_mvn, ()),
    "Softmax": (_softmax(torch.softmax), ()), "LogSoftmax": (_softmax(torch.log_softmax), ()),
    "Hardmax": (_softmax(_hardmax), ()),
    "ReduceMean": (_reduce("ReduceMean", lambda x, a, k: torch.mean(x, a, keepdim=k)), (1,)),
    "ReduceSum": (_reduce("ReduceSum", lambda x, a, k: torch.sum(x, a, keepdim=k)), (1,)),
    "ReduceMax": (_reduce("ReduceMax", lambda x, a, k: torch.amax(x, a, keepdim=k)), (1,)),
    "ReduceMin": (_reduce("ReduceMin", lambda x, a, k: torch.amin(x, a, keepdim=k)), (1,)),
    "ReduceProd": (_reduce("ReduceProd", _prod), (1,)),
    "ReduceSumSquare": (_reduce("ReduceSumSquare",
                                lambda x, a, k: torch.sum(x * x, a, keepdim=k)), (1,)),
    "ReduceL2": (_reduce("ReduceL2",
                         lambda x, a, k: torch.sqrt(torch.sum(x * x, a, keepdim=k))), (1,)),
    "ReduceLogSumExp": (_reduce("ReduceLogSumExp",
                                lambda x, a, k: torch.logsumexp(x, a, keepdim=k)), (1,)),
    "ArgMax": (_arg(torch.argmax), ()), "ArgMin": (_arg(torch.argmin), ()),
    "DequantizeLinear": (_dequantize, ()),
    "CumSum": (_cumsum, (1,)), "OneHot": (_one_hot, (1,)), "TopK": (_top_k, (1,)),
    "Pad": (_pad, (1, 3)), "Einsum": (_einsum, ()),
}
