"""The timing harness. It owns the clock; runtimes never time themselves.

One timed call is ``clock(); runtime.run(feeds); runtime.synchronize(); clock()``: queued GPU
work is finished before the clock is read. The clock is ``time.perf_counter_ns`` unless a test
injects another one.

For each thread count of a sweep, every runtime is opened (once per model) with that same,
recorded thread count; session creation and the first run are timed apart (cold start), and
the resident memory each runtime adds is probed while it is opened and run once at every
shape. Each (model, runtime, shape) is then a **cell**, followed in the rotation by the same
runtime's call on the model's floor model (``bench.floor``: its per-call overhead floor, with
the same feeds). After a warm-up, the cells take turns
in rounds: per round, each cell runs one untimed call (it re-warms caches and thread pools
after the other cells' turns) and then one **block** of timed calls. The rounds are spread
over ``Settings.span`` seconds of wall time, ``Settings.blocks`` of them, so that every cell
is sampled in every phase of the machine (a shared virtual machine alternates fast and slow
phases lasting seconds) and drift hits every cell alike. When a round ends before the next
one is due, the cells keep running untimed calls in turn until it is due: the machine never
idles during the span (idle gaps let frequency, caches and thread pools cool down; measured
on this project's machine, 100 ms sleeps before a block raised its median by 2 to 7 %).

The calls per block come from the warm-up's median call, and after each block from that
block's median (a cell whose calls turn out faster than its warm-up still reaches its
minimum time within its blocks): at least ``Settings.block`` (fewer,
down to one, for slow calls: as many as fill ``block_time``; a median of five 20 ms calls
buys little over one and costs a slow runtime five times the wall time), and as many as make
the timed calls of the cell sum to ``min_time`` and ``min_reps`` over all its blocks; at most ``max_reps`` over all blocks; fewer for a slow cell, so that three blocks fit
in ``max_time``. A cell leaves the rotation once it has its blocks, ``min_reps`` samples and
``min_time`` of them, or ``max_reps`` samples, or (with at least 3 blocks) ``max_time``.
Shapes share the rotation: a figure of batch 1 and one of batch 32 see the same stretch of
time.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from lstm_bench import interrupts
from lstm_bench.bench.deadline import deadline
from lstm_bench.bench.floor import CallFloor, floor_model
from lstm_bench.bench.machine import Calibration, MemoryProbe, blas_threads
from lstm_bench.bench.stats import Block, Measurement
from lstm_bench.errors import LSTMBenchError
from lstm_bench.model import Model

Clock = Callable[[], int]

# Bounds of the settings (each option is refused beyond them, with one line): what a benchmark
# can mean, not what a machine could run. Workers start one after another, so 64 of them is
# already an hour of start-up for a heavy runtime; a span or a minimum time of a day is a
# soak test; a block count beyond 10^5 leaves every block a few calls. Without them,
# --processes 100000 and --span 1e308 ran for ever and --min-time 1e308 overflowed.
MAX_PROCESSES = 64
MAX_SPAN = 86400.0
MAX_BLOCKS = 100_000
MAX_CALLS = 2 ** 31 - 1


@dataclass(frozen=True)
class Timeline:
    """The clock a sweep reads, and where its blocks sit in time: their start times are ns
    after ``origin`` (None: the end of the warm-up) in worker process ``process``, so that the
    blocks of several worker processes share one time axis."""

    clock: Clock = time.perf_counter_ns
    origin: int | None = None
    process: int = 0
    # told each runtime's name before it is opened or called (``bench.runner``: crash blame)
    mark: Callable[[str], None] = lambda name: None


def _name(cell) -> str:
    return getattr(cell.runtime, "name", "")  # the GEMM probe is nobody's


@dataclass(frozen=True)
class Settings:
    """How long and in how many pieces to measure. Times in seconds."""

    span: float = 10.0  # the rounds of one thread count are spread over this much wall time ...
    blocks: int = 30  # ... this many rounds: every cell gets this many blocks
    block: int = 5  # timed calls per block, at least ...
    block_time: float = 0.002  # ... unless they take longer than this: then as many as fill it
    min_time: float = 0.2  # timed calls per cell sum to at least this ...
    min_reps: int = 10  # ... and there are at least this many
    max_reps: int = 10_000
    max_time: float = 10.0  # a slow cell stops here once it has 3 blocks
    warmup_time: float = 0.05  # untimed (discarded) calls per cell: at least this long
    warmup_reps: int = 3  # ... and at least this many
    processes: int = 1  # worker processes the blocks are spread over (``bench.runner``)
    call_floor: bool = True  # time each runtime's per-call floor beside it (``bench.floor``)

    def __post_init__(self):
        if not (0 <= self.min_time <= MAX_SPAN) or not 0 < self.max_time <= MAX_SPAN:
            raise LSTMBenchError(f"--min-time must be 0 to {MAX_SPAN:g} seconds and max_time "
                                 f"above 0, got {self.min_time} and {self.max_time}")
        if not 0 <= self.span <= MAX_SPAN:
            raise LSTMBenchError(f"--span must be a number of seconds from 0 to {MAX_SPAN:g} "
                                 f"(a day), got {self.span}")
        if self.min_reps < 1 or self.max_reps < self.min_reps or self.max_reps > MAX_CALLS:
            raise LSTMBenchError(f"need 1 <= min_reps <= max_reps <= {MAX_CALLS}, got "
                                 f"{self.min_reps}, {self.max_reps}")
        if not 1 <= self.block <= MAX_CALLS:
            raise LSTMBenchError(f"--block must be 1 to {MAX_CALLS}, got {self.block}")
        if not self.block_time >= 0:
            raise LSTMBenchError(f"block_time must be >= 0 seconds, got {self.block_time}")
        if not 1 <= self.blocks <= MAX_BLOCKS:
            raise LSTMBenchError(f"--blocks must be 1 to {MAX_BLOCKS}, got {self.blocks}")
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise LSTMBenchError(f"--processes must be 1 to {MAX_PROCESSES}, got "
                                 f"{self.processes}")
        if self.warmup_reps < 0 or self.warmup_time < 0:
            raise LSTMBenchError("warm-up reps and time must be >= 0")

    def as_dict(self) -> dict:
        return asdict(self)

    def calls_per_block(self, call_ns: float, *, timed_ns: int = 0, reps: int = 0,
                        blocks_done: int = 0) -> int:
        """Timed calls per block for a cell whose calls take ``call_ns``, when it has taken
        ``reps`` calls summing to ``timed_ns`` in ``blocks_done`` blocks (see the module doc):
        what is still missing of ``min_time`` and ``min_reps``, spread over the blocks left."""
        call_ns = max(call_ns, 1.0)
        left = max(1, self.blocks - blocks_done)
        least = self.block
        if self.block * call_ns > self.block_time * 1e9:  # slow calls: a shorter block
            least = max(1, math.ceil(self.block_time * 1e9 / call_ns))
        calls = max(least, math.ceil(max(0, self.min_reps - reps) / left),
                    math.ceil(max(0.0, self.min_time * 1e9 - timed_ns) / (left * call_ns)))
        calls = min(calls, max(1, (self.max_reps - reps) // left))
        fits = math.floor(self.max_time * 1e9 / (min(3, self.blocks) * call_ns))
        return max(1, min(calls, fits))


def time_call(runtime, feeds, clock: Clock) -> int:
    """Nanoseconds of one call, device work included."""
    start = clock()
    runtime.run(feeds)
    runtime.synchronize()
    return clock() - start


def untimed_call(runtime, feeds) -> None:
    runtime.run(feeds)
    runtime.synchronize()


@dataclass
class Cell:
    """One runtime on one model at one shape, and what was measured of it."""

    runtime: object
    feeds: dict
    samples: list[int] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    calls: int = 1  # timed calls per block
    total_ns: int = 0


def warm_up(cells: Sequence[Cell], settings: Settings, clock: Clock,
            mark=Timeline.mark) -> list[list[int]]:
    """Untimed calls in turn until each cell has ``warmup_reps`` of them and ``warmup_time``;
    returns their durations (for the calls per block), never used as samples."""
    durations: list[list[int]] = [[] for _ in cells]
    active = list(range(len(cells))) if settings.warmup_reps or settings.warmup_time else []
    while active:
        interrupts.check()
        for i in active:
            mark(_name(cells[i]))
            durations[i].append(time_call(cells[i].runtime, cells[i].feeds, clock))
        active = [i for i in active
                  if not (len(durations[i]) >= settings.warmup_reps
                          and sum(durations[i]) >= settings.warmup_time * 1e9)
                  and not (len(durations[i]) >= max(1, settings.warmup_reps)
                           and sum(durations[i]) >= settings.max_time * 1e9)]
    return durations


def _done(cell: Cell, settings: Settings) -> bool:
    return (len(cell.samples) >= settings.max_reps
            or (len(cell.blocks) >= settings.blocks and len(cell.samples) >= settings.min_reps
                and cell.total_ns >= settings.min_time * 1e9)
            or (len(cell.blocks) >= min(3, settings.blocks)
                and cell.total_ns >= settings.max_time * 1e9))


def measure(cells: Sequence[Cell], settings: Settings, timeline: Timeline = Timeline()) -> None:
    """Warm up, then time the cells in paced rounds of blocks (see the module doc).

    Fills each cell's ``samples`` and ``blocks`` (their start times on ``timeline``).
    """
    clock, mark = timeline.clock, timeline.mark
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of a timed call is not the runtime's cost
    try:
        import numpy as np

        for cell, durations in zip(cells, warm_up(cells, settings, clock, mark)):
            cell.calls = settings.calls_per_block(float(np.median(durations)) if durations
                                                  else 0.0)
        start = clock()
        origin = start if timeline.origin is None else timeline.origin
        interval = settings.span * 1e9 / settings.blocks
        active = [c for c in cells if not _done(c, settings)]
        round_ = 0
        while active:
            # blocks past the planned ones (a cell short of min_time) are not paced
            due = start + min(round_, settings.blocks) * interval
            while clock() < due:  # ahead of time: keep the machine busy, untimed
                interrupts.check()
                before = clock()
                for cell in active:
                    mark(_name(cell))
                    untimed_call(cell.runtime, cell.feeds)
                if clock() == before:  # a clock that does not move (a test's): do not spin
                    break
            for cell in active:
                # between blocks: a Ctrl-C that a finalizer swallowed ends the run here
                interrupts.check()
                mark(_name(cell))
                untimed_call(cell.runtime, cell.feeds)  # re-warm after the others' turns
                block_start = clock()
                for _ in range(cell.calls):
                    elapsed = time_call(cell.runtime, cell.feeds, clock)
                    cell.samples.append(elapsed)
                    cell.total_ns += elapsed
                cell.blocks.append(Block(timeline.process, round_, block_start - origin,
                                         cell.calls))
                # the calls of the next blocks, from this block's median (calls change speed)
                cell.calls = settings.calls_per_block(
                    float(np.median(cell.samples[-cell.calls:])), timed_ns=cell.total_ns,
                    reps=len(cell.samples), blocks_done=len(cell.blocks))
            round_ += 1
            active = [c for c in active if not _done(c, settings)]
    finally:
        if gc_was_enabled:
            gc.enable()


@dataclass
class Opened:
    """A runtime opened for one thread count, with its cold-start figures."""

    name: str
    runtime: object
    cold: dict = field(default_factory=dict)
    peak_memory_mb: float | None = None
    settings: dict = field(default_factory=dict)  # runtime.settings(): recorded in every row


def open_runtime(name: str, factory, model, threads: int | None, shapes_feeds: list,
                 clock: Clock) -> Opened:
    """Open, time the session creation and the first run, probe memory over every shape.

    Raises LSTMBenchError when the runtime cannot open or run this model.
    """
    runtime = factory()
    probe = MemoryProbe()
    probe.start()
    stage = "open"
    try:
        with deadline(f"{name}: opening the model and its first runs"):
            start = clock()
            runtime.open(model, threads=threads)
            runtime.synchronize()
            open_ns = clock() - start
            stage = "first run"
            first_ns = time_call(runtime, shapes_feeds[0], clock)
            for feeds in shapes_feeds[1:]:
                runtime.run(feeds)
            runtime.synchronize()
    except LSTMBenchError:
        runtime.close()
        interrupts.check()  # a signal a library turned into this error is no skipped runtime
        raise
    except Exception as exc:  # a runtime's own failure type: report it, keep the others going
        runtime.close()
        interrupts.check()
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LSTMBenchError(f"{name}: {stage} failed: {first_line}") from None
    return Opened(name, runtime, {"open": open_ns / 1e6, "first_run": first_ns / 1e6},
                  probe.peak_mb(), runtime.settings())


@dataclass(frozen=True)
class Subject:
    """A model under test: what its runtimes open (a ``lstm_bench.model.Model``), its feeds
    and FLOPs at any (batch, seq_len)."""

    model: object
    feeds_for: Callable[[int, int], dict]
    flops_for: Callable[[int, int], int] | None = None


@dataclass
class SweepResult:
    """Everything one sweep measured of one model, ready for the reports."""

    measurements: list[Measurement]
    skipped: list[dict]  # {"runtime", "threads", "reason"}
    settings: Settings
    calibrations: list = field(default_factory=list)  # machine.Calibration per thread count
    speed: list = field(default_factory=list)  # the speed probe's Measurement per thread count


def sweep(subjects: Sequence[Subject], factories: dict, shapes: Sequence[tuple[int, int]],
          threads_list: Sequence[int | None], settings: Settings = Settings(), *,
          timeline: Timeline = Timeline(), probes: dict | None = None,
          on_event: Callable[..., None] | None = None) -> list[SweepResult]:
    """Measure every runtime on every model at every (batch, seq_len) and thread count.

    Every cell of a thread count (model x runtime x shape) shares one rotation, so two models
    (``lstm-bench compare A.onnx B.onnx``) see the same phases of the machine. With
    ``settings.call_floor``, each runtime is opened on the model's floor model too
    (``bench.floor``) and each of its cells has a floor cell right after it, with the same
    feeds: the row's ``call_floor``. Returns one SweepResult per subject, in order.

    Args:
        factories: runtime name -> callable returning a fresh unopened runtime (made with its
            own options: ``runtimes.registry.make_factories``).
        shapes: (batch, seq_len) pairs.
        timeline: the clock, and the time axis of the blocks (see ``measure``).
        on_event: called as on_event(kind, **info) with kind "open", "opened", "skip",
            "timing" or "result" (info["measurement"]), for progress displays.
        probes: what makes each probe, one more cell in each thread count's rotation:
            "gemm", the GEMM that calibrates the machine's peak (``machine.GemmProbe``),
            recorded in ``calibrations`` (``bench.runner.with_peaks`` gives the rows their
            peak); "speed", the machine's speed probe (``bench.speed``), recorded in
            ``speed``.
    """
    notify = on_event or (lambda kind, **info: None)
    results = [SweepResult([], [], settings) for _ in subjects]
    feeds = [[s.feeds_for(batch, seq_len) for batch, seq_len in shapes] for s in subjects]
    floor_models = [floor_model(s.model.proto) if settings.call_floor
                    and hasattr(s.model, "proto") else None for s in subjects]  # (a test's
    # subject may be a bare name: no model, no floor)
    for threads in threads_list:
        opened: list[tuple[int, Opened]] = []
        floors: list[Opened | str | None] = []  # per opened runtime: its floor, or why none
        try:
            with blas_threads(threads):
                for name, factory in factories.items():
                    for i, subject in enumerate(subjects):
                        interrupts.check()
                        notify("open", runtime=name, threads=threads)
                        timeline.mark(name)
                        try:
                            opened.append((i, open_runtime(name, factory, subject.model,
                                                           threads, feeds[i],
                                                           timeline.clock)))
                            notify("opened", runtime=name, threads=threads)
                        except LSTMBenchError as exc:
                            # the skip names the runtime: its reason does not say it again
                            reason = str(exc).removeprefix(f"{name}: ")
                            results[i].skipped.append({"runtime": name, "threads": threads,
                                                       "reason": reason})
                            notify("skip", runtime=name, threads=threads, reason=reason)
                            continue
                        floors.append(_open_floor(name, factory, floor_models[i], threads,
                                                  feeds[i], timeline.clock))
                # order: shape, runtime, model: the two models of a comparison run side by
                # side; each runtime's floor cell right after its own
                plan = [(s, k) for s in range(len(shapes)) for k in range(len(opened))]
                cells = [Cell(opened[k][1].runtime, feeds[opened[k][0]][s]) for s, k in plan]
                floor_cells = {n: Cell(floors[k].runtime, cells[n].feeds)
                               for n, (s, k) in enumerate(plan) if isinstance(floors[k], Opened)}
                rotation = [c for n, cell in enumerate(cells)
                            for c in (cell, floor_cells.get(n)) if c is not None]
                # blocks spread like the others'; no runtime opened: no rows to calibrate for
                probe, pace = (Cell(make(), {}) if make and cells else None
                               for make in map((probes or {}).get, ("gemm", "speed")))
                notify("timing", threads=threads, cells=len(cells))
                measure(rotation + [c for c in (probe, pace) if c], settings, timeline)
            calibration = probe and Calibration.of(threads, probe.runtime, probe.samples,
                                                   probe.blocks)
            speed = pace and Measurement(pace.runtime.name, 1, 1, threads, tuple(pace.samples),
                                         blocks=tuple(pace.blocks))
            for result in results:  # one machine for every model of the rotation
                result.calibrations += [calibration] if calibration else []
                result.speed += [speed] if speed else []
            for n, ((s, k), cell) in enumerate(zip(plan, cells)):
                (i, o), batch, seq_len = opened[k], *shapes[s]
                flops = subjects[i].flops_for(batch, seq_len) if subjects[i].flops_for else None
                floor = floor_cells.get(n)
                m = Measurement(o.name, batch, seq_len, threads, tuple(cell.samples),
                                device=o.runtime.device, flops=flops,
                                cold=o.cold, peak_memory_mb=o.peak_memory_mb,
                                blocks=tuple(cell.blocks), runtime_settings=dict(o.settings),
                                call_floor=CallFloor.of(floor.samples, floor.blocks) if floor
                                else None if floors[k] is None else CallFloor(reason=floors[k]))
                results[i].measurements.append(m)
                notify("result", measurement=m)
        finally:
            # last opened, first closed: a runtime that set a global (torch's threads) puts
            # back what it found
            for k in reversed(range(len(opened))):
                if k < len(floors) and isinstance(floors[k], Opened):
                    floors[k].runtime.close()
                opened[k][1].runtime.close()
    return results


def _open_floor(name: str, factory, model, threads, shapes_feeds, clock) -> Opened | str | None:
    """``name``'s runtime opened on the floor model (``bench.floor``), or why it cannot run it
    (an int8 variant with no LSTM node to quantize), or None when there is no floor model."""
    if model is None:
        return None
    try:
        return open_runtime(f"{name} (call floor)", factory, Model.built(model), threads,
                            shapes_feeds, clock)
    except LSTMBenchError as exc:
        return str(exc).removeprefix(f"{name} (call floor): ").removeprefix(f"{name}: ")
