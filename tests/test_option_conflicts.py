"""Options that a run would silently not use, or that another option would silently override,
are refused (exit 2, one line); a run that uses another model's verdicts, or the model's own
batch instead of the default, says so. Real tiny models (one-node LSTMs), real CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from hostile import QUICK, assert_bad_input, run_cli
from keras_models import save_randomized
from lstm_bench.bench.report import load_report
from lstm_bench.exporters.source import CHECK_STEPS
from lstm_bench.exporters.weights import export_weights
from lstm_bench.feeds import make_inputs
from lstm_bench.model import as_model
from lstm_bench.spec import LSTMSpec, LSTMWeights



@pytest.fixture(scope="module")
def in8(tiny, tmp_path_factory):
    """Feeds for the ``tiny`` model at batch 8, seq_len 10."""
    feeds = make_inputs(onnx.load(str(tiny)), batch=8, seq_len=10, seed=1).feeds
    path = tmp_path_factory.mktemp("inputs") / "in8.npz"
    np.savez(path, **feeds)
    return path


# --- 1. --inputs beside options it would override ------------------------------------------

@pytest.mark.parametrize("argv, contains", [
    (["verify", "{m}", "--inputs", "{i}", "--batch", "2", "--runtimes", "numpy"],
     "--batch 2 conflicts with in8.npz (batch 8): leave --batch out with --inputs"),
    (["verify", "{m}", "--inputs", "{i}", "--seq-len", "50", "--runtimes", "numpy"],
     "--seq-len 50 conflicts with in8.npz (seq_len 10)"),
    (["verify", "{m}", "--inputs", "{i}", "--seed", "4", "--runtimes", "numpy"],
     "--seed conflicts with --inputs"),
    (["verify", "{m}", "--inputs", "{i}", "--range", "0,1", "--runtimes", "numpy"],
     "--range conflicts with --inputs"),
    (["verify", "{m}", "--inputs", "{i}", "--ragged", "--runtimes", "numpy"],
     "--ragged conflicts with --inputs"),
    (["bench", "{m}", "--inputs", "{i}", "--batch", "1", "--runtimes", "numpy", *QUICK],
     "--batch 1 conflicts with in8.npz (batch 8)"),
    (["bench", "{m}", "--inputs", "{i}", "--seq-len", "5,10", "--runtimes", "numpy", *QUICK],
     "--seq-len 5,10 conflicts with in8.npz (seq_len 10)"),
    (["bench", "{m}", "--inputs", "{i}", "--seed", "0", "--runtimes", "numpy", *QUICK],
     "--seed conflicts with --inputs"),
])
def test_inputs_refuse_an_option_they_would_override(tiny, in8, tmp_path, capsys, argv,
                                                      contains):
    argv = [a.format(m=tiny, i=in8) for a in argv] + ["--json", tmp_path / "r.json"]
    assert_bad_input(run_cli(capsys, *argv), contains)
    assert not (tmp_path / "r.json").exists()


def test_inputs_accept_an_explicit_value_equal_to_the_files(tiny, in8, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "verify", tiny, "--inputs", in8, "--batch", "8",
                           "--seq-len", "10", "--runtimes", "numpy")
    assert rc == 0, err
    assert "batch 8, seq_len 10" in out
    rc, _, err = run_cli(capsys, "bench", tiny, "--inputs", in8, "--batch", "8",
                         "--runtimes", "numpy", "--json", tmp_path / "b.json", *QUICK)
    assert rc == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert {(r["batch"], r["seq_len"]) for r in rows} == {(8, 10)}


# --- 2. options a mode does not read -------------------------------------------------------

@pytest.mark.parametrize("argv, line", [
    (["--chunk", "5"], "--chunk needs --streaming"),
    (["--streaming", "--seq-len", "1000"], "--seq-len does not apply to --streaming: use --chunk"),
])
def test_bench_refuses_an_option_its_mode_ignores(tiny, tmp_path, capsys, argv, line):
    assert_bad_input(run_cli(capsys, "bench", tiny, "--runtimes", "numpy", *argv, "--json",
                             tmp_path / "b.json", *QUICK), line)
    assert not (tmp_path / "b.json").exists()


# --- 3./4. --verify-json of another model, or not a verify report --------------------------

@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """A second tiny model (other weights, so another sha256) and its verify report."""
    folder = tmp_path_factory.mktemp("other")
    export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=4), seed=7),
                   folder / "other.onnx")
    return folder / "other.onnx"


def test_verdicts_of_another_model_are_noted_in_every_report(tiny, other, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "verify", other, "--runtimes", "numpy", "--json",
                         tmp_path / "v.json")
    assert rc == 0, err
    rc, out, err = run_cli(capsys, "bench", tiny, "--runtimes", "numpy", "--verify-json",
                           tmp_path / "v.json", "--allow-different-models", "--json",
                           tmp_path / "b.json", "--md", tmp_path / "b.md", "--html",
                           tmp_path / "b.html", *QUICK)
    assert rc == 0, err
    theirs, ours = as_model(other).sha256[:12], as_model(tiny).sha256[:12]
    doc = json.loads((tmp_path / "b.json").read_text())
    for where in (doc["notes"], doc["warnings"]):
        assert any("another model" in n and theirs in n and ours in n for n in where), where
    flat = " ".join(out.split())
    assert "! verify verdicts from" in flat and theirs in flat and ours in flat, out
    for page in ("b.md", "b.html"):
        text = (tmp_path / page).read_text()
        assert theirs in text and ours in text, page


def test_a_wrong_verify_json_suggests_a_new_file_and_the_real_model(tiny, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "bench", tiny, "--runtimes", "numpy", "--json",
                         tmp_path / "bp.json", *QUICK)
    assert rc == 0, err
    line = assert_bad_input(run_cli(capsys, "bench", tiny, "--runtimes", "numpy",
                                    "--verify-json", tmp_path / "bp.json", *QUICK),
                            "a bench report, not a verify report",
                            f"lstm-bench verify {tiny} --json {tmp_path / 'verify.json'}")
    assert f"--json {tmp_path / 'bp.json'}" not in line and "MODEL.onnx" not in line


# --- 5./6. a fixed-batch model: every report says which batch ran, and of which sweep -------

def test_live_compare_notes_the_batch_a_fixed_batch_model_takes(fixed, tmp_path, capsys):
    import shutil

    other = shutil.copy(fixed, tmp_path / "td.onnx")
    rc, out, err = run_cli(capsys, "compare", fixed, other, "--runtimes", "numpy",
                           "--json", tmp_path / "c.json", *QUICK[:-3], "--quiet")
    assert rc in (0, 1), err  # 1: a (noise) regression; the notes are the point here
    notes = json.loads((tmp_path / "c.json").read_text())["notes"]
    assert any("measured at batch 4, not the default 1" in n for n in notes), notes
    assert "measured at batch 4" in " ".join(out.split())



# --- 7. the Keras export's summary: each proof with the shape it ran at --------------------

def test_keras_export_summary_names_each_proofs_shape(tmp_path, capsys):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers

    def classic():  # saved for length 10; the file takes any, so a second length is proven
        return keras.Sequential([keras.Input((10, 1)), layers.LSTM(4),
                                 layers.Dense(1, activation="sigmoid")])

    (archive, _), = save_randomized({"classic": classic}, tmp_path,
                                    np.random.default_rng(0)).values()
    rc, out, err = run_cli(capsys, "export", archive, "-o", tmp_path / "k.onnx")
    assert rc == 0, err
    line = next(x for x in " ".join(out.split()).split("max abs error ")[1:])
    assert ("vs keras predict (safe mode) and the archive's weights in float64 on input "
            f"[4, 10, 1], and vs the archive's weights in float64 on input [4, {CHECK_STEPS}, 1] "
            "(onnxruntime CPU") in line, line
    assert "float64 and the archive's weights in float64" not in line


# --- 8. streaming rows: steps and calls per second, never sequences -------------------------

def test_streaming_rows_give_steps_and_calls_per_second(tiny, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "bench", tiny, "--runtimes", "numpy", "--streaming",
                         "--chunk", "1,4", "--json", tmp_path / "s.json", *QUICK)
    assert rc == 0, err
    doc = json.loads((tmp_path / "s.json").read_text())
    for row in doc["results"]:
        median_s = row["latency_ms"]["median"] / 1e3
        assert set(row["throughput"]) == {"steps_per_s", "calls_per_s"}, row["throughput"]
        assert row["throughput"]["calls_per_s"] == pytest.approx(1 / median_s)
        assert row["throughput"]["steps_per_s"] == pytest.approx(
            row["batch"] * row["chunk"] / median_s)
    # an older report (sequences_per_s in its streaming rows) still reads
    for row in doc["results"]:
        row["throughput"] = {"sequences_per_s": 1.0, "steps_per_s": 1.0}
    (tmp_path / "old.json").write_text(json.dumps(doc))
    assert len(load_report(tmp_path / "old.json").measurements) == len(doc["results"])
