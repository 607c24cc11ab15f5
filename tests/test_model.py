"""The model parsed once: ``lstm_bench.model.Model`` shared by verify, bench and the runtimes."""

import hashlib
from pathlib import Path

import onnx
import pytest

from cases import bench_plan, verify_file
from lstm_bench import graph
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.runner import run_plan
from lstm_bench.cli import main
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.weights import export_weights
from lstm_bench.model import Model, as_model
from lstm_bench.spec import LSTMSpec, LSTMWeights


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "m.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(3, 4, direction="bidirectional"), seed=0), path)
    return path


def test_derived_facts_are_computed_once_and_right(path):
    model = Model.load(path)
    assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.lstm_nodes is model.lstm_nodes and model.summary is model.summary
    (node,) = model.lstm_nodes
    assert node.spec.hidden_size == 4 and model.summary["lstm_nodes"][0]["direction"] == "bidirectional"
    assert model.flops(2, 10) == 8 * 4 * (3 + 4) * 2 * 10 * 2
    assert str(model) == str(path) and open(model, "rb").read(4) == path.read_bytes()[:4]
    assert as_model(model) is model and as_model(str(path)).sha256 == model.sha256
    with pytest.raises(AttributeError):
        model.path = path  # frozen


@pytest.mark.parametrize("make,needle", [
    (lambda p: p, "no such model file"),
    (lambda p: (p.mkdir(), p)[1], "a directory, not a model file"),
    (lambda p: (p.write_text("hello"), p)[1], "not a readable ONNX model"),
])
def test_a_bad_file_is_one_clear_error(tmp_path, make, needle):
    with pytest.raises(LSTMBenchError, match=needle):
        Model.load(make(tmp_path / "x.onnx"))


@pytest.fixture
def reads(monkeypatch):
    """Every path onnx.load is asked to read (a real onnx.load, counted)."""
    seen = []
    real_load = onnx.load

    def counting_load(f, *args, **kwargs):
        seen.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting_load)
    return seen


def test_verify_reads_the_file_once_for_every_runtime(path, reads):
    report = verify_file(path, ["ort-cpu", "numpy", "torch-cpu", "onnx-reference",
                                "ort-cpu-fp16"], batch=2, seq_len=5)
    assert [r.status for r in report.results] == ["pass"] * 5
    assert reads.count(str(path)) == 1, reads


def test_bench_reads_the_file_once_for_every_runtime(path, reads):
    (doc,) = run_plan(bench_plan(path, ["ort-cpu", "numpy", "torch-cpu"], (1, 2), (4,),
                                 settings=Settings(span=0, min_time=0, min_reps=2, block=1),
                                 calibrate=False))
    assert len(doc.measurements) == 6 and doc.model["sha256"]
    assert reads.count(str(path)) == 1, reads


def test_run_reads_and_hashes_the_file_once_for_every_step(path, reads, tmp_path, monkeypatch):
    """`run --model`: the checks, verify (its LSTM layer too), the bench and the streaming
    bench share the one model read."""
    hashed, real_read = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: hashed.append(str(self)) or real_read(self))
    assert main(["run", "--model", str(path), "--out", str(tmp_path / "out"), "--runtimes",
                 "ort-cpu,numpy", "--batch", "1,2", "--min-time", "0.002", "--span", "0",
                 "--quiet", "--no-history"]) == 0
    assert reads.count(str(path)) == 1, reads
    assert hashed.count(str(path)) == 1, hashed


def test_flops_at_every_shape_read_the_layers_once(path, monkeypatch):
    calls = []
    real = graph.lstm_nodes
    monkeypatch.setattr(graph, "lstm_nodes", lambda proto: calls.append(1) or real(proto))
    model = Model.load(path)
    assert [model.flops(b, t) for b, t in ((1, 5), (2, 5), (8, 100))] == \
        [8 * 4 * (3 + 4) * b * t * 2 for b, t in ((1, 5), (2, 5), (8, 100))]
    assert len(calls) == 1
