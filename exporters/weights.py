"""Raw weights (``LSTMWeights``) straight to a one-node ONNX LSTM graph with ``onnx.helper``.

This exposes every part of the operator (peepholes, clip, input_forget, activations with
alpha/beta, layout, sequence_lens, initial states) for opsets 7, 14 and 22, and is how the suite
builds test models that no framework exports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import atomic_path
from lstm_bench.spec import LSTMWeights

SUPPORTED_OPSETS = (7, 14, 22)
_DTYPES = {"float32": 1, "float16": 10, "float64": 11}  # TensorProto codes


def build_lstm_model(weights: LSTMWeights, *, opset: int = 22, sequence_lens: bool = False,
                     initial_states: bool = False, outputs=("Y", "Y_h", "Y_c"),
                     dtype: str = "float32"):
    """A ModelProto with one LSTM node; X's batch and sequence axes are dynamic."""
    import onnx
    from onnx import helper, numpy_helper

    spec = weights.spec
    if opset not in SUPPORTED_OPSETS:
        raise LSTMBenchError(f"opset {opset} is not supported; choose one of {SUPPORTED_OPSETS}")
    if spec.layout and opset < 14:
        raise LSTMBenchError(f"layout=1 needs opset 14 or later, got opset {opset}")
    if dtype not in _DTYPES:
        raise LSTMBenchError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    unknown = set(outputs) - {"Y", "Y_h", "Y_c"}
    if unknown or not outputs:
        raise LSTMBenchError(f"outputs must be a non-empty subset of Y, Y_h, Y_c, got {list(outputs)}")
    elem = _DTYPES[dtype]
    np_dtype = np.dtype(dtype)
    D, H, I = spec.num_directions, spec.hidden_size, spec.input_size
    T, Bt = "seq_len", "batch"
    x_shape = [Bt, T, I] if spec.layout else [T, Bt, I]
    state_shape = [Bt, D, H] if spec.layout else [D, Bt, H]
    y_shape = [Bt, T, D, H] if spec.layout else [T, D, Bt, H]

    graph_inputs = [helper.make_tensor_value_info("X", elem, x_shape)]
    initializers = [numpy_helper.from_array(np.asarray(v, np_dtype), name)
                    for name, v in weights.tensors().items()]
    node_inputs = ["X", "W", "R", "B" if spec.bias else ""]
    if sequence_lens:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", onnx.TensorProto.INT32, [Bt]))
    node_inputs.append("sequence_lens" if sequence_lens else "")
    for name in ("initial_h", "initial_c"):
        if initial_states:
            graph_inputs.append(helper.make_tensor_value_info(name, elem, state_shape))
        node_inputs.append(name if initial_states else "")
    node_inputs.append("P" if spec.peepholes else "")
    while node_inputs[-1] == "":
        node_inputs.pop()

    shapes = {"Y": y_shape, "Y_h": state_shape, "Y_c": state_shape}
    node_outputs = [name if name in outputs else "" for name in ("Y", "Y_h", "Y_c")]
    while node_outputs[-1] == "":
        node_outputs.pop()
    node = helper.make_node("LSTM", node_inputs, node_outputs, name=weights.name,
                            **spec.attributes())
    graph = helper.make_graph([node], "lstm", graph_inputs,
                              [helper.make_tensor_value_info(n, elem, shapes[n]) for n in outputs],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lstm-bench")
    # onnxruntime accepts IR versions up to what it knows; keep the lowest that the opset needs.
    model.ir_version = {7: 3, 14: 7, 22: 10}[opset]
    if model.ir_version < 4:  # before IR 4 every initializer must also be a graph input
        model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                           for t in initializers)
    onnx.checker.check_model(model, full_check=True)
    return model


def export_weights(weights: LSTMWeights, path: str | Path | None = None, **options):
    """Build the LSTM graph for ``weights`` (see ``build_lstm_model``) and save it to ``path``."""
    import onnx

    model = build_lstm_model(weights, **options)
    if path is not None:
        with atomic_path(path) as tmp:  # never leave a half-written model behind
            onnx.save(model, str(tmp))
    return model
