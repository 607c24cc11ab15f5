"""Feeds a user gives in an .npz (never unpickled), checked against the model's inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.axes import axis_map, fixed_inputs, fixed_seq_len, input_specs
from lstm_bench.feeds.branches import branch_inputs
from lstm_bench.feeds.inputs import Given, Inputs
from lstm_bench.feeds.tokens import token_vocab
from lstm_bench.files import load_npz


def load_inputs(path, model) -> Inputs:
    """Feeds from an .npz (never unpickled), checked against the model's inputs.

    Names must match exactly; each array must have the input's dtype and rank, its fixed dims,
    and one size per symbolic dim across inputs (a seq2seq model's source and target lengths
    are two dims). Every mismatch is listed in one error. The seq_len recorded is the steps
    the model's first LSTM sees at these shapes, where the graph tells.
    """
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
                key = spec.symbols[axis]
                if size == 0 and not spec.is_lengths:
                    problems.append(f"{spec.name!r} axis {axis} ({role or key}) is empty: an "
                                    "empty input verifies nothing")
                if key in sizes and sizes[key][0] != size:
                    problems.append(f"{spec.name!r} axis {axis} ({key}) is {size} but "
                                    f"{sizes[key][1]} has {sizes[key][0]}")
                sizes.setdefault(key, (size, f"{spec.name!r}"))
        if spec.is_lengths and array.ndim == 1 and np.issubdtype(array.dtype, np.integer):
            seq = _steps_of_x(model, specs, arrays)
            if np.any(array < 0) or (seq is not None and np.any(array > seq)):
                problems.append(f"{spec.name!r} holds lengths {array.tolist()}, expected 0..{seq}")
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            problems.append(f"{spec.name!r} holds NaN or inf")
    if problems:
        raise LSTMBenchError(f"{path}: inputs do not match the model: " + "; ".join(problems))
    # a model with fixed dims: batch and time are the first two axes of its first sequence input
    first = next((arrays[s.name].shape for s in specs if arrays[s.name].ndim >= 2), (1, None))
    batch = next((arrays[s.name].shape[a] for s in specs for a, role in enumerate(s.roles)
                  if role == "batch"), first[0])
    chosen = Given(values={name: arrays[name].reshape(-1)[0].item() for name in branch_inputs(model)
                           if name in arrays and arrays[name].size == 1})
    seq_len = (axis_map(model, chosen).lstm_steps({s.name: arrays[s.name].shape for s in specs})
               or next((arrays[s.name].shape[a] for s in specs for a, role in enumerate(s.roles)
                        if role == "seq_len"), None)
               or fixed_seq_len(model, specs) or first[1])
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
    name = Path(fed.source).name
    for option, given, size, what in (("--batch", batch, fed.batch, "batch"),
                                      ("--seq-len", seq_len, fed.seq_len, "seq_len")):
        if given is None:
            continue
        values = [given] if isinstance(given, int) else list(given)
        if values != [size]:
            raise LSTMBenchError(f"{option} {','.join(map(str, values))} conflicts with {name} "
                                 f"({what} {size}): leave {option} out with --inputs")


def _steps_of_x(model, specs, arrays) -> int | None:
    """The steps of the LSTM whose sequence_lens is being checked: its X's sequence axis."""
    for spec in specs:
        for axis, role in enumerate(spec.roles):
            if role == "seq_len" and spec.name in arrays and arrays[spec.name].ndim > axis:
                return arrays[spec.name].shape[axis]
    return None


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
