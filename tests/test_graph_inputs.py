"""Inputs from the graph: which input axis is the LSTM's batch and steps is found by shape
inference (front ends, images, packed state), an axis the graph cannot tie is asked for by
name (--shape), an input choosing If branches is asked for (--value), and --seq-len means the
steps the LSTM sees."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_bench.feeds import Given, load_inputs, make_inputs
from lstm_bench.feeds.axes import axis_map
from lstm_bench.feeds.probe import Prober, length_for
from tests.hostile import QUICK, run_cli

H = 5
RNG = np.random.default_rng(3)


def _t(name, shape, scale=0.3):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def _lstm(prefix, x, size, outputs=("", "Y_h"), extra=()):
    inits = [_t(f"{prefix}W", (1, 4 * H, size)), _t(f"{prefix}R", (1, 4 * H, H)),
             _t(f"{prefix}B", (1, 8 * H))]
    node = helper.make_node("LSTM", [x, f"{prefix}W", f"{prefix}R", f"{prefix}B", *extra],
                            [o and f"{prefix}{o}" for o in outputs], hidden_size=H)
    return node, inits


def _save(tmp_path, name, nodes, inputs, outputs, inits):
    model = helper.make_model(helper.make_graph(nodes, name, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _front_end(tmp_path):
    """Raw audio [batch, samples] -> Conv1d (window 8, hop 4) -> LSTM over the frames."""
    lstm, inits = _lstm("l", "frames", 4)
    nodes = [helper.make_node("Unsqueeze", ["audio", "one"], ["a3"]),
             helper.make_node("Conv", ["a3", "cw"], ["c"], kernel_shape=[8], strides=[4]),
             helper.make_node("Transpose", ["c"], ["frames"], perm=[2, 0, 1]), lstm,
             helper.make_node("Squeeze", ["lY_h", "zero"], ["h"])]
    inits += [_t("cw", (4, 1, 8)), numpy_helper.from_array(np.array([1], np.int64), "one"),
              numpy_helper.from_array(np.array([0], np.int64), "zero")]
    return _save(tmp_path, "front", nodes,
                 [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "samples"])],
                 [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", H])], inits)


def _image(tmp_path, height=None):
    """An image [N, 1, height, W] pooled over its height, its width the LSTM's steps (a CRNN);
    both N and W unnamed, as exporters leave them."""
    lstm, inits = _lstm("l", "cols", 1, outputs=("Y",))
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("Unsqueeze", ["m", "two"], ["m3"]),
             helper.make_node("Transpose", ["m3"], ["cols"], perm=[1, 0, 2]), lstm]
    inits.append(numpy_helper.from_array(np.array([2], np.int64), "two"))
    dims = ["", 1, height or "", ""]
    return _save(tmp_path, "image", nodes,
                 [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                 [helper.make_tensor_value_info("lY", TensorProto.FLOAT, ["", 1, "", H])], inits)


def _seq2seq(tmp_path):
    """Two sequences of their own lengths: the encoder's final state starts the decoder."""
    enc, inits = _lstm("e", "src_t", 3, outputs=("", "Y_h", "Y_c"))
    dec, more = _lstm("d", "tgt_t", 3, outputs=("Y",),
                      extra=("", "eY_h", "eY_c"))
    nodes = [helper.make_node("Transpose", ["src"], ["src_t"], perm=[1, 0, 2]), enc,
             helper.make_node("Transpose", ["tgt"], ["tgt_t"], perm=[1, 0, 2]), dec]
    return _save(tmp_path, "seq2seq", nodes,
                 [helper.make_tensor_value_info("src", TensorProto.FLOAT, ["batch", "src_len", 3]),
                  helper.make_tensor_value_info("tgt", TensorProto.FLOAT, ["batch", "tgt_len", 3])],
                 [helper.make_tensor_value_info("dY", TensorProto.FLOAT, ["", 1, "", H])],
                 inits + more)


def _branches(tmp_path):
    """A scalar int64 'sr' chooses between two LSTMs (If), as a voice-activity model's sample
    rate does."""
    def branch(tag):
        lstm, inits = _lstm(tag, "xt", 2)
        out = helper.make_tensor_value_info(f"{tag}h", TensorProto.FLOAT, [1, "batch", H])
        lstm.output[1] = f"{tag}h"
        return helper.make_graph([lstm], f"b{tag}", [], [out], inits)

    nodes = [helper.make_node("Equal", ["sr", "k"], ["is16k"]),
             helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("If", ["is16k"], ["h"], then_branch=branch("a"),
                              else_branch=branch("b"))]
    return _save(tmp_path, "branches", nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", 2]),
                  helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                 [helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "batch", H])],
                 [numpy_helper.from_array(np.array(16000, np.int64), "k")])


