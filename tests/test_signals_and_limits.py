"""Issue 18, classes 5, 7, 10 and part of 14: signals are never swallowed, workers die with
their parent, every limit variable and numeric option is range-checked up front, and a huge
name does not push verify's columns off its table.

Each test failed on the code before the fix: an export that fell back to TorchScript after
SIGTERM and wrote its file, a worker left running after its parent was killed, a timer thread
that died of an OverflowError (the runaway-call guard silently off), a time limit blamed on the
model, ``--processes 100000`` accepted, a verify table reduced to two columns.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile import QUICK, assert_bad_input, lstm_model, run_cli, snapshot, weights_npz
from lstm_bench import seed
from lstm_bench.bench.harness import Settings
from lstm_bench.errors import LSTMBenchError

FAST = ["--runtimes", "numpy", "--no-streaming"]


def _driver(code: str, argv, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``lstm-bench ARGV`` in a fresh interpreter, after ``code`` (which sets up where the
    signal comes)."""
    script = code + "\nfrom lstm_bench.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# --- 5. no catch-all swallows SIGTERM ------------------------------------------------------

# SIGTERM arrives inside torch.export, and a library on the way turns its exception into an
# error of its own (C++ code that catches every exception does; so does type() in
# __set_name__): the dynamo exporter then "fails", and the export fell back to TorchScript,
# wrote its file, printed success and only then exited 143.
CONVERTED_IN_TORCH_EXPORT = """
import signal, sys, torch
real = torch.export.export
def export(*args, **kwargs):
    try:
        signal.raise_signal(signal.SIGTERM)
    except KeyboardInterrupt:
        raise RuntimeError("a library turned the interrupt into this error") from None
    return real(*args, **kwargs)
torch.export.export = export
"""


def test_sigterm_inside_the_dynamo_exporter_is_no_fallback_to_torchscript(tmp_path):
    out = tmp_path / "seed.onnx"
    result = _driver(CONVERTED_IN_TORCH_EXPORT,
                     ["export", seed.shipped_checkpoint(), "-o", out], tmp_path)
    assert result.returncode == 143, result.stderr[-2000:]
    assert result.stderr == "lstm-bench export: terminated\n", result.stderr[-2000:]
    assert result.stdout == "" and not out.exists()
    assert os.listdir(tmp_path) == []


# The signal comes while a finalizer (here a gc callback) runs: Python prints its exception as
# "Exception ignored" and drops it, and the export went on, wrote its file and printed
# success; the CLI exited 143 after that.
SWALLOWED_IN_A_FINALIZER = """
import gc, signal, sys
from lstm_bench.exporters import source
sent = []
def on_gc(phase, info):
    frame = sys._getframe()
    while frame is not None and frame.f_code is not source.export_source.__code__:
        frame = frame.f_back
    if frame is not None and not sent:
        sent.append(phase)
        signal.raise_signal(signal.SIGTERM)
gc.callbacks.append(on_gc)
gc.set_threshold(1)
"""


def test_a_signal_a_finalizer_swallowed_during_an_export_writes_nothing(tmp_path):
    source = weights_npz(tmp_path / "w.npz")
    before = snapshot(tmp_path)
    result = _driver(SWALLOWED_IN_A_FINALIZER, ["export", source, "-o", tmp_path / "w.onnx"],
                     tmp_path)
    assert (result.returncode, result.stderr) == (143, "lstm-bench export: terminated\n"), \
        result.stderr[-2000:]
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


# --- 10. workers die with their parent -----------------------------------------------------

def _children(pid: int) -> dict[int, bytes]:
    """The processes whose parent is ``pid``: pid -> command line."""
    found = {}
    for process in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # gone meanwhile
            parent = int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(process.name)] = (process / "cmdline").read_bytes()
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie has ended: it only waits for its new parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_a_killed_bench_leaves_no_worker_or_resource_tracker_running(tmp_path, tiny):
    """SIGKILL of a ``--processes 2`` parent left the spawn worker and multiprocessing's
    resource tracker running (for minutes: the worker waits for work forever)."""
    proc = subprocess.Popen([sys.executable, "-m", "lstm_bench.cli", "bench", tiny,
                             "--runtimes", "numpy", "--processes", "2", "--span", "60",
                             "--no-calibrate", "--no-history", "--quiet"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = []
    try:
        deadline = time.monotonic() + 120
        while not any(b"spawn_main" in line for line in _children(proc.pid).values()):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"bench never started its worker: {proc.communicate()[1][-500:]}")
            time.sleep(0.01)
        started = list(_children(proc.pid))  # the worker and the resource tracker
        assert any(b"resource_tracker" in line for line in _children(proc.pid).values())
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in started if _alive(pid)], "left running after the parent died"
    finally:
        for pid in started:  # never leave them behind, whatever the test found
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


