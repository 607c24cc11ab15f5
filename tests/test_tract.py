"""tract (``tract-cpu``) against the float64 truth and onnxruntime, feature by feature: verify must
pass it where it is exact and fail it, with figures and the feature named, where it is silently
wrong. The expected wrong ones are listed explicitly: a tract that gets fixed, or breaks more,
fails this file. Real tract, real onnxruntime; nothing faked.

Measured with tract 0.23.9 (runtimes/tract_rt.py). The models output Y and Y_h only: with Y_c
too, a one-way LSTM without initial states errs at batch > 1 (its own test below), which would
hide the feature under test.
"""

import json

import numpy as np
import pytest

from cases import bench_plan
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.runner import run_plan
from lstm_bench.cli import main
from lstm_bench.exporters.weights import build_lstm_model, export_weights
from lstm_bench.feeds import make_inputs
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_cpu import OrtRuntime
from lstm_bench.runtimes.tract_rt import TractRuntime
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.run import Truth, verify_runtime

_REASON = TractRuntime().available()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"tract-cpu: {_REASON}")

I, H, BATCH, SEQ_LEN = 4, 8, 3, 20
ACTIVATIONS = dict(activations=("HardSigmoid", "LeakyRelu", "Softsign"),
                   activation_alpha=(0.3, 0.1), activation_beta=(0.4,))

# feature -> (spec, export options, tract's verdict, the line verify's notes must hold or None)
TABLE = {
    "plain": (LSTMSpec(I, H), {}, "pass", None),
    "bidirectional": (LSTMSpec(I, H, direction="bidirectional"), {}, "pass", None),
    "layout = 1": (LSTMSpec(I, H, layout=1), {}, "pass", None),
    "peepholes": (LSTMSpec(I, H, peepholes=True), {}, "pass", None),
    "initial states": (LSTMSpec(I, H), {"initial_states": True}, "pass", None),
    # silently wrong: it runs, with no error, and the figures are far off
    "reverse": (LSTMSpec(I, H, direction="reverse"), {}, "fail",
                "lstm: ignores direction = reverse"),
    "clip": (LSTMSpec(I, H, clip=0.5), {}, "fail", "lstm: ignores clip is set"),
    "input_forget": (LSTMSpec(I, H, input_forget=1), {}, "fail",
                     "lstm: ignores input_forget = 1"),
    "activations": (LSTMSpec(I, H, **ACTIVATIONS), {}, "fail", "lstm: ignores activations"),
    "relu activation": (LSTMSpec(I, H, activations=("Sigmoid", "Relu", "Tanh")), {}, "fail",
                        "lstm: ignores activations"),
    # refused: an error that says so
    "sequence_lens": (LSTMSpec(I, H), {"sequence_lens": True}, "error",
                      "lstm: refuses sequence_lens"),
}


def truth_of(spec, options, outputs=("Y", "Y_h"), batch=BATCH, ragged=False):
    proto = build_lstm_model(LSTMWeights.random(spec, seed=1), outputs=outputs, **options)
    model = Model.built(proto)
    return Truth.of(model, make_inputs(proto, batch=batch, seq_len=SEQ_LEN, seed=2,
                                       ragged=ragged))


@pytest.mark.parametrize("feature", list(TABLE))
def test_verify_table_on_the_lstm_features(feature):
    spec, options, expected, note = TABLE[feature]
    truth = truth_of(spec, options, ragged=bool(options.get("sequence_lens")))
    result = verify_runtime(TractRuntime(), truth, streaming=False)
    assert result.status == expected, (result.reason, [str(f) for f in result.failures])
    if expected == "pass":
        assert result.max_abs_error < 1e-5
        return
    assert any(line.startswith(note) for line in result.notes), result.notes
    if expected == "fail":  # the figures: far beyond float32 rounding (measured 0.07-0.5)
        assert result.max_abs_error > 1e-2
        assert {f.output for f in result.failures} == {"Y", "Y_h"}  # every output listed
        if spec.layout == 0:  # onnxruntime computes the same model right (it refuses layout 1)
            assert verify_runtime(OrtRuntime(), truth, streaming=False).status == "pass"
    else:
        assert "seq_len is not supported" in result.reason


