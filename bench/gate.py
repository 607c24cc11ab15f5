"""The saved-report gate's statistics (``bench.compare``, ``bench.series``): the interval of
a change over the worker processes' own figures, what a busy machine may have added, and
what the machine's own change of speed (``bench.speed``) may have left in it.

The unit is the invocation: each worker process of a report is one fresh invocation of the
code, and the spread of their medians is the noise a saved report carries (issue 21). Kept
apart from ``bench.compare`` (which reads reports and judges their rows) so that the
numbers and the reasons for them sit in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lstm_bench.bench.machine import busy_warning, usable_cores

# the saved-report change's two-sided interval: a regression needs its low end above the
# threshold, a one-sided 95 % bound (as equivalence tests use a 90 % interval); the threshold
# itself is a margin on top, so identical code almost never reaches it (docs/bench.md)
INTERVAL = 0.90
# the between-invocation spread (standard deviation of log medians) assumed for a report of
# one process: identical single-process pairs measured here (issue 21) differed by 2-4 %,
# up to 10 %, which an invocation spread of about 3 % explains; 4 % leaves a margin
ASSUMED_SPREAD = 0.04
SPREAD_FLOOR = 0.01  # three processes can agree by chance: never trust a spread below 1 %
# what a busy machine may add to a figure (``busy_allowance``). With a core to spare for each
# of the row's threads: up to 20 % when other processes take every core (the identical pairs
# of issue 21, measured with both cores busy, shifted by up to +8.7 %), in proportion to the
# share they took. With fewer cores than runnable threads the kernel slices the time, and a
# call can cost several times its figure (numpy, 1 thread, beside two busy loops and other
# work on 2 cores: 3.9 x here): the load then may explain any change, stated as +900 %.
BUSY_EFFECT = 0.20
OVERSUBSCRIBED = 9.0
INCONCLUSIVE = "inconclusive: busy machine"
# the machine's own speed (``bench.speed``): a row's figures are divided by the speed probe's
# of the same worker process. The rows follow the probe at a slope below 1, and not the same
# for every runtime: between the workers of one report, across phases of 50 to 100 %, numpy's
# rows at 0.84 to 1.03, ort-cpu's at 0.49 to 1.0 (the 2-core AMD EPYC of issue 21). The division
# may thus be off by a share of the machine's change: 30 % of it is allowed, both ways (every
# ordered pair of 40 idle reports of identical code, across the machine's phases: 1.0 % false
# alarms, against 28.3 % without the probe; docs/bench.md).
# Where that allowance alone keeps a row from a regression, or the machine changed (beyond
# SPEED_NOISE) and the row is not surely within the threshold, the row is SPEED_CHANGED: not
# a failure, and not a pass
TRACKING = 0.3
# a change of the machine's speed below this is its probe's own noise (identical reports on a
# steady machine: up to 3 %): it widens the interval, but leaves a pass a pass
SPEED_NOISE = 0.05
SPEED_CHANGED = "inconclusive: machine speed changed"
LIVE_COMMAND = "lstm-bench compare BASE.onnx NEW.onnx"


def _pct(log_ratio: float) -> float:
    return 100.0 * math.expm1(log_ratio)


@dataclass(frozen=True)
class Spread:
    """The noise of log(new / base) that the interval is built from: its standard error,
    degrees of freedom (inf: an assumed spread) and what it is, in words."""

    error: float
    df: float
    text: str
    measured: float | None  # the pooled spread of one invocation (None: one side assumed)


def process_spread(base_ms, new_ms) -> Spread:
    """The standard error of the log ratio of two reports' central figures, from the spread
    of their per-process figures (``Measurement.process_ms``): pooled where both have two or
    more processes; ``ASSUMED_SPREAD`` for a side with one."""
    sides = [np.log(np.maximum(np.asarray(ms, dtype=np.float64), 1e-12))
             for ms in (base_ms, new_ms)]
    counts = [x.size for x in sides]
    measured = [x for x in sides if x.size >= 2]
    if len(measured) == 2:
        df = counts[0] + counts[1] - 2
        pooled = math.sqrt(sum(((x - x.mean()) ** 2).sum() for x in sides) / df)
        sd = max(pooled, SPREAD_FLOOR)
        return Spread(sd * math.sqrt(1 / counts[0] + 1 / counts[1]), df,
                  f"{counts[0]}+{counts[1]} proc, {100 * sd:.1f} %", sd)
    variance, df = 0.0, math.inf
    for x in sides:
        if x.size >= 2:
            sd = max(float(x.std(ddof=1)), SPREAD_FLOOR)
            variance += sd ** 2 / x.size
            df = x.size - 1
        else:
            variance += ASSUMED_SPREAD ** 2
    return Spread(math.sqrt(variance), df,
                  f"{counts[0]}+{counts[1]} proc, {100 * ASSUMED_SPREAD:g} % assumed", None)


def _verdict(change: float, half: float, margin: float, busy, track: float,
             may_hide: bool) -> str:
    """The verdict of a change whose interval is ``change`` +- ``half``, widened by each
    report's load allowance (``busy``: base, new) on its side and by ``track`` both ways
    (``may_hide``: a change of the machine's speed beyond ``SPEED_NOISE``)."""
    if change - half - busy[1] - track > margin:
        return "regression"
    if change - half - busy[1] > margin:  # a regression but for the machine's change of speed
        return SPEED_CHANGED
    if change - half + busy[0] > margin:
        # a regression but for NEW's load, or one that BASE's load may hide
        return INCONCLUSIVE
    if may_hide and change + half + busy[0] + track > margin:
        # the machine changed speed and the row is not surely within the threshold: the
        # division by its speed may hide a regression (with a steady machine such a row is
        # "within noise" or "slower": not proven either way, as ever)
        return SPEED_CHANGED
    if change - half - busy[1] - track > 0:
        return "slower"
    if change + half + busy[0] + track < 0:
        return "faster"
    return "within noise"


def compare_processes(base_ms, new_ms, *, fail_above: float, busy=(0.0, 0.0),
                      speed: float | None = None) -> dict:
    """The saved-report verdict of one row from its per-process figures (see the module doc).
    ``busy``: (base, new) allowances, as log ratios, for the load each report saw. ``speed``:
    log(NEW's speed probe / BASE's) where the figures were divided by the probe's (``TRACKING``
    of it is allowed both ways); None where they were not. Returns the Change fields it
    decides."""
    from scipy.stats import t as student

    base = float(np.median(np.asarray(base_ms, dtype=np.float64)))
    new = float(np.median(np.asarray(new_ms, dtype=np.float64)))
    change = math.log(max(new, 1e-12) / max(base, 1e-12))
    spread = process_spread(base_ms, new_ms)
    half = float(student.ppf(0.5 + INTERVAL / 2, spread.df)) * spread.error
    track = TRACKING * abs(speed or 0.0)
    low, high = change - half - busy[1] - track, change + half + busy[0] + track
    verdict = _verdict(change, half, math.log1p(fail_above / 100), busy, track,
                       abs(speed or 0.0) >= SPEED_NOISE)
    score = change / spread.error if spread.error > 0 else math.copysign(math.inf, change)
    busy_sides = "+".join(side for side, w in zip(("base", "new"), busy) if w)
    text = spread.text + (f", {busy_sides} busy" if busy_sides else "") + (
        "" if speed is None else f", machine {_pct(speed):+.0f} %")
    return {"speed_pct": None if speed is None else _pct(speed),
            "change_pct": _pct(change), "p_slower": float(student.sf(score, spread.df)),
            "p_faster": float(student.cdf(score, spread.df)), "verdict": verdict,
            "low_pct": _pct(low), "high_pct": _pct(high), "spread": text,
            "spread_pct": None if spread.measured is None else 100 * spread.measured}


def busy_cores(doc: dict) -> float:
    """The cores other processes kept busy while a report was measured, where that made it
    busy by ``machine.busy_warning`` (from the load average where the report predates the
    measured figure); 0 where it was not busy."""
    machine = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
    load = machine.get("load_average") if isinstance(machine.get("load_average"), dict) else {}
    threads = max((t for t in (machine.get("thread_settings") or {}).get("threads") or [1]
                   if isinstance(t, int)), default=1)
    before, after, other = load.get("before"), load.get("after"), load.get("other_cores")
    try:
        if not busy_warning(before, after, threads, other):
            return 0.0
        taken = other if other is not None else max((before or [0])[0],
                                                    (after or [threads])[0] - threads)
        return max(0.0, float(taken))
    except (TypeError, IndexError, ValueError):  # a hand-edited load figure: not busy
        return 0.0


def busy_allowance(taken: float, threads: int | None) -> float:
    """What other processes keeping ``taken`` cores busy may have added to a figure of
    ``threads`` threads, as a fraction (see ``BUSY_EFFECT``, ``OVERSUBSCRIBED``)."""
    if taken <= 0:
        return 0.0
    cores = usable_cores()
    if taken + (threads or 1) > cores:
        return OVERSUBSCRIBED
    return BUSY_EFFECT * min(1.0, taken / cores)


def spread_summary(changes) -> str | None:
    """Which spread the intervals of saved-report rows were built from, in one sentence."""
    judged = [c for c in changes if c.low_pct is not None]
    if not judged:
        return None
    measured = [c.spread_pct for c in judged if c.spread_pct is not None]
    counts = sorted({(c.base_processes, c.new_processes) for c in judged})
    text = "Spread used: the worker processes' own medians (BASE+NEW processes per row: " + \
        ", ".join(f"{b}+{n}" for b, n in counts) + ")"
    if measured:
        text += f", {min(measured):.1f} to {max(measured):.1f} % per invocation"
    assumed = len(judged) - len(measured)
    if assumed:
        text += (f"; {assumed} row(s) with a side of one process: {100 * ASSUMED_SPREAD:g} % "
                 "assumed")
    return text + "."
