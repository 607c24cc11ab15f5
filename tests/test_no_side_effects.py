"""Bad input leaves no trace: each command, given bad input, exits 2 with one line on stderr and
creates, changes or removes nothing (README: "Bad input is always one line on stderr and exit
code 2").

Each case runs the real CLI (``lstm_bench.cli.main``, in this process) from an empty working
folder, with HOME and the temporary folder pointing into the test's own tree, and compares a
snapshot of that tree (working folder, HOME, the models' folder and every output folder a case
names) before and after. Every case is refused before any measuring, so the whole module takes
a few seconds. A case that needs an unwritable folder is skipped as root (root writes anyway).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from hostile import (add_output, assert_bad_input, bench_report, lstm_model, run_cli, snapshot,
                     weights_npz)

HUGE = str(2 ** 31 - 1)  # a batch whose feeds are far above LSTM_BENCH_MAX_ARRAY_MB

# name -> (argv, with "{m}" for the models' folder), every one of them bad input
CASES = {
    # bench: the history database was created (with its folder) before the model was read
    "bench missing model": "bench missing.onnx --runtimes numpy --json b.json",
    "bench garbage model": "bench {m}/garbage.onnx --runtimes numpy",
    "bench no LSTM node": "bench {m}/relu.onnx --runtimes numpy",
    "bench unknown runtime": "bench {m}/tiny.onnx --runtimes bogus",
    "bench batch too large": f"bench {{m}}/tiny.onnx --runtimes numpy --batch {HUGE}",
    "bench streaming batch too large": f"bench {{m}}/tiny.onnx --runtimes numpy --streaming "
                                       f"--batch {HUGE}",
    "bench streaming with inputs": "bench {m}/tiny.onnx --runtimes numpy --streaming "
                                   "--inputs {m}/w.npz",
    "bench chunk 0": "bench {m}/tiny.onnx --runtimes numpy --streaming --chunk 0",
    "bench bad ort option": "bench {m}/tiny.onnx --runtimes numpy --ort-option nope=1",
    "bench negative span": "bench {m}/tiny.onnx --runtimes numpy --span -1",
    "bench json is the model": "bench {m}/tiny.onnx --runtimes numpy --json {m}/tiny.onnx",
    "bench json under a file": "bench {m}/tiny.onnx --runtimes numpy --json {m}/tiny.onnx/b.json",
    "bench db deep, model missing": "bench missing.onnx --runtimes numpy --db a/b/h.sqlite",
    "bench db env deep, model missing": "LSTM_BENCH_DB=x/y/h.sqlite bench missing.onnx",
    "bench db a directory": "bench {m}/tiny.onnx --runtimes numpy --db {m}",
    "bench db not sqlite": "bench {m}/tiny.onnx --runtimes numpy --db {m}/r.json",
    "bench db of a newer format": "bench {m}/tiny.onnx --runtimes numpy --db {m}/newer.sqlite",
    "bench db under a file": "bench {m}/tiny.onnx --runtimes numpy --db {m}/tiny.onnx/h.sqlite",
    # run: the history database, DIR and a run folder (with verify.json and INTERRUPTED) stayed
    "run missing model": "run --model missing.onnx",
    "run garbage model": "run --model {m}/garbage.onnx --runtimes numpy",
    "run no LSTM node": "run --model {m}/relu.onnx --runtimes numpy",
    "run bad ort option": "run --ort-option nope=1",
    "run bad ort option value": "run --model {m}/tiny.onnx "
                                "--ort-option graph_optimization_level=bogus",
    "run unknown runtime": "run --runtimes bogus",
    "run too many threads": "run --model {m}/tiny.onnx --runtimes numpy --threads 999",
    "run negative span": "run --model {m}/tiny.onnx --runtimes numpy --span -1",
    "run batch too large": f"run --model {{m}}/tiny.onnx --runtimes numpy --batch {HUGE}",
    "run seed batch too large": f"run --runtimes numpy --batch {HUGE}",
    "run out under a file": "run --model {m}/tiny.onnx --runtimes numpy --out {m}/tiny.onnx/o",
    "run db a directory": "run --model {m}/tiny.onnx --runtimes numpy --db {m}",
    "run db of a newer format": "run --model {m}/tiny.onnx --db {m}/newer.sqlite",
    "run deep out, garbage model": "run --model {m}/garbage.onnx --out a/b/c",
    # verify
    "verify missing model": "verify missing.onnx --json v.json",
    "verify garbage model": "verify {m}/garbage.onnx --runtimes numpy --json v.json",
    "verify batch too large": f"verify {{m}}/tiny.onnx --runtimes numpy --batch {HUGE} "
                              "--json v.json",
    "verify inputs not for the model": "verify {m}/tiny.onnx --runtimes numpy --inputs {m}/w.npz "
                                       "--json v.json",
    "verify garbage source": "verify {m}/tiny.onnx --runtimes numpy --source {m}/garbage.pt "
                             "--json v.json",
    "verify json is the model": "verify {m}/tiny.onnx --runtimes numpy --json {m}/tiny.onnx",
    "verify zero length alone": "verify {m}/tiny.onnx --zero-length --json v.json",
    # export: a temporary file was made (and removed) beside OUT before the source was read
    "export garbage npz": "export {m}/garbage.npz -o out.onnx",
    "export unsupported opset": "export {m}/w.npz -o out.onnx --opset 3",
    "export output is the source": "export {m}/w.npz -o {m}/w.npz",
    "export garbage into a new folder": "export {m}/garbage.npz -o no/out.onnx",
    # compare
    "compare garbage report": "compare {m}/garbage.json {m}/r.json --json c.json",
    "compare report and model": "compare {m}/r.json {m}/tiny.onnx --json c.json",
    "compare json is the base": "compare {m}/r.json {m}/r.json --json {m}/r.json",
    "compare live batch too large": f"compare {{m}}/tiny.onnx {{m}}/tiny.onnx --runtimes numpy "
                                    f"--batch {HUGE} --md c.md",
    # history
    "history no database": "history --html h.html",
    "history not a database": "history --db {m}/r.json --html h.html",
    "history html under a file": "history --db {m}/newer.sqlite --html {m}/tiny.onnx/h.html",
    # a bad limit variable was found where the limit was first needed: after run made its
    # folder (and exported, verified), or never when the command needed no such limit
    "call time limit not a number": "LSTM_BENCH_CALL_TIMEOUT_S=abc run --model {m}/tiny.onnx "
                                    "--runtimes numpy",
    "reference time limit negative": "LSTM_BENCH_REFERENCE_TIMEOUT_S=-1 run --model "
                                     "{m}/tiny.onnx --runtimes numpy",
    "json size limit zero": "LSTM_BENCH_MAX_JSON_MB=0 bench {m}/tiny.onnx --runtimes numpy "
                            "--span 0 --min-time 0 --blocks 1 --min-reps 1 --max-reps 1 "
                            "--no-calibrate --json b.json",
    # train: the .json config was written before the .pt failed
    "train output a directory": "train -o {m}/d.pt --max-steps 1 --epochs 1",
    "train sidecar a directory": "train -o {m}/j.pt --max-steps 1 --epochs 1",
    "train not .pt": "train -o seed.txt",
}

# Refused only once run has made its folder: the folders it made are removed again, so nothing
# is left, though the working folder's modification time shows that they existed.
# (--quiet: the steps shown on stderr before the refusal are not the error's lines.)
REMOVED = {
    "run deep out, refused in verify": "run --model {m}/custom.onnx --runtimes numpy --quiet "
                                       "--out a/b/c",
}

UNWRITABLE = {  # need a folder its owner cannot write into: meaningless as root
    "bench json in a read-only folder": "bench {m}/tiny.onnx --runtimes numpy --json ro/b.json",
    "bench db in a read-only folder": "bench missing.onnx --db ro/h.sqlite",
    "run out in a read-only folder": "run --model {m}/tiny.onnx --out ro/out",
    "verify json in a read-only folder": "verify {m}/tiny.onnx --runtimes numpy --json ro/v.json",
    "export into a read-only folder": "export {m}/w.npz -o ro/out.onnx",
    "train into a read-only folder": "train -o ro/x.pt --max-steps 1 --epochs 1",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The files the cases read, made once: real, tiny, or broken on purpose."""
    from onnx import TensorProto, helper

    from hostile import save_model

    folder = tmp_path_factory.mktemp("inputs")
    lstm_model(folder / "tiny.onnx")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    save_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]),
               folder / "relu.onnx")
    # passes every check run makes up front; the float64 reference refuses it in verify,
    # once the run folder exists
    lstm_model(folder / "custom.onnx", lambda model: add_output(
        model, "z", [helper.make_node("Foo", ["Y_h"], ["z"], domain="example.custom")]))
    weights_npz(folder / "w.npz")
    bench_report(folder / "r.json")
    for name, data in (("garbage.onnx", b"not a model"), ("garbage.npz", b"PK not a zip"),
                       ("garbage.json", b"{nope"), ("garbage.pt", b"not a checkpoint")):
        (folder / name).write_bytes(data)
    with sqlite3.connect(folder / "newer.sqlite") as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    (folder / "d.pt").mkdir()  # train -o d.pt: the checkpoint path is a folder
    (folder / "j.json").mkdir()  # train -o j.pt: its .json config path is a folder
    return folder


