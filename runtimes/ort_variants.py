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

Both are ``OrtRuntime``s that open a session on their transformed model. Where the
transformation cannot be made, ``open`` raises ``RuntimeSkip`` (verify's ``skip``, bench leaves
the runtime out): the quantizer raises on the graph, or quantizes none of its LSTM nodes
(``Int8Coverage``: an int8 row would time float32 LSTMs), or float16 cannot replace float32 in
it (``float16_copy``: the copy fails onnx's checker, e.g. a float Range).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstm_bench import interrupts
from lstm_bench.errors import LSTMBenchError, RuntimeSkip, first_line
from lstm_bench.exporters.ort_quiet import quiet_default_logger
from lstm_bench.feeds.probe import lstm_nodes_anywhere
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


def _fp16_graph(graph) -> None:
    """Convert ``graph`` and its subgraphs (If branches, Loop and Scan bodies) in place:
    float initializers and constants to float16, Casts to float to float16, and a subgraph's
    float inputs and outputs with them (a branch's output must be the type its If declares).
    The names a subgraph reads from the scopes around it keep their meaning: every float value
    of the model becomes float16 at once."""
    from onnx import AttributeProto, TensorProto, numpy_helper

    limit = np.finfo(np.float16).max

    def convert_tensor(tensor):
        if tensor.data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(tensor)
            tensor.CopyFrom(numpy_helper.from_array(
                np.clip(array, -limit, limit).astype(np.float16), tensor.name))

    for tensor in graph.initializer:
        convert_tensor(tensor)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                convert_tensor(attr.t)
            elif attr.type == AttributeProto.GRAPH:
                _fp16_io(attr.g)
                _fp16_graph(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for subgraph in attr.graphs:
                    _fp16_io(subgraph)
                    _fp16_graph(subgraph)
            elif node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            elif attr.name == "dtype" and attr.type == AttributeProto.INT \
                    and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16  # RandomNormal, EyeLike, ...
    del graph.value_info[:]


def _fp16_io(graph, skip=frozenset()) -> None:
    """A graph's float inputs and outputs declared float16 (but those named in ``skip``)."""
    from onnx import TensorProto

    for value in list(graph.input) + list(graph.output):
        tensor = value.type.tensor_type
        if value.name not in skip and tensor.elem_type == TensorProto.FLOAT:
            tensor.elem_type = TensorProto.FLOAT16


def _rename_inputs(graph, renames: dict) -> None:
    """Point every node of ``graph`` and of its subgraphs (which may read an outer value by its
    name) that reads a name in ``renames`` at the new name."""
    from lstm_bench.model_limits import graphs  # it imports onnx

    for g in graphs(graph):
        for node in g.node:
            for index, name in enumerate(node.input):
                if name in renames:
                    node.input[index] = renames[name]


def to_float16(model, keep_io: bool = False):
    """A copy of ``model`` in float16: initializers, constants, Casts, subgraphs (If, Loop,
    Scan) and, unless ``keep_io``, its float inputs and outputs (with ``keep_io`` they stay
    float32 through Cast nodes)."""
    import onnx
    from onnx import TensorProto, helper

    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    _fp16_graph(graph)

    initializers = {t.name for t in graph.initializer}
    if not keep_io:
        _fp16_io(graph, skip=initializers)
        return converted
    renames, head, tail = {}, [], []
    for value in graph.input:
        if value.name not in initializers and value.type.tensor_type.elem_type == TensorProto.FLOAT:
            renames[value.name] = f"{value.name}__fp16"
            head.append(helper.make_node("Cast", [value.name], [renames[value.name]],
                                         to=TensorProto.FLOAT16, name=f"{value.name}__to_fp16"))
    _rename_inputs(graph, renames)
    outputs = {}
    for value in graph.output:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            outputs[value.name] = f"{value.name}__fp16"
            tail.append(helper.make_node("Cast", [outputs[value.name]], [value.name],
                                         to=TensorProto.FLOAT, name=f"{value.name}__to_fp32"))
    _rename_inputs(graph, outputs)
    for node in graph.node:
        for index, name in enumerate(node.output):
            if name in outputs:
                node.output[index] = outputs[name]
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    return converted


def float16_copy(model, name: str):
    """``to_float16(model.proto)``, checked as a user's model is (``model_check``, onnx's
    checker with its strict type inference): ``RuntimeSkip`` with onnx's reason where float16
    cannot replace float32 in this graph (an operator that takes no float16, such as Range)."""
    from lstm_bench.model_check import check_model  # it imports onnx

    converted = to_float16(model.proto)
    try:
        check_model(converted, "its float16 copy")
    except LSTMBenchError as exc:
        raise RuntimeSkip(f"{name}: the float16 conversion cannot be done: "
                          f"{str(exc).removeprefix('its float16 copy: invalid ONNX model: ')}"
                          ) from None
    return converted


def _weight_source(name: str, defined: dict) -> str | None:
    """Why quantize_dynamic cannot quantize a weight read from ``name`` (None: it can: a float
    initializer); ``defined``: name -> the initializer, node or input that defines it."""
    from onnx import TensorProto, helper

    source = defined.get(name)
    if isinstance(source, TensorProto):
        if source.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
            return None
        return f"{helper.tensor_dtype_to_np_dtype(source.data_type).name} initializers"
    if source is None:
        return "graph inputs, fed at run time"
    if isinstance(source, str):  # "body"
        return "inputs of a Loop or Scan body"
    if source.op_type == "Constant":
        return "Constant nodes, not initializers"
    return f"computed at run time ({source.op_type} nodes), not stored as initializers"


def why_float32(model) -> list[str]:
    """Why quantize_dynamic leaves LSTM nodes of ``model`` (a ModelProto) in float32, one
    phrase per cause: it quantizes an LSTM only where W and R are float initializers."""
    from lstm_bench.model_limits import graphs  # it imports onnx

    defined: dict = {}
    for g in graphs(model.graph):
        defined.update({v.name: "body" for v in g.input if g is not model.graph})
        defined.update({t.name: t for t in g.initializer})
        defined.update({o: node for node in g.node for o in node.output})
    reasons = []
    for node in lstm_nodes_anywhere(model):
        w, r = (_weight_source(node.input[i], defined) for i in (1, 2))
        if w is None and r is None:
            continue
        reason = (f"W and R are {w}" if w == r else
                  "; ".join(f"{label} is {why}" for label, why in (("W", w), ("R", r)) if why))
        if reason not in reasons:
            reasons.append(reason)
    return reasons


@dataclass(frozen=True)
class Int8Coverage:
    """What the quantizer made of a model's LSTM nodes."""

    quantized: int  # LSTM nodes that became DynamicQuantizeLSTM
    left: int  # LSTM nodes left in float32
    int8_values: int  # values in the quantized model's int8 weights (MatMul, Gemm too)
    reasons: tuple[str, ...]  # why they were left (``why_float32``)

    @classmethod
    def of(cls, source, quantized) -> Int8Coverage:
        """``source``: the ModelProto given to the quantizer, ``quantized``: what it wrote."""
        from onnx import TensorProto

        from lstm_bench.model_limits import graphs  # it imports onnx

        nodes = [node for g in graphs(quantized.graph) for node in g.node]
        left = [node for node in nodes if node.op_type == "LSTM"]
        int8 = sum(int(np.prod(t.dims)) for g in graphs(quantized.graph) for t in g.initializer
                   if t.data_type in (TensorProto.INT8, TensorProto.UINT8))
        return cls(sum(n.op_type == "DynamicQuantizeLSTM" for n in nodes), len(left), int8,
                   tuple(why_float32(source)) if left else ())

    @property
    def hollow(self) -> bool:
        """A row of this model would time float32 work under an int8 name: it has LSTM nodes
        and none was quantized (however much of the rest went int8: a large Dense head
        quantized says nothing of the recurrence, which is what an LSTM bench times), or it has
        no LSTM node and no int8 weight at all (an unrolled cell whose MatMul weights are
        quantized is int8 for real)."""
        if self.left:
            return self.quantized == 0
        return self.quantized == 0 and self.int8_values == 0

    def why(self) -> str:
        reasons = "; ".join(self.reasons) or "for a reason lstm-bench cannot tell"
        hint = (" (an export without constant folding makes them so: torch.onnx.export with "
                "do_constant_folding=False, or dynamo=True with optimize=False)"
                if "computed at run time" in reasons else "")
        return (f"{reasons}{hint}; onnxruntime's quantize_dynamic quantizes an LSTM only where "
                "its W and R are float initializers")

    def note(self) -> str:
        if not (self.quantized or self.left):  # an LSTM cell unrolled into MatMul/Gemm
            return f"no LSTM node; {self.int8_values} weight values in int8 (MatMul/Gemm)"
        text = f"{self.quantized} LSTM node(s) as DynamicQuantizeLSTM"
        if self.left:
            text += f", {self.left} left in float32: {self.why()}"
        return text


class OrtInt8Runtime(OrtRuntime):
    name = "ort-cpu-int8"
    precision = "int8"

    def __init__(self, flags: frozenset[str] | None | object = THIS_CPU, ort_options=None):
        """``flags``: the CPU flags to choose the settings by (default: this CPU's; tests pass
        another CPU's to run its settings here); ``ort_options`` as for ``OrtRuntime``."""
        super().__init__(ort_options)
        self.quantization = int8_settings(cpu_flags() if flags is THIS_CPU else flags)
        self.quantized_ops: dict[str, int] = {}
        self.coverage: Int8Coverage | None = None
        # quantize_dynamic leaves If, Loop and Scan bodies alone unless asked: asked where an
        # LSTM node lives in one (a voice-activity model's If branches)
        self.subgraphs = False

    def quantize(self, source: Path, out: Path) -> None:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = self.quantization
        quiet_default_logger()  # sessions the quantizer may make log nothing natively either
        logging.disable(logging.WARNING)  # "consider pre-processing": advice, not a problem
        try:
            quantize_dynamic(str(source), str(out), weight_type=getattr(QuantType, q.weight_type),
                             per_channel=q.per_channel, reduce_range=q.reduce_range,
                             extra_options={"EnableSubgraph": True} if self.subgraphs else None)
        finally:
            logging.disable(logging.NOTSET)

    def open(self, model, *, threads: int | None = None) -> None:
        """Quantize ``model`` and open a session on the result. ``RuntimeSkip`` where the
        quantizer refuses the graph, or quantizes none of its LSTM nodes (``Int8Coverage``)."""
        from lstm_bench.model_limits import graphs  # it imports onnx

        model = as_model(model)
        self.subgraphs = len(lstm_nodes_anywhere(model.proto)) > sum(
            node.op_type == "LSTM" for node in model.proto.graph.node)
        try:
            quantized = transformed_copy(model, self.quantize)
        except Exception as exc:  # the quantizer raises plain Exceptions on odd graphs
            interrupts.check()  # a signal turned into an error is no refusal
            raise RuntimeSkip(f"{self.name}: onnxruntime's quantizer cannot quantize this "
                              f"model: {first_line(exc, with_type=True)}"
                              + (" (quantize_dynamic with EnableSubgraph, for the LSTM nodes "
                                 "inside If, Loop or Scan bodies)" if self.subgraphs else "")
                              ) from None
        self.coverage = Int8Coverage.of(model.proto, quantized)
        if self.coverage.hollow and not self.coverage.left:
            raise RuntimeSkip(f"{self.name}: the model has no LSTM node, and the quantizer "
                              "made none of its weights int8 (it quantizes MatMul and Gemm "
                              "weights that are float initializers); an int8 row would time "
                              "float32 work")
        if self.coverage.hollow:
            raise RuntimeSkip(f"{self.name}: the quantizer left all {self.coverage.left} LSTM "
                              f"node(s) in float32: {self.coverage.why()}; an int8 row would "
                              "time float32 LSTMs")
        self.quantized_ops = dict(Counter(node.op_type for g in graphs(quantized.graph)
                                          for node in g.node))
        self.open_session(quantized.SerializeToString(), threads=threads)

    def notes(self) -> list[str]:
        lstm = (self.coverage.note() if self.coverage is not None
                else "0 LSTM node(s) as DynamicQuantizeLSTM")
        return [f"int8 dynamic quantization ({self.quantization}): {lstm}"]

    def settings(self) -> dict:
        return {**super().settings(),
                "quantization": {**self.quantization.as_dict(), "enable_subgraph": self.subgraphs}}


class OrtFp16Runtime(OrtRuntime):
    name = "ort-cpu-fp16"
    precision = "float16"

    def open(self, model, *, threads: int | None = None) -> None:
        converted = float16_copy(as_model(model), self.name)
        self.open_session(converted.SerializeToString(), threads=threads)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return super().run({k: v.astype(np.float16) if v.dtype == np.float32 else v
                            for k, v in feeds.items()})

    def notes(self) -> list[str]:
        return ["float16 model (weights, inputs, outputs); LSTM computed in float32 by ORT CPU"]
