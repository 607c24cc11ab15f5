"""The new-user review's input findings (2026-11-27): a batch the model cannot take, verify
reports of another model, export guidance, onnxruntime's own log lines, the Keras proof's
shapes. Real models throughout, tiny: one-node LSTMs built with onnx.helper."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from hostile import assert_bad_input, run_cli

from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.spec import LSTMSpec, LSTMWeights

QUICK = ["--span", "0", "--blocks", "1", "--min-time", "0", "--min-reps", "2", "--max-reps", "2",
         "--no-calibrate", "--no-history", "--quiet"]


def fixed_batch_model(path, batch=4, wrapper=True):
    """A real LSTM model that takes one batch only. ``wrapper``: its input x
    ``[batch, s0, 2]`` reaches the LSTM through a Transpose (as a fixed-batch torch.export's
    [4, seq, 1] does), its sequence axis named ``s0`` (a name that says nothing); else X
    ``[seq_len, batch, 2]`` feeds the LSTM itself."""
    spec = LSTMSpec(input_size=2, hidden_size=3)
    model = build_lstm_model(LSTMWeights.random(spec, seed=2), outputs=("Y_h",))
    x = model.graph.input[0]
    dims = x.type.tensor_type.shape.dim
    if wrapper:
        x.name = "x"
        model.graph.node.insert(0, onnx.helper.make_node("Transpose", ["x"], ["X"],
                                                         perm=[1, 0, 2]))
        dims[1].dim_param = "s0"  # x: [batch, s0, 2]
    axis = 0 if wrapper else 1
    dims[axis].Clear()
    dims[axis].dim_value = batch
    state = model.graph.output[0].type.tensor_type.shape.dim  # Y_h [1, batch, 3]
    state[1].Clear()
    state[1].dim_value = batch
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    return fixed_batch_model(tmp_path_factory.mktemp("fixed") / "fixed.onnx")


# --- 1. a batch the model cannot take ------------------------------------------------------

@pytest.mark.parametrize("wrapper", [True, False])
def test_bench_refuses_a_batch_the_model_cannot_take(tmp_path, capsys, wrapper):
    model = fixed_batch_model(tmp_path / "t.onnx", wrapper=wrapper)
    name = "x" if wrapper else "X"
    assert_bad_input(run_cli(capsys, "bench", model, "--runtimes", "ort-cpu", "--batch", "1,8",
                             "--json", tmp_path / "b.json", *QUICK),
                     f"t.onnx: input '{name}' has a fixed batch of 4; --batch 1,8 cannot be fed "
                     "(use --batch 4)")
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("argv", [
    ["verify", "{m}", "--batch", "3", "--runtimes", "numpy"],
    ["bench", "{m}", "--streaming", "--batch", "2", "--runtimes", "numpy", *QUICK],
    ["compare", "{m}", "{m}", "--batch", "8", "--runtimes", "numpy", *QUICK[:-3], "--quiet"],
    ["run", "--model", "{m}", "--batch", "1,4", "--runtimes", "numpy", "--out", "{out}",
     "--no-history", "--quiet"],
])
def test_every_command_refuses_a_batch_the_model_cannot_take(fixed, tmp_path, capsys, argv):
    argv = [a.format(m=fixed, out=tmp_path / "out") for a in argv]
    line = assert_bad_input(run_cli(capsys, *argv), "has a fixed batch of 4", "use --batch 4")
    assert "fixed.onnx" in line
    assert not (tmp_path / "out").exists()  # run refuses before its folder


def test_bench_defaults_take_the_models_batch_and_label_rows_with_it(fixed, tmp_path, capsys):
    from lstm_bench.model import Model

    rc, out, err = run_cli(capsys, "bench", fixed, "--runtimes", "ort-cpu,numpy",
                           "--json", tmp_path / "b.json", *QUICK)
    assert rc == 0, err
    doc = json.loads((tmp_path / "b.json").read_text())
    assert {r["batch"] for r in doc["results"]} == {4}
    assert any("fixed batch of 4: measured at batch 4, not the default 1" in n
               for n in doc["notes"])
    assert "fixed batch of 4" in out  # the note is shown, not only stored
    # the rows' batch is the batch of the arrays fed (the harness feeds Model.feeds)
    model = Model.load(fixed)
    for row in doc["results"]:
        assert model.feeds(row["batch"], row["seq_len"])["x"].shape[:2] == (row["batch"],
                                                                             row["seq_len"])
    assert [s["shapes"]["x"][0] for s in doc["model"]["inputs_fed"]["per_shape"]] == [4]


def test_a_batch_the_model_takes_is_fed_as_asked(fixed, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "bench", fixed, "--runtimes", "numpy", "--batch", "4",
                         "--seq-len", "7", "--json", tmp_path / "b.json", *QUICK)
    assert rc == 0, err
    doc = json.loads((tmp_path / "b.json").read_text())
    assert [(r["batch"], r["seq_len"]) for r in doc["results"]] == [(4, 7)]
    assert doc["notes"] == [] or not any("fixed batch" in n for n in doc["notes"])


def test_verify_and_make_inputs_feed_the_models_batch(fixed, tmp_path, capsys):
    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.feeds import make_inputs

    proto = onnx.load(str(fixed))
    made = make_inputs(proto, seq_len=9)
    assert made.batch == 4 and made.feeds["x"].shape == (4, 9, 2)  # s0 is the sequence
    with pytest.raises(LSTMBenchError, match="fixed batch of 4; --batch 2"):
        make_inputs(proto, batch=2)
    rc, _, err = run_cli(capsys, "verify", fixed, "--runtimes", "numpy", "--seq-len", "9",
                         "--json", tmp_path / "v.json")
    assert rc == 0, err
    inputs = json.loads((tmp_path / "v.json").read_text())["inputs"]
    assert inputs["batch"] == 4 and inputs["shapes"]["x"] == [4, 9, 2]


def test_bench_defaults_take_a_fixed_sequence_length(tmp_path, capsys):
    model = build_lstm_model(LSTMWeights.random(LSTMSpec(2, 3), seed=1), outputs=("Y_h",))
    steps = model.graph.input[0].type.tensor_type.shape.dim[0]  # X [seq_len, batch, 2]
    steps.Clear()
    steps.dim_value = 10
    onnx.save(model, str(tmp_path / "t10.onnx"))
    rc, _, err = run_cli(capsys, "bench", tmp_path / "t10.onnx", "--runtimes", "numpy",
                         "--json", tmp_path / "b.json", *QUICK)
    assert rc == 0, err  # it said "--seq-len 100 cannot be fed (leave it out)", though left out
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [(r["batch"], r["seq_len"]) for r in rows] == [(1, 10)]


def test_run_on_a_fixed_batch_model_uses_its_batch(fixed, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "run", "--model", fixed, "--runtimes", "numpy",
                           "--out", tmp_path, "--span", "0", "--min-time", "0", "--no-history",
                           "--quiet")
    assert rc == 0, err
    (folder,) = tmp_path.glob("run-*")
    doc = json.loads((folder / "bench.json").read_text())
    assert {r["batch"] for r in doc["results"]} == {4}
    # one note per sweep, each saying which: the sequence sweep's and the streaming sweep's
    notes = [n for n in doc["notes"] if "measured at batch 4" in n]
    assert len(notes) == 2, notes
    assert sum("not the default 1,8,32" in n for n in notes) == 1, notes
    (streaming,) = [n for n in notes if "1,8,32" not in n]
    assert streaming.startswith("streaming sweep: "), streaming
    assert json.loads((folder / "verify.json").read_text())["inputs"]["batch"] == 4


# --- 2. bench --verify-json: a verify report of this model only ------------------------------

@pytest.fixture(scope="module")
def verified(tmp_path_factory, tiny):
    """verify's JSON of the tiny model (numpy only: fast)."""
    from lstm_bench.cli import main

    path = tmp_path_factory.mktemp("verified") / "v.json"
    assert main(["verify", str(tiny), "--runtimes", "numpy", "--no-streaming",
                 "--json", str(path)]) == 0
    return path


