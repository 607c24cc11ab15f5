"""``lstm-bench verify`` end to end: exit codes, the terminal table, the JSON report, and
streaming parity (chunked runs carrying (h, c) equal one call)."""

import json

import numpy as np
import onnx
import pytest

from lstm_bench.exporters.weights import export_weights
from lstm_bench.cli import main
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.feeds import make_inputs
from lstm_bench.runtimes.registry import RUNTIMES
from lstm_bench.verify.verdict import Verdict
from lstm_bench.verify.streaming import chunk_sizes, stream_ports, streaming_parity
from cases import verify_file


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify_models")
    seed = root / "seed.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(1, 50), seed=0), seed)
    clip = root / "clip_ragged.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(2, 8, clip=0.5), seed=0), clip, sequence_lens=True)
    stream = root / "stream.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(1, 50), seed=0), stream, initial_states=True)
    return {"seed": seed, "clip": clip, "stream": stream, "root": root}


def test_seed_shaped_model_passes_ort_torch_numpy(models, capsys):
    code = main(["verify", str(models["seed"]), "--runtimes", "ort-cpu,torch-cpu,numpy"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("ort-cpu", "torch-cpu", "numpy"):
        assert name in out
    assert "all 3 runtime(s) that ran passed" in out


def test_clip_and_ragged_fails_onnx_reference_only(models, capsys, tmp_path):
    report_path = tmp_path / "out" / "report.json"
    code = main(["verify", str(models["clip"]), "--runtimes", "ort-cpu,onnx-reference",
                 "--batch", "4", "--seq-len", "20", "--ragged", "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 1, out
    fails = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert fails and all(line.startswith("FAIL onnx-reference: ") for line in fails)
    assert {"Y", "Y_h", "Y_c"} <= {line.split(": ")[1] for line in fails}
    assert all("abs_error" in line and "limit" in line for line in fails)
    assert "ignores sequence_lens, clip" in out

    report = json.loads(report_path.read_text())
    assert report["passed"] is False
    status = {r["runtime"]: r["status"] for r in report["results"]}
    assert status == {"ort-cpu": "pass", "onnx-reference": "fail"}
    lengths = report["inputs"]["lengths"]["sequence_lens"]
    assert len(lengths) == 4 and 20 in lengths and min(lengths) >= 1
    ort = report["results"][0]
    y = next(o for o in ort["outputs"] if o["name"] == "Y")
    assert y["time_axis"] == 0 and len(y["per_step_max_abs"]) == 20
    for key in ("max_abs", "max_rel", "mean_abs", "max_ulp"):
        assert isinstance(y[key], (int, float))
    assert ort["tolerance"] == report["tolerances"]["float32"]
    failure = report["failures"][0]
    assert set(failure) >= {"runtime", "output", "metric", "value", "limit"}


def test_json_report_lists_every_skip_with_its_reason(models, tmp_path):
    report = verify_file(models["seed"], batch=2, seq_len=10)
    data = report.to_dict()
    assert [r["runtime"] for r in data["results"]] == list(RUNTIMES)  # none dropped
    for result in data["results"]:
        if result["status"] == "skip":
            assert result["reason"] and data["skipped"][result["runtime"]] == result["reason"]
    # every runtime passes but tract, which errs on this model (Y_h and Y_c both outputs, no
    # initial states, batch 2: tests/test_tract.py), and so fails the report
    failed = {r["runtime"] for r in data["results"] if r["status"] in ("fail", "error")}
    assert failed <= {"tract-cpu"}
    assert data["passed"] is (not failed) and bool(report) is (not failed)
    json.dumps(data)  # plain JSON types only


@pytest.mark.parametrize("argv,needle", [
    (["verify", "missing.onnx"], "no such model file"),
    (["verify", "{seed}", "--runtimes", "ort-cpu,tpu"], "unknown tpu"),
    (["verify", "{seed}", "--batch", "0"], "--batch"),
    (["verify", "{seed}", "--inputs", "{root}/nope.npz"], "nope.npz: no such file"),
    (["verify", "{seed}", "--inputs", "{root}/bad.npz"], "inputs do not match the model"),
    (["verify", "{seed}", "--ragged", "--batch", "2"], "sequence_lens"),
    (["verify", "{root}/not_onnx.onnx"], "not a readable ONNX model"),
])
def test_bad_input_is_one_stderr_line_and_exit_2(models, argv, needle, capsys):
    root = models["root"]
    np.savez(root / "bad.npz", X=np.zeros((3, 1), np.float32))
    (root / "not_onnx.onnx").write_text("hello")
    argv = [a.format(seed=models["seed"], root=root) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_user_inputs_from_npz(models, tmp_path, capsys):
    model = onnx.load(str(models["seed"]))
    feeds = make_inputs(model, batch=3, seq_len=12, seed=5).feeds
    np.savez(tmp_path / "in.npz", **feeds)
    report_path = tmp_path / "r.json"
    code = main(["verify", str(models["seed"]), "--runtimes", "ort-cpu", "--inputs",
                 str(tmp_path / "in.npz"), "--json", str(report_path)])
    assert code == 0, capsys.readouterr().out
    inputs = json.loads(report_path.read_text())["inputs"]
    assert inputs["batch"] == 3 and inputs["seq_len"] == 12 and inputs["source"].endswith("in.npz")


# ---- streaming ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(RUNTIMES))
def test_streaming_parity(models, name):
    runtime = RUNTIMES[name]()
    reason = runtime.available()
    if reason:
        pytest.skip(f"{name}: {reason}")
    model = onnx.load(str(models["stream"]))
    feeds = make_inputs(model, batch=2, seq_len=25, seed=1).feeds
    runtime.open(str(models["stream"]))
    precision = runtime.precision or "float32"
    result = streaming_parity(runtime, model, feeds, chunks=4, precision=precision)
    runtime.close()
    if precision == "int8":  # per-call activation scales: a CPU-dependent onnxruntime property
        assert {f.metric for f in result.failures} <= {"streaming_abs_error"}
        assert all(np.isfinite(v) and v < 0.3 for v in result.max_abs.values()), result.max_abs
    else:
        assert result.status == "pass", [str(f) for f in result.failures]
    assert result.chunks == [7, 6, 6, 6] and set(result.max_abs) == {"Y", "Y_h", "Y_c"}


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_streaming_carries_state_and_catches_a_reset(tmp_path, direction):
    from lstm_bench.runtimes.ort_cpu import OrtRuntime

    path = tmp_path / f"{direction}.onnx"
    model = export_weights(LSTMWeights.random(LSTMSpec(2, 6, direction=direction), seed=2), path,
                           initial_states=True)
    feeds = make_inputs(model, batch=2, seq_len=12, seed=0).feeds
    runtime = OrtRuntime()
    runtime.open(str(path))
    assert streaming_parity(runtime, model, feeds, chunks=3).status == "pass"

    class Forgetful(OrtRuntime):  # a real bug shape: the state is dropped between calls
        def run(self, feeds):
            feeds = dict(feeds, initial_h=np.zeros_like(feeds["initial_h"]),
                         initial_c=np.zeros_like(feeds["initial_c"]))
            return super().run(feeds)

    forgetful = Forgetful()
    forgetful.open(str(path))
    result = streaming_parity(forgetful, model, dict(feeds, initial_h=0 * feeds["initial_h"],
                                                     initial_c=0 * feeds["initial_c"]), chunks=3)
    assert result.status == "fail" and result.failures[0].metric == "streaming_abs_error"


def test_streaming_needs_state_ports(models, tmp_path):
    assert stream_ports(onnx.load(str(models["seed"])))[1].startswith("the model does not take")
    bi = export_weights(LSTMWeights.random(LSTMSpec(2, 3, direction="bidirectional")),
                        initial_states=True)
    assert "bidirectional" in stream_ports(bi)[1]
    assert chunk_sizes(10, 3) == [4, 3, 3] and chunk_sizes(2, 5) == [1, 1]


def test_verify_runs_the_streaming_check_where_the_model_allows(models, capsys):
    code = main(["verify", str(models["stream"]), "--runtimes", "ort-cpu,torch-cpu",
                 "--batch", "2", "--seq-len", "9"])
    out = capsys.readouterr().out
    assert code == 0 and out.count("streaming pass") == 2, out


# ---- one verdict per runtime: the model's outputs and its LSTM layer alone ---------------

def test_a_wrapped_model_is_judged_with_its_lstm_layer_in_one_verdict(tmp_path):
    from cases import wrapped_model

    path = tmp_path / "wrapped.onnx"
    onnx.save(wrapped_model(LSTMSpec(1, 8), seed=0), str(path))
    report = verify_file(path, ["numpy"], batch=2, seq_len=12, lstm_layer_batch=3)
    (result,) = report.results
    assert result.status == "pass" and result.lstm_layer.status == "pass"
    assert report.lstm_layer["batch"] == 3 and report.lstm_layer["seq_len"] == 12
    # the layer's Y is its own part of the verdict, beside the model's outputs
    assert [o.name for o in result.outputs] == ["probability", "hidden"]
    assert [o.name for o in result.lstm_layer.outputs] == ["Y"]
    assert len(result.lstm_layer.outputs[0].per_step_max_abs) == 12
    assert result.per_step_max_abs_error == list(result.lstm_layer.outputs[0].per_step_max_abs)
    assert report.time_axes == {"hidden": 1} and report.lstm_layer["time_axes"] == {"Y": 0}
    assert result.sentence().startswith("pass: model outputs within the float32 tolerance")
    assert "LSTM layer lstm alone (Y, batch 3, seq_len 12): within" in result.sentence()
    data = report.to_dict()["results"][0]
    assert data["verdict"] == result.sentence() and data["lstm_layer"]["status"] == "pass"
    # written once, read back as the same verdict
    assert Verdict.from_dict(json.loads(json.dumps(data))) == result
    assert verify_file(path, ["numpy"], batch=2, lstm_layer_batch=None).results[0].lstm_layer \
        is None


def test_a_failing_lstm_layer_alone_is_drift_and_the_verdict_says_why():
    from lstm_bench.verify.parity import compare

    model = compare("rt", {"p": np.float32([0.5])}, {"p": np.array([0.5])}, "int8")
    layer = compare("rt", {"Y": np.float32([0.0, 0.4])}, {"Y": np.array([0.0, 0.0])}, "int8",
                    {"Y": 0})
    assert model.status == "pass" and layer.status == "fail"
    model = model.with_lstm_layer(layer, "l alone", "Y, batch 8, seq_len 2")
    assert model.status == "drift" and model  # stated, not a failure of the model's output
    assert not model.failed and not model.passed  # exit code 0, left out of bench's decision
    assert [f.output for f in model.failures] == ["l alone: Y"]
    assert model.max_abs_error == 0.0 and model.layer_max_abs_error == pytest.approx(0.4)
    assert model.sentence().startswith("drift: model outputs within the int8 tolerance")
    assert "LSTM layer l alone (Y, batch 8, seq_len 2): over that tolerance (max abs 0.4)" \
        in model.sentence()
    wrong = compare("rt", {"p": np.float32([0.7])}, {"p": np.array([0.5])}, "int8")
    wrong = wrong.with_lstm_layer(layer, "l alone", "Y, batch 8, seq_len 2")
    assert wrong.status == "fail" and wrong.sentence().startswith("fail: model outputs over")


# ---- nothing written beside the user's model ---------------------------------------------

def _snapshot(folder):
    return {p.name: (p.is_symlink(), p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.iterdir())}


def test_int8_quantizes_in_a_private_folder_leaving_the_models_folder_alone(tmp_path, capsys):
    folder = tmp_path / "user"
    folder.mkdir()
    for name in ("m", "l"):
        export_weights(LSTMWeights.random(LSTMSpec(2, 4), seed=0), folder / f"{name}.onnx")
    (folder / "m-inferred.onnx").write_text("precious")  # the quantizer's helper file name
    (tmp_path / "target.txt").write_text("target")
    (folder / "l-inferred.onnx").symlink_to(tmp_path / "target.txt")
    before = _snapshot(folder)
    for name in ("m", "l"):
        code = main(["verify", str(folder / f"{name}.onnx"), "--runtimes", "ort-cpu-int8",
                     "--batch", "2", "--seq-len", "5"])
        assert code in (0, 1), capsys.readouterr()  # the int8 verdict is the CPU's; it ran
    assert _snapshot(folder) == before
    assert (tmp_path / "target.txt").read_text() == "target"


# ---- onnxruntime options from the command line --------------------------------------------

def test_ort_options_reach_every_onnxruntime_runtime_and_the_json(models, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    code = main(["verify", str(models["seed"]), "--runtimes", "ort-cpu,ort-cpu-fp16,numpy",
                 "--ort-option", "intra_op_spinning=0", "--ort-option",
                 "graph_optimization_level=basic", "--json", str(report_path)])
    assert code == 0, capsys.readouterr().out
    settings = {r["runtime"]: r["settings"] for r in json.loads(report_path.read_text())["results"]}
    wanted = {"intra_op_spinning": "0", "graph_optimization_level": "basic"}
    assert settings == {"ort-cpu": {"ort_options": wanted},
                        "ort-cpu-fp16": {"ort_options": wanted}, "numpy": {}}


def test_a_bad_ort_option_is_one_line_and_exit_2_before_any_work(models, capsys):
    code = main(["verify", str(models["seed"]), "--ort-option", "intra_op_spinning=yes"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--ort-option intra_op_spinning=yes: expected 0 or 1" in err
