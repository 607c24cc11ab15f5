"""Where a series of runs changed: ``ruptures``' PELT segments the runs' log medians (an l1
cost: a median per segment, so that a busy run weighs by its distance, not its square), and
compare's saved-report test (``bench.gate.compare_processes``) between the two segments on
either side of each break decides whether it is a change point (issue 23).

Why not each run against the one before: two runs carry three worker processes each, and
that test cannot tell a 10 % step from noise (3 % between invocations gives a 90 % interval
of about +-5 %); a segment of ten runs carries thirty, and the step stands out. Why the test
after PELT: the penalty only says where a break is likelier than none; the test says whether
the change is beyond the processes' noise and above ``--fail-above``, as compare's gate does.
``tools/changepoints.py`` measures both methods (docs/history.md, "Change points").
"""

from __future__ import annotations

import math

import numpy as np

from lstm_bench.bench.compare import Change
from lstm_bench.bench.gate import ASSUMED_SPREAD, SPREAD_FLOOR, busy_allowance, compare_processes

SEGMENT_TEST = "t interval (segments' per-process medians)"
# a series' own noise (the MAD of consecutive differences) is trusted from this many runs on;
# shorter ones are judged by their processes' spread alone (in three runs with a step at the
# last, half the differences are the step)
OWN_NOISE_RUNS = 6
NOISE_FLOOR = 0.005  # never assume one run's median is known better than 0.5 %


def run_noise(points) -> float:
    """The noise (log sd) of one run's median: the larger of what the worker processes show
    (their pooled spread over the square root of their count; ``ASSUMED_SPREAD`` for runs of
    one process) and, from ``OWN_NOISE_RUNS`` runs on, the series' own (robust to steps and
    outliers: 1.4826 MAD of the consecutive differences, over the square root of 2)."""
    logs = [np.log(np.maximum(p.measurement.process_ms, 1e-12)) for p in points]
    several = [x for x in logs if x.size >= 2]
    if several:
        df = sum(x.size - 1 for x in several)
        pooled = math.sqrt(sum(((x - x.mean()) ** 2).sum() for x in several) / df)
        processes = float(np.median([x.size for x in several]))
        noise = max(pooled, SPREAD_FLOOR) / math.sqrt(processes)
    else:
        noise = ASSUMED_SPREAD
    medians = np.log([max(p.measurement.stats.median, 1e-12) for p in points])
    if len(medians) >= OWN_NOISE_RUNS:
        noise = max(noise, 1.4826 * float(np.median(np.abs(np.diff(medians)))) / math.sqrt(2))
    return max(noise, NOISE_FLOOR)


def pelt_breaks(points, cost: str = "l1") -> list[int]:
    """The indexes (into ``points``) where PELT starts a new segment, on the runs' log medians,
    sigma = ``run_noise``. ``cost`` "l2" (squared residuals, a mean per segment) takes BIC's
    penalty per break, ``2 sigma^2 log n`` (two parameters: a location and a mean); "l1"
    (absolute residuals, a median per segment: history's) takes the same over sigma,
    ``2 sigma log n``, in the units of its cost. Laplace's own BIC, ``sigma log n / sqrt 2``,
    gave twice the false alarms on synthetic series with busy runs (whose tail is heavier
    than Laplace's) and caught fewer 10 % steps (docs/history.md, "Change points")."""
    import ruptures

    if len(points) < 2:
        return []
    signal = np.log([max(p.measurement.stats.median, 1e-12) for p in points]).reshape(-1, 1)
    noise = run_noise(points)
    penalty = (2 * noise ** 2 if cost == "l2" else 2 * noise) * math.log(len(points))
    model = ruptures.costs.cost_factory(cost)
    # ruptures' l1 asks two runs a segment: a step at the latest run would wait for the next,
    # and so would a step between runs of one process each (one point a level)
    model.min_size = 1
    ends = ruptures.Pelt(custom_cost=model, min_size=1, jump=1).fit(signal).predict(pen=penalty)
    return [end for end in ends if end < len(points)]


def beyond(change: Change | None, fail_above: float) -> bool:
    """Beyond noise *and* by more than fail_above percent either way: compare's regressions,
    and improvements of the same size."""
    return change is not None and (change.regression or (change.verdict == "faster"
                                                         and change.change_pct < -fail_above))


def segment_changes(points, fail_above: float, cost: str = "l1") -> list[tuple[int, Change]]:
    """(index, change) of each break (``pelt_breaks``) whose two segments differ ``beyond``
    noise and the threshold, judged over every worker process of their runs
    (``segment_test``).

    A run recorded busy is no evidence of the series' level: busy runs are left out wherever
    the series has others (a series of busy runs only is judged whole, each side of a test
    widened by the allowance its runs' loads call for, as compare widens a busy report's
    side). So is a run that PELT sets apart alone between two segments that do not differ
    (an outlier: a load that went unrecorded), and the rest is segmented again; the latest run
    alone stays a segment, as nothing after it tells yet."""
    kept = [i for i, p in enumerate(points) if not p.busy] or list(range(len(points)))
    while True:
        runs = [points[i] for i in kept]
        bounds = [0, *pelt_breaks(runs, cost), len(runs)]
        lone = {one for before, one, after, end in zip(bounds, bounds[1:], bounds[2:], bounds[3:])
                if after - one == 1 and not beyond(
                    segment_test(runs[before:one], runs[after:end], fail_above), fail_above)}
        if not lone:
            break
        kept = [i for j, i in enumerate(kept) if j not in lone]
    found = []
    for start, cut, end in zip(bounds, bounds[1:], bounds[2:]):
        change = segment_test(runs[start:cut], runs[cut:end], fail_above)
        if beyond(change, fail_above):
            found.append((kept[cut], change))
    return found


def segment_test(base_runs, new_runs, fail_above: float) -> Change:
    """Compare's saved-report test between two segments, over every worker process of their
    runs, each side widened by the largest busy allowance of its runs (``busy_allowance``)."""
    sides = (base_runs, new_runs)
    base, new = (np.concatenate([p.measurement.process_ms for p in side]) for side in sides)
    busy = tuple(math.log1p(max(busy_allowance(p.busy, p.measurement.threads) for p in side))
                 for side in sides)
    figures = compare_processes(base, new, fail_above=fail_above, busy=busy)
    return Change(new_runs[0].measurement.key, float(np.median(base)), float(np.median(new)),
                  test=SEGMENT_TEST, base_processes=base.size, new_processes=new.size, **figures)