# --- 7. every limit variable and numeric option is range-checked up front ------------------

@pytest.mark.parametrize("name, value, contains", [
    ("LSTM_BENCH_CALL_TIMEOUT_S", "1e10", "at most 1e+06"),
    ("LSTM_BENCH_REFERENCE_TIMEOUT_S", "1e10", "at most 1e+06"),
    ("LSTM_BENCH_CALL_TIMEOUT_S", "1000000.5", "at most 1e+06"),
    ("LSTM_BENCH_MAX_ARRAY_MB", "1e308", "at most 1e+09"),
    ("LSTM_BENCH_MAX_JSON_MB", "1e300", "at most 1e+09"),
    ("LSTM_BENCH_MAX_FEEDS_MB", "inf", "positive number"),
])
@pytest.mark.parametrize("command", ["verify", "bench"])
def test_a_limit_variable_out_of_range_is_bad_input(tmp_path, capsys, monkeypatch, tiny, name,
                                                    value, contains, command):
    """LSTM_BENCH_CALL_TIMEOUT_S=1e10 was accepted, and the timer thread died with an
    OverflowError (the runaway-call guard silently off, exit 0); the reference's 1e10 was
    blamed on the model; a limit of 1e308 MiB was a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    argv = ["verify", tiny, *FAST] if command == "verify" else ["bench", tiny, "--runtimes",
                                                                  "numpy", *QUICK]
    assert_bad_input(run_cli(capsys, *argv), f"lstm-bench {command}: error:", name, contains)
    assert os.listdir(tmp_path) == []


def test_the_largest_time_limit_is_taken_and_its_guard_runs(tmp_path, capsys, monkeypatch, tiny):
    """At the boundary the timer thread and the reference's alarm start (no traceback on
    stderr, as the thread's OverflowError was)."""
    from lstm_bench.files import MAX_LIMIT_MB, MAX_LIMIT_S

    assert MAX_LIMIT_S == 1e6
    monkeypatch.chdir(tmp_path)
    for name in ("LSTM_BENCH_CALL_TIMEOUT_S", "LSTM_BENCH_REFERENCE_TIMEOUT_S"):
        monkeypatch.setenv(name, "1e6")
    rc, _, err = run_cli(capsys, "bench", tiny, "--runtimes", "numpy", *QUICK)
    assert (rc, err) == (0, "")
    rc, _, err = run_cli(capsys, "verify", tiny, *FAST)
    assert (rc, err) == (0, "")
    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", str(MAX_LIMIT_MB))
    assert run_cli(capsys, "verify", tiny, *FAST)[0] == 0


