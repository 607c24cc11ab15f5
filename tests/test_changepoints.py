"""History's change points (issue 23): PELT's segments confirmed by compare's test between them
(``bench.changepoints``), on synthetic series drawn with the noise measured in this project:
three worker processes a run, each its own invocation offset, 1 % between blocks."""

import numpy as np

from lstm_bench.bench.changepoints import SEGMENT_TEST, pelt_breaks
from lstm_bench.bench.series import Point, Series, SeriesKey, judge
from lstm_bench.bench.stats import Block, Measurement, RowKey

KEY = RowKey("ort-cpu", 1, 100, 1, "sequence", 0)


def series_of(factors, seed, invocation=0.03, busy=(), processes=3, blocks=10) -> Series:
    """A series of one commit and model, run ``i`` at ``factors[i]`` ms (times its noise);
    runs in ``busy`` recorded busy (one core taken by other processes)."""
    rng = np.random.default_rng(seed)
    series = Series(SeriesKey("synthetic", "m", KEY), None)
    for run, factor in enumerate(factors):
        samples = []
        for offset in rng.normal(0.0, invocation, processes):
            samples += [int(x * 1e6) for x in factor * np.exp(offset + rng.normal(0, 0.01, blocks))]
        measurement = Measurement("ort-cpu", 1, 100, 1, tuple(samples), blocks=tuple(
            Block(p, b, 0, 1) for p in range(processes) for b in range(blocks)))
        series.points.append(Point(run + 1, f"run {run + 1}", f"c{run}", measurement,
                                   busy=1.0 if run in busy else 0.0, model_sha256="m"))
    return judge(series)


def test_a_flat_noisy_series_has_no_change_point():
    """Twenty runs of identical code, 3 % between invocations: what the run-by-run test
    flagged in about a third of such series (tools/changepoints.py), never a change point."""
    for seed in range(8):
        assert series_of([1.0] * 20, seed).change_points == [], seed


def test_a_10_percent_step_is_found_at_the_run_that_made_it():
    for seed in range(4):
        s = series_of([1.0] * 10 + [1.1] * 10, seed, invocation=0.01)
        (point,) = s.change_points
        assert point.run_id == 11 and point.segment.verdict == "regression"
        assert point.segment.test == SEGMENT_TEST and 7 < point.segment.change_pct < 13
        assert point.segment.base_processes == point.segment.new_processes == 30
    # a step back is an improvement of the same size, found where it happened
    s = series_of([1.1] * 12 + [1.0] * 8, 9, invocation=0.01)
    assert [(p.run_id, p.segment.verdict) for p in s.change_points] == [(13, "faster")]


def test_a_step_at_the_latest_run_is_found_at_once():
    s = series_of([1.0] * 9 + [1.3], 5)
    assert [p.run_id for p in s.change_points] == [10]


def test_one_outlier_run_alone_is_not_a_change_point():
    """A run 15 % slow (a neighbour's load that went unrecorded) among quiet ones: PELT's l1
    cost does not give it a segment; a run recorded busy, even 50 % slow, is left out."""
    factors = [1.0] * 20
    factors[8] = 1.15
    for seed in range(4):
        assert series_of(factors, seed, invocation=0.01).change_points == [], seed
    factors[8] = 1.5
    s = series_of(factors, 0, invocation=0.01, busy={8})
    assert s.change_points == [] and s.machine_changes == []
    # the run-by-run verdicts stay (--json's "change" of each point)
    assert all(p.change is not None for p in s.points[1:])


def test_a_series_of_busy_runs_only_is_judged_with_the_busy_allowance():
    """A machine whose every run was busy: a 2x step still stands out of the allowance, a
    10 % one is within it (as compare calls a busy report's change inconclusive)."""
    busy = set(range(12))
    assert [p.run_id for p in series_of([1.0] * 6 + [2.0] * 6, 1, busy=busy).change_points] \
        == [7]
    assert series_of([1.0] * 6 + [1.1] * 6, 1, invocation=0.01, busy=busy).change_points == []


def test_pelt_breaks_on_a_series_too_short_or_flat():
    assert pelt_breaks(series_of([1.0], 0).points) == []
    assert pelt_breaks(series_of([1.0, 1.0, 1.0], 0, invocation=0.01).points) == []


def test_history_flags_a_recorded_step_once_with_the_segments_figures(tmp_path, capsys):
    """Through the database and the command: a 30 % step after four runs of one commit is one
    change point, said with the segments' medians; --json gives its figures beside each
    point's run-by-run verdict."""
    import json

    from lstm_bench.bench import history
    from lstm_bench.bench.report import BenchReport
    from lstm_bench.cli import main

    db, out = tmp_path / "h.sqlite", tmp_path / "h.json"
    s = series_of([1.0] * 4 + [1.3] * 4, 3, invocation=0.01)
    for i, p in enumerate(s.points):
        history.record(BenchReport(
            model={"path": "m.onnx", "sha256": "ab" * 32},
            machine={"cpu": "test cpu", "git_commit": "old" if i < 4 else "new",
                     "timestamp": f"2026-12-07T00:0{i}:00+0000"},
            settings={}, measurements=[p.measurement]), db, "bench")
    assert main(["history", "--db", str(db), "--json", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "change points (PELT's segments, compare's test between them)" in text
    assert "run #5 " in text and ": regression (commit changed)" in text
    (series,) = json.loads(out.read_text())["series"]
    segments = [p["segment"] for p in series["points"]]
    assert segments[:4] == [None] * 4 and segments[5:] == [None] * 3
    assert segments[4]["verdict"] == "regression" and 25 < segments[4]["change_pct"] < 35
    assert (segments[4]["base_processes"], segments[4]["new_processes"]) == (12, 12)
    assert [p["change"]["change_point"] for p in series["points"][1:]] == [
        False, False, False, True, False, False, False]
