"""onnxruntime CPU on a transformed copy of the model: int8 dynamic quantization and float16.

Both are what a user does to a model to make it smaller or faster; verify reports what that
costs in accuracy against the float64 truth, with the tolerance row of their precision.

* ``ort-cpu-int8``: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights; LSTM becomes
  ``com.microsoft.DynamicQuantizeLSTM``, MatMul/Gemm become dynamically quantized ones).
* ``ort-cpu-fp16``: the model converted to float16 throughout (initializers, constants,
  Casts, graph inputs and outputs); ``run`` rounds the float32 feeds to float16 on the way in,
  and the outputs come back as float16. onnxruntime's CPU provider runs float16 nodes that lack
  a float16 kernel (LSTM among them) by inserting Casts to float32 around them, so the cost
  measured is float16 weights, inputs and outputs (and tensors between nodes), with the
  recurrence itself in float32. (With float32 graph I/O kept through Casts, ``keep_io=True``,
  onnxruntime fuses the Cast pairs away and only the weights' rounding remains.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from lstm_bench.runtimes.ort_cpu import OrtRuntime


def to_float16(model, keep_io: bool = False):
    """A copy of ``model`` in float16: initializers, constants, Casts and, unless ``keep_io``,
    its float inputs and outputs (with ``keep_io`` they stay float32 through Cast nodes)."""
    import onnx
    from onnx import AttributeProto, TensorProto, helper, numpy_helper

    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph

    def convert_tensor(tensor):
        if tensor.data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(tensor)
            limit = np.finfo(np.float16).max
            tensor.CopyFrom(numpy_helper.from_array(
                np.clip(array, -limit, limit).astype(np.float16), tensor.name))

    for tensor in graph.initializer:
        convert_tensor(tensor)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                convert_tensor(attr.t)
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    del graph.value_info[:]

    initializers = {t.name for t in graph.initializer}
    if not keep_io:
        for value in list(graph.input) + list(graph.output):
            if value.name not in initializers and value.type.tensor_type.elem_type == TensorProto.FLOAT:
                value.type.tensor_type.elem_type = TensorProto.FLOAT16
        return converted
    renames, head, tail = {}, [], []
    for value in graph.input:
        if value.name not in initializers and value.type.tensor_type.elem_type == TensorProto.FLOAT:
            renames[value.name] = f"{value.name}__fp16"
            head.append(helper.make_node("Cast", [value.name], [renames[value.name]],
                                         to=TensorProto.FLOAT16, name=f"{value.name}__to_fp16"))
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
    outputs = {}
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            outputs[value.name] = f"{value.name}__fp16"
            tail.append(helper.make_node("Cast", [outputs[value.name]], [value.name],
                                         to=TensorProto.FLOAT, name=f"{value.name}__to_fp32"))
    for node in graph.node:
        for field in (node.input, node.output):
            for index, name in enumerate(field):
                if name in outputs:
                    field[index] = outputs[name]
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    return converted


class OrtInt8Runtime(OrtRuntime):
    name = "ort-cpu-int8"
    precision = "int8"

    def __init__(self):
        super().__init__()
        self.quantized_ops: dict[str, int] = {}

    def transform(self, model_path: str, out_path: Path) -> None:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.disable(logging.WARNING)  # "consider pre-processing": advice, not a problem
        try:
            quantize_dynamic(str(model_path), str(out_path), weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)

    def open(self, model_path: str, *, threads: int | None = None) -> None:
        import onnx

        from lstm_bench.errors import LSTMBenchError, first_line
        from lstm_bench.reference.model import load_model

        load_model(model_path)  # a clear error for a missing or unreadable file
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "transformed.onnx"
            try:
                self.transform(model_path, out)
            except Exception as exc:  # the quantizer raises plain Exceptions on odd graphs
                raise LSTMBenchError(f"{self.name}: cannot transform {model_path}: "
                                     f"{first_line(exc)}") from None
            transformed = onnx.load(str(out))
            self.quantized_ops = {}
            for node in transformed.graph.node:
                self.quantized_ops[node.op_type] = self.quantized_ops.get(node.op_type, 0) + 1
            super().open(str(out), threads=threads)

    def notes(self) -> list[str]:
        lstm = self.quantized_ops.get("DynamicQuantizeLSTM", 0)
        return [f"int8 dynamic quantization: {lstm} LSTM node(s) as DynamicQuantizeLSTM"]


class OrtFp16Runtime(OrtInt8Runtime):
    name = "ort-cpu-fp16"
    precision = "float16"

    def transform(self, model_path: str, out_path: Path) -> None:
        import onnx

        onnx.save(to_float16(onnx.load(str(model_path))), str(out_path))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return super().run({k: v.astype(np.float16) if v.dtype == np.float32 else v
                            for k, v in feeds.items()})

    def notes(self) -> list[str]:
        return ["float16 model (weights, inputs, outputs); LSTM computed in float32 by ORT CPU"]
