"""A sweep's memory as a whole (LSTM_BENCH_MAX_FEEDS_MB), refused before anything is made or
written; and the record of what a bench fed (model.inputs_fed) and compare's warning on it."""

import json
import os

import numpy as np
import pytest

from lstm_bench.cli import main
from lstm_bench.exporters.weights import export_weights
from lstm_bench.feeds import make_inputs
from lstm_bench.spec import LSTMSpec, LSTMWeights

# tiny (input 2, hidden 4) at these shapes, on ort-cpu alone: each feed X [50, b, 2] is at most
# 16 KB and each shape's feeds and outputs at most 0.2 MiB, under LSTM_BENCH_MAX_ARRAY_MB set
# to 0.1 MiB below (run's Y [100, 1, 40, 4], 62.5 KiB, is checked too); all four shapes
# together take about 0.43 MiB.
SHAPES = ["--batch", "10,20,30,40", "--seq-len", "50"]
FAST = ["--runtimes", "ort-cpu", "--quiet", "--no-calibrate", "--span", "0.1", "--blocks", "3",
        "--min-time", "0", "--min-reps", "3"]


def _limits(monkeypatch, feeds_mb: str) -> None:
    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", "0.1")  # every single feed and value passes
    monkeypatch.setenv("LSTM_BENCH_MAX_FEEDS_MB", feeds_mb)


