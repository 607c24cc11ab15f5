"""The torch-source runtime: the train checkpoint's own torch module, judged by verify against
the float64 truth beside the runtimes that run the exported ONNX file."""

import json

import numpy as np
import pytest

from lstm_bench.seed import shipped_checkpoint
from lstm_bench.exporters.source import export_source
from lstm_bench.exporters.weights import export_weights
from lstm_bench.cli import main
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.runtimes.torch_source import TorchSourceRuntime
from cases import verify_file


@pytest.fixture(scope="module")
def seed_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "seed.onnx"
    return export_source(shipped_checkpoint(), path, exporter="torchscript").path


def test_source_row_passes_with_a_small_error(seed_onnx):
    report = verify_file(seed_onnx, ["ort-cpu"], batch=4, source=shipped_checkpoint(),
                         streaming=False)
    assert [r.runtime for r in report.results] == ["ort-cpu", "torch-source"]
    source = report.results[1]
    assert source.status == "pass" and source.precision == "float32"
    (output,) = source.outputs
    assert list(output.shape) == [4, 1]
    assert 0 < output.max_abs < 1e-6
    assert report and report.to_dict()["results"][1]["runtime"] == "torch-source"


def test_runtime_runs_the_module_on_the_onnx_names(seed_onnx):
    runtime = TorchSourceRuntime(shipped_checkpoint())
    runtime.open(str(seed_onnx), threads=1)
    x = np.random.default_rng(0).standard_normal((2, 30, 1)).astype(np.float32)
    (name, y), = runtime.run({runtime.input_name: x}).items()
    runtime.close()
    assert name == "output" and y.shape == (2, 1) and y.dtype == np.float32
    assert np.all((0 < y) & (y < 1))


def test_cli_source_adds_the_row(seed_onnx, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    code = main(["verify", str(seed_onnx), "--runtimes", "numpy", "--source",
                 str(shipped_checkpoint()), "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "torch-source" in out and "all 2 runtime(s) that ran passed" in out
    status = {r["runtime"]: r["status"] for r in json.loads(report_path.read_text())["results"]}
    assert status == {"numpy": "pass", "torch-source": "pass"}


@pytest.mark.parametrize("case,needle", [
    ("one_node", "does not match the checkpoint's module"),
    ("missing", "no such file"),
])
def test_bad_source_is_one_stderr_line_and_exit_2(seed_onnx, tmp_path, case, needle, capsys):
    model, checkpoint = seed_onnx, shipped_checkpoint()
    if case == "one_node":  # X [T, B, 1] and three outputs: not what SeedLSTM takes and returns
        model = tmp_path / "lstm.onnx"
        export_weights(LSTMWeights.random(LSTMSpec(1, 50), seed=0), model)
    else:
        checkpoint = tmp_path / "nope.pt"
    code = main(["verify", str(model), "--runtimes", "numpy", "--source", str(checkpoint)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err


def test_float16_on_the_seed_is_drift_stated_with_both_figures(seed_onnx, capsys):
    """float16 rounding is the same on every CPU: the seed's probability stays within the
    float16 row (1.4e-4 measured) while its LSTM layer alone goes beyond it (0.016)."""
    code = main(["verify", str(seed_onnx), "--runtimes", "ort-cpu,ort-cpu-fp16"])
    out = capsys.readouterr().out
    assert code == 0, out
    (drift,) = [line for line in out.splitlines() if line.startswith("DRIFT ")]
    assert drift.startswith("DRIFT ort-cpu-fp16: model outputs within the float16 tolerance")
    assert "1 pass, 1 drift" in " ".join(out.split())
    report = verify_file(seed_onnx, ["ort-cpu-fp16"], streaming=False)
    (result,) = report.results
    assert result.status == "drift" and result.lstm_layer.status == "fail"
    assert result.max_abs_error < 1e-3 < result.layer_max_abs_error
