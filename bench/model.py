"""The model under test as the benchmark sees it: its LSTM layers, FLOPs and input feeds.

A view of the one parsed ``lstm_bench.model.Model`` that verify and the runtimes share.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError


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

    def check_shapes(self, shapes) -> None:
        """Every (batch, seq_len) of a sweep feedable and within the size limits, checked
        without allocating, so that a bad shape fails before any runtime starts."""
        from lstm_bench.runtimes.inputs import feed_shapes

        for batch, seq_len in shapes:
            feed_shapes(self.model.proto, batch=batch, seq_len=seq_len)

    def feeds(self, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs at this shape, from the generator verify uses too."""
        from lstm_bench.runtimes.inputs import make_inputs

        return make_inputs(self.model.proto, batch=batch, seq_len=seq_len, seed=seed).feeds
