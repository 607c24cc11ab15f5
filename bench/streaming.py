"""Streaming latency: the model called one chunk of steps at a time, its state carried along.

Speech, streaming sensors and online forecasting call an LSTM every time a step (or a short
chunk) arrives and feed the state it ended in back into the next call; the latency of one
such call is their figure of merit, not the time of a whole sequence. A streaming plan
(``bench.plan.SweepPlan`` with ``streaming``, run by ``bench.runner.run_plan``) measures it with
the ordinary harness: each runtime is wrapped in ``StreamingRuntime``, whose ``run`` takes one
chunk and the state the previous call returned, so the harness times exactly what a streaming
application pays per call (the state hand-over included).

The model must take its state as inputs and return it (``verify.streaming.stream_ports``
finds the pairs: (x, h0, c0) -> (y, hn, cn), a packed state, every layer's, or ``--state
IN=OUT``); a chunk of k steps is the input that gives the LSTM k frames. Only a model that
keeps its state inside (no input reaches an LSTM's initial state) is timed as the stateful
variant made by ``exporters.stateful``, and every row and the report say so.

Rows are the harness's, with ``seq_len`` = the chunk, and ``mode`` streaming: their JSON adds
``chunk``, ``stateful_variant``, and the p50 / p99 latency per call (``per_call_ms``) and per
step (``per_step_ms``: the call's latency over the steps it carries).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_bench.bench.stats import STREAMING
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.stateful import stateful_variant
from lstm_bench.model import Model
from lstm_bench.verify.streaming import StreamPorts, hides_state, stream_ports

@dataclass(frozen=True)
class StreamingModel:
    """The model a streaming bench times, the ports it streams through, and why that one."""

    model: Model
    ports: StreamPorts
    stateful_variant: bool
    note: str


def streaming_model(model: Model, folder) -> StreamingModel:
    """``model`` itself when it carries its state through inputs and outputs; else its
    stateful variant, written into ``folder``. LSTMBenchError when neither can stream."""
    import onnx

    name = model.path.name
    ports, reason = stream_ports(model)
    if ports is not None:
        return StreamingModel(model, ports, False, _carried_note(name, ports))
    if not hides_state(model):  # its state leaves and re-enters, but not as a stream can use
        raise LSTMBenchError(f"{model.path}: cannot be streamed: {reason}")
    try:
        variant = stateful_variant(model.proto)
    except LSTMBenchError as exc:
        raise LSTMBenchError(f"{model.path}: cannot be streamed ({reason}), and no stateful "
                             f"variant can be made: {exc}") from None
    ports, variant_reason = stream_ports(variant)
    if ports is None:
        raise LSTMBenchError(f"{model.path}: its stateful variant cannot be streamed either: "
                             f"{variant_reason}")
    path = Path(folder) / f"{model.path.stem}-stateful.onnx"
    onnx.save(variant, str(path))
    return StreamingModel(
        Model(path, variant), ports, True,
        f"{name} does not carry its state ({reason}); timed its stateful variant made by "
        f"lstm-bench (inputs {ports.X}, {ports.initial_h}, {ports.initial_c}; outputs "
        f"{ports.Y_h}, {ports.Y_c} added; the rest of the graph unchanged)")


def _carried_note(name: str, ports: StreamPorts) -> str:
    pairs = ", ".join(f"{state_in} <- {state_out}" for state_in, state_out in ports.states)
    frames = ("" if (ports.window, ports.hop) == (1, 1) else
              f"; a chunk of k steps is {ports.X!r} as long as k frames of its front end need "
              f"(window {ports.window}, hop {ports.hop}: at least {ports.window} + "
              f"{ports.hop} x (k - 1) samples)")
    return f"{name} takes the LSTM state as inputs and returns it ({pairs}){frames}"


class StreamingRuntime:
    """A runtime fed one chunk per call, each call starting from the state the last one
    returned (one state per batch size: the harness interleaves shapes on one session).
    Everything but ``run`` is the wrapped runtime's."""

    def __init__(self, runtime, ports):
        self.runtime = runtime
        self.ports = ports
        self.states: dict[tuple, dict[str, np.ndarray]] = {}

    def __getattr__(self, name):  # name, device, open, synchronize, close, notes, settings...
        if name == "runtime":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.runtime, name)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pairs = self.ports.states
        shape = feeds[pairs[0][0]].shape
        carried = self.states.get(shape, {})
        outputs = self.runtime.run({**feeds, **carried})
        # as the next call's inputs: the feeds' dtype (a runtime may return another)
        self.states[shape] = {state_in: np.asarray(outputs[state_out], feeds[state_in].dtype)
                              for state_in, state_out in pairs}
        return outputs


def streaming_factories(factories: dict, ports: StreamPorts) -> dict:
    """Each runtime factory's runtimes wrapped to stream through ``ports``."""
    return {name: (lambda factory=factory: StreamingRuntime(factory(), ports))
            for name, factory in factories.items()}


def streamed_report(report, stream: StreamingModel, chunks):
    """The report of the sweep that timed ``stream.model`` in ``chunks``, its rows streaming
    ones (``stats.STREAMING``: the row gives its figures per call and per step) and its
    ``streaming`` section (in its ``extra``; ``inputs_fed`` as the report's model says)."""
    # no % peak: a call of a few steps is bound by its own overhead, not by the GEMM rate
    report.measurements = [dataclasses.replace(m, mode=STREAMING, peak_gflops=None,
                                               stateful_variant=stream.stateful_variant)
                           for m in report.measurements]
    timed = stream.model.info()
    report.extra["streaming"] = {
        "chunks": list(chunks), "measured": True, "stateful_variant": stream.stateful_variant,
        "note": stream.note, "ports": stream.ports.describe(),
        "timed_model": {k: timed[k] for k in ("sha256", "inputs", "outputs") if k in timed},
        "inputs_fed": report.model["inputs_fed"],
    }
    return report
