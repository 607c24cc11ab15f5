"""Issue 18, classes 3, 4, 13 and 14 (in part): invalid models and computed sizes are bad input.

A model that breaks ONNX's rules (single static assignment, unique names, known opsets and IR,
types that agree with the operators) used to be evaluated anyway: the float64 truth took one
copy of a twice-defined W, onnxruntime another, and a correct runtime was marked fail; others
ended as a runtime's failure (exit 1). Now every model is checked as it is read, and an invalid
one is one line and exit 2 before anything runs. Sizes: external data is measured from its file
before it is read, and a value whose size is computed from the feeds is bounded before it is
allocated (see docs/safety.md, "Invalid models and computed sizes").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hostile import add_output, assert_bad_input, lstm_model, run_cli, snapshot

FAST = ["--runtimes", "numpy,ort-cpu", "--no-streaming"]
BENCH = ["--runtimes", "ort-cpu", "--span", "0", "--blocks", "1", "--min-reps", "1",
         "--max-reps", "1", "--no-calibrate", "--no-history", "--quiet"]


def _initializer(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _second_w(model):
    from onnx import numpy_helper

    w = numpy_helper.to_array(_initializer(model, "W"))
    model.graph.initializer.append(numpy_helper.from_array(w * 2, "W"))


def _constant_w(model):
    from onnx import helper, numpy_helper

    w = numpy_helper.to_array(_initializer(model, "W"))
    model.graph.node.insert(0, helper.make_node("Constant", [], ["W"],
                                                value=numpy_helper.from_array(w * 2)))


def _shadow_input(model):
    from onnx import helper

    model.graph.node.append(helper.make_node("Identity", ["Y_h"], ["X"]))


def _two_nodes_named_a(model):
    from onnx import TensorProto, helper

    model.graph.node[0].name = "a"
    model.graph.node.append(helper.make_node("Identity", ["Y_h"], ["Z"], name="a"))
    model.graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT,
                                                            [1, "batch", 3]))


def _output_twice(model):
    model.graph.output.append(model.graph.output[0])


def _opset(version):
    def edit(model):
        model.opset_import[0].version = version
    return edit


def _ir_version(version):
    def edit(model):
        model.ir_version = version
    return edit


def _int64_output(model):
    from onnx import TensorProto

    model.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64


def _attribute(name, value):
    def edit(model):
        from onnx import helper

        model.graph.node[0].attribute.append(helper.make_attribute(name, value))
    return edit


def _input_as_output(model):
    model.graph.output.append(model.graph.input[0])


def _add_of_4_values(model):  # Y_h [1, batch, 3] + 4 values: no broadcast makes them one shape
    from onnx import helper, numpy_helper

    add_output(model, "bad", [helper.make_node("Add", ["Y_h", "C"], ["bad"])],
               [numpy_helper.from_array(np.ones(4, np.float32), "C")])


INVALID = {
    "two initializers named W": (_second_w, "'W'"),
    "a Constant and an initializer both named W": (_constant_w, "'W'"),
    "a node output shadows the graph input X": (_shadow_input, "'X'"),
    "two nodes named a": (_two_nodes_named_a, "node name 'a'"),
    "an output listed twice": (_output_twice, "'Y'"),
    "opset 1": (_opset(1), "opset 1"),
    "opset 6": (_opset(6), "opset 6"),
    "opset 99": (_opset(99), "opset 99"),
    "ir_version 99": (_ir_version(99), "ir_version 99"),
    "ir_version 2": (_ir_version(2), "ir_version 2"),
    "Y_h declared int64": (_int64_output, "Inferred elem type differs"),
    "NaN activation_alpha": (_attribute("activation_alpha", [float("nan")] * 3),
                             "activation_alpha"),
    "NaN activation_beta": (_attribute("activation_beta", [0.0, float("nan"), 1.0]),
                            "activation_beta"),
    "NaN clip": (_attribute("clip", float("nan")), "clip"),
    "infinite clip": (_attribute("clip", float("inf")), "clip"),
    "a graph output that is the graph input": (_input_as_output, "'X'"),
    "an Add of shapes that cannot broadcast": (_add_of_4_values, "Incompatible dimensions"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
@pytest.mark.parametrize("command", ["verify", "bench"])
def test_an_invalid_model_is_refused_before_anything_runs(tmp_path, capsys, case, command):
    edit, named = INVALID[case]
    model = lstm_model(tmp_path / "m.onnx", edit)
    before = snapshot(tmp_path)
    result = run_cli(capsys, command, model, *(FAST if command == "verify" else BENCH))
    line = assert_bad_input(result, "m.onnx", "invalid ONNX model", named)
    assert result[1] == "", "a runtime ran (or a verdict was printed)"
    assert "Traceback" not in line and snapshot(tmp_path) == before


def test_the_checkers_reason_is_given(tmp_path, capsys):
    model = lstm_model(tmp_path / "m.onnx", _int64_output)
    assert_bad_input(run_cli(capsys, "verify", model, *FAST), "elem type")


@pytest.mark.parametrize("opset", [7, 14, 22])
def test_the_opsets_runtimes_run_are_accepted(tmp_path, capsys, opset):
    rc, out, err = run_cli(capsys, "verify", lstm_model(tmp_path / "m.onnx", _opset(opset)),
                           *FAST)
    assert rc == 0, err


def test_a_model_with_an_output_of_unknown_rank_is_still_accepted(tmp_path, capsys):
    """onnx.checker wants a shape on every graph output; onnxruntime does not, and neither did
    lstm-bench: an output whose rank is unknown is checked with its inferred shape."""
    from onnx import helper

    model = lstm_model(tmp_path / "m.onnx", lambda m: add_output(
        m, "Z", [helper.make_node("Relu", ["Y_h"], ["Z"])]))
    rc, out, err = run_cli(capsys, "verify", model, *FAST)
    assert rc == 0, err


def test_a_model_with_an_operator_of_another_domain_is_read(tmp_path):
    """An onnxruntime model with com.microsoft operators is valid ONNX (bench runs it on
    onnxruntime): the checker knows the domain is declared and leaves its operators alone."""
    from onnx import TensorProto, helper

    from lstm_bench.model import Model

    def fused(model):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        model.graph.node.append(helper.make_node("FastGelu", ["Y_h"], ["Z"],
                                                 domain="com.microsoft"))
        model.graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT,
                                                                [1, "batch", 3]))

    Model.load(lstm_model(tmp_path / "m.onnx", fused))


# --- sizes ----------------------------------------------------------------------------------

def _peak_child_rss(argv, env=None, cwd=None) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of ``lstm-bench ARGV`` in a child process."""
    # VmHWM, the high-water mark of this process image: ru_maxrss would keep the forking
    # pytest process's peak across exec
    code = ("import re, sys; from lstm_bench.cli import main; rc = main(sys.argv[1:]); "
            "sys.stderr.flush(); status = open('/proc/self/status').read(); "
            "print(re.search(r'VmHWM:\\s*(\\d+)', status).group(1), file=sys.stdout); "
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env={**os.environ, **(env or {})})
    peak = int(proc.stdout.strip().splitlines()[-1]) * 1024 if proc.stdout.strip() else 0
    return proc.returncode, proc.stderr, peak


