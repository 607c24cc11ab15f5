"""Issue 23, item 4: named series. A series is keyed by its name (--series, default the model
file's name) and its machine; the model's sha256, the commit and the library versions are each
run's attributes, so a re-exported model continues its series and the change is attributed.
history filters by series, runtime and machine, shows when each run was recorded and writes
JSON; a format-1 database is read as it is and carried forward on its next write."""

from __future__ import annotations

import json
import sqlite3

from hostile import assert_bad_input, run_cli
from lstm_bench.bench import history
from lstm_bench.bench.series import load_series
from lstm_bench.cli import main
from lstm_bench.files import to_json
from test_history import report

V1_TABLES = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, recorded TEXT NOT NULL, command TEXT NOT NULL,
    model_sha256 TEXT, model_path TEXT, model TEXT, cpu TEXT, machine TEXT,
    git_commit TEXT, versions TEXT, settings TEXT, peak_gflops REAL);
CREATE TABLE results (
    id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),
    runtime TEXT NOT NULL, mode TEXT NOT NULL, chunk INTEGER NOT NULL,
    batch INTEGER NOT NULL, seq_len INTEGER NOT NULL, threads INTEGER,
    median_ms REAL, ci_low_ms REAL, ci_high_ms REAL, noise REAL, verdict TEXT,
    row TEXT NOT NULL);
