"""Honest plumbing (issues 19 and 22): a runtime that cannot prepare a model is a skip with the
reason, never a failure nor a float32 figure under another name.

* ort-cpu-int8: a graph onnxruntime's quantizer refuses (If branches whose LSTM weights live in
  the outer graph: its LSTM quantizer looks for them in the branch, AttributeError) is
  ``skip``, in verify and in bench; a torch export whose LSTM weights are computed at run time
  (no constant folding) is quantized nowhere, and is ``skip`` saying why.
* ort-cpu-fp16: If branches holding LSTMs convert with the rest of the model (they broke the
  session before: "Type (tensor(float)) of output arg ... does not match"); a graph that
  float16 cannot replace float32 in (Range takes no float16) is ``skip``.
* ``verify --ragged`` without ``--batch`` feeds batch 2; a model fixed at batch 1 is refused.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hostile import QUICK, assert_bad_input, run_cli
from lstm_bench.errors import RuntimeSkip
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_variants import OrtFp16Runtime, OrtInt8Runtime, to_float16
from lstm_bench.spec import LSTMSpec, LSTMWeights

HIDDEN, INPUT = 3, 2


def weights(prefix: str, seed: int) -> list:
    rng = np.random.default_rng(seed)
    shapes = {"W": (1, 4 * HIDDEN, INPUT), "R": (1, 4 * HIDDEN, HIDDEN), "B": (1, 8 * HIDDEN)}
    return [numpy_helper.from_array(rng.uniform(-0.5, 0.5, shape).astype(np.float32),
                                    prefix + name) for name, shape in shapes.items()]


def if_model(path, *, weights_inside: bool):
    """A voice-activity-like model: a scalar int64 ``sr`` selects one of two If branches, each
    an LSTM over X [T, B, 2] with its own weights, held in the branch (``weights_inside``) or
    in the outer graph, as exporters write them."""
    def branch(name, seed):
        tensors = weights(name, seed)
        lstm = helper.make_node("LSTM", ["X", name + "W", name + "R", name + "B"],
                                [name + "_y", "", ""], hidden_size=HIDDEN, name=name)
        out = helper.make_tensor_value_info(name + "_y", TensorProto.FLOAT, None)
        return helper.make_graph([lstm], name, [], [out], tensors if weights_inside else []), \
            [] if weights_inside else tensors

    then_branch, then_weights = branch("a", 1)
    else_branch, else_weights = branch("b", 2)
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["rate"],
                          value=numpy_helper.from_array(np.array(16000, np.int64))),
         helper.make_node("Equal", ["sr", "rate"], ["is_16k"]),
         helper.make_node("If", ["is_16k"], ["Y"], then_branch=then_branch,
                          else_branch=else_branch)],
        "vad", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", INPUT]),
                helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        then_weights + else_weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def if_feeds(folder, sr: int = 16000):
    path = folder / "feeds.npz"
    np.savez(path, X=np.random.default_rng(0).uniform(-1, 1, (6, 2, INPUT)).astype(np.float32),
             sr=np.array(sr, np.int64))
    return path


def verdicts(path) -> dict:
    return {r["runtime"]: r for r in json.loads(path.read_text())["results"]}


# ---- the int8 quantizer ------------------------------------------------------------------

def test_a_graph_the_quantizer_refuses_is_skipped_by_verify_and_left_out_by_bench(
        tmp_path, capsys):
    model = if_model(tmp_path / "vad.onnx", weights_inside=False)
    feeds = if_feeds(tmp_path)
    rc, out, err = run_cli(capsys, "verify", model, "--runtimes", "ort-cpu,ort-cpu-int8",
                           "--inputs", feeds, "--json", tmp_path / "v.json")
    assert rc == 0, out + err
    int8 = verdicts(tmp_path / "v.json")["ort-cpu-int8"]
    assert int8["status"] == "skip", int8
    assert "quantizer cannot quantize this model: AttributeError" in int8["reason"]
    assert "skipped ort-cpu-int8: onnxruntime's quantizer" in " ".join(out.split())

    rc, out, err = run_cli(capsys, "bench", model, "--runtimes", "ort-cpu,ort-cpu-int8",
                           "--inputs", feeds, *QUICK, "--json", tmp_path / "b.json")
    assert rc == 0, out + err
    report = json.loads((tmp_path / "b.json").read_text())
    assert {row["runtime"] for row in report["results"]} == {"ort-cpu"}
    (skip,) = [s for s in report["skipped"] if s["runtime"] == "ort-cpu-int8"]
    assert skip["reason"].startswith("onnxruntime's quantizer cannot quantize this model")


def test_lstm_weights_in_if_branches_are_quantized_there(tmp_path):
    runtime = OrtInt8Runtime()
    with runtime:
        runtime.open(Model.load(if_model(tmp_path / "vad.onnx", weights_inside=True)))
    assert "2 LSTM node(s) as DynamicQuantizeLSTM" in runtime.notes()[0]
    assert runtime.settings()["quantization"]["enable_subgraph"] is True


@pytest.fixture(scope="module")
def torch_exports(tmp_path_factory):
    """One torch LSTM tagger exported by TorchScript with and without constant folding."""
    import torch

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(INPUT, 8, batch_first=True)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    torch.manual_seed(0)
    module, folder = Tagger().eval(), tmp_path_factory.mktemp("torch")
    paths = {}
    for folded in (True, False):
        paths[folded] = folder / f"tagger_{'folded' if folded else 'unfolded'}.onnx"
        torch.onnx.export(module, (torch.randn(1, 5, INPUT),), str(paths[folded]), dynamo=False,
                          do_constant_folding=folded, input_names=["x"],
                          dynamic_axes={"x": {0: "batch", 1: "steps"}})
    return paths


def test_an_int8_runtime_that_quantized_no_lstm_is_a_skip_that_says_why(
        torch_exports, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "verify", torch_exports[False], "--runtimes",
                           "ort-cpu,ort-cpu-int8", "--no-lstm-layer", "--seq-len", "8",
                           "--json", tmp_path / "v.json")
    assert rc == 0, out + err
    int8 = verdicts(tmp_path / "v.json")["ort-cpu-int8"]
    assert int8["status"] == "skip", int8
    assert int8["reason"].startswith("the quantizer left all 1 LSTM node(s) in float32: "
                                     "W and R are computed at run time (Unsqueeze nodes)")
    assert "do_constant_folding=False" in int8["reason"]
    # the same module folded: W and R are initializers, and quantized
    runtime = OrtInt8Runtime()
    with runtime:
        runtime.open(Model.load(torch_exports[True]))
    assert runtime.notes()[0].endswith(": 1 LSTM node(s) as DynamicQuantizeLSTM")


def test_lstm_weights_in_constant_nodes_are_named_as_the_reason():
    model = build_lstm_model(LSTMWeights.random(LSTMSpec(INPUT, HIDDEN), seed=1))
    graph = model.graph
    for tensor in list(graph.initializer):  # W, R, B as Constant nodes, as some exporters write
        graph.node.insert(0, helper.make_node("Constant", [], [tensor.name], value=tensor))
    del graph.initializer[:]
    with pytest.raises(RuntimeSkip, match="W and R are Constant nodes, not initializers"):
        OrtInt8Runtime().open(Model.built(model))


# ---- float16 -------------------------------------------------------------------------------

@pytest.mark.parametrize("inside, sr", [(False, 16000), (True, 8000)],
                         ids=["outer-weights-then", "branch-weights-else"])
def test_float16_converts_if_branches_with_the_model(tmp_path, capsys, inside, sr):
    model = if_model(tmp_path / "vad.onnx", weights_inside=inside)
    rc, out, err = run_cli(capsys, "verify", model, "--runtimes", "ort-cpu-fp16",
                           "--inputs", if_feeds(tmp_path, sr), "--json", tmp_path / "v.json")
    assert rc == 0, out + err
    assert verdicts(tmp_path / "v.json")["ort-cpu-fp16"]["status"] == "pass"


def test_float16_with_float32_io_reaches_into_the_branches(tmp_path):
    import onnxruntime

    from lstm_bench.reference import run_model

    proto = onnx.load(str(if_model(tmp_path / "vad.onnx", weights_inside=False)))
    kept = to_float16(proto, keep_io=True)
    feeds = {"X": np.random.default_rng(1).uniform(-1, 1, (4, 1, INPUT)).astype(np.float32),
             "sr": np.array(16000, np.int64)}
    session = onnxruntime.InferenceSession(kept.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (y,) = session.run(None, feeds)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, run_model(proto, feeds)["Y"], atol=5e-3)


def test_a_graph_float16_cannot_express_is_a_skip():
    """Range takes no float16: a float Range (positions added to the LSTM's Y) cannot become
    float16, and ort-cpu-fp16 says so instead of failing."""
    model = build_lstm_model(LSTMWeights.random(LSTMSpec(INPUT, HIDDEN), seed=1), outputs=("Y",))
    graph = model.graph
    graph.output[0].name = "Y_positioned"
    for name, value in (("start", 0.0), ("limit", float(HIDDEN)), ("delta", 1.0)):
        graph.node.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
            np.array(value, np.float32))))
    graph.node.append(helper.make_node("Range", ["start", "limit", "delta"], ["positions"]))
    graph.node.append(helper.make_node("Add", ["Y", "positions"], ["Y_positioned"]))
    with pytest.raises(RuntimeSkip, match="the float16 conversion cannot be done: .*Range"):
        OrtFp16Runtime().open(Model.built(model))


# ---- --ragged without --batch --------------------------------------------------------------

def lengths_model(path, batch=None):
    """One LSTM with a sequence_lens input; ``batch``: the batch it fixes (None: dynamic)."""
    model = build_lstm_model(LSTMWeights.random(LSTMSpec(INPUT, HIDDEN), seed=3),
                             sequence_lens=True)
    if batch is not None:
        for value, axis in (("X", 1), ("sequence_lens", 0)):
            (dims,) = [v.type.tensor_type.shape.dim for v in model.graph.input if v.name == value]
            dims[axis].Clear()
            dims[axis].dim_value = batch
    onnx.save(model, str(path))
    return path


def test_ragged_without_batch_feeds_the_smallest_batch_that_can_be_ragged(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "verify", lengths_model(tmp_path / "m.onnx"), "--ragged",
                           "--zero-length", "--runtimes", "ort-cpu", "--seq-len", "6",
                           "--json", tmp_path / "v.json")
    assert rc == 0, out + err
    fed = json.loads((tmp_path / "v.json").read_text())["inputs"]
    assert fed["batch"] == 2
    (lengths,) = fed["lengths"].values()
    assert sorted(lengths) == [0, 6]


def test_ragged_on_a_model_fixed_at_batch_1_is_refused_saying_why(tmp_path, capsys):
    assert_bad_input(run_cli(capsys, "verify", lengths_model(tmp_path / "m.onnx", batch=1),
                             "--ragged", "--runtimes", "ort-cpu"),
                     "--ragged needs a batch of at least 2", "fixed batch of 1")
