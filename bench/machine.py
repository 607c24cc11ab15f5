"""What the figures were measured on: machine info, the GEMM peak, and resident memory.

GEMM peak: a small float32 GEMM (``GemmProbe``) is timed by the harness as one more cell of
each thread count's rotation, at that thread count; its best block is the peak that the rows'
% of peak divide by, and a ``Calibration`` that was unsteady, too short, or slower than at
fewer threads gives none (see its ``problem``).

Peak memory: Python's ``tracemalloc`` cannot see the allocations of native runtimes, so the
probe reads the kernel's accounting of this process instead. On Linux it resets the
resident-set high-water mark (``echo 5 > /proc/self/clear_refs``) and reads ``VmHWM`` from
``/proc/self/status`` afterwards; the figure is that mark minus the resident set before the
runtime was opened: the most host memory the runtime added while opening its session and
running every shape once (weights, arenas, caches, buffers for the largest shape). GPU memory
is not included. Where the mark cannot be reset, the probe falls back to the growth of the
resident set (``VmRSS``), a lower bound; elsewhere it reports None.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from statistics import median

from lstm_bench.bench.stats import Measurement, rate
from lstm_bench.errors import LSTMBenchError
from lstm_bench.runtimes.registry import RUNTIMES


# One intra-op thread per runtime unless the user asks for more. With as many threads as
# cores, a runtime's thread pool competes with everything else on a small or shared machine:
# measured on this project's 2-core machine while other work ran, torch-cpu took 16-20 ms a
# call at batch 1 with 2 threads against 0.65 ms with 1 (docs/bench.md has the figures).
DEFAULT_THREADS = 1


def default_threads() -> int:
    """The one default thread count of every command: DEFAULT_THREADS (see above)."""
    return DEFAULT_THREADS


# The pip distributions whose versions every report records: lstm-bench's own stack, and what
# each registered runtime runs on (its ``libraries``).
CORE_LIBRARIES = ("lstm-bench", "numpy", "scipy", "onnx", "onnxscript", "keras", "rich",
                  "matplotlib")
LIBRARIES = tuple(dict.fromkeys(CORE_LIBRARIES + tuple(
    library for runtime in RUNTIMES.values() for library in runtime.libraries)))
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
              "ORT_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


THREADS_PER_CORE_LIMIT = 4  # --threads above 4 x the usable cores is refused


def usable_cores() -> int:
    """All cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_threads(values) -> list[int]:
    """Thread counts a sweep may use: 1 to 4 x the usable cores (more measures the
    scheduler, not the runtime, and a huge count would make a runtime try to start that many
    threads)."""
    limit = THREADS_PER_CORE_LIMIT * usable_cores()
    for value in values:
        if not 1 <= value <= limit:
            raise LSTMBenchError(f"--threads: {value} is outside 1..{limit} (at most "
                                 f"{THREADS_PER_CORE_LIMIT} x the {usable_cores()} usable cores)")
    return list(values)


