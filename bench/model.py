"""The model under test as the benchmark sees it: its LSTM layers, FLOPs and input feeds.

A view of the one parsed ``lstm_bench.model.Model`` that verify and the runtimes share.
"""

from __future__ import annotations

import math

import numpy as np

from lstm_bench.errors import LSTMBenchError

# What one runtime keeps of an LSTM's outputs, per value of Y (float32), for every shape it ran:
# onnxruntime's CPU arena keeps Y and the gate buffer (four values per value of Y: the input
# projection of every step) of each shape. Measured here on an LSTM(2 -> 64), T = 100, batches
# 1000, 2000, 4000, 8000 run in turn by one session: the process grew by 4.3 x the bytes of Y
# summed over the shapes (3.5 x in the reverse order). Torch and NumPy free theirs between
# calls: for them this is an upper estimate.
HELD_PER_Y = 5


def output_bytes(layer_sizes, batch: int, seq_len: int) -> int:
    """Bytes one runtime holds for the LSTM layers' outputs (Y, Y_h, Y_c; see HELD_PER_Y)
    after a call at this shape; ``layer_sizes``: (input_size, hidden_size, directions)."""
    return 4 * sum(D * batch * H * (HELD_PER_Y * seq_len + 2) for _, H, D in layer_sizes)


class BenchModel:
    """An ONNX model with at least one LSTM node, its FLOPs and feeds at any (batch, seq_len)."""

    def __init__(self, source):
        """``source``: a path or a ``lstm_bench.model.Model``."""
        from lstm_bench.graph import no_lstm_reason
        from lstm_bench.model import as_model

        self.model = as_model(source)
        # an LSTM node is enough: its weights may be known only at run time (FLOPs come from
        # W's shape then), and onnxruntime runs it all the same
        reason = no_lstm_reason(self.model.proto)
        if reason:
            raise LSTMBenchError(f"{self.model.path}: {reason}")

    @property
    def path(self):
        return self.model.path

    @property
    def proto(self):
        return self.model.proto

    @property
    def nodes(self):
        return self.model.lstm_nodes

    @property
    def summary(self) -> dict:
        return self.model.summary

    def info(self) -> dict:
        return {"path": str(self.model.path), "sha256": self.model.sha256, **self.model.summary}

    def flops(self, batch: int, seq_len: int) -> int:
        return self.model.flops(batch, seq_len)

    def feed_bytes(self, batch: int, seq_len: int | None) -> int:
        """Bytes of the feeds ``feeds`` makes at this shape, found without making them."""
        from lstm_bench.feeds import feed_shapes

        return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in
                   feed_shapes(self.model.proto, batch=batch, seq_len=seq_len).values())

    def output_bytes(self, batch: int, seq_len: int | None) -> int:
        """Bytes one runtime holds for this model's LSTM outputs at this shape (an estimate,
        see ``HELD_PER_Y``)."""
        from lstm_bench.feeds import fed_seq_len

        return output_bytes(self.model.layer_sizes, batch, fed_seq_len(self.model.proto, seq_len))

    def check_shapes(self, shapes) -> None:
        """Every (batch, seq_len) of a sweep feedable (``feed_shapes``: the model's fixed
        sequence length, each array within LSTM_BENCH_MAX_ARRAY_MB), checked without
        allocating and before any runtime library loads: a bad shape is refused up front."""
        for batch, seq_len in shapes:
            self.feed_bytes(batch, seq_len)

    def feeds(self, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs at this shape, from the generator verify uses too."""
        from lstm_bench.feeds import make_inputs

        return make_inputs(self.model.proto, batch=batch, seq_len=seq_len, seed=seed).feeds
