"""One measurement: the raw samples of one runtime at one shape, and what follows from them.

The samples are kept as they were taken (integer nanoseconds from the harness's clock), with
the block each belongs to; every statistic is derived from them on first use with NumPy and
SciPy, so a report read back from JSON yields the very same figures.

The unit of the statistics is the **block**, not the call. A block is a run of consecutive
timed calls of one runtime at one shape; the harness spreads a cell's blocks over a span of
wall time and interleaves them with the other runtimes (``bench.harness``). Calls inside one
block share whatever state the machine is in (a shared virtual machine alternates between
fast and slow phases lasting seconds), so thousands of them are one sample of the machine,
not thousands: the central figure is the median of the block medians, its spread is the IQR
of the block medians, and its confidence interval counts blocks. When the block medians fall
into two separate groups (fast and slow phases), the measurement says so (``phases``)
instead of averaging them away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np

from lstm_bench.bench.floor import CallFloor

NOISE_THRESHOLD = 0.10  # IQR / median above this earns a noise warning (as torch.utils.benchmark)
CONFIDENCE = 0.95
# Two phases: the best split of the log block medians in two groups explains at least this
# share of their variance (a normal sample of 30 reaches about 0.72, a uniform one 0.80; the
# fast/slow windows recorded in issue 10 reach 0.90) ...
PHASE_SEPARATION = 0.85
PHASE_GAP = 0.10  # ... the groups' medians differ by at least 10 % ...
PHASE_MIN_SHARE = 0.15  # ... and each holds at least 15 % of the blocks (and 2 blocks),
PHASE_MIN_BLOCKS = 8  # ... of at least this many.


@dataclass(frozen=True)
class Stats:
    """Latency statistics in milliseconds."""

    min: float
    median: float
    mean: float
    p90: float
    p99: float
    max: float
    stddev: float
    iqr: float
    median_ci: tuple[float, float] | None  # distribution-free 95 % CI of the median, if n allows

    def as_dict(self) -> dict:
        return {"min": self.min, "median": self.median, "mean": self.mean, "p90": self.p90,
                "p99": self.p99, "max": self.max, "stddev": self.stddev, "iqr": self.iqr,
                "median_ci95": list(self.median_ci) if self.median_ci else None}


def median_ci(values) -> tuple[float, float] | None:
    """The order-statistic (binomial) 95 % interval of the median, as
    ``scipy.stats.quantile_test(values, p=0.5).confidence_interval()`` gives it (the same
    order statistics; tests/test_bench_harness.py checks it against SciPy), computed here:
    importing scipy.stats took a second of every bench. None when there are too few values
    (about six are needed)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n < 2:
        return None
    # Binomial(n, 1/2): log C(n, k) by the ratio C(n, k+1) / C(n, k) = (n - k) / (k + 1)
    k = np.arange(n)
    log_choose = np.concatenate([[0.0], np.cumsum(np.log(n - k) - np.log(k + 1))])
    cdf = np.cumsum(np.exp(log_choose - n * math.log(2.0)))
    tail = (1 - CONFIDENCE) / 2
    low = int(np.searchsorted(cdf, tail, side="left")) - 1  # SciPy: binom.ppf(tail) - 1
    # binom.isf(tail): the least k with P(X > k) = cdf[n - k - 1] (symmetry) <= tail
    high = n - int(np.searchsorted(cdf, tail, side="right"))
    if 0 <= low and high < n:
        return float(x[low]), float(x[high])
    return None


def latency_stats(samples_ns) -> Stats:
    """Statistics of raw nanosecond samples, in milliseconds, every call counted alike.

    Percentiles use NumPy's default (linear) interpolation; stddev is the sample standard
    deviation (ddof=1, 0 for a single sample); the median's confidence interval is
    ``median_ci``.
    """
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no samples")
    q25, q50, q75, q90, q99 = np.percentile(ms, [25, 50, 75, 90, 99])
    return Stats(min=float(ms.min()), median=float(q50), mean=float(ms.mean()), p90=float(q90),
                 p99=float(q99), max=float(ms.max()),
                 stddev=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
                 iqr=float(q75 - q25), median_ci=median_ci(ms))