BUSY_LOAD_PER_CORE = 0.5  # a 1-minute load average above half the cores: the machine is busy
# Other processes using more than this share of the cores during the measurement: busy.
BUSY_OTHER_SHARE = 0.25


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS does not say."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_snapshot() -> dict | None:
    """CPU seconds the whole machine and this process (with its finished children) have used,
    and the wall clock: two snapshots give the CPU that other processes took in between.

    The 1-minute load average cannot say that: it decays over minutes, so it still holds our
    own previous run (or the one before) when the next starts."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    own = os.times()
    return {"machine_s": (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK"),
            "own_s": own.user + own.system + own.children_user + own.children_system,
            "wall_s": time.monotonic()}


def other_cores(before: dict | None, after: dict | None) -> float | None:
    """How many cores other processes kept busy, on average, between two ``cpu_snapshot``s."""
    if not before or not after or after["wall_s"] <= before["wall_s"]:
        return None
    other = ((after["machine_s"] - before["machine_s"]) - (after["own_s"] - before["own_s"]))
    return round(max(other, 0.0) / (after["wall_s"] - before["wall_s"]), 3)


def busy_warning(before, after, threads: int = 1, other: float | None = None) -> str | None:
    """A warning when the machine was busy during a measurement.

    ``other``: the cores other processes kept busy meanwhile (``other_cores``); busy above a
    quarter of the usable cores. Without it (reports from older versions), the 1-minute load
    average: above half the usable cores before, or after with our own threads discounted."""
    cores = usable_cores()
    if other is not None:
        if other <= BUSY_OTHER_SHARE * cores:
            return None
        return (f"the machine was busy: other processes kept {other:.2f} of its {cores} cores "
                "busy during the measurement; other work shifts and spreads the figures, "
                "compare them only with care")
    limit = BUSY_LOAD_PER_CORE * cores
    busy = (before and before[0] > limit) or (after and after[0] - threads > limit)
    if not busy:
        return None
    shown = ", ".join(f"{name} {load[0]:.2f}" for name, load in (("before", before),
                                                               ("after", after)) if load)
    return (f"the machine was busy: 1-minute load average {shown} on {cores} cores; other "
            "work shifts and spreads the figures, compare them only with care")


@contextlib.contextmanager
def blas_threads(threads: int | None):
    """NumPy's OpenBLAS thread count set to ``threads`` for the block, then restored.

    The numpy and onnx-reference runtimes compute with NumPy, whose BLAS pool is sized at
    import; without this, their rows would record a thread count they did not use. Where
    NumPy's BLAS is not an OpenBLAS found in this process, nothing changes.
    """
    get, set_ = _openblas_threads_api()
    if not threads or get is None:
        yield
        return
    before = get()
    set_(int(threads))
    try:
        yield
    finally:
        set_(before)


def _openblas_threads_api():
    """(get, set) of the OpenBLAS that NumPy loaded, through ctypes, or (None, None)."""
    import ctypes

    import numpy  # noqa: F401  (loads its OpenBLAS)

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()
                     and line.split()[-1].startswith("/")}
    except OSError:
        return None, None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    set_.argtypes = [ctypes.c_int]
                    return get, set_
    return None, None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the lstm-bench checkout, when it is one."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine_info(threads=None) -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "thread_settings": {"threads": threads,
                            "env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ}},
        "git_commit": git_commit(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


GEMM_SIZE = 384  # float32 GEMM of 384 x 384: about 0.5 ms, at full speed on one or two cores
MIN_BLOCKS = 5  # a calibration of fewer blocks gives no % of peak ...
# ... nor one whose best quarter of blocks spread more than this below the best block: the
# machine's speed moved during the run and the peak is one lucky moment, not a rate it keeps
MAX_SPREAD = 0.20
# ... nor one at more threads that peaks below this share of the peak at fewer threads: a
# multi-threaded GEMM waits for its slowest thread, and on a busy machine one of its threads is
# often descheduled (seen here: 2 GFLOP/s at 2 threads, steadily, against 140 at 1 thread)
FEWER_THREADS_SHARE = 0.9


class GemmProbe:
    """A float32 GEMM (``size`` square) that the harness times in the rotation like a
    runtime's call: its blocks are spread over the same span, at the same thread count (NumPy's
    BLAS set by ``blas_threads``), interleaved with the runtimes' blocks.

    Small on purpose: at 1024 square one call took 30 to 60 ms here, and on a busy machine a
    call that long is almost always slowed by another process (a two-thread GEMM waits for
    its slower thread), so its rate moved 41..283 GFLOP/s between runs; 384 reaches the same
    best rate (155 GFLOP/s on one core of this Xeon) in under a millisecond."""

    name = "float32 GEMM"
    device = "cpu"

    def __init__(self, size: int = GEMM_SIZE):
        import numpy as np

        rng = np.random.default_rng(0)
        self.size = size
        self.a = rng.standard_normal((size, size), dtype=np.float32)
        self.b = rng.standard_normal((size, size), dtype=np.float32)
        self.out = np.empty_like(self.a)
        self.flops = 2 * size ** 3
        self.matmul = np.matmul

    def run(self, feeds):
        self.matmul(self.a, self.b, out=self.out)

    def synchronize(self) -> None:
        pass


@dataclass(frozen=True)
class Calibration:
    """The float32 GEMM rate at one thread count: each block's median rate, in the order
    the blocks were taken. The peak is the best block; the spread says how far the best
    quarter of the blocks fell below it (0: a quarter of the run reached the peak)."""

    threads: int | None
    size: int
    block_gflops: tuple[float, ...]
    threads_set: bool = True  # False: NumPy's BLAS thread count could not be set here
    fewer_threads_peak: float | None = None  # the best peak at fewer threads (``judged``)

    @classmethod
    def of(cls, threads, probe, samples_ns, blocks) -> Calibration:
        """From the harness cell that timed ``probe`` (samples and blocks)."""
        timed = Measurement(probe.name, 1, 1, threads, tuple(samples_ns), blocks=tuple(blocks))
        rates = tuple(float(probe.flops / max(ms, 1e-9) / 1e6) for ms in timed.block_ms)
        return cls(threads, probe.size, rates, blas_threads_settable())

    @property
    def peak_gflops(self) -> float | None:
        return max(self.block_gflops) if self.block_gflops else None

    @property
    def median_gflops(self) -> float | None:
        return float(median(self.block_gflops)) if self.block_gflops else None

    @property
    def spread(self) -> float | None:
        """1 - (the rate the best quarter of the blocks reached) / peak."""
        if not self.block_gflops:
            return None
        ranked = sorted(self.block_gflops, reverse=True)
        quarter = ranked[max(0, math.ceil(len(ranked) / 4) - 1)]
        return 1 - quarter / ranked[0]

    @property
    def problem(self) -> str | None:
        """Why this calibration gives no % of peak, or None when it is good enough."""
        if not self.threads_set:
            return "NumPy's BLAS thread count cannot be set here, so the GEMM did not run at " \
                   "the rows' thread count"
        if len(self.block_gflops) < MIN_BLOCKS:
            return f"only {len(self.block_gflops)} GEMM blocks (at least {MIN_BLOCKS} needed)"
        if self.fewer_threads_peak and self.peak_gflops < FEWER_THREADS_SHARE * \
                self.fewer_threads_peak:
            return (f"the GEMM at {self.threads} threads peaked at {self.peak_gflops:.0f} "
                    f"GFLOP/s, below the {self.fewer_threads_peak:.0f} it reached on fewer "
                    "threads: other processes held its threads up")
        if self.spread > MAX_SPREAD:
            return (f"the GEMM rate was unsteady: the best quarter of its "
                    f"{len(self.block_gflops)} blocks fell {self.spread:.0%} below the best "
                    f"({min(self.block_gflops):.0f}..{self.peak_gflops:.0f} GFLOP/s over the "
                    "run), so the machine's speed moved during the run")
        return None

    @property
    def usable_peak(self) -> float | None:
        """The peak the rows' % of peak divide by: None when ``problem``."""
        return None if self.problem else self.peak_gflops

    def as_dict(self) -> dict:
        return {"threads": self.threads, "dtype": "float32", "size": self.size,
                "peak_gflops": self.peak_gflops, "median_gflops": self.median_gflops,
                "spread": self.spread, "blocks": len(self.block_gflops),
                "threads_set": self.threads_set,
                "fewer_threads_peak": self.fewer_threads_peak, "reliable": self.problem is None,
                "problem": self.problem, "block_gflops": list(self.block_gflops)}

    @classmethod
    def from_dict(cls, doc: dict) -> Calibration:
        """Read back from a report; what is not a number of the right kind is dropped."""
        threads, size, rates = doc.get("threads"), doc.get("size"), doc.get("block_gflops")
        return cls(threads if isinstance(threads, int) and not isinstance(threads, bool)
                   else None, size if isinstance(size, int) and not isinstance(size, bool) else 0,
                   tuple(r for r in map(rate, rates if isinstance(rates, list) else ()) if r),
                   doc.get("threads_set") is not False, rate(doc.get("fewer_threads_peak")))

    @staticmethod
    def merge(parts) -> list[Calibration]:
        """One calibration per thread count from those of several worker processes."""
        by_threads: dict = {}
        for part in parts:
            by_threads.setdefault(part.threads, []).append(part)
        return [replace(group[0], block_gflops=tuple(r for c in group for r in c.block_gflops),
                        threads_set=all(c.threads_set for c in group))
                for group in by_threads.values()]


