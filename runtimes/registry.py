"""Every runtime lstm-bench knows, by name. Written out by hand; a new runtime is its module
and one line here (it declares its device, precision, LSTM support and libraries itself)."""

from __future__ import annotations

import functools

from lstm_bench.errors import LSTMBenchError
from lstm_bench.runtimes.numpy_rt import NumpyRuntime
from lstm_bench.runtimes.onnx_ref import OnnxReferenceRuntime
from lstm_bench.runtimes.openvino_rt import OpenVinoRuntime, OpenVinoStaticRuntime
from lstm_bench.runtimes.ort_cpu import OrtRuntime
from lstm_bench.runtimes.ort_cuda import OrtCudaRuntime
from lstm_bench.runtimes.ort_options import OrtOptions
from lstm_bench.runtimes.ort_variants import OrtFp16Runtime, OrtInt8Runtime
from lstm_bench.runtimes.torch_rt import TorchCudaRuntime, TorchRuntime
from lstm_bench.runtimes.tract_rt import TractRuntime

# name -> class; called with no arguments it makes a fresh, unopened runtime
RUNTIMES = {
    "ort-cpu": OrtRuntime,
    "ort-cuda": OrtCudaRuntime,
    "torch-cpu": TorchRuntime,
    "torch-cuda": TorchCudaRuntime,
    "numpy": NumpyRuntime,
    "onnx-reference": OnnxReferenceRuntime,
    "ort-cpu-int8": OrtInt8Runtime,
    "ort-cpu-fp16": OrtFp16Runtime,
    "openvino-cpu": OpenVinoRuntime,
    "openvino-cpu-static": OpenVinoStaticRuntime,
    "tract-cpu": TractRuntime,
}


def make_factories(names, ort_options: OrtOptions | None = None) -> dict:
    """Registered name -> factory of a fresh, unopened runtime, made with the options it takes
    (``ort_options``: the onnxruntime-based ones' session options). An unknown name is an
    error here; the command line refuses it sooner (``lstm_bench.cli.options.runtime_names``)."""
    unknown = [name for name in names if name not in RUNTIMES]
    if unknown:
        raise LSTMBenchError(f"unknown runtime {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(RUNTIMES)}")
    factories = {}
    for name in names:
        runtime = RUNTIMES[name]
        if ort_options and runtime.uses_ort_options:
            runtime = functools.partial(runtime, ort_options=ort_options)
        factories[name] = runtime
    return factories


def get_runtime(name: str, ort_options: OrtOptions | None = None):
    """A fresh, unopened runtime of this registered name (see ``make_factories``)."""
    return make_factories([name], ort_options)[name]()
