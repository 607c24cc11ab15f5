"""Issue 23, item 5: one history for a team's machines in a real PostgreSQL server.

The server is started once for the session in a temporary folder (Debian's PostgreSQL: initdb,
pg_ctl), as the ``postgres`` user where the tests run as root (PostgreSQL refuses root), on a
free TCP port of 127.0.0.1 with trust authentication; every test gets a database of its own.
Without the server's programs the tests skip, saying so.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from hostile import assert_bad_input, run_cli
from lstm_bench.bench import history
from lstm_bench.bench.report import load_report
from lstm_bench.bench.series import load_series
from lstm_bench.cli import main

FAST = ["--runtimes", "numpy", "--seq-len", "3", "--span", "0", "--blocks", "4", "--min-time",
        "0", "--min-reps", "4", "--no-calibrate", "--quiet"]
SECRET = "s3cret-pw"


def server_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return versions[-1] if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of the session's own: the URL of its maintenance database."""
    initdb, pg_ctl = server_program("initdb"), server_program("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed "
                    "(Debian: apt-get install postgresql)")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    if as_root:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a postgres user to start PostgreSQL as")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="lstm-bench-pg-"))  # not under pytest's 0700 folders
    if as_root:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    quiet = {"capture_output": True, "text": True, "timeout": 120}
    made = subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "bench",
                           "-E", "UTF8", "--no-sync"], **quiet)
    assert made.returncode == 0, made.stderr
    started = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w",
                              "-t", "60", "-o", f"-h 127.0.0.1 -p {port} -k {root} -F",
                              "start"], **quiet)
    assert started.returncode == 0, started.stderr + (root / "log").read_text()
    try:
        yield f"postgresql://bench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **quiet)
        shutil.rmtree(root, ignore_errors=True)


def admin(url: str, *statements: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture
def pg_db(postgres):
    """A new, empty database on the session's server; its URL."""
    name = f"h_{uuid.uuid4().hex[:10]}"
    admin(postgres, f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"


RUNS = 6  # per machine
WRITER = """
import sys
sys.path.insert(0, {tests!r})
from test_history import report
from lstm_bench.bench import history
print("ready", flush=True)
sys.stdin.readline()  # both machines write at once
for seed in range({runs}):
    history.record(report(1.0, seed % 9 + 1, "c"), {url!r}, "bench")
"""


def test_two_machines_write_concurrently_and_history_shows_both(pg_db, capsys, monkeypatch):
    """Two processes, two machines (LSTM_BENCH_MACHINE), RUNS reports each at the same time:
    every run and result is there, each machine's series whole."""
    from test_history import report

    other = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(tests=str(Path(__file__).parent), url=pg_db,
                                             runs=RUNS)],
        env={**os.environ, "LSTM_BENCH_MACHINE": "box-b"}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert other.stdout.readline() == "ready\n", other.stderr.read()
    monkeypatch.setenv("LSTM_BENCH_MACHINE", "box-a")
    other.stdin.write("go\n")
    other.stdin.flush()
    for seed in range(RUNS):
        history.record(report(1.0, seed % 9 + 1, "c"), pg_db, "bench")
    monkeypatch.delenv("LSTM_BENCH_MACHINE")
    assert other.wait(timeout=120) == 0, other.stderr.read()
    series = load_series(pg_db)
    assert len(series) == 4  # 2 runtimes x 2 machines
    assert {s.machine["name"] for s in series} == {"box-a", "box-b"}
    assert all(len(s.points) == RUNS for s in series)
    assert sorted({p.run_id for s in series for p in s.points}) == list(range(1, 2 * RUNS + 1))
    assert main(["history", "--db", pg_db, "--machine", "BOX-B", "--json", "-"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert {s["machine"]["name"] for s in doc["series"]} == {"box-b"}
    assert all(len(s["points"]) == RUNS for s in doc["series"])
    assert main(["history", "--db", pg_db]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{2 * RUNS} runs, 4 series" in out
    assert "box-a (test cpu" in out and "box-b (test cpu" in out


def test_bench_records_in_postgres_without_showing_the_password(tiny, pg_db, capsys,
                                                                 monkeypatch):
    url = pg_db.replace("bench@", f"bench:{SECRET}@")  # trust: the password is not checked
    for series in ("prod", None):
        argv = ["bench", tiny, *FAST, "--db", url] + (["--series", series] if series else [])
        assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and "bench:***@" in out and "recorded as run #2" in out
    assert {s.key.series for s in load_series(url)} == {"prod", "tiny.onnx"}
    monkeypatch.setenv(history.DB_ENV, url)  # $LSTM_BENCH_DB takes a URL too
    assert main(["history", "--series", "prod"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out and "1 run, 1 series" in " ".join(out.split())


def test_a_server_that_cannot_take_the_result_is_refused_before_measuring(
        tiny, pg_db, postgres, capsys, monkeypatch):
    monkeypatch.setattr("lstm_bench.cli.bench.run_plan", lambda *a, **k: pytest.fail("measured"))
    closed = f"postgresql://bench:{SECRET}@127.0.0.1:{free_port()}/nowhere"
    line = assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", closed),
                            "cannot use the history database")
    assert SECRET not in line and "***" in line
    assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", "mysql://u@h/db"),
                     "not supported")
    admin(pg_db, "CREATE TABLE runs (id serial PRIMARY KEY, name text)",
          "CREATE TABLE results (id serial PRIMARY KEY, value real)")
    assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", pg_db), "another program's")
    assert_bad_input(run_cli(capsys, "history", "--db", pg_db), "another program's")


def test_a_user_who_may_not_write_is_refused_and_a_failed_write_keeps_the_results(
        tiny, pg_db, tmp_path, capsys, monkeypatch):
    from test_history import report

    history.record(report(1.0, 1, "c"), pg_db, "bench")
    role = f"reader_{uuid.uuid4().hex[:6]}"
    admin(pg_db, f"CREATE ROLE {role} LOGIN",
          f"GRANT SELECT ON runs, results, lstm_bench_format TO {role}")
    reader = pg_db.replace("bench@", f"{role}@")
    monkeypatch.setattr("lstm_bench.cli.bench.run_plan", lambda *a, **k: pytest.fail("measured"))
    assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", reader), "may not write")
    assert main(["history", "--db", reader]) == 0  # reading needs no more than SELECT
    capsys.readouterr()
    monkeypatch.undo()

    def gone(*args, **kwargs):  # the server fails at the write itself, after every check
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(history, "_insert", gone)
    monkeypatch.chdir(tmp_path)
    url = pg_db.replace("bench@", f"bench:{SECRET}@")
    line = assert_bad_input(run_cli(capsys, "bench", tiny, *FAST, "--db", url),
                            "server closed the connection")
    assert SECRET not in line
    saved = re.search(r"saved in (\S+\.json)", line).group(1)
    assert Path(saved).parent == tmp_path  # in the current folder
    assert [m.runtime for m in load_report(saved).measurements] == ["numpy"]
    assert len({p.run_id for s in load_series(pg_db) for p in s.points}) == 1