def _external_w(folder: Path, length: bool) -> Path:
    """The LSTM model with W in ``w.bin``, its entry without a ``length`` where not
    ``length``; the file then grows to 1.5 GB (sparse: it takes no disk)."""
    import onnx
    from onnx import TensorProto

    def external(model):
        w = _initializer(model, "W")
        (folder / "w.bin").write_bytes(w.raw_data if w.raw_data else
                                       np.asarray(w.float_data, np.float32).tobytes())
        nbytes = (folder / "w.bin").stat().st_size
        w.ClearField("raw_data")
        w.ClearField("float_data")
        w.data_location = TensorProto.EXTERNAL
        entries = [("location", "w.bin"), ("offset", "0")]
        entries += [("length", str(nbytes))] if length else []
        for key, value in entries:
            entry = w.external_data.add()
            entry.key, entry.value = key, value

    path = lstm_model(folder / "m.onnx", external)
    onnx.load(str(path))  # valid as written
    with open(folder / "w.bin", "r+b") as f:
        f.truncate(1536 * 2 ** 20)
    return path


def test_external_data_without_a_length_is_measured_before_it_is_read(tmp_path):
    model = _external_w(tmp_path, length=False)
    assert os.stat(tmp_path / "w.bin").st_blocks * 512 < 2 ** 20  # sparse
    before = snapshot(tmp_path)
    rc, err, peak = _peak_child_rss(["verify", model, "--runtimes", "numpy", "--no-streaming"])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "'W'" in err and "w.bin" in err and "1.5 GiB" in err, err
    assert peak < 700 * 2 ** 20, f"peak RSS {peak / 2 ** 20:.0f} MiB: the file was read"
    assert snapshot(tmp_path) == before


