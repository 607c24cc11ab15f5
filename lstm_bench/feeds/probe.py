"""What every LSTM node sees when the graph's inputs are fed at given shapes: shape inference.

The graph, not a convention, decides what an input axis means. ONNX shape inference with data
propagation, run on the model's skeleton (``model_limits.graph_only``) with its inputs fixed
at concrete sizes, gives the shape of each LSTM node's X (subgraphs included). Changing one
symbolic input size at a time then shows which LSTM axis it drives: the batch, the sequence
(possibly through a front end: a convolution over raw audio, an image's width pooled down),
both, or none. ``steps`` maps an input length to the steps an LSTM sees, and
``length_for`` inverts it: the input length at which the LSTM sees exactly T steps.
"""

from __future__ import annotations

from dataclasses import dataclass

# Probe sizes: multiples of 2520 * 64 (divisible by 1..10 and by the powers of two up to 512
# that audio frames come in), so that a Reshape that splits an axis into frames, or a stride,
# still divides; a symbol is probed at BASE and BASE + STEP.
STEP = 2520 * 64
BASE = 2 * STEP


def _layout(node) -> int:
    return next((a.i for a in node.attribute if a.name == "layout"), 0)


def lstm_nodes_anywhere(model) -> list:
    """Every LSTM node of the model, subgraphs included, in graph order."""
    from lstm_bench.model_limits import graphs  # it imports onnx

    return [node for graph in graphs(model.graph) for node in graph.node if node.op_type == "LSTM"]


class Prober:
    """Shape inference of one model at many input shapes; the skeleton is made once."""

    def __init__(self, model):
        from lstm_bench.model_limits import graph_only  # it imports onnx

        self.skeleton = graph_only(model)
        self.nodes = lstm_nodes_anywhere(model)
        self._seen: dict = {}

    def views(self, shapes: dict[str, tuple]) -> tuple:
        """Per LSTM node: (its steps, the batch of its X, of its initial_h, of its initial_c)
        when the inputs are fed at ``shapes`` (input name -> sizes); None for a size inference
        cannot tell (or an input the node does not have)."""
        key = tuple(sorted((name, tuple(dims)) for name, dims in shapes.items()))
        if key not in self._seen:
            self._seen[key] = self._infer(shapes)
        return self._seen[key]

    def _infer(self, shapes) -> tuple:
        import onnx

        from lstm_bench.model_limits import fed_at, graphs

        fixed = fed_at(self.skeleton, shapes)
        unknown = tuple((None,) * 4 for _ in self.nodes)
        try:
            inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
        except Exception:  # an inconsistent graph at these sizes: nothing can be told
            return unknown
        dims = {}
        for graph in graphs(inferred.graph):
            for value in list(graph.input) + list(graph.value_info) + list(graph.output):
                tensor = value.type.tensor_type
                if tensor.HasField("shape"):
                    dims[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                        else None for d in tensor.shape.dim]
        views = []
        for node in lstm_nodes_anywhere(inferred):
            names = list(node.input) + [""] * 8
            seq, batch = (1, 0) if _layout(node) else (0, 1)
            x, h, c = (dims.get(name) if name else None for name in (names[0], names[5], names[6]))
            views.append((x[seq] if x and len(x) == 3 else None,)
                         + tuple(v[batch] if v and len(v) == 3 else None for v in (x, h, c)))
        return tuple(views) if len(views) == len(self.nodes) else unknown


@dataclass(frozen=True)
class Reach:
    """Which LSTM axes one symbolic input size drives: node indexes whose batch, and whose
    steps, change with it."""

    batch: tuple[int, ...]
    steps: tuple[int, ...]


def reach(prober: Prober, base: dict[str, tuple], axes: list[tuple[str, int]]) -> Reach:
    """What changing the input axes ``axes`` (one symbol: every (input, axis) that shares it)
    together from ``base`` does to the LSTM nodes."""
    moved = {name: list(dims) for name, dims in base.items()}
    for name, axis in axes:
        moved[name][axis] += STEP
    before, after = prober.views(base), prober.views(moved)
    def moves(i: int, position: int) -> bool:
        a, b = before[i][position], after[i][position]
        return a is not None and b is not None and a != b

    nodes = range(len(before))
    return Reach(tuple(i for i in nodes if any(moves(i, p) for p in (1, 2, 3))),
                 tuple(i for i in nodes if moves(i, 0)))


def steps_at(prober: Prober, shapes: dict[str, tuple], node: int) -> int | None:
    """The steps LSTM node ``node`` sees at these feed shapes (None: inference cannot tell)."""
    return prober.views(shapes)[node][0]


def length_for(prober: Prober, shapes: dict[str, tuple], axes: list[tuple[str, int]],
               node: int, steps: int) -> int | None:
    """The longest size of the input axes ``axes`` at which LSTM node ``node`` sees exactly
    ``steps`` steps, the other sizes as in ``shapes``; None where no size gives that many.

    The steps grow with the length (a front end's frames, an image's pooled width), so a
    binary search finds the first length that gives one step more. The longest, not the
    shortest: onnx's inference rounds a window longer than its input towards zero (a
    convolution of 8 over 5 samples "gives" 1 frame), which the longest length never meets."""
    def seen(length: int) -> int:
        at = {name: list(dims) for name, dims in shapes.items()}
        for name, axis in axes:
            at[name][axis] = length
        return steps_at(prober, at, node) or 0

    if seen(steps) == steps and seen(steps + 1) == steps + 1:  # the LSTM sees the input's axis
        return steps
    low, high = 1, max(steps, 1)
    while seen(high) <= steps:
        high *= 2
        if high > 2 ** 40:
            return None
    while low < high:  # the first length that gives more than ``steps``
        middle = (low + high) // 2
        if seen(middle) > steps:
            high = middle
        else:
            low = middle + 1
    if low > 1 and seen(low - 1) == steps:
        return low - 1
    return _framed_length(seen, steps)


def _framed_length(seen, steps: int) -> int | None:
    """The length for ``steps`` where most lengths cannot be fed at all (a front end that
    Reshapes the input into frames: only multiples of the frame size run, so inference says
    nothing in between and the search above fails): the samples per frame, read off two probe
    lengths that divide, give the length, which is then checked."""
    first, second = seen(BASE), seen(BASE + STEP)
    if not first or second <= first:
        return None
    length = BASE + round((steps - first) * STEP / (second - first))
    return length if length >= 1 and seen(length) == steps else None
