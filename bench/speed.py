"""The machine's own speed, measured beside the rows: a fixed probe in every rotation.

A shared virtual machine changes speed for minutes at a time, for reasons no process inside
it can see (a neighbour on the host): on this project's 2-core AMD EPYC the medians of one
model's identical invocations spread by 14 %, one run 40 % faster than the one before, with
no load in the machine. The workers of one report often share that phase, so their
spread does not show it; between two saved reports it looks like a change of the code
(issue 21). The probe is fixed work (NumPy's small matrix-vector steps and the interpreter's
own loop, the two costs of an LSTM call of small size), timed as one more cell of every
round: its blocks sit among the rows' and see the phases they see. Its figure is the same in
every report of a machine, but for the machine's speed. Measured over 0.5 s windows of a
slow phase, the probe's parts followed ort-cpu's LSTM at 0.90 to 0.97 correlation (a GEMM,
compute-bound, at 0.72: the calibration's probe does not serve).

A report records it in ``machine.speed``, per thread count (``section``); compare divides each
worker's figures by its probe's (``at_equal_speed``), and ``bench.gate`` allows for what the
division may leave (``gate.TRACKING``).
"""

from __future__ import annotations

import platform

import numpy as np

from lstm_bench.bench.stats import Measurement

NAME = "machine speed probe"
STEPS = 20  # matrix-vector steps of a hidden size 50 LSTM's shape, per call ...
HIDDEN = 50
LOOP = 2000  # ... and an interpreter loop: about 0.3 ms a call here


class SpeedProbe:
    """The probe, run like a runtime (``run``, ``synchronize``) by the harness."""

    name = NAME
    device = "cpu"

    def __init__(self):
        rng = np.random.default_rng(0)
        self.weights = (0.1 * rng.standard_normal((4 * HIDDEN, HIDDEN))).astype(np.float32)
        self.state = rng.standard_normal(HIDDEN).astype(np.float32)

    def run(self, feeds) -> float:
        h, w = self.state, self.weights
        for _ in range(STEPS):
            gates = w @ h
            h = np.tanh(gates[:HIDDEN]) / (1.0 + np.exp(-gates[HIDDEN:2 * HIDDEN]))
        total = 0
        for i in range(LOOP):
            total += i
        return float(h[0]) + total

    def synchronize(self) -> None:
        pass


def identity() -> dict:
    """What the probe's figure depends on besides the machine: another NumPy or Python makes
    another probe, whose change says nothing of the machine."""
    return {"probe": NAME, "numpy": np.__version__, "python": platform.python_version()}


def section(measurements: list[Measurement]) -> list[dict]:
    """A report's ``machine.speed``: per thread count, the probe's median and its per-process
    medians (ms), with the probe's ``identity``."""
    return [{**identity(), "threads": m.threads, "median_ms": m.stats.median,
             "process_ms": [float(x) for x in m.process_ms], "calls": len(m.samples_ns)}
            for m in measurements]


# the workers' probe figures further apart than this: the machine changed speed during the bench
PHASE_NOTE = 0.15


def phase_note(entries: list[dict]) -> str | None:
    """A report's note where its workers ran at different machine speeds (their probe figures
    apart by more than ``PHASE_NOTE``): their figures come from different phases, which
    compare allows for (each worker's figures divided by its own probe's)."""
    for entry in entries:
        ms = entry["process_ms"]
        if len(ms) > 1 and max(ms) > (1 + PHASE_NOTE) * min(ms):
            return (f"the machine changed speed during this bench: its speed probe took "
                    f"{' / '.join(f'{x:.3g}' for x in ms)} ms in the worker processes "
                    f"(+{100 * (max(ms) / min(ms) - 1):.0f} %); the rows' figures mix those "
                    "phases, and compare judges each worker at its own speed")
    return None


def probe(doc: dict, threads) -> dict | None:
    """A report's ``machine.speed`` entry at ``threads``, or None (an older lstm-bench, a
    hand-made report)."""
    machine = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
    entries = machine.get("speed") if isinstance(machine.get("speed"), list) else []
    entry = next((e for e in entries if isinstance(e, dict) and e.get("threads") == threads),
                 None)
    try:
        ms = [float(entry["median_ms"]), *map(float, entry["process_ms"])]
    except (KeyError, TypeError, ValueError):
        return None
    return entry if all(np.isfinite(ms)) and min(ms) > 0 else None


def comparable(base: dict | None, new: dict | None) -> bool:
    """Both reports have the probe, and it is the same work (``identity``)."""
    return base is not None and new is not None and all(base.get(k) == new.get(k)
                                                         for k in identity())


def at_equal_speed(process_ms, centre_ms: float, entry: dict) -> np.ndarray:
    """A row's per-process figures divided by the probe's of the same worker process (all by
    the probe's median where the counts differ: a worker measured again without a crashed
    runtime), scaled so that their median is ``centre_ms`` / the probe's median."""
    rows = np.asarray(process_ms, dtype=np.float64)
    probes = np.asarray(entry["process_ms"], dtype=np.float64)
    ratios = rows / (probes if probes.size == rows.size else float(entry["median_ms"]))
    return ratios * (centre_ms / float(entry["median_ms"]) / max(float(np.median(ratios)),
                                                                  1e-12))
