"""verify sizes its work before it starts (issue 19): the float64 truth of a shape that cannot fit
in this machine's available memory is refused, exit 2 and one line, before anything is
evaluated; the estimate's arithmetic is checked on a one-node LSTM, and an ordinary verify is
not affected."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from hostile import assert_bad_input, run_cli
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.feeds import make_inputs
from lstm_bench.model import HELD_PER_Y, Model
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.memory import CHILD_LIBRARIES, available_memory, check_fits, estimate

HIDDEN = 512  # wide and fed one value a step: the truth is 5000x the feeds


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide.onnx"
    onnx.save(build_lstm_model(LSTMWeights.random(LSTMSpec(1, HIDDEN), seed=0), outputs=("Y",)),
              str(path))
    return path


def test_a_truth_that_cannot_fit_is_refused_before_it_starts(wide, tmp_path, capsys,
                                                             monkeypatch):
    available = available_memory()
    if available is None:
        pytest.skip("this system does not say how much memory is available")
    # float64 Y and the input projection alone: 5 x 8 x HIDDEN bytes a step, 4x what is there
    steps = 4 * available // (5 * 8 * HIDDEN)
    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", "1000000")  # no single array is refused
    line = assert_bad_input(
        run_cli(capsys, "verify", wide, "--runtimes", "ort-cpu", "--seq-len", steps,
                "--json", tmp_path / "v.json"),
        "verify would need about", "of memory available", f"X [{steps}, 1, 1]",
        "use a shorter --seq-len or a smaller --batch")
    assert "float64" in line  # the largest parts are named
    assert not (tmp_path / "v.json").exists()


def test_the_estimate_counts_the_float64_values_the_projection_and_a_runtime(wide):
    model = Model.load(wide)
    steps, batch = 50, 3
    feeds = make_inputs(model.proto, batch=batch, seq_len=steps).feeds
    phases = dict(estimate(model, feeds, layer_batch=8).phases)
    y = steps * batch * HIDDEN
    weights = 4 * HIDDEN * (1 + HIDDEN) + 8 * HIDDEN  # W, R and B, promoted too
    truth = dict(phases["the float64 truth"])
    # X, the weights and Y in float64, and the input projection [T, B, 4H]
    assert truth == {"the feeds": steps * batch * 4, "the float64 values of the graph":
                     8 * (steps * batch + weights + y + 4 * y)}
    # the model is its LSTM layer: no layer judged alone
    assert dict(phases["the LSTM layer alone"])["its feeds and float64 values"] == 0
    runtime = dict(phases["a runtime beside the truth"])
    assert runtime["the child's libraries"] == CHILD_LIBRARIES
    assert runtime["the feeds and the float64 truth, kept"] == steps * batch * 4 + 8 * y
    work = runtime["a runtime's feeds, outputs and working memory, and a float32 evaluation "
                   "for its widened limits"]
    assert work == (steps * batch * 4 + 4 * HELD_PER_Y * y + 2 * 8 * y
                    + 4 * (steps * batch + weights + y + 4 * y))


def test_an_ordinary_verify_fits_and_a_tight_machine_refuses_it(tiny, capsys):
    model = Model.load(tiny)
    feeds = make_inputs(model.proto, batch=1, seq_len=20).feeds
    found = check_fits(model, feeds, 8)  # this machine: far from its memory
    assert found.bytes < 2 * CHILD_LIBRARIES
    with pytest.raises(LSTMBenchError, match=r"more than the 1 KiB of memory available"):
        check_fits(model, feeds, 8, available=1024)
    rc, out, err = run_cli(capsys, "verify", tiny, "--runtimes", "numpy")
    assert rc == 0, out + err
    assert np.isfinite(found.bytes)
