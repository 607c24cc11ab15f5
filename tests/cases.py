"""Named LSTM models for the parity suite (and anyone who needs small, varied test models).

Names follow onnx's backend node tests where they overlap (defaults, initial_bias, peepholes,
batchwise, reverse, bidirectional). Each case says what it feeds and which runtimes are known
not to pass it, with the reason: the suite asserts those fail (so a silent fix or regression is
seen) and that every other available runtime passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from lstm_bench.bench.plan import RuntimeChoice, SweepPlan, sweep_shapes
from lstm_bench.exporters.weights import build_lstm_model, export_weights
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import RUNTIMES, make_factories
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.run import VerifyPlan, verify

# Every registered runtime is in the parity suite and the runtime tests by the registry itself;
# each declares its device, precision and LSTM support (runtimes/registry.py). Those that
# refuse layout = 1 (their ``lstm_support`` says so) are expected to fail the batchwise cases.
_NO_LAYOUT = {name: f"{name} refuses layout = 1" for name, runtime in RUNTIMES.items()
              if "layout" in runtime.lstm_support.refuses}


@dataclass(frozen=True)
class Case:
    name: str
    spec: LSTMSpec | None  # None: built by a custom function (multi-layer)
    options: dict = field(default_factory=dict)  # export_weights options
    batch: int = 2
    seq_len: int = 16
    ragged: bool = False
    zero_length: bool = False
    known_failures: dict = field(default_factory=dict)  # runtime -> why it fails this case
    layers: int = 1  # 0: the exported-classifier wrapper (wrapped_model)

    def build(self, path: str | Path, seed: int = 0):
        """Write the model to ``path``; returns the ModelProto."""
        if self.layers != 1:
            model = (wrapped_model(self.spec, seed=seed) if self.layers == 0 else
                     stacked_model(self.spec, self.layers, seed=seed, **self.options))
            onnx.save(model, str(path))
            return model
        return export_weights(LSTMWeights.random(self.spec, seed=seed, name="lstm"), path,
                              **self.options)


def stacked_model(spec: LSTMSpec, layers: int, *, seed: int = 0, **options):
    """``layers`` one-node LSTM graphs chained (Y squeezed to the next X), as torch exports them."""
    nodes, initializers, graph_inputs = [], [], None
    previous = None
    D = spec.num_directions
    for k in range(layers):
        layer_spec = spec if k == 0 else spec.replace(input_size=spec.hidden_size * D)
        part = build_lstm_model(LSTMWeights.random(layer_spec, seed=seed + k, name=f"lstm_{k}"),
                                outputs=("Y", "Y_h", "Y_c"), **options).graph
        rename = {name: f"l{k}_{name}" for name in ("W", "R", "B", "P", "Y", "Y_h", "Y_c")}
        node = part.node[0]
        for index, name in enumerate(node.input):
            if name in rename:
                node.input[index] = rename[name]
            elif index == 0 and previous is not None:
                node.input[index] = previous
        for index, name in enumerate(node.output):
            node.output[index] = rename.get(name, name)
        for tensor in part.initializer:
            tensor.name = rename[tensor.name]
        nodes.append(node)
        initializers.extend(part.initializer)
        if k == 0:
            graph_inputs = list(part.input)
        if k < layers - 1:  # Y [T,D,B,H] -> [T,B,D*H]
            nodes.append(helper.make_node("Transpose", [f"l{k}_Y"], [f"l{k}_Yt"], perm=[0, 2, 1, 3]))
            shape = helper.make_tensor(f"l{k}_shape", onnx.TensorProto.INT64, [3], [0, 0, -1])
            initializers.append(shape)
            nodes.append(helper.make_node("Reshape", [f"l{k}_Yt", f"l{k}_shape"], [f"l{k}_X"]))
            previous = f"l{k}_X"
    last = layers - 1
    H = spec.hidden_size
    outputs = [helper.make_tensor_value_info(f"l{last}_Y", 1, ["seq_len", D, "batch", H]),
               helper.make_tensor_value_info(f"l{last}_Y_h", 1, [D, "batch", H])]
    graph = helper.make_graph(nodes, "stacked_lstm", graph_inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)],
                              producer_name="lstm-bench")
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


def wrapped_model(spec: LSTMSpec, *, seed: int = 0, seq_len: int | str = "sequence_length"):
    """The shape of an exported classifier (the seed: Keras LSTM(50) + Dense(1, sigmoid)):
    x [batch_size, seq_len, I] -> Transpose -> LSTM -> Y_h -> Dense -> Sigmoid -> [batch_size, 1],
    plus the hidden sequence [batch_size, seq_len, H] as a second output."""
    H = spec.hidden_size
    part = build_lstm_model(LSTMWeights.random(spec, seed=seed, name="lstm")).graph
    lstm = part.node[0]
    lstm.input[0] = "x_tbi"
    rng = np.random.default_rng(seed + 1)
    extra = [numpy_helper.from_array(rng.uniform(-0.3, 0.3, (H, 1)).astype(np.float32), "dense_W"),
             numpy_helper.from_array(np.array([0.1], np.float32), "dense_b"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([1], np.int64), "axes1")]
    nodes = [helper.make_node("Transpose", ["x"], ["x_tbi"], perm=[1, 0, 2]), lstm,
             helper.make_node("Squeeze", ["Y_h", "axes0"], ["h_last"]),
             helper.make_node("Gemm", ["h_last", "dense_W", "dense_b"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["probability"]),
             helper.make_node("Squeeze", ["Y", "axes1"], ["Y_tbh"]),
             helper.make_node("Transpose", ["Y_tbh"], ["hidden"], perm=[1, 0, 2])]
    graph = helper.make_graph(
        nodes, "wrapped_lstm",
        [helper.make_tensor_value_info("x", 1, ["batch_size", seq_len, spec.input_size])],
        [helper.make_tensor_value_info("probability", 1, ["batch_size", 1]),
         helper.make_tensor_value_info("hidden", 1, ["batch_size", seq_len, H])],
        initializer=list(part.initializer) + extra)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)],
                              producer_name="lstm-bench")
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return model


_REF_IGNORES = "onnx's reference LSTM ignores {}"

CASES = {c.name: c for c in [
    Case("seed", LSTMSpec(1, 50), batch=1, seq_len=100),
    Case("seed_wrapped", LSTMSpec(1, 50), batch=3, seq_len=40, layers=0),
    Case("defaults", LSTMSpec(3, 8)),
    Case("initial_bias", LSTMSpec(3, 8), options={"initial_states": True}),
    Case("multi_layer", LSTMSpec(4, 8), layers=2),
    Case("bidirectional", LSTMSpec(3, 8, direction="bidirectional"),
         options={"initial_states": True}),
    Case("reverse", LSTMSpec(3, 8, direction="reverse"), options={"initial_states": True}),
    Case("batchwise", LSTMSpec(3, 8, layout=1),
         known_failures=dict(_NO_LAYOUT)),
    Case("ragged", LSTMSpec(3, 8), options={"sequence_lens": True}, batch=4, ragged=True,
         zero_length=True, known_failures={"onnx-reference": _REF_IGNORES.format("sequence_lens")}),
    Case("ragged_bidirectional", LSTMSpec(3, 8, direction="bidirectional"),
         options={"sequence_lens": True, "initial_states": True}, batch=5, ragged=True,
         zero_length=True, known_failures={"onnx-reference": _REF_IGNORES.format("sequence_lens")}),
    Case("ragged_reverse_batchwise", LSTMSpec(3, 8, direction="reverse", layout=1),
         options={"sequence_lens": True, "initial_states": True}, batch=5, ragged=True,
         zero_length=True, known_failures={
             "onnx-reference": _REF_IGNORES.format("sequence_lens"),
             **_NO_LAYOUT}),
    Case("ragged_peepholes_clip", LSTMSpec(3, 8, peepholes=True, clip=0.7, direction="reverse"),
         options={"sequence_lens": True}, batch=4, ragged=True, zero_length=True,
         known_failures={"onnx-reference": _REF_IGNORES.format("sequence_lens, clip")}),
    Case("peepholes", LSTMSpec(3, 8, peepholes=True)),
    Case("clip", LSTMSpec(3, 8, clip=0.5),
         known_failures={"onnx-reference": _REF_IGNORES.format("clip")}),
    Case("input_forget", LSTMSpec(3, 8, input_forget=1),
         known_failures={"onnx-reference": _REF_IGNORES.format("input_forget")}),
    Case("activations", LSTMSpec(3, 8, activations=("HardSigmoid", "LeakyRelu", "Softsign"),
                                 activation_alpha=(0.3, 0.1), activation_beta=(0.4,)),
         known_failures={"onnx-reference": _REF_IGNORES.format("activations")}),
    Case("streaming", LSTMSpec(1, 50), options={"initial_states": True}, batch=2, seq_len=30),
]}

# OpenVINO (runtimes/openvino_rt.py), measured with 2026.4.1: what it gets wrong, by case.
# Kept in one block so that the table above reads as before.
_OV_PEEPHOLES = "OpenVINO ignores peepholes (P)"
_OV_LAYOUT = "OpenVINO mishandles layout = 1 (wrong output shapes)"
_OV_FAILURES = {
    "batchwise": _OV_LAYOUT,
    "ragged_reverse_batchwise": _OV_LAYOUT,
    "peepholes": _OV_PEEPHOLES,
    "ragged_peepholes_clip": _OV_PEEPHOLES,
    "input_forget": "OpenVINO ignores input_forget = 1",
    "activations": "OpenVINO refuses LeakyRelu as an LSTM activation",
}
_OV_DYNAMIC_RAGGED = "OpenVINO ignores sequence_lens while shapes are dynamic (LSTMSequence)"
for _case, _why in _OV_FAILURES.items():
    CASES[_case].known_failures.update({"openvino-cpu": _why, "openvino-cpu-static": _why})
for _case in ("ragged", "ragged_bidirectional"):
    CASES[_case].known_failures["openvino-cpu"] = _OV_DYNAMIC_RAGGED

# tract (runtimes/tract_rt.py), measured with 0.23.9: silently wrong (reverse run forward;
# clip, input_forget, activations ignored), sequence_lens refused, and an error on a one-way
# LSTM without initial states at batch > 1 with Y_h and Y_c both outputs. tests/test_tract.py
# checks the same features on models that avoid the last one, so that each shows alone.
_TRACT_STATES = "tract fails on Y_h and Y_c both outputs without initial states at batch > 1"
_TRACT_FAILURES = {
    "defaults": _TRACT_STATES,
    "reverse": "tract runs direction = reverse forward",
    "ragged": "tract refuses sequence_lens fed as an input",
    "ragged_bidirectional": "tract refuses sequence_lens fed as an input",
    "ragged_reverse_batchwise": "tract refuses sequence_lens fed as an input",
    "ragged_peepholes_clip": "tract refuses sequence_lens fed as an input",
    "clip": f"tract ignores clip (and {_TRACT_STATES})",
    "input_forget": f"tract ignores input_forget (and {_TRACT_STATES})",
    "activations": f"tract ignores activations (and {_TRACT_STATES})",
}
for _case, _why in _TRACT_FAILURES.items():
    CASES[_case].known_failures["tract-cpu"] = _why


def verify_file(path, runtimes=None, **plan):
    """``verify`` of the model file at ``path`` on the registered ``runtimes`` (None: all), the
    rest of its ``VerifyPlan`` as keywords: the way the command line calls it."""
    factories = make_factories(RUNTIMES if runtimes is None else runtimes)
    return verify(Model.load(path), VerifyPlan(factories, **plan))


def bench_plan(path, runtimes=None, batches=None, lengths=None, **fields):
    """The ``SweepPlan`` of the model file at ``path`` on the registered ``runtimes`` (None:
    all), at ``batches`` x ``lengths`` as ``sweep_shapes`` picks them, on one thread unless
    ``threads`` says otherwise; the rest of the plan as keywords: the way the command line
    builds it."""
    model = Model.load(path).check_lstm()
    shapes, notes = sweep_shapes([model], batches, lengths)
    return SweepPlan((model,), RuntimeChoice.of(runtimes), shapes,
                     fields.pop("threads", (1,)), notes=notes, **fields)


def fixed_batch_model(path, batch=4, wrapper=True):
    """A real LSTM model that takes one batch only. ``wrapper``: its input x
    ``[batch, s0, 2]`` reaches the LSTM through a Transpose (as a fixed-batch torch.export's
    [4, seq, 1] does), its sequence axis named ``s0`` (a name that says nothing); else X
    ``[seq_len, batch, 2]`` feeds the LSTM itself."""
    spec = LSTMSpec(input_size=2, hidden_size=3)
    model = build_lstm_model(LSTMWeights.random(spec, seed=2), outputs=("Y_h",))
    x = model.graph.input[0]
    dims = x.type.tensor_type.shape.dim
    if wrapper:
        x.name = "x"
        model.graph.node.insert(0, onnx.helper.make_node("Transpose", ["x"], ["X"],
                                                         perm=[1, 0, 2]))
        dims[1].dim_param = "s0"  # x: [batch, s0, 2]
    axis = 0 if wrapper else 1
    dims[axis].Clear()
    dims[axis].dim_value = batch
    state = model.graph.output[0].type.tensor_type.shape.dim  # Y_h [1, batch, 3]
    state[1].Clear()
    state[1].dim_value = batch
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path
