"""Seeded random feeds for every graph input of a model.

Floats are uniform in a value range, token inputs (``tokens.token_vocab``) uniform over their
embedding's rows, other integers uniform in 0..9. Ragged inputs get random lengths: an LSTM's
sequence_lens directly, padded token (or masked float) inputs through their padding, whose
real tokens are then drawn from ``1..vocab-1`` so that no real step looks like padding. What
was fed (vocab, padding side, lengths) is kept in ``Inputs`` for the report.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.axes import InputSpec, fixed_inputs, input_specs
from lstm_bench.feeds.batch import feed_shapes, resolve
from lstm_bench.feeds.branches import check_branch_inputs
from lstm_bench.feeds.inputs import GENERATOR, Given, Inputs
from lstm_bench.feeds.tokens import PADDINGS, padding_metadata, token_vocab
from lstm_bench.files import check_array_size


def _ragged_lengths(rng, n: int, seq_len: int, zero_length: bool) -> np.ndarray:
    if n < 2:
        raise LSTMBenchError("ragged lengths need a batch of at least 2 (one full "
                             "sequence and one shorter); use --batch 2 or more")
    values = rng.integers(1, seq_len + 1, size=n)
    values[rng.integers(n)] = seq_len
    if zero_length:
        values[(np.flatnonzero(values == seq_len)[0] + 1) % n] = 0
    return values


def _rule(spec: InputSpec, vocab: dict, given: Given, pads: bool, pad_value: float,
          value_range: tuple) -> tuple:
    """How an input's values are drawn: one decision, read by ``make_inputs`` to draw them and
    by ``_rule_text`` to say so in the report."""
    low, high = value_range
    if spec.name in given.values:
        return ("given", given.values[spec.name])
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


def _check_values(specs, values: dict) -> None:
    """``--value`` names inputs the model takes, with values their dtype holds."""
    by_name = {spec.name: spec for spec in specs}
    for name, value in values.items():
        if name not in by_name:
            raise LSTMBenchError(f"--value names {name!r}, which the model does not take as an "
                                 f"input; its inputs: {sorted(by_name)}")
        dtype = by_name[name].dtype
        if not np.isfinite(value) or (np.issubdtype(dtype, np.integer) and (
                value != int(value) or not np.iinfo(dtype).min <= value <= np.iinfo(dtype).max)):
            raise LSTMBenchError(f"--value {name}={value:g}: input {name!r} holds {dtype} "
                                 "values; give one of those")


def _rule_text(rule: tuple, ragged: bool, padding: str | None) -> str:
    kind = rule[0]
    if kind == "given":
        return f"{rule[1]:g}, given with --value"
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
                zero_length: bool = False, given: Given | None = None) -> Inputs:
    """Seeded random feeds for every graph input of ``model``.

    ``batch`` None: the model's own where it fixes one (``fixed_batch``), else 1; another
    than the one it fixes is refused. ``seq_len``: the steps the LSTM sees (the input length
    that gives them is found from the graph, ``axes``). ``given``: shapes and values the user
    fixed (``Given``). Floats are uniform in ``value_range``; sequence_lens is
    seq_len for every sequence, or with ``ragged`` random lengths in 1..seq_len with at least
    one full sequence (and one of length 0 with ``zero_length``). Token inputs (see
    ``token_vocab``) are uniform over the embedding's rows; other integer inputs uniform in
    0..9. With ``ragged`` and a model whose inputs are padded (metadata, or ``given.padding`` "pre" /
    "post" for its token inputs), each sequence gets a random length and the rest is the pad
    value, on that side.
    """
    low, high = map(float, value_range)
    if not low < high:
        raise LSTMBenchError(f"value range must have low < high, got {value_range!r}")
    given = given or Given()
    padding = given.padding
    specs, batch, seq_len, fixed_T = resolve(model, batch, seq_len, given)
    _check_values(specs, given.values)
    check_branch_inputs(model, given.values)
    shapes = feed_shapes(model, batch=batch, seq_len=seq_len, given=given)
    if padding is not None and padding not in PADDINGS:
        raise LSTMBenchError(f"padding must be one of {PADDINGS}, got {padding!r}")
    vocab = token_vocab(model)
    side, pad_value, padded = padding_metadata(model)
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
        rule = _rule(spec, vocab, given, pads, pad_value, (low, high))
        drawn[spec.name] = _rule_text(rule, ragged, side if pads else None) + (
            ", one of length 0" if ragged and zero_length and (pads or rule[0] == "lengths")
            else "")
        if rule[0] == "given":
            feeds[spec.name] = np.full(shape, rule[1], dtype=spec.dtype)
        elif rule[0] == "lengths":
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
                             "make_inputs(given=Given(padding='pre'|'post')), or give --inputs FILE.npz)")
    if "batch" not in roles and "seq_len" not in roles and first_shape is not None and not fixed_T:
        # nothing dynamic and no steps the graph tells: report the second axis fed
        seq_len = first_shape[1]
    return Inputs(feeds, int(batch), int(seq_len), "random", seed, (low, high), lengths,
                  values={name: feeds[name].reshape(-1)[0].item() for name in given.values
                          if feeds[name].size}, given_shapes={k: list(v) for k, v in given.shapes.items()},
                  vocab={k: v for k, v in vocab.items() if k in feeds},
                  padding=side if ragged and lengths and side else None,
                  fixed=fixed_inputs(model), distribution=drawn)


def describe_random(model, shapes, *, seed: int = 0,
                    value_range: tuple[float, float] = (-1.0, 1.0),
                    given: Given | None = None) -> dict:
    """What ``make_inputs`` feeds (not ragged) at each (batch, seq_len) of ``shapes``, found
    without making the feeds: a bench report's record of its random inputs, with the keys of
    ``Inputs.describe`` and the shapes and dtypes of every input under ``per_shape``."""
    low, high = map(float, value_range)
    vocab = token_vocab(model)
    given = given or Given()
    specs = input_specs(model, given)
    check_branch_inputs(model, given.values)
    per_shape = []
    for batch, seq_len in shapes:
        fed = feed_shapes(model, batch=batch, seq_len=seq_len, given=given)
        per_shape.append({"batch": batch, "seq_len": seq_len,
                          "shapes": {k: list(shape) for k, (shape, _) in fed.items()},
                          "dtypes": {k: np.dtype(dtype).name for k, (_, dtype) in fed.items()}})
    return {"source": "random", "generator": GENERATOR, "seed": seed,
            "value_range": (low, high),
            "distribution": {s.name: _rule_text(_rule(s, vocab, given, False, 0.0, (low, high)), False,
                                                None) for s in specs},
            "vocab": {k: v for k, v in vocab.items() if k in {s.name for s in specs}},
            "ragged": False, "padding": None, "fixed_inputs": fixed_inputs(model),
            "per_shape": per_shape,
            **({"values": dict(given.values)} if given.values else {}),
            **({"given_shapes": {k: list(v) for k, v in given.shapes.items()}}
               if given.shapes else {})}