@pytest.mark.parametrize("argv, contains", [
    (["bench", "{m}", "--processes", "100000"], "--processes"),
    (["bench", "{m}", "--processes", "65"], "--processes"),
    (["bench", "{m}", "--span", "1e308"], "--span"),
    (["bench", "{m}", "--span", "86401"], "--span"),
    (["bench", "{m}", "--span", "nan"], "--span"),
    (["bench", "{m}", "--blocks", "1000000000000"], "--blocks"),
    (["bench", "{m}", "--block", "100000000000000000000"], "--block"),
    (["bench", "{m}", "--min-time", "1e308"], "--min-time"),
    (["run", "--model", "{m}", "--span", "1e308", "--out", "{d}/out"], "--span"),
    (["run", "--model", "{m}", "--min-time", "1e308", "--out", "{d}/out"], "--min-time"),
    (["compare", "{m}", "{m}", "--span", "1e308"], "--span"),
    (["compare", "{m}", "{m}", "--fail-above", "inf"], "--fail-above"),
    (["history", "--fail-above", "inf"], "--fail-above"),
    (["bench", "{m}", "--ort-option", "session.intra_op.allow_spinning=banana"],
     "session.intra_op.allow_spinning"),
    (["bench", "{m}", "--ort-option", "session.inter_op.allow_spinning=2"],
     "session.inter_op.allow_spinning"),
    (["verify", "{m}", "--ort-option", "session.set_denormal_as_zero=yes"],
     "session.set_denormal_as_zero"),
    (["run", "--model", "{m}", "--ort-option", "session.intra_op.allow_spinning=banana",
      "--out", "{d}/out"], "expected 0 or 1"),
    (["bench", "{m}", "--ort-option", "session." + "k" * 130 + "=1"], "128"),
    (["bench", "{m}", "--ort-option", "session.custom=" + "v" * 1100], "1024"),
])
def test_numeric_options_out_of_range_are_refused_up_front(tmp_path, capsys, monkeypatch, tiny,
                                                           argv, contains):
    """--processes 100000 and --span 1e308 were accepted (the one started 100000 workers one
    after another, the other waited for ever), --min-time 1e308 was a traceback, and
    session.intra_op.allow_spinning=banana went to onnxruntime, which took it for 0."""
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    argv = [a.format(m=tiny, d=tmp_path) for a in argv]
    quiet = [] if argv[0] in ("verify", "history") else ["--quiet"]
    line = assert_bad_input(run_cli(capsys, *argv, *quiet), contains)
    assert line.startswith(f"lstm-bench {argv[0]}: error:"), line
    assert snapshot(tmp_path) == before


def test_the_bounds_of_processes_and_span_are_inclusive():
    from lstm_bench.bench.harness import MAX_PROCESSES, MAX_SPAN

    assert (MAX_PROCESSES, MAX_SPAN) == (64, 86400.0)
    Settings(processes=MAX_PROCESSES, span=MAX_SPAN)
    with pytest.raises(LSTMBenchError, match="--processes"):
        Settings(processes=MAX_PROCESSES + 1)
    with pytest.raises(LSTMBenchError, match="--span"):
        Settings(span=MAX_SPAN * (1 + 1e-9))


def test_spinning_options_still_take_0_and_1(tmp_path, capsys, monkeypatch, tiny):
    from lstm_bench.runtimes.ort_options import parse_ort_options

    assert parse_ort_options(["session.intra_op.allow_spinning= 0",
                              "intra_op_spinning=1"]).as_dict() == {
        "session.intra_op.allow_spinning": "0", "intra_op_spinning": "1"}
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(capsys, "bench", tiny, "--runtimes", "ort-cpu", "--ort-option",
                         "session.intra_op.allow_spinning=0", *QUICK)
    assert rc == 0, err


# --- 14. a huge name keeps verify's columns ------------------------------------------------

def test_a_200_kb_output_name_is_cut_on_the_terminal_and_the_table_keeps_its_columns(
        tmp_path, capsys, monkeypatch):
    """The table left out every column but the runtime and its verdict to make room for the
    name. On a terminal a long name is now cut in the middle with an ellipsis; the JSON report
    keeps it whole."""
    import json

    name = "y" * 100_000 + "z" * 100_000

    def rename(model):
        model.graph.node[0].output[0] = model.graph.output[0].name = name

    odd = lstm_model(tmp_path / "odd.onnx", rename)
    plain = lstm_model(tmp_path / "plain.onnx")
    monkeypatch.setenv("COLUMNS", "120")
    rc, expected, _ = run_cli(capsys, "verify", plain, *FAST)
    assert rc == 0
    rc, out, err = run_cli(capsys, "verify", odd, *FAST, "--json", tmp_path / "v.json")
    assert rc == 0 and err == "", err
    heading = next(line for line in out.splitlines() if "verdict" in line)
    assert heading.split() == next(line for line in expected.splitlines()
                                   if "verdict" in line).split()
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "yyyy…zzzz" in out
    outputs = json.loads((tmp_path / "v.json").read_text())["results"][0]["outputs"]
    assert name in [o["name"] for o in outputs]
