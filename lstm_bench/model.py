"""The model under test, parsed once: one frozen object that verify, bench, the runtimes and the
CLI share instead of each re-reading the file.

``Model.load(path)`` reads the ONNX file once (with a clear error for a bad one); what is
derived from it (sha256, LSTM nodes, summary) is computed on first use and kept. Only core
things live here: the runtimes compute their feeds from ``model.proto`` (``runtimes.inputs``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_bench.errors import LSTMBenchError, first_line

if TYPE_CHECKING:  # onnx is imported where a model is read, not with this module
    import onnx


def load_proto(path):
    """A ModelProto read from ``path``, with a one-line error for a missing or unreadable file."""
    import onnx

    from lstm_bench.model_limits import check_limits

    path = Path(path)
    if not path.is_file():
        raise LSTMBenchError(f"{path}: {'a directory, not a' if path.is_dir() else 'no such'} model file")
    try:
        loaded = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ValidationError (external
        # data outside the model's folder)... for a bad file
        raise LSTMBenchError(f"{path}: not a readable ONNX model "
                             f"({first_line(exc, with_type=True)[:300]})") from None
    if not loaded.graph.output:  # an empty file parses as an empty ModelProto
        raise LSTMBenchError(f"{path}: not an ONNX model (no graph outputs)")
    check_limits(loaded, str(path))  # sizes, loops and names, before anything runs
    return loaded


@dataclass(frozen=True, eq=False)
class Model:
    """An ONNX model file and its parsed proto; derived facts computed once, on first use.

    ``str(model)`` and ``os.fspath(model)`` give the path, so code that wants a path (a
    third-party loader) can take the object as it is.
    """

    path: Path
    proto: onnx.ModelProto

    @classmethod
    def load(cls, path) -> Model:
        return cls(Path(path), load_proto(path))

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

    @cached_property
    def layer_sizes(self) -> tuple:
        """(input_size, hidden_size, directions) per LSTM node (``graph.layer_sizes``)."""
        from lstm_bench.graph import layer_sizes

        return tuple(layer_sizes(self.proto))

    def flops(self, batch: int, seq_len: int) -> int:
        """Multiply-add FLOPs of the LSTM layers for one call (see ``graph.flops_of``): the
        layers are read once, not at every shape of a sweep."""
        from lstm_bench.graph import flops_of

        return flops_of(self.layer_sizes, batch, seq_len)


def as_model(source) -> Model:
    """A ``Model`` from a Model (returned as it is) or a path (loaded)."""
    return source if isinstance(source, Model) else Model.load(source)
