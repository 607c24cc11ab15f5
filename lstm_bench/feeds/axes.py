"""Which symbolic axis of each graph input is the batch and which the sequence.

Dynamic axes get their size from ``batch`` and ``seq_len``, where ``seq_len`` is the steps an
LSTM sees. The graph decides which symbolic axis is which, in this order:

1. by role: an input that feeds an LSTM node directly takes the operator's layout
   (X ``[T,B,I]`` or ``[B,T,I]`` with layout 1; sequence_lens ``[B]``; initial_h/initial_c
   ``[D,B,H]`` or ``[B,D,H]``); a dim_param named there keeps that meaning everywhere;
2. by the graph: shape inference (``probe``) shows which LSTM axis each symbolic size drives
   (a batch, the steps through a front end: raw audio through a convolution, an image's width
   pooled down); the input length that gives the LSTM ``seq_len`` steps is found from it;
3. by name, where inference cannot reach the LSTM: a dim_param containing "batch" (or equal
   to "N" / "B") is the batch axis; one containing "seq", "time", "step", "len" (or equal
   to "T") is the sequence axis;
4. by position, only for a graph whose LSTM shapes inference cannot tell at all: the first
   remaining symbolic axis is batch, the second seq_len (torch ``batch_first`` and Keras).

An axis none of these ties is never guessed: the error names the input and the axis, and
``--shape NAME=DIMS`` fixes it. So is an axis fixed at 0 or a negative size, and a dynamic axis
of an LSTM's input where the operator fixes the size (X's input size): fed at a guessed size,
the reference would blame the weights instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.branches import chosen_branches
from lstm_bench.feeds.inputs import Given
from lstm_bench.feeds.probe import BASE, Prober, length_for, lstm_nodes_anywhere, reach

_BATCH_NAME = re.compile(r"batch|^n$|^b$", re.I)
_SEQ_NAME = re.compile(r"seq|time|step|len|^t$", re.I)


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, NumPy dtype and dims (an int, or None where the axis is symbolic)."""

    name: str
    dtype: np.dtype
    dims: tuple  # int or None
    dim_params: tuple  # the symbolic names ("" where fixed or unnamed)
    roles: tuple  # per axis: "batch", "seq_len" or None
    is_lengths: bool = False  # an LSTM's sequence_lens
    symbols: tuple = ()  # per axis: the key of its size, shared by axes of one dim_param


def lstm_roles(model) -> tuple[dict[str, tuple], set[str]]:
    """(graph input name -> axis roles, the sequence_lens inputs) for the inputs that feed an
    LSTM node directly."""
    from onnx import helper

    roles, lengths = {}, set()
    for node in model.graph.node:
        if node.op_type != "LSTM":
            continue
        layout = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "layout"), 0)
        names = list(node.input) + [""] * 8
        roles[names[0]] = ("batch", "seq_len", None) if layout else ("seq_len", "batch", None)
        roles[names[4]] = ("batch",)
        lengths.add(names[4])
        for state in (names[5], names[6]):
            roles[state] = ("batch", None, None) if layout else (None, "batch", None)
    roles.pop("", None)
    lengths.discard("")
    return roles, lengths


def _overridable(value) -> bool:
    """A graph input with an initializer (a default value) that declares a dynamic axis: it
    is fed like any input, so that --batch / --seq-len reach it (issue 9: never fed before,
    while the report claimed the requested shape). One whose dims are all fixed keeps its
    default: a weight, listed as fixed in the report."""
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and any(not (d.HasField("dim_value") and d.dim_value > 0) for d in dims)


def fixed_inputs(model) -> dict[str, list[int]]:
    """Graph inputs left at their initializer's value, with its shape (kept in the report)."""
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    return {v.name: inits[v.name] for v in model.graph.input
            if v.name in inits and not _overridable(v)}


def _given_shape(value, shape, dims) -> list:
    """``dims`` with the sizes of ``--shape`` ``shape`` in place, checked against the model."""
    if len(shape) != len(dims):
        raise LSTMBenchError(f"--shape {value.name}={'x'.join(map(str, shape))} has rank "
                             f"{len(shape)}; the model's input {value.name!r} has rank {len(dims)}")
    for axis, (size, dim) in enumerate(zip(shape, dims)):
        if dim is not None and size != dim:
            raise LSTMBenchError(f"--shape {value.name}=...: axis {axis} is {size}, but the model "
                                 f"fixes it at {dim}")
    return list(shape)


