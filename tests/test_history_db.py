"""Issue 18, class 11: the history database is checked before the benchmark starts, and a
failure after the measurement never loses it.

Before the fix, another application's database with tables of the same names, a corrupted
index page, a database locked by another writer and a full disk all passed the up-front check:
the benchmark ran, then the command exited 2 with a misleading message and the results were
gone (a full disk left a 0-byte history.sqlite). Now the first three are refused before any
measuring, and a write that fails afterwards saves the report as JSON beside the database and
says where.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections import namedtuple
from pathlib import Path

import pytest

from hostile import assert_bad_input, run_cli, snapshot
from lstm_bench.bench import history
from lstm_bench.bench.report import load_report
from lstm_bench.errors import LSTMBenchError

FAST = ["--runtimes", "numpy", "--seq-len", "3", "--span", "0", "--blocks", "4", "--min-time",
        "0", "--min-reps", "4", "--no-calibrate", "--quiet"]


@pytest.fixture
def no_measuring(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr("lstm_bench.cli.bench.run_plan", refuse)


def recorded(db, runs: int = 3):
    from test_history import report

    for seed in range(1, runs + 1):
        history.record(report(1.0, seed, "c"), db, "bench")
    return db


def test_a_corrupted_index_page_is_refused_before_measuring(tiny, tmp_path, capsys,
                                                            no_measuring):
    db = recorded(tmp_path / "h.sqlite")
    with sqlite3.connect(db) as con:
        page = con.execute("SELECT rootpage FROM sqlite_master "
                           "WHERE name = 'results_by_run'").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(db, "r+b") as f:  # garbage over the index's root page
        f.seek((page - 1) * size)
        f.write(bytes(range(256)) * (size // 256))
    before = snapshot(tmp_path)
    assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", db), str(db), "integrity")
    assert snapshot(tmp_path) == before


def other_application(path):
    """Another program's database that happens to name its tables runs and results."""
    with sqlite3.connect(path) as con:
        con.executescript("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT, started TEXT);"
                          "CREATE TABLE results (id INTEGER PRIMARY KEY, run INTEGER, "
                          "value REAL);"
                          "INSERT INTO runs (name, started) VALUES ('nightly', 'today');")
    con.close()
    return path


def test_another_applications_database_is_refused_before_measuring(tiny, tmp_path, capsys,
                                                                   no_measuring):
    db = other_application(tmp_path / "app.sqlite")
    before = snapshot(tmp_path)
    assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", db), str(db),
                     "another program's")
    assert_bad_input(run_cli(capsys, "history", "--db", db), "another program's")
    assert snapshot(tmp_path) == before


def test_a_database_locked_by_another_writer_is_refused_before_measuring(
        tiny, tmp_path, capsys, monkeypatch, no_measuring):
    db = recorded(tmp_path / "h.sqlite", runs=1)
    monkeypatch.setattr(history, "LOCK_WAIT_S", 0.2)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", db), str(db), "locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_nearly_full_disk_is_refused_before_measuring(tiny, tmp_path, capsys, monkeypatch,
                                                         no_measuring):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(history.shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9, 4096))
    for db in (recorded(tmp_path / "h.sqlite", runs=1), tmp_path / "new" / "h.sqlite"):
        before = snapshot(tmp_path)
        assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", db), "free")
        assert snapshot(tmp_path) == before


def _fail_the_write(monkeypatch):
    """The disk fills up (or anything else fails) at the write itself, after every check."""
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(history, "_insert", full)


@pytest.mark.parametrize("new", [False, True], ids=["existing", "new"])
def test_a_failed_write_after_measuring_keeps_the_results(new, tiny, tmp_path, capsys,
                                                          monkeypatch):
    db = tmp_path / "out" / "h.sqlite"
    if not new:
        db.parent.mkdir()
        recorded(db, runs=1)
    before = db.read_bytes() if not new else None
    _fail_the_write(monkeypatch)
    line = assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", db),
                            "database or disk is full")
    saved = re.search(r"saved in (\S+\.json)", line)
    assert saved, line
    report = load_report(saved.group(1))
    assert [m.runtime for m in report.measurements] == ["numpy"]
    assert saved.group(1).startswith(str(db.parent))  # beside the database
    if new:  # no empty database left behind
        assert not db.exists(), db.stat().st_size
    else:
        assert db.read_bytes() == before


def test_a_failed_first_write_leaves_no_empty_folders(tmp_path, monkeypatch):
    """Where the results cannot be saved beside a new database either, the folders made for it
    go with the empty file: nothing is left but the JSON in the temporary folder."""
    from test_history import report

    _fail_the_write(monkeypatch)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    real_write = history.write_json

    def only_in_tmp(path, doc):
        if tmp_path / "tmp" not in Path(path).parents:
            raise OSError(28, "No space left on device")
        return real_write(path, doc)

    monkeypatch.setattr(history, "write_json", only_in_tmp)
    with pytest.raises(LSTMBenchError, match="saved in .*tmp"):
        history.record(report(1.0, 1, "c"), tmp_path / "a" / "b" / "h.sqlite", "bench")
    assert not (tmp_path / "a").exists()
