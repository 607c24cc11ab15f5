"""Streaming latency: the model called one chunk of steps at a time, its (h, c) carried along.

Speech, streaming sensors and online forecasting call an LSTM every time a step (or a short
chunk) arrives and feed the state it ended in back into the next call; the latency of one
such call is their figure of merit, not the time of a whole sequence. ``run_streaming``
measures it with the ordinary harness: each runtime is wrapped in ``StreamingRuntime``, whose
``run`` takes one chunk and the state the previous call returned, so the harness times exactly
what a streaming application pays per call (the state hand-over included).

The model must take ``initial_h`` / ``initial_c`` as inputs and return ``Y_h`` / ``Y_c``
(``runtimes.streaming.stream_ports`` finds them). For a model that does not, the stateful
variant made by ``exporters.stateful`` is timed instead, and every row and the report say so.

Rows are the harness's, with ``seq_len`` = the chunk, plus ``mode: "streaming"``, ``chunk``,
``stateful_variant``, and the p50 / p99 latency per call (``per_call_ms``) and per step
(``per_step_ms``: the call's latency over the steps it carries).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError

MODE = "streaming"


@dataclass(frozen=True)
class StreamingModel:
    """The model a streaming bench times, the ports it streams through, and why that one."""

    model: object  # lstm_bench.model.Model
    ports: object  # runtimes.streaming.StreamPorts
    stateful_variant: bool
    note: str


def streaming_model(source, folder) -> StreamingModel:
    """``source`` (a path or a ``lstm_bench.model.Model``) itself when it carries its state
    through inputs and outputs; else its stateful variant, written into ``folder``.
    LSTMBenchError when neither can stream."""
    import onnx

    from lstm_bench.exporters.stateful import stateful_variant
    from lstm_bench.model import Model, as_model
    from lstm_bench.verify.streaming import stream_ports

    model = as_model(source)
    name = model.path.name
    ports, reason = stream_ports(model)
    if ports is not None:
        return StreamingModel(model, ports, False,
                              f"{name} takes the LSTM state as inputs and returns it")
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


class StreamingRuntime:
    """A runtime fed one chunk per call, each call starting from the state the last one
    returned (one state per batch size: the harness interleaves shapes on one session)."""

    def __init__(self, runtime, ports):
        self.runtime = runtime
        self.ports = ports
        self.name = runtime.name
        self.device = getattr(runtime, "device", "cpu")
        self.states: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def available(self) -> str | None:
        return self.runtime.available()

    def open(self, model, *, threads: int | None = None, ort_options=None) -> None:
        self.runtime.open(model, threads=threads, ort_options=ort_options)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ports = self.ports
        h0 = feeds[ports.initial_h]
        h, c = self.states.get(h0.shape, (h0, feeds[ports.initial_c]))
        outputs = self.runtime.run({**feeds, ports.initial_h: h, ports.initial_c: c})
        # as the next call's inputs: the feeds' dtype (a runtime may return another)
        self.states[h0.shape] = (np.asarray(outputs[ports.Y_h], h0.dtype),
                                 np.asarray(outputs[ports.Y_c], h0.dtype))
        return outputs

    def synchronize(self) -> None:
        self.runtime.synchronize()

    def close(self) -> None:
        self.runtime.close()

    def notes(self) -> list[str]:
        return self.runtime.notes()

    def settings(self) -> dict:
        return self.runtime.settings()


def streaming_measurement(m, *, stateful_variant: bool):
    """A harness Measurement (seq_len = the chunk) with the streaming fields of its row."""
    chunk = m.seq_len
    stats = m.stats
    # no % peak: a call of a few steps is bound by its own overhead, not by the GEMM rate
    return dataclasses.replace(m, peak_gflops=None, extra={
        **m.extra, "mode": MODE, "chunk": chunk, "stateful_variant": stateful_variant,
        "per_call_ms": {"p50": stats.median, "p99": stats.p99},
        "per_step_ms": {"p50": stats.median / chunk, "p99": stats.p99 / chunk},
    })


def run_streaming(model_path, *, runtimes: str | None = None, batches=None, chunks=(1,),
                  threads_list=(None,), settings=None, verify=None,
                  display=None,
                  clock=time.perf_counter_ns, ort_options=None, seed: int = 0):
    """Measure the per-call latency of streaming ``model_path`` in chunks of each size in
    ``chunks`` steps, at each batch and thread count; returns the ``bench.report.BenchReport``
    with a ``streaming`` section (in its ``extra``). The chunks are random, from ``seed``; the
    streaming section's ``inputs_fed`` says how (for the model timed). ``batches`` as in
    ``runner.run_bench`` (None: 1, or the batch the model fixes)."""
    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.bench.runner import (check_memory, finish_document, fit_batches,
                                         measure_sweep, pick_runtimes, requested_runtimes,
                                         resolve_threads)
    from lstm_bench.feeds import describe_random

    settings = settings or Settings()
    model = BenchModel(model_path)
    threads_list = resolve_threads(threads_list)
    batches, notes = fit_batches(model, batches, (1,))
    # said of this sweep: `run` also notes its sequence sweep's batches (another default)
    notes = [f"streaming sweep: {note}" for note in notes]
    shapes = [(b, c) for b in batches for c in chunks]
    with tempfile.TemporaryDirectory(prefix="lstm-bench-stream-") as folder:
        stream = streaming_model(model.model, folder)  # first: a model that cannot stream fails fast
        timed = BenchModel(stream.model)
        # a bad shape fails here too, before any runtime is loaded
        check_memory([timed], shapes, len(requested_runtimes(runtimes)), "bench --streaming")
        factories, unavailable = pick_runtimes(runtimes)
        fed = describe_random(timed.proto, shapes, seed=seed)
        wrapped = {name: (lambda factory=factory: StreamingRuntime(factory(), stream.ports))
                   for name, factory in factories.items()}
        (result,), load = measure_sweep([timed], wrapped, shapes, threads_list, settings,
                                        # no GEMM peak: streaming rows have no % peak
                                        calibrate=False, display=display, clock=clock,
                                        ort_options=ort_options,
                                        seed=seed, stream_ports=stream.ports)
        timed_info = timed.info()
    result.skipped[:0] = unavailable
    if not result.measurements:
        raise LSTMBenchError(f"{model_path}: no runtime could stream the model: " + "; ".join(
            f"{s['runtime']}: {s['reason']}" for s in result.skipped))
    result.measurements = [streaming_measurement(m, stateful_variant=stream.stateful_variant)
                           for m in result.measurements]
    doc = finish_document(result, model={**model.info(), "inputs_fed": fed},
                          threads_list=threads_list, load=load, verify=verify)
    doc.notes[:0] = notes
    doc.extra["streaming"] = {
        "chunks": list(chunks), "measured": True, "stateful_variant": stream.stateful_variant,
        "note": stream.note, "ports": dataclasses.asdict(stream.ports),
        "timed_model": {k: timed_info[k] for k in ("sha256", "inputs", "outputs")
                        if k in timed_info},
        "inputs_fed": fed,
    }
    return doc


def add_streaming(doc, model_path, *, chunks=(1,), batches=None, **options):
    """Streaming rows of ``model_path`` (``run_streaming`` with ``options``) added to the report
    ``doc`` of a sequence bench, with its ``streaming`` section; a model that cannot be streamed
    gets the reason in the section instead (the rest of the report stands)."""
    try:
        stream = run_streaming(model_path, chunks=chunks, batches=batches, **options)
    except LSTMBenchError as exc:
        doc.extra["streaming"] = {"chunks": list(chunks), "measured": False, "reason": str(exc)}
        return doc
    doc.measurements += stream.measurements
    doc.notes += [n for n in stream.notes if n not in doc.notes]
    known = {(s.runtime, s.threads) for s in doc.skipped}
    doc.skipped += [s for s in stream.skipped if (s.runtime, s.threads) not in known]
    doc.extra["streaming"] = stream.extra["streaming"]
    return doc
