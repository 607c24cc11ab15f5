"""torch on the CPU and on CUDA, running the ONNX file as torch runs it.

The whole graph is translated to torch once, at ``open`` (``runtimes.onnx_torch``): each LSTM
node becomes a ``torch_lstm.OnnxLSTM`` (nn.LSTM where it has the node's features, an explicit
torch recurrence elsewhere), every other node a torch call, and a call runs under
``torch.inference_mode()`` with tensors kept in torch from the feeds to the outputs. A graph
with an operator the translation does not cover is a skip (``RuntimeSkip``) naming it: it is
never timed through a Python evaluator instead.

torch's intra-op thread count is global to the process: ``open`` sets it and ``close``
restores the value it found.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import RuntimeSkip
from lstm_bench.model import as_model
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.cuda import cuda_device_reason
from lstm_bench.runtimes.features import TORCH

def torch_missing() -> str | None:
    """Why torch cannot be used here, or None."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    return None


class TorchThreads:
    """Sets torch's global intra-op thread count and puts the previous one back."""

    def __init__(self):
        self.saved: int | None = None

    def set(self, threads: int | None) -> None:
        import torch

        if threads and self.saved is None:
            self.saved = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)

    def restore(self) -> None:
        if self.saved is not None:
            import torch

            torch.set_num_threads(self.saved)
            self.saved = None


class TorchRuntime(BaseRuntime):
    name = "torch-cpu"
    device = "cpu"
    lstm_support = TORCH
    libraries = ("torch",)

    def __init__(self):
        self.program = None
        self.modules = {}  # LSTM node label -> its OnnxLSTM (or why it is built at every call)
        self.paths: dict[str, str] = {}
        self.feeds: list[str] = []
        self.output_names: list[str] = []
        self.threads = TorchThreads()

    def available(self) -> str | None:
        return torch_missing()

    def open(self, model, *, threads: int | None = None) -> None:
        from lstm_bench.runtimes.onnx_torch import Untranslated, translate  # imports torch

        model = as_model(model)
        self.threads.set(threads)
        try:
            self.program = translate(model.proto, self.device)
        except Untranslated as exc:
            raise RuntimeSkip(f"{self.name}: {exc}; lstm-bench translates the ONNX operators "
                              "LSTM models use to torch, and times nothing else") from None
        graph = model.proto.graph
        constants = {t.name for t in graph.initializer}
        self.feeds = [i.name for i in graph.input if i.name not in constants]
        self.output_names = [o.name for o in graph.output]
        self.modules = dict(self.program.lstms)
        self.paths = {label: (module if isinstance(module, str) else "nn.LSTM"
                              if module.fallback is None
                              else f"torch recurrence ({module.fallback})")
                      for label, module in self.modules.items()}

    def _tensor(self, array):
        import torch

        array = np.asarray(array)
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array).copy()  # torch.from_numpy warns on read-only
        tensor = torch.from_numpy(array)
        return tensor if self.device == "cpu" else tensor.to(self.device)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            outputs = self.program.call([self._tensor(feeds[name]) for name in self.feeds])
        return {name: value.cpu().numpy() for name, value in zip(self.output_names, outputs)}

    def notes(self) -> list[str]:
        return [f"{name}: {path}" for name, path in self.paths.items() if path != "nn.LSTM"]

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        self.program, self.modules = None, {}
        self.threads.restore()


class TorchCudaRuntime(TorchRuntime):
    name = "torch-cuda"
    device = "cuda"

    def available(self) -> str | None:
        reason = super().available() or cuda_device_reason()
        if reason:
            return reason
        import torch

        if not torch.cuda.is_available():
            return (f"torch {torch.__version__} cannot use the GPU "
                    f"({'a CPU-only build' if torch.version.cuda is None else 'torch.cuda.is_available() is False'})")
        return None
