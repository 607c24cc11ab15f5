"""Every runtime lstm-bench knows, by name. Written out by hand; extend it here."""

from __future__ import annotations

from runtimes.ort_cpu import OrtRuntime

# name -> factory returning a fresh, unopened runtime
RUNTIMES = {
    "ort-cpu": OrtRuntime,
}


def get_runtime(name: str):
    from lstm_bench.errors import LSTMBenchError

    if name not in RUNTIMES:
        raise LSTMBenchError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return RUNTIMES[name]()
