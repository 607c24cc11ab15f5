"""The history's tables in SQLAlchemy Core: one schema, one set of statements, for a SQLite file
(the default, ``bench.history``) and a PostgreSQL database a team shares (``--db
postgresql://user@host:port/dbname``).

Format 2 keys a series by its name (``--series``, default the model file's name) and its
machine (``machine_id``: a hash of the CPU model, core count, GPU and ``$LSTM_BENCH_MACHINE``),
so a retrained or re-exported model continues its series; the model's sha256, the commit and the
library versions are attributes of each run. A format-1 database (series keyed by the model's
sha256) is read as it is and carried forward on its next write (``migrate``), in the write's
transaction. PostgreSQL's writers take one advisory lock per transaction: two machines
recording at once each get their whole report in, one after the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path, PurePath

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import parse_json, to_json

VERSION = 2
MACHINE_ENV = "LSTM_BENCH_MACHINE"  # names this machine in the history (CI runners, twin boxes)
SCHEMES = ("postgresql", "postgresql+psycopg")
CONNECT_TIMEOUT_S = 10
LOCK_KEY = 0x6C73746D  # "lstm": PostgreSQL's advisory lock that one writer at a time holds

metadata = sa.MetaData()
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("recorded", sa.Text, nullable=False),  # ISO 8601, local time with offset
    sa.Column("command", sa.Text, nullable=False),  # bench | run
    sa.Column("model_sha256", sa.Text), sa.Column("model_path", sa.Text),
    sa.Column("model", sa.Text),  # JSON summary
    sa.Column("cpu", sa.Text), sa.Column("machine", sa.Text),  # machine: JSON, as recorded
    sa.Column("git_commit", sa.Text), sa.Column("versions", sa.Text),  # {library: version}
    sa.Column("settings", sa.Text), sa.Column("peak_gflops", sa.Float),
    # format 2: the series' name and the machine as columns of their own
    sa.Column("series", sa.Text), sa.Column("machine_id", sa.Text),
    sa.Column("machine_name", sa.Text), sa.Column("cores", sa.Integer), sa.Column("gpu", sa.Text))
results = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("runtime", sa.Text, nullable=False), sa.Column("mode", sa.Text, nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False), sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("seq_len", sa.Integer, nullable=False), sa.Column("threads", sa.Integer),
    sa.Column("median_ms", sa.Float), sa.Column("ci_low_ms", sa.Float),
    sa.Column("ci_high_ms", sa.Float), sa.Column("noise", sa.Float),
    sa.Column("verdict", sa.Text),  # verify's verdict for the runtime, when known
    sa.Column("row", sa.Text, nullable=False))  # the bench report's JSON row, raw samples too
formats = sa.Table("lstm_bench_format", metadata,
                   sa.Column("version", sa.Integer, nullable=False))
sa.Index("results_by_run", results.c.run_id)
sa.Index("runs_by_series", runs.c.series, runs.c.machine_id)
NEW_COLUMNS = ("series", "machine_id", "machine_name", "cores", "gpu")  # format 2's
# each format's columns of runs and results: a database with other columns is another program's
COLUMNS = {VERSION: {t.name: {c.name for c in t.columns} for t in (runs, results)}}
COLUMNS[1] = {**COLUMNS[VERSION], "runs": COLUMNS[VERSION]["runs"] - set(NEW_COLUMNS)}
READ = ("run_id", "recorded", "git_commit", "versions", "model_sha256", "model_path", "cpu",
        "runtime", "mode", "chunk", "batch", "seq_len", "threads", "row", "machine")


def is_url(db) -> bool:
    """A database URL (``scheme://...``) rather than a SQLite file's path."""
    return isinstance(db, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", db) is not None


def shown(db) -> str:
    """The database as it may be printed: a URL's password masked (``***``)."""
    if not is_url(db):
        return str(db)
    try:
        return make_url(db).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", db)


def secret_free(db, text: str) -> str:
    """An error message without the URL's password, wherever a driver quoted it (URLs shown
    are masked by ``shown``; a password under 3 characters is left to that, since replacing
    it everywhere would garble the message)."""
    if not is_url(db):
        return text
    try:
        password = make_url(db).password
    except (ArgumentError, ValueError):
        password = None
    return text.replace(password, "***") if password and len(password) >= 3 else text


def engine_for(db) -> sa.Engine:
    """An engine on a PostgreSQL URL (psycopg 3, whichever of the two schemes was given)."""
    try:
        url = make_url(db)
    except (ArgumentError, ValueError):
        raise LSTMBenchError(f"--db {shown(db)}: not a database URL (a SQLite file's path, or "
                             "postgresql://user@host:port/dbname)") from None
    if url.drivername not in SCHEMES:
        raise LSTMBenchError(f"--db {shown(db)}: {url.drivername} databases are not supported "
                             "(a SQLite file's path, or postgresql://user@host:port/dbname)")
    return sa.create_engine(url.set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool,
                            connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def server_error(db, exc: SQLAlchemyError, doing: str) -> LSTMBenchError:
    """The driver's reason in one line, with no password in it."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = reason[0] if reason else type(exc).__name__
    return LSTMBenchError(secret_free(db, f"{shown(db)}: cannot {doing} ({reason})"))


def found_version(conn) -> int | None:
    """The format of the tables ``conn`` holds: None where there are none yet; else
    LSTMBenchError for another program's tables or a newer lstm-bench's format."""
    inspector = sa.inspect(conn)
    names = set(inspector.get_table_names())
    if not names & {"runs", "results"}:
        return None
    found = {t: {c["name"] for c in inspector.get_columns(t)} for t in ("runs", "results")
             if t in names}
    version = next((v for v, columns in COLUMNS.items() if columns == found), None)
    if version is None:
        raise LSTMBenchError("not a usable history database: another program's (runs and "
                             "results with other columns than lstm-bench's); choose another "
                             "with --db")
    if formats.name in names:
        recorded = conn.execute(sa.select(sa.func.max(formats.c.version))).scalar()
        if isinstance(recorded, int) and recorded > VERSION:
            raise LSTMBenchError(f"history written by a newer lstm-bench (format {recorded}, "
                                 f"this one reads {VERSION})")
    return version


def migrate(conn) -> None:
    """Format 1 to 2, in the caller's transaction: the new columns, each run's series named
    after its model file and its machine from its recorded machine."""
    for name in NEW_COLUMNS:
        kind = runs.c[name].type.compile(conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    for run_id, model_path, cpu, machine in conn.execute(
            sa.select(runs.c.id, runs.c.model_path, runs.c.cpu, runs.c.machine)).all():
        conn.execute(runs.update().where(runs.c.id == run_id)
                     .values(**derived(model_path, cpu, machine)))


def prepare(conn, version: int | None) -> None:
    """The tables made (a new database) or carried forward, and the format recorded."""
    if version is None:
        metadata.create_all(conn)
    else:
        if version < VERSION:
            migrate(conn)
        metadata.create_all(conn, tables=[formats])  # checkfirst: made only where missing
        for index in runs.indexes:  # runs_by_series, format 2's
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    conn.execute(formats.delete())
    conn.execute(formats.insert().values(version=VERSION))
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA user_version = {VERSION}")


def series_name(model_path) -> str:
    """A series' default name: the model file's name."""
    return PurePath(model_path).name or "model" if isinstance(model_path, str) else "model"


def local_gpu() -> str | None:
    """This machine's NVIDIA GPUs' model names, from the driver's own files (no library)."""
    models = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            models += [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                       if line.startswith("Model:")]
        except OSError:
            continue
    return ", ".join(models) or None


def machine_fields(cpu, cores, gpu, name) -> dict:
    """The machine's columns, its id a short hash of what tells machines apart."""
    ident = json.dumps([name, cpu, cores, gpu])
    return {"machine_id": hashlib.sha256(ident.encode()).hexdigest()[:12], "machine_name": name,
            "cores": cores, "gpu": gpu}


def derived(model_path, cpu, machine_json) -> dict:
    """A format-1 run's format-2 columns (no machine name or GPU then recorded)."""
    try:
        machine = (parse_json(machine_json, "machine", "machine")
                   if isinstance(machine_json, (str, bytes)) else {})
    except LSTMBenchError:  # a crafted machine: the run's own row is refused when read
        machine = {}
    cores = machine.get("cores") if isinstance(machine, dict) else None
    return {"series": series_name(model_path),  # a crafted cpu is refused when read
            **machine_fields(cpu if isinstance(cpu, str) else None,
                             cores if isinstance(cores, int) else None, None, None)}


def insert_report(conn, report, command: str, series: str | None) -> int:
    """The report's run and result rows, in the caller's transaction; the run's id."""
    machine = report.machine
    verdicts = report.verify.verdicts if report.verify else {}
    cores = machine.get("cores")
    here = machine_fields(machine.get("cpu"), cores if isinstance(cores, int) else None,
                          machine.get("gpu") or local_gpu(),
                          os.environ.get(MACHINE_ENV) or None)
    run_id = conn.execute(runs.insert().values(
        recorded=machine.get("timestamp") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        command=command, model_sha256=report.model.get("sha256"),
        model_path=report.model.get("path"), model=to_json(report.model, None),
        cpu=machine.get("cpu"), machine=to_json(machine, None),
        git_commit=machine.get("git_commit"),
        versions=to_json(machine.get("libraries") or {}, None),
        settings=to_json(report.settings, None), peak_gflops=report.peak_gflops,
        series=series or series_name(report.model.get("path")), **here)).inserted_primary_key[0]
    rows = []
    for m in report.measurements:
        ci = m.stats.median_ci or (None, None)
        rows.append({"run_id": run_id, "runtime": m.runtime, "mode": m.mode, "chunk": m.chunk,
                     "batch": m.batch, "seq_len": m.seq_len, "threads": m.threads,
                     "median_ms": m.stats.median, "ci_low_ms": ci[0], "ci_high_ms": ci[1],
                     "noise": m.noise,
                     "verdict": verdicts[m.runtime].status if m.runtime in verdicts else None,
                     "row": to_json(m.as_dict(), None)})
    if rows:
        conn.execute(results.insert(), rows)
    return run_id


def read_rows(conn, version: int) -> list[dict]:
    """Every result row joined with its run, oldest first: ``READ``'s columns and format 2's
    (derived, for a format-1 database read as it is)."""
    columns = [runs.c.id.label("run_id"), runs.c.recorded, runs.c.git_commit, runs.c.versions,
               runs.c.model_sha256, runs.c.model_path, runs.c.cpu, results.c.runtime,
               results.c.mode, results.c.chunk, results.c.batch, results.c.seq_len,
               results.c.threads, results.c.row, runs.c.machine]
    if version >= 2:
        columns += [runs.c[name] for name in NEW_COLUMNS]
    query = (sa.select(*columns).select_from(results.join(runs, runs.c.id == results.c.run_id))
             .order_by(runs.c.id, results.c.id))
    rows = [dict(row) for row in conn.execute(query).mappings()]
    if version < 2:
        for row in rows:
            row.update(derived(row["model_path"], row["cpu"], row["machine"]))
    return rows
