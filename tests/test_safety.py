"""Issue 9, class by class: lstm-bench is safe with the user's files.

Each test is one class of the issue's 277 adversarial inputs: it failed on the code before the
fix (a traceback, a wrong exit code, a file touched that was not named, a silent wrong answer)
and passes now. The contract everywhere: exit 0, 1 or 2; bad input is one line on stderr and
exit 2; no file outside the named outputs is created, changed or removed.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hostile import (add_output, assert_bad_input, bench_report, constant_of_shape_bomb,
                     external_data_model, keras_archive, loop_model, lstm_model, npy_bytes,
                     run_cli, snapshot, weights_npz, write_npz)
from lstm_bench import seed
from lstm_bench.errors import LSTMBenchError

SHIPPED = seed.shipped_checkpoint()
FAST = ["--runtimes", "numpy", "--no-streaming"]  # verify on one quick runtime


@pytest.fixture
def model(tmp_path, tiny):
    path = tmp_path / "m.onnx"
    shutil.copy(tiny, path)
    return path


# --- 1. nothing outside the named outputs is created, changed or removed -------------------

@pytest.mark.parametrize("argv", [
    ["verify", "{m}", "--json", "{m}", *FAST],
    ["bench", "{m}", "--json", "{m}", "--quiet", "--no-calibrate"],
    ["bench", "{m}", "--json", "{d}/r", "--html", "{d}/r", "--quiet", "--no-calibrate"],
    ["bench", "{m}", "--md", "{d}/./r.md", "--html", "{d}/r.md", "--quiet", "--no-calibrate"],
])
def test_an_output_never_overwrites_an_input_or_another_output(model, capsys, argv):
    before = snapshot(model.parent)
    argv = [a.format(m=model, d=model.parent) for a in argv]
    assert_bad_input(run_cli(capsys, *argv), "choose another path" if argv.count(str(model)) == 2
                     else "its own path")
    assert snapshot(model.parent) == before


def test_a_planted_symlink_beside_a_report_is_never_followed(tmp_path):
    from lstm_bench.files import write_text

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("report.json.partial", ".report.json.partial"):
        (tmp_path / name).symlink_to(victim)
    write_text(tmp_path / "report.json", "{}\n")
    assert victim.read_text() == "precious"
    assert (tmp_path / "report.json").read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == sorted(
        [".report.json.partial", "report.json", "report.json.partial", "victim.txt"])


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    from lstm_bench.files import atomic_path

    (tmp_path / "out.onnx").write_text("the user's earlier file")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.onnx") as tmp:
            tmp.write_text("half")
            raise RuntimeError("the exporter failed")
    assert os.listdir(tmp_path) == ["out.onnx"]
    assert (tmp_path / "out.onnx").read_text() == "the user's earlier file"


def test_sigterm_during_export_leaves_nothing_behind(tmp_path):
    """The export builds and proves its file in a private temporary folder, made first, for
    seconds: SIGTERM then."""
    out_dir, scratch = tmp_path / "out", tmp_path / "scratch"
    out_dir.mkdir()
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "lstm_bench.cli", "export", str(SHIPPED),
                             "-o", str(out_dir / "seed.onnx"), "--exporter", "torchscript"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 120
    while not list(scratch.glob("lstm-bench-export-*")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the export never made its temporary folder")
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert os.listdir(out_dir) == []
    assert not list(scratch.glob("lstm-bench-export-*"))


def test_files_written_get_the_users_umask_permissions(tmp_path, capsys, tiny):
    """Checkpoint exports (and run's seed.onnx) went through mkstemp and stayed 0600."""
    import onnx

    from lstm_bench.exporters.torch_export import save_model
    from lstm_bench.files import write_text

    weights_npz(tmp_path / "w.npz")
    old = os.umask(0o027)
    try:
        rc, _, err = run_cli(capsys, "export", tmp_path / "w.npz", "-o", tmp_path / "w.onnx")
        save_model(onnx.load(str(tiny)), tmp_path / "torch.onnx")
        write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(old)
    assert rc == 0, err
    for name in ("w.onnx", "torch.onnx", "r.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def _cli_process(*argv, group: bool = False) -> subprocess.Popen:
    """``python -m lstm_bench.cli ARGV`` with Ctrl-C at its default: a shell script's
    background job (pytest run with ``&``) ignores SIGINT, its children inherit that, and
    lstm-bench keeps an ignored SIGINT ignored, as every program does. ``group``: in a
    process group of its own, as a terminal starts a command."""
    return subprocess.Popen([sys.executable, "-m", "lstm_bench.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            process_group=0 if group else None)


def _ended(proc: subprocess.Popen, timeout: float = 120) -> str:
    """The stderr of a process that should end by itself; killed and failed if it does not."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running after {timeout} s: {proc.communicate()[1][-500:]}")


def test_a_run_interrupted_after_verify_says_so_in_its_folder(tmp_path, tiny):
    """Ctrl-C once verify.json is written: the folder keeps verify.json and a file that says
    its report set is incomplete. The bench is spread over 60 s, so that the signal lands in
    it however slow the machine; the signal ends it."""
    out = tmp_path / "out"
    proc = _cli_process("run", "--model", tiny, "--out", out, "--runtimes", "numpy",
                        "--span", "60", "--quiet")
    deadline = time.monotonic() + 120
    while not list(out.glob("*/verify.json")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"run never wrote verify.json: {proc.communicate()[1][-500:]}")
        time.sleep(0.01)
    time.sleep(0.2)  # into the benchmark
    proc.send_signal(signal.SIGINT)
    err = _ended(proc)
    assert proc.returncode == 130 and err == "lstm-bench run: interrupted\n", err
    (folder,) = out.iterdir()
    assert (folder / "verify.json").is_file() and not (folder / "bench.html").exists()
    assert "stopped before its reports were complete: interrupted" in \
        (folder / "INTERRUPTED").read_text()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="reads the worker's blocked signals in /proc (Linux)")
def test_ctrl_c_in_a_terminal_stops_bench_and_its_worker_processes(tmp_path, tiny):
    """A terminal sends Ctrl-C to the whole process group. bench --processes starts its
    workers with SIGINT blocked (one that got it while starting printed a traceback, or
    "Fatal Python error"), and the parent ends the worker rather than wait for its share of
    the span."""
    report = tmp_path / "r.json"
    proc = _cli_process("bench", tiny, "--runtimes", "numpy", "--processes", "2", "--span",
                        "60", "--no-calibrate", "--json", report, "--quiet", group=True)
    deadline = time.monotonic() + 120
    worker = None
    while worker is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"bench never started its worker: {proc.communicate()[1][-500:]}")
        for process in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, IndexError):  # gone meanwhile
                parent = int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent == proc.pid and b"spawn_main" in (process / "cmdline").read_bytes():
                    worker = process
        time.sleep(0.01)
    status = dict(line.split(":", 1) for line in (worker / "status").read_text().splitlines())
    assert int(status["SigBlk"], 16) & 1 << (signal.SIGINT - 1), status["SigBlk"]
    os.killpg(proc.pid, signal.SIGINT)
    err = _ended(proc)
    assert proc.returncode == 130 and err == "lstm-bench bench: interrupted\n", err
    assert os.listdir(tmp_path) == []


def _signal_in_a_gc_callback(capsys, argv, signum, sigint_handler):
    """``lstm-bench ARGV`` in this process, with ``signum`` raised inside a gc callback while
    the benchmark opens a runtime: its exception is raised there, where Python prints and
    drops it ("Exception ignored in ..."). Returns (exit code, stderr, whether the signal was
    sent, the SIGINT and SIGTERM handlers after the command, those before)."""
    from lstm_bench.bench import harness
    from lstm_bench.cli import main

    sent = []
    threshold = gc.get_threshold()

    def on_gc(phase, info):
        frame = sys._getframe()
        while frame is not None and frame.f_code is not harness.open_runtime.__code__:
            frame = frame.f_back
        if frame is not None and not sent:
            sent.append(phase)
            gc.set_threshold(*threshold)
            signal.raise_signal(signum)

    # the test's own SIGINT handler: pytest may run as a background job (see _cli_process)
    outer = signal.signal(signal.SIGINT, sigint_handler)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    gc.set_threshold(1)  # a collection every few allocations: some while a runtime opens
    gc.callbacks.append(on_gc)
    try:
        rc = main([str(a) for a in argv] + ["--runtimes", "numpy", "--span", "0.5", "--quiet"])
    finally:
        gc.callbacks.remove(on_gc)
        gc.set_threshold(*threshold)
        after = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGINT, outer)
    return rc, capsys.readouterr().err, bool(sent), after, before


@pytest.mark.parametrize("command, signum", [("run", signal.SIGINT), ("bench", signal.SIGINT),
                                             ("compare", signal.SIGINT),
                                             ("bench", signal.SIGTERM)])
def test_a_signal_whose_exception_a_finalizer_swallowed_still_ends_the_command(
        tmp_path, tiny, capsys, command, signum):
    """Python raises KeyboardInterrupt in whatever code runs when SIGINT comes; in a
    finalizer or a gc callback it is printed as "Exception ignored" and lost, and the command
    went on to the end and exited 0. It now stops at the harness's next block or run's next
    step: exit 130 (143 for SIGTERM), one line, no report or part of one, and the caller's
    signal handlers back."""
    out = tmp_path / "out"
    out.mkdir()
    reports = ["--json", out / "r.json", "--md", out / "r.md", "--html", out / "r.html"]
    argv = {"run": ["run", "--model", tiny, "--out", out],
            "bench": ["bench", tiny, "--no-calibrate", *reports],
            "compare": ["compare", tiny, tiny, *reports[:2]]}[command]
    rc, err, sent, after, before = _signal_in_a_gc_callback(capsys, argv, signum,
                                                            signal.default_int_handler)
    assert sent, "no collection came while a runtime opened"
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    assert (rc, err) == (128 + signum, f"lstm-bench {command}: {word}\n")
    assert after == before
    if command == "run":  # verify.json, and the note that the report set is incomplete
        (folder,) = out.iterdir()
        assert sorted(os.listdir(folder)) == ["INTERRUPTED", "verify.json"]
    else:
        assert os.listdir(out) == []


def test_an_ignored_sigint_stays_ignored(tmp_path, tiny, capsys):
    """A shell script's background job (``lstm-bench bench M &``) ignores SIGINT, so that the
    Ctrl-C meant for the script leaves it running: lstm-bench keeps it so, as every program."""
    report = tmp_path / "r.json"
    rc, err, sent, after, _ = _signal_in_a_gc_callback(
        capsys, ["bench", tiny, "--no-calibrate", "--json", report], signal.SIGINT,
        signal.SIG_IGN)
    assert sent and rc == 0 and err == "", err
    assert after[0] is signal.SIG_IGN and report.is_file()


# --- 2. reading user files is confined ----------------------------------------------------

def _external_storage(h5):
    del h5["layers/lstm/cell/vars/2"]
    h5["layers/lstm/cell/vars"].create_dataset("2", shape=(8,), dtype="f4",
                                               external=[("/etc/passwd", 0, 32)])


def _external_link(h5):
    import h5py

    del h5["layers/lstm/cell/vars/2"]
    h5["layers/lstm/cell/vars/2"] = h5py.ExternalLink("/etc/passwd", "/x")


def _virtual(h5):
    import h5py

    del h5["layers/lstm/cell/vars/2"]
    layout = h5py.VirtualLayout(shape=(8,), dtype="f4")
    layout[:] = h5py.VirtualSource("/nonexistent.h5", "x", shape=(8,))
    h5["layers/lstm/cell/vars"].create_virtual_dataset("2", layout, fillvalue=0)


@pytest.mark.parametrize("tamper, named", [
    (_external_storage, "external file(s) ['/etc/passwd']"),
    (_external_link, "external link to '/etc/passwd'"),
    (_virtual, "virtual dataset"),
])
def test_hdf5_storage_outside_the_archive_is_refused_by_name(tmp_path, capsys, tamper, named):
    evil = keras_archive(tmp_path / "evil.keras", tamper=tamper)
    before = snapshot(tmp_path)
    assert_bad_input(run_cli(capsys, "export", evil, "-o", tmp_path / "o.onnx"), named,
                     "layers/lstm/cell/vars/2")
    assert snapshot(tmp_path) == before


def test_a_clean_hand_built_archive_still_exports(tmp_path, capsys):
    good = keras_archive(tmp_path / "good.keras")
    rc, out, err = run_cli(capsys, "export", good, "-o", tmp_path / "o.onnx")
    assert rc == 0, err
    assert "max abs error" in out


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "link.bin"])
def test_onnx_external_data_stays_inside_the_models_folder(tmp_path, capsys, location):
    (tmp_path / "secret.bin").write_bytes(b"s" * 16)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    model = external_data_model(folder, location)
    assert_bad_input(run_cli(capsys, "verify", model, *FAST), "not a readable ONNX model")


def test_an_npz_header_declaring_4e10_elements_is_refused_before_allocating(tmp_path, capsys,
                                                                             tiny):
    lying = write_npz(tmp_path / "x.npz", {"X.npy": npy_bytes((40_000, 1_000_000), payload=b"")})
    assert_bad_input(run_cli(capsys, "verify", tiny, "--inputs", lying, *FAST),
                     "above the limit")
    small = write_npz(tmp_path / "y.npz", {"X.npy": npy_bytes((100, 3, 2), payload=b"\0" * 8)})
    assert_bad_input(run_cli(capsys, "verify", tiny, "--inputs", small, *FAST),
                     "more than the member's")


def test_decompression_of_an_npz_is_bounded(tmp_path, capsys, monkeypatch):
    """A zip bomb: 8 MiB of zeros deflate to a few KiB; the member declares its size, which is
    checked against LSTM_BENCH_MAX_ARRAY_MB (set low here) before anything is inflated."""
    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", "4")
    zeros = npy_bytes((1, 2 ** 21, 1)) + b"\0" * (2 ** 23)
    bomb = write_npz(tmp_path / "w.npz", {"W.npy": zeros, "R.npy": zeros}, compress=True)
    assert bomb.stat().st_size < 100_000
    assert_bad_input(run_cli(capsys, "export", bomb, "-o", tmp_path / "w.onnx"),
                     "LSTM_BENCH_MAX_ARRAY_MB")
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]


def test_an_npz_member_that_is_not_npy_is_refused(tmp_path, capsys):
    bad = write_npz(tmp_path / "w.npz", {"W.npy": npy_bytes((1,), payload=b"\0" * 4),
                                         "notes.txt": b"hello"})
    assert_bad_input(run_cli(capsys, "export", bad, "-o", tmp_path / "w.onnx"),
                     "'notes.txt' is not an .npy array")


def test_a_deflate_bomb_in_a_checkpoint_is_refused_before_torch_reads_it(tmp_path, capsys):
    pt = tmp_path / "bomb.pt"
    with zipfile.ZipFile(pt, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data/0", b"\0" * (64 * 2 ** 20))
    shutil.copy(SHIPPED.with_suffix(".json"), tmp_path / "bomb.json")
    assert pt.stat().st_size < 1_000_000
    assert_bad_input(run_cli(capsys, "export", pt, "-o", tmp_path / "o.onnx"), "declares")


@pytest.mark.parametrize("argv, contains", [
    (["verify", "{m}", "--batch", "100000000000"], "--batch"),
    (["verify", "{m}", "--seq-len", "10000000000000"], "--seq-len"),
    (["verify", "{m}", "--batch", "2000000000", "--seq-len", "1000"], "above the limit"),
    (["bench", "{m}", "--batch", ",".join(map(str, range(1, 6001))), "--quiet"], "at most 64"),
    (["bench", "{m}", "--batch", "1000000000", "--seq-len", "1000", "--quiet", "--no-calibrate"],
     "above the limit"),
])
def test_huge_sizes_are_refused_before_allocating(model, capsys, argv, contains):
    argv = [a.format(m=model) for a in argv]
    assert_bad_input(run_cli(capsys, *argv, *(FAST if argv[0] == "verify" else [])), contains)


def test_a_fixed_dim_of_10_12_in_the_model_is_refused(tmp_path, capsys):
    def huge(model):
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 10 ** 12

    model = lstm_model(tmp_path / "huge.onnx", huge)
    assert_bad_input(run_cli(capsys, "verify", model, *FAST), "above the limit", "'X'")


def test_a_constant_of_shape_bomb_is_refused_before_running(tmp_path, capsys):
    model = constant_of_shape_bomb(tmp_path / "bomb.onnx")
    assert_bad_input(run_cli(capsys, "verify", model, *FAST), "'big'", "above the limit")


# --- 3. every input fed or refused ---------------------------------------------------------

def test_an_input_with_a_default_value_is_fed_at_the_requested_shape(tmp_path, capsys):
    from onnx import numpy_helper

    def default_x(model):  # X [seq_len, batch, 2] also gets a default value of [5, 1, 2]
        model.graph.initializer.append(numpy_helper.from_array(np.ones((5, 1, 2), np.float32), "X"))

    model = lstm_model(tmp_path / "init.onnx", default_x)
    rc, _, err = run_cli(capsys, "verify", model, "--batch", "8", "--seq-len", "50", "--json",
                         tmp_path / "v.json", *FAST)
    assert rc == 0, err
    inputs = json.loads((tmp_path / "v.json").read_text())["inputs"]
    assert inputs["shapes"] == {"X": [50, 8, 2]}
    assert inputs["batch"] == 8 and inputs["seq_len"] == 50


def test_a_batch_that_no_input_takes_is_refused(tmp_path, capsys):
    from onnx import numpy_helper

    def fixed_x(model):  # X fixed at [5, 1, 2], with that default value: nothing is fed
        for dim, size in zip(model.graph.input[0].type.tensor_type.shape.dim, (5, 1, 2)):
            dim.Clear()
            dim.dim_value = size
        model.graph.initializer.append(numpy_helper.from_array(np.ones((5, 1, 2), np.float32), "X"))

    model = lstm_model(tmp_path / "fixed.onnx", fixed_x)
    assert_bad_input(run_cli(capsys, "verify", model, "--batch", "8", *FAST),
                     "no dynamic batch axis", "'X': [5, 1, 2]")


def test_compare_refuses_an_empty_report(tmp_path, capsys):
    base = bench_report(tmp_path / "base.json")
    empty = tmp_path / "new.json"
    empty.write_text(json.dumps({"schema": "lstm-bench/bench/1", "results": []}))
    assert_bad_input(run_cli(capsys, "compare", base, empty), "no results")


@pytest.mark.parametrize("argv, contains", [
    (["bench", "{m}", "--threads", "1000000000", "--quiet"], "--threads"),
    (["verify", "{m}", "--seed=-1"], "--seed"),
    (["verify", "{m}", "--range=-1e308,1e308"], "--range"),
    (["verify", "{m}", "--range=-inf,0"], "--range"),
])
def test_options_out_of_range_are_one_line(model, capsys, argv, contains):
    assert_bad_input(run_cli(capsys, *[a.format(m=model) for a in argv]), contains)


def test_run_validates_its_options_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert_bad_input(run_cli(capsys, "run", "--min-time", "-1", "--out", out), "--min-time")
    assert not out.exists()


# --- 4. one line on stderr and exit 2 for every bad input ----------------------------------

def test_errors_of_onnx_evaluator_are_one_line(tmp_path, capsys):
    from onnx import helper, numpy_helper

    dangling = lstm_model(tmp_path / "dangling.onnx", lambda m: add_output(m, "nowhere"))
    assert_bad_input(run_cli(capsys, "verify", dangling, *FAST), "float64 reference")

    def mismatch(model):  # Y_h [1, batch, 3] reshaped to [2, -1]: 3 values at batch 1 (an
        # Add of 4 values to it, which onnx.checker's shape inference refuses as the model is
        # read, is in tests/test_invalid_models.py)
        add_output(model, "bad", [helper.make_node("Reshape", ["Y_h", "C"], ["bad"])],
                   [numpy_helper.from_array(np.array([2, -1], np.int64), "C")])

    assert_bad_input(run_cli(capsys, "verify", lstm_model(tmp_path / "shape.onnx", mismatch),
                             *FAST), "float64 reference")


def test_a_huge_constant_loop_is_refused_and_a_computed_one_stopped_in_time(tmp_path):
    assert_bad_input(_subprocess(["verify", loop_model(tmp_path / "l.onnx", 10 ** 15), *FAST]),
                     "10000000000", "Loop")
    result = _subprocess(["verify", loop_model(tmp_path / "c.onnx", 10 ** 15, computed=True),
                          *FAST], env={"LSTM_BENCH_REFERENCE_TIMEOUT_S": "2"})
    assert_bad_input(result, "stopped after 2 s", "LSTM_BENCH_REFERENCE_TIMEOUT_S")


@pytest.mark.parametrize("processes, message", [
    ("1", "ort-cpu: opening the model and its first runs took longer than 2 s"),
    # bench's trial of each runtime in a child process (bench.trial) meets the runaway first,
    # before any worker starts: the same line as in this process
    ("2", "ort-cpu: opening the model and its first runs took longer than 2 s"),
])
def test_a_computed_loop_in_bench_is_stopped_by_the_call_time_limit(tmp_path, processes,
                                                                     message):
    """bench never runs the reference: a runtime's own native call runs the Loop, and the
    call time limit ends it with one line and exit 2 (with worker processes too)."""
    model = loop_model(tmp_path / "c.onnx", 10 ** 15, computed=True)
    before = snapshot(tmp_path)
    result = _subprocess(["bench", model, "--runtimes", "ort-cpu", "--span", "0", "--blocks", "1",
                          "--no-calibrate", "--no-history", "--quiet", "--processes", processes],
                         env={"LSTM_BENCH_CALL_TIMEOUT_S": "2"}, timeout=60)
    assert_bad_input(result, message, "LSTM_BENCH_CALL_TIMEOUT_S")
    assert snapshot(tmp_path) == before


def _subprocess(argv, env=None, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("spec", [
    '{"input_size": 2, "hidden_size": 3, "clip": "x"}',
    '{"input_size": 2, "hidden_size": 3, "activations": "Tanh"}',
    '{"input_size": 2, "hidden_size": 3, "bias": "yes"}',
    '[1, 2]',
    '{"input_size": 2.5, "hidden_size": 3}',
])
def test_wrong_types_in_an_npz_spec_are_one_line(tmp_path, capsys, spec):
    path = weights_npz(tmp_path / "w.npz", spec_text=spec)
    assert_bad_input(run_cli(capsys, "export", path, "-o", tmp_path / "w.onnx"), "spec")
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]


@pytest.mark.parametrize("change", [
    {"architecture": []},
    {"architecture": {"input_size": 1, "hidden_size": 50, "seq_len": "long"}},
    {"architecture": {"input_size": 1, "hidden_size": 50, "seq_len": 10 ** 12}},
    {"seed": -1},
])
def test_wrong_types_in_a_checkpoint_sidecar_are_one_line(tmp_path, capsys, change):
    shutil.copy(SHIPPED, tmp_path / "c.pt")
    config = json.loads(SHIPPED.with_suffix(".json").read_text())
    (tmp_path / "c.json").write_text(json.dumps({**config, **change}))
    assert_bad_input(run_cli(capsys, "export", tmp_path / "c.pt", "-o", tmp_path / "c.onnx"),
                     "c.json")


@pytest.mark.parametrize("text, contains", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"results": [{"samples_ns": [1e400]}]}', "out of range"),
    ('{"results": [], "n": ' + "9" * 5000 + "}", "not a readable JSON"),
    ('{"results": [{"batch": 99999999999999999999999}]}', "too large"),
])
def test_hostile_json_is_one_line_in_every_reader(tmp_path, capsys, text, contains, tiny):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    good = bench_report(tmp_path / "good.json")
    assert_bad_input(run_cli(capsys, "compare", good, bad), contains)
    assert_bad_input(run_cli(capsys, "bench", tiny, "--verify-json", bad, "--quiet"), contains)


def test_a_json_file_above_the_limit_is_refused_unread(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSTM_BENCH_MAX_JSON_MB", "0.001")
    big = bench_report(tmp_path / "big.json", samples=list(range(1000)))
    assert_bad_input(run_cli(capsys, "compare", big, big), "LSTM_BENCH_MAX_JSON_MB")


def test_names_from_users_files_and_paths_are_shown_literally(tmp_path, capsys, tiny):
    path = tmp_path / "model[v2].onnx"
    shutil.copy(tiny, path)
    rc, out, err = run_cli(capsys, "verify", path, *FAST)
    assert rc == 0, err
    assert "model[v2].onnx" in out.replace("\n", "")
    def rename(model):
        model.graph.node[0].output[0] = model.graph.output[0].name = "y[/bold][red]"

    odd = lstm_model(tmp_path / "odd.onnx", rename)
    rc, out, err = run_cli(capsys, "verify", odd, *FAST)
    assert rc == 0 and "Traceback" not in err, err
    assert "y[/bold][red]" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_report_folder_is_refused_before_the_benchmark(tmp_path, capsys, tiny):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert_bad_input(run_cli(capsys, "bench", tiny, "--json", folder / "r.json", "--quiet"),
                         "not writable")
    finally:
        folder.chmod(0o700)


# --- one JSON serializer -------------------------------------------------------------------

def test_nan_and_inf_are_written_one_way_by_every_report_writer(tmp_path):
    from lstm_bench.files import to_json, write_json

    assert json.loads(to_json({"a": float("nan"), "b": [np.float32("inf")], "c": np.int64(3)})) \
        == {"a": None, "b": [None], "c": 3}
    write_json(tmp_path / "r.json", {"results": [], "x": float("nan")})  # bench's raised
    assert json.loads((tmp_path / "r.json").read_text())["x"] is None


def test_every_limit_is_bad_input_when_set_badly(monkeypatch):
    from lstm_bench.files import check_array_size

    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", "lots")
    with pytest.raises(LSTMBenchError, match="LSTM_BENCH_MAX_ARRAY_MB"):
        check_array_size((1,), np.float32, "x")
