"""Every bench result, kept in one SQLite file or a PostgreSQL database, and the series they
form over time.

``bench`` and ``run`` append each report here: one ``runs`` row (when, which command, the
series' name, the model's sha256 and summary, the machine, library versions, git commit,
settings) and one ``results`` row per measurement with its headline figures and the whole JSON
row (raw samples, block-level figures and whatever else the measuring side recorded). A
*series* is one runtime at one shape and thread count, of one named series (``--series``,
default the model file's name) on one machine; ``history`` shows each series over time
(``bench.series``). The tables and statements are ``bench.history_sql``'s (SQLAlchemy Core),
the same for both databases.

The default file is ``history.sqlite`` in the output folder (``lstm-bench-out``, or ``run
--out``); ``--db PATH`` or the environment variable ``LSTM_BENCH_DB`` choose another, or a
PostgreSQL URL (``postgresql://user@host:port/dbname``) that a team's machines share.
Each report is written in one transaction: a crash leaves the earlier history intact.
``check_db`` finds before the benchmark whatever would stop the write after it (another
program's database, a damaged file, a writer holding the lock, a full disk); a write that
fails all the same saves the report as JSON beside the database (``record``). Rows are read
back through the bench report's own layout (``bench.report.check_row``). For PostgreSQL,
``check_db`` makes sure the server answers, the tables are lstm-bench's (or absent: made by the
first write) and the user may write them; a write that fails saves the JSON in the current
folder (else the temporary one). A URL's password is never printed (``shown``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from lstm_bench.bench.history_sql import COLUMNS, LOCK_KEY, VERSION, engine_for, found_version, \
    insert_report, is_url, prepare, read_rows, server_error, shown, secret_free
from lstm_bench.bench.stats import SEQUENCE, STREAMING
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import size_text, write_json
from lstm_bench.outputs import check_writable
from lstm_bench.schema import RUNTIME

DB_ENV = "LSTM_BENCH_DB"
DEFAULT_FOLDER = "lstm-bench-out"
FILE_NAME = "history.sqlite"
LOCK_WAIT_S = 30.0  # how long a write waits for another writer's lock before giving up
MIN_FREE_BYTES = 16 * 2 ** 20  # free disk a result may need (rows, raw samples, journal)

# a ``results`` row joined with its run, as ``load_series`` reads it (the columns' types:
# SQLite keeps whatever a program stored in a column)
SERIES_ROW = {"run_id": int, "recorded": str, "git_commit": (str, None), "versions": (str, None),
              "model_sha256": (str, None), "model_path": (str, None), "cpu": (str, None),
              "runtime": RUNTIME, "mode": frozenset({SEQUENCE, STREAMING}), "chunk": int,
              "batch": int, "seq_len": int, "threads": (int, None), "row": str,
              "machine": (str, None), "series": str, "machine_id": str,
              "machine_name": (str, None), "cores": (int, None), "gpu": (str, None)}


def default_db(out_folder=None) -> Path | str:
    """``$LSTM_BENCH_DB`` when set (a path, or a PostgreSQL URL), else ``history.sqlite`` in
    the output folder."""
    if os.environ.get(DB_ENV):
        return location(os.environ[DB_ENV])
    return Path(out_folder or DEFAULT_FOLDER) / FILE_NAME


def location(db) -> Path | str:
    """``--db``'s value: a URL kept as text, else a SQLite file's path."""
    return db if is_url(db) else Path(db)


def local_path(db) -> Path | None:
    """The SQLite file ``db`` names (checked as an output path), None for a server's URL."""
    return None if db is None or is_url(db) else Path(db)


def _sqlite(raw) -> sa.Engine:
    """SQLAlchemy over an open SQLite connection (``_open``'s checks done), its transactions
    begun by us (``_transaction``), not by the driver."""
    raw.isolation_level = None
    return sa.create_engine("sqlite://", creator=lambda: raw, poolclass=sa.pool.StaticPool)


def _transaction(raw, work):
    """``work(conn)`` in one SQLite transaction that holds the write lock from its start."""
    with _sqlite(raw).connect() as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    return result