def test_external_data_with_its_length_still_loads(tmp_path, capsys):
    model = _external_w(tmp_path, length=True)
    rc, out, err = run_cli(capsys, "verify", model, "--runtimes", "numpy", "--no-streaming")
    assert rc == 0, err


def _expand_by(node_type, k=10000):
    """An output of Shape(X) * k values: an Expand of a constant or a ConstantOfShape."""
    from onnx import helper, numpy_helper

    def edit(model):
        nodes = [helper.make_node("Shape", ["X"], ["s"]),
                 helper.make_node("Mul", ["s", "k"], ["s2"])]
        if node_type == "Expand":
            nodes.append(helper.make_node("Expand", ["v", "s2"], ["big"]))
        else:
            nodes.append(helper.make_node("ConstantOfShape", ["s2"], ["big"]))
        add_output(model, "big", nodes, [numpy_helper.from_array(np.array([k], np.int64), "k"),
                                         numpy_helper.from_array(np.ones(1, np.float32), "v")])
    return edit


@pytest.mark.parametrize("node_type", ["Expand", "ConstantOfShape"])
def test_a_size_computed_from_the_feeds_is_bounded_before_it_is_allocated(tmp_path, node_type):
    """X [1, 1, 2] makes an output of [500, 500, 1000] values (1 GB in float32, 2 GB as the
    float64 reference holds it): refused with one line under LSTM_BENCH_MAX_ARRAY_MB=100,
    without taking the memory."""
    model = lstm_model(tmp_path / "m.onnx", _expand_by(node_type, 500))
    before = snapshot(tmp_path)
    rc, err, peak = _peak_child_rss(["verify", model, "--runtimes", "numpy,ort-cpu",
                                     "--no-streaming", "--seq-len", "1"],
                                    env={"LSTM_BENCH_MAX_ARRAY_MB": "100"})
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "LSTM_BENCH_MAX_ARRAY_MB" in err, err
    assert peak < 1024 * 2 ** 20, f"peak RSS {peak / 2 ** 20:.0f} MiB"
    assert snapshot(tmp_path) == before


