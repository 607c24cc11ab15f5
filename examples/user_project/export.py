"""The team's export step: writes its LSTM model (input 4, hidden --hidden) to an ONNX file.

A stand-in for a real project's torch.onnx.export: the graph is written with onnx.helper so
that the example needs nothing but onnx and NumPy.

    python export.py model.onnx --hidden 8 [--clip 0.1]
"""

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_SIZE = 4


def build(hidden: int, clip: float | None = None, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(hidden)
    shapes = {"W": (1, 4 * hidden, INPUT_SIZE), "R": (1, 4 * hidden, hidden), "B": (1, 8 * hidden)}
    initializers = [numpy_helper.from_array(rng.uniform(-scale, scale, shape).astype(np.float32),
                                            name) for name, shape in shapes.items()]
    attributes = {"hidden_size": hidden} | ({"clip": clip} if clip is not None else {})
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h"], name="encoder",
                            **attributes)
    graph = helper.make_graph(
        [node], "encoder",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq_len", "batch", INPUT_SIZE])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq_len", 1, "batch", hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "batch", hidden])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--clip", type=float, default=None)
    args = parser.parse_args()
    onnx.save(build(args.hidden, args.clip), args.out)