def connect(path, *, create: bool) -> sqlite3.Connection:
    """The history database at ``path`` (made when ``create``), its tables in place."""
    db = _open(path, create=create)
    if create:
        try:
            _transaction(db, lambda conn: prepare(conn, found_version(conn)))
        except (sqlite3.DatabaseError, SQLAlchemyError) as exc:
            db.close()
            raise _unusable(path, getattr(exc, "orig", None) or exc) from None
    return db


def _open(path, *, create: bool) -> sqlite3.Connection:
    """The database at ``path``, read-only unless ``create``, refused unless it is a history
    database of this version or an older one, or a new file (no tables yet: made by
    ``history_sql.prepare``)."""
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


def _check_identity(db, path, *, new_allowed: bool) -> None:
    """Refuse a database that is not a history database: another program's that happens to
    name its tables runs and results (their columns differ), or one without them. A new one
    (no tables at all) only where it is to be made (``new_allowed``)."""
    tables = {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    if not tables and new_allowed:
        return
    found = {table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
             for table in ("runs", "results") if table in tables}
    if found not in COLUMNS.values():
        held = f"tables {', '.join(sorted(tables)[:5])}: " if tables else ""
        what = ("runs and results with other columns than lstm-bench's" if found else
                "no runs and results")
        raise LSTMBenchError(f"{path}: not a usable history database: another program's "
                             f"({held}{what}); choose another with --db")


def _unusable(path, exc: sqlite3.Error) -> LSTMBenchError:
    """SQLite's error as one line: a lock held by another writer said as such."""
    if "locked" in str(exc) or "busy" in str(exc):
        return LSTMBenchError(f"{path}: the history database is locked by another program "
                              f"(another lstm-bench writing?) for over {LOCK_WAIT_S:g} s; try "
                              "again when it is done, or choose another with --db")
    return LSTMBenchError(f"{path}: not a usable history database ({exc})")


def check_db(path) -> Path | str:
    """Fail before any measuring when the database could not take a result, without creating,
    opening for writing or changing anything: on bad input a command leaves no trace, so the
    file (and its folder) is made by ``record``, once there is a result to record.

    An existing file is opened read-only and must be a history database this version reads
    (its tables lstm-bench's, not another program's of the same names), whole (SQLite's
    quick_check), in a folder where SQLite can write (its journal goes beside it), its write
    lock free within LOCK_WAIT_S (taken and released: nothing is written); a missing one must
    be creatable: its nearest existing folder writable and no file in the way. Either way its
    disk must have MIN_FREE_BYTES free. A PostgreSQL URL: ``_check_server``.
    """
    if is_url(path):
        return _check_server(path)
    path = Path(path)
    if path.is_symlink():  # SQLite would put its journal beside the target, wherever that is
        raise LSTMBenchError(f"{path}: a symbolic link to {os.readlink(path)}; the history "
                             "database is written in place, with SQLite's journal beside it, "
                             "so give the database's own path with --db")
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


def _check_server(db: str) -> str:
    """The server answers, its tables are lstm-bench's (or absent: the first write makes them)
    and of a format this version reads, and the user may write them (or make them)."""
    engine = engine_for(db)
    try:
        with engine.connect() as conn:
            try:
                version = found_version(conn)
            except LSTMBenchError as exc:
                raise LSTMBenchError(f"{shown(db)}: {exc}") from None
            if version is None:
                query = "SELECT has_schema_privilege(current_schema(), 'CREATE')"
                needs = "CREATE on its schema, to make the history's tables"
            else:
                query = ("SELECT has_table_privilege('runs', 'INSERT') "
                         "AND has_table_privilege('results', 'INSERT') AND "
                         "has_sequence_privilege(pg_get_serial_sequence('runs', 'id'), 'USAGE') "
                         "AND has_sequence_privilege(pg_get_serial_sequence('results', 'id'), "
                         "'USAGE')")
                needs = "INSERT on runs and results and USAGE on their id sequences"
            if not conn.exec_driver_sql(query).scalar():
                user = conn.exec_driver_sql("SELECT current_user").scalar()
                raise LSTMBenchError(f"{shown(db)}: user {user} may not write the history "
                                     f"(needs {needs}); choose another with --db, or "
                                     "--no-history")
    except SQLAlchemyError as exc:
        raise server_error(db, exc, "use the history database") from None
    finally:
        engine.dispose()
    return db


def read_history(db) -> list[dict]:
    """Every result row with its run (``history_sql.read_rows``), read without changing
    anything: SQLite opened read-only, PostgreSQL in a read-only transaction."""
    if is_url(db):
        engine = engine_for(db)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                try:
                    version = found_version(conn)
                except LSTMBenchError as exc:
                    raise LSTMBenchError(f"{shown(db)}: {exc}") from None
                if version is None:
                    raise LSTMBenchError(f"{shown(db)}: no history in this database yet (bench "
                                         "and run write it; choose it with --db)")
                return read_rows(conn, version)
        except SQLAlchemyError as exc:
            raise server_error(db, exc, "read the history") from None
        finally:
            engine.dispose()
    with closing(connect(db, create=False)) as raw:
        try:
            with _sqlite(raw).connect() as conn:
                return read_rows(conn, found_version(conn))
        except (sqlite3.Error, SQLAlchemyError) as exc:
            raise LSTMBenchError(f"{db}: cannot read the history "
                                 f"({_reason(exc)})") from None


def record(report, path, command: str, series: str | None = None) -> int:
    """Append a ``BenchReport`` to the series ``series`` (default: the model file's name);
    returns the new run's id. Where the write fails (after ``check_db``: a disk that filled up
    meanwhile, a lock held too long, a server gone), the report is saved as JSON beside the
    database (for a server: in the current folder; else in the temporary folder) and the
    LSTMBenchError says where: a measurement is never lost to its history. A new database is
    made, or an older one carried forward, in the same transaction as the run, so a failed
    first write leaves no file behind."""
    def write(conn):
        prepare(conn, found_version(conn))
        return _insert(conn, report, command, series)

    if is_url(path):
        try:
            engine = engine_for(path)
            try:
                with engine.begin() as conn:  # writers one at a time, each report whole
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
                    return write(conn)
            finally:
                engine.dispose()
        except (LSTMBenchError, SQLAlchemyError, OSError) as exc:
            raise LSTMBenchError(_unrecorded(report, path, exc)) from None
    path = Path(path)
    new = not path.exists()
    made = [folder for folder in path.parents if not folder.exists()]  # deepest first
    try:
        with closing(_open(path, create=True)) as db:
            # one transaction: a new database's tables and all of the report, or nothing
            return _transaction(db, write)
    except (LSTMBenchError, sqlite3.Error, SQLAlchemyError, OSError) as exc:
        message = _unrecorded(report, path, exc)  # saved beside it: that folder then stays
        if new:
            _remove_if_empty(path, made)
        raise LSTMBenchError(message) from None


def _reason(exc: BaseException) -> str:
    """An error's reason in one line (SQLAlchemy's without the statement it quotes)."""
    exc = getattr(exc, "orig", None) or exc
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    return (reason.strip().splitlines() or [type(exc).__name__])[0]


def _remove_if_empty(path: Path, made: list[Path]) -> None:
    """A database file this write created and left empty (SQLite makes the file as it opens
    it), and the folders made for it: removed, never a 0-byte history.sqlite or empty folders."""
    try:
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass
    for folder in made:
        try:
            folder.rmdir()  # refused, and so kept, when anything else is in it
        except OSError:
            break


def _unrecorded(report, path, exc: BaseException) -> str:
    """The message of a failed write, after saving the report as a bench JSON beside the
    database (a server's: in the current folder), else in the temporary folder."""
    stem, here = ("history", Path.cwd()) if is_url(path) else (path.stem, path.parent)
    name = f"{stem}-unrecorded-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    what = f"cannot write the history database {shown(path)} ({_reason(exc)})"
    for folder in (here, Path(tempfile.gettempdir())):
        try:
            saved = write_json(folder / name, report.to_dict())
        except (OSError, LSTMBenchError):
            continue
        return secret_free(path, f"{what}; the results are saved in {saved}")
    return secret_free(path, f"{what}; nor could the results be saved in {here} or in "
                        f"{tempfile.gettempdir()}")


def _insert(conn, report, command: str, series: str | None) -> int:
    """The report's rows, in the caller's transaction (``history_sql.insert_report``)."""
    return insert_report(conn, report, command, series)