def judged(calibrations) -> list[Calibration]:
    """The calibrations of one sweep, each told the best peak at fewer threads."""
    def fewer(c):
        peaks = [o.peak_gflops for o in calibrations if o.peak_gflops and o.threads
                 and c.threads and o.threads < c.threads]
        return max(peaks) if peaks else None
    return [replace(c, fewer_threads_peak=fewer(c)) for c in calibrations]


def calibration_text(calibrations) -> str:
    """One phrase for the reports' machine line: the peak at each thread count."""
    if not calibrations:
        return "no GEMM peak measured"
    parts = []
    for c in calibrations:
        rate = f"{c.peak_gflops:.0f} GFLOP/s" if c.peak_gflops else "none"
        flag = "" if c.problem is None else " (unreliable: no % peak)"
        parts.append(f"{rate} at {c.threads} thread{'s' * (c.threads != 1)}{flag}")
    size = calibrations[0].size
    return f"float32 GEMM peak ({size}x{size}, best block): " + ", ".join(parts)


def calibration_notes(calibrations) -> list[str]:
    """A note for each thread count whose calibration gives no % of peak."""
    return [f"% peak left out at {c.threads} thread{'s' * (c.threads != 1)}: {c.problem}"
            for c in calibrations if c.problem]


def blas_threads_settable() -> bool:
    """Whether ``blas_threads`` can set NumPy's BLAS thread count in this process."""
    return _openblas_threads_api()[0] is not None


def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class MemoryProbe:
    """Peak host memory added between ``start()`` and ``peak_mb()`` (see the module doc)."""

    def __init__(self):
        self.baseline_kb = None
        self.method = None

    def start(self) -> None:
        self.baseline_kb = _status_kb("VmRSS")
        if self.baseline_kb is None:
            self.method = None
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM"
        except OSError:
            self.method = "VmRSS"

    def peak_mb(self) -> float | None:
        if self.method is None or self.baseline_kb is None:
            return None
        now = _status_kb(self.method)
        return None if now is None else max(now - self.baseline_kb, 0) / 1024
