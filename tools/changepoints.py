"""History's change points measured: lstm-bench's consecutive-run test against a maintained
library's segmentation (``ruptures``' PELT), on recorded series or synthetic ones (issue 23).
A benchmark, not a test.

    python -m tools.changepoints --synthetic [--series 500] [--runs 20] [--seed 0]
    python -m tools.changepoints --db PATH|URL [--fail-above 5]

Methods, each giving the runs where a series changed:

- ``consecutive``: what ``history`` did until issue 23: each run against the one before by
  compare's saved-report test (``Point.change``, from ``bench.series.judge``), flagged beyond
  noise and by more than ``--fail-above`` percent.
- ``pelt-l2``, ``pelt-l1``: ``ruptures.Pelt`` alone on the runs' log medians, l2 cost with
  BIC's penalty ``2 sigma^2 log n``, or l1 cost with ``2 sigma log n``
  (``bench.changepoints.pelt_breaks``); no size threshold.
- ``pelt-l2+test``, ``pelt-l1+test``: those breaks kept only where compare's test between the
  two segments says beyond noise and the threshold, busy runs and lone outliers left out
  (``bench.changepoints.segment_changes``). ``pelt-l1+test`` is what ``history`` does now.

Scores: on a series of one commit and model every change point is a false alarm; where the
model or commit changed (``--synthetic``: a step of each of ``--steps`` percent at the middle run; a
database: a run whose model sha256 or commit differs from the run before) a change point at
that run (within ``--tolerance`` runs) is a detection, any other a false alarm.

``--synthetic`` draws series with the noise measured in this project (issue 21): three worker
processes a run, each its own invocation offset (``--invocation`` 3 %), 1 % between the blocks
of one process, and busy runs (``--busy-share`` of them, +8 to +20 %, half of them recorded
busy, as a loaded neighbour may go unseen). ``gate_false_alarms --db`` records real series
(identical-idle, identical-busy, step-h50-h53, step-h50-h56).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lstm_bench.bench.changepoints import beyond, pelt_breaks, segment_changes
from lstm_bench.bench.history import location
from lstm_bench.bench.machine import usable_cores
from lstm_bench.bench.series import Point, Series, SeriesKey, judge, load_series
from lstm_bench.bench.stats import Block, Measurement, RowKey

METHODS = ("consecutive", "pelt-l2", "pelt-l2+test", "pelt-l1", "pelt-l1+test")


def synthetic(rng, runs: int, step_at: int | None, step: float, args) -> Series:
    """One series of ``runs`` runs of 1 ms, ``step`` (a fraction) slower from run ``step_at``
    on, drawn with the noise figures of the module doc."""
    key = RowKey("ort-cpu", 1, 100, 1, "sequence", 0)
    series = Series(SeriesKey("synthetic", "m", key), None, args.fail_above)
    for run in range(runs):
        factor = 1.0 + (step if step_at is not None and run >= step_at else 0.0)
        busy = rng.random() < args.busy_share
        if busy:
            factor *= rng.uniform(1.08, 1.20)
        offsets = rng.normal(0.0, args.invocation, args.processes)
        samples, blocks = [], []
        for process, offset in enumerate(offsets):
            ms = factor * np.exp(offset + rng.normal(0.0, 0.01, args.blocks))
            samples += [int(x * 1e6) for x in ms]
            blocks += [Block(process, b, 0, 1) for b in range(args.blocks)]
        changed = step_at is not None and run >= step_at
        series.points.append(Point(
            run + 1, f"run {run + 1}", "new" if changed else "old",
            Measurement("ort-cpu", 1, 100, 1, tuple(samples), blocks=tuple(blocks)),
            busy=usable_cores() / 2 if busy and rng.random() < 0.5 else 0.0,
            model_sha256="new" if changed else "old"))
    return judge(series, args.fail_above)


def found(series: Series, method: str) -> list[int]:
    """The indexes (into ``series.points``) of the change points ``method`` finds."""
    if method == "consecutive":  # beyond noise and the threshold, either way
        return [i for i, p in enumerate(series.points)
                if beyond(p.change, series.fail_above) and not p.same_code]
    cost = "l1" if "l1" in method else "l2"
    if method in ("pelt-l2", "pelt-l1"):
        return pelt_breaks(series.points, cost)
    return [i for i, _ in segment_changes(series.points, series.fail_above, cost)]


def truth(series: Series) -> list[int]:
    """The runs whose model or commit differs from the run before."""
    return [i for i, (a, b) in enumerate(zip(series.points, series.points[1:]), 1)
            if (a.model_sha256, a.git_commit) != (b.model_sha256, b.git_commit)]


def score(all_series, method: str, tolerance: int) -> dict:
    """False alarms (per series with any, and per run) and detections with position errors."""
    series_alarmed = false = real = caught = 0
    errors = []
    runs = sum(len(s.points) for s in all_series)
    for s in all_series:
        points, expected = found(s, method), truth(s)
        near = {t: [i for i in points if abs(i - t) <= tolerance] for t in expected}
        matched = {min(c, key=lambda i: abs(i - t)) for t, c in near.items() if c}
        extra = [i for i in points if i not in matched]
        false += len(extra)
        series_alarmed += bool(extra)
        real += len(expected)
        for t, c in near.items():
            if c:
                caught += 1
                errors.append(min(abs(i - t) for i in c))
    return {"series": len(all_series), "series_with_false_alarm": series_alarmed,
            "false_alarms": false, "runs": runs, "steps": real, "caught": caught,
            "exact": sum(e == 0 for e in errors)}


def line(name: str, figures: dict) -> str:
    text = (f"  {name:12s} false alarms: {figures['series_with_false_alarm']} of "
            f"{figures['series']} series ({figures['false_alarms']} in {figures['runs']} runs)")
    if figures["steps"]:
        text += (f"; steps caught {figures['caught']} of {figures['steps']} "
                 f"({figures['exact']} at the exact run)")
    return text


def run_synthetic(args) -> None:
    rng = np.random.default_rng(args.seed)
    middle = args.runs // 2
    cases = {"flat (one commit)": [synthetic(rng, args.runs, None, 0.0, args)
                                   for _ in range(args.series)]}
    for step in args.steps:
        cases[f"step +{step:g} % at run {middle + 1}"] = [
            synthetic(rng, args.runs, middle, step / 100, args) for _ in range(args.series)]
    print(f"{args.series} synthetic series of {args.runs} runs each: {args.processes} processes "
          f"a run, {100 * args.invocation:g} % between invocations, {100 * args.busy_share:g} % "
          f"busy runs (+8..20 %, half recorded), --fail-above {args.fail_above:g}")
    for name, all_series in cases.items():
        print(name)
        for method in METHODS:
            print(line(method, score(all_series, method, args.tolerance)))


def run_db(args) -> None:
    all_series = load_series(location(args.db), fail_above=args.fail_above)
    groups: dict[str, list] = {}
    for s in all_series:
        runs = ", ".join(f"#{p.run_id}" for p in (s.points[i] for i in truth(s)))
        busy = sum(bool(p.busy) for p in s.points)
        print(f"{s.key.series} / {s.label}: {len(s.points)} runs ({busy} recorded busy)"
              f"{'; model or commit changed at ' + runs if runs else ', one commit and model'}")
        for method in METHODS:
            print(f"  {method:12s} " + (", ".join(f"#{s.points[i].run_id}"
                                                   for i in found(s, method)) or "none"))
        groups.setdefault(s.key.series, []).append(s)
    print("\nscores by series name:")
    for name, group in groups.items():
        print(name)
        for method in METHODS:
            print(line(method, score(group, method, args.tolerance)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.changepoints",
                                     description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", metavar="PATH|URL", help="a history database")
    source.add_argument("--synthetic", action="store_true", help="synthetic series")
    parser.add_argument("--series", type=int, default=500, help="synthetic series per case")
    parser.add_argument("--runs", type=int, default=20, help="runs per synthetic series")
    parser.add_argument("--steps", default="10,20", help="synthetic steps, percent")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=10, help="blocks per process")
    parser.add_argument("--invocation", type=float, default=0.03,
                        help="spread between invocations (log sd)")
    parser.add_argument("--busy-share", type=float, default=0.05)
    parser.add_argument("--fail-above", type=float, default=5.0)
    parser.add_argument("--tolerance", type=int, default=1,
                        help="runs a detection may be off by")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.steps = [float(s) for s in args.steps.split(",") if s]
    if args.synthetic:
        run_synthetic(args)
    else:
        run_db(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