def test_both_states_out_without_initial_states_is_an_error_at_batch_above_1():
    truth = truth_of(LSTMSpec(I, H), {}, outputs=("Y", "Y_h", "Y_c"))
    result = verify_runtime(TractRuntime(), truth, streaming=False)
    assert result.status == "error"
    assert "Clashing resolution" in result.reason and "Caused by" not in result.reason
    alone = truth_of(LSTMSpec(I, H), {}, outputs=("Y", "Y_h", "Y_c"), batch=1)
    assert verify_runtime(TractRuntime(), alone, streaming=False).status == "pass"


def test_more_than_one_thread_is_a_skip_saying_why():
    truth = truth_of(LSTMSpec(I, H), {})
    result = verify_runtime(TractRuntime(), truth, threads=2, streaming=False)
    assert result.status == "skip" and "one thread" in result.reason
    assert not result.failed


def test_verify_cli_fails_the_silently_wrong_file_and_names_the_feature(tmp_path, capsys):
    path = tmp_path / "reverse.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(I, H, direction="reverse"), seed=1), path,
                   outputs=("Y", "Y_h"))
    out = tmp_path / "verify.json"
    assert main(["verify", str(path), "--runtimes", "tract-cpu,ort-cpu", "--batch", "2",
                 "--json", str(out)]) == 1
    rows = {r["runtime"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["ort-cpu"]["status"] == "pass"
    assert rows["tract-cpu"]["status"] == "fail"
    assert "lstm: ignores direction = reverse" in rows["tract-cpu"]["notes"]
    assert rows["tract-cpu"]["settings"]["tract"]["threads"] == 1
    assert "tract-cpu" in capsys.readouterr().out


def test_bench_measures_it_at_one_thread_and_skips_more(tmp_path):
    path = tmp_path / "plain.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(I, H), seed=1), path, outputs=("Y", "Y_h"))
    settings = Settings(span=0, min_time=0, min_reps=3, warmup_reps=1, warmup_time=0, block=1)
    (doc,) = run_plan(bench_plan(path, ["tract-cpu"], (1, 2), (10,), threads=(1, 2),
                                 settings=settings, calibrate=False))
    assert sorted((m.batch, m.threads) for m in doc.measurements) == [(1, 1), (2, 1)]
    row = doc.measurements[0].as_dict()
    assert row["tract"]["threads"] == 1 and row["tract"]["version"]
    assert doc.machine["libraries"]["tract"]
    (skip,) = doc.skipped
    assert skip.runtime == "tract-cpu" and skip.threads == 2 and "one thread" in skip.reason


def test_a_model_built_in_memory_runs_and_its_folder_is_removed():
    proto = build_lstm_model(LSTMWeights.random(LSTMSpec(I, H), seed=1), outputs=("Y",))
    runtime = TractRuntime()
    runtime.open(Model.built(proto))
    folder = runtime.folder
    x = np.zeros((5, 2, I), np.float32)
    assert runtime.run({"X": x})["Y"].shape == (5, 1, 2, H)
    assert runtime.run({"X": np.zeros((3, 2, I), np.float32)})["Y"].shape == (3, 1, 2, H)
    assert len(runtime.runnables) == 2  # one per fed shape
    runtime.close()
    assert folder is not None and not folder.exists()


def test_value_info_of_a_torch_style_export_is_left_out_of_tracts_copy(tmp_path):
    # A wrapped classifier whose value_info carries symbolic shapes (as torch's exporter writes
    # them): tract, given the file as it is, cannot unify them with the fed shapes; lstm-bench
    # gives it a copy without them, and says so.
    import onnx
    import tract

    from cases import wrapped_model

    proto = onnx.shape_inference.infer_shapes(wrapped_model(LSTMSpec(1, H), seed=1))
    assert any(d.dim_param for v in proto.graph.value_info
               for d in v.type.tensor_type.shape.dim)
    path = tmp_path / "wrapped.onnx"
    onnx.save(proto, str(path))
    raw = tract.onnx().load(str(path))
    raw.set_input_fact(0, f"2,{SEQ_LEN},1,f32")
    with pytest.raises(tract.TractError, match="unify"):
        raw.into_model()
    model = Model.load(path)
    truth = Truth.of(model, make_inputs(model.proto, batch=2, seq_len=SEQ_LEN, seed=2))
    result = verify_runtime(TractRuntime(), truth, streaming=False)
    assert result.status == "pass", result.reason
    assert any("value_info entries left out" in note for note in result.notes)
