"""Streaming parity: a sequence fed in chunks, the state carried between calls, equals one call.

This is how an LSTM is deployed on a stream (audio, sensor data): the model takes its state as
inputs and returns it as outputs, and each call starts from the state the previous one ended
in. A runtime that resets, truncates or mis-orders the state passes a one-shot parity check and
fails this one. Judged by the same tolerance table as parity.

What streams (``stream_ports``):
- the state pairs of ``state_pairs.find_states``: (x, h0, c0) -> (y, hn, cn), a packed
  state -> stateN, one pair per layer or one packed [layers, B, H] pair, the LSTM's own
  initial_h / Y_h, or pairs given by ``--state IN=OUT``;
- chunks of the model's own frames: the input axis the graph ties to the LSTM's steps
  (``feeds.axes``). Through a front end of window W and hop S (a convolution over raw audio) a
  chunk of k frames is fed the samples of exactly those frames: frame j reads samples
  [j*S, j*S + W), so consecutive calls share W - S samples where windows overlap (what a
  streaming caller keeps of the last call) and no frame is lost or computed twice. A front end
  that pads its input, or whose frames follow no fixed window and hop, cannot be cut so:
  parity is skipped with that reason (timing a stream still works).

Compared: each state output after the last call; each output whose chunks concatenate to the
whole call's along one axis (Y, per-frame logits); and each per-call output that the graph
computes from the LSTMs' final states alone (a classifier on the last h). Any other output
(pooled over the whole sequence) has no chunked counterpart: it is named in the note.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds import Given
from lstm_bench.feeds.axes import axis_map
from lstm_bench.feeds.probe import length_for, steps_at
from lstm_bench.model import Model
from lstm_bench.tolerances import TOLERANCES, Failure, compare_output, known_fields
from lstm_bench.verify.state_pairs import find_states

# front-end ops whose padding makes a chunk's edge frames differ from the whole sequence's
_PADDED = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool"})


@dataclass(frozen=True)
class StreamPorts:
    """What a stream feeds, carries and cuts (plain data: a worker process rebuilds it)."""

    sequence: tuple  # ((input, axis), ...): cut into chunks along the LSTM's steps
    states: tuple  # ((input, output), ...): each call's output is the next call's input
    direction: str = "forward"
    sequence_lens: str | None = None
    window: int = 1  # the sequence axis' samples one frame reads (1: the LSTM sees the axis)
    hop: int = 1  # samples from one frame to the next
    final: tuple = ()  # per-call outputs the graph computes from the final states alone
    lstm_ports: tuple = ()  # ((port, name), ...): inputs and outputs that are an LSTM's ports
    uncuttable: str | None = None  # why cutting the input cannot give one call's result

    def __post_init__(self):  # lists from JSON or a job: tuples, so that the object is data
        for name in ("sequence", "states", "final", "lstm_ports"):
            object.__setattr__(self, name, tuple(tuple(v) if isinstance(v, list) else v
                                                 for v in getattr(self, name)))

    @property
    def X(self) -> str:
        return self.sequence[0][0]

    @property
    def time_axis(self) -> int:
        return self.sequence[0][1]

    @property
    def layout(self) -> int:
        """1 where X is batch-major (its steps on axis 1), as the LSTM attribute says."""
        return self.time_axis

    def _port(self, port: str) -> str | None:
        return next((name for p, name in self.lstm_ports if p == port), None)

    Y = property(lambda self: self._port("Y"))
    initial_h = property(lambda self: self._port("initial_h"))
    initial_c = property(lambda self: self._port("initial_c"))
    Y_h = property(lambda self: self._port("Y_h"))
    Y_c = property(lambda self: self._port("Y_c"))

    def frames(self, length: int) -> int:
        """The frames (LSTM steps) an input of ``length`` samples gives."""
        return max(0, (length - self.window) // self.hop + 1)

    def spans(self, sizes: list[int], length: int) -> list[tuple[int, int]]:
        """(start, stop) samples of each chunk of ``sizes`` frames: the samples of its own
        frames; the last one to the input's end."""
        spans, first = [], 0
        for size in sizes:
            spans.append((first * self.hop, (first + size - 1) * self.hop + self.window))
            first += size
        spans[-1] = (spans[-1][0], length)
        return spans

    def describe(self) -> dict:
        """As a report writes it: the fields, and each LSTM port by its name (initial_h...)."""
        return {**asdict(self), **{port: name for port, name in self.lstm_ports}}


_PORTS: dict = {}  # (id(proto), given) -> (proto, result): found once per model


