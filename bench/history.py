"""Every bench result, kept in one SQLite file, and the series they form over time.

``bench`` and ``run`` append each report here: one ``runs`` row (when, which command, the
model's sha256 and summary, the machine, library versions, git commit, settings) and one
``results`` row per measurement with its headline figures and the whole JSON row (raw
samples, block-level figures and whatever else the measuring side recorded). A *series* is one
runtime at one shape and thread count, on one model (sha256) and one CPU; ``history`` shows
each series over time (``bench.series``).

The default file is ``history.sqlite`` in the output folder (``lstm-bench-out``, or ``run
--out``); ``--db PATH`` or the environment variable ``LSTM_BENCH_DB`` choose another.
SQLite writes each report in one transaction: a crash leaves the earlier history intact.
``check_db`` finds before the benchmark whatever would stop the write after it (another
program's database, a damaged file, a writer holding the lock, a full disk); a write that
fails all the same saves the report as JSON beside the database (``record``). Rows are read
back through the bench report's own layout (``bench.report.check_row``).
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path

from lstm_bench.bench.stats import SEQUENCE, STREAMING
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import size_text, to_json, write_json
from lstm_bench.outputs import check_writable
from lstm_bench.schema import RUNTIME

DB_ENV = "LSTM_BENCH_DB"
DEFAULT_FOLDER = "lstm-bench-out"
FILE_NAME = "history.sqlite"
VERSION = 1
LOCK_WAIT_S = 30.0  # how long a write waits for another writer's lock before giving up
MIN_FREE_BYTES = 16 * 2 ** 20  # free disk a result may need (rows, raw samples, journal)

TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    recorded TEXT NOT NULL,          -- ISO 8601, local time with offset
    command TEXT NOT NULL,           -- bench | run
    model_sha256 TEXT, model_path TEXT, model TEXT,  -- model: JSON summary
    cpu TEXT, machine TEXT,          -- machine: JSON (cores, platform, thread settings...)
    git_commit TEXT, versions TEXT,  -- versions: JSON {library: version}
    settings TEXT, peak_gflops REAL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    runtime TEXT NOT NULL, mode TEXT NOT NULL, chunk INTEGER NOT NULL,
    batch INTEGER NOT NULL, seq_len INTEGER NOT NULL, threads INTEGER,
    median_ms REAL, ci_low_ms REAL, ci_high_ms REAL, noise REAL,
    verdict TEXT,                    -- verify's verdict for the runtime, when known
    row TEXT NOT NULL                -- the JSON row of the bench report, raw samples included
);
CREATE INDEX IF NOT EXISTS results_by_run ON results(run_id);
"""
# a ``results`` row joined with its run, as ``load_series`` reads it (the columns' types:
# SQLite keeps whatever a program stored in a column)
SERIES_ROW = {"run_id": int, "recorded": str, "git_commit": (str, None), "versions": (str, None),
              "model_sha256": (str, None), "model_path": (str, None), "cpu": (str, None),
              "runtime": RUNTIME, "mode": frozenset({SEQUENCE, STREAMING}), "chunk": int,
              "batch": int, "seq_len": int, "threads": (int, None), "row": str}