def test_verify_json_records_what_it_is_and_the_models_sha256(verified, tiny):
    import hashlib

    doc = json.loads(verified.read_text())
    assert doc["schema"] == "lstm-bench/verify/1"
    assert doc["sha256"] == hashlib.sha256(tiny.read_bytes()).hexdigest()


def test_bench_takes_the_verify_report_of_its_own_model(verified, tiny, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "bench", tiny, "--verify-json", verified, "--runtimes", "numpy",
                         "--json", tmp_path / "b.json", *QUICK)
    assert rc == 0, err
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["verify"]["sha256"] == doc["model"]["sha256"]
    assert doc["verify"]["runtimes"]["numpy"]["status"] == "pass"


def test_bench_refuses_another_models_verify_report(verified, fixed, tmp_path, capsys):
    argv = ["bench", fixed, "--verify-json", verified, "--runtimes", "numpy",
            "--json", tmp_path / "b.json", *QUICK]
    assert_bad_input(run_cli(capsys, *argv), "v.json: a verify report of another model",
                     "tiny.onnx", "fixed.onnx", "--allow-different-models")
    assert not (tmp_path / "b.json").exists()
    rc, _, err = run_cli(capsys, *argv, "--allow-different-models")  # asked for: taken
    assert rc == 0, err
    assert json.loads((tmp_path / "b.json").read_text())["verify"]["runtimes"]["numpy"]