@dataclass(frozen=True)
class Block:
    """Consecutive timed calls of one cell: which worker process, which round of the
    rotation, when it started (ns after the sweep's origin) and how many calls it holds."""

    process: int
    round: int
    start_ns: int
    calls: int

    def as_dict(self) -> dict:
        return {"process": self.process, "round": self.round, "start_s": self.start_ns / 1e9,
                "calls": self.calls}

    @classmethod
    def from_dict(cls, row: dict) -> Block:
        return cls(int(row["process"]), int(row["round"]), round(float(row["start_s"]) * 1e9),
                   int(row["calls"]))


@dataclass(frozen=True)
class Phases:
    """Block medians that fall into two separate groups: the machine's fast and slow phases."""

    fast_ms: float  # median of the fast group's block medians
    slow_ms: float
    fast_share: float  # share of the blocks in the fast group
    separation: float  # share of the variance (of log block medians) the split explains

    def as_dict(self) -> dict:
        return {"fast_ms": self.fast_ms, "slow_ms": self.slow_ms, "fast_share": self.fast_share,
                "separation": self.separation}


def find_phases(block_ms) -> Phases | None:
    """Two phases when the block medians split cleanly in two (see PHASE_*), else None.

    The split is the one that leaves the least variance inside the two groups (Otsu's
    threshold) over the logs of the sorted block medians.
    """
    x = np.sort(np.log(np.maximum(np.asarray(block_ms, dtype=np.float64), 1e-12)))
    n = x.size
    least = max(2, math.ceil(PHASE_MIN_SHARE * n))
    total = float(((x - x.mean()) ** 2).sum())
    if n < max(PHASE_MIN_BLOCKS, 2 * least) or total <= 0:
        return None
    best_k, best_between = 0, -1.0
    for k in range(least, n - least + 1):
        between = k * (x[:k].mean() - x.mean()) ** 2 + (n - k) * (x[k:].mean() - x.mean()) ** 2
        if between > best_between:
            best_k, best_between = k, between
    separation = best_between / total
    fast, slow = np.exp(np.median(x[:best_k])), np.exp(np.median(x[best_k:]))
    if separation < PHASE_SEPARATION or slow < fast * (1 + PHASE_GAP):
        return None
    return Phases(float(fast), float(slow), best_k / n, float(separation))


SEQUENCE, STREAMING = "sequence", "streaming"  # a row's mode: whole sequences, or chunks


class Shape(NamedTuple):
    """What a report groups its rows by; sorts whole sequences first, then by chunk, batch
    and sequence length."""

    mode: str
    chunk: int  # steps per call of a streaming row; 0 for whole sequences
    batch: int
    seq_len: int


@dataclass(frozen=True)
class RowKey:
    """Which row of a report a measurement is: a runtime at one shape and thread count. A
    streaming row (one call carries ``chunk`` steps, h and c carried over) is never the row of
    a whole sequence of that length."""

    runtime: str
    batch: int
    seq_len: int
    threads: int | None
    mode: str = SEQUENCE
    chunk: int = 0

    @property
    def shape(self) -> Shape:
        return Shape(self.mode, self.chunk, self.batch, self.seq_len)


