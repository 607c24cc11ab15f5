"""The float64 reference on the operators found around LSTMs, against onnxruntime.

Exported LSTM models wrap the LSTM node in gathers, masks, reductions, convolutions and control
flow; ``reference.run_model`` evaluates all of them in float64. Each case here is one such
operator (or a few) run by ``run_model`` and by onnxruntime on the same float32 or integer
inputs: float outputs agree within float32 tolerance, integer outputs exactly. Tensors are tiny
except on the axes where size matters (onnx's GatherElements fails past 64 along its axis).
The cases in ``OWN`` run through ``reference.ops`` (where onnx's evaluator fails or errs) and
are also run in float32, as the numpy and torch runtimes use them; the rest pin onnx's evaluator
where it is right, and the promotion to float64 of what is float32 by default.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_bench.reference import ops
from lstm_bench.reference.model import evaluator_with_lstm, promote_to_float64, run_model
from lstm_bench.tolerances import TOLERANCES

RNG = np.random.default_rng(19)
LONG = 100  # past the 64 arrays np.choose takes


def floats(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def ints(high, *shape, low=0, dtype=np.int64):
    return RNG.integers(low, high, shape).astype(dtype)


def node(op, inputs, outputs=("y",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), **attrs)


def case(nodes, feeds, opset=17, consts=None, outputs=None):
    """A model of ``nodes`` whose inputs are ``feeds`` (fed at run time) and ``consts``
    (initializers), returning ``outputs`` (default: the last node's)."""
    nodes = nodes if isinstance(nodes, list) else [nodes]
    outputs = outputs or [o for o in nodes[-1].output if o]
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                       value.shape) for name, value in feeds.items()],
        [helper.make_empty_tensor_value_info(name) for name in outputs],
        [numpy_helper.from_array(np.asarray(value), name)
         for name, value in (consts or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 19 else 9 if opset < 21 else 10
    inferred = {v.name: v.type for v in
                onnx.shape_inference.infer_shapes(model).graph.value_info}
    for output in model.graph.output:  # typed as onnx infers them (float where it cannot)
        output.type.CopyFrom(inferred.get(output.name)
                             or helper.make_tensor_type_proto(F, None))
    return model, feeds


def subgraph(nodes, inputs, outputs):
    """A body graph; ``inputs`` and ``outputs`` are (name, elem_type, shape)."""
    return helper.make_graph(nodes, "body", [helper.make_tensor_value_info(*i) for i in inputs],
                             [helper.make_tensor_value_info(*o) for o in outputs])


F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _if_case():
    then = subgraph([node("Mul", ["x", "x"], ["t"])], [], [("t", F, [3, 4])])
    other = subgraph([node("Neg", ["x"], ["e"])], [], [("e", F, [3, 4])])
    return case([node("ReduceSum", ["x"], ["s"], keepdims=0), node("Greater", ["s", "zero"], ["c"]),
                 node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                {"x": floats(3, 4)}, consts={"zero": np.float32(0)})


def _loop_case():
    # a recurrence h = tanh(h * w + x[t]) over a length fed at run time, scan output every h
    body = subgraph(
        [node("Gather", ["x", "t"], ["xt"], axis=0), node("Mul", ["h", "w"], ["hw"]),
         node("Add", ["hw", "xt"], ["pre"]), node("Tanh", ["pre"], ["h2"]),
         node("Identity", ["cond"], ["cond2"]), node("Identity", ["h2"], ["hs"])],
        [("t", I64, []), ("cond", B, []), ("h", F, [2, 3])],
        [("cond2", B, []), ("h2", F, [2, 3]), ("hs", F, [2, 3])])
    return case([node("Loop", ["n", "", "h0"], ["hn", "y"], body=body)],
                {"x": floats(LONG, 2, 3), "h0": floats(2, 3), "n": np.array(LONG, np.int64)},
                consts={"w": floats(2, 3)}, outputs=["hn", "y"])


def _scan_case():
    body = subgraph([node("Add", ["acc", "xt"], ["acc2"]), node("Sigmoid", ["acc2"], ["out"])],
                    [("acc", F, [3]), ("xt", F, [3])], [("acc2", F, [3]), ("out", F, [3])])
    return case([node("Scan", ["a0", "x"], ["an", "y"], body=body, num_scan_inputs=1,
                      scan_input_directions=[1])],
                {"a0": floats(3), "x": floats(LONG, 3)}, outputs=["an", "y"])


def _loop_until_case(trip):
    # a loop that stops on its own condition (h grows past 1) or at trip count 0; scalar scan
    body = subgraph(
        [node("Add", ["h", "one"], ["h2"]), node("ReduceSum", ["h2"], ["s"], keepdims=0),
         node("Less", ["s", "limit"], ["cond2"]), node("Identity", ["s"], ["out"])],
        [("i", I64, []), ("cond", B, []), ("h", F, [3])],
        [("cond2", B, []), ("h2", F, [3]), ("out", F, [])])
    return case([node("Loop", ["n", "c", "h0"], ["hn", "y"], body=body)],
                {"h0": floats(3, low=0, high=1), "n": np.array(trip, np.int64),
                 "c": np.array(True)},
                consts={"one": np.float32(0.25), "limit": np.float32(4)}, outputs=["hn", "y"])


def _scan_axes_case():
    body = subgraph([node("Mul", ["acc", "xt"], ["acc2"]), node("Add", ["acc2", "ut"], ["out"])],
                    [("acc", F, [2]), ("xt", F, [2]), ("ut", F, [2])],
                    [("acc2", F, [2]), ("out", F, [2])])
    return case([node("Scan", ["a0", "x", "u"], ["an", "y"], body=body, num_scan_inputs=2,
                      scan_input_axes=[1, -1], scan_output_axes=[-1],
                      scan_output_directions=[1])],
                {"a0": floats(2), "x": floats(2, 9, low=0.5, high=1.2), "u": floats(2, 9)},
                outputs=["an", "y"])


def _sequence_case():
    return case([node("SplitToSequence", ["x"], ["seq"], axis=1),
                 node("SequenceAt", ["seq", "k"], ["at"]),
                 node("ConcatFromSequence", ["seq"], ["y"], axis=0, new_axis=1)],
                {"x": floats(2, LONG, 3)}, consts={"k": np.array(-1, np.int64)},
                outputs=["at", "y"])


def _mask_last_step():
    # Keras' masked exports: the last valid step of each row, by GatherElements along time
    return case([node("Cast", ["mask"], ["m"], to=I64), node("ReduceSum", ["m", "ax"], ["len"],
                                                                 keepdims=1),
                 node("Sub", ["len", "one"], ["last"]), node("Unsqueeze", ["last", "ax2"], ["idx"]),
                 node("Expand", ["idx", "shape"], ["index"]),
                 node("GatherElements", ["x", "index"], axis=1)],
                {"x": floats(2, LONG, 4), "mask": RNG.uniform(size=(2, LONG)) < 0.9},
                consts={"ax": np.array([1]), "one": np.array(1), "ax2": np.array([2]),
                        "shape": np.array([2, 1, 4])})



def _unrolled_cell(steps=3, hidden=4):
    """An LSTM cell unrolled into MatMul/Sigmoid/Tanh as torch.onnx.export (dynamo) writes it:
    the zero state is a ConstantOfShape without a value (float32 zeros by default)."""
    nodes = [node("Shape", ["x"], ["batch"], start=0, end=1),
             node("Concat", ["batch", "width"], ["state_shape"], axis=0),
             node("ConstantOfShape", ["state_shape"], ["h0"]), node("Identity", ["h0"], ["c0"])]
    for t in range(steps):
        h, c = f"h{t}", f"c{t}"
        nodes += [node("Gather", ["x", f"t{t}"], [f"x{t}"], axis=1),
                  node("MatMul", [f"x{t}", "W"], [f"wx{t}"]), node("MatMul", [h, "R"], [f"rh{t}"]),
                  node("Add", [f"wx{t}", f"rh{t}"], [f"s{t}"]),
                  node("Add", [f"s{t}", "b"], [f"g{t}"]),
                  node("Split", [f"g{t}"], [f"i{t}", f"f{t}", f"z{t}", f"o{t}"], axis=1,
                       num_outputs=4)]
        nodes += [node("Sigmoid", [f"{g}{t}"], [f"{g}s{t}"]) for g in "ifo"]
        nodes += [node("Tanh", [f"z{t}"], [f"zt{t}"]), node("Mul", [f"fs{t}", c], [f"fc{t}"]),
                  node("Mul", [f"is{t}", f"zt{t}"], [f"iz{t}"]),
                  node("Add", [f"fc{t}", f"iz{t}"], [f"c{t + 1}"]),
                  node("Tanh", [f"c{t + 1}"], [f"ct{t}"]),
                  node("Mul", [f"os{t}", f"ct{t}"], [f"h{t + 1}"])]
    nodes.append(node("Identity", [f"h{steps}"], ["y"]))
    consts = {"width": np.array([hidden]), "W": floats(3, 4 * hidden),
              "R": floats(hidden, 4 * hidden),
              "b": floats(4 * hidden), **{f"t{t}": np.array(t) for t in range(steps)}}
    return case(nodes, {"x": floats(2, steps, 3)}, opset=18, consts=consts)


# name -> builder of (model, feeds)
CASES = {
    "gather": lambda: case(node("Gather", ["x", "i"], axis=1),
                           {"x": floats(2, LONG, 3), "i": ints(LONG, 5, low=-LONG)}),
    "gather_scalar_index": lambda: case(node("Gather", ["x", "i"], axis=0),
                                        {"x": floats(LONG, 3), "i": np.array(-1, np.int64)}),
    "gather_elements_long_axis": lambda: case(node("GatherElements", ["x", "i"], axis=1),
                                              {"x": floats(2, LONG, 3),
                                               "i": ints(LONG, 2, 4, 3, low=-LONG)}),
    "gather_elements_axis0": lambda: case(node("GatherElements", ["x", "i"], axis=0),
                                          {"x": floats(LONG, 2), "i": ints(LONG, 3, 2)}),
    "gather_elements_int_data": lambda: case(node("GatherElements", ["x", "i"], axis=-1),
                                             {"x": ints(9, 3, LONG), "i": ints(LONG, 3, 7)}),
    "gather_elements_smaller_index": lambda: case(node("GatherElements", ["x", "i"], axis=1),
                                                  {"x": floats(4, LONG, 3),
                                                   "i": ints(LONG, 2, 5, 2)}),
    "mask_last_step": _mask_last_step,
    "gather_nd": lambda: case(node("GatherND", ["x", "i"], batch_dims=1),
                              {"x": floats(2, LONG, 3), "i": ints(LONG, 2, 4, 1)}),
    "scatter_nd": lambda: case(node("ScatterND", ["x", "i", "u"]),
                               {"x": floats(LONG, 3), "i": RNG.permutation(LONG)[:5, None],
                                "u": floats(5, 3)}),
    "scatter_elements": lambda: case(node("ScatterElements", ["x", "i", "u"], axis=1),
                                     {"x": floats(2, LONG), "i": np.stack([RNG.permutation(LONG)[:4]
                                                                           for _ in range(2)]),
                                      "u": floats(2, 4)}),
    "where": lambda: case(node("Where", ["c", "x", "z"]),
                          {"c": RNG.uniform(size=(2, LONG, 1)) < 0.5, "x": floats(2, LONG, 3),
                           "z": floats(1, 1, 3)}),
    "expand": lambda: case(node("Expand", ["x", "s"]), {"x": floats(1, 1, 3)},
                           consts={"s": np.array([2, LONG, 1])}),
    "tile": lambda: case(node("Tile", ["x", "r"]), {"x": floats(2, 3)},
                         consts={"r": np.array([3, 2])}),
    "slice_negative_step": lambda: case(node("Slice", ["x", "s", "e", "a", "st"]),
                                        {"x": floats(2, LONG, 3)},
                                        consts={"s": np.array([-1]), "e": np.array([-LONG - 5]),
                                                "a": np.array([1]), "st": np.array([-2])}),
    "slice_clamped": lambda: case(node("Slice", ["x", "s", "e", "a"]), {"x": floats(2, 9, 3)},
                                  consts={"s": np.array([2, -100]), "e": np.array([2 ** 62, 100]),
                                          "a": np.array([1, 2])}),
    "split_13": lambda: case(node("Split", ["x", "s"], ["a", "b"], axis=1),
                             {"x": floats(2, 7, 3)}, opset=13, consts={"s": np.array([3, 4])}),
    "split_18_num_outputs": lambda: case(node("Split", ["x"], ["a", "b", "c"], axis=1,
                                              num_outputs=3),
                                         {"x": floats(2, 8, 3)}, opset=18),
    "squeeze_unsqueeze": lambda: case([node("Squeeze", ["x", "a"], ["s"]),
                                       node("Unsqueeze", ["s", "b"], ["y"])],
                                      {"x": floats(1, 4, 1, 3)},
                                      consts={"a": np.array([0, 2]), "b": np.array([-1, 0])}),
    "concat": lambda: case(node("Concat", ["x", "z"], axis=-1),
                           {"x": floats(2, 3, 4), "z": floats(2, 3, 1)}),
    "pad_constant": lambda: case(node("Pad", ["x", "p", "v"]), {"x": floats(2, 5, 3)},
                                 consts={"p": np.array([0, 2, 0, 0, 3, 0]),
                                         "v": np.float32(1.5)}),
    "pad_reflect": lambda: case(node("Pad", ["x", "p"], mode="reflect"), {"x": floats(2, 5, 3)},
                                consts={"p": np.array([0, 2, 0, 0, 3, 0])}),
    "pad_edge_axes": lambda: case(node("Pad", ["x", "p", "", "a"], mode="edge"),
                                  {"x": floats(2, 5, 3)}, opset=18,
                                  consts={"p": np.array([1, 2]), "a": np.array([1])}),
    "conv1d": lambda: case(node("Conv", ["x", "w", "b"], pads=[1, 1], strides=[2],
                                dilations=[2]),
                           {"x": floats(2, 3, 20)}, consts={"w": floats(4, 3, 3), "b": floats(4)}),
    "conv1d_groups_auto_pad": lambda: case(node("Conv", ["x", "w"], group=2,
                                                auto_pad="SAME_UPPER", strides=[2]),
                                           {"x": floats(2, 4, 11)}, consts={"w": floats(6, 2, 4)}),
    "conv2d": lambda: case(node("Conv", ["x", "w", "b"], pads=[1, 0, 1, 0], strides=[2, 1]),
                           {"x": floats(1, 2, 8, 10)},
                           consts={"w": floats(3, 2, 3, 3), "b": floats(3)}),
    "conv_transpose1d": lambda: case(node("ConvTranspose", ["x", "w", "b"], strides=[2],
                                          pads=[1, 0], output_padding=[1]),
                                     {"x": floats(2, 3, 7)},
                                     consts={"w": floats(3, 4, 3), "b": floats(4)}),
    "conv_transpose2d": lambda: case(node("ConvTranspose", ["x", "w"], strides=[2, 2]),
                                     {"x": floats(1, 2, 4, 5)}, consts={"w": floats(2, 3, 2, 2)}),
    "max_pool1d": lambda: case(node("MaxPool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1]),
                               {"x": floats(2, 3, 15)}),
    "max_pool2d_ceil": lambda: case(node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2],
                                         ceil_mode=1),
                                    {"x": floats(1, 2, 7, 9)}),
    "max_pool1d_stride1_pads": lambda: case(node("MaxPool", ["x"], kernel_shape=[3], pads=[1, 1]),
                                            {"x": floats(2, 3, LONG)}),
    "max_pool2d_ceil_pads_dilations": lambda: case(
        node("MaxPool", ["x"], kernel_shape=[2, 3], strides=[2, 1], pads=[1, 0, 0, 1],
             dilations=[2, 1], ceil_mode=1), {"x": floats(1, 2, 7, 9)}),
    "max_pool_int8_same": lambda: case(node("MaxPool", ["x"], kernel_shape=[3], strides=[2],
                                            auto_pad="SAME_UPPER"),
                                       {"x": ints(100, 2, 3, 11, low=-100, dtype=np.int8)},
                                       opset=12),
    "max_pool_indices": lambda: case(node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]),
                                     {"x": floats(1, 2, 4, 6)}, outputs=["y", "i"]),
    "average_pool_ceil": lambda: case(node("AveragePool", ["x"], kernel_shape=[3, 3],
                                           strides=[3, 3], ceil_mode=1),
                                      {"x": floats(1, 2, 7, 8)}),
    "average_pool_ceil_pads_counted": lambda: case(
        node("AveragePool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1,
             count_include_pad=1), {"x": floats(2, 3, 10)}),
    "average_pool_ceil_same_lower": lambda: case(
        node("AveragePool", ["x"], kernel_shape=[2], strides=[2], ceil_mode=1,
             auto_pad="SAME_LOWER"), {"x": floats(2, 3, 11)}),
    "average_pool1d_long": lambda: case(node("AveragePool", ["x"], kernel_shape=[4], strides=[2]),
                                        {"x": floats(2, 8, 20 * LONG)}),
    "average_pool1d": lambda: case(node("AveragePool", ["x"], kernel_shape=[4], strides=[2],
                                        pads=[1, 2], count_include_pad=0),
                                   {"x": floats(2, 3, 15)}),
    "average_pool2d": lambda: case(node("AveragePool", ["x"], kernel_shape=[2, 3]),
                                   {"x": floats(1, 2, 6, 7)}),
    "global_average_pool": lambda: case(node("GlobalAveragePool", ["x"]), {"x": floats(2, 3, 15)}),
    "global_max_pool": lambda: case(node("GlobalMaxPool", ["x"]), {"x": floats(2, 3, 15)}),
    "batch_normalization": lambda: case(node("BatchNormalization", ["x", "g", "b", "m", "v"],
                                             epsilon=1e-3),
                                        {"x": floats(2, 3, 9)},
                                        consts={"g": floats(3), "b": floats(3), "m": floats(3),
                                                "v": floats(3, low=0.5, high=2)}),
    "layer_normalization": lambda: case(node("LayerNormalization", ["x", "g", "b"], axis=-1,
                                             epsilon=1e-3),
                                        {"x": floats(2, 5, 6)},
                                        consts={"g": floats(6), "b": floats(6)}),
    "group_normalization_18": lambda: case(node("GroupNormalization", ["x", "g", "b"],
                                                num_groups=2),
                                           {"x": floats(2, 4, 5)}, opset=18,
                                           consts={"g": floats(2), "b": floats(2)}),
    "group_normalization_21": lambda: case(node("GroupNormalization", ["x", "g", "b"],
                                                num_groups=2),
                                           {"x": floats(2, 4, 5)}, opset=21,
                                           consts={"g": floats(4), "b": floats(4)}),
    "instance_normalization": lambda: case(node("InstanceNormalization", ["x", "g", "b"]),
                                           {"x": floats(2, 3, 9)},
                                           consts={"g": floats(3), "b": floats(3)}),
    "softmax": lambda: case(node("Softmax", ["x"], axis=1), {"x": floats(2, LONG, 3, high=20)}),
    "softmax_11": lambda: case(node("Softmax", ["x"], axis=1), {"x": floats(2, 4, 3)}, opset=11),
    "log_softmax": lambda: case(node("LogSoftmax", ["x"]), {"x": floats(2, 3, LONG, high=20)}),
    "log_softmax_wide_logits": lambda: case(node("LogSoftmax", ["x"]),
                                            {"x": floats(2, 9, low=-900, high=900)}),
    "hardmax": lambda: case(node("Hardmax", ["x"]), {"x": floats(2, 3, 9)}),
    "reduce_mean_axes_input": lambda: case(node("ReduceMean", ["x", "a"], keepdims=0),
                                           {"x": floats(2, LONG, 3)}, opset=18,
                                           consts={"a": np.array([1])}),
    "reduce_sum_axes_input": lambda: case(node("ReduceSum", ["x", "a"]), {"x": floats(2, LONG, 3)},
                                          opset=13, consts={"a": np.array([-2])}),
    "reduce_sum_no_axes_noop": lambda: case(node("ReduceSum", ["x"], noop_with_empty_axes=1),
                                            {"x": floats(2, 3)}, opset=13),
    "reduce_max_attr": lambda: case(node("ReduceMax", ["x"], axes=[1], keepdims=0),
                                    {"x": floats(2, LONG, 3)}, opset=13),
    "reduce_min_l2_logsumexp": lambda: case(
        [node("ReduceMin", ["x", "a"], ["m"]), node("ReduceL2", ["x", "a"], ["l"]),
         node("ReduceLogSumExp", ["x", "a"], ["e"]), node("ReduceProd", ["x", "a"], ["p"])],
        {"x": floats(2, 5, 3)}, opset=18, consts={"a": np.array([1])},
        outputs=["m", "l", "e", "p"]),
    "cumsum": lambda: case(node("CumSum", ["x", "a"]), {"x": floats(2, LONG, 3)},
                           consts={"a": np.array(1)}),
    "cumsum_reverse_exclusive_int": lambda: case(node("CumSum", ["x", "a"], reverse=1,
                                                      exclusive=1),
                                                 {"x": ints(5, 2, LONG)},
                                                 consts={"a": np.array(-1, np.int32)}),
    "range": lambda: case(node("Range", ["s", "l", "d"]), {"l": np.array(LONG, np.int64)},
                          consts={"s": np.array(3), "d": np.array(2)}),
    "range_float": lambda: case(node("Range", ["s", "l", "d"]), {"l": np.array(7.3, np.float32)},
                                consts={"s": np.float32(0.5), "d": np.float32(0.7)}),
    "nonzero": lambda: case(node("NonZero", ["x"]), {"x": RNG.uniform(size=(3, LONG)) < 0.3}),
    "topk": lambda: case(node("TopK", ["x", "k"], ["v", "i"], axis=1),
                         {"x": floats(2, LONG, 3)}, consts={"k": np.array([LONG])},
                         outputs=["v", "i"]),
    "topk_smallest_unsorted_ties": lambda: case(node("TopK", ["x", "k"], ["v", "i"], largest=0),
                                                {"x": ints(3, 2, 9).astype(np.float32)},
                                                consts={"k": np.array([4])}, outputs=["v", "i"]),
    "einsum": lambda: case(node("Einsum", ["a", "b"], equation="btf,hf->bth"),
                           {"a": floats(2, LONG, 6), "b": floats(5, 6)}),
    "einsum_batch_trace": lambda: case(node("Einsum", ["a"], equation="bii->b"),
                                       {"a": floats(3, 4, 4)}),
    "matmul_big_batch": lambda: case(node("MatMul", ["a", "b"]),
                                     {"a": floats(64, LONG, 8), "b": floats(8, 16)}),
    "matmul_broadcast": lambda: case(node("MatMul", ["a", "b"]),
                                     {"a": floats(2, 1, 5, 4), "b": floats(3, 4, 2)}),
    "gemm": lambda: case(node("Gemm", ["a", "b", "c"], transB=1, alpha=0.5, beta=2.0),
                         {"a": floats(4, 6)}, consts={"b": floats(5, 6), "c": floats(5)}),
    "resize_nearest": lambda: case(node("Resize", ["x", "", "s"], mode="nearest"),
                                   {"x": floats(1, 2, 5, 4)},
                                   consts={"s": np.array([1, 1, 2, 3], np.float32)}),
    "resize_linear_sizes": lambda: case(node("Resize", ["x", "", "", "z"], mode="linear"),
                                        {"x": floats(1, 2, 5, 4)}, opset=13,
                                        consts={"z": np.array([1, 2, 8, 7])}),
    "resize_linear_align_corners": lambda: case(
        node("Resize", ["x", "", "", "z"], mode="linear",
             coordinate_transformation_mode="align_corners"),
        {"x": floats(1, 1, 9)}, opset=13, consts={"z": np.array([1, 1, 20])}),
    "dft_onesided_17": lambda: case(node("DFT", ["x"], axis=1, onesided=1),
                                    {"x": floats(2, 16, 1)}),
    "dft_20_axis_input": lambda: case(node("DFT", ["x", "", "a"]), {"x": floats(2, 10, 2)},
                                      opset=20, consts={"a": np.array(1)}),
    "dft_inverse": lambda: case(node("DFT", ["x"], axis=1, inverse=1), {"x": floats(2, 8, 2)}),
    "stft": lambda: case(node("STFT", ["x", "s", "w", "l"], onesided=1),
                         {"x": floats(2, 200, 1)},
                         consts={"s": np.array(16), "w": np.hanning(64).astype(np.float32),
                                 "l": np.array(64)}),
    "hann_window": lambda: case(node("HannWindow", ["n"], periodic=1), {},
                                consts={"n": np.array(40)}),
    "mel_weight_matrix": lambda: case(node("MelWeightMatrix", ["m", "d", "r", "lo", "hi"]), {},
                                      consts={"m": np.array(8), "d": np.array(64),
                                              "r": np.array(16000), "lo": np.float32(20),
                                              "hi": np.float32(8000)}),
    "if": _if_case,
    "loop": _loop_case,
    "scan_reverse": _scan_case,
    "loop_until_condition": lambda: _loop_until_case(LONG),
    "loop_zero_trips": lambda: _loop_until_case(0),
    "scan_axes": _scan_axes_case,
    "sequence_ops": _sequence_case,
    "trilu": lambda: case(node("Trilu", ["x", "k"], upper=0), {"x": floats(2, 5, 6)},
                          consts={"k": np.array(-1)}),
    "argmax": lambda: case(node("ArgMax", ["x"], axis=1, keepdims=0, select_last_index=1),
                           {"x": ints(3, 2, LONG).astype(np.float32)}),
    "argmin": lambda: case(node("ArgMin", ["x"], axis=-1), {"x": floats(2, LONG)}),
    "one_hot": lambda: case(node("OneHot", ["i", "d", "v"], axis=-1),
                            {"i": ints(LONG, 2, 7, low=-LONG)},
                            consts={"d": np.array(LONG), "v": np.array([0, 1], np.float32)}),
    "mod_int": lambda: case(node("Mod", ["a", "b"]), {"a": ints(50, 2, 9, low=-50),
                                                      "b": ints(7, 2, 9, low=1)}),
    "mod_fmod": lambda: case(node("Mod", ["a", "b"], fmod=1),
                             {"a": floats(2, 9, low=-9, high=9), "b": floats(2, 9, low=1)}),
    "clip": lambda: case(node("Clip", ["x", "lo", "hi"]), {"x": floats(2, 9)},
                         consts={"lo": np.float32(-0.5), "hi": np.float32(0.7)}),
    "clip_no_bounds": lambda: case(node("Clip", ["x", "", "hi"]), {"x": floats(2, 9)},
                                   consts={"hi": np.float32(0.7)}),
    "erf_gelu_by_hand": lambda: case(
        [node("Div", ["x", "r2"], ["d"]), node("Erf", ["d"], ["e"]),
         node("Add", ["e", "one"], ["a"]),
         node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"], ["y"])],
        {"x": floats(2, 9, low=-5, high=5)},
        consts={"r2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}),
    "gelu_20": lambda: case(node("Gelu", ["x"]), {"x": floats(2, 9, low=-5, high=5)}, opset=20),
    "gelu_20_tanh": lambda: case(node("Gelu", ["x"], approximate="tanh"),
                                 {"x": floats(2, 9, low=-5, high=5)}, opset=20),
    "activations": lambda: case(
        [node("HardSigmoid", ["x"], ["hs"], alpha=0.3, beta=0.4), node("LeakyRelu", ["x"], ["lr"]),
         node("Elu", ["x"], ["el"]), node("Selu", ["x"], ["se"]), node("Softplus", ["x"], ["sp"]),
         node("Softsign", ["x"], ["ss"]), node("HardSwish", ["x"], ["hw"]),
         node("Celu", ["x"], ["ce"]), node("ThresholdedRelu", ["x"], ["tr"]),
         node("Mish", ["x"], ["mi"]), node("Relu", ["x"], ["re"]),
         node("PRelu", ["x", "s"], ["pr"]),
         node("Shrink", ["x"], ["sh"], lambd=0.5, bias=0.1)],
        {"x": floats(2, 3, 9, low=-4, high=4)}, opset=18, consts={"s": floats(3, 1)},
        outputs=["hs", "lr", "el", "se", "sp", "ss", "hw", "ce", "tr", "mi", "re", "pr", "sh"]),
    "elementwise_math": lambda: case(
        [node(op, ["x"], [op.lower()]) for op in
         ("Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Sign", "Floor", "Ceil", "Round", "Sin", "Cos",
          "Atan", "Reciprocal", "Erf")]
        + [node("Sqrt", ["p"], ["sqrt"]), node("Log", ["p"], ["log"]),
           node("Pow", ["p", "x"], ["pow"])],
        {"x": floats(2, 9, low=-3, high=3), "p": floats(2, 9, low=0.1, high=3)},
        outputs=["sigmoid", "tanh", "exp", "abs", "neg", "sign", "floor", "ceil", "round", "sin",
                 "cos", "atan", "reciprocal", "erf", "sqrt", "log", "pow"]),
    "variadic": lambda: case([node("Max", ["a", "b", "c"], ["mx"]), node("Min", ["a", "b"], ["mn"]),
                              node("Sum", ["a", "b", "c"], ["sm"]),
                              node("Mean", ["a", "c"], ["me"])],
                             {"a": floats(2, 3), "b": floats(3), "c": floats(1, 3)},
                             outputs=["mx", "mn", "sm", "me"]),
    "compare_logic": lambda: case(
        [node("Equal", ["a", "b"], ["eq"]), node("Less", ["a", "b"], ["lt"]),
         node("GreaterOrEqual", ["a", "b"], ["ge"]), node("Not", ["eq"], ["ne"]),
         node("And", ["lt", "ne"], ["an"]), node("Or", ["eq", "ge"], ["y"]),
         node("IsNaN", ["a"], ["nan"])],
        {"a": ints(3, 2, 9).astype(np.float32), "b": ints(3, 2, 9).astype(np.float32)},
        outputs=["eq", "lt", "ge", "ne", "an", "y", "nan"]),
    "cast_float_to_int": lambda: case([node("Cast", ["x"], ["i"], to=TensorProto.INT64),
                                       node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
                                       node("CastLike", ["i", "x"], ["y"])],
                                      {"x": floats(2, 9, low=-50, high=50)}, outputs=["i", "y"]),
    "shape_size_reshape": lambda: case(
        [node("Shape", ["x"], ["s"], start=1), node("Size", ["x"], ["n"]),
         node("Reshape", ["x", "r"], ["y"]), node("Flatten", ["x"], ["f"], axis=2),
         node("Transpose", ["x"], ["t"], perm=[1, 0, 2])],
        {"x": floats(2, 6, 3)}, consts={"r": np.array([0, -1])},
        outputs=["s", "n", "y", "f", "t"]),
    "constant_of_shape_default": lambda: case(
        [node("Shape", ["x"], ["s"]), node("ConstantOfShape", ["s"], ["z"]),
         node("Add", ["z", "x"], ["y"])], {"x": floats(2, 3)}),
    "constant_value_float": lambda: case(
        [node("Constant", [], ["c"], value_float=0.1), node("Constant", [], ["d"],
                                                               value_floats=[0.2, 0.3, 0.4]),
         node("Add", ["x", "c"], ["a"]), node("Add", ["a", "d"], ["y"])], {"x": floats(2, 3)}),
    "unrolled_cell_dynamo": _unrolled_cell,
    # onnx's evaluator keeps every omitted output under "", where an omitted input reads it:
    # Clip's min was the LSTM's Y
    "omitted_output_then_omitted_input": lambda: case(
        [node("LSTM", ["x", "W", "R"], ["", "h", ""], hidden_size=3),
         node("Clip", ["h", "", "hi"])],
        {"x": floats(5, 2, 4)},
        consts={"W": floats(1, 12, 4), "R": floats(1, 12, 3), "hi": np.float32(0.1)}),
    "random_uniform_plus_input": lambda: case(  # float32 unless dtype says otherwise
        [node("RandomUniform", [], ["r"], shape=[2, 3], low=0.0, high=0.0),
         node("Add", ["r", "x"])], {"x": floats(2, 3)}),
    "constant_value_ints": lambda: case(
        [node("Constant", [], ["c"], value_ints=[3, 2]), node("Reshape", ["x", "c"], ["y"])],
        {"x": floats(2, 3)}),
    "dropout_inference": lambda: case(node("Dropout", ["x", "r"], ["y", "m"]),
                                      {"x": floats(2, 9)}, consts={"r": np.float32(0.5)},
                                      outputs=["y", "m"]),
    "depth_space": lambda: case([node("DepthToSpace", ["x"], ["d"], blocksize=2, mode="CRD"),
                                 node("SpaceToDepth", ["d"], ["y"], blocksize=2)],
                                {"x": floats(1, 8, 2, 3)}, outputs=["d", "y"]),
    "compress": lambda: case(node("Compress", ["x", "c"], axis=1),
                             {"x": floats(2, LONG), "c": RNG.uniform(size=LONG) < 0.5}),
    "reverse_sequence": lambda: case(node("ReverseSequence", ["x", "l"], batch_axis=0, time_axis=1),
                                     {"x": floats(3, LONG, 2), "l": np.array([LONG, 1, 37])}),
    "lp_normalization": lambda: case(node("LpNormalization", ["x"], axis=-1, p=2),
                                     {"x": floats(2, 9)}),
    "mean_variance_normalization": lambda: case(node("MeanVarianceNormalization", ["x"]),
                                                {"x": floats(2, 3, 2, 5)}),
    "quantize_dequantize": lambda: case(
        [node("QuantizeLinear", ["x", "s", "z"], ["q"]), node("DequantizeLinear", ["q", "s", "z"],
                                                              ["y"])],
        {"x": floats(2, 9)}, consts={"s": np.float32(0.02), "z": np.uint8(128)},
        outputs=["q", "y"]),
    "eye_like": lambda: case(node("EyeLike", ["x"], k=1), {"x": floats(4, 5)}),
    # older opsets, as shipped models and torch's older exports have them
    "softmax_11_default_axis": lambda: case(node("Softmax", ["x"]), {"x": floats(2, 3, 4)},
                                            opset=11),
    "log_softmax_11": lambda: case(node("LogSoftmax", ["x"], axis=1), {"x": floats(2, 3, 4)},
                                   opset=11),
    "hardmax_11": lambda: case(node("Hardmax", ["x"], axis=1), {"x": floats(2, 3, 4)}, opset=11),
    "softmax_11_last_axis": lambda: case(node("Softmax", ["x"], axis=-1), {"x": floats(2, 3, 4)},
                                         opset=11),
    "clip_6": lambda: case(node("Clip", ["x"], min=-0.5, max=0.7), {"x": floats(2, 9)}, opset=9),
    "pad_2": lambda: case(node("Pad", ["x"], pads=[0, 1, 0, 2], value=0.5), {"x": floats(2, 5)},
                          opset=9),
    "split_11": lambda: case(node("Split", ["x"], ["a", "b"], axis=1, split=[3, 4]),
                             {"x": floats(2, 7)}, opset=11),
    "squeeze_unsqueeze_11": lambda: case([node("Squeeze", ["x"], ["s"], axes=[0]),
                                          node("Unsqueeze", ["s"], ["y"], axes=[-1])],
                                         {"x": floats(1, 4, 3)}, opset=11),
    "reduce_sum_11": lambda: case(node("ReduceSum", ["x"], axes=[1], keepdims=0),
                                  {"x": floats(2, LONG, 3)}, opset=11),
    "slice_9": lambda: case(node("Slice", ["x"], starts=[1], ends=[1000], axes=[1]),
                            {"x": floats(2, 9)}, opset=9),
    "upsample_9": lambda: case(node("Upsample", ["x", "s"], mode="nearest"),
                               {"x": floats(1, 2, 3, 4)},
                               consts={"s": np.array([1, 1, 2, 2], np.float32)}, opset=9),
    "upsample_9_linear": lambda: case(node("Upsample", ["x", "s"], mode="linear"),
                                      {"x": floats(1, 2, 3, 4)},
                                      consts={"s": np.array([1, 1, 2, 1.5], np.float32)},
                                      opset=9),
    "upsample_7_attribute": lambda: case(node("Upsample", ["x"], mode="nearest",
                                              scales=[1.0, 1.0, 2.0, 3.0]),
                                         {"x": floats(1, 2, 3, 4)}, opset=7),
    "resize_10_nearest": lambda: case(node("Resize", ["x", "s"]), {"x": floats(1, 2, 3, 4)},
                                      consts={"s": np.array([1, 1, 2.5, 1.5], np.float32)},
                                      opset=10),
    "resize_10": lambda: case(node("Resize", ["x", "s"], mode="linear"),
                              {"x": floats(1, 2, 3, 4)},
                              consts={"s": np.array([1, 1, 2, 2], np.float32)}, opset=10),
    "resize_11_roi": lambda: case(node("Resize", ["x", "r", "s"], mode="nearest"),
                                  {"x": floats(1, 2, 3, 4)}, opset=11,
                                  consts={"r": np.array([], np.float32),
                                          "s": np.array([1, 1, 2, 3], np.float32)}),
    "topk_1": lambda: case(node("TopK", ["x"], ["v", "i"], k=3), {"x": floats(2, 9)}, opset=9,
                           outputs=["v", "i"]),
    "dropout_7": lambda: case(node("Dropout", ["x"], ["y"], ratio=0.3), {"x": floats(2, 9)},
                              opset=9),
    "batch_normalization_9": lambda: case(node("BatchNormalization", ["x", "g", "b", "m", "v"]),
                                          {"x": floats(2, 3, 9)}, opset=9,
                                          consts={"g": floats(3), "b": floats(3), "m": floats(3),
                                                  "v": floats(3, low=0.5, high=2)}),
    "gemm_9": lambda: case(node("Gemm", ["a", "b", "c"], transA=1), {"a": floats(6, 4)}, opset=9,
                           consts={"b": floats(6, 5), "c": floats(4, 5)}),
    "quantize_dequantize_13_per_axis": lambda: case(
        [node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
         node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)],
        {"x": floats(2, 3, 4)}, opset=13,
        consts={"s": np.array([0.02, 0.01, 0.03], np.float32),
                "z": np.array([0, 3, -2], np.int8)}, outputs=["q", "y"]),
    "quantize_dequantize_10": lambda: case(
        [node("QuantizeLinear", ["x", "s"], ["q"]), node("DequantizeLinear", ["q", "s"], ["y"])],
        {"x": floats(2, 9)}, opset=10, consts={"s": np.float32(0.02)}, outputs=["q", "y"]),
    "gather_nd_11": lambda: case(node("GatherND", ["x", "i"]),
                                 {"x": floats(LONG, 3), "i": ints(LONG, 4, 1)}, opset=11),
    "scatter_9": lambda: case(node("Scatter", ["x", "i", "u"], axis=1),
                              {"x": floats(2, LONG), "i": np.stack([RNG.permutation(LONG)[:4]
                                                                    for _ in range(2)]),
                               "u": floats(2, 4)}, opset=9),
    "one_hot_9": lambda: case(node("OneHot", ["i", "d", "v"]), {"i": ints(LONG, 2, 7)},
                              consts={"d": np.array([LONG]), "v": np.array([0, 1], np.float32)},
                              opset=9),
    "argmax_11": lambda: case(node("ArgMax", ["x"], axis=1), {"x": floats(2, LONG)}, opset=11),
    "flatten_9": lambda: case(node("Flatten", ["x"], axis=0), {"x": floats(2, 3, 4)}, opset=9),
    "constant_of_shape_9": lambda: case([node("Shape", ["x"], ["s"]),
                                         node("ConstantOfShape", ["s"], ["z"]),
                                         node("Add", ["z", "x"], ["y"])], {"x": floats(2, 3)},
                                        opset=9),
    "cast_9_expand_8_where_9": lambda: case(
        [node("Cast", ["m"], ["c"], to=TensorProto.BOOL), node("Expand", ["x", "s"], ["e"]),
         node("Where", ["c", "e", "z"], ["y"])],
        {"m": ints(2, 2, LONG), "x": floats(2, 1)}, opset=9,
        consts={"s": np.array([2, LONG]), "z": np.float32(-1)}),
}

# Operators whose onnx implementation reference.ops replaces; each has a case above.
OWN = {"gather_elements_long_axis", "gather_elements_axis0", "gather_elements_int_data",
       "gather_elements_smaller_index", "mask_last_step", "max_pool1d", "max_pool2d_ceil",
       "max_pool1d_stride1_pads", "max_pool2d_ceil_pads_dilations", "max_pool_int8_same",
       "average_pool1d", "average_pool2d", "average_pool_ceil", "average_pool_ceil_pads_counted",
       "average_pool_ceil_same_lower", "average_pool1d_long", "global_max_pool", "log_softmax",
       "log_softmax_wide_logits", "softmax_11", "softmax_11_default_axis", "log_softmax_11",
       "hardmax_11", "softmax_11_last_axis", "batch_normalization_9", "loop",
       "loop_until_condition", "loop_zero_trips", "scan_reverse", "scan_axes",
       "mean_variance_normalization", "one_hot", "one_hot_9", "scatter_9", "upsample_9",
       "upsample_9_linear", "upsample_7_attribute", "resize_10", "resize_10_nearest",
       "quantize_dequantize", "quantize_dequantize_13_per_axis", "quantize_dequantize_10"}


def _agree(name, got, want):
    if np.issubdtype(want.dtype, np.floating):
        tol = TOLERANCES["float32"]
        np.testing.assert_allclose(got, want, rtol=tol.rtol, atol=tol.atol, err_msg=name)
    else:
        assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("name", list(CASES))
def test_reference_agrees_with_onnxruntime(name):
    model, feeds = CASES[name]()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in model.graph.output], session.run(None, feeds)))
    got = run_model(model, feeds)
    for output, value in want.items():
        assert got[output].shape == value.shape, (output, got[output].shape, value.shape)
        if np.issubdtype(value.dtype, np.floating):
            assert got[output].dtype == np.float64, (output, got[output].dtype)
        _agree(output, got[output], value)

