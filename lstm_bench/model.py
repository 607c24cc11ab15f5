"""The model under test, parsed once: one frozen object that verify, bench, the runtimes and the
CLI share instead of each re-reading the file.

``Model.load(path)`` reads the ONNX file once (with a clear error for a bad one); what is
derived from it (sha256, LSTM nodes, summary, layer sizes) is computed on first use and kept.
It also answers what a benchmark asks of a model at a (batch, seq_len): FLOPs, the bytes of its
feeds and outputs, and seeded random feeds (``lstm_bench.feeds``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstm_bench import graph
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.feeds import Given, fed_seq_len, feed_shapes, make_inputs

if TYPE_CHECKING:  # onnx (about 1 s to import cold) is loaded where a model is read
    import onnx

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


def load_proto(path):
    """A ModelProto read from ``path``, with a one-line error for a missing or unreadable file,
    an invalid model (``lstm_bench.model_check``) or one above the size limits
    (``lstm_bench.model_limits``): all checked before its external data is read."""
    import onnx

    from lstm_bench.model_check import check_model  # they import onnx
    from lstm_bench.model_limits import check_limits

    path = Path(path)
    if not path.is_file():
        raise LSTMBenchError(f"{path}: {'a directory, not a' if path.is_dir() else 'no such'} model file")
    try:
        loaded = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError... for a bad file
        raise LSTMBenchError(_unreadable(path, exc)) from None
    if not loaded.graph.output:  # an empty file parses as an empty ModelProto
        raise LSTMBenchError(_source_hint(path) or f"{path}: not an ONNX model (no graph outputs)")
    check_limits(loaded, str(path), path.parent)  # sizes, loops and names
    check_model(loaded, str(path))  # valid ONNX
    try:  # onnx refuses data outside the model's folder, through a symlink, not a plain file
        onnx.external_data_helper.load_external_data_for_model(loaded, str(path.parent))
    except Exception as exc:
        raise LSTMBenchError(_unreadable(path, exc)) from None
    return loaded


# What a model's source looks like from its first bytes: no ONNX file starts so (protobuf field
# 10 of a ModelProto does not exist; HDF5 has its own signature)
SOURCES = {b"PK\x03\x04": "a zip archive (a torch.export .pt2, a .keras archive, a torch "
                            "checkpoint or an .npz)",
           b"\x89HDF": "an HDF5 file (a Keras .h5: save it as .keras with model.save)"}


def _source_hint(path) -> str | None:
    """The error for a model's source given where its ONNX export belongs; None otherwise."""
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError:
        return None
    if start in SOURCES:
        return (f"{path}: not an ONNX model but {SOURCES[start]}; export it first: "
                f"lstm-bench export {path} -o MODEL.onnx")
    return None


def _unreadable(path, exc) -> str:
    return _source_hint(path) or (f"{path}: not a readable ONNX model "
                                  f"({first_line(exc, with_type=True)[:300]})")