@dataclass(frozen=True)
class Measurement:
    """The timed calls of one runtime at one (batch, seq_len, threads), with derived figures.

    ``blocks`` say which consecutive samples form one block (in order; their ``calls`` add up
    to the number of samples); without blocks, every call is its own block. ``flops`` is the
    LSTM layers' multiply-add count for one call (``lstm_flops``), and ``peak_gflops`` the
    machine's float32 GEMM peak at the row's thread count (``bench.machine.Calibration``);
    either may be None. ``cold`` holds the session creation and first-run times in ms, and
    ``peak_memory_mb`` the resident-memory high-water mark the runtime added (see
    ``bench.machine.MemoryProbe``). A streaming row (``mode``, ``bench.streaming``) times one
    call of a chunk of ``seq_len`` steps; ``stateful_variant`` says whether the model timed
    was the stateful variant of the one given. ``runtime_settings`` are the settings the
    runtime ran with (``Runtime.settings``: session options, quantization...), recorded in
    the row as they came.
    """

    runtime: str
    batch: int
    seq_len: int
    threads: int | None
    samples_ns: tuple[int, ...]
    device: str = "cpu"
    flops: int | None = None
    peak_gflops: float | None = None
    cold: dict | None = None
    peak_memory_mb: float | None = None
    blocks: tuple[Block, ...] = ()
    mode: str = SEQUENCE
    stateful_variant: bool | None = None
    runtime_settings: dict = field(default_factory=dict)
    # the runtime's per-call overhead floor, timed beside this row (``bench.floor``)
    call_floor: CallFloor | None = None

    def __post_init__(self):
        if self.blocks and sum(b.calls for b in self.blocks) != len(self.samples_ns):
            raise ValueError(f"{self.runtime}: blocks hold {sum(b.calls for b in self.blocks)} "
                             f"calls but there are {len(self.samples_ns)} samples")

    @cached_property
    def block_ms(self) -> np.ndarray:
        """The median of each block, in ms, in the order the blocks were taken."""
        ms = np.asarray(self.samples_ns, dtype=np.float64) / 1e6
        if not self.blocks:
            return ms
        edges = np.cumsum([0] + [b.calls for b in self.blocks])
        return np.array([np.median(ms[a:b]) for a, b in zip(edges[:-1], edges[1:])])

    @cached_property
    def process_ms(self) -> np.ndarray:
        """Each worker process's own central figure (the median of its block medians), in
        process order: one value for a row measured in one process (or without blocks). The
        processes are the invocations of the code a report holds, the unit that saved
        reports are compared over (``bench.compare``)."""
        if not self.blocks:
            return np.array([float(np.median(self.block_ms))])
        ids = np.array([b.process for b in self.blocks])
        return np.array([float(np.median(self.block_ms[ids == p])) for p in np.unique(ids)])

    @cached_property
    def stats(self) -> Stats:
        """Call-level statistics, except the median and its CI: the median of the block
        medians (the central figure) and its interval over blocks."""
        calls = latency_stats(self.samples_ns)
        blocks = self.block_ms
        return Stats(min=calls.min, median=float(np.median(blocks)), mean=calls.mean,
                     p90=calls.p90, p99=calls.p99, max=calls.max, stddev=calls.stddev,
                     iqr=calls.iqr, median_ci=median_ci(blocks))

    @cached_property
    def block_iqr(self) -> float:
        q25, q75 = np.percentile(self.block_ms, [25, 75])
        return float(q75 - q25)

    @cached_property
    def phases(self) -> Phases | None:
        return find_phases(self.block_ms)

    @property
    def streaming(self) -> bool:
        return self.mode == STREAMING

    @property
    def chunk(self) -> int:
        """The steps one call carries: a streaming row's seq_len, 0 for whole sequences."""
        return self.seq_len if self.streaming else 0

    @property
    def key(self) -> RowKey:
        return RowKey(self.runtime, self.batch, self.seq_len, self.threads, self.mode,
                      self.chunk)

    @property
    def reps(self) -> int:
        return len(self.samples_ns)

    @property
    def noise(self) -> float:
        """IQR of the block medians / their median: the relative spread of the measurement."""
        return self.block_iqr / self.stats.median if self.stats.median > 0 else 0.0

    @property
    def noisy(self) -> bool:
        return self.noise > NOISE_THRESHOLD

    @property
    def _median_s(self) -> float:
        return max(self.stats.median / 1e3, 1e-9)  # a clock that did not move: 1 ns

    @property
    def sequences_per_s(self) -> float:
        return self.batch / self._median_s

    @property
    def steps_per_s(self) -> float:
        return self.batch * self.seq_len / self._median_s

    def throughput(self) -> dict:
        """The JSON row's rates. A streaming row (one chunk of seq_len steps per call) has no
        whole sequences: its rates are steps and calls per second, never sequences."""
        if self.streaming:
            return {"steps_per_s": self.steps_per_s, "calls_per_s": 1 / self._median_s}
        return {"sequences_per_s": self.sequences_per_s, "steps_per_s": self.steps_per_s}

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None else self.flops / self._median_s / 1e9

    @property
    def peak_share(self) -> float | None:
        if self.gflops is None or not self.peak_gflops:
            return None
        return self.gflops / self.peak_gflops

    def label(self) -> str:
        return f"{self.runtime} b={self.batch} T={self.seq_len} threads={self.threads}"

    def warnings(self) -> list[str]:
        out = []
        if self.noisy:
            out.append(f"{self.label()}: IQR over blocks is {self.noise:.0%} of the median")
        if self.phases:
            p = self.phases
            out.append(f"{self.label()}: two phases, {p.fast_share:.0%} of the blocks at "
                       f"{p.fast_ms:.4g} ms and {1 - p.fast_share:.0%} at {p.slow_ms:.4g} ms "
                       "(the machine alternated between a fast and a slow state; the median "
                       "is not a stable figure: compare models live, `lstm-bench compare "
                       "A.onnx B.onnx`)")
        return out

    def warning(self) -> str | None:
        found = self.warnings()
        return "; ".join(found) if found else None

    def as_dict(self) -> dict:
        """The JSON row: every figure plus the raw samples and their blocks."""
        stats = self.stats
        return {
            "runtime": self.runtime, "device": self.device, "batch": self.batch,
            "seq_len": self.seq_len, "threads": self.threads,
            "latency_ms": stats.as_dict(),
            "throughput": self.throughput(),
            "noise_iqr_over_median": self.noise, "noisy": self.noisy,
            "phases": self.phases.as_dict() if self.phases else None,
            "flops": self.flops, "gflops": self.gflops, "peak_gflops": self.peak_gflops,
            "peak_share": self.peak_share,
            "cold_start_ms": self.cold, "peak_memory_mb": self.peak_memory_mb,
            "reps": self.reps, "timed_total_s": sum(self.samples_ns) / 1e9,
            "block_count": len(self.block_ms),
            "processes": sorted({b.process for b in self.blocks}) if self.blocks else None,
            "samples_ns": list(self.samples_ns),
            "blocks": [b.as_dict() for b in self.blocks], **self.runtime_settings,
            "call_floor": self.call_floor.as_dict() if self.call_floor else None,
            **(self._streaming_fields() if self.streaming else {}),
        }

    def _streaming_fields(self) -> dict:
        """A streaming row's own fields: its chunk, and p50 / p99 per call and per step."""
        stats, chunk = self.stats, self.chunk
        return {"mode": self.mode, "chunk": chunk, "stateful_variant": self.stateful_variant,
                "per_call_ms": {"p50": stats.median, "p99": stats.p99},
                "per_step_ms": {"p50": stats.median / chunk, "p99": stats.p99 / chunk}}

    @classmethod
    def from_dict(cls, row: dict) -> Measurement:
        """A JSON row (``as_dict``); its keys not written by ``as_dict`` are the runtime's
        settings."""
        return cls(runtime=row["runtime"], batch=int(row["batch"]), seq_len=int(row["seq_len"]),
                   threads=row.get("threads"), samples_ns=tuple(int(s) for s in row["samples_ns"]),
                   device=row.get("device", "cpu"), flops=row.get("flops"),
                   peak_gflops=rate(row.get("peak_gflops")), cold=row.get("cold_start_ms"),
                   peak_memory_mb=row.get("peak_memory_mb"),
                   blocks=tuple(Block.from_dict(b) for b in row.get("blocks") or ()),
                   mode=row.get("mode") or SEQUENCE, stateful_variant=row.get("stateful_variant"),
                   runtime_settings={k: v for k, v in row.items() if k not in ROW_FIELDS},
                   call_floor=CallFloor.from_dict(row.get("call_floor")))


