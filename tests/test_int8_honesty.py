"""Honest int8 (issue 22, item 5): ``ort-cpu-int8`` on a model whose LSTM nodes the quantizer
leaves in float32 is a skip that says so, however many other weights (a large Dense head) it
made int8: a row of that model would time float32 LSTMs under an int8 name. Real onnxruntime
quantizer; nothing faked."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_bench.errors import RuntimeSkip
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_variants import OrtInt8Runtime
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.run import Truth, verify_runtime
from lstm_bench.feeds import make_inputs

INPUT, HIDDEN, HEAD = 4, 8, 64


def lstm_with_a_big_head(*, lstm_weights_computed: bool):
    """X -> LSTM(8) -> Y_h -> MatMul(8 x 64) -> MatMul(64 x 64): the head holds 4,608 weights,
    the LSTM's R 256. ``lstm_weights_computed``: W and R come out of an Identity node at run
    time (an export without constant folding), which the quantizer cannot quantize."""
    model = build_lstm_model(LSTMWeights.random(LSTMSpec(INPUT, HIDDEN), seed=1),
                             outputs=("Y", "Y_h"))
    graph = model.graph
    if lstm_weights_computed:
        lstm = graph.node[0]
        for index in (1, 2):
            name = lstm.input[index]
            graph.node.insert(0, helper.make_node("Identity", [name], [f"{name}_computed"]))
            lstm.input[index] = f"{name}_computed"
    rng = np.random.default_rng(0)
    graph.initializer.extend([
        numpy_helper.from_array(rng.uniform(-0.3, 0.3, (HIDDEN, HEAD)).astype(np.float32), "head1"),
        numpy_helper.from_array(rng.uniform(-0.3, 0.3, (HEAD, HEAD)).astype(np.float32), "head2")])
    graph.node.extend([helper.make_node("MatMul", ["Y_h", "head1"], ["hidden1"]),
                       helper.make_node("MatMul", ["hidden1", "head2"], ["logits"])])
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                      [1, "batch", HEAD]))
    return model


def test_no_lstm_quantized_is_a_skip_even_when_the_head_went_int8():
    model = lstm_with_a_big_head(lstm_weights_computed=True)
    runtime = OrtInt8Runtime()
    with pytest.raises(RuntimeSkip, match="left all 1 LSTM node.s. in float32") as caught:
        runtime.open(Model.built(model))
    assert "int8 row would time float32 LSTMs" in str(caught.value)
    assert runtime.coverage.quantized == 0 and runtime.coverage.int8_values >= HEAD * HEAD
    truth = Truth.of(Model.built(model), make_inputs(model, batch=2, seq_len=6, seed=1))
    verdict = verify_runtime(OrtInt8Runtime(), truth, streaming=False)
    assert verdict.status == "skip" and not verdict.failed
    assert verdict.reason.startswith("the quantizer left all 1 LSTM node(s) in float32")


def test_the_same_model_with_lstm_weights_stored_is_quantized_for_real():
    runtime = OrtInt8Runtime()
    with runtime:
        runtime.open(Model.built(lstm_with_a_big_head(lstm_weights_computed=False)))
        assert runtime.coverage.quantized == 1 and runtime.coverage.left == 0
        assert runtime.notes()[0].endswith(": 1 LSTM node(s) as DynamicQuantizeLSTM")
