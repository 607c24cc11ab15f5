"""The model under test, parsed once: one frozen object that verify, bench, the runtimes and the
CLI share instead of each re-reading the file.

``reference.model.as_model(path)`` reads the ONNX file once, through ``load_model`` and its
checks on untrusted files; what is derived from it (sha256, LSTM nodes, summary) is computed on
first use and kept. Only core things live here: the runtimes compute their feeds from
``model.proto`` (``runtimes.inputs``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:  # onnx is imported where a model is read, not with this module
    import onnx


@dataclass(frozen=True, eq=False)
class Model:
    """An ONNX model file and its parsed proto; derived facts computed once, on first use.

    ``str(model)`` and ``os.fspath(model)`` give the path, so code that wants a path (a
    third-party loader) can take the object as it is.
    """

    path: Path
    proto: onnx.ModelProto

    def __str__(self):
        return str(self.path)

    def __fspath__(self):
        return str(self.path)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @cached_property
    def lstm_nodes(self) -> tuple:
        """``lstm_bench.graph.LSTMNode`` for every LSTM node, in graph order."""
        from lstm_bench.graph import lstm_nodes

        return tuple(lstm_nodes(self.proto))

    @cached_property
    def summary(self) -> dict:
        from lstm_bench.graph import summary

        return summary(self.proto)

    def flops(self, batch: int, seq_len: int) -> int:
        """Multiply-add FLOPs of the LSTM layers for one call (see ``graph.lstm_flops``)."""
        from lstm_bench.graph import lstm_flops

        return lstm_flops(self.proto, batch, seq_len)
