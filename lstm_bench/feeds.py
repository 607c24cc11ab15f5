"""Feeds for a model: seeded random tensors for every graph input, or a user's .npz, checked.

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

Any further symbolic axis is an error that names the input and the axis.

Token inputs (integers that index an embedding: a Gather over a constant table, perhaps through
Cast / Reshape / Transpose) are drawn over the table's real rows, ``0..vocab-1``, read from the
graph. Ragged token (or masked float) inputs are padded the way the model's framework pads: a
model exported by lstm-bench from Keras with a mask records its padding in the file's metadata
(``lstm_bench.padding``: "pre", ``pad_sequences``' default, or "post"; ``lstm_bench.pad_value``;
``lstm_bench.padded_inputs``), and ``make_inputs(padding=...)`` overrides it. Real tokens are
then drawn from ``1..vocab-1`` so that no real step looks like padding. What was fed (vocab,
padding side, lengths) is kept in ``Inputs`` for the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import check_array_size

DEFAULT_SEQ_LEN = 100  # the seed model's sequence length
GENERATOR = "numpy.random.default_rng (PCG64)"  # named in the report: what the seed seeds
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


@dataclass
class Inputs:
    """Feeds plus what was chosen for them (kept in the report)."""

    feeds: dict[str, np.ndarray]
    batch: int
    seq_len: int | None
    source: str  # "random" or the .npz path
    seed: int | None = None
    value_range: tuple[float, float] | None = None
    lengths: dict[str, list[int]] = field(default_factory=dict)  # sequence_lens fed, by input
    vocab: dict[str, int] = field(default_factory=dict)  # token inputs: rows of their embedding
    padding: str | None = None  # "pre" / "post" where ragged inputs were padded
    fixed: dict[str, list[int]] = field(default_factory=dict)  # inputs left at their default
    distribution: dict[str, str] = field(default_factory=dict)  # random: how each was drawn
    sha256: str | None = None  # an .npz: its content, so two reports fed alike can be told

    def describe(self) -> dict:
        random = self.source == "random"
        return {"source": self.source, "batch": self.batch, "seq_len": self.seq_len,
                "fixed_inputs": self.fixed,
                **({"generator": GENERATOR, "distribution": self.distribution} if random
                   else {"sha256": self.sha256}),
                "seed": self.seed, "value_range": self.value_range, "lengths": self.lengths,
                "vocab": self.vocab, "padding": self.padding,
                "shapes": {k: list(v.shape) for k, v in self.feeds.items()},
                "dtypes": {k: v.dtype.name for k, v in self.feeds.items()}}


def _lstm_roles(model) -> tuple[dict[str, tuple], set[str]]:
    """Graph input name -> axis roles for inputs that feed an LSTM node directly."""
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


# Ops between a token input and its embedding's Gather that keep the token values.
_PASS_THROUGH = {"Cast", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten",
                 "Expand", "Clip"}
PADDINGS = ("pre", "post")


def token_vocab(model) -> dict[str, int]:
    """Integer graph input name -> the number of rows of the embedding table it indexes.

    An input indexes a table when it reaches the indices of a Gather (or the first input of
    GatherND, unsupported here) whose data is a constant, through value-keeping ops only.
    """
    from lstm_bench.graph import constants

    values = constants(model.graph)
    producer = {out: node for node in model.graph.node for out in node.output}
    inputs = {v.name for v in model.graph.input}
    vocab: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in values:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        table = values[node.input[0]]
        name = node.input[1]
        while name not in inputs and name in producer \
                and producer[name].op_type in _PASS_THROUGH:
            name = producer[name].input[0]
        if name in inputs and name not in values and table.ndim:
            rows = int(table.shape[axis])
            vocab[name] = min(rows, vocab.get(name, rows))
    return vocab


def _padding_metadata(model) -> tuple[str | None, float, set[str]]:
    """(padding side, pad value, inputs padded) recorded by lstm-bench's Keras export."""
    props = {p.key: p.value for p in model.metadata_props}
    side = props.get("lstm_bench.padding")
    padded = set(filter(None, props.get("lstm_bench.padded_inputs", "").split(",")))
    return (side if side in PADDINGS else None), float(props.get("lstm_bench.pad_value", 0)), padded


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
    lstm_roles, lengths = _lstm_roles(model)
    named: dict[str, str] = {}  # dim_param -> role
    raw = []
    for value in values:
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor.elem_type:
            raise LSTMBenchError(f"input {value.name!r} is not a tensor; lstm-bench feeds tensors only")
        dims, params = [], []
        for d in tensor.shape.dim:
            fixed = d.HasField("dim_value") and d.dim_value > 0
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
        for role, param in zip(lstm_roles.get(name, ()), params):
            if role and param:
                named.setdefault(param, role)
    specs = []
    for name, dtype, dims, params in raw:
        by_role = lstm_roles.get(name, ())
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
            else:  # rule 3: by position
                role = next(free, None)
                if role is None:
                    raise LSTMBenchError(
                        f"input {name!r}: axis {axis} ({param or 'unnamed'}) is dynamic and is "
                        "neither the batch nor the sequence axis; give the inputs with --inputs FILE.npz")
                roles.append(role)
        specs.append(InputSpec(name, dtype, dims, params, tuple(roles), name in lengths))
    return specs




