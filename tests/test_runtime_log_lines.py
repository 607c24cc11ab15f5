"""onnxruntime's own log lines never reach the terminal, and a runtime's failure is said once,
in one line."""

from __future__ import annotations

import numpy as np
import onnx
from hostile import QUICK

from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.spec import LSTMSpec, LSTMWeights


def layout_1(path):
    """A real model onnxruntime's CPU LSTM refuses (layout 1), that NumPy runs."""
    from lstm_bench.exporters.weights import export_weights

    export_weights(LSTMWeights.random(LSTMSpec(2, 3, layout=1), seed=1), path)
    return path


def failing_at_run_time(path):
    """A real model that onnxruntime loads but cannot run: Y_h [1, batch, 3] reshaped to
    [2, -1] (3 values at batch 1)."""
    from onnx import helper, numpy_helper

    model = build_lstm_model(LSTMWeights.random(LSTMSpec(2, 3), seed=1), outputs=("Y_h",))
    model.graph.initializer.append(numpy_helper.from_array(np.array([2, -1], np.int64), "shape"))
    model.graph.node.append(helper.make_node("Reshape", ["Y_h", "shape"], ["out"]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(path))
    return path


def test_a_first_run_failure_that_ends_bench_is_one_line(tmp_path, capfd):
    from lstm_bench.cli import main

    model = failing_at_run_time(tmp_path / "bad.onnx")
    rc = main(["bench", str(model), "--runtimes", "ort-cpu", *QUICK[:-1]])  # progress on
    out, err = capfd.readouterr()  # file descriptors: onnxruntime's native lines too
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "ort-cpu: first run failed: [ONNXRuntimeError]" in err
    assert "ort-cpu: ort-cpu" not in err and ":onnxruntime:" not in err and "\x1b" not in err


def test_no_onnxruntime_log_line_from_any_onnxruntime_runtime(tmp_path, capfd):
    from lstm_bench.cli import main

    model = layout_1(tmp_path / "l1.onnx")
    rc = main(["verify", str(model), "--runtimes", "ort-cpu,ort-cpu-int8,ort-cpu-fp16",
               "--no-streaming"])
    out, err = capfd.readouterr()
    assert rc == 1  # ort-cpu and ort-cpu-fp16 refuse the model: lstm-bench says so
    assert "FAIL ort-cpu: *: error = cannot load" in out
    assert "FAIL ort-cpu-fp16: *: error = cannot load the transformed model" in out
    assert "ort-cpu: cannot" not in out and "LSTMBenchError" not in out  # said once, plainly
    assert ":onnxruntime:" not in out + err and "\x1b" not in err, err
