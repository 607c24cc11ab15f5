"""``lstm-bench export``: every kind of source, the proof it prints, and every bad input."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_bad_input, run_cli

from lstm_bench import seed
from lstm_bench.cli import main
from lstm_bench.exporters.source import ExportParityError, ExportResult, export_source
from lstm_bench.errors import LSTMBenchError
from lstm_bench.spec import LSTMSpec, LSTMWeights

SHIPPED = seed.shipped_checkpoint()
ERROR_LINE = re.compile(r"max abs error (\S+) vs ")


def _max_error(text):
    match = ERROR_LINE.search(text)
    assert match, text
    return float(match.group(1))


def _only(directory, *names):
    assert sorted(os.listdir(directory)) == sorted(names), "no stray or partial files"


def test_checkpoint_to_onnx_with_torchscript(tmp_path, capsys):
    out = tmp_path / "seed.onnx"
    assert main(["export", str(SHIPPED), "-o", str(out), "--exporter", "torchscript"]) == 0
    text = capsys.readouterr().out
    assert _max_error(text) < 1e-5
    for expected in ("opset", "input: float32[batch, seq, 1]", "dynamic: batch, seq",
                     "LSTM", "hidden_size=50", "KiB", "torchscript", "[3, 37, 1]"):
        assert expected in text, expected
    _only(tmp_path, "seed.onnx")


def test_checkpoint_to_onnx_default_exporter_via_subprocess(tmp_path):
    out = tmp_path / "seed.onnx"
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", "export", str(SHIPPED),
                           "-o", str(out), "--opset", "18"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "by dynamo" in proc.stdout and "opset 18" in proc.stdout
    assert _max_error(proc.stdout) < 1e-5
    assert "Traceback" not in proc.stderr
    _only(tmp_path, "seed.onnx")


def test_npz_to_onnx_through_the_python_api(tmp_path):
    spec = LSTMSpec(4, 6, direction="bidirectional", peepholes=True, clip=2.5)
    LSTMWeights.random(spec, seed=5).save_npz(tmp_path / "w.npz")
    result = export_source(tmp_path / "w.npz", tmp_path / "w.onnx", opset=14)
    assert isinstance(result, ExportResult) and result
    assert result.exporter == "weights" and result.summary["opset"] == 14
    assert result.max_abs_error < 1e-5
    node = result.summary["lstm_nodes"][0]
    assert node["direction"] == "bidirectional" and node["clip"] == 2.5 and node["peepholes"]
    _only(tmp_path, "w.npz", "w.onnx")


def test_npz_cli_prints_the_error(tmp_path, capsys):
    LSTMWeights.random(LSTMSpec(3, 5), seed=1).save_npz(tmp_path / "w.npz")
    assert main(["export", str(tmp_path / "w.npz"), "-o", str(tmp_path / "w.onnx")]) == 0
    text = capsys.readouterr().out
    assert _max_error(text) < 1e-5 and "lstm_bench.reference.lstm in float64" in text


def test_a_missing_output_folder_is_made_once_the_export_is_proven(tmp_path, capsys):
    """As for every output the CLI writes (reports, checkpoints): the folder comes with it."""
    LSTMWeights.random(LSTMSpec(3, 5), seed=1).save_npz(tmp_path / "w.npz")
    out = tmp_path / "new" / "deeper" / "w.onnx"
    assert main(["export", str(tmp_path / "w.npz"), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["w.onnx"]


def test_keras_archive_to_onnx(tmp_path, capsys):
    code = (
        "import os; os.environ['KERAS_BACKEND'] = 'torch'\n"
        "import keras, numpy as np\n"
        "keras.utils.set_random_seed(0)\n"
        "m = keras.Sequential([keras.Input((100, 1)), keras.layers.LSTM(8),"
        " keras.layers.Dense(1, activation='sigmoid')])\n"
        f"m.save({str(tmp_path / 'seed.keras')!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "KERAS_BACKEND": "torch"})
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "seed.onnx"
    assert main(["export", str(tmp_path / "seed.keras"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert _max_error(text) < 1e-5 and "by keras" in text
    _only(tmp_path, "seed.keras", "seed.onnx")


def test_a_genuine_parity_failure_exits_1_and_writes_nothing(tmp_path, capsys):
    # Recurrent weights this large make the LSTM chaotic: float32 rounding in onnxruntime grows
    # into a visible difference from the float64 reference within 37 steps (measured: 0.14).
    LSTMWeights.random(LSTMSpec(4, 16), seed=0, scale=10.0).save_npz(tmp_path / "chaos.npz")
    out = tmp_path / "chaos.onnx"
    assert main(["export", str(tmp_path / "chaos.npz"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "parity failure" in err and "Traceback" not in err
    _only(tmp_path, "chaos.npz")
    with pytest.raises(ExportParityError) as info:
        export_source(tmp_path / "chaos.npz", out)
    assert not info.value.result.passed and info.value.result.max_abs_error > 1e-3
    _only(tmp_path, "chaos.npz")


def _bad_sources(tmp: Path) -> dict:
    """name -> (argv after 'export', expected words in the error)."""
    import torch

    (tmp / "notes.txt").write_text("hello")
    (tmp / "fake.keras").write_bytes(b"this is not a zip")
    with zipfile.ZipFile(tmp / "empty.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential"}))
    np.savez(tmp / "wrong.npz", W=np.zeros((1, 12, 3), np.float32),
             R=np.zeros((1, 12, 5), np.float32))
    (tmp / "garbage.npz").write_bytes(b"nope")
    torch.save({"weights": torch.zeros(3)}, tmp / "foreign.pt")
    (tmp / "foreign.json").write_text(json.dumps({"model": "someone else's"}))
    state = seed.build_model().state_dict()
    state["lstm.weight_hh_l0"] = torch.zeros(200, 49)
    torch.save(state, tmp / "shapes.pt")
    (tmp / "shapes.json").write_text(SHIPPED.with_suffix(".json").read_text())
    out = str(tmp / "out.onnx")
    return {
        "missing file": (["missing.pt", "-o", out], "no such file"),
        "unsupported suffix": (["notes.txt", "-o", out], "unsupported source"),
        "keras not a zip": (["fake.keras", "-o", out], "fake.keras"),
        "keras without weights": (["empty.keras", "-o", out], "empty.keras"),
        "npz wrong shapes": (["wrong.npz", "-o", out], "shape"),
        "npz unreadable": (["garbage.npz", "-o", out], "not an .npz file"),
        "not our checkpoint": (["foreign.pt", "-o", out], "not an lstm-bench checkpoint"),
        "checkpoint wrong shapes": (["shapes.pt", "-o", out], "weight_hh_l0 has shape"),
        "output not .onnx": ([str(SHIPPED), "-o", str(tmp / "out.bin")], "must end in .onnx"),
        "exporter on npz": (["wrong.npz", "-o", out, "--exporter", "dynamo"], "checkpoints only"),
        "bad exporter": ([str(SHIPPED), "-o", out, "--exporter", "tf"], "invalid choice"),
    }


def test_every_bad_input_is_one_line_exit_2_and_no_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = _bad_sources(tmp_path)
    before = sorted(os.listdir(tmp_path))
    for name, (argv, words) in cases.items():
        try:
            code = main(["export", *argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, (name, captured.err)
        assert len(lines) == 1, (name, captured.err)
        assert words in lines[0], (name, lines[0])
        assert "Traceback" not in captured.err and captured.out == "", name
        assert sorted(os.listdir(tmp_path)) == before, name


def test_bad_input_through_a_real_process_has_no_traceback(tmp_path):
    (tmp_path / "fake.keras").write_bytes(b"PK? no")
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", "export",
                           str(tmp_path / "nothing.pt"), "-o", str(tmp_path / "o.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    _only(tmp_path, "fake.keras")


def test_source_kind_dispatch():
    from lstm_bench.exporters.source import source_kind

    assert source_kind("a/b.pt") == source_kind("b.json") == "checkpoint"
    assert source_kind("m.KERAS") == "keras" and source_kind("w.npz") == "npz"
    with pytest.raises(LSTMBenchError, match="unsupported"):
        source_kind("model.h5")


def test_a_lone_state_dict_is_told_how_to_export_its_module(tmp_path, capsys):
    import torch

    torch.save(torch.nn.LSTM(1, 4, batch_first=True).state_dict(), tmp_path / "torch_sd.pt")
    line = assert_bad_input(run_cli(capsys, "export", tmp_path / "torch_sd.pt", "-o",
                                    tmp_path / "x.onnx"),
                            "torch_sd.json: no such file", "lstm-bench train",
                            'torch.export.save(torch.export.export(model, (x,)), "m.pt2")',
                            "`lstm-bench export m.pt2 -o m.onnx`")
    assert line.count("\n") == 0 and not (tmp_path / "x.onnx").exists()
