"""What a model is fed: the feeds and how they were chosen, kept in the report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GENERATOR = "numpy.random.default_rng (PCG64)"  # named in the report: what the seed seeds


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