def stream_ports(model, given: Given | None = None) -> tuple[StreamPorts | None, str | None]:
    """(ports, None) when ``model`` (a ``lstm_bench.model.Model`` or a ModelProto; ``given``:
    the ``feeds.Given`` of a proto) can be run in chunks, else (None, the reason). Raises
    LSTMBenchError for ``--state`` pairs the model does not have."""
    if isinstance(model, Model):
        model, given = model.proto, model.given
    given = given or Given()
    key = (id(model), json.dumps(given.as_dict(), sort_keys=True, default=str))
    if key not in _PORTS or _PORTS[key][0] is not model:
        if len(_PORTS) >= 16:
            _PORTS.pop(next(iter(_PORTS)))
        _PORTS[key] = (model, _found(model, given))
    return _PORTS[key][1]


def hides_state(model) -> bool:
    """Whether ``model`` (a Model) keeps its LSTM state inside: no input reaches an LSTM's
    initial state and none was given (``exporters.stateful`` can make it a stateful variant)."""
    return find_states(model.proto, model.given).hides_state


def _found(model, given: Given) -> tuple[StreamPorts | None, str | None]:
    states = find_states(model, given)
    if states.reason:
        return None, states.reason
    try:
        axes = axis_map(model, given)
    except LSTMBenchError as exc:
        return None, f"the input axis to cut into chunks is unknown: {exc}"
    carried = {name for name, _ in states.pairs}
    symbols = list(dict.fromkeys(key for spec in axes.specs if spec.name not in carried
                                 for key, role in zip(spec.symbols, spec.roles)
                                 if role == "seq_len"))
    if not symbols:
        return None, ("no input axis is tied to the LSTM's steps (the model fixes its length): "
                      "one call is one chunk, with no longer call to compare with")
    if len(symbols) > 1:
        return None, f"the inputs have {len(symbols)} sequence axes ({', '.join(symbols)}): " \
                     "a stream cuts one"
    from onnx import helper

    directions = {helper.get_attribute_value(a).decode() for node in states.flow.lstms
                  for a in node.attribute if a.name == "direction"} or {"forward"}
    if len(directions) > 1:
        return None, "forward and reverse LSTMs: a stream reads the sequence one way"
    sequence = tuple(axes.axes_of(symbols[0]))
    window, hop, uncuttable = _frames(axes, symbols[0], states.flow)
    lengths = next((spec.name for spec in axes.specs if spec.is_lengths), None)
    return StreamPorts(sequence, states.pairs, directions.pop(), lengths, window, hop,
                       _final(model, states, {name for name, _ in sequence}),
                       states.lstm_ports, uncuttable), None


def _frames(axes, symbol: str, flow) -> tuple[int, int, str | None]:
    """(window, hop, why the input cannot be cut) of the frames the LSTM sees along
    ``symbol``'s axes, found by shape inference; (1, 1, None) where the LSTM sees the axis."""
    node = axes.steps.get(symbol)
    if node is None or axes.prober is None:
        return 1, 1, None
    where = axes.axes_of(symbol)
    base = {name: tuple(dims) for name, dims in axes.base.items()}

    def steps(length: int) -> int | None:
        at = {name: list(dims) for name, dims in base.items()}
        for name, axis in where:
            at[name][axis] = length
        return steps_at(axes.prober, at, node)

    one, two = (length_for(axes.prober, base, where, node, k) for k in (1, 2))
    hop = None if one is None or two is None else two - one
    window = None if hop is None else one - hop + 1
    if not hop or hop < 1 or window < 1 or any(
            steps(window + hop * k - 1) != k or steps(window + hop * k) != k + 1 for k in (3, 7)):
        return 1, 1, ("the front end's frames follow no fixed window and hop: streaming parity "
                      "cannot be defined by cutting the input")
    if (window, hop) == (1, 1):
        return 1, 1, None
    for made in flow.front_end([name for name, _ in where]):
        attrs = {a.name: a for a in made.attribute}
        pads = list(attrs["pads"].ints) if "pads" in attrs else []
        auto = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
        if made.op_type == "Pad" or (made.op_type in _PADDED and (any(pads) or auto.startswith(
                "SAME"))):
            return window, hop, (f"the front end pads its input ({made.op_type} "
                                 f"{made.name or ''}): a chunk's edge frames differ from the whole "
                                 "sequence's, so streaming parity cannot be defined by cutting "
                                 "the input")
    return window, hop, None