def _ragged_lengths(rng, n: int, seq_len: int, zero_length: bool) -> np.ndarray:
    if n < 2:
        raise LSTMBenchError("ragged lengths need a batch of at least 2 (one full "
                             "sequence and one shorter); use --batch 2 or more")
    values = rng.integers(1, seq_len + 1, size=n)
    values[rng.integers(n)] = seq_len
    if zero_length:
        values[(np.flatnonzero(values == seq_len)[0] + 1) % n] = 0
    return values


def fixed_batch(model, specs=None) -> tuple[str, int] | None:
    """(what fixes it, the batch) where the model takes one batch size only; None where an
    input has a dynamic batch axis. What fixes it: "input 'x' has a fixed batch of 4", or, for
    a model with no batch axis at all, "the model has no dynamic batch axis (...)" (batch 1).

    The batch axis of an input that feeds an LSTM node directly is the operator's (X
    ``[T,B,I]``, or ``[B,T,I]`` with layout 1); otherwise the first axis of the first input of
    rank 2 or more (the batch-major convention, as in ``input_specs``)."""
    specs = input_specs(model) if specs is None else specs
    if any("batch" in spec.roles for spec in specs):
        return None
    lstm_roles, _ = _lstm_roles(model)
    candidates = [(spec, axis) for spec in specs
                  for axis, role in enumerate(lstm_roles.get(spec.name, ())) if role == "batch"]
    candidates += [(spec, 0) for spec in specs if len(spec.dims) >= 2]
    for spec, axis in candidates:
        if axis < len(spec.dims) and spec.dims[axis] is not None:
            return f"input {spec.name!r} has a fixed batch of {spec.dims[axis]}", spec.dims[axis]
    return (f"the model has no dynamic batch axis (fixed inputs: "
            f"{fixed_inputs(model) or [s.name for s in specs]})"), 1


def fit_batches(model, batches, default, *, where: str = "") -> tuple[list[int], str | None]:
    """The batch sizes to feed ``model``: (sizes, a note or None).

    ``batches``: the sizes the user asked for (``--batch``), or None for ``default``. A model
    that takes one batch only (``fixed_batch``) refuses asked sizes it cannot take (a row
    labelled with a batch it never ran is worse than no row); default sizes are replaced by
    the model's own, and the note says so. ``where``: the model's name, before the messages.
    """
    wanted = list(default if batches is None else batches)
    fixed = fixed_batch(model)
    if fixed is None or wanted == [fixed[1]]:
        return wanted, None
    what, size = fixed
    prefix = f"{where}: " if where else ""
    listed = ",".join(map(str, wanted))
    if batches is not None:
        raise LSTMBenchError(f"{prefix}{what}; --batch {listed} cannot be fed "
                             f"(use --batch {size})")
    return [size], f"{prefix}{what}: measured at batch {size}, not the default {listed}"


def _resolve(model, batch, seq_len):
    """(input specs, the batch fed, the seq_len fed, the one the model fixes or None), the
    asked batch (None: the model's own where it fixes one, else 1) and seq_len checked
    against the model."""
    if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 1):
        raise LSTMBenchError(f"batch must be a positive integer, got {batch!r}")
    if seq_len is not None and (not isinstance(seq_len, (int, np.integer)) or seq_len < 1):
        raise LSTMBenchError(f"seq_len must be a positive integer, got {seq_len!r}")
    specs = input_specs(model)
    fixed = fixed_batch(model, specs)
    if batch is None:
        batch = fixed[1] if fixed else 1
    elif fixed and batch != fixed[1]:
        # issue 9 and review item 1: never feed another batch than the one asked and recorded
        raise LSTMBenchError(f"{fixed[0]}; --batch {batch} cannot be fed "
                             f"(use --batch {fixed[1]})")
    # A sequence axis fixed by the model (the seed: T = 100) is the seq_len unless one is given.
    fixed_T = _fixed_seq_len(model, specs)
    if seq_len is None:
        seq_len = fixed_T or DEFAULT_SEQ_LEN
    elif fixed_T and seq_len != fixed_T:
        raise LSTMBenchError(f"the model fixes the sequence length at {fixed_T}; "
                             f"--seq-len {seq_len} cannot be fed (leave it out)")
    return specs, int(batch), seq_len, fixed_T


