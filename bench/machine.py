"""What the figures were measured on: machine info, the GEMM peak, and resident memory.

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
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from lstm_bench.options import default_threads  # the one default thread count

LIBRARIES = ("lstm-bench", "numpy", "scipy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino",
             "torch", "onnxscript", "keras", "rich", "matplotlib")
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
    from lstm_bench.errors import LSTMBenchError

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


def peak_gflops(seconds: float = 0.2, size: int = 1024, clock=time.perf_counter_ns) -> float:
    """The best float32 GEMM rate NumPy reaches here in about ``seconds`` (all its threads)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
    flops = 2.0 * size ** 3
    best = float("inf")
    deadline = clock() + seconds * 1e9
    for _ in range(1000):
        start = clock()
        np.matmul(a, b, out=out)
        elapsed = clock() - start
        best = min(best, elapsed)
        if clock() >= deadline:
            break
    return flops / (max(best, 1) / 1e9) / 1e9


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
