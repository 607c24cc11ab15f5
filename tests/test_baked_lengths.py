"""Exports that baked their example's length are caught (issue 20 item 3): verify runs the model
at a second length and batch (onnxruntime CPU) and fails the file, naming the output and the
axis, where an output does not follow its inputs; a file that takes one shape has nothing to
flag; a file whose outputs follow passes."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hostile import run_cli
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.baked import Move, findings_of
from zoo import build_baked

FLOAT = TensorProto.FLOAT


def _wrapped(path, output_dims, *, cut=None, input_dims=("seq", "batch", 2)):
    """x -> LSTM(2 -> 4) -> Y squeezed to [T, B, 4] (its first ``cut`` steps where given) as
    output y, declared ``output_dims``."""
    weights = LSTMWeights.random(LSTMSpec(2, 4), seed=0)
    inits = [numpy_helper.from_array(v, k) for k, v in weights.tensors().items()]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y"], hidden_size=4),
             helper.make_node("Squeeze", ["Y", "one"], ["steps" if cut else "y"])]
    if cut:
        inits += [numpy_helper.from_array(np.array([v], np.int64), n)
                  for n, v in (("zero", 0), ("cut", cut))]
        nodes.append(helper.make_node("Slice", ["steps", "zero", "cut", "zero"], ["y"]))
    model = helper.make_model(
        helper.make_graph(nodes, path.stem,
                          [helper.make_tensor_value_info("x", FLOAT, list(input_dims))],
                          [helper.make_tensor_value_info("y", FLOAT, list(output_dims))], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baked")
    batch_first = folder / "batch_first.onnx"
    onnx.save(build_lstm_model(LSTMWeights.random(LSTMSpec(2, 4, layout=1)), outputs=("Y",)),
              str(batch_first))
    return {**build_baked(folder),
            "follows": _wrapped(folder / "follows.onnx", ["seq", "batch", 4]),
            "declared": _wrapped(folder / "declared.onnx", [20, 1, 4]),
            "named": _wrapped(folder / "named.onnx", ["seq", "batch", 4], cut=20),
            "fixed": _wrapped(folder / "fixed.onnx", [20, 1, 4], input_dims=(20, 1, 2)),
            "batch_first": batch_first}


def _verify(capsys, tmp_path, path, *options):
    report = tmp_path / "verify.json"
    rc, out, err = run_cli(capsys, "verify", path, "--runtimes", "numpy", "--no-streaming",
                           *options, "--json", report)
    return rc, out, err, json.loads(report.read_text()) if report.exists() else None


def test_a_reshape_to_the_examples_shape_fails_the_file(files, capsys, tmp_path):
    """The issue's file: [20, 5, 5] for [100, 1, 12], every runtime agreeing with the truth."""
    rc, out, err, report = _verify(capsys, tmp_path, files["stacked_reshape_baked"])
    assert rc == 1, out + err
    assert [r["status"] for r in report["results"]] == ["pass"]
    assert report["passed"] is False
    (finding,) = report["second_shape"]["findings"]
    assert finding["output"] is None and finding["message"].startswith(
        "the model runs with 'x' [100, 1, 12] but fails with 'x' [103, 2, 12] (the LSTM's "
        "steps 100 -> 103, the batch 1 -> 2), though the file declares those axes dynamic: "
        "onnxruntime: Reshape node '/Reshape': ")
    assert report["second_shape"]["outputs"] == {"y": [[20, 5, 5], None]}
    text = " ".join(out.split())
    assert "FAIL file: the model runs with 'x' [100, 1, 12] but fails with" in text
    assert text.split(" report written to ")[0].endswith(
        "the file fails: 1 finding(s) at a second shape (above); none of the 1 runtime(s) that "
        "ran failed")


def test_a_slice_to_the_examples_length_names_the_output_and_axis(files, capsys, tmp_path):
    rc, out, _, report = _verify(capsys, tmp_path, files["stacked_slice_baked"])
    assert rc == 1
    message = ("output 'y' axis 0 stays 20 when the LSTM's steps go 100 -> 103: the export "
               "baked its example's length; re-export with dynamic axes")
    assert report["second_shape"]["findings"] == [{"output": "y", "axis": 0,
                                                   "message": message}]
    assert report["second_shape"]["outputs"] == {"y": [[20, 1, 5], [20, 2, 5]]}
    assert report["second_shape"]["checked_by"] == "onnxruntime CPU"
    assert f"FAIL file: {message}" in " ".join(out.split())
    # without the check, verify says what it said before: every runtime passed
    rc, out, _, report = _verify(capsys, tmp_path, files["stacked_slice_baked"],
                                 "--no-second-shape")
    assert rc == 0 and report["second_shape"] is None and "second shape" not in out