def fed_seq_len(model, seq_len: int | None = None) -> int:
    """The seq_len ``make_inputs`` feeds when asked for ``seq_len`` (None: the model's own)."""
    return _resolve(model, None, seq_len)[2]


def _shape(spec: InputSpec, batch: int, seq_len: int) -> tuple[int, ...]:
    return tuple(dim if dim is not None else (batch if role == "batch" else seq_len)
                 for dim, role in zip(spec.dims, spec.roles))


def feed_shapes(model, *, batch: int | None = None,
                seq_len: int | None = None) -> dict[str, tuple]:
    """Input name -> (shape, dtype) of the feeds ``make_inputs`` makes at this batch and
    seq_len, found without making them (each checked against LSTM_BENCH_MAX_ARRAY_MB)."""
    specs, batch, seq_len, _ = _resolve(model, batch, seq_len)
    shapes = {}
    for spec in specs:
        shapes[spec.name] = (_shape(spec, batch, seq_len), spec.dtype)
        check_array_size(shapes[spec.name][0], spec.dtype, f"input {spec.name!r}")
    return shapes


def _rule(spec: InputSpec, vocab: dict, low: float, high: float, pads: bool,
          pad_value: float) -> tuple:
    """How an input's values are drawn: one decision, read by ``make_inputs`` to draw them and
    by ``_rule_text`` to say so in the report."""
    if spec.is_lengths:
        return ("lengths",)
    if np.issubdtype(spec.dtype, np.floating):
        return ("uniform", low, high)
    if spec.name in vocab:
        # a padded model's real tokens avoid the pad id, or they would be masked too
        first = 1 if pads and pad_value == 0 else 0
        return ("tokens", first, max(vocab[spec.name], first + 1))
    if np.issubdtype(spec.dtype, np.integer):
        return ("integers", 0, 10)
    if spec.dtype == np.bool_:
        return ("bool",)
    raise LSTMBenchError(f"input {spec.name!r} has dtype {spec.dtype}; lstm-bench makes "
                         "random float, integer and bool inputs only (use --inputs FILE.npz)")


def _rule_text(rule: tuple, ragged: bool, padding: str | None) -> str:
    kind = rule[0]
    if kind == "lengths":
        return ("random lengths in 1..seq_len, at least one full" if ragged
                else "seq_len for every sequence")
    if kind == "uniform":
        return f"uniform in [{rule[1]:g}, {rule[2]:g})"
    if kind == "bool":
        return "True or False, each with probability 0.5"
    text = f"{'token ids' if kind == 'tokens' else 'integers'} uniform in {rule[1]}..{rule[2] - 1}"
    return text + (f", {padding}-padded to random lengths" if padding else "")