@pytest.mark.parametrize("name", sorted(OWN))
def test_replacements_keep_float32(name):
    """The numpy and torch runtimes run the same evaluator on the float32 model: a replaced
    operator computes in its input's dtype there, as onnxruntime does."""
    model, feeds = CASES[name]()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)
    got = evaluator_with_lstm(model, lstm=None).run(None, feeds)
    for output, value, expected in zip(model.graph.output, got, want):
        assert value.dtype == expected.dtype, (output.name, value.dtype, expected.dtype)
        _agree(output.name, value.astype(np.float64) if value.dtype.kind == "f" else value,
               expected)


def test_every_replaced_operator_has_a_case():
    covered = {n.op_type for name in OWN for n in CASES[name]()[0].graph.node}
    for opset in (9, 10, 11, 13, 17, 21):
        model = helper.make_model(helper.make_graph([], "g", [], []),
                                  opset_imports=[helper.make_opsetid("", opset)])
        replaced = {op.__name__ for op in ops.overrides(model)}
        assert replaced <= covered, (opset, replaced - covered)


def test_onnx_reference_runtime_runs_past_64_steps():
    """onnx-reference is judged on its own LSTM; the other operators are fixed there too."""
    from lstm_bench.model import Model
    from lstm_bench.runtimes.onnx_ref import OnnxReferenceRuntime

    model, feeds = CASES["mask_last_step"]()
    runtime = OnnxReferenceRuntime()
    runtime.open(Model.built(model))
    got = runtime.run(feeds)["y"]
    runtime.close()
    np.testing.assert_allclose(got, run_model(model, feeds)["y"], rtol=1e-6)


def test_promoted_model_has_no_float32_left():
    model, _ = CASES["unrolled_cell_dynamo"]()
    promoted = promote_to_float64(model)
    constant_of_shape = next(n for n in promoted.graph.node if n.op_type == "ConstantOfShape")
    assert constant_of_shape.attribute[0].t.data_type == TensorProto.DOUBLE
    model, _ = CASES["constant_value_float"]()
    assert all(a.name == "value" and a.t.data_type == TensorProto.DOUBLE
               for n in promote_to_float64(model).graph.node if n.op_type == "Constant"
               for a in n.attribute)


def test_scatter_elements_takes_indices_smaller_than_the_data():
    """ONNX lets indices be smaller than data on the other axes (as in GatherElements)."""
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    indices = np.array([[2], [0]], np.int64)
    updates = np.array([[50.0], [70.0]], np.float32)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=0)], "g",
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [3, 4]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [2, 1]),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, [2, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])]),
        opset_imports=[helper.make_opsetid("", 16)])
    expected = ort.InferenceSession(model.SerializeToString()).run(
        None, {"d": data, "i": indices, "u": updates})[0]
    np.testing.assert_array_equal(ops.scatter_elements(data, indices, updates, axis=0), expected)