def test_outputs_that_follow_their_inputs_pass(files, capsys, tmp_path):
    rc, out, _, report = _verify(capsys, tmp_path, files["follows"], "--batch", "2",
                                 "--seq-len", "7")
    assert rc == 0, out
    second = report["second_shape"]
    assert second["passed"] and second["findings"] == []
    assert second["moved"] == {"the LSTM's steps": [7, 10], "the batch": [2, 3],
                               "input 'x' axis 0": [7, 10], "input 'x' axis 1": [2, 3]}
    assert second["outputs"] == {"y": [[7, 2, 4], [10, 3, 4]]}
    assert "the file at a second shape (the LSTM's steps 7 -> 10, the batch 2 -> 3; " \
           "onnxruntime CPU): every output follows its inputs" in " ".join(out.split())


def test_a_fixed_output_declaration_that_does_not_hold_is_a_finding(files, capsys, tmp_path):
    rc, _, _, report = _verify(capsys, tmp_path, files["declared"], "--seq-len", "30")
    assert rc == 1
    assert [f["message"] for f in report["second_shape"]["findings"]] == [
        "output 'y' axis 0 is 30 with 'x' [30, 1, 2], but the file declares it fixed at 20: "
        "the export wrote its example's shape into the declaration; re-export with dynamic axes, "
        "or make that dim symbolic (onnx.tools.update_model_dims)"]


def test_an_output_named_like_an_input_axis_must_be_its_size(files, capsys, tmp_path):
    rc, _, _, report = _verify(capsys, tmp_path, files["named"], "--seq-len", "30")
    assert rc == 1
    (finding,) = report["second_shape"]["findings"]
    assert (finding["output"], finding["axis"]) == ("y", 0)
    assert finding["message"].startswith(
        "output 'y' axis 0 is 20 with 'x' [30, 1, 2], where input 'x' axis 0 is 30, though "
        "the file names both 'seq' (one size)")


def test_a_file_that_takes_one_shape_has_nothing_to_flag(files, capsys, tmp_path):
    rc, out, _, report = _verify(capsys, tmp_path, files["fixed"])
    assert rc == 0, out
    second = report["second_shape"]
    assert second["moved"] == {} and second["findings"] == [] and second["checked_by"] is None
    assert "second shape" not in out


def test_shape_inference_tells_the_second_shapes_where_onnxruntime_cannot_run(
        files, capsys, tmp_path):
    """onnxruntime refuses layout = 1: the second run's shapes come from shape inference."""
    rc, out, _, report = _verify(capsys, tmp_path, files["batch_first"], "--seq-len", "5")
    assert rc == 0, out
    second = report["second_shape"]
    assert second["checked_by"] == "shape inference" and second["findings"] == []
    assert second["outputs"] == {"Y": [[1, 5, 1, 4], [2, 8, 1, 4]]}
    assert second["note"].startswith("onnxruntime CPU could not run the model: shape inference")


def test_the_time_axis_beside_the_batch_is_checked_where_the_file_names_neither():
    """[batch, time, features] with exporter-made names: the axis after the batch is time."""
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", FLOAT, ["b", "t", 3])],
        [helper.make_tensor_value_info("y", FLOAT, ["Slice_dim_0", "Slice_dim_1", 5])]))
    moves = (Move("the LSTM's steps", 100, 103, "length"), Move("the batch", 1, 2, "batch"))
    found = findings_of(model, {"x": (1, 100, 3)}, {"x": (2, 103, 3)}, {"y": (1, 20, 5)},
                        {"y": (2, 20, 5)}, moves)
    assert [(f.output, f.axis) for f in found] == [("y", 1)]
    assert found[0].message.startswith("output 'y' axis 1 stays 20 when the LSTM's steps go "
                                       "100 -> 103")
    # an axis that follows: nothing
    assert findings_of(model, {"x": (1, 100, 3)}, {"x": (2, 103, 3)}, {"y": (1, 100, 5)},
                       {"y": (2, 103, 5)}, moves) == []


def test_a_state_output_beside_the_batch_is_not_a_baked_time_axis(files, capsys, tmp_path):
    """Relu(Y_h) declared with no shape is [directions, batch, hidden]: its first axis stays 1
    as the batch moves, and that is the LSTM's directions, not a length the export baked."""
    from lstm_bench.verify.baked import Move, findings_of

    model = helper.make_model(helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R"], ["", "h"], hidden_size=4),
         helper.make_node("Relu", ["h"], ["z"])], "g",
        [helper.make_tensor_value_info("x", FLOAT, ["t", "b", 3])],
        [helper.make_tensor_value_info("z", FLOAT, None)],
        [numpy_helper.from_array(np.zeros((1, 16, 3), np.float32), "W"),
         numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R")]))
    moves = (Move("the LSTM's steps", 100, 103, "length"), Move("the batch", 1, 2, "batch"))
    assert findings_of(model, {"x": [100, 1, 3]}, {"x": [103, 2, 3]}, {"z": [1, 1, 4]},
                       {"z": [1, 2, 4]}, moves) == []