def _raw_inputs(model, shapes: dict) -> list[tuple]:
    """(name, dtype, dims, dim_params) of every input to feed, ``shapes`` (``--shape``) in."""
    from onnx import helper

    initializers = {t.name for t in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in initializers or _overridable(v)]
    unknown = sorted(set(shapes) - {v.name for v in values})
    if unknown:
        raise LSTMBenchError(f"--shape names {unknown}, which the model does not take as "
                             f"inputs; its inputs: {[v.name for v in values]}")
    raw = []
    for value in values:
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor.elem_type:
            raise LSTMBenchError(f"input {value.name!r} is not a tensor; lstm-bench feeds tensors only")
        dims, params = [], []
        for axis, d in enumerate(tensor.shape.dim):
            if d.HasField("dim_value") and d.dim_value <= 0:  # not a size: blame the input here,
                # before a runtime or the reference blames the weights it meets (W's input_size)
                raise LSTMBenchError(f"input {value.name!r} axis {axis} has size {d.dim_value} in "
                                     "the model: a fixed axis is at least 1 (a dynamic one has a "
                                     "name or no size)")
            fixed = d.HasField("dim_value")
            dims.append(int(d.dim_value) if fixed else None)
            params.append("" if fixed else d.dim_param)
        if value.name in shapes:
            dims = _given_shape(value, shapes[value.name], dims)
            params = [""] * len(dims)
        raw.append((value.name, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)),
                    tuple(dims), tuple(params)))
    return raw


def _symbol(name: str, axis: int, param: str) -> str:
    """One key for the axes that share a size: their dim_param, else the axis itself."""
    return param or f"{name}[{axis}]"


@dataclass(frozen=True)
class AxisMap:
    """The model's inputs with the role of each symbolic axis, and what ties each sequence
    symbol to the steps an LSTM sees (``probe``)."""

    specs: tuple  # InputSpec
    base: dict  # input name -> sizes at which the graph was probed
    steps: dict  # sequence symbol -> the LSTM node (index) whose steps it drives
    prober: Prober | None  # None where inference can tell nothing of the LSTMs

    def axes_of(self, symbol: str) -> list[tuple[str, int]]:
        return [(s.name, axis) for s in self.specs for axis, key in enumerate(s.symbols)
                if key == symbol]

    def sizes(self, batch: int, seq_len: int) -> dict[str, int]:
        """Symbol -> the size fed: the batch, and for each sequence symbol the input length at
        which its LSTM sees ``seq_len`` steps (the same number where the LSTM sees the axis)."""
        sizes = {key: batch for s in self.specs for key, role in zip(s.symbols, s.roles)
                 if role == "batch"}
        shapes = self.shapes_at({**self._base_sizes(), **sizes})
        for symbol in {key for s in self.specs for key, role in zip(s.symbols, s.roles)
                       if role == "seq_len"}:
            node = self.steps.get(symbol)
            if node is None or self.prober is None:
                sizes[symbol] = seq_len
                continue
            length = length_for(self.prober, shapes, self.axes_of(symbol), node, seq_len)
            if length is None:
                name, axis = self.axes_of(symbol)[0]
                raise LSTMBenchError(f"no length of input {name!r} axis {axis} ({symbol}) gives "
                                     f"the LSTM exactly {seq_len} steps; try another --seq-len, "
                                     f"or give the input's shape with --shape {name}=...")
            sizes[symbol] = length
        return sizes

    def _base_sizes(self) -> dict[str, int]:
        return {key: self.base[s.name][axis] for s in self.specs
                for axis, key in enumerate(s.symbols) if key}

    def shapes_at(self, sizes: dict[str, int]) -> dict[str, tuple]:
        return {s.name: tuple(dim if dim is not None else sizes[key]
                              for dim, key in zip(s.dims, s.symbols)) for s in self.specs}

    def lstm_steps(self, shapes: dict[str, tuple]) -> int | None:
        """The steps the first LSTM node that inference can see takes at these feed shapes."""
        if self.prober is None:
            return None
        return next((view[0] for view in self.prober.views(shapes) if view[0] is not None), None)


def _tie(raw, by_lstm, prober) -> tuple[dict[str, str], dict[str, int]]:
    """(symbol -> role, sequence symbol -> LSTM node index) from the graph (rules 1 and 2)."""
    roles, steps = {}, {}
    for name, _, dims, params in raw:  # rule 1: the LSTM operator's own axes
        for axis, (role, dim) in enumerate(zip(by_lstm.get(name, ()), dims)):
            if role and dim is None:
                roles.setdefault(_symbol(name, axis, params[axis]), role)
    if prober is None:
        return roles, steps
    base = {name: [dim or BASE for dim in dims] for name, _, dims, _ in raw}
    symbols: dict[str, list] = {}
    for name, _, dims, params in raw:
        for axis, dim in enumerate(dims):
            if dim is None:
                symbols.setdefault(_symbol(name, axis, params[axis]), []).append((name, axis))
    for symbol, axes in symbols.items():  # rule 2: what shape inference shows
        found = reach(prober, base, axes)
        if found.steps and found.batch:
            name, axis = axes[0]
            raise LSTMBenchError(
                f"input {name!r} axis {axis} ({symbol}) drives both the batch and the steps of "
                f"the LSTM; give the input's shape with --shape {name}=DIMS")
        if found.steps:
            roles.setdefault(symbol, "seq_len")
            steps[symbol] = found.steps[0]
        elif found.batch:
            roles.setdefault(symbol, "batch")
    return roles, steps