def test_bench_refuses_a_file_that_is_not_a_verify_report(verified, tiny, tmp_path, capsys):
    bench_json = tmp_path / "b.json"
    assert run_cli(capsys, "bench", tiny, "--runtimes", "numpy", "--json", bench_json,
                   *QUICK)[0] == 0
    unmarked = {k: v for k, v in json.loads(verified.read_text()).items()
                if k not in ("schema", "sha256")}  # a verify report's fields, no schema
    (tmp_path / "unmarked.json").write_text(json.dumps(unmarked))
    (tmp_path / "other.json").write_text(json.dumps({"results": []}))
    for path, says in ((bench_json, "a bench report, not a verify report"),
                       (tmp_path / "unmarked.json", "not a verify report (schema None"),
                       (tmp_path / "other.json", "not a verify report")):
        assert_bad_input(run_cli(capsys, "bench", tiny, "--verify-json", path, "--runtimes",
                                 "numpy", *QUICK), str(path), says)


# --- 11. onnxruntime's own log lines; a runtime's failure said once -----------------------

def layout_1(path):
    """A real model onnxruntime's CPU LSTM refuses (layout 1), that NumPy runs."""
    from lstm_bench.exporters.weights import export_weights

    export_weights(LSTMWeights.random(LSTMSpec(2, 3, layout=1), seed=1), path)
    return path


def failing_at_run_time(path):
    """A real model that onnxruntime loads but cannot run: Y_h [1, batch, 3] reshaped to
    [2, -1] (3 values at batch 1)."""
    from onnx import helper, numpy_helper

    model = build_lstm_model(LSTMWeights.random(LSTMSpec(2, 3), seed=1), outputs=("Y_h",))
    model.graph.initializer.append(numpy_helper.from_array(np.array([2, -1], np.int64), "shape"))
    model.graph.node.append(helper.make_node("Reshape", ["Y_h", "shape"], ["out"]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(path))
    return path


def test_a_first_run_failure_that_ends_bench_is_one_line(tmp_path, capfd):
    from lstm_bench.cli import main

    model = failing_at_run_time(tmp_path / "bad.onnx")
    rc = main(["bench", str(model), "--runtimes", "ort-cpu", *QUICK[:-1]])  # progress on
    out, err = capfd.readouterr()  # file descriptors: onnxruntime's native lines too
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "ort-cpu: first run failed: [ONNXRuntimeError]" in err
    assert "ort-cpu: ort-cpu" not in err and ":onnxruntime:" not in err and "\x1b" not in err


def test_no_onnxruntime_log_line_from_any_onnxruntime_runtime(tmp_path, capfd):
    from lstm_bench.cli import main

    model = layout_1(tmp_path / "l1.onnx")
    rc = main(["verify", str(model), "--runtimes", "ort-cpu,ort-cpu-int8,ort-cpu-fp16",
               "--no-streaming"])
    out, err = capfd.readouterr()
    assert rc == 1  # ort-cpu and ort-cpu-fp16 refuse the model: lstm-bench says so
    assert "FAIL ort-cpu: *: error = cannot load" in out
    assert "FAIL ort-cpu-fp16: *: error = cannot load the transformed model" in out
    assert "ort-cpu: cannot" not in out and "LSTMBenchError" not in out  # said once, plainly
    assert ":onnxruntime:" not in out + err and "\x1b" not in err, err


# --- 7. exporting a user's own torch module --------------------------------------------------

def test_a_lone_state_dict_is_told_how_to_export_its_module(tmp_path, capsys):
    import torch

    torch.save(torch.nn.LSTM(1, 4, batch_first=True).state_dict(), tmp_path / "torch_sd.pt")
    line = assert_bad_input(run_cli(capsys, "export", tmp_path / "torch_sd.pt", "-o",
                                    tmp_path / "x.onnx"),
                            "torch_sd.json: no such file", "lstm-bench train",
                            'torch.export.save(torch.export.export(model, (x,)), "m.pt2")',
                            "`lstm-bench export m.pt2 -o m.onnx`")
    assert line.count("\n") == 0 and not (tmp_path / "x.onnx").exists()


# --- 13. the Keras proof's shapes ------------------------------------------------------------

def test_a_keras_model_saved_for_one_length_is_proven_at_another(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers
    from keras_models import save_randomized

    from lstm_bench.exporters.source import CHECK_STEPS, export_source

    def classic():  # the seed's example, smaller: LSTM(4) over a saved length of 10
        return keras.Sequential([keras.Input((10, 1)), layers.LSTM(4),
                                 layers.Dense(1, activation="sigmoid")])

    (archive, _), = save_randomized({"classic": classic}, tmp_path, np.random.default_rng(0)).values()
    result = export_source(archive, tmp_path / "classic.onnx")
    assert result.passed and result.check_shape == (4, 10, 1)
    dims = onnx.load(str(tmp_path / "classic.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_param  # the file declares the length dynamic ...
    # ... so the proof ran at another length too, against the float64 walk
    assert result.reference.endswith(f", and vs the archive's weights in float64 on input "
                                     f"[4, {CHECK_STEPS}, 1]")
    assert any(f"proven at [4, 10, 1] against Keras and the float64 walk, and at "
               f"[4, {CHECK_STEPS}, 1] against the walk alone" in n for n in result.notes)
