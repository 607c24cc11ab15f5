"""Streaming parity: a sequence fed in chunks, carrying (h, c) between calls, equals one call.

This is how an LSTM is deployed on a stream (audio, sensor data): the model exposes
initial_h / initial_c as inputs and Y_h / Y_c as outputs, and each call starts from the state
the previous one ended in. A runtime that resets, truncates or mis-orders the state passes a
one-shot parity check and fails this one. Judged by the same tolerance table as parity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.graph import lstm_nodes
from lstm_bench.model import Model
from lstm_bench.tolerances import TOLERANCES, Failure, compare_output, known_fields


@dataclass(frozen=True)
class StreamPorts:
    """The graph names a stream needs, and the LSTM attributes that shape it."""

    X: str
    initial_h: str
    initial_c: str
    Y: str | None
    Y_h: str
    Y_c: str
    sequence_lens: str | None
    layout: int
    direction: str


def stream_ports(model) -> tuple[StreamPorts | None, str | None]:
    """(ports, None) when ``model`` (a ``lstm_bench.model.Model`` or a ModelProto) can be run in
    chunks, else (None, the reason)."""
    try:
        nodes = model.lstm_nodes if isinstance(model, Model) else lstm_nodes(model)
    except LSTMBenchError as exc:  # weights known only at run time: nothing to stream by
        return None, str(exc)
    model = model.proto if isinstance(model, Model) else model
    if len(nodes) != 1:
        return None, f"streaming needs exactly one LSTM node, the model has {len(nodes)}"
    node = nodes[0]
    graph_inputs = {v.name for v in model.graph.input} - {t.name for t in model.graph.initializer}
    graph_outputs = {v.name for v in model.graph.output}
    X, *_, lens, h0, c0, _ = node.inputs
    Y, Y_h, Y_c = node.outputs
    if not (X in graph_inputs and h0 in graph_inputs and c0 in graph_inputs):
        return None, "the model does not take X, initial_h and initial_c as graph inputs"
    if not (Y_h in graph_outputs and Y_c in graph_outputs):
        return None, "the model does not return Y_h and Y_c as graph outputs"
    if node.spec.direction == "bidirectional":
        return None, "a bidirectional LSTM needs the whole sequence; it cannot be streamed"
    return StreamPorts(X, h0, c0, Y if Y in graph_outputs else None, Y_h, Y_c,
                       lens if lens in graph_inputs else None, node.spec.layout,
                       node.spec.direction), None


@dataclass(frozen=True)
class StreamingParity:
    """Chunked run vs one full run of the same runtime."""

    runtime: str
    status: str  # "pass" | "fail" | "skip"
    chunks: list[int] = field(default_factory=list)
    max_abs: dict[str, float | None] = field(default_factory=dict)
    reason: str | None = None
    failures: tuple[Failure, ...] = ()

    def __bool__(self):
        return self.status != "fail"

    def to_dict(self):
        return {**asdict(self), "failures": [asdict(f) for f in self.failures]}

    @classmethod
    def from_dict(cls, data: dict) -> StreamingParity:
        known = known_fields(cls, data)
        return cls(**{**known, "failures": tuple(
            Failure.from_dict(f, known.get("runtime")) for f in known.get("failures") or ())})


def chunk_sizes(seq_len: int, chunks: int) -> list[int]:
    """seq_len split into ``chunks`` near-equal, unequal-where-possible parts (none empty)."""
    chunks = max(1, min(chunks, seq_len))
    base, extra = divmod(seq_len, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]


def streaming_parity(runtime, model, feeds: dict[str, np.ndarray], *, chunks: int = 3,
                     precision: str = "float32") -> StreamingParity:
    """Run the open ``runtime`` once on ``feeds`` and again in ``chunks`` pieces; compare."""
    label = runtime.name
    ports, reason = stream_ports(model)
    if ports is None:
        return StreamingParity(label, "skip", reason=reason)
    time_axis = 1 if ports.layout else 0
    X = feeds[ports.X]
    T = X.shape[time_axis]
    if ports.sequence_lens and np.any(np.asarray(feeds[ports.sequence_lens]) != T):
        return StreamingParity(label, "skip", reason="ragged sequence_lens: a chunk boundary "
                               "would cut sequences of different lengths differently")
    sizes = chunk_sizes(T, chunks)
    full = runtime.run(feeds)
    starts = np.cumsum([0] + sizes[:-1])
    order = list(range(len(sizes)))
    if ports.direction == "reverse":
        order.reverse()  # a reverse LSTM reads the sequence from its end
    h, c = feeds[ports.initial_h], feeds[ports.initial_c]
    pieces = {}
    for k in order:
        part = dict(feeds)
        part[ports.X] = np.take(X, range(starts[k], starts[k] + sizes[k]), axis=time_axis)
        if ports.sequence_lens:
            part[ports.sequence_lens] = np.full_like(feeds[ports.sequence_lens], sizes[k])
        part[ports.initial_h], part[ports.initial_c] = h, c
        out = runtime.run(part)
        h, c = out[ports.Y_h], out[ports.Y_c]
        if ports.Y:
            pieces[k] = out[ports.Y]
    chunked = {ports.Y_h: h, ports.Y_c: c}
    if ports.Y:
        chunked[ports.Y] = np.concatenate([pieces[k] for k in range(len(sizes))], axis=time_axis)
    tolerance = TOLERANCES.get(precision, TOLERANCES["float32"])
    max_abs, failures = {}, []
    for key, value in chunked.items():
        judged = compare_output(label, key, value, np.asarray(full[key], np.float64), tolerance,
                                precision)
        max_abs[key] = judged.max_abs
        failures += [dataclasses.replace(f, metric=f"streaming_{f.metric}",
                                         detail=f"chunks {sizes} vs one call; {f.detail}")
                     for f in judged.failures]
    return StreamingParity(label, "fail" if failures else "pass", sizes, max_abs,
                           failures=tuple(failures))
