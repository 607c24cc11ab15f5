"""The timing harness. It owns the clock; runtimes never time themselves.

One timed call is ``clock(); runtime.run(feeds); runtime.synchronize(); clock()``: queued GPU
work is finished before the clock is read. The clock is ``time.perf_counter_ns`` unless a test
injects another one.

For each thread count of a sweep, every runtime is opened with that same (recorded) thread
count; session creation and the first run are timed apart (cold start), and the resident
memory each runtime adds is probed while it is opened and run once at every shape. Then,
shape by shape, the runtimes are warmed up and timed in round-robin rounds (per round, each
runtime gets one untimed call and then ``Settings.block`` timed calls), so that drift of the machine (frequency, other load, thermal) hits every
runtime alike. A runtime leaves the rotation once it has at least ``min_reps`` samples summing
to at least ``min_time``, or ``max_reps`` samples, or (with at least 3 samples) ``max_time``.
Shapes are not interleaved with each other: the largest shape would evict the smallest one's
data from the caches between its calls and bias it; the sweep compares runtimes within a
shape and draws scaling curves across shapes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from lstm_bench.bench.machine import MemoryProbe
from lstm_bench.bench.stats import Measurement
from lstm_bench.errors import LSTMBenchError

Clock = Callable[[], int]


@dataclass(frozen=True)
class Settings:
    """How long to measure. Times in seconds."""

    min_time: float = 0.2  # timed calls per runtime and shape sum to at least this ...
    min_reps: int = 10  # ... and there are at least this many
    max_reps: int = 10_000
    max_time: float = 10.0  # a slow case stops here once it has 3 samples
    warmup_time: float = 0.05  # untimed (discarded) calls per runtime and shape: at least this long
    warmup_reps: int = 3  # ... and at least this many
    # Timed calls per runtime per round. 1 interleaves call by call, but thread pools
    # that spin after a call (onnxruntime's, OpenBLAS's, OpenMP's) then run into the next
    # runtime's call on a machine with few cores; a block of calls, after one untimed call,
    # keeps the interleaving against drift while each runtime mostly runs alone.
    block: int = 5

    def __post_init__(self):
        if not self.min_time >= 0 or not self.max_time > 0:
            raise LSTMBenchError(f"--min-time must be >= 0 and max_time > 0, got "
                                 f"{self.min_time} and {self.max_time}")
        if self.min_reps < 1 or self.max_reps < self.min_reps:
            raise LSTMBenchError(f"need 1 <= min_reps <= max_reps, got {self.min_reps}, "
                                 f"{self.max_reps}")
        if self.block < 1:
            raise LSTMBenchError(f"--block must be at least 1, got {self.block}")
        if self.warmup_reps < 0 or self.warmup_time < 0:
            raise LSTMBenchError("warm-up reps and time must be >= 0")

    def as_dict(self) -> dict:
        return asdict(self)


def time_call(runtime, feeds, clock: Clock) -> int:
    """Nanoseconds of one call, device work included."""
    start = clock()
    runtime.run(feeds)
    runtime.synchronize()
    return clock() - start


def round_robin(runtimes: Sequence, feeds, settings: Settings, clock: Clock = time.perf_counter_ns,
                *, timed: bool = True) -> list[list[int]]:
    """Rounds of one call per runtime until each is done; the samples of each, in order.

    With ``settings.block`` > 1, a round gives each runtime one untimed call and then
    ``block`` timed calls in a row (see ``Settings.block``).

    With ``timed=False`` this is the warm-up: the stopping rule is ``warmup_reps`` and
    ``warmup_time``, and the caller discards the samples.
    """
    if timed:
        min_reps, min_ns = settings.min_reps, settings.min_time * 1e9
        max_reps, max_ns = settings.max_reps, settings.max_time * 1e9
    else:
        min_reps, min_ns = settings.warmup_reps, settings.warmup_time * 1e9
        max_reps, max_ns = max(settings.warmup_reps, settings.max_reps), settings.max_time * 1e9
    block = settings.block if timed else 1
    samples: list[list[int]] = [[] for _ in runtimes]
    totals = [0] * len(runtimes)
    active = [i for i in range(len(runtimes)) if min_reps > 0 or min_ns > 0]
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of a timed call is not the runtime's cost
    try:
        while active:
            for i in active:
                if block > 1:  # re-warm after the other runtimes' turns; not a sample
                    runtimes[i].run(feeds)
                    runtimes[i].synchronize()
                for _ in range(block):
                    elapsed = time_call(runtimes[i], feeds, clock)
                    samples[i].append(elapsed)
                    totals[i] += elapsed
            active = [i for i in active
                      if not (len(samples[i]) >= max_reps
                              or (len(samples[i]) >= min_reps and totals[i] >= min_ns)
                              or (len(samples[i]) >= min(3, min_reps) and totals[i] >= max_ns))]
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


@dataclass
class Opened:
    """A runtime opened for one thread count, with its cold-start figures."""

    name: str
    runtime: object
    cold: dict = field(default_factory=dict)
    peak_memory_mb: float | None = None
    settings: dict = field(default_factory=dict)  # runtime.settings(): recorded in every row


def open_runtime(name: str, factory, model_path, threads: int | None, shapes_feeds: list,
                 clock: Clock, ort_options=None) -> Opened:
    """Open, time the session creation and the first run, probe memory over every shape.

    Raises LSTMBenchError when the runtime cannot open or run this model.
    """
    runtime = factory()
    probe = MemoryProbe()
    probe.start()
    stage = "open"
    try:
        start = clock()
        runtime.open(model_path, threads=threads, ort_options=ort_options)
        runtime.synchronize()
        open_ns = clock() - start
        stage = "first run"
        first_ns = time_call(runtime, shapes_feeds[0], clock)
        for feeds in shapes_feeds[1:]:
            runtime.run(feeds)
        runtime.synchronize()
    except LSTMBenchError:
        runtime.close()
        raise
    except Exception as exc:  # a runtime's own failure type: report it, keep the others going
        runtime.close()
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LSTMBenchError(f"{name}: {stage} failed: {first_line}") from None
    return Opened(name, runtime, {"open": open_ns / 1e6, "first_run": first_ns / 1e6},
                  probe.peak_mb(), runtime.settings())


@dataclass
class SweepResult:
    """Everything one sweep measured, ready for the reports."""

    measurements: list[Measurement]
    skipped: list[dict]  # {"runtime", "threads", "reason"}
    settings: Settings
    peak_gflops: float | None = None


def sweep(model_path, factories: dict, shapes: Sequence[tuple[int, int]],
          threads_list: Sequence[int | None], feeds_for: Callable[[int, int], dict],
          settings: Settings = Settings(), *, clock: Clock = time.perf_counter_ns,
          flops_for: Callable[[int, int], int] | None = None, peak_gflops: float | None = None,
          on_event: Callable[..., None] | None = None, ort_options=None) -> SweepResult:
    """Measure every runtime at every (batch, seq_len) shape and thread count.

    Args:
        factories: runtime name -> callable returning a fresh unopened runtime.
        shapes: (batch, seq_len) pairs, measured in this order.
        feeds_for: (batch, seq_len) -> the feeds every runtime gets for that shape.
        flops_for: (batch, seq_len) -> FLOPs of one call (for GFLOP/s), or None.
        on_event: called as on_event(kind, **info) with kind "open", "opened", "skip",
            "shape", "result" (info["measurement"]) or "shape_done", for progress displays.
        ort_options: ``runtimes.ort_options.OrtOptions`` for the onnxruntime-based runtimes.
    """
    notify = on_event or (lambda kind, **info: None)
    measurements: list[Measurement] = []
    skipped: list[dict] = []
    feeds = [feeds_for(batch, seq_len) for batch, seq_len in shapes]
    for threads in threads_list:
        opened: list[Opened] = []
        try:
            for name, factory in factories.items():
                notify("open", runtime=name, threads=threads)
                try:
                    opened.append(open_runtime(name, factory, model_path, threads, feeds, clock,
                                               ort_options))
                    notify("opened", runtime=name, threads=threads)
                except LSTMBenchError as exc:
                    skipped.append({"runtime": name, "threads": threads, "reason": str(exc)})
                    notify("skip", runtime=name, threads=threads, reason=str(exc))
            for (batch, seq_len), shape_feeds in zip(shapes, feeds):
                notify("shape", batch=batch, seq_len=seq_len, threads=threads)
                if not opened:
                    notify("shape_done", batch=batch, seq_len=seq_len, threads=threads)
                    continue
                runtimes = [o.runtime for o in opened]
                round_robin(runtimes, shape_feeds, settings, clock, timed=False)
                samples = round_robin(runtimes, shape_feeds, settings, clock)
                flops = flops_for(batch, seq_len) if flops_for else None
                for o, runtime_samples in zip(opened, samples):
                    m = Measurement(o.name, batch, seq_len, threads, tuple(runtime_samples),
                                    device=o.runtime.device, flops=flops,
                                    peak_gflops=peak_gflops if o.runtime.device == "cpu" else None,
                                    cold=o.cold, peak_memory_mb=o.peak_memory_mb,
                                    extra=dict(o.settings))
                    measurements.append(m)
                    notify("result", measurement=m)
                notify("shape_done", batch=batch, seq_len=seq_len, threads=threads)
        finally:
            for o in opened:
                o.runtime.close()
    return SweepResult(measurements, skipped, settings, peak_gflops)