def _refused(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1, err
    assert "LSTM_BENCH_MAX_FEEDS_MB" in err[0], err[0]
    return err[0]


@pytest.fixture
def feeds_made(monkeypatch):
    """Every (batch, seq_len) a bench made random feeds for (the real feeds, recorded)."""
    from lstm_bench.model import Model

    made, real = [], Model.feeds

    def feeds(self, batch, seq_len, seed=0):
        made.append((batch, seq_len))
        return real(self, batch, seq_len, seed)

    monkeypatch.setattr(Model, "feeds", feeds)
    return made


def test_a_sweep_above_the_limit_is_refused_before_any_feed_or_file(
        tiny, tmp_path, monkeypatch, capsys, feeds_made):
    import os

    _limits(monkeypatch, "0.25")
    outputs = [tmp_path / name for name in ("r.json", "r.md", "r.html")]
    line = _refused(capsys, ["bench", str(tiny), *SHAPES, *FAST, "--json", str(outputs[0]),
                             "--md", str(outputs[1]), "--html", str(outputs[2])])
    # the shapes and sizes are named, the largest first
    assert "4 shapes" in line and "outputs at batch 40 x seq_len 50" in line, line
    assert feeds_made == [], "no feed made"
    assert list(tmp_path.iterdir()) == [], "no file written"
    # the history database is only checked before any work (history.check_db): not created
    assert not os.path.exists(os.environ["LSTM_BENCH_DB"])


def test_the_same_sweep_under_the_limit_runs(tiny, tmp_path, monkeypatch, capsys, feeds_made):
    _limits(monkeypatch, "1")
    out = tmp_path / "r.json"
    assert main(["bench", str(tiny), *SHAPES, *FAST, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert sorted(r["batch"] for r in rows) == [10, 20, 30, 40]
    assert sorted(feeds_made) == [(10, 50), (20, 50), (30, 50), (40, 50)]


def test_worker_processes_are_checked_before_they_start(tiny, monkeypatch, capsys):
    _limits(monkeypatch, "0.25")
    _refused(capsys, ["bench", str(tiny), *SHAPES, *FAST, "--processes", "2"])


def test_a_live_compare_counts_both_models(tiny, tmp_path, monkeypatch, capsys):
    other = tmp_path / "other.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=4), seed=1), other)
    # one model's sweep takes 0.43 MiB, with its runtime's outputs; the two models', twice that
    _limits(monkeypatch, "0.6")
    live = [a for a in FAST if a != "--no-calibrate"]
    line = _refused(capsys, ["compare", str(tiny), str(other), *SHAPES, *live])
    assert "the feeds of 8 shapes" in line and "other.onnx: outputs at batch 40" in line, line
    assert main(["bench", str(tiny), *SHAPES, *FAST]) == 0


def test_the_streaming_bench_is_checked(tiny, monkeypatch, capsys):
    _limits(monkeypatch, "0.01")
    _refused(capsys, ["bench", str(tiny), "--streaming", "--chunk", "1,50", "--batch",
                      "10,40", *FAST])


@pytest.mark.parametrize("model", [False, True], ids=["seed", "model"])
def test_run_refuses_before_its_folder_is_made(tiny, tmp_path, monkeypatch, capsys, model):
    _limits(monkeypatch, "0.25")
    out = tmp_path / "out"
    _refused(capsys, ["run", "--out", str(out), "--batch", "10,20,30,40", "--quiet",
                      *(["--model", str(tiny)] if model else [])])
    assert not out.exists()


def test_a_bad_limit_is_one_line(tiny, monkeypatch, capsys):
    monkeypatch.setenv("LSTM_BENCH_MAX_FEEDS_MB", "lots")
    _refused(capsys, ["bench", str(tiny), *FAST])


# --- what was fed ---------------------------------------------------------------------------

def _bench_json(tiny, tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["bench", str(tiny), "--batch", "1,3", "--seq-len", "5", *FAST, "--json",
                 str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_a_random_bench_records_how_its_inputs_were_made(tiny, tmp_path, capsys):
    import onnx

    seed0 = _bench_json(tiny, tmp_path, "a.json")
    fed = seed0["model"]["inputs_fed"]
    assert fed["source"] == "random" and fed["seed"] == 0 and fed["ragged"] is False
    assert fed["value_range"] == [-1.0, 1.0] and "PCG64" in fed["generator"]
    assert fed["distribution"] == {"X": "uniform in [-1, 1)"}
    # each shape as it was really fed: the feeds make_inputs makes there
    proto = onnx.load(str(tiny))
    assert [(s["batch"], s["seq_len"]) for s in fed["per_shape"]] == [(1, 5), (3, 5)]
    for entry in fed["per_shape"]:
        feeds = make_inputs(proto, batch=entry["batch"], seq_len=entry["seq_len"]).feeds
        assert entry["shapes"] == {k: list(v.shape) for k, v in feeds.items()}
        assert entry["dtypes"] == {k: v.dtype.name for k, v in feeds.items()}

    seed7 = _bench_json(tiny, tmp_path, "b.json", "--seed", "7")
    assert seed7["model"]["inputs_fed"]["seed"] == 7
    assert {**seed7["model"]["inputs_fed"], "seed": 0} == fed
    again = _bench_json(tiny, tmp_path, "c.json")
    assert again["model"]["inputs_fed"] == fed
    capsys.readouterr()

    # compare warns (never fails) when two reports were fed differently
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) in (0, 1)
    assert "fed differently (seed" in " ".join(capsys.readouterr().out.split())
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "c.json")]) in (0, 1)
    assert "fed differently" not in capsys.readouterr().out


def test_token_inputs_record_their_vocabulary():
    from lstm_bench.feeds import describe_random
    from test_token_inputs import VOCAB, _token_model

    fed = describe_random(_token_model(), [(2, 7)], seed=3)
    assert fed["vocab"] == {"tokens": VOCAB} and fed["seed"] == 3
    assert fed["distribution"] == {"tokens": f"token ids uniform in 0..{VOCAB - 1}"}
    assert fed["per_shape"] == [{"batch": 2, "seq_len": 7, "shapes": {"tokens": [2, 7]},
                                 "dtypes": {"tokens": "int32"}}]
    made = make_inputs(_token_model(), batch=2, seq_len=7, seed=3)
    assert made.describe()["distribution"] == fed["distribution"]
    assert np.all(made.feeds["tokens"] < VOCAB)


def test_sequence_lens_are_described_as_full_lengths(tmp_path):
    import onnx

    from lstm_bench.feeds import describe_random

    path = tmp_path / "lens.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=3)), path,
                   sequence_lens=True)
    fed = describe_random(onnx.load(str(path)), [(4, 6)])
    lens = [name for name, text in fed["distribution"].items() if "sequence" in text]
    assert lens and fed["distribution"][lens[0]] == "seq_len for every sequence"


def test_a_sweep_over_the_limit_is_refused_before_any_runtime_library_loads(tmp_path):
    """Loading onnxruntime or OpenVINO writes files into $HOME: the memory check comes first
    (a fresh process, so that no other test's imports count)."""
    import subprocess
    import sys

    model = tmp_path / "tiny.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=4)), model)
    code = ("import sys\nfrom lstm_bench.cli import main\n"
            f"code = main(['bench', {str(model)!r}, '--batch', '1,64', '--no-history'])\n"
            "print(code, sorted(m for m in ('onnxruntime', 'openvino', 'torch') "
            "if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "LSTM_BENCH_MAX_FEEDS_MB": "0.01"}, timeout=120)
    assert done.stdout.split("\n")[0] == "2 []", done.stdout + done.stderr
    assert "LSTM_BENCH_MAX_FEEDS_MB" in done.stderr and len(done.stderr.splitlines()) == 1
