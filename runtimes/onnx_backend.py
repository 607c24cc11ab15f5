"""onnx's backend API (``onnx.backend.base``) over any registered runtime, so that onnx's own
backend test cases, and any code written against that API, run on it::

    import onnx.backend.test
    from lstm_bench.runtimes.onnx_backend import backend

    cases = onnx.backend.test.BackendTest(backend("ort-cpu"), __name__)
    cases.include(r"^test_lstm_")
    globals().update(cases.test_cases)  # pytest or unittest collects them

``backend(name)`` is a ``Backend`` class (onnx's API is classmethods) whose ``prepare`` opens a
fresh runtime of that name on the model and returns a ``BackendRep``; ``run`` feeds it the
inputs (a list in the order of the graph's inputs that are not initializers, or a dict by
name) and returns the outputs in the order of the graph's outputs. The runtime runs in the
asking process, as the user chose it: nothing is isolated or timed here. ``supports_device``
says whether the runtime runs on that device here (available, and its own device).
onnx is imported when ``backend`` is first called, not with this module.
"""

from __future__ import annotations

import functools

from lstm_bench.errors import LSTMBenchError
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import make_factories


def _device_type(device: str) -> str:
    """'CPU', 'CUDA:1' -> 'cpu', 'cuda' (the runtimes' ``device`` words)."""
    return str(device).split(":")[0].strip().lower()


@functools.cache
def backend(name: str):
    """The ``onnx.backend.base.Backend`` class of the registered runtime ``name``
    (LSTMBenchError for a name that is not registered)."""
    from onnx.backend.base import Backend, BackendRep, namedtupledict

    make = make_factories([name])[name]
    # onnx's runner asks for every one of its cases, on each device: ask the runtime once
    _reason = functools.cache(lambda: make().available())

    class Rep(BackendRep):
        """One opened runtime and the names its inputs and outputs are matched by."""

        def __init__(self, runtime, proto):
            self.runtime = runtime
            initialized = {t.name for t in proto.graph.initializer}
            self.input_names = [v.name for v in proto.graph.input if v.name not in initialized]
            self.output_names = [v.name for v in proto.graph.output]

        def run(self, inputs, **kwargs):
            if isinstance(inputs, dict):
                feeds = dict(inputs)
            else:
                inputs = list(inputs)
                if len(inputs) > len(self.input_names):
                    raise LSTMBenchError(f"{name}: {len(inputs)} inputs given, the model takes "
                                         f"{len(self.input_names)} ({', '.join(self.input_names)})")
                feeds = dict(zip(self.input_names, inputs))
            outputs = self.runtime.run(feeds)
            self.runtime.synchronize()
            return namedtupledict("Outputs", self.output_names)(
                *(outputs[n] for n in self.output_names))

    class RuntimeBackend(Backend):
        runtime = name

        @classmethod
        def supports_device(cls, device: str) -> bool:
            return _device_type(device) == make().device and _reason() is None

        @classmethod
        def prepare(cls, model, device: str = "CPU", **kwargs):
            """``model``: a ModelProto. ``threads=N`` is passed to the runtime's ``open``;
            other keywords (onnx's test runner passes its rtol and atol) are not read."""
            super().prepare(model, device)  # onnx.checker
            runtime = make()
            reason = _reason()
            if reason:
                raise LSTMBenchError(f"{name}: {reason}")
            if _device_type(device) != runtime.device:
                raise LSTMBenchError(f"{name} runs on {runtime.device}, not {device}")
            runtime.open(Model.built(model), threads=kwargs.get("threads"))
            return Rep(runtime, model)

    RuntimeBackend.__name__ = RuntimeBackend.__qualname__ = f"Backend[{name}]"
    return RuntimeBackend