def make_inputs(model, *, batch: int | None = None, seq_len: int | None = None, seed: int = 0,
                value_range: tuple[float, float] = (-1.0, 1.0), ragged: bool = False,
                zero_length: bool = False, padding: str | None = None) -> Inputs:
    """Seeded random feeds for every graph input of ``model``.

    ``batch`` None: the model's own where it fixes one (``fixed_batch``), else 1; another
    than the one it fixes is refused. Floats are uniform in ``value_range``; sequence_lens is seq_len for every sequence, or with
    ``ragged`` random lengths in 1..seq_len with at least one full sequence (and one of length 0
    with ``zero_length``). Token inputs (see ``token_vocab``) are uniform over the embedding's
    rows; other integer inputs uniform in 0..9. With ``ragged`` and a model whose inputs are
    padded (metadata, or ``padding`` "pre" / "post" for its token inputs), each sequence gets a
    random length and the rest is the pad value, on that side.
    """
    low, high = map(float, value_range)
    if not low < high:
        raise LSTMBenchError(f"value range must have low < high, got {value_range!r}")
    specs, batch, seq_len, fixed_T = _resolve(model, batch, seq_len)
    shapes = {s.name: (_shape(s, batch, seq_len), s.dtype) for s in specs}
    if padding is not None and padding not in PADDINGS:
        raise LSTMBenchError(f"padding must be one of {PADDINGS}, got {padding!r}")
    vocab = token_vocab(model)
    side, pad_value, padded = _padding_metadata(model)
    if padding is not None:
        side, padded = padding, padded or set(vocab)
    roles = {role for spec in specs for role in spec.roles}
    first_shape = next((shape for shape, _ in shapes.values() if len(shape) >= 2), None)
    rng = np.random.default_rng(seed)
    feeds, lengths, drawn = {}, {}, {}
    for spec in specs:
        shape = shapes[spec.name][0]
        check_array_size(shape, spec.dtype, f"input {spec.name!r}")  # before allocating
        pads = ragged and side is not None and spec.name in padded and len(shape) >= 2
        rule = _rule(spec, vocab, low, high, pads, pad_value)
        drawn[spec.name] = _rule_text(rule, ragged, side if pads else None) + (
            ", one of length 0" if ragged and zero_length and (pads or rule[0] == "lengths")
            else "")
        if rule[0] == "lengths":
            n = shape[0]
            values = (_ragged_lengths(rng, n, seq_len, zero_length) if ragged
                      else np.full(n, seq_len))
            feeds[spec.name] = values.astype(spec.dtype)
            lengths[spec.name] = feeds[spec.name].tolist()
        elif rule[0] == "uniform":
            feeds[spec.name] = rng.uniform(low, high, size=shape).astype(spec.dtype)
        elif rule[0] in ("tokens", "integers"):
            feeds[spec.name] = rng.integers(rule[1], rule[2], size=shape).astype(spec.dtype)
        else:  # bool: a 0-d array, not np.bool
            feeds[spec.name] = np.asarray(rng.random(size=shape) < 0.5)
        if pads:
            # sequences on axis 0, time on axis 1 (Keras and batch_first token inputs)
            steps = shape[1]
            n = _ragged_lengths(rng, shape[0], steps, zero_length)
            t = np.arange(steps)
            keep = t[None, :] >= (steps - n)[:, None] if side == "pre" else t[None, :] < n[:, None]
            keep = keep.reshape(keep.shape + (1,) * (len(shape) - 2))
            feeds[spec.name] = np.where(keep, feeds[spec.name],
                                        np.asarray(pad_value, spec.dtype)).astype(spec.dtype)
            lengths[spec.name] = n.tolist()
    if ragged and not lengths:
        raise LSTMBenchError("--ragged needs a model with a sequence_lens input or padded "
                             "(masked) inputs; this model has neither (a token model: "
                             "make_inputs(padding='pre'|'post'), or give --inputs FILE.npz)")
    if "batch" not in roles and first_shape is not None and not fixed_T:
        # the batch fixed (checked by _resolve): report the seq_len fed, not the one asked
        seq_len = first_shape[1]
    return Inputs(feeds, int(batch), int(seq_len), "random", seed, (low, high), lengths,
                  vocab={k: v for k, v in vocab.items() if k in feeds},
                  padding=side if ragged and lengths and side else None,
                  fixed=fixed_inputs(model), distribution=drawn)


def describe_random(model, shapes, *, seed: int = 0,
                    value_range: tuple[float, float] = (-1.0, 1.0)) -> dict:
    """What ``make_inputs`` feeds (not ragged) at each (batch, seq_len) of ``shapes``, found
    without making the feeds: a bench report's record of its random inputs, with the keys of
    ``Inputs.describe`` and the shapes and dtypes of every input under ``per_shape``."""
    low, high = map(float, value_range)
    vocab = token_vocab(model)
    specs = input_specs(model)
    per_shape = []
    for batch, seq_len in shapes:
        fed = feed_shapes(model, batch=batch, seq_len=seq_len)
        per_shape.append({"batch": batch, "seq_len": seq_len,
                          "shapes": {k: list(shape) for k, (shape, _) in fed.items()},
                          "dtypes": {k: np.dtype(dtype).name for k, (_, dtype) in fed.items()}})
    return {"source": "random", "generator": GENERATOR, "seed": seed,
            "value_range": (low, high),
            "distribution": {s.name: _rule_text(_rule(s, vocab, low, high, False, 0.0), False,
                                                None) for s in specs},
            "vocab": {k: v for k, v in vocab.items() if k in {s.name for s in specs}},
            "ragged": False, "padding": None, "fixed_inputs": fixed_inputs(model),
            "per_shape": per_shape}


def _fixed_seq_len(model, specs) -> int | None:
    """T where an LSTM's X input fixes it (a model exported for one sequence length)."""
    lstm_roles, _ = _lstm_roles(model)
    for spec in specs:
        for axis, role in enumerate(lstm_roles.get(spec.name, ())):
            if role == "seq_len" and spec.dims[axis] is not None:
                return spec.dims[axis]
    for spec in specs:  # an exported wrapper [batch, T, features] with T fixed
        if (spec.name not in lstm_roles and len(spec.dims) == 3 and spec.roles[0] == "batch"
                and spec.dims[1] is not None):
            return spec.dims[1]
    return None


