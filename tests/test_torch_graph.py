"""torch-cpu runs the whole ONNX graph in torch (``runtimes.onnx_torch``, issue 22): every
translated operator against onnxruntime, fed and with its other inputs constant, the control
flow, the shapes computed once per set of feed shapes, and an operator it does not translate as
a skip that names it, never the Python evaluator."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_bench.errors import RuntimeSkip
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import get_runtime
from lstm_bench.spec import LSTMSpec, LSTMWeights

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

rng = np.random.default_rng(0)
f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
i64 = lambda *values: np.array(values, np.int64)  # noqa: E731
X = f32(2, 3, 4)
IMAGE = f32(1, 2, 5, 6)

# (id, op, inputs (None: absent), attributes, opset, outputs)
CASES = [
    ("Add", "Add", [X, f32(4)], {}, 18, 1), ("Sub", "Sub", [X, X], {}, 18, 1),
    ("Mul", "Mul", [X, f32(3, 1)], {}, 18, 1), ("Div", "Div", [X, f32(4) + 3], {}, 18, 1),
    ("Div-int", "Div", [i64(7, -7, 9), i64(2, 2, -4)], {}, 18, 1),
    ("Pow", "Pow", [np.abs(X), f32(4)], {}, 18, 1),
    ("Mod", "Mod", [i64(7, -7, 9), i64(3, 3, -4)], {}, 18, 1),
    ("Mod-fmod", "Mod", [X, f32(4) + 3], {"fmod": 1}, 18, 1),
    ("Max", "Max", [X, f32(4), f32(3, 4)], {}, 18, 1), ("Min", "Min", [X, f32(4)], {}, 18, 1),
    ("Sum", "Sum", [X, X, f32(4)], {}, 18, 1), ("Mean", "Mean", [X, f32(4)], {}, 18, 1),
    ("Equal", "Equal", [i64(1, 2, 3), i64(1, 0, 3)], {}, 18, 1),
    ("Less", "Less", [X, f32(4)], {}, 18, 1), ("LessOrEqual", "LessOrEqual", [X, X], {}, 18, 1),
    ("Greater", "Greater", [X, f32(4)], {}, 18, 1),
    ("GreaterOrEqual", "GreaterOrEqual", [X, X], {}, 18, 1),
    ("And", "And", [X > 0, X < 1], {}, 18, 1), ("Or", "Or", [X > 0, X < -1], {}, 18, 1),
    ("Xor", "Xor", [X > 0, X < 1], {}, 18, 1), ("Not", "Not", [X > 0], {}, 18, 1),
    ("Where", "Where", [X > 0, X, f32(4)], {}, 18, 1),
    *[(op, op, [X], {}, 18, 1) for op in (
        "Sigmoid", "Tanh", "Relu", "Exp", "Neg", "Abs", "Floor", "Ceil", "Round", "Erf",
        "Sign", "Sin", "Cos", "Tan", "Atan", "Softplus", "Softsign", "HardSwish", "Mish",
        "Identity", "IsNaN", "IsInf")],
    ("Log", "Log", [np.abs(X) + 0.1], {}, 18, 1), ("Sqrt", "Sqrt", [np.abs(X)], {}, 18, 1),
    ("Reciprocal", "Reciprocal", [X + 5], {}, 18, 1),
    ("PRelu", "PRelu", [X, f32(4)], {}, 18, 1),
    ("HardSigmoid", "HardSigmoid", [X], {"alpha": 0.3}, 18, 1),
    ("LeakyRelu", "LeakyRelu", [X], {"alpha": 0.2}, 18, 1), ("Elu", "Elu", [X], {}, 18, 1),
    ("Selu", "Selu", [X], {}, 18, 1), ("ThresholdedRelu", "ThresholdedRelu", [X], {}, 18, 1),
    ("Gelu", "Gelu", [X], {"approximate": "tanh"}, 20, 1),
    ("Clip", "Clip", [X, np.array(-0.5, np.float32), np.array(0.5, np.float32)], {}, 18, 1),
    ("Clip-6", "Clip", [X], {"min": -0.5, "max": 0.5}, 6, 1),
    ("Dropout", "Dropout", [X], {}, 18, 1),
    ("Cast", "Cast", [X * 3], {"to": TensorProto.INT32}, 18, 1),
    ("CastLike", "CastLike", [X, np.zeros(1, np.float64)], {}, 18, 1),
    ("Shape", "Shape", [X], {"start": 1}, 18, 1), ("Size", "Size", [X], {}, 18, 1),
    ("Reshape", "Reshape", [X, i64(0, -1)], {}, 18, 1),
    ("Flatten", "Flatten", [X], {"axis": -1}, 18, 1),
    ("Transpose", "Transpose", [X], {"perm": [2, 0, 1]}, 18, 1),
    ("Transpose-default", "Transpose", [X], {}, 18, 1),
    ("Squeeze", "Squeeze", [f32(2, 1, 4, 1), i64(1, -1)], {}, 18, 1),
    ("Squeeze-11", "Squeeze", [f32(2, 1, 4)], {"axes": [1]}, 11, 1),
    ("Unsqueeze", "Unsqueeze", [X, i64(-1, 0)], {}, 18, 1),
    ("Unsqueeze-11", "Unsqueeze", [X], {"axes": [1]}, 11, 1),
    ("Concat", "Concat", [X, X], {"axis": -1}, 18, 1),
    ("Split", "Split", [X, i64(1, 3)], {"axis": 2}, 18, 2),
    ("Split-num", "Split", [X], {"axis": 1, "num_outputs": 2}, 18, 2),
    ("Slice", "Slice", [X, i64(-1, 0), i64(-1000, 9), i64(2, 1), i64(-1, 2)], {}, 18, 1),
    ("Slice-9", "Slice", [X], {"starts": [1], "ends": [3], "axes": [2]}, 9, 1),
    ("Gather", "Gather", [X, i64(-1, 0)], {"axis": 1}, 18, 1),
    ("Gather-scalar", "Gather", [X, np.array(-1, np.int64)], {"axis": 2}, 18, 1),
    ("GatherElements", "GatherElements", [X, np.full((2, 3, 2), -1, np.int64)],
     {"axis": 2}, 18, 1),
    ("GatherND", "GatherND", [X, i64([1, 2], [0, 0])], {}, 18, 1),
    ("ScatterElements", "ScatterElements", [X, np.zeros((2, 3, 1), np.int64), f32(2, 3, 1)],
     {"axis": 2}, 18, 1),
    ("ScatterND", "ScatterND", [X, i64([1, 2]), f32(1, 4)], {}, 18, 1),
    ("Expand", "Expand", [f32(3, 1), i64(2, 1, 4)], {}, 18, 1),
    ("Tile", "Tile", [X, i64(1, 2, 1)], {}, 18, 1),
    ("ConstantOfShape", "ConstantOfShape", [i64(2, 3)],
     {"value": numpy_helper.from_array(np.array([7], np.int64))}, 18, 1),
    ("Range", "Range", [np.array(1.0, np.float32), np.array(9.0, np.float32),
                        np.array(2.5, np.float32)], {}, 18, 1),
    ("CumSum", "CumSum", [X, np.array(1, np.int64)], {"exclusive": 1, "reverse": 1}, 18, 1),
    ("OneHot", "OneHot", [i64(0, 2, -1), np.array(3, np.int64), np.array([0, 5], np.float32)],
     {"axis": 0}, 18, 1),
    ("TopK", "TopK", [X, i64(2)], {"axis": 1, "largest": 0}, 18, 2),
    ("NonZero", "NonZero", [X > 0], {}, 18, 1),
    ("Pad", "Pad", [X, i64(0, 1, 2, 0, 0, 1), np.array(1.5, np.float32)], {}, 18, 1),
    ("Pad-edge", "Pad", [X, i64(0, 1, 2, 0, 0, 1)], {"mode": "edge"}, 18, 1),
    ("Pad-reflect", "Pad", [X, i64(0, 2, 1, 0, 1, 2)], {"mode": "reflect"}, 18, 1),
    ("ReverseSequence", "ReverseSequence", [X, np.array([3, 1], np.int64)],
     {"batch_axis": 0, "time_axis": 1}, 18, 1),
    ("Einsum", "Einsum", [X, f32(4, 5)], {"equation": "bti,ij->btj"}, 18, 1),
    ("Gemm", "Gemm", [f32(4, 3), f32(4, 5), f32(5)], {"transA": 1, "alpha": 0.5, "beta": 2.0},
     18, 1),
    ("Gemm-linear", "Gemm", [f32(3, 4), f32(5, 4), f32(5)], {"transB": 1}, 18, 1),
    ("MatMul", "MatMul", [X, f32(4, 5)], {}, 18, 1),
    ("Conv", "Conv", [IMAGE, f32(4, 1, 3, 2), f32(4)],
     {"pads": [1, 0, 0, 1], "strides": [2, 1], "group": 2}, 18, 1),
    ("Conv-same", "Conv", [IMAGE, f32(3, 2, 3, 3)], {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
     18, 1),
    ("Conv1d", "Conv", [X, f32(2, 3, 2)], {"dilations": [2]}, 18, 1),
    ("MaxPool", "MaxPool", [IMAGE], {"kernel_shape": [2, 3], "pads": [1, 1, 0, 1]}, 18, 1),
    ("AveragePool", "AveragePool", [IMAGE], {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1],
                                            "strides": [2, 2]}, 18, 1),
    ("GlobalAveragePool", "GlobalAveragePool", [IMAGE], {}, 18, 1),
    ("GlobalMaxPool", "GlobalMaxPool", [IMAGE], {}, 18, 1),
    ("BatchNormalization", "BatchNormalization",
     [IMAGE, f32(2), f32(2), f32(2), np.abs(f32(2)) + 0.5], {}, 15, 1),
    ("InstanceNormalization", "InstanceNormalization", [IMAGE, f32(2), f32(2)], {}, 18, 1),
    ("LayerNormalization", "LayerNormalization", [X, f32(3, 4), f32(3, 4)], {"axis": 1}, 18, 1),
    ("MeanVarianceNormalization", "MeanVarianceNormalization", [IMAGE], {}, 18, 1),
    ("Softmax", "Softmax", [X], {"axis": 1}, 18, 1), ("Softmax-11", "Softmax", [X], {}, 11, 1),
    ("LogSoftmax", "LogSoftmax", [X], {}, 18, 1), ("Hardmax", "Hardmax", [X], {}, 18, 1),
    ("ReduceMean", "ReduceMean", [X, i64(-1, 0)], {}, 18, 1),
    ("ReduceMean-13", "ReduceMean", [X], {"axes": [1], "keepdims": 0}, 13, 1),
    ("ReduceSum", "ReduceSum", [X, i64(1)], {"keepdims": 0}, 13, 1),
    ("ReduceSum-all", "ReduceSum", [X], {}, 13, 1),
    *[(op, op, [X, i64(2)], {}, 18, 1) for op in (
        "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL2",
        "ReduceLogSumExp")],
    ("ArgMax", "ArgMax", [np.round(X)], {"axis": 2, "select_last_index": 1}, 18, 1),
    ("ArgMin", "ArgMin", [X], {"axis": 1, "keepdims": 0}, 18, 1),
    ("DequantizeLinear", "DequantizeLinear",
     [np.array([[0, 100], [200, 255]], np.uint8), np.array(0.5, np.float32),
      np.array(128, np.uint8)], {}, 18, 1),
]


def _model(op, inputs, attrs, opset, outputs, constant_from: int):
    """One node; the inputs from position ``constant_from`` on are initializers."""
    names = [f"in{i}" if value is not None else "" for i, value in enumerate(inputs)]
    feeds = {n: v for i, (n, v) in enumerate(zip(names, inputs)) if n and i < constant_from}
    inits = [numpy_helper.from_array(v, n) for i, (n, v) in enumerate(zip(names, inputs))
             if n and i >= constant_from]
    outs = [f"out{k}" for k in range(outputs)]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype),
                                                    v.shape) for n, v in feeds.items()],
        [onnx.ValueInfoProto(name=o) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model, feeds


def _torch_cpu(model) -> object:
    runtime = get_runtime("torch-cpu")
    runtime.open(Model.built(model), threads=1)
    return runtime


# every case fed, and those with more inputs than one with all but the first constant (the
# shapes, axes, indices known when the graph is read: the path exports take)
RUNS = [(case, constant_from) for case in CASES for constant_from in (99, 1)
        if constant_from == 99 or len(case[2]) > 1]


@pytest.mark.parametrize("case,constant_from", RUNS, ids=[
    f"{case[0]}-{'fed' if constant_from == 99 else 'constants'}" for case, constant_from in RUNS])
def test_each_operator_agrees_with_onnxruntime(case, constant_from):
    _, op, inputs, attrs, opset, outputs = case
    model, feeds = _model(op, inputs, attrs, opset, outputs, constant_from)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)
    with _torch_cpu(model) as runtime:
        for _ in range(2):  # the first call with these shapes, then the kept plan
            got = runtime.run(feeds)
            for k, expected in enumerate(want):
                value = got[f"out{k}"]
                assert value.dtype == expected.dtype and value.shape == expected.shape, op
                np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5, err_msg=op)


def test_every_translated_operator_is_tested():
    from lstm_bench.runtimes.onnx_torch import OPS

    covered = {c[1] for c in CASES} | {"LSTM", "If", "Loop", "Scan", "Scatter"}
    assert set(OPS) <= covered, sorted(set(OPS) - covered)


def _cell_with(extra_node, extra_inputs=()):
    """X -> Relu -> (a node torch-cpu does not translate) -> Y."""
    nodes = [helper.make_node("Relu", ["X"], ["r"]), extra_node]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, [2, 3, 4]), *extra_inputs],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                   helper.make_opsetid("com.microsoft", 1)])


def test_an_operator_without_a_translation_is_a_skip_naming_it():
    fast_gelu = helper.make_node("FastGelu", ["r"], ["Y"], domain="com.microsoft")
    with pytest.raises(RuntimeSkip, match=r"torch-cpu: no torch translation for "
                                          r"com\.microsoft\.FastGelu"):
        _torch_cpu(_cell_with(fast_gelu))
    gru = helper.make_node("GRU", ["r", "W", "R"], ["", "Y"], hidden_size=2)
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
              for n, s in (("W", [1, 6, 4]), ("R", [1, 6, 2]))]
    with pytest.raises(RuntimeSkip, match="no torch translation for GRU"):
        _torch_cpu(_cell_with(gru, inputs))
    # a form of an operator it has: the node is named
    to_string = helper.make_node("Cast", ["r"], ["Y"], to=TensorProto.STRING, name="as_text")
    with pytest.raises(RuntimeSkip, match="no torch translation for Cast \\(node 'as_text'\\): "
                                          "data type 8"):
        _torch_cpu(_cell_with(to_string))


def test_verify_and_bench_report_the_skip_with_the_operator(tmp_path):
    """An LSTM followed by Celu (onnxruntime and the truth compute it, torch-cpu has no
    translation): a skip naming Celu in verify and in bench, the others still judged."""
    from lstm_bench.bench.harness import Settings, Subject, sweep
    from lstm_bench.feeds import make_inputs
    from lstm_bench.runtimes.registry import make_factories
    from lstm_bench.verify.run import Truth, verify_runtime

    model = build_lstm_model(LSTMWeights.random(LSTMSpec(2, 3), seed=1), outputs=("Y_h",))
    model.graph.node.append(helper.make_node("Celu", ["Y_h"], ["Z"]))
    model.graph.output[0].name = "Z"
    path = tmp_path / "celu.onnx"
    onnx.save(model, str(path))
    loaded = Model.load(path)
    truth = Truth.of(loaded, make_inputs(loaded.proto, batch=2, seq_len=5, seed=0))
    verdict = verify_runtime(get_runtime("torch-cpu"), truth)
    assert verdict.status == "skip" and "no torch translation for Celu" in verdict.reason
    assert verify_runtime(get_runtime("ort-cpu"), truth).status == "pass"
    # bench leaves it out with the same reason (its harness, in this process)
    loaded = Model.load(path)
    (result,) = sweep([Subject(loaded, lambda b, t: loaded.feeds(b, t))],
                      make_factories(["torch-cpu"]), [(1, 4)], [1], Settings(span=0, blocks=1))
    assert not result.measurements
    (skip,) = result.skipped
    assert skip["runtime"] == "torch-cpu" and "no torch translation for Celu" in skip["reason"]


def test_no_python_evaluator_runs_in_a_call(monkeypatch, tmp_path):
    """The seed's export shape (Shape/Expand/Slice around the LSTM, Gather, Gemm, Sigmoid):
    onnx's ReferenceEvaluator is never made or run, before or during the calls."""
    import onnx.reference

    def refuse(*args, **kwargs):
        raise AssertionError("onnx's ReferenceEvaluator was used")

    monkeypatch.setattr(onnx.reference.ReferenceEvaluator, "__init__", refuse)
    model, feeds_for = _seed_like()
    with _torch_cpu(model) as runtime:
        for batch, steps in ((1, 7), (3, 5), (1, 7)):
            feeds = feeds_for(batch, steps)
            session = ort.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            (want,) = session.run(None, feeds)
            np.testing.assert_allclose(runtime.run(feeds)["p"], want, rtol=1e-5, atol=1e-6)
        assert len(runtime.program.bound) == 2  # the shapes' arithmetic, once per shape