def _check_no_trace(argv: str, inputs: Path, tmp_path: Path, capsys, monkeypatch,
                    removed: bool = False) -> None:
    root = tmp_path / "root"  # everything the command could touch, snapshotted as one tree
    cwd, home, models = root / "cwd", root / "home", root / "models"
    for folder in (cwd, home):
        folder.mkdir(parents=True)
    shutil.copytree(inputs, models)
    (cwd / "ro").mkdir()
    os.chmod(cwd / "ro", 0o555)
    scratch = tmp_path / "scratch"  # the temporary folder: used freely, left empty
    scratch.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    for name in ("LSTM_BENCH_DB", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)  # conftest points LSTM_BENCH_DB elsewhere
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    words = argv.format(m=models).split()
    while "=" in words[0]:  # leading NAME=VALUE: an environment variable for this case
        name, value = words.pop(0).split("=", 1)
        monkeypatch.setenv(name, value)
    before = snapshot(root)
    try:
        assert_bad_input(run_cli(capsys, *words))
        after = snapshot(root)
        if removed:  # the working folder's mtime alone may differ
            before["cwd"], after["cwd"] = (tuple(v for i, v in enumerate(entry) if i != 1)
                                           for entry in (before["cwd"], after["cwd"]))
        touched = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        assert not touched, f"bad input left a trace: {touched}"
        assert not list(scratch.iterdir()), "temporary files were left behind"
    finally:
        os.chmod(cwd / "ro", 0o755)