@dataclass(frozen=True, eq=False)
class Model:
    """An ONNX model file and its parsed proto; derived facts computed once, on first use.

    ``str(model)`` and ``os.fspath(model)`` give the path, so code that wants a path (a
    third-party loader) can take the object as it is.
    """

    path: Path | None  # None: built in memory (verify's LSTM layer alone), no file
    proto: onnx.ModelProto
    # what the user fixed of its inputs (--shape, --value): every feed made for it follows
    given: Given = field(default_factory=Given)

    def with_given(self, given: Given) -> Model:
        """This model, fed with the shapes and values the user gave (``feeds.Given``)."""
        return replace(self, given=given)

    @classmethod
    def load(cls, path) -> Model:
        return cls(Path(path), load_proto(path))

    @classmethod
    def built(cls, proto: onnx.ModelProto) -> Model:
        """A model built in memory: runtimes load it from ``source``, no file is written."""
        return cls(None, proto)

    def __str__(self):
        return str(self.path) if self.path is not None else "the model built in memory"

    def __fspath__(self):
        if self.path is None:
            raise TypeError("a model built in memory has no path")
        return str(self.path)

    @property
    def source(self) -> str | bytes:
        """What a runtime's loader takes: the file's path (its external data lies beside it),
        or the serialized proto of a model built in memory."""
        return str(self.path) if self.path is not None else self.proto.SerializeToString()

    @cached_property
    def sha256(self) -> str:
        data = self.path.read_bytes() if self.path is not None else self.proto.SerializeToString()
        return hashlib.sha256(data).hexdigest()

    @cached_property
    def lstm_nodes(self) -> tuple:
        """``lstm_bench.graph.LSTMNode`` for every LSTM node, in graph order."""
        return tuple(graph.lstm_nodes(self.proto))

    @cached_property
    def summary(self) -> dict:
        return graph.summary(self.proto)

    @cached_property
    def layer_sizes(self) -> tuple:
        """(input_size, hidden_size, directions) per LSTM node (``graph.layer_sizes``)."""
        return tuple(graph.layer_sizes(self.proto))

    def info(self) -> dict:
        """What a report says of the model: its path, sha256 and summary."""
        return {"path": str(self.path), "sha256": self.sha256, **self.summary}

    def check_lstm(self) -> Model:
        """This model, when it has an LSTM node anywhere, or a recurrence in another form (an
        unrolled cell, a Loop/Scan, GRU/RNN nodes: judged and timed as a whole graph, see
        ``no_lstm_note``); else LSTMBenchError saying what it holds and how to export an LSTM
        node. A node is enough: its weights may be known only at run time (FLOPs come from W's
        shape then), and onnxruntime runs it all the same."""
        reason = graph.unmeasurable_reason(self.proto)
        if reason:
            raise LSTMBenchError(f"{self.path}: {reason}")
        return self

    @cached_property
    def no_lstm_note(self) -> str | None:
        """What reports say of a model with no LSTM node (``graph.no_lstm_note``), else None."""
        return graph.no_lstm_note(self.proto)

    @cached_property
    def flops_note(self) -> str | None:
        """Why a bench report has no FLOPs or % of peak for this model (None: it has them)."""
        if self.layer_sizes:
            return None
        what = graph.without_lstm(self.proto) or "LSTM nodes only inside If/Loop/Scan bodies"
        return (f"{what}: no FLOPs or % of peak (lstm-bench counts the multiply-adds of the "
                "main graph's LSTM nodes)")

    def flops(self, batch: int, seq_len: int) -> int | None:
        """Multiply-add FLOPs of the LSTM layers for one call (see ``graph.flops_of``): the
        layers are read once, not at every shape of a sweep. None where the main graph has no
        LSTM node: a recurrence in other ops (an unrolled cell) is not counted, and 0 FLOPs
        would read as 0 % of peak."""
        if not self.layer_sizes:
            return None
        return graph.flops_of(self.layer_sizes, batch, seq_len)

    @cached_property
    def skeleton(self):
        """The graph without its large tensors' data (``model_limits.graph_only``): what shape
        inference reads at every shape of a sweep."""
        from lstm_bench.model_limits import graph_only  # it imports onnx

        return graph_only(self.proto)

    def feed_bytes(self, batch: int, seq_len: int | None) -> int:
        """Bytes of the feeds ``feeds`` makes at this shape, found without making them; a shape
        the model cannot be fed is refused (``feeds.feed_shapes``), and so is one at which a
        value the feeds' shape decides exceeds LSTM_BENCH_MAX_ARRAY_MB
        (``model_limits.check_values_at``): bench sizes every shape before a runtime runs."""
        shapes = feed_shapes(self.proto, batch=batch, seq_len=seq_len, given=self.given)
        self.check_values_at({name: shape for name, (shape, _) in shapes.items()})
        return sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in
                   shapes.values())

    def check_values_at(self, shapes: dict) -> None:
        """Refuse feeds of these shapes (input name -> shape) when a value they decide would
        exceed LSTM_BENCH_MAX_ARRAY_MB (``model_limits.check_values_at``)."""
        from lstm_bench.model_limits import check_values_at  # it imports onnx

        check_values_at(self.skeleton, shapes, str(self))

    def output_bytes(self, batch: int, seq_len: int | None) -> int:
        """Bytes one runtime holds for this model's LSTM outputs at this shape (an estimate,
        see ``HELD_PER_Y``)."""
        return output_bytes(self.layer_sizes, batch,
                            fed_seq_len(self.proto, seq_len, self.given))

    def feeds(self, batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs at this shape, from the generator verify uses too."""
        return make_inputs(self.proto, batch=batch, seq_len=seq_len, seed=seed,
                           given=self.given).feeds


def as_model(source) -> Model:
    """A ``Model`` from a Model (returned as it is) or a path (loaded)."""
    return source if isinstance(source, Model) else Model.load(source)
