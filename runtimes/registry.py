"""Every runtime lstm-bench knows, by name. Written out by hand; extend it here."""

from __future__ import annotations

from lstm_bench.runtimes.numpy_rt import NumpyRuntime
from lstm_bench.runtimes.onnx_ref import OnnxReferenceRuntime
from lstm_bench.runtimes.openvino_rt import OpenVinoRuntime, OpenVinoStaticRuntime
from lstm_bench.runtimes.ort_cpu import OrtRuntime
from lstm_bench.runtimes.ort_cuda import OrtCudaRuntime
from lstm_bench.runtimes.ort_variants import OrtFp16Runtime, OrtInt8Runtime
from lstm_bench.runtimes.torch_rt import TorchCudaRuntime, TorchRuntime

# name -> factory returning a fresh, unopened runtime
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
}


def get_runtime(name: str):
    from lstm_bench.errors import LSTMBenchError

    if name not in RUNTIMES:
        raise LSTMBenchError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return RUNTIMES[name]()
