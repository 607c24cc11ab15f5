"""The history database: bench appends each run, history shows the series and flags a change
point by compare's test (a 2x slowdown is flagged, a rerun of the same distribution is not);
bad databases are one-line errors."""

import io
import re
import sqlite3

import numpy as np
from rich.console import Console

from lstm_bench.bench import history
from lstm_bench.bench.series import load_series, series_table
from lstm_bench.bench.report import BenchReport
from lstm_bench.bench.stats import Measurement
from lstm_bench.cli import main
from lstm_bench.cli.terminal import print_table

FAST = ["--span", "0", "--min-time", "0.002", "--min-reps", "3", "--no-calibrate", "--quiet"]


def report(median_ms, seed, commit):
    rng = np.random.default_rng(seed)
    ms = [Measurement(name, 1, 100, 2, tuple(int(x) for x in
                                             median_ms * f * 1e6 * rng.lognormal(0, 0.03, 200)))
          for name, f in (("ort-cpu", 1.0), ("numpy", 10.0))]
    return BenchReport(model={"path": "m.onnx", "sha256": "ab" * 32},
                       machine={"cpu": "test cpu", "git_commit": commit,
                                "timestamp": f"2026-11-27T00:0{seed}:00+0000"},
                       settings={}, measurements=ms)


def test_series_and_change_points(tmp_path):
    db = tmp_path / "h.sqlite"
    ids = [history.record(report(1.0, 1, "aaa"), db, "bench"),
           history.record(report(1.0, 2, "bbb"), db, "bench"),  # the same distribution
           history.record(report(2.0, 3, "ccc"), db, "run")]  # twice as slow
    assert ids == [1, 2, 3]
    series = load_series(db)
    assert {s.runtime for s in series} == {"ort-cpu", "numpy"}
    for s in series:
        assert [p.run_id for p in s.points] == [1, 2, 3]
        assert s.points[0].change is None
        assert s.points[1].change.verdict == "within noise"
        assert s.points[2].change.verdict == "regression"
        assert [p.run_id for p in s.change_points] == [3]
        # the raw samples came back whole
        assert len(s.points[0].measurement.samples_ns) == 200
    with sqlite3.connect(db) as con:  # the run's facts are queryable as columns
        assert con.execute("SELECT git_commit, command FROM runs ORDER BY id").fetchall() == [
            ("aaa", "bench"), ("bbb", "bench"), ("ccc", "run")]


def test_history_command_terminal_and_html(tmp_path, capsys):
    db = tmp_path / "h.sqlite"
    for median, seed in ((1.0, 1), (1.0, 2), (2.0, 3)):
        history.record(report(median, seed, f"c{seed}"), db, "bench")
    page = tmp_path / "history.html"
    assert main(["history", "--db", str(db), "--html", str(page)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # wrapped lines joined
    assert "3 runs, 2 series" in out
    assert re.search(r"run #3 .*ort-cpu b=1 T=100 thr=2: .* \(\+\d+\.\d %.*: regression", out)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "data:image/png;base64," in text
    assert "regression" in text


def test_history_table_fits_80_columns(tmp_path):
    db = tmp_path / "h.sqlite"
    for seed in (1, 2):
        history.record(report(1.0, seed, "c"), db, "bench")
    console = Console(width=80, file=io.StringIO(), record=True)
    print_table(console, series_table(load_series(db)), compact=True)
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text


def test_bench_appends_to_the_database(tiny, tmp_path, capsys):
    db = tmp_path / "out" / "h.sqlite"
    argv = ["bench", str(tiny), "--runtimes", "ort-cpu", "--batch", "1,2", "--seq-len", "3",
            *FAST, "--db", str(db)]
    assert main(argv) == 0 and main(argv) == 0
    assert "recorded as run #2" in capsys.readouterr().out
    series = load_series(db)
    assert len(series) == 2 and all(len(s.points) == 2 for s in series)
    # issue 23: keyed by the series' name (the model file's) and the machine; the sha256 and
    # the CPU are each point's and the machine's attributes
    assert all(s.key.series == tiny.name and s.key.machine_id and s.machine["cpu"]
               and s.points[-1].model_sha256 for s in series)


def test_bad_databases_are_one_line_errors(tmp_path, capsys):
    not_db = tmp_path / "notes.txt"
    not_db.write_text("not a database, just text that is long enough to be read " * 20)
    assert main(["history", "--db", str(not_db)]) == 2
    assert main(["history", "--db", str(tmp_path / "missing.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "not a usable history database" in err[0] and "no history database" in err[1]
    assert not (tmp_path / "missing.sqlite").exists()  # reading never creates one


def test_a_change_between_runs_of_the_same_code_is_the_machines(tmp_path, capsys):
    """Same commit and library versions: a 2x slower run is the machine's (a busy phase),
    counted but not flagged; the same change after a new commit is a regression."""
    db = tmp_path / "h.sqlite"
    history.record(report(1.0, 1, "same"), db, "bench")
    history.record(report(2.0, 2, "same"), db, "bench")
    for s in load_series(db):
        assert s.points[1].same_code and s.points[1].change.verdict == "regression"
        assert s.change_points == [] and [p.run_id for p in s.machine_changes] == [2]
    assert main(["history", "--db", str(db)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no change points between runs whose code changed" in out
    assert "not flagged: 2 changes as large between runs of the same commit" in out
    history.record(report(4.0, 3, "next"), db, "bench")
    for s in load_series(db):
        assert [p.run_id for p in s.change_points] == [3] and not s.points[2].same_code