def _seed_like():
    """torch's dynamo export of the seed, in miniature: zeros of the fed batch as the initial
    state (Shape, Concat, Expand, Slice), the LSTM, the last Y_h (Gather), Gemm, Sigmoid."""
    weights = LSTMWeights.random(LSTMSpec(1, 5), seed=3)
    lstm = build_lstm_model(weights)
    inits = [t for t in lstm.graph.initializer] + [
        numpy_helper.from_array(f32(1, 5), "dense_w"), numpy_helper.from_array(f32(1), "dense_b"),
        numpy_helper.from_array(np.zeros((1, 1, 5), np.float32), "zero"),
        numpy_helper.from_array(i64(1), "one"), numpy_helper.from_array(i64(5), "five"),
        numpy_helper.from_array(i64(0), "z0"), numpy_helper.from_array(i64(0, 0), "z00"),
        numpy_helper.from_array(np.array(0, np.int64), "first")]
    W, R, B = (t.name for t in lstm.graph.initializer[:3])
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], start=0, end=1),
        helper.make_node("Concat", ["one", "shape", "five"], ["state_shape"], axis=0),
        helper.make_node("Expand", ["zero", "state_shape"], ["zeros"]),
        helper.make_node("Slice", ["zeros", "z0", "one", "z0"], ["h0"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("LSTM", ["xt", W, R, B, "", "h0", "h0"], ["", "h"], hidden_size=5),
        helper.make_node("Gather", ["h", "first"], ["last"], axis=0),
        helper.make_node("Gemm", ["last", "dense_w", "dense_b"], ["logit"], transB=1),
        helper.make_node("Sigmoid", ["logit"], ["p"])]
    graph = helper.make_graph(nodes, "seed", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["batch", "seq", 1])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model, lambda batch, steps: {"x": f32(batch, steps, 1)}


def test_a_value_kept_across_calls_is_handed_out_as_a_copy():
    """Shape's output is computed once per shape and kept: a caller writing to what it got
    must not change the next call's answer."""
    graph = helper.make_graph([helper.make_node("Shape", ["x"], ["s"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                              [helper.make_tensor_value_info("s", TensorProto.INT64, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with _torch_cpu(model) as runtime:
        first = runtime.run({"x": f32(3)})["s"]
        first[0] = 99
        assert runtime.run({"x": f32(3)})["s"].tolist() == [3]


def _body(nodes, inputs, outputs):
    value = lambda n, t: helper.make_tensor_value_info(n, t, [] if t != 1 else None)  # noqa
    return helper.make_graph(nodes, "body", [value(n, t) for n, t in inputs],
                             [value(n, t) for n, t in outputs])


def test_loop_and_scan_with_outer_values_agree_with_onnxruntime():
    """A Loop (trip count fed, a scan output, a value of the outer graph read in the body)
    and a Scan (reverse input, a state) beside it."""
    F, I, Bo = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    loop_body = _body([helper.make_node("Identity", ["cond"], ["cond_out"]),
                       helper.make_node("Mul", ["acc", "scale"], ["acc_out"]),
                       helper.make_node("Add", ["acc_out", "acc_out"], ["doubled"])],
                      [("i", I), ("cond", Bo), ("acc", F)],
                      [("cond_out", Bo), ("acc_out", F), ("doubled", F)])
    scan_body = _body([helper.make_node("Add", ["s", "row"], ["s_out"]),
                       helper.make_node("Tanh", ["s_out"], ["y"])],
                      [("s", F), ("row", F)], [("s_out", F), ("y", F)])
    nodes = [helper.make_node("Loop", ["trips", "", "x0"], ["acc", "steps"], body=loop_body),
             helper.make_node("Scan", ["s0", "seq"], ["s", "ys"], body=scan_body,
                              num_scan_inputs=1, scan_input_directions=[1])]
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("trips", I, []),
        helper.make_tensor_value_info("x0", F, [3]),
        helper.make_tensor_value_info("scale", F, [3]),
        helper.make_tensor_value_info("s0", F, [4]),
        helper.make_tensor_value_info("seq", F, ["t", 4])],
        [helper.make_tensor_value_info(n, F, None) for n in ("acc", "steps", "s", "ys")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    feeds = {"trips": np.array(3, np.int64), "x0": f32(3), "scale": f32(3), "s0": f32(4),
             "seq": f32(5, 4)}
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    with _torch_cpu(model) as runtime:
        got = runtime.run(feeds)
    for name, expected in zip(("acc", "steps", "s", "ys"), want):
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)


def _two_layers(y_is_output: bool):
    """LSTM -> Squeeze(axis 1) -> LSTM, each layer's state fed and returned, as torch exports
    nn.LSTM(num_layers=2) with its state; ``y_is_output``: the first layer's Y is read too."""
    H = 5
    inits, nodes = [], []
    for k, size in enumerate((3, H)):
        for name, shape in (("W", (1, 4 * H, size)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H))):
            inits.append(numpy_helper.from_array(f32(*shape) * 0.5, f"{name}{k}"))
    inits.append(numpy_helper.from_array(i64(1), "axis1"))
    nodes += [helper.make_node("LSTM", ["x", "W0", "R0", "B0", "", "h0", "c0"],
                               ["y0", "hn0", "cn0"], hidden_size=H, name="layer0"),
              helper.make_node("Squeeze", ["y0", "axis1"], ["x1"]),
              helper.make_node("LSTM", ["x1", "W1", "R1", "B1", "", "h1", "c1"],
                               ["y1", "hn1", "cn1"], hidden_size=H, name="layer1")]
    state = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "b", H])  # noqa
    outputs = ["y1", "hn0", "cn0", "hn1", "cn1"] + ["y0"] * y_is_output
    graph = helper.make_graph(
        nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", 3]),
                         *(state(n) for n in ("h0", "c0", "h1", "c1"))],
        [onnx.ValueInfoProto(name=n) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    feeds = {"x": f32(6, 2, 3), **{n: f32(1, 2, H) for n in ("h0", "c0", "h1", "c1")}}
    return model, feeds


@pytest.mark.parametrize("y_is_output", [False, True], ids=["fused", "first-Y-read"])
def test_stacked_layers_run_as_one_multi_layer_lstm(y_is_output):
    """As the native nn.LSTM(num_layers=2) runs them (one call, not one per layer), with every
    layer's state in and out; not where the first layer's Y is read elsewhere."""
    model, feeds = _two_layers(y_is_output)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    with _torch_cpu(model) as runtime:
        got = runtime.run(feeds)
        steps = [fn.__qualname__ for fn, *_ in runtime.program.steps]
        assert runtime.paths == {"layer0": "nn.LSTM", "layer1": "nn.LSTM"}
    assert sum("fused_lstm" in s for s in steps) == (0 if y_is_output else 1), steps
    for output, expected in zip(model.graph.output, want):
        np.testing.assert_allclose(got[output.name], expected, rtol=1e-5, atol=1e-6,
                                   err_msg=output.name)
