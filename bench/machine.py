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
        "usable_cores": default_threads(),
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
