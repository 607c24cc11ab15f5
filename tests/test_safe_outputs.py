"""Issue 18, classes 1, 2, 9, 12 and the cosmetic part of 14: outputs are safe.

An output never replaces a file the command reads (a checkpoint's config, a model's external
data, the history database), never lies inside another output, is a regular file (never a
device, FIFO, socket or a process's open file: refused, the node left as it is), is never
created through a dangling symlink, and an immutable or append-only target is refused before the
work. Markdown reports escape names; plots leave no matplotlib folders in HOME and exports no
empty ``torchinductor_*`` folder in the temporary folder. Every refusal is one line, exit 2,
nothing created, changed or removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hostile import assert_bad_input, lstm_model, run_cli, snapshot
from lstm_bench import seed

SHIPPED = seed.shipped_checkpoint()
VERIFY = ["--runtimes", "numpy", "--no-streaming"]
# a bench whose figures nobody reads, recording its result in the history database
BENCH = ["--runtimes", "numpy", "--span", "0", "--blocks", "1", "--min-time", "0",
         "--min-reps", "2", "--max-reps", "2", "--no-calibrate", "--quiet"]


@pytest.fixture
def model(tmp_path, tiny):
    path = tmp_path / "m.onnx"
    shutil.copy(tiny, path)
    return path


def history_db(path: Path) -> Path:
    from lstm_bench.bench import history

    history.connect(path, create=True).close()
    return path


def refused(capsys, folder: Path, *argv, contains=()) -> str:
    """Run ``argv``: bad input (one line, exit 2) that leaves ``folder`` as it was."""
    before = snapshot(folder)
    line = assert_bad_input(run_cli(capsys, *argv), *contains)
    assert snapshot(folder) == before
    return line


# --- 1. every path a command reads is known before any output is opened -------------------

@pytest.mark.parametrize("html", ["h.sqlite", "./h.sqlite", "h.sqlite-journal"])
def test_history_html_never_replaces_its_database(tmp_path, capsys, html):
    db = history_db(tmp_path / "h.sqlite")
    refused(capsys, tmp_path, "history", "--db", db, "--html", tmp_path / html,
            contains=["--html", "--db", "choose another path"])


@pytest.fixture(scope="module")
def seed_onnx(tmp_path_factory):
    """The seed checkpoint exported to ONNX (by TorchScript: seconds, not dynamo's minute)."""
    from lstm_bench.exporters.source import export_source

    path = tmp_path_factory.mktemp("seed") / "seed.onnx"
    export_source(SHIPPED, path, exporter="torchscript")
    return path


@pytest.mark.parametrize("source, json", [("seed_lstm.pt", "seed_lstm.json"),
                                          ("seed_lstm.json", "seed_lstm.pt")])
def test_verify_json_never_replaces_the_checkpoints_other_half(seed_onnx, tmp_path, capsys,
                                                               source, json):
    for suffix in (".pt", ".json"):
        shutil.copy(SHIPPED.with_suffix(suffix), tmp_path / f"seed_lstm{suffix}")
    refused(capsys, tmp_path, "verify", seed_onnx, "--source", tmp_path / source, "--json",
            tmp_path / json, *VERIFY, contains=["--json", "--source", "choose another path"])


def external_data_model(folder: Path) -> Path:
    """The tiny LSTM with its weights in ``m.data`` beside it."""
    import onnx

    path = lstm_model(folder / "ext.onnx")
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True,
              all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    assert (folder / "m.data").stat().st_size > 0
    return path


def test_an_output_never_replaces_a_models_external_data(tmp_path, capsys):
    path = external_data_model(tmp_path)
    refused(capsys, tmp_path, "verify", path, "--json", tmp_path / "m.data", *VERIFY,
            contains=["--json", "m.data", "choose another path"])
    refused(capsys, tmp_path, "bench", path, "--md", tmp_path / "m.data", *BENCH,
            "--no-history", contains=["--md", "m.data", "choose another path"])


def test_bench_never_writes_a_report_over_the_default_history_database(model, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.delenv("LSTM_BENCH_DB")
    monkeypatch.chdir(tmp_path)
    history_db(tmp_path / "lstm-bench-out" / "history.sqlite")
    refused(capsys, tmp_path, "bench", model, "--json", "lstm-bench-out/history.sqlite", *BENCH,
            contains=["--json", "--db", "choose another path"])


# --- 12. nested outputs fail before the work ----------------------------------------------

def measurement(runtime: str):
    """A measurement of 3 blocks of 3 calls of 1 ms."""
    from lstm_bench.bench.stats import Block, Measurement

    return Measurement(runtime, 1, 100, 1, (10 ** 6,) * 9,
                       blocks=tuple(Block(0, i, i, 3) for i in range(3)))


def saved_report(path: Path) -> Path:
    """A bench report that ``compare`` takes, written as bench writes it."""
    from lstm_bench.bench.report import BenchReport, write_reports

    write_reports(BenchReport(model={"path": "m.onnx", "sha256": "ab" * 32},
                              machine={"cpu": "x"}, settings={},
                              measurements=[measurement("ort-cpu")]), json=path)
    return path


def test_an_output_inside_another_is_refused_before_any_is_written(tmp_path, capsys):
    base, new = saved_report(tmp_path / "a.json"), saved_report(tmp_path / "b.json")
    refused(capsys, tmp_path, "compare", base, new, "--json", tmp_path / "x/y/r.json", "--html",
            tmp_path / "x", contains=["--html", "--json", "inside"])
    refused(capsys, tmp_path, "compare", base, new, "--html", tmp_path / "x", "--md",
            tmp_path / "x/r.md", contains=["--html", "--md", "inside"])


def test_a_report_inside_the_history_database_path_is_refused_up_front(model, tmp_path,
                                                                       capsys):
    line = refused(capsys, tmp_path, "bench", model, "--db", tmp_path / "a", "--json",
                   tmp_path / "a/r.json", *BENCH, contains=["--json", "--db"])
    assert "inside" in line


# --- 12. immutable and append-only targets fail before the work ---------------------------

@contextlib.contextmanager
def chattr(path: Path, flag: str):
    """``chattr +flag path`` for the block (skips where the file system or user cannot)."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr here")
    done = subprocess.run(["chattr", f"+{flag}", str(path)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"chattr +{flag} not permitted here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", f"-{flag}", str(path)], check=True)


def test_an_immutable_report_is_refused_before_the_work(model, tmp_path, capsys):
    report = tmp_path / "r.json"
    report.write_text("the user's earlier report")
    with chattr(report, "i"):
        before = snapshot(tmp_path)
        rc, out, err = run_cli(capsys, "verify", model, "--json", report, *VERIFY)
        assert_bad_input((rc, out, err), "--json", "immutable")
        assert out == ""  # refused before any runtime ran
        assert snapshot(tmp_path) == before


def test_an_append_only_folder_is_refused_before_the_work(model, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    with chattr(folder, "a"):
        before = snapshot(tmp_path)
        rc, out, err = run_cli(capsys, "verify", model, "--json", folder / "r.json", *VERIFY)
        assert_bad_input((rc, out, err), "--json", "append-only")
        assert out == ""
        assert snapshot(tmp_path) == before


# --- 2. outputs are regular files: devices, FIFOs, sockets, standard streams -------------

def make_node(path: Path, kind: str) -> Path:
    if kind == "character device":
        try:  # the same device as /dev/null (1, 3)
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError as exc:
            pytest.skip(f"mknod of a character device needs root: {exc}")
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
    return path


def node_kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


@pytest.mark.parametrize("kind", ["character device", "FIFO", "socket"])
def test_a_device_fifo_or_socket_is_never_replaced_by_a_report(model, tmp_path, capsys, kind):
    node = make_node(tmp_path / "node", kind)
    mode = node_kind(node)
    refused(capsys, tmp_path, "verify", model, "--json", node, *VERIFY,
            contains=["--json", kind])
    assert node_kind(node) == mode


@pytest.mark.parametrize("kind", ["character device", "FIFO"])
def test_a_device_as_history_database_is_refused_and_gets_no_journal(model, tmp_path, capsys,
                                                                     kind):
    node = make_node(tmp_path / "null", kind)
    refused(capsys, tmp_path, "bench", model, "--db", node, *BENCH, contains=["--db", kind])
    assert not (tmp_path / "null-journal").exists()


def test_a_link_to_standard_output_is_never_replaced(model, tmp_path, capsys):
    """``bench --json /dev/stdout``, made in a temporary folder: a link to this process's fd 1
    (a pipe, a terminal or, under pytest, a file) is an open stream, not a report path."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    refused(capsys, tmp_path, "bench", model, "--json", link, *BENCH, "--no-history",
            contains=["--json"])
    assert os.readlink(link) == "/proc/self/fd/1"


def test_a_report_named_dash_is_not_created_silently(model, tmp_path, capsys, monkeypatch):
    """``-`` is standard output where an option takes it (issue 23: ``--json -``), refused
    where it does not (``--html -``); never a file named ``-``."""
    monkeypatch.chdir(tmp_path)
    refused(capsys, tmp_path, "bench", model, "--html", "-", *BENCH, contains=["--html -"])
    rc, out, _ = run_cli(capsys, "verify", model, "--json", "-", *VERIFY)
    assert rc == 0 and out.startswith("{") and not (tmp_path / "-").exists()


# --- 9. never a file created through a planted symlink ------------------------------------

def test_a_dangling_default_history_link_is_refused(model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LSTM_BENCH_DB")
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "lstm-bench-out").mkdir(parents=True)
    elsewhere.mkdir()
    (work / "lstm-bench-out" / "history.sqlite").symlink_to(elsewhere / "h.sqlite")
    monkeypatch.chdir(work)
    refused(capsys, tmp_path, "bench", model, *BENCH, contains=["history.sqlite", "link"])
    assert list(elsewhere.iterdir()) == []


def test_a_dangling_db_link_is_refused(model, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere / "h.sqlite")
    run = ["run", "--model", model, "--runtimes", "numpy", "--span", "0", "--min-time", "0",
           "--out", tmp_path / "out"]
    for command in (["bench", model, *BENCH], run):
        refused(capsys, tmp_path, *command, "--db", tmp_path / "link", contains=["--db", "link"])
    assert list(elsewhere.iterdir()) == []



def test_a_db_link_to_an_existing_database_is_refused(model, tmp_path, capsys):
    """SQLite writes its journal beside the file it opens: through a link, that is outside the
    folder the user named. The database it points to is left as it was."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = history_db(elsewhere / "h.sqlite")
    (tmp_path / "link").symlink_to(target)
    before = target.read_bytes()
    refused(capsys, tmp_path, "bench", model, *BENCH, "--db", tmp_path / "link",
            contains=["link", "own path"])
    assert target.read_bytes() == before and sorted(elsewhere.iterdir()) == [target]

# --- 14. Markdown escapes names -------------------------------------------------------------

HOSTILE = "<script>alert(1)</script> \u202eevil\u2066 [x](javascript:alert(1)) *a* &#x202E;\nline"


def assert_escaped(markdown: str) -> None:
    from markdown_it import MarkdownIt

    page = MarkdownIt().render(markdown)  # raw HTML is on in CommonMark: <script> would pass
    assert "<script" not in page and "<a " not in page and "<em>" not in page
    for char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        assert char not in markdown and char not in page
    assert "\nline" not in markdown
    assert "alert(1)" in page  # shown, as text


def test_markdown_reports_escape_names():
    from lstm_bench.bench.markdown import render_markdown
    from lstm_bench.bench.report import BenchReport, Skip

    rows = [measurement(name) for name in (HOSTILE, "ort-cpu")]
    report = BenchReport(model={"path": f"/x/{HOSTILE}.onnx"}, measurements=rows,
                         machine={"cpu": HOSTILE, "git_commit": HOSTILE}, settings={},
                         notes=[HOSTILE], skipped=[Skip(HOSTILE, HOSTILE)])
    assert_escaped(render_markdown(report))


def test_compare_markdown_escapes_the_report_names(tmp_path, capsys):
    name = "<img src=x onerror=alert(1)> \u202eevil`x\nline.json"
    base, new = saved_report(tmp_path / name), saved_report(tmp_path / "b.json")
    rc, out, err = run_cli(capsys, "compare", base, new, "--md", tmp_path / "c.md")
    assert rc in (0, 1), err
    markdown = (tmp_path / "c.md").read_text()
    assert_escaped(markdown)
    assert "<img" not in markdown.replace("\\<img", "")  # written escaped: \<img


# --- 14. no HOME caches, no empty temporary folders ----------------------------------------

def clean_env(tmp_path: Path) -> tuple[dict, Path, Path]:
    home, scratch = tmp_path / "home", tmp_path / "scratch"
    home.mkdir()
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "MPL", "TORCHINDUCTOR_", "LSTM_BENCH_DB"))}
    env.update(HOME=str(home), TMPDIR=str(scratch), ORT_DISABLE_TELEMETRY="1")
    return env, home, scratch


def test_plots_leave_no_matplotlib_folders_in_home(tiny, tmp_path):
    env, home, scratch = clean_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", "bench", str(tiny), *BENCH,
                           "--no-history", "--html", str(tmp_path / "r.html")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "data:image/png" in (tmp_path / "r.html").read_text()  # the plots were drawn
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    assert list(scratch.iterdir()) == []


def test_an_export_leaves_no_empty_folder_in_tmpdir(tmp_path):
    env, _, scratch = clean_env(tmp_path)
    out = tmp_path / "seed.onnx"
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", "export", str(SHIPPED), "-o",
                           str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "by dynamo" in proc.stdout
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []  # .ses: onnxruntime's
