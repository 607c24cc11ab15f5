"""OpenVINO against the float64 truth, at the size the issue measured it (batch 8, T = 100):
verify must fail it where it is silently wrong (peepholes, input_forget, ragged lengths with
dynamic shapes) and pass it on plain models, the shipped seed model included. Real openvino,
real onnxruntime; nothing faked."""

import json

import pytest

from cases import bench_plan, verify_file
from lstm_bench import reference
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.runner import run_plan
from lstm_bench.cli import main
from lstm_bench.exporters.source import export_source
from lstm_bench.exporters.weights import export_weights
from lstm_bench.feeds import make_inputs
from lstm_bench.model import Model
from lstm_bench.runtimes.openvino_rt import OpenVinoRuntime, OpenVinoStaticRuntime
from lstm_bench.seed import shipped_checkpoint
from lstm_bench.spec import LSTMSpec, LSTMWeights

_REASON = OpenVinoRuntime().available()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"openvino-cpu: {_REASON}")

# name -> (spec, export options, verify options)
MODELS = {
    "plain": (LSTMSpec(4, 16), {}, {}),
    "bidirectional": (LSTMSpec(4, 16, direction="bidirectional"), {"initial_states": True}, {}),
    "clip": (LSTMSpec(4, 16, clip=0.5), {}, {}),
    "peepholes": (LSTMSpec(4, 16, peepholes=True), {}, {}),
    "input_forget": (LSTMSpec(4, 16, input_forget=1), {}, {}),
    "ragged": (LSTMSpec(4, 16), {"sequence_lens": True}, {"ragged": True}),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino")
    paths = {}
    for name, (spec, options, _) in MODELS.items():
        paths[name] = root / f"{name}.onnx"
        export_weights(LSTMWeights.random(spec, seed=11), paths[name], **options)
    return paths


def check(models, name, runtime="openvino-cpu"):
    report = verify_file(models[name], [runtime], batch=8, seq_len=100, threads=1,
                         streaming=False, **MODELS[name][2])
    (result,) = report.results
    return result


@pytest.mark.parametrize("name", ["plain", "bidirectional", "clip"])
def test_plain_models_pass(models, name):
    result = check(models, name)
    assert result.status == "pass", [str(f) for f in result.failures]
    assert result.precision == "float32"
    assert all(0 <= o.max_abs <= 1e-5 for o in result.outputs)


@pytest.mark.parametrize("name", ["peepholes", "input_forget", "ragged"])
def test_silently_wrong_models_fail(models, name):
    result = check(models, name)
    assert result.status == "fail"  # it ran: a wrong answer, not a refusal
    # far beyond float32 rounding (measured: 2e-2 to 0.4), so no CPU lands near the limit
    assert max(o.max_abs for o in result.outputs) > 1e-3


def test_static_shapes_get_ragged_lengths_right(models):
    # The same model, reshaped to the fed shapes: OpenVINO's other LSTM path honours lengths.
    result = check(models, "ragged", "openvino-cpu-static")
    assert result.status == "pass", [str(f) for f in result.failures]
    assert check(models, "peepholes", "openvino-cpu-static").status == "fail"


def test_seed_model_passes_and_peepholes_fail_from_the_cli(models, tmp_path, capsys):
    seed = export_source(shipped_checkpoint(), tmp_path / "seed.onnx", exporter="torchscript").path
    out = tmp_path / "verify.json"
    assert main(["verify", str(seed), "--runtimes", "openvino-cpu,ort-cpu", "--batch", "4",
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    row = next(r for r in doc["results"] if r["runtime"] == "openvino-cpu")
    assert row["status"] == "pass"
    assert any("OpenVINO 2026" in note and "INFERENCE_PRECISION_HINT=f32" in note
               for note in row["notes"]), row["notes"]
    assert main(["verify", str(models["peepholes"]), "--runtimes", "openvino-cpu"]) == 1
    assert "openvino-cpu" in capsys.readouterr().out


def test_threads_and_precision_reach_the_compiled_model(models):
    runtime = OpenVinoRuntime()
    runtime.open(str(models["plain"]), threads=2)
    try:
        compiled = runtime.info["compiled"]
        assert compiled["INFERENCE_NUM_THREADS"] == "2"
        assert compiled["INFERENCE_PRECISION_HINT"] == "f32"
        assert runtime.info["version"].startswith("2026.4.1")
    finally:
        runtime.close()


@pytest.mark.parametrize("where", ["file", "memory"])
def test_accepts_a_model_object_read_from_a_file_or_built_in_memory(models, where):
    import numpy as np

    model = Model.load(models["plain"])
    runtime = OpenVinoRuntime()
    runtime.open(model if where == "file" else Model.built(model.proto), threads=1)
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    outputs = runtime.run({"X": x})
    runtime.close()
    assert outputs["Y"].shape == (5, 1, 3, 16) and outputs["Y"].dtype == np.float32


def test_static_variant_compiles_once_per_shape(models):
    import numpy as np

    runtime = OpenVinoStaticRuntime()
    runtime.open(str(models["plain"]), threads=1)
    rng = np.random.default_rng(0)
    for shape in [(7, 2, 4), (3, 2, 4), (7, 2, 4)]:
        assert runtime.run({"X": rng.standard_normal(shape).astype(np.float32)})["Y"].shape[0] == shape[0]
    assert len(runtime.compiled) == 2
    runtime.close()


def test_unsupported_activation_is_an_error_naming_the_cause(tmp_path):
    path = tmp_path / "leaky.onnx"
    spec = LSTMSpec(3, 8, activations=("Sigmoid", "LeakyRelu", "Tanh"), activation_alpha=(0.1,))
    export_weights(LSTMWeights.random(spec, seed=0), path)
    report = verify_file(path, ["openvino-cpu"], batch=2, seq_len=5, streaming=False)
    (result,) = report.results
    assert result.status == "error"
    assert "leakyrelu" in result.reason.lower() and "Exception from" not in result.reason


def test_bench_times_it_with_the_same_harness(models, tmp_path):
    settings = Settings(span=0, min_time=0, min_reps=3, warmup_reps=1, warmup_time=0, block=1)
    (doc,) = run_plan(bench_plan(models["plain"], ["openvino-cpu", "ort-cpu"], (1, 4), (10,),
                                 settings=settings, calibrate=False))
    rows = [(m.runtime, m.batch, m.threads) for m in doc.measurements]
    assert sorted(rows) == [("openvino-cpu", 1, 1), ("openvino-cpu", 4, 1),
                            ("ort-cpu", 1, 1), ("ort-cpu", 4, 1)]
    assert doc.machine["libraries"]["openvino"] == "2026.4.1"
    row = next(m for m in doc.measurements if m.runtime == "openvino-cpu").as_dict()
    assert row["device"] == "cpu"  # the row's own, not replaced by OpenVINO's "CPU"
    assert row["openvino"]["compiled"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert row["openvino"]["compiled"]["INFERENCE_NUM_THREADS"] == "1"
    assert row["openvino"]["version"].startswith("2026.4.1")


def test_missing_openvino_is_a_skip_reason(tmp_path):
    # A real interpreter where the import fails: available() gives the reason, no traceback.
    import subprocess
    import sys

    code = ("import sys; sys.modules['openvino'] = None\n"
            "from lstm_bench.runtimes.openvino_rt import OpenVinoRuntime\n"
            "print(OpenVinoRuntime().available())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("openvino is not installed")


def test_peephole_output_is_the_truth_without_peepholes(tmp_path):
    # Why it fails: OpenVINO drops P. Its output matches the float64 truth of the same
    # weights with P removed, to float32 rounding, and is far from the truth with P.
    import numpy as np

    weights = LSTMWeights.random(LSTMSpec(4, 16, peepholes=True), seed=5)
    with_p = export_weights(weights, tmp_path / "p.onnx")
    plain = LSTMWeights(weights.spec.replace(peepholes=False), weights.W, weights.R, weights.B)
    without_p = export_weights(plain, tmp_path / "no_p.onnx")
    feeds = make_inputs(with_p, batch=8, seq_len=100, seed=1).feeds
    runtime = OpenVinoRuntime()
    runtime.open(str(tmp_path / "p.onnx"), threads=1)
    y = runtime.run(feeds)["Y"]
    runtime.close()
    assert np.abs(y - reference.run_model(without_p, feeds)["Y"]).max() < 1e-5
    assert np.abs(y - reference.run_model(with_p, feeds)["Y"]).max() > 1e-3


def test_layout_1_is_silently_ignored(tmp_path):
    # openvinotoolkit/openvino#37819, #37820, checked on 2026.4.1: a batch-major (layout = 1)
    # LSTM without initial states is computed as if it were time-major, with no error: X
    # [B, T, I] is read as [T, B, I], and the outputs come back time-major. verify fails it
    # on the outputs' shapes (tests/cases.py, "batchwise"); this pins down why.
    import numpy as np

    weights = LSTMWeights.random(LSTMSpec(4, 8, layout=1), seed=5)
    batch_major = export_weights(weights, tmp_path / "layout1.onnx")
    time_major = export_weights(LSTMWeights(weights.spec.replace(layout=0), weights.W,
                                            weights.R, weights.B))
    x = np.random.default_rng(0).uniform(-1, 1, (3, 7, 4)).astype(np.float32)  # B=3, T=7
    truth = reference.run_model(batch_major, {"X": x})
    assert truth["Y"].shape == (3, 7, 1, 8) and truth["Y_h"].shape == (3, 1, 8)
    ignored = reference.run_model(time_major, {"X": x})  # the same array read as T=3, B=7
    for runtime in (OpenVinoRuntime(), OpenVinoStaticRuntime()):
        runtime.open(str(tmp_path / "layout1.onnx"), threads=1)
        outputs = runtime.run({"X": x})
        runtime.close()
        assert outputs["Y"].shape == (3, 1, 7, 8) and outputs["Y_h"].shape == (1, 7, 8)
        for name in ("Y", "Y_h", "Y_c"):
            np.testing.assert_allclose(outputs[name], ignored[name], atol=1e-5)


def test_layout_1_with_initial_states_is_wrong_or_refused(tmp_path):
    # With initial_h / initial_c ([B, D, H] under layout = 1) the dynamic-shape path returns
    # an empty Y and states of the wrong batch, again with no error; the static-shape path
    # refuses the model when it reshapes it to the fed shapes (time-major X against
    # batch-major states: "Dimension `batch_size` is not matched").
    import numpy as np

    path = tmp_path / "layout1_states.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(4, 8, layout=1), seed=5), path,
                   initial_states=True)
    rng = np.random.default_rng(0)
    feeds = {"X": rng.uniform(-1, 1, (3, 7, 4)).astype(np.float32),
             "initial_h": rng.uniform(-1, 1, (3, 1, 8)).astype(np.float32),
             "initial_c": rng.uniform(-1, 1, (3, 1, 8)).astype(np.float32)}
    runtime = OpenVinoRuntime()
    runtime.open(str(path), threads=1)
    outputs = runtime.run(feeds)
    runtime.close()
    assert outputs["Y"].size == 0 and outputs["Y_h"].shape != (3, 1, 8)
    static = OpenVinoStaticRuntime()
    static.open(str(path), threads=1)
    with pytest.raises(Exception, match="batch_size"):
        static.run(feeds)
    static.close()