@pytest.fixture
def cli(capsys):
    return lambda *argv: run_cli(capsys, *argv)


def _report(cli, tmp_path, *args):
    out = tmp_path / "v.json"
    code, _, err = cli("verify", *args, "--runtimes", "ort-cpu,numpy", "--json", out)
    assert code == 0, err
    return json.loads(out.read_text())


def test_front_end_length_is_found_for_the_steps_the_lstm_sees(cli, tmp_path):
    path = _front_end(tmp_path)
    report = _report(cli, tmp_path, path, "--seq-len", "20", "--batch", "2")
    # (samples - 8) // 4 + 1 = 20 frames: 84 to 87 samples give them; the longest is fed
    assert report["inputs"]["shapes"]["audio"] == [2, 87]
    assert report["inputs"]["seq_len"] == 20
    session = ort.InferenceSession(str(path))
    assert session.run(None, {"audio": np.zeros((2, 87), np.float32)})[0].shape == (2, H)
    assert report["lstm_layer"]["seq_len"] == 20  # the layer alone at the steps it sees


def test_probe_inverts_a_strided_front_end(tmp_path):
    prober = Prober(onnx.load(_front_end(tmp_path)))
    for steps in (1, 2, 7, 100, 16000):
        length = length_for(prober, {"audio": (1, 5040)}, [("audio", 1)], 0, steps)
        assert (length - 8) // 4 + 1 == steps and (length - 7) // 4 + 1 == steps + 1


def test_unnamed_image_axes_are_tied_by_the_graph_not_by_position(tmp_path):
    # by position the width would have been the batch, and the LSTM would see 1 step
    model = onnx.load(_image(tmp_path, height=8))
    roles = axis_map(model).specs[0].roles
    assert roles == ("batch", None, None, "seq_len")
    inputs = make_inputs(model, batch=3, seq_len=12)
    assert inputs.feeds["image"].shape == (3, 1, 8, 12)


def test_an_axis_the_graph_cannot_tie_is_asked_for_by_name(cli, tmp_path):
    path = _image(tmp_path)  # the height is dynamic and pooled away: nothing ties it
    code, _, err = cli("verify", path, "--runtimes", "ort-cpu")
    assert code == 2 and err.count("\n") == 1
    assert "input 'image': axis 2" in err and "--shape image=" in err
    report = _report(cli, tmp_path, path, "--shape", "image=2x1x16x9")
    assert report["inputs"]["shapes"]["image"] == [2, 1, 16, 9]
    assert report["inputs"]["given_shapes"] == {"image": [2, 1, 16, 9]}
    assert report["inputs"]["seq_len"] == 9 and report["inputs"]["batch"] == 2
    assert {r["runtime"]: r["status"] for r in report["results"]} == {
        "ort-cpu": "pass", "numpy": "pass"}


@pytest.mark.parametrize("args, message", [
    (["--shape", "image=2x1x16"], "has rank 3; the model's input 'image' has rank 4"),
    (["--shape", "image=2x3x16x9"], "axis 1 is 3, but the model fixes it at 1"),
    (["--shape", "picture=2x1x16x9"], "--shape names ['picture']"),
    (["--shape", "image=2x1x16x9", "--shape", "image=1x1x1x1"], "more than once"),
    (["--shape", "image=2x1x16x9", "--seq-len", "5"], "fixes the sequence length at 9"),
    (["--shape", "image=2x1x16x9", "--value", "image=x"], "expected NAME=NUMBER"),
    (["--shape", "image=2x1x0x9"], "0 is below 1"),
    (["--value", "colour=1", "--shape", "image=2x1x16x9"], "--value names 'colour'"),
])
def test_bad_shapes_and_values_are_refused(cli, tmp_path, args, message):
    code, _, err = cli("verify", _image(tmp_path), "--runtimes", "ort-cpu", *args)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_given_inputs_keep_two_sequence_lengths(cli, tmp_path):
    path = _seq2seq(tmp_path)
    feeds = {"src": RNG.standard_normal((2, 7, 3)).astype(np.float32),
             "tgt": RNG.standard_normal((2, 4, 3)).astype(np.float32)}
    np.savez(tmp_path / "in.npz", **feeds)
    assert load_inputs(tmp_path / "in.npz", onnx.load(path)).seq_len == 7  # the first LSTM's
    report = _report(cli, tmp_path, path, "--inputs", tmp_path / "in.npz")
    assert report["inputs"]["shapes"] == {"src": [2, 7, 3], "tgt": [2, 4, 3]}
    # random feeds: each length gives its own LSTM --seq-len steps
    made = make_inputs(onnx.load(path), batch=2, seq_len=6).feeds
    assert made["src"].shape == made["tgt"].shape == (2, 6, 3)


