"""Is there a CUDA device here? Asked of the driver itself, independent of how torch or
onnxruntime were built, so that every GPU runtime skips with the same, true reason."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def cuda_device_reason() -> str | None:
    """None when the NVIDIA driver reports at least one CUDA device, else why not."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA device: libcuda.so.1 (the NVIDIA driver) is not installed on this machine"
    if driver.cuInit(0) != 0:
        return "no CUDA device: the NVIDIA driver failed to initialise (cuInit)"
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "no CUDA device: the NVIDIA driver reports no GPU"
    return None
