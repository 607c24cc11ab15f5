"""Streaming latency: the stateful variant (exporters.stateful), the state-carrying runtime
wrapper and `lstm-bench bench --streaming` (bench.streaming). Structure and fields, never
timings: the harness runs on an injected clock where figures are checked."""

import itertools
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cases import bench_plan
from lstm_bench import reference
from lstm_bench.bench.harness import Settings
from lstm_bench.bench.runner import run_plan
from lstm_bench.bench.streaming import StreamingRuntime, streaming_model
from lstm_bench.cli import main
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.stateful import METADATA_STATEFUL, stateful_variant
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import RUNTIMES
from lstm_bench.verify.streaming import stream_ports, streaming_parity
from lstm_bench.spec import LSTMSpec, LSTMWeights

I, H = 3, 5


def _batch_first_classifier(weights: LSTMWeights):
    """The shape of torch's export of the seed: input [batch, seq, I] -> Transpose -> LSTM
    whose zero initial states are built from the input's shape -> last Y_h -> Gemm -> Sigmoid.
    Nothing in it exposes the LSTM state."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "seq", I])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1])
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in weights.tensors().items()]
    inits += [numpy_helper.from_array(np.array([1], np.int64), "one"),
              numpy_helper.from_array(np.array([H], np.int64), "hidden"),
              numpy_helper.from_array(np.array([0], np.int64), "batch_axis"),
              numpy_helper.from_array(np.array([0], np.int64), "zero_axis"),
              numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
              numpy_helper.from_array(rng.standard_normal((1, H)).astype(np.float32), "dense_w"),
              numpy_helper.from_array(np.array([0.1], np.float32), "dense_b")]
    nodes = [
        helper.make_node("Shape", ["input"], ["shape"]),
        helper.make_node("Gather", ["shape", "batch_axis"], ["batch"], axis=0),
        helper.make_node("Concat", ["one", "batch", "hidden"], ["state_shape"], axis=0),
        helper.make_node("Expand", ["zero", "state_shape"], ["zeros"]),
        helper.make_node("Transpose", ["input"], ["time_major"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["time_major", "W", "R", "B", "", "zeros", "zeros"],
                         ["", "last_h"], hidden_size=H),
        helper.make_node("Squeeze", ["last_h", "zero_axis"], ["h"]),
        helper.make_node("Gemm", ["h", "dense_w", "dense_b"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "classifier", [x], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def weights():
    return LSTMWeights.random(LSTMSpec(input_size=I, hidden_size=H), seed=3)


@pytest.fixture(scope="module")
def classifier(weights, tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "classifier.onnx"
    onnx.save(_batch_first_classifier(weights), str(path))
    return path


def _session(model):
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def test_stateful_variant_of_a_batch_first_model(classifier):
    model = onnx.load(str(classifier))
    assert stream_ports(model)[0] is None  # the original cannot be streamed
    variant = stateful_variant(model)
    ports, reason = stream_ports(variant)
    assert reason is None and ports.X == "X" and ports.layout == 0
    inputs = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in variant.graph.input}
    assert inputs == {"X": ["seq", "batch", I], "initial_h": [1, "batch", H],
                      "initial_c": [1, "batch", H]}
    assert [o.name for o in variant.graph.output] == ["output", "Y_h", "Y_c"]
    assert (ports.Y_h, ports.Y_c) == ("Y_h", "Y_c")  # the node's internal "last_h" renamed
    # the zero-state chain and the Transpose are gone; nothing else changed
    assert [n.op_type for n in variant.graph.node] == ["LSTM", "Squeeze", "Gemm", "Sigmoid"]
    assert {p.key: p.value for p in variant.metadata_props}[METADATA_STATEFUL] == "1"

    x = np.random.default_rng(0).uniform(-1, 1, (2, 7, I)).astype(np.float32)
    zeros = np.zeros((1, 2, H), np.float32)
    (want,) = _session(model).run(None, {"input": x})
    got = _session(variant).run(["output"], {"X": x.transpose(1, 0, 2).copy(),
                                             "initial_h": zeros, "initial_c": zeros})[0]
    np.testing.assert_array_equal(got, want)


def test_stateful_variant_streams_like_one_call(classifier, tmp_path):
    """Chunks with the state carried give what one call gives (runtimes.streaming's check)."""
    path = tmp_path / "variant.onnx"
    variant = stateful_variant(onnx.load(str(classifier)))
    onnx.save(variant, str(path))
    runtime = RUNTIMES["ort-cpu"]()
    runtime.open(str(path))
    rng = np.random.default_rng(2)
    feeds = {"X": rng.uniform(-1, 1, (9, 2, I)).astype(np.float32),
             "initial_h": rng.uniform(-1, 1, (1, 2, H)).astype(np.float32),
             "initial_c": rng.uniform(-1, 1, (1, 2, H)).astype(np.float32)}
    try:
        result = streaming_parity(runtime, variant, feeds, chunks=4)
    finally:
        runtime.close()
    assert result.status == "pass", result.failures
    assert result.chunks == [3, 2, 2, 2]


def test_stateful_variant_of_a_time_major_model_matches_the_reference(weights):
    model = build_lstm_model(weights, outputs=("Y",))
    variant = stateful_variant(model)
    ports, _ = stream_ports(variant)
    assert (ports.X, ports.Y) == ("X", "Y")
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (6, 2, I)).astype(np.float32)
    h0, c0 = (rng.uniform(-1, 1, (1, 2, H)).astype(np.float32) for _ in range(2))
    Y, Y_h, Y_c = _session(variant).run(["Y", ports.Y_h, ports.Y_c],
                                        {"X": X, "initial_h": h0, "initial_c": c0})
    truth = reference.lstm(X, weights.W, weights.R, weights.B, initial_h=h0, initial_c=c0)
    for got, want in zip((Y, Y_h, Y_c), truth):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spec, contains", [
    (LSTMSpec(input_size=2, hidden_size=3, direction="bidirectional"), "bidirectional"),
])
def test_stateful_variant_refuses_what_cannot_stream(spec, contains):
    with pytest.raises(LSTMBenchError, match=contains):
        stateful_variant(build_lstm_model(LSTMWeights.random(spec)))


