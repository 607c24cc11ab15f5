"""One measurement: the raw samples of one runtime at one shape, and what follows from them.

The samples are kept as they were taken (integer nanoseconds from the harness's clock); every
statistic is derived from them on first use with NumPy and SciPy, so a report read back from
JSON yields the very same figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

NOISE_THRESHOLD = 0.10  # IQR / median above this earns a noise warning (as torch.utils.benchmark)
CONFIDENCE = 0.95


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


def latency_stats(samples_ns) -> Stats:
    """Statistics of raw nanosecond samples, in milliseconds.

    Percentiles use NumPy's default (linear) interpolation; stddev is the sample standard
    deviation (ddof=1, 0 for a single sample). The median's confidence interval is the
    order-statistic (binomial) interval of ``scipy.stats.quantile_test``; it needs about six
    samples or more and is None below that.
    """
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no samples")
    q25, q50, q75, q90, q99 = np.percentile(ms, [25, 50, 75, 90, 99])
    ci = None
    if ms.size >= 2:
        from scipy.stats import quantile_test

        interval = quantile_test(ms, q=q50, p=0.5).confidence_interval(CONFIDENCE)
        if math.isfinite(interval.low) and math.isfinite(interval.high):
            ci = (float(interval.low), float(interval.high))
    return Stats(min=float(ms.min()), median=float(q50), mean=float(ms.mean()), p90=float(q90),
                 p99=float(q99), max=float(ms.max()),
                 stddev=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
                 iqr=float(q75 - q25), median_ci=ci)


@dataclass(frozen=True)
class Measurement:
    """The timed calls of one runtime at one (batch, seq_len, threads), with derived figures.

    ``flops`` is the LSTM layers' multiply-add count for one call (``lstm_flops``), and
    ``peak_gflops`` the machine's float32 GEMM rate measured at start; either may be None.
    ``cold`` holds the session creation and first-run times in ms, and ``peak_memory_mb`` the
    resident-memory high-water mark the runtime added (see ``bench.machine.MemoryProbe``).
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
    extra: dict = field(default_factory=dict)

    @cached_property
    def stats(self) -> Stats:
        return latency_stats(self.samples_ns)

    @property
    def reps(self) -> int:
        return len(self.samples_ns)

    @property
    def noise(self) -> float:
        """IQR / median: the relative spread of the samples."""
        return self.stats.iqr / self.stats.median if self.stats.median > 0 else 0.0

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

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None else self.flops / self._median_s / 1e9

    @property
    def peak_share(self) -> float | None:
        if self.gflops is None or not self.peak_gflops:
            return None
        return self.gflops / self.peak_gflops

    def key(self) -> tuple:
        return (self.runtime, self.batch, self.seq_len, self.threads)

    def warning(self) -> str | None:
        if self.noisy:
            return (f"{self.runtime} b={self.batch} T={self.seq_len} threads={self.threads}: "
                    f"IQR is {self.noise:.0%} of the median")
        return None

    def as_dict(self) -> dict:
        """The JSON row: every figure plus the raw samples."""
        stats = self.stats
        return {
            "runtime": self.runtime, "device": self.device, "batch": self.batch,
            "seq_len": self.seq_len, "threads": self.threads,
            "latency_ms": stats.as_dict(),
            "throughput": {"sequences_per_s": self.sequences_per_s,
                           "steps_per_s": self.steps_per_s},
            "noise_iqr_over_median": self.noise, "noisy": self.noisy,
            "flops": self.flops, "gflops": self.gflops, "peak_share": self.peak_share,
            "cold_start_ms": self.cold, "peak_memory_mb": self.peak_memory_mb,
            "reps": self.reps, "timed_total_s": sum(self.samples_ns) / 1e9,
            "samples_ns": list(self.samples_ns), **self.extra,
        }

    @classmethod
    def from_dict(cls, row: dict, peak_gflops: float | None = None) -> Measurement:
        known = {"runtime", "device", "batch", "seq_len", "threads", "latency_ms", "throughput",
                 "noise_iqr_over_median", "noisy", "flops", "gflops", "peak_share",
                 "cold_start_ms", "peak_memory_mb", "reps", "timed_total_s", "samples_ns"}
        return cls(runtime=row["runtime"], batch=int(row["batch"]), seq_len=int(row["seq_len"]),
                   threads=row.get("threads"), samples_ns=tuple(int(s) for s in row["samples_ns"]),
                   device=row.get("device", "cpu"), flops=row.get("flops"),
                   peak_gflops=peak_gflops, cold=row.get("cold_start_ms"),
                   peak_memory_mb=row.get("peak_memory_mb"),
                   extra={k: v for k, v in row.items() if k not in known})