def test_an_input_choosing_branches_is_never_drawn_at_random(cli, tmp_path):
    path = _branches(tmp_path)
    code, _, err = cli("bench", path, "--runtimes", "ort-cpu", *QUICK)
    assert code == 2 and "input 'sr' chooses the model's If branches" in err
    assert "compares it with 16000" in err and "--value sr=V" in err
    for sr in (16000, 8000):
        report = _report(cli, tmp_path, path, "--value", f"sr={sr}", "--seq-len", "6")
        assert report["inputs"]["values"] == {"sr": sr}
        assert {r["status"] for r in report["results"]} == {"pass"}
    model = onnx.load(path)
    fed = make_inputs(model, given=Given(values={"sr": 8000})).feeds["sr"]
    assert fed.shape == () and fed.dtype == np.int64 and fed == 8000
    code, _, err = cli("verify", path, "--value", "sr=8000.5")
    assert code == 2 and "holds int64 values" in err


def test_verify_checks_every_branch_an_input_chooses(cli, tmp_path):
    """Not given, the input is set once per branch the graph's conditions choose (the
    compared constant, and a value on the other side of it) and each run is its own report."""
    path = _branches(tmp_path)
    out = tmp_path / "v.json"
    code, stdout, err = cli("verify", path, "--runtimes", "ort-cpu", "--seq-len", "6",
                            "--no-second-shape", "--json", out)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert [r["inputs"]["values"] for r in report["reports"]] == [{"sr": 16000}, {"sr": 8000}]
    assert report["passed"] and all(r["results"][0]["status"] == "pass"
                                    for r in report["reports"])
    assert "verify runs once for each choice (sr=16000; sr=8000)" in " ".join(stdout.split())
    # each run took its own branch: the LSTM judged alone is that branch's
    assert [r["lstm_layers"][0]["label"] for r in report["reports"]] == ["LSTM ah alone",
                                                                       "LSTM bh alone"]


def test_bench_labels_rows_by_the_steps_the_lstm_sees(cli, tmp_path):
    path = _front_end(tmp_path)
    out = tmp_path / "b.json"
    code, _, err = cli("bench", path, "--runtimes", "ort-cpu", "--seq-len", "10", *QUICK,
                       "--json", out)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert {row["seq_len"] for row in report["results"]} == {10}
    assert report["model"]["inputs_fed"]["per_shape"][0]["shapes"]["audio"] == [1, 47]


@pytest.mark.parametrize("name, write, what", [
    ("m.pt2", lambda p: __import__("zipfile").ZipFile(p, "w").writestr("archive/data", "x"),
     "a zip archive"),
    ("w.npz", lambda p: np.savez(p, W=np.zeros(3)), "a zip archive"),
    ("m.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64)), "an HDF5 file"),
])
@pytest.mark.parametrize("command", ["verify", "bench"])
def test_a_source_model_is_told_to_be_exported_first(cli, tmp_path, name, write, what, command):
    path = tmp_path / name
    write(path)
    code, _, err = cli(command, path, "--no-history" if command == "bench" else "--no-streaming")
    assert code == 2 and err.count("\n") == 1, err
    assert f"not an ONNX model but {what}" in err and f"lstm-bench export {path}" in err


def _framed(tmp_path):
    """Raw audio [batch, samples] reshaped into frames of 256 samples (only whole frames run),
    an If on the signal's length (a shape read: not a value that chooses branches)."""
    lstm, inits = _lstm("l", "frames", 256)
    nodes = [helper.make_node("Reshape", ["audio", "framing"], ["f"]),
             helper.make_node("Transpose", ["f"], ["frames"], perm=[1, 0, 2]), lstm,
             helper.make_node("Squeeze", ["lY_h", "zero"], ["h"])]
    inits += [numpy_helper.from_array(np.array([0, -1, 256], np.int64), "framing"),
              numpy_helper.from_array(np.array([0], np.int64), "zero")]
    return _save(tmp_path, "framed", nodes,
                 [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "samples"])],
                 [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", H])], inits)


def test_a_front_end_that_takes_whole_frames_only_is_fed_whole_frames(cli, tmp_path):
    report = _report(cli, tmp_path, _framed(tmp_path), "--seq-len", "12", "--batch", "2")
    assert report["inputs"]["shapes"]["audio"] == [2, 12 * 256]


def test_an_if_on_an_inputs_shape_does_not_ask_for_its_value(tmp_path):
    from lstm_bench.feeds.branches import branch_inputs

    model = onnx.load(_branches(tmp_path))
    graph = model.graph
    graph.node.insert(0, helper.make_node("Shape", ["x"], ["xs"], start=1, end=2))
    graph.node[1].input[0] = "xs"  # Equal(length, 16000): the length is read, not a value
    graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([16000], np.int64), "k"))
    assert branch_inputs(model) == {}