def test_stateful_variant_refuses_an_lstm_input_computed_in_the_graph(weights):
    model = build_lstm_model(weights)
    relu = helper.make_node("Relu", ["X_raw"], ["X"])
    model.graph.node.insert(0, relu)
    model.graph.input[0].name = "X_raw"
    with pytest.raises(LSTMBenchError, match="computed inside the graph .by a Relu node"):
        stateful_variant(model)


def test_streaming_runtime_carries_the_state_between_calls(weights, tmp_path):
    path = tmp_path / "stateful.onnx"
    onnx.save(build_lstm_model(weights, initial_states=True), str(path))
    ports, _ = stream_ports(onnx.load(str(path)))
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (2, 3, I)).astype(np.float32)
    zeros = np.zeros((1, 3, H), np.float32)
    stream = StreamingRuntime(RUNTIMES["ort-cpu"](), ports)
    stream.open(str(path))
    try:
        first = stream.run({"X": X[:1], "initial_h": zeros, "initial_c": zeros})
        second = stream.run({"X": X[1:], "initial_h": zeros, "initial_c": zeros})
        other_batch = stream.run({"X": X[:1, :2], "initial_h": zeros[:, :2],
                                  "initial_c": zeros[:, :2]})
    finally:
        stream.close()
    truth = reference.lstm(X, weights.W, weights.R, weights.B)
    np.testing.assert_allclose(first["Y_h"], truth[0][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second["Y_h"], truth[1], rtol=1e-4, atol=1e-5)  # step 2 of 2
    # a batch of another size keeps a state of its own: it starts from its own initial state
    np.testing.assert_allclose(other_batch["Y_h"], truth[0][0][:, :2], rtol=1e-4, atol=1e-5)


def test_streaming_model_is_the_model_itself_when_it_carries_state(weights, tmp_path):
    path = tmp_path / "stateful.onnx"
    onnx.save(build_lstm_model(weights, initial_states=True), str(path))
    stream = streaming_model(Model.load(path), tmp_path)
    assert stream.model.path == path and not stream.stateful_variant


def _ticking_clock(step_ns=1_000):
    counter = itertools.count(step=step_ns)
    return lambda: next(counter)


def test_a_streaming_plan_s_rows_carry_mode_chunk_and_per_step_figures(classifier):
    """Each clock read advances 1 us, so every timed call lasts exactly 1 us."""
    settings = Settings(span=0, min_time=0.0, min_reps=4, max_reps=4, warmup_reps=1,
                        warmup_time=0.0, block=2)
    (doc,) = run_plan(bench_plan(classifier, ["ort-cpu", "numpy"], (1, 2), (1, 4),
                                 settings=settings, streaming=True, clock=_ticking_clock()))
    rows = [m.as_dict() for m in doc.measurements]  # the JSON rows, through the type
    assert {(r["runtime"], r["batch"], r["chunk"]) for r in rows} == {
        (rt, b, c) for rt in ("ort-cpu", "numpy") for b in (1, 2) for c in (1, 4)}
    for row in rows:
        assert row["mode"] == "streaming" and row["seq_len"] == row["chunk"]
        assert row["stateful_variant"] is True
        assert row["reps"] == 4
        assert row["per_call_ms"] == {"p50": 0.001, "p99": 0.001}
        assert row["per_step_ms"]["p50"] == pytest.approx(0.001 / row["chunk"])
        assert row["per_step_ms"]["p99"] == pytest.approx(0.001 / row["chunk"])
    section = doc.extra["streaming"]
    assert section["stateful_variant"] is True and section["chunks"] == [1, 4]
    assert "stateful variant" in section["note"] and "classifier.onnx" in section["note"]
    assert section["ports"]["initial_h"] == "initial_h"
    assert doc.model["path"] == str(classifier)  # the user's model, not the temporary file


def test_bench_streaming_cli_writes_every_report(classifier, tmp_path, capsys):
    out = {ext: tmp_path / f"stream.{ext}" for ext in ("json", "md", "html")}
    argv = ["bench", str(classifier), "--streaming", "--chunk", "1,3", "--runtimes", "ort-cpu",
            "--min-time", "0.001", "--min-reps", "3", "--span", "0", "--quiet", "--no-calibrate",
            "--json", str(out["json"]), "--md", str(out["md"]), "--html", str(out["html"])]
    assert main(argv) == 0
    doc = json.loads(out["json"].read_text())
    assert sorted(r["chunk"] for r in doc["results"]) == [1, 3]
    assert all(r["mode"] == "streaming" and r["per_step_ms"]["p99"] > 0 for r in doc["results"])
    assert doc["streaming"]["stateful_variant"] is True
    assert "ort-cpu" in out["md"].read_text()
    assert "Streaming latency per step" in out["html"].read_text()


def test_bench_streaming_in_worker_processes(classifier, tmp_path):
    """--processes 2: each worker wraps its runtimes to carry h and c, like this process does;
    every row pools the blocks of both workers."""
    out = tmp_path / "stream.json"
    argv = ["bench", str(classifier), "--streaming", "--chunk", "1,3", "--runtimes", "numpy",
            "--processes", "2", "--span", "0.2", "--blocks", "4", "--quiet", "--no-calibrate",
            "--no-history", "--json", str(out)]
    assert main(argv) == 0
    rows = json.loads(out.read_text())["results"]
    assert sorted(r["chunk"] for r in rows) == [1, 3]
    for row in rows:
        assert row["mode"] == "streaming" and row["per_step_ms"]["p50"] > 0
        assert {b["process"] for b in row["blocks"]} == {0, 1}


@pytest.mark.parametrize("extra, contains", [
    (["--chunk", "0"], "--chunk: 0 is below 1"),
    (["--chunk", "x"], "--chunk: 'x' is not an integer"),
    (["--inputs", "feeds.npz"], "--inputs and --streaming cannot be combined"),
])
def test_bench_streaming_bad_chunk(classifier, capsys, extra, contains):
    rc = main(["bench", str(classifier), "--streaming", "--quiet", "--no-calibrate", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and contains in err[0], err


def test_bench_streaming_a_bidirectional_model_is_one_line(tmp_path, capsys):
    path = tmp_path / "bi.onnx"
    spec = LSTMSpec(input_size=2, hidden_size=3, direction="bidirectional")
    onnx.save(build_lstm_model(LSTMWeights.random(spec)), str(path))
    rc = main(["bench", str(path), "--streaming", "--quiet", "--no-calibrate"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "bidirectional" in err[0], err


def test_run_adds_a_streaming_bench_to_its_reports(classifier, tmp_path, capsys):
    argv = ["run", "--model", str(classifier), "--out", str(tmp_path), "--runtimes", "ort-cpu",
            "--batch", "1,2", "--min-time", "0.002", "--span", "0", "--quiet"]
    assert main(argv) == 0
    (folder,) = tmp_path.iterdir()
    doc = json.loads((folder / "bench.json").read_text())
    streaming = [r for r in doc["results"] if r.get("mode") == "streaming"]
    assert [(r["runtime"], r["batch"], r["chunk"]) for r in streaming] == [("ort-cpu", 1, 1)]
    assert {r["batch"] for r in doc["results"] if r.get("mode") is None} == {1, 2}
    assert doc["streaming"]["stateful_variant"] is True
    assert "stateful variant" in doc["streaming"]["note"]


def test_stateful_variant_of_a_batch_major_layout_1_model():
    """layout=1 (X [batch, seq, I], states [batch, D, H]): checked in float64 with
    reference.run_model (onnxruntime does not run layout 1)."""
    weights = LSTMWeights.random(LSTMSpec(input_size=I, hidden_size=H, layout=1), seed=6)
    variant = stateful_variant(build_lstm_model(weights, outputs=("Y",)))
    ports, _ = stream_ports(variant)
    assert ports.layout == 1
    shape = [d.dim_param or d.dim_value
             for d in next(v for v in variant.graph.input if v.name == "initial_h")
             .type.tensor_type.shape.dim]
    assert shape == ["batch", 1, H]
    rng = np.random.default_rng(7)
    X = rng.uniform(-1, 1, (2, 4, I)).astype(np.float32)
    h0, c0 = (rng.uniform(-1, 1, (2, 1, H)).astype(np.float32) for _ in range(2))
    got = reference.run_model(variant, {"X": X, "initial_h": h0, "initial_c": c0})
    want = reference.lstm(X, weights.W, weights.R, weights.B, initial_h=h0, initial_c=c0,
                          layout=1)
    np.testing.assert_allclose(got["Y_h"], want[1], rtol=1e-12)
    np.testing.assert_allclose(got["Y_c"], want[2], rtol=1e-12)