def load_inputs(path, model) -> Inputs:
    """Feeds from an .npz (never unpickled), checked against the model's inputs.

    Names must match exactly; each array must have the input's dtype and rank, its fixed dims,
    and one size per symbolic dim across inputs. Every mismatch is listed in one error.
    """
    from pathlib import Path

    from lstm_bench.files import load_npz

    path = Path(path)
    arrays = load_npz(path, "input arrays")
    specs = input_specs(model)
    problems = []
    wanted = {s.name for s in specs}
    missing, unknown = sorted(wanted - set(arrays)), sorted(set(arrays) - wanted)
    if missing:
        problems.append(f"missing {missing}")
    if unknown:
        problems.append(f"unknown {unknown}")
    sizes: dict[str, tuple[int, str]] = {}
    for spec in specs:
        if spec.name not in arrays:
            continue
        array = arrays[spec.name]
        if array.dtype != spec.dtype:
            problems.append(f"{spec.name!r} has dtype {array.dtype}, the model wants {spec.dtype}")
        if array.ndim != len(spec.dims):
            problems.append(f"{spec.name!r} has rank {array.ndim} (shape {list(array.shape)}), "
                            f"the model wants rank {len(spec.dims)}")
            continue
        for axis, (size, dim, role, param) in enumerate(
                zip(array.shape, spec.dims, spec.roles, spec.dim_params)):
            if dim is not None and size != dim:
                problems.append(f"{spec.name!r} axis {axis} is {size}, the model fixes it at {dim}")
            elif dim is None:
                key = role or param
                if size == 0 and not spec.is_lengths:
                    problems.append(f"{spec.name!r} axis {axis} ({key}) is empty: an empty "
                                    "input verifies nothing")
                if key in sizes and sizes[key][0] != size:
                    problems.append(f"{spec.name!r} axis {axis} ({key}) is {size} but "
                                    f"{sizes[key][1]} has {sizes[key][0]}")
                sizes.setdefault(key, (size, f"{spec.name!r}"))
        if spec.is_lengths and array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
            seq = sizes.get("seq_len", (None,))[0]
            if np.any(array < 0) or (seq is not None and np.any(array > seq)):
                problems.append(f"{spec.name!r} holds lengths {array.tolist()}, expected 0..{seq}")
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            problems.append(f"{spec.name!r} holds NaN or inf")
    if problems:
        raise LSTMBenchError(f"{path}: inputs do not match the model: " + "; ".join(problems))
    # a model with fixed dims: batch and time are the first two axes of its first sequence input
    first = next((arrays[s.name].shape for s in specs if arrays[s.name].ndim >= 2), (1, None))
    batch = sizes.get("batch", (first[0],))[0]
    seq_len = sizes.get("seq_len", (_fixed_seq_len(model, specs) or first[1],))[0]
    lengths = {s.name: arrays[s.name].tolist() for s in specs if s.is_lengths}
    vocab = token_vocab(model)
    for name, rows in vocab.items():  # an index past the table is an error in most runtimes
        if name in arrays and arrays[name].size and (arrays[name].min() < -rows
                                                    or arrays[name].max() >= rows):
            raise LSTMBenchError(f"{path}: {name!r} holds token ids "
                                 f"{int(arrays[name].min())}..{int(arrays[name].max())}, but its "
                                 f"embedding has {rows} rows (ids 0..{rows - 1})")
    return Inputs({s.name: arrays[s.name] for s in specs}, int(batch),
                  None if seq_len is None else int(seq_len), str(path), lengths=lengths,
                  vocab=vocab, fixed=fixed_inputs(model), sha256=_sha256(path))


def check_given(fed: Inputs, *, batch=None, seq_len=None) -> None:
    """Refuse an explicit --batch or --seq-len (an int or a list; None: not given) that differs
    from the shape of the --inputs file ``fed``: the file's shape is what runs, so a silently
    replaced option would time or judge another shape than the one asked for."""
    from pathlib import Path

    name = Path(fed.source).name
    for option, given, size, what in (("--batch", batch, fed.batch, "batch"),
                                      ("--seq-len", seq_len, fed.seq_len, "seq_len")):
        if given is None:
            continue
        values = [given] if isinstance(given, int) else list(given)
        if values != [size]:
            raise LSTMBenchError(f"{option} {','.join(map(str, values))} conflicts with {name} "
                                 f"({what} {size}): leave {option} out with --inputs")


def _sha256(path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
