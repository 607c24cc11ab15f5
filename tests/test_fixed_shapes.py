"""A model that fixes its batch or sequence length: every command refuses a size it cannot
take (one line, exit 2), takes the model's own size by default, says so, and labels its rows
with what it fed. Real one-node LSTMs built with onnx.helper."""

from __future__ import annotations

import json

import onnx
import pytest
from cases import fixed_batch_model
from hostile import QUICK, assert_bad_input, run_cli

from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.spec import LSTMSpec, LSTMWeights


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