def _final(model, states, sequence: set[str]) -> tuple[str, ...]:
    """The outputs (not states) computed from the LSTMs' final h / c alone: what one call
    gives is what the last call of a stream gives."""
    flow, carried = states.flow, {name for name, _ in states.pairs}
    found = []
    for output in model.graph.output:
        if output.name in {out for _, out in states.pairs}:
            continue
        sources = flow.up(output.name, moves_only=False)
        ends = {port for i, port in sources if i != "input"}
        fed = {name for i, name in sources if i == "input"}
        if ends and ends <= {"Y_h", "Y_c"} and not fed & (carried | sequence):
            found.append(output.name)
    return tuple(found)


@dataclass(frozen=True)
class StreamingParity:
    """Chunked run vs one full run of the same runtime."""

    runtime: str
    status: str  # "pass" | "fail" | "skip"
    chunks: list[int] = field(default_factory=list)  # frames (LSTM steps) per chunk
    max_abs: dict[str, float | None] = field(default_factory=dict)
    reason: str | None = None
    failures: tuple[Failure, ...] = ()
    note: str | None = None  # how the chunks were cut, and what had nothing to compare with

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
    if ports is not None and ports.uncuttable:
        ports, reason = None, ports.uncuttable
    if ports is None:
        return StreamingParity(label, "skip", reason=reason)
    length = feeds[ports.X].shape[ports.time_axis]
    frames = ports.frames(length)
    if ports.sequence_lens and np.any(np.asarray(feeds[ports.sequence_lens]) != frames):
        return StreamingParity(label, "skip", reason="ragged sequence_lens: a chunk boundary "
                               "would cut sequences of different lengths differently")
    if frames < 1:
        return StreamingParity(label, "skip", reason="the input gives the LSTM no step")
    sizes = chunk_sizes(frames, chunks)
    full = runtime.run(feeds)
    spans = ports.spans(sizes, length)
    order = list(range(len(sizes)))
    if ports.direction == "reverse":
        order.reverse()  # a reverse LSTM reads the sequence from its end
    carried = {state_in: feeds[state_in] for state_in, _ in ports.states}
    pieces = {}
    for k in order:
        part = {**feeds, **carried}
        for name, axis in ports.sequence:
            part[name] = np.take(feeds[name], range(*spans[k]), axis=axis)
        if ports.sequence_lens:
            part[ports.sequence_lens] = np.full_like(feeds[ports.sequence_lens], sizes[k])
        pieces[k] = runtime.run(part)
        carried = {state_in: np.asarray(pieces[k][out], feeds[state_in].dtype)
                   for state_in, out in ports.states}
    chunked, alone = _chunked(ports, pieces, full, order[-1])
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
                           failures=tuple(failures), note=_note(ports, alone))


def _chunked(ports: StreamPorts, pieces: dict, full: dict, last: int) -> tuple[dict, list]:
    """(output -> the stream's counterpart of the whole call's, outputs that have none)."""
    finals = {out for _, out in ports.states} | set(ports.final)
    chunked, alone = {}, []
    for name, whole in full.items():
        parts = [np.asarray(pieces[k][name]) for k in range(len(pieces))]
        axis = _joined(parts, np.asarray(whole))
        if name in finals:
            chunked[name] = pieces[last][name]
        elif axis is not None:
            chunked[name] = np.concatenate(parts, axis=axis)
        else:
            alone.append(name)
    return chunked, alone


def _joined(parts: list[np.ndarray], whole: np.ndarray) -> int | None:
    """The axis along which ``parts`` concatenate to ``whole``'s shape, or None."""
    for axis in range(whole.ndim):
        rest = whole.shape[:axis] + whole.shape[axis + 1:]
        if all(p.ndim == whole.ndim and p.shape[:axis] + p.shape[axis + 1:] == rest
               for p in parts) and sum(p.shape[axis] for p in parts) == whole.shape[axis]:
            return axis
    return None


def _note(ports: StreamPorts, alone: list[str]) -> str | None:
    said = []
    if (ports.window, ports.hop) != (1, 1):
        said.append(f"each call fed the samples of its own frames ({ports.X!r} axis "
                    f"{ports.time_axis}: window {ports.window}, hop {ports.hop}"
                    + (f"; consecutive calls share {ports.window - ports.hop} samples, as a "
                       "streaming caller keeps them)" if ports.window > ports.hop else ")"))
    if alone:
        said.append(f"not compared: {', '.join(alone)} (per call, computed from more than the "
                    "final state)")
    return "; ".join(said) or None