def default_db(out_folder=None) -> Path:
    """``$LSTM_BENCH_DB`` when set, else ``history.sqlite`` in the output folder."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV])
    return Path(out_folder or DEFAULT_FOLDER) / FILE_NAME


def connect(path, *, create: bool) -> sqlite3.Connection:
    """The history database at ``path`` (made when ``create``), its tables in place."""
    db = _open(path, create=create)
    if create:
        try:
            with db:
                _create_tables(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise _unusable(path, exc) from None
    return db


def _open(path, *, create: bool) -> sqlite3.Connection:
    """The database at ``path``, read-only unless ``create``, refused unless it is a history
    database of this version or a new file (no tables yet: ``_create_tables`` makes them)."""
    path = Path(path)
    if not create and not path.is_file():
        raise LSTMBenchError(f"{path}: no history database (bench and run write one; "
                             "choose it with --db)")
    if path.is_dir():
        raise LSTMBenchError(f"{path}: a directory, not a history database file")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        # read-only through a URI, the path quoted so that '?', '#' or '%' in it stay a name
        db = sqlite3.connect(str(path) if create else f"{path.absolute().as_uri()}?mode=ro",
                             uri=not create, timeout=LOCK_WAIT_S)
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    except OSError as exc:
        raise LSTMBenchError(f"cannot open the history database {path}: "
                             f"{exc.strerror or exc}") from None
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise LSTMBenchError(f"{path}: history written by a newer lstm-bench "
                                 f"(format {version}, this one reads {VERSION})")
        _check_identity(db, path, new_allowed=create)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise _unusable(path, exc) from None
    except LSTMBenchError:
        db.close()
        raise
    return db


@functools.cache
def _columns() -> dict[str, list[str]]:
    """Each table's columns as ``TABLES`` makes them (in a database in memory)."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.executescript(TABLES)
        return {table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                for table in ("runs", "results")}