@pytest.mark.parametrize("argv", list(CASES.values()), ids=list(CASES))
def test_bad_input_leaves_no_trace(argv, inputs, tmp_path, capsys, monkeypatch):
    _check_no_trace(argv, inputs, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("argv", list(REMOVED.values()), ids=list(REMOVED))
def test_a_run_refused_late_removes_its_folders(argv, inputs, tmp_path, capsys, monkeypatch):
    _check_no_trace(argv, inputs, tmp_path, capsys, monkeypatch, removed=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
@pytest.mark.parametrize("argv", list(UNWRITABLE.values()), ids=list(UNWRITABLE))
def test_unwritable_output_leaves_no_trace(argv, inputs, tmp_path, capsys, monkeypatch):
    _check_no_trace(argv, inputs, tmp_path, capsys, monkeypatch)


def test_the_history_database_is_made_by_a_result(tmp_path):
    """check_db creates nothing; record creates the file and its folders."""
    from lstm_bench.bench import history
    from lstm_bench.errors import LSTMBenchError

    path = tmp_path / "a" / "b" / "h.sqlite"
    assert history.check_db(path) == path
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "x.sqlite").write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    with pytest.raises(LSTMBenchError, match="not a usable history database"):
        history.check_db(tmp_path / "x.sqlite")
    odd = tmp_path / "odd ?#%" / "h.sqlite"  # read-only opening goes through a URI
    odd.parent.mkdir()
    history.connect(odd, create=True).close()
    before = snapshot(tmp_path)
    assert history.check_db(odd) == odd
    assert snapshot(tmp_path) == before