_MAPS: dict = {}  # (id(model), given) -> (model, AxisMap): the probe runs once per model


def axis_map(model, given: Given | None = None) -> AxisMap:
    """The model's inputs, each axis tied to a role (rules in the module's docstring), and
    the sequence symbols tied to the LSTM steps they drive. ``given``: the ``--shape`` sizes
    and ``--value`` values (a value that chooses an If branch: only that branch's LSTMs are
    probed, ``branches.chosen_branches``)."""
    given = given or Given()
    shapes = {name: tuple(map(int, dims)) for name, dims in given.shapes.items()}
    key = (id(model), tuple(sorted(shapes.items())), tuple(sorted(given.values.items())))
    if key in _MAPS and _MAPS[key][0] is model:
        return _MAPS[key][1]
    found = _axis_map(model, shapes, given.values)
    if len(_MAPS) >= 16:
        _MAPS.pop(next(iter(_MAPS)))
    _MAPS[key] = (model, found)
    return found


def _axis_map(model, shapes: dict, values: dict) -> AxisMap:
    raw = _raw_inputs(model, shapes)
    by_lstm, lengths = lstm_roles(model)
    named: dict[str, str] = {}
    for _, _, _, params in raw:  # rule 3: by name
        for param in params:
            if param and _BATCH_NAME.search(param):
                named.setdefault(param, "batch")
            elif param and _SEQ_NAME.search(param):
                named.setdefault(param, "seq_len")
    probed = chosen_branches(model, values)
    prober = Prober(probed) if lstm_nodes_anywhere(probed) else None
    base = {name: tuple(dim or BASE for dim in dims) for name, _, dims, _ in raw}
    if prober is not None and all(None in view[:2] for view in prober.views(base)):
        prober = None  # inference cannot see the LSTM's shapes: names and positions decide
    tied, steps = _tie(raw, by_lstm, prober)
    specs = []
    for name, dtype, dims, params in raw:
        by_role = by_lstm.get(name, ())
        roles, symbols = [], []
        # rule 4 in a batch-major input whose first axis is fixed: the batch is fixed, so its
        # first symbolic axis is the sequence ([4, s0, 1] from a fixed-batch torch.export)
        fixed_first = not by_role and len(dims) >= 2 and dims[0] is not None
        free = iter(("seq_len",) if fixed_first else ("batch", "seq_len"))
        for axis, (dim, param) in enumerate(zip(dims, params)):
            symbol = None if dim is not None else _symbol(name, axis, param)
            symbols.append(symbol)
            if dim is not None:
                roles.append(None)
            elif symbol in tied:
                roles.append(tied[symbol])
            elif axis < len(by_role):  # the operator's own size (X's input_size): W fixes it
                raise LSTMBenchError(
                    f"input {name!r}: axis {axis} ({param or 'unnamed'}) is dynamic, but the LSTM "
                    "node it feeds fixes that size (input size, directions or hidden size); fix "
                    "it in the model")
            elif param in named:
                roles.append(named[param])
            elif prober is None and (role := next(free, None)):
                roles.append(role)
            else:
                raise LSTMBenchError(
                    f"input {name!r}: axis {axis} ({param or 'unnamed'}) is dynamic, and the graph "
                    "does not tie it to an LSTM's batch or steps; give the input's shape with "
                    f"--shape {name}={'x'.join(str(d) if d else 'N' for d in dims)} (N: its size)")
        specs.append(InputSpec(name, dtype, dims, params, tuple(roles), name in lengths,
                               tuple(symbols)))
    return AxisMap(tuple(specs), base, steps, prober)


def input_specs(model, given: Given | None = None) -> list[InputSpec]:
    """Every graph input to feed (no initializer, or an overridable one, see ``_overridable``),
    with the role of each symbolic axis (``axis_map``)."""
    return list(axis_map(model, given).specs)


def fixed_seq_len(model, specs, given: Given | None = None) -> int | None:
    """The steps the LSTM sees where the model (or ``--shape``) fixes them: a model exported
    for one sequence length, an image of fixed width."""
    by_lstm, _ = lstm_roles(model)
    for spec in specs:
        for axis, role in enumerate(by_lstm.get(spec.name, ())):
            if role == "seq_len" and spec.dims[axis] is not None:
                return spec.dims[axis]
    if any("seq_len" in spec.roles for spec in specs):
        return None
    found = axis_map(model, given)
    if found.prober is not None:  # the graph says: a front end's frames at a fixed length
        return found.lstm_steps(found.base)
    for spec in specs:  # an exported wrapper [batch, T, features] with T fixed
        if (spec.name not in by_lstm and len(spec.dims) == 3 and spec.roles[0] == "batch"
                and spec.dims[1] is not None):
            return spec.dims[1]
    return None
