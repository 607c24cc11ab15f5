"""Runtimes that crash on purpose, for tests/test_runtime_isolation.py: a native crash of any
library, made deterministic. A module of its own (not a test file) so that the child process
verify and bench run runtimes in can import the classes by name."""

from __future__ import annotations

import os
import signal
import time

from lstm_bench.model import as_model
from lstm_bench.runtimes.numpy_rt import NumpyRuntime


class SegfaultOnRun(NumpyRuntime):
    """Opens as the numpy runtime does, then dies of SIGSEGV in its first run."""

    name = "segfault-on-run"
    native_code = True

    def run(self, feeds):
        os.kill(os.getpid(), signal.SIGSEGV)


class KilledOnRun(NumpyRuntime):
    """Killed by SIGKILL in its first run, as the kernel's out-of-memory killer does."""

    name = "killed-on-run"
    native_code = True

    def run(self, feeds):
        os.kill(os.getpid(), signal.SIGKILL)


class AbortOnOpen(NumpyRuntime):
    """Dies of SIGABRT (a C++ ``std::terminate``) while it opens the model."""

    name = "abort-on-open"
    native_code = True

    def open(self, model, *, threads=None):
        os.abort()


class SegfaultOnLayer(NumpyRuntime):
    """Runs the model itself as the numpy runtime does; dies of SIGSEGV opening a model built
    in memory (verify's LSTM layer alone)."""

    name = "segfault-on-layer"
    native_code = True

    def open(self, model, *, threads=None):
        if as_model(model).path is None:
            os.kill(os.getpid(), signal.SIGSEGV)
        super().open(model, threads=threads)


class HangOnRun(NumpyRuntime):
    """Never returns from its first run (a native call that hangs)."""

    name = "hang-on-run"
    native_code = True

    def run(self, feeds):
        time.sleep(3600)


class SegfaultWhileTimed(NumpyRuntime):
    """Runs as the numpy runtime does until the seventh call in its process (past bench's trial,
    which calls once per shape), then dies of SIGSEGV: a crash only the timing meets."""

    name = "segfault-while-timed"
    native_code = True
    calls = 0  # in this process, over every instance (the runtime and its call floor)

    def run(self, feeds):
        SegfaultWhileTimed.calls += 1
        if SegfaultWhileTimed.calls > 6:
            os.kill(os.getpid(), signal.SIGSEGV)
        return super().run(feeds)


def worker_knowing_these(job):
    """bench's worker, with this module's runtimes registered: a worker process knows only the
    registered ones, and makes the plan's runtimes by name."""
    from lstm_bench.bench.runner import _worker
    from lstm_bench.runtimes.registry import RUNTIMES

    RUNTIMES[SegfaultWhileTimed.name] = SegfaultWhileTimed
    return _worker(job)
