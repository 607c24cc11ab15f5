"""The batch and sequence length fed to a model, checked against what the model fixes, and the
shapes of its feeds at that batch and length."""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.axes import axis_map, fixed_inputs, fixed_seq_len, input_specs, lstm_roles
from lstm_bench.feeds.inputs import Given
from lstm_bench.files import check_array_size

DEFAULT_SEQ_LEN = 100  # the seed model's sequence length


def fixed_batch(model, specs=None, given: Given | None = None) -> tuple[str, int] | None:
    """(what fixes it, the batch) where the model takes one batch size only; None where an
    input has a dynamic batch axis. What fixes it: "input 'x' has a fixed batch of 4", or, for
    a model with no batch axis at all, "the model has no dynamic batch axis (...)" (batch 1).

    The batch axis of an input that feeds an LSTM node directly is the operator's (X
    ``[T,B,I]``, or ``[B,T,I]`` with layout 1); otherwise the first axis of the first input of
    rank 2 or more (the batch-major convention, as in ``input_specs``)."""
    specs = input_specs(model, given) if specs is None else specs
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


def fit_batches(model, batches, default, *, where: str = "",
                given: Given | None = None) -> tuple[list[int], str | None]:
    """The batch sizes to feed ``model``: (sizes, a note or None).

    ``batches``: the sizes the user asked for (``--batch``), or None for ``default``. A model
    that takes one batch only (``fixed_batch``) refuses asked sizes it cannot take (a row
    labelled with a batch it never ran is worse than no row); default sizes are replaced by
    the model's own, and the note says so. ``where``: the model's name, before the messages.
    """
    wanted = list(default if batches is None else batches)
    fixed = fixed_batch(model, given=given)
    if fixed is None or wanted == [fixed[1]]:
        return wanted, None
    what, size = fixed
    prefix = f"{where}: " if where else ""
    listed = ",".join(map(str, wanted))
    if batches is not None:
        raise LSTMBenchError(f"{prefix}{what}; --batch {listed} cannot be fed "
                             f"(use --batch {size})")
    return [size], f"{prefix}{what}: measured at batch {size}, not the default {listed}"


def resolve(model, batch, seq_len, given: Given | None = None):
    """(input specs, the batch fed, the seq_len fed, the one the model fixes or None), the
    asked batch (None: the model's own where it fixes one, else 1) and seq_len (the steps the
    LSTM sees) checked against the model; ``given``: what the user fixed (``Given``)."""
    if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 1):
        raise LSTMBenchError(f"batch must be a positive integer, got {batch!r}")
    if seq_len is not None and (not isinstance(seq_len, (int, np.integer)) or seq_len < 1):
        raise LSTMBenchError(f"seq_len must be a positive integer, got {seq_len!r}")
    specs = input_specs(model, given)
    fixed = fixed_batch(model, specs)
    if batch is None:
        batch = fixed[1] if fixed else 1
    elif fixed and batch != fixed[1]:
        # issue 9 and review item 1: never feed another batch than the one asked and recorded
        raise LSTMBenchError(f"{fixed[0]}; --batch {batch} cannot be fed "
                             f"(use --batch {fixed[1]})")
    # A sequence axis fixed by the model (the seed: T = 100) is the seq_len unless one is given.
    fixed_T = fixed_seq_len(model, specs, given)
    if seq_len is None:
        seq_len = fixed_T or DEFAULT_SEQ_LEN
    elif fixed_T and seq_len != fixed_T:
        raise LSTMBenchError(f"the model{' at the --shape given' if given and given.shapes else ''} fixes "
                             f"the sequence length at {fixed_T} (the steps its LSTM sees); "
                             f"--seq-len {seq_len} cannot be fed (leave it out)")
    return specs, int(batch), seq_len, fixed_T


def fed_seq_len(model, seq_len: int | None = None, given: Given | None = None) -> int:
    """The seq_len ``make_inputs`` feeds when asked for ``seq_len`` (None: the model's own)."""
    return resolve(model, None, seq_len, given)[2]


def feed_shapes(model, *, batch: int | None = None, seq_len: int | None = None,
                given: Given | None = None) -> dict[str, tuple]:
    """Input name -> (shape, dtype) of the feeds ``make_inputs`` makes at this batch and
    seq_len (the steps the LSTM sees), found without making them (each checked against
    LSTM_BENCH_MAX_ARRAY_MB). ``given``: what the user fixed (``--shape``, ``--value``)."""
    specs, batch, seq_len, _ = resolve(model, batch, seq_len, given)
    found = axis_map(model, given)
    sizes = found.shapes_at(found.sizes(batch, seq_len))
    fed = {}
    for spec in specs:
        fed[spec.name] = (sizes[spec.name], spec.dtype)
        check_array_size(sizes[spec.name], spec.dtype, f"input {spec.name!r}")
    return fed