CREATE INDEX results_by_run ON results(run_id);
PRAGMA user_version = 1;
"""


def report_of(median, seed, commit, *, sha="ab", path="m.onnx", libraries=None):
    doc = report(median, seed, commit)
    doc.model.update(sha256=sha * 32, path=path)
    doc.machine.update(cores=2, libraries=libraries or {"onnxruntime": "1.32.0"})
    return doc


def v1_database(path, reports):
    """A history as lstm-bench wrote it before issue 23 (format 1: no series, no machine id)."""
    with sqlite3.connect(path) as db:
        db.executescript(V1_TABLES)
        for doc in reports:
            m = doc.machine
            run = db.execute(
                "INSERT INTO runs (recorded, command, model_sha256, model_path, model, cpu, "
                "machine, git_commit, versions, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (m["timestamp"], "bench", doc.model["sha256"], doc.model["path"],
                 to_json(doc.model, None), m["cpu"], to_json(m, None), m["git_commit"],
                 to_json(m["libraries"], None), "{}")).lastrowid
            for x in doc.measurements:
                db.execute("INSERT INTO results (run_id, runtime, mode, chunk, batch, seq_len, "
                           "threads, median_ms, row) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run, x.runtime, x.mode, x.chunk, x.batch, x.seq_len, x.threads,
                            x.stats.median, to_json(x.as_dict(), None)))
    db.close()
    return path


def test_a_reexported_model_continues_its_series_and_the_change_is_attributed(tmp_path,
                                                                              capsys):
    db = tmp_path / "h.sqlite"
    history.record(report_of(1.0, 1, "c1"), db, "bench")
    history.record(report_of(1.0, 2, "c1", sha="cd", path="other/m.onnx"), db, "bench")
    history.record(report_of(2.0, 3, "c2", libraries={"onnxruntime": "1.33.0"}), db, "bench")
    series = load_series(db)
    assert len(series) == 2 and all(len(s.points) == 3 for s in series)
    assert {s.key.series for s in series} == {"m.onnx"}  # the file's name, wherever it lies
    assert [p.model_sha256[:2] for p in series[0].points] == ["ab", "cd", "ab"]
    assert main(["history", "--db", str(db)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("regression (model changed; commit changed; libraries changed: onnxruntime 1.32.0 "
            "-> 1.33.0)") in out
    # the time axis: each group's runs from the first recorded to the last
    assert "3 runs, #1 at 2026-11-27 00:01 -> #3 at 2026-11-27 00:03" in out


def test_history_filters_and_writes_json_to_stdout(tmp_path, capsys):
    db = tmp_path / "h.sqlite"
    history.record(report_of(1.0, 1, "c1"), db, "bench", series="nightly")
    history.record(report_of(1.0, 2, "c2"), db, "bench", series="nightly")
    history.record(report_of(1.0, 3, "c3"), db, "bench")  # m.onnx
    rc, out, err = run_cli(capsys, "history", "--db", db, "--series", "nightly", "--runtime",
                           "numpy", "--machine", "TEST CPU", "--json", "-")
    assert rc == 0, err
    doc = json.loads(out)  # standard output holds the JSON alone; the table went to stderr
    assert "nightly" in err and doc["database"] == str(db)
    (s,) = doc["series"]
    assert (s["series"], s["runtime"], s["batch"], s["threads"]) == ("nightly", "numpy", 1, 2)
    assert s["machine"]["cpu"] == "test cpu" and len(s["machine"]["id"]) == 12
    assert [p["run"] for p in s["points"]] == [1, 2]
    assert [p["recorded"] for p in s["points"]] == ["2026-11-27T00:01:00+0000",
                                                    "2026-11-27T00:02:00+0000"]
    assert s["points"][0]["change"] is None
    assert s["points"][1]["change"]["changed"] == ["commit changed"]
    assert s["points"][1]["change"]["verdict"] == "within noise"
    line = assert_bad_input(run_cli(capsys, "history", "--db", db, "--series", "nightl"),
                            "no series match --series nightl")
    assert "m.onnx, nightly" in line


def test_a_format_1_database_is_read_as_it_is_and_migrated_on_write(tmp_path, capsys):
    db = v1_database(tmp_path / "old.sqlite", [report_of(1.0, 1, "c1", path="models/m.onnx"),
                                                report_of(1.0, 2, "c2", path="models/m.onnx")])
    before = db.read_bytes()
    assert main(["history", "--db", str(db)]) == 0  # read, never changed
    out = " ".join(capsys.readouterr().out.split())
    assert "m.onnx (model models/m.onnx, sha256 abababababab) on test cpu, 2 cores" in out
    assert db.read_bytes() == before
    assert history.check_db(db) == db and db.read_bytes() == before
    history.record(report_of(1.0, 3, "c3", sha="cd"), db, "bench")
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone() == (history.VERSION,)
        assert con.execute("SELECT DISTINCT series FROM runs").fetchall() == [("m.onnx",)]
        assert len({r for (r,) in con.execute("SELECT machine_id FROM runs")}) == 1
    con.close()
    series = load_series(db)
    assert len(series) == 2 and all([p.run_id for p in s.points] == [1, 2, 3] for s in series)
    assert all(s.points[2].change is not None for s in series)


def test_crafted_series_and_machine_columns_are_refused_or_shown_safely(tmp_path, capsys):
    """Format 2's columns hold whatever a hand put there: a value of another type is refused
    in one line (exit 2), odd text is shown without its escapes (exit 0); never a traceback."""
    db = tmp_path / "h.sqlite"
    for seed in (1, 2):
        history.record(report_of(1.0, seed, "c"), db, "bench")
    for column in ("series", "machine_id", "machine_name", "cores", "gpu"):
        for value in (None, 7, 1.5, b"\x00\xff", "x\x1b[31my", "[red]z", ""):
            with sqlite3.connect(db) as con:
                old = con.execute(f"SELECT {column} FROM runs WHERE id = 1").fetchone()[0]
                con.execute(f"UPDATE runs SET {column} = ? WHERE id = 1", (value,))
            con.close()
            rc, out, err = run_cli(capsys, "history", "--db", db, "--json", tmp_path / "h.json")
            assert rc in (0, 2) and "Traceback" not in err, (column, value, err)
            if rc == 2:
                assert len(err.strip().splitlines()) == 1, err
            else:
                assert "\x1b" not in out, (column, value)
                json.loads((tmp_path / "h.json").read_text())
            with sqlite3.connect(db) as con:
                con.execute(f"UPDATE runs SET {column} = ? WHERE id = 1", (old,))
            con.close()
