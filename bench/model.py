"""The model under test as the benchmark sees it: its LSTM layers, FLOPs and input feeds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError


class BenchModel:
    """An ONNX file with at least one LSTM node, its FLOPs and feeds at any (batch, seq_len)."""

    def __init__(self, path):
        from lstm_bench.graph import no_lstm_reason, summary
        from lstm_bench.reference.model import load_model

        self.path = Path(path)
        self.proto = load_model(self.path)
        reason = no_lstm_reason(self.proto)
        if reason:
            raise LSTMBenchError(f"{path}: {reason}")
        self.summary = summary(self.proto)

    def info(self) -> dict:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return {"path": str(self.path), "sha256": digest, **self.summary}

    def flops(self, batch: int, seq_len: int) -> int:
        from lstm_bench.graph import lstm_flops

        return lstm_flops(self.proto, batch, seq_len)

    def feeds(self, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs at this shape, from the generator verify uses too."""
        from lstm_bench.runtimes.inputs import make_inputs

        return make_inputs(self.proto, batch=batch, seq_len=seq_len, seed=seed).feeds
