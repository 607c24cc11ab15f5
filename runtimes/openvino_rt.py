"""OpenVINO on the CPU, run as a user runs it: ``Core().read_model`` on the ONNX file, compiled
for the CPU with the harness's thread count and float32 precision.

Why it is here: OpenVINO 2026.4 loads every LSTM model we tried and is silently wrong on some
of them (measured against the float64 truth, see docs/verify.md): it ignores peepholes (P),
``input_forget = 1`` and, while the model keeps dynamic shapes (its LSTMSequence kernel),
ragged ``sequence_lens``. verify is what catches that.

* ``openvino-cpu``: the model's shapes as the file has them (dynamic axes stay dynamic).
* ``openvino-cpu-static``: the model reshaped to the fed shapes and compiled per shape
  (``model.reshape``), as users of fixed-size inputs do; OpenVINO then takes another path for
  the recurrence (TensorIterator), on which ragged lengths come out right.

Settings are explicit, not OpenVINO's defaults: ``INFERENCE_PRECISION_HINT`` is f32 (on CPUs
with bf16 or fp16 units OpenVINO would otherwise lower the precision on its own) and
``INFERENCE_NUM_THREADS`` is the harness's thread count. What the compiled model reports back
(version, device, precision, threads, performance hint) is kept in ``info`` and ``notes()``.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.model import as_model
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.features import LSTMSupport

# Measured against the float64 truth (docs/verify.md): OpenVINO 2026.4 computes as if these
# were absent. With static shapes (reshaped per fed shape) ragged lengths come out right.
OPENVINO = LSTMSupport(ignores=frozenset({"peepholes", "input_forget", "sequence_lens"}))
OPENVINO_STATIC = LSTMSupport(ignores=frozenset({"peepholes", "input_forget"}))

# Read back from the compiled model after compile, for the reports.
_REPORTED = ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT",
             "EXECUTION_MODE_HINT", "NUM_STREAMS", "ENABLE_CPU_PINNING")


class OpenVinoRuntime(BaseRuntime):
    name = "openvino-cpu"
    precision = "float32"
    lstm_support = OPENVINO
    libraries = ("openvino",)
    static_shapes = False

    def __init__(self):
        self.core = self.model = None
        self.compiled: dict = {}  # input shapes -> (compiled model, infer request, output names)
        self.output_names: set[str] = set()
        self.config: dict = {}
        self.info: dict = {}

    def available(self) -> str | None:
        try:
            import openvino
        except ImportError as exc:
            return f"openvino is not installed ({exc}); pip install openvino"
        devices = openvino.Core().available_devices
        if "CPU" not in devices:
            return f"OpenVINO sees no CPU device (devices: {devices})"
        return None

    def open(self, model, *, threads: int | None = None) -> None:
        import openvino

        model = as_model(model)
        self.core = openvino.Core()
        try:
            self.model = self.core.read_model(model.source)  # a path, or the model's bytes
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise LSTMBenchError(f"{self.name}: cannot load {model}: "
                                 f"{_cause(exc)}") from None
        # OpenVINO may give an output tensor several names; report it under the model's own.
        self.output_names = {o.name for o in model.proto.graph.output}
        self.config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = {}
        self.info = {"version": openvino.get_version(), "device": "CPU",
                     "shapes": "static (reshaped to each fed shape)" if self.static_shapes
                     else "as in the file", "requested": dict(self.config)}
        if not self.static_shapes:  # compile now, so that open() holds the compile time
            self._compiled_for(None)

    def _compiled_for(self, shapes):
        """The (compiled model, infer request) for these input shapes (None: the file's own)."""
        key = None if shapes is None else tuple(sorted(shapes.items()))
        if key not in self.compiled:
            model = self.model
            if shapes is not None:
                model = self.model.clone()
                model.reshape({name: list(shape) for name, shape in shapes.items()})
            try:
                compiled = self.core.compile_model(model, "CPU", self.config)
            except Exception as exc:
                raise LSTMBenchError(f"{self.name}: cannot compile the model: "
                                     f"{_cause(exc)}") from None
            names = [next(iter(sorted(o.get_names() & self.output_names)), o.get_any_name())
                     for o in compiled.outputs]
            self.compiled[key] = (compiled, compiled.create_infer_request(), names)
            self.info["compiled"] = {p: _text(compiled.get_property(p)) for p in _REPORTED
                                     if _has_property(compiled, p)}
        return self.compiled[key]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes = {name: value.shape for name, value in feeds.items()} if self.static_shapes else None
        compiled, request, names = self._compiled_for(shapes)
        results = request.infer(feeds)  # share_outputs=False: fresh host arrays each call
        return {name: np.asarray(results[output])
                for name, output in zip(names, compiled.outputs)}

    def notes(self) -> list[str]:
        if not self.info:
            return []
        compiled = ", ".join(f"{k}={v}" for k, v in (self.info.get("compiled") or {}).items())
        return [f"OpenVINO {self.info['version']} on {self.info['device']}, shapes "
                f"{self.info['shapes']}" + (f"; {compiled}" if compiled else "")]

    def settings(self) -> dict:
        # One key: the bench row is flat, and a top-level "device" would replace the row's own.
        return {"openvino": dict(self.info)}

    def close(self) -> None:
        self.compiled = {}
        self.core = self.model = None


class OpenVinoStaticRuntime(OpenVinoRuntime):
    name = "openvino-cpu-static"
    lstm_support = OPENVINO_STATIC
    static_shapes = True


def _has_property(compiled, name: str) -> bool:
    return any(str(p) == name for p in compiled.get_property("SUPPORTED_PROPERTIES"))


def _text(value) -> str:
    """A property value as OpenVINO spells it in a config: f32, LATENCY, PERFORMANCE, 2."""
    if hasattr(value, "to_string"):  # an element type
        return value.to_string()
    return getattr(value, "name", None) or str(value)  # enums, then ints and strings


def _cause(exc: BaseException) -> str:
    """The line of an OpenVINO error that says what went wrong: its messages open with one
    "Exception from <source file>" line per layer and put the cause last."""
    lines = [line.strip() for line in str(exc).splitlines()
             if line.strip() and not line.startswith("Exception from")]
    if not lines:
        return type(exc).__name__
    cause = lines[-1]
    return cause.split("HAS THROWN:", 1)[-1].strip()[:300]
