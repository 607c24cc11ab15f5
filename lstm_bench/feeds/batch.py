"""The batch and sequence length fed to a model, checked against what the model fixes, and the
shapes of its feeds at that batch and length."""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.axes import InputSpec, fixed_inputs, fixed_seq_len, input_specs, lstm_roles
from lstm_bench.files import check_array_size

DEFAULT_SEQ_LEN = 100  # the seed model's sequence length


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
    by_lstm, _ = lstm_roles(model)
    candidates = [(spec, axis) for spec in specs
                  for axis, role in enumerate(by_lstm.get(spec.name, ())) if role == "batch"]
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


def resolve(model, batch, seq_len):
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
    fixed_T = fixed_seq_len(model, specs)
    if seq_len is None:
        seq_len = fixed_T or DEFAULT_SEQ_LEN
    elif fixed_T and seq_len != fixed_T:
        raise LSTMBenchError(f"the model fixes the sequence length at {fixed_T}; "
                             f"--seq-len {seq_len} cannot be fed (leave it out)")
    return specs, int(batch), seq_len, fixed_T


def fed_seq_len(model, seq_len: int | None = None) -> int:
    """The seq_len ``make_inputs`` feeds when asked for ``seq_len`` (None: the model's own)."""
    return resolve(model, None, seq_len)[2]


def shape_of(spec: InputSpec, batch: int, seq_len: int) -> tuple[int, ...]:
    """The shape of ``spec``'s feed at this batch and seq_len."""
    return tuple(dim if dim is not None else (batch if role == "batch" else seq_len)
                 for dim, role in zip(spec.dims, spec.roles))


def feed_shapes(model, *, batch: int | None = None,
                seq_len: int | None = None) -> dict[str, tuple]:
    """Input name -> (shape, dtype) of the feeds ``make_inputs`` makes at this batch and
    seq_len, found without making them (each checked against LSTM_BENCH_MAX_ARRAY_MB)."""
    specs, batch, seq_len, _ = resolve(model, batch, seq_len)
    shapes = {}
    for spec in specs:
        shapes[spec.name] = (shape_of(spec, batch, seq_len), spec.dtype)
        check_array_size(shapes[spec.name][0], spec.dtype, f"input {spec.name!r}")
    return shapes
