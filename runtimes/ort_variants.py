"""onnxruntime CPU on a transformed copy of the model: int8 dynamic quantization and float16.

Both are what a user does to a model to make it smaller or faster; verify reports what that
costs in accuracy against the float64 truth, with the tolerance row of their precision.

* ``ort-cpu-int8``: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights; LSTM becomes
  ``com.microsoft.DynamicQuantizeLSTM``, MatMul/Gemm become dynamically quantized ones), with
  the settings onnxruntime's documentation advises for the CPU it runs on (``int8_settings``):
  its u8s8 kernels can saturate on AVX2/AVX-512 without VNNI, where ``reduce_range=True`` (7-bit
  weights) is the advice. Measured on an AVX2 machine without VNNI (max abs error of Y, six
  random LSTMs, docs/LSTM_FACTS): default 0.03-0.10, reduce_range 0.02-0.03, per_channel alone
  0.19-0.47, per_channel with reduce_range 0.008-0.04; reduce_range alone has the smallest worst
  case, so that is what runs there. The settings and the path are in ``settings()`` and the
  notes, and so in every report.
  The quantizer writes helper files (``<model>-inferred.onnx``) beside its input: it works on
  a copy in a private temporary folder, never beside the user's model.
* ``ort-cpu-fp16``: the model converted to float16 throughout (initializers, constants,
  Casts, graph inputs and outputs); ``run`` rounds the float32 feeds to float16 on the way in,
  and the outputs come back as float16. onnxruntime's CPU provider runs float16 nodes that lack
  a float16 kernel (LSTM among them) by inserting Casts to float32 around them, so the cost
  measured is float16 weights, inputs and outputs (and tensors between nodes), with the
  recurrence itself in float32. (With float32 graph I/O kept through Casts, ``keep_io=True``,
  onnxruntime fuses the Cast pairs away and only the weights' rounding remains.)

Both are ``OrtRuntime``s that open a session on their transformed model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.ort_quiet import quiet_default_logger
from lstm_bench.model import as_model
from lstm_bench.runtimes.ort_cpu import OrtRuntime

# CPU flags (as /proc/cpuinfo names them) with which onnxruntime's u8s8 GEMM has a dot-product
# instruction and does not saturate: x86 VNNI (AVX-512 or AVX) and AMX, Arm's dot product.
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
THIS_CPU = object()  # OrtInt8Runtime's default: read this machine's flags


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where that cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            return frozenset(value.split())
    return None


@dataclass(frozen=True)
class Int8Settings:
    """How ``quantize_dynamic`` is called on this CPU, and why."""

    weight_type: str
    per_channel: bool
    reduce_range: bool
    cpu_path: str  # the kernel path and the reason for the settings
    cpu_int8_flags: tuple[str, ...]  # the INT8_DOT_FLAGS this CPU has

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self):
        return (f"{self.weight_type} weights, per_channel={self.per_channel}, "
                f"reduce_range={self.reduce_range} ({self.cpu_path})")


def int8_settings(flags: frozenset[str] | None) -> Int8Settings:
    """onnxruntime's documented advice for a CPU with these flags (None: unknown CPU)."""
    if flags is None:
        return Int8Settings("QInt8", False, True, "CPU features unknown: reduce_range, which "
                            "is safe on every CPU", ())
    found = tuple(f for f in INT8_DOT_FLAGS if f in flags)
    if found:
        return Int8Settings("QInt8", False, False, f"u8s8 with {', '.join(found)}: "
                            "onnxruntime's defaults", found)
    return Int8Settings("QInt8", False, True, "u8s8 without VNNI, which can saturate: "
                        "reduce_range as onnxruntime advises", ())


def transformed_copy(model, transform):
    """``transform(source_path, out_path)`` run on a copy of ``model`` in a private temporary
    folder (tempfile.mkdtemp, removed afterwards); returns the ModelProto it wrote. Nothing is
    written beside the user's model, whatever the transform writes beside its input."""
    import shutil
    import tempfile

    import onnx

    folder = Path(tempfile.mkdtemp(prefix="lstm-bench-"))
    try:
        source, out = folder / "model.onnx", folder / "transformed.onnx"
        onnx.save(model.proto, str(source))
        transform(source, out)
        return onnx.load(str(out))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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

    def __init__(self, flags: frozenset[str] | None | object = THIS_CPU, ort_options=None):
        """``flags``: the CPU flags to choose the settings by (default: this CPU's; tests pass
        another CPU's to run its settings here); ``ort_options`` as for ``OrtRuntime``."""
        super().__init__(ort_options)
        self.quantization = int8_settings(cpu_flags() if flags is THIS_CPU else flags)
        self.quantized_ops: dict[str, int] = {}

    def quantize(self, source: Path, out: Path) -> None:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = self.quantization
        quiet_default_logger()  # sessions the quantizer may make log nothing natively either
        logging.disable(logging.WARNING)  # "consider pre-processing": advice, not a problem
        try:
            quantize_dynamic(str(source), str(out), weight_type=getattr(QuantType, q.weight_type),
                             per_channel=q.per_channel, reduce_range=q.reduce_range)
        finally:
            logging.disable(logging.NOTSET)

    def open(self, model, *, threads: int | None = None) -> None:
        model = as_model(model)
        try:
            quantized = transformed_copy(model, self.quantize)
        except Exception as exc:  # the quantizer raises plain Exceptions on odd graphs
            raise LSTMBenchError(f"{self.name}: cannot quantize {model}: "
                                 f"{first_line(exc)}") from None
        self.quantized_ops = {}
        for node in quantized.graph.node:
            self.quantized_ops[node.op_type] = self.quantized_ops.get(node.op_type, 0) + 1
        self.open_session(quantized.SerializeToString(), threads=threads)

    def notes(self) -> list[str]:
        lstm = self.quantized_ops.get("DynamicQuantizeLSTM", 0)
        return [f"int8 dynamic quantization ({self.quantization}): "
                f"{lstm} LSTM node(s) as DynamicQuantizeLSTM"]

    def settings(self) -> dict:
        return {**super().settings(), "quantization": self.quantization.as_dict()}


class OrtFp16Runtime(OrtRuntime):
    name = "ort-cpu-fp16"
    precision = "float16"

    def open(self, model, *, threads: int | None = None) -> None:
        converted = to_float16(as_model(model).proto)
        self.open_session(converted.SerializeToString(), threads=threads)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return super().run({k: v.astype(np.float16) if v.dtype == np.float32 else v
                            for k, v in feeds.items()})

    def notes(self) -> list[str]:
        return ["float16 model (weights, inputs, outputs); LSTM computed in float32 by ORT CPU"]