def _check_identity(db, path, *, new_allowed: bool) -> None:
    """Refuse a database that is not a history database: another program's that happens to
    name its tables runs and results (their columns differ), or one without them. A new one
    (no tables at all) only where it is to be made (``new_allowed``)."""
    tables = {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    if not tables and new_allowed:
        return
    found = {table: [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
             for table in _columns() if table in tables}
    if found != _columns():
        held = f"tables {', '.join(sorted(tables)[:5])}: " if tables else ""
        what = ("runs and results with other columns than lstm-bench's" if found else
                "no runs and results")
        raise LSTMBenchError(f"{path}: not a usable history database: another program's "
                             f"({held}{what}); choose another with --db")


def _create_tables(db) -> None:
    """The tables, where missing, and the format's version, in the caller's transaction."""
    for statement in TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {VERSION}")


def _unusable(path, exc: sqlite3.Error) -> LSTMBenchError:
    """SQLite's error as one line: a lock held by another writer said as such."""
    if "locked" in str(exc) or "busy" in str(exc):
        return LSTMBenchError(f"{path}: the history database is locked by another program "
                              f"(another lstm-bench writing?) for over {LOCK_WAIT_S:g} s; try "
                              "again when it is done, or choose another with --db")
    return LSTMBenchError(f"{path}: not a usable history database ({exc})")


def check_db(path) -> Path:
    """Fail before any measuring when the database could not take a result, without creating,
    opening for writing or changing anything: on bad input a command leaves no trace, so the
    file (and its folder) is made by ``record``, once there is a result to record.

    An existing file is opened read-only and must be a history database this version reads
    (its tables lstm-bench's, not another program's of the same names), whole (SQLite's
    quick_check), in a folder where SQLite can write (its journal goes beside it), its write
    lock free within LOCK_WAIT_S (taken and released: nothing is written); a missing one must
    be creatable: its nearest existing folder writable and no file in the way. Either way its
    disk must have MIN_FREE_BYTES free.
    """
    path = Path(path)
    if path.is_dir():
        raise LSTMBenchError(f"{path}: a directory, not a history database file")
    if not path.exists() or path.stat().st_size == 0:  # SQLite makes an empty file a database
        check_writable(path, "history database")
        _check_free_space(path)
        return path
    with closing(connect(path, create=False)) as db:
        _check_integrity(db, path)
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        raise LSTMBenchError(f"{path}: the history database is not writable (choose another "
                             "with --db, or --no-history)")
    _check_lock(path)
    _check_free_space(path)
    return path


def _check_integrity(db, path) -> None:
    """SQLite's quick_check: a damaged page (of a table or an index) is found now, before the
    benchmark, not by the write after it."""
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    if problems != ["ok"]:
        raise LSTMBenchError(f"{path}: the history database fails SQLite's integrity check "
                             f"({'; '.join(problems)}); recover it (`sqlite3 {path} .recover`) "
                             "or choose another with --db")


def _check_lock(path) -> None:
    """The write lock taken and released at once (no write, no journal): a database another
    writer holds for longer than LOCK_WAIT_S is refused now, not after the benchmark."""
    try:
        with closing(sqlite3.connect(str(path), timeout=LOCK_WAIT_S,
                                     isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None


def _check_free_space(path) -> None:
    folder = next(p for p in (path.parent.absolute(), *path.parent.absolute().parents)
                  if p.exists())
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise LSTMBenchError(f"{path}: {size_text(free)} free on its disk, less than the "
                             f"{size_text(MIN_FREE_BYTES)} a result may take; free some space, "
                             "or choose another with --db (or --no-history)")


def record(report, path, command: str) -> int:
    """Append a ``BenchReport``; returns the new run's id. Where the write fails (after
    ``check_db``: a disk that filled up meanwhile, a lock held too long), the report is saved
    as JSON beside the database (else in the temporary folder) and the LSTMBenchError says
    where: a measurement is never lost to its history. A new database is made in the same
    transaction as its first run, so a failed first write leaves no file behind."""
    path = Path(path)
    new = not path.exists()
    try:
        with closing(_open(path, create=True)) as db:
            with db:  # one transaction: a new database's tables and all of the report, or nothing
                db.execute("BEGIN IMMEDIATE")
                _create_tables(db)
                run_id = _insert(db, report, command)
        return run_id
    except (LSTMBenchError, sqlite3.Error, OSError) as exc:
        if new:
            _remove_if_empty(path)
        raise LSTMBenchError(_unrecorded(report, path, exc)) from None


def _remove_if_empty(path: Path) -> None:
    """A database file this write created and left empty (SQLite makes the file as it opens
    it): removed, never a 0-byte history.sqlite."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _unrecorded(report, path: Path, exc: BaseException) -> str:
    """The message of a failed write, after saving the report as a bench JSON beside the
    database (else in the temporary folder)."""
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    name = f"{path.stem}-unrecorded-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    for folder in (path.parent, Path(tempfile.gettempdir())):
        try:
            saved = write_json(folder / name, report.to_dict())
        except (OSError, LSTMBenchError):
            continue
        return (f"cannot write the history database {path} ({reason}); the results are saved "
                f"in {saved}")
    return (f"cannot write the history database {path} ({reason}); nor could the results be "
            f"saved beside it or in {tempfile.gettempdir()}")


def _insert(db, report, command: str) -> int:
    """The report's run and result rows, in the caller's transaction; the run's id."""
    machine = report.machine
    verdicts = report.verify.verdicts if report.verify else {}
    cursor = db.execute(
        "INSERT INTO runs (recorded, command, model_sha256, model_path, model, cpu, "
        "machine, git_commit, versions, settings, peak_gflops) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (machine.get("timestamp") or time.strftime("%Y-%m-%dT%H:%M:%S%z"), command,
         report.model.get("sha256"), report.model.get("path"),
         to_json(report.model, None), machine.get("cpu"), to_json(machine, None),
         machine.get("git_commit"), to_json(machine.get("libraries") or {}, None),
         to_json(report.settings, None), report.peak_gflops))
    run_id = cursor.lastrowid
    for m in report.measurements:
        ci = m.stats.median_ci or (None, None)
        verdict = verdicts[m.runtime].status if m.runtime in verdicts else None
        db.execute(
            "INSERT INTO results (run_id, runtime, mode, chunk, batch, seq_len, "
            "threads, median_ms, ci_low_ms, ci_high_ms, noise, verdict, row) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, m.runtime, m.mode, m.chunk, m.batch, m.seq_len, m.threads,
             m.stats.median, ci[0], ci[1], m.noise,
             verdict, to_json(m.as_dict(), None)))
    return run_id