def test_bench_bounds_a_size_computed_from_the_feeds_before_a_runtime_runs(tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", "100")
    model = lstm_model(tmp_path / "m.onnx", _expand_by("ConstantOfShape"))
    assert_bad_input(run_cli(capsys, "bench", model, *BENCH, "--seq-len", "1"), "'big'",
                     "LSTM_BENCH_MAX_ARRAY_MB")


def test_bench_bounds_a_size_computed_from_given_feeds(tmp_path, capsys, monkeypatch):
    """The same bound when the feeds come from an .npz (``--inputs``), not the random
    generator: the file's shapes are propagated before a runtime runs."""
    monkeypatch.setenv("LSTM_BENCH_MAX_ARRAY_MB", "100")
    model = lstm_model(tmp_path / "m.onnx", _expand_by("ConstantOfShape"))
    import onnx

    X = onnx.load(str(model)).graph.input[0]
    dims = [d.dim_value or 1 for d in X.type.tensor_type.shape.dim]
    np.savez(tmp_path / "in.npz", **{X.name: np.zeros(dims, np.float32)})
    assert_bad_input(run_cli(capsys, "bench", model, *BENCH, "--inputs", tmp_path / "in.npz"),
                     "'big'", "LSTM_BENCH_MAX_ARRAY_MB")


def test_a_size_known_only_from_values_hits_the_memory_cap(tmp_path):
    """A shape computed from the input's values (no shape inference can know it): the float64
    evaluation's memory cap turns the allocation into one line and exit 2."""
    from onnx import TensorProto, helper, numpy_helper

    def edit(model):
        nodes = [helper.make_node("ReduceMax", ["X"], ["m"], keepdims=0),
                 helper.make_node("Abs", ["m"], ["a"]),
                 helper.make_node("Add", ["a", "one"], ["a1"]),
                 helper.make_node("Mul", ["a1", "k"], ["f"]),
                 helper.make_node("Cast", ["f"], ["n"], to=TensorProto.INT64),
                 helper.make_node("Reshape", ["n", "one_dim"], ["s"]),
                 helper.make_node("ConstantOfShape", ["s"], ["big"])]
        add_output(model, "big", nodes, [
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(np.array(7.5e8, np.float32), "k"),  # 6 GB
            numpy_helper.from_array(np.array([1], np.int64), "one_dim")])

    model = lstm_model(tmp_path / "m.onnx", edit)
    rc, err, peak = _peak_child_rss(["verify", model, "--runtimes", "numpy", "--no-streaming"],
                                    env={"LSTM_BENCH_MAX_ARRAY_MB": "100"})
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "memory" in err and "LSTM_BENCH_MAX_ARRAY_MB" in err, err
    assert peak < 2048 * 2 ** 20, f"peak RSS {peak / 2 ** 20:.0f} MiB"


def test_the_memory_cap_is_lifted_after_the_evaluation(tmp_path):
    import resource

    from lstm_bench import reference

    before = resource.getrlimit(resource.RLIMIT_AS)
    x = np.zeros((2, 1, 2), np.float32)
    assert set(reference.run_model(lstm_model(tmp_path / "m.onnx"), {"X": x})) == {"Y", "Y_h",
                                                                                 "Y_c"}
    assert resource.getrlimit(resource.RLIMIT_AS) == before


# --- input dimensions -------------------------------------------------------------------

def _dim(axis, value):
    def edit(model):
        dim = model.graph.input[0].type.tensor_type.shape.dim[axis]
        dim.Clear()
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = value
    return edit


@pytest.mark.parametrize("axis, value", [(2, 0), (2, -3), (2, "features"), (1, 0), (1, -3),
                                         (0, 0), (0, -1)])
def test_a_zero_or_negative_input_dimension_blames_the_input(tmp_path, capsys, axis, value):
    model = lstm_model(tmp_path / "m.onnx", _dim(axis, value))
    line = assert_bad_input(run_cli(capsys, "verify", model, *FAST), "'X'", f"axis {axis}")
    assert "W has shape" not in line and "'Y" not in line, line


def test_a_graph_output_that_is_an_input_runs_on_torch(tmp_path):
    """Valid ONNX (a pass-through output) and refused by lstm-bench as a model to verify, but
    the torch adapter no longer fails on it with KeyError: 'X' where it meets one."""
    pytest.importorskip("torch")
    from lstm_bench.exporters.weights import build_lstm_model
    from lstm_bench.model import Model
    from lstm_bench.runtimes.torch_rt import TorchRuntime
    from lstm_bench.spec import LSTMSpec, LSTMWeights

    proto = build_lstm_model(LSTMWeights.random(LSTMSpec(2, 3), seed=1), outputs=("Y_h",))
    proto.graph.output.append(proto.graph.input[0])
    runtime = TorchRuntime()
    x = np.ones((4, 1, 2), np.float32)
    with runtime:
        runtime.open(Model.built(proto))
        outputs = runtime.run({"X": x})
    assert set(outputs) == {"Y_h", "X"} and np.array_equal(outputs["X"], x)

