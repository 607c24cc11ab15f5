"""Which symbolic axis of each graph input is the batch and which the sequence.

Dynamic axes get their size from ``batch`` and ``seq_len``. Which symbolic axis is which, in
this order of precedence:

1. by name: a dim_param containing "batch" (or equal to "N" / "B") is the batch axis; one
   containing "seq", "time", "step", "len" (or equal to "T") is the sequence axis;
2. by role: an input that feeds an LSTM node directly takes the operator's layout
   (X ``[T,B,I]`` or ``[B,T,I]`` with layout 1; sequence_lens ``[B]``; initial_h/initial_c
   ``[D,B,H]`` or ``[B,D,H]``); a dim_param named there keeps that meaning everywhere;
3. by position: the first remaining symbolic axis is batch, the second seq_len (the
   batch-major convention of torch ``batch_first`` and Keras exports, whose dims are named
   ``s0``/``s1``, ``batch_size``/``sequence_length`` or left unnamed).

Any further symbolic axis is an error that names the input and the axis; so is an axis fixed
at 0 or a negative size, and a dynamic axis of an LSTM's input where the operator fixes the size
(X's input size): fed at a guessed size, the reference would blame the weights instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lstm_bench.errors import LSTMBenchError

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


def input_specs(model) -> list[InputSpec]:
    """Every graph input to feed (no initializer, or an overridable one, see ``_overridable``),
    with the role of each symbolic axis."""
    from onnx import helper

    initializers = {t.name for t in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in initializers or _overridable(v)]
    by_lstm, lengths = lstm_roles(model)
    named: dict[str, str] = {}  # dim_param -> role
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
        raw.append((value.name, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)),
                    tuple(dims), tuple(params)))
        for param in params:  # rule 1: by name
            if param and _BATCH_NAME.search(param):
                named.setdefault(param, "batch")
            elif param and _SEQ_NAME.search(param):
                named.setdefault(param, "seq_len")
    for name, _, dims, params in raw:  # rule 2: by the LSTM operator's layout
        for role, param in zip(by_lstm.get(name, ()), params):
            if role and param:
                named.setdefault(param, role)
    specs = []
    for name, dtype, dims, params in raw:
        by_role = by_lstm.get(name, ())
        roles = []
        # rule 3 in a batch-major input whose first axis is fixed: the batch is fixed, so its
        # first symbolic axis is the sequence ([4, s0, 1] from a fixed-batch torch.export)
        fixed_first = not by_role and len(dims) >= 2 and dims[0] is not None
        free = iter(("seq_len",) if fixed_first else ("batch", "seq_len"))
        for axis, (dim, param) in enumerate(zip(dims, params)):
            if dim is not None:
                roles.append(None)
            elif param in named:
                roles.append(named[param])
            elif axis < len(by_role) and by_role[axis]:
                roles.append(by_role[axis])
            elif axis < len(by_role):  # the operator's own size (X's input_size): W fixes it
                raise LSTMBenchError(
                    f"input {name!r}: axis {axis} ({param or 'unnamed'}) is dynamic, but the LSTM "
                    "node it feeds fixes that size (input size, directions or hidden size); fix "
                    "it in the model")
            else:  # rule 3: by position
                role = next(free, None)
                if role is None:
                    raise LSTMBenchError(
                        f"input {name!r}: axis {axis} ({param or 'unnamed'}) is dynamic and is "
                        "neither the batch nor the sequence axis; give the inputs with --inputs FILE.npz")
                roles.append(role)
        specs.append(InputSpec(name, dtype, dims, params, tuple(roles), name in lengths))
    return specs


def fixed_seq_len(model, specs) -> int | None:
    """T where an LSTM's X input fixes it (a model exported for one sequence length)."""
    by_lstm, _ = lstm_roles(model)
    for spec in specs:
        for axis, role in enumerate(by_lstm.get(spec.name, ())):
            if role == "seq_len" and spec.dims[axis] is not None:
                return spec.dims[axis]
    for spec in specs:  # an exported wrapper [batch, T, features] with T fixed
        if (spec.name not in by_lstm and len(spec.dims) == 3 and spec.roles[0] == "batch"
                and spec.dims[1] is not None):
            return spec.dims[1]
    return None