# the keys ``Measurement.as_dict`` writes; any other key of a row is a runtime setting
ROW_FIELDS = {"runtime", "device", "batch", "seq_len", "threads", "latency_ms", "throughput",
              "noise_iqr_over_median", "noisy", "phases", "flops", "gflops", "peak_share",
              "peak_gflops", "cold_start_ms", "peak_memory_mb", "reps", "timed_total_s",
              "block_count", "processes", "samples_ns", "blocks", "mode", "chunk",
              "stateful_variant", "per_call_ms", "per_step_ms", "call_floor"}


def rate(value) -> float | None:
    """A positive finite number read from a report, else None (a hand-edited file may hold
    anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def merge(parts: list[Measurement]) -> Measurement:
    """One measurement from the same cell measured in several worker processes: samples and
    blocks concatenated (each block keeps its process), cold start as the median over the
    processes, peak memory as the largest."""
    first = parts[0]
    if len(parts) == 1:
        return first
    colds = [p.cold for p in parts if p.cold]
    cold = ({k: float(np.median([c[k] for c in colds if k in c])) for k in colds[0]}
            if colds else None)
    memory = [p.peak_memory_mb for p in parts if p.peak_memory_mb is not None]
    return replace(first, samples_ns=tuple(s for p in parts for s in p.samples_ns), cold=cold,
                   peak_memory_mb=max(memory) if memory else None,
                   blocks=tuple(b for p in parts for b in p.blocks),
                   call_floor=CallFloor.merged([p.call_floor for p in parts]))
