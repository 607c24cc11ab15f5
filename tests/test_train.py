"""The seed's trained classifier: the shipped checkpoint, short training runs, bad checkpoints."""

import json
import os

import numpy as np
import pytest
import torch

from lstm_bench import seed
from lstm_bench.cli import main
from lstm_bench.cli.train import Schedule, train
from lstm_bench.errors import LSTMBenchError


@pytest.fixture(scope="module")
def shipped():
    return seed.load_seed_model()


def test_shipped_checkpoint_is_ours_and_small():
    path = seed.shipped_checkpoint()
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert path.stat().st_size < 100_000
    config = json.loads(path.with_suffix(".json").read_text())
    assert config["format"] == seed.FORMAT
    assert config["held_out_accuracy"] >= 0.95


def test_shipped_model_reaches_95_percent_on_held_out_data(shipped):
    model, config = shipped
    X, y = seed.held_out(config)
    assert X.shape == (seed.HELD_OUT_SIZE, seed.SEQ_LEN, 1)
    assert seed.accuracy(model, X, y) >= 0.95


def test_task_needs_the_marker_far_back(shipped):
    # Flip the sign of the first MARKER_STEPS steps only: the decisions must flip with them,
    # so the model carries what it saw 90 steps before its decision.
    model, config = shipped
    X, y = seed.held_out(config, n=512)
    flipped = X.copy()
    flipped[:, :seed.MARKER_STEPS] *= -1
    assert seed.accuracy(model, flipped, 1 - y) >= 0.95


def test_exported_model_decides_like_torch_on_every_held_out_sequence(shipped, tmp_path):
    import onnxruntime

    from lstm_bench.exporters.torch_export import export_torch

    model, config = shipped
    X, _ = seed.held_out(config)
    path = tmp_path / "seed.onnx"
    export_torch(model, torch.from_numpy(X[:2]), path)  # auto: dynamo (batch-first input)
    got = onnxruntime.InferenceSession(str(path)).run(None, {"input": X})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(X)).numpy()
    assert got.shape == expected.shape == (len(X), 1)
    assert np.array_equal(got > 0.5, expected > 0.5)
    assert np.max(np.abs(got - expected)) < 1e-5


def test_dataset_is_seeded_and_balanced():
    X1, y1 = seed.make_dataset(64, seed=7)
    X2, y2 = seed.make_dataset(64, seed=7)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert X1.dtype == np.float32 and X1.shape == (64, 100, 1)
    assert not np.array_equal(X1, seed.make_dataset(64, seed=8)[0])
    assert 0.3 < seed.make_dataset(2000, seed=1)[1].mean() < 0.7


def test_short_training_run_writes_a_loadable_checkpoint(tmp_path):
    lines = []
    model, config = train(Schedule(epochs=1, n_train=256, batch_size=64, max_steps=3), seed=3,
                          log=lines.append)
    assert config["steps"] == 3 and len(lines) == 1 and "loss" in lines[0]
    pt, js = seed.save_checkpoint(model, config, tmp_path / "short.pt")
    assert sorted(os.listdir(tmp_path)) == ["short.json", "short.pt"]
    loaded, loaded_config = seed.load_checkpoint(pt)
    assert loaded_config == json.loads(js.read_text())
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert seed.load_checkpoint(js)[1]["seed"] == 3  # the .json path works too


def test_train_cli_smoke(tmp_path, capsys):
    out = tmp_path / "new" / "cli.pt"  # a missing folder is made, as for every output
    assert main(["train", "-o", str(out), "--max-steps", "2", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/" in text and "held-out accuracy" in text and str(out) in text
    assert seed.load_checkpoint(out)[1]["steps"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "80000000"], "--epochs must be 1 to"),
    (["--max-steps", "10000000000"], "--max-steps must be 1 to"),
    (["-o", "model.onnx"], "must end in .pt"),
])
def test_train_cli_bad_input(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert os.listdir(tmp_path) == []


def _write_pair(tmp_path, state, config=None, name="ck"):
    pt = tmp_path / f"{name}.pt"
    torch.save(state, pt)
    if config is not False:
        base = json.loads(seed.shipped_checkpoint().with_suffix(".json").read_text())
        pt.with_suffix(".json").write_text(json.dumps(base if config is None else config))
    return pt


class NotATensor:
    pass


def test_bad_checkpoints_are_refused_with_one_clear_error(tmp_path):
    good = seed.build_model().state_dict()
    cases = {
        "no config": (_write_pair(tmp_path, good, config=False, name="a"), "no such file"),
        "not ours": (_write_pair(tmp_path, good, config={"hello": 1}, name="b"), "not an lstm-bench"),
        "wrong shape": (_write_pair(tmp_path, {**good, "dense.weight": torch.zeros(1, 7)},
                                    name="c"), "dense.weight has shape"),
        "missing key": (_write_pair(tmp_path, {k: v for k, v in good.items()
                                               if k != "dense.bias"}, name="d"), "missing"),
        # weights_only=True refuses to build arbitrary objects: nothing is unpickled
        "pickled object": (_write_pair(tmp_path, {"x": NotATensor()}, name="e"),
                           "not a loadable tensor-only"),
    }
    garbage = tmp_path / "f.pt"
    garbage.write_bytes(b"not a torch file")
    garbage.with_suffix(".json").write_text(seed.shipped_checkpoint().with_suffix(".json").read_text())
    cases["garbage"] = (garbage, "not a loadable")
    bad_json = tmp_path / "g.pt"
    torch.save(good, bad_json)
    bad_json.with_suffix(".json").write_text("{not json")
    cases["bad json"] = (bad_json, "not a readable JSON")
    for label, (path, message) in cases.items():
        with pytest.raises(LSTMBenchError, match=message):
            seed.load_checkpoint(path)
