"""What a model is fed: the feeds and how they were chosen, kept in the report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GENERATOR = "numpy.random.default_rng (PCG64)"  # named in the report: what the seed seeds


@dataclass(frozen=True)
class Given:
    """What the user fixed of the feeds, where the graph cannot tell: whole input shapes
    (``--shape NAME=DIMS``), input values (``--value NAME=V``: a scalar or a config input,
    filled with V), the side token inputs are padded on (``make_inputs`` with ragged), and
    the inputs a stream feeds each call's outputs back into (``--state IN=OUT``)."""

    shapes: dict = field(default_factory=dict)  # input name -> tuple of sizes
    values: dict = field(default_factory=dict)  # input name -> a number
    padding: str | None = None  # "pre" / "post"; None: the model's metadata decides
    states: tuple = ()  # (input, output) pairs: the state leaves by output, re-enters by input

    def as_dict(self) -> dict:
        return {"shapes": {k: list(v) for k, v in self.shapes.items()},
                "values": dict(self.values), "padding": self.padding,
                "states": [list(pair) for pair in self.states]}

    @classmethod
    def from_dict(cls, data: dict) -> Given:
        return cls({k: tuple(v) for k, v in data["shapes"].items()}, dict(data["values"]),
                   data["padding"], tuple(tuple(pair) for pair in data.get("states", ())))


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
    values: dict = field(default_factory=dict)  # inputs filled with a --value
    given_shapes: dict = field(default_factory=dict)  # inputs whose shape --shape gave

    def describe(self) -> dict:
        random = self.source == "random"
        return {"source": self.source, "batch": self.batch, "seq_len": self.seq_len,
                "fixed_inputs": self.fixed,
                **({"generator": GENERATOR, "distribution": self.distribution} if random
                   else {"sha256": self.sha256}),
                "seed": self.seed, "value_range": self.value_range, "lengths": self.lengths,
                "vocab": self.vocab, "padding": self.padding,
                **({"values": self.values} if self.values else {}),
                **({"given_shapes": self.given_shapes} if self.given_shapes else {}),
                "shapes": {k: list(v.shape) for k, v in self.feeds.items()},
                "dtypes": {k: v.dtype.name for k, v in self.feeds.items()}}
