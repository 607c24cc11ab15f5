"""The call time limit of a runtime's first calls (``harness.open_runtime``, ``bench.trial``):
a runaway model ends the process with one line."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading

from lstm_bench.files import limit_seconds


def overran(what: str, seconds: float) -> str:
    """The words for a runaway call stopped by LSTM_BENCH_CALL_TIMEOUT_S."""
    return (f"{what} took longer than {seconds:g} s and was stopped (a runaway model, such as "
            "a Loop with a huge trip count?); set LSTM_BENCH_CALL_TIMEOUT_S to allow more")


@contextlib.contextmanager
def deadline(what: str):
    """End the process (one line on stderr, exit 2) when the block takes longer than
    LSTM_BENCH_CALL_TIMEOUT_S seconds.

    For a runaway model: a Loop whose trip count is computed at run time can keep a runtime's
    native call busy for days, and nothing in Python can interrupt a native call. A timer
    thread can still end the process, which is what the user would do by hand. It guards the
    first calls of each runtime (open, first run, one run of each shape); once those returned
    in time, the timed calls take as long.
    """
    seconds = limit_seconds("LSTM_BENCH_CALL_TIMEOUT_S")

    def expire():
        # a worker process (--processes) leaves the one line to its parent (bench.runner)
        if multiprocessing.parent_process() is not None:
            os._exit(2)
        sys.stderr.write(f"lstm-bench: error: {overran(what, seconds)}\n")
        sys.stderr.flush()
        os._exit(2)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
