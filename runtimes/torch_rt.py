"""torch on the CPU and on CUDA, running the ONNX file's LSTM weights: an independent path to torch.

Each LSTM node becomes a ``torch_lstm.OnnxLSTM`` (nn.LSTM where it has the node's features, an
explicit torch recurrence elsewhere). A graph that is one LSTM node runs as pure torch; any
other graph runs in onnx's ReferenceEvaluator with its LSTM nodes handed to these modules.

torch's intra-op thread count is global to the process: ``open`` sets it and ``close``
restores the value it found.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.graph import constants, lstm_node
from lstm_bench.model import as_model
from lstm_bench.reference.model import evaluator_with_lstm
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.cuda import cuda_device_reason
from lstm_bench.runtimes.features import LSTMSupport, lstm_node_protos

# What torch-cpu runs of a graph with no LSTM node (an unrolled cell): torch computes none of it.
WHOLE_GRAPH = ("no LSTM node: onnx's ReferenceEvaluator runs the whole graph (NumPy, float32); "
               "torch computes none of it")
# nn.LSTM has none of these; OnnxLSTM then runs the operator's recurrence in torch.
TORCH = LSTMSupport(falls_back=frozenset({"activations", "activation_alpha", "activation_beta",
                                          "clip", "input_forget", "peepholes"}),
                    fallback="a torch recurrence (not nn.LSTM)")


def torch_missing() -> str | None:
    """Why torch cannot be used here, or None."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return f"torch is not installed ({exc})"
    return None


def nn_lstm_fallback(node) -> str | None:
    """Why nn.LSTM cannot compute this LSTM NodeProto (None: it can)."""
    return ", ".join(TORCH.unsupported(node, "falls_back")) or None


def build_modules(model, device="cpu") -> dict:
    """A ``torch_lstm.OnnxLSTM`` per LSTM node of a ``lstm_bench.model.Model`` (by node
    label), on ``device``."""
    from lstm_bench.runtimes.torch_lstm import OnnxLSTM  # imports torch

    fallbacks = {label: nn_lstm_fallback(node) for label, node in lstm_node_protos(model.proto)}
    return {node.name: OnnxLSTM(node.weights, fallbacks.get(node.name)).to(device).eval()
            for node in model.lstm_nodes}


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
        self.model = None
        self.modules = {}
        self.evaluator = None
        self.single = None
        self.paths: dict[str, str] = {}
        self.threads = TorchThreads()
        self.whole_graph = False  # no LSTM node: the evaluator alone (``WHOLE_GRAPH``)

    def available(self) -> str | None:
        return torch_missing()

    def open(self, model, *, threads: int | None = None) -> None:
        model = as_model(model)
        self.threads.set(threads)
        self.model = model.proto
        self.whole_graph = model.no_lstm_note is not None
        try:
            nodes = model.lstm_nodes
        except LSTMBenchError:  # weights computed at run time: built per call in _lstm
            nodes = ()
        by_label = build_modules(model, self.device) if nodes else {}
        self.modules = {tuple(n.outputs): by_label[n.name] for n in nodes}
        self.paths = {n.name: "nn.LSTM" if by_label[n.name].fallback is None
                      else f"torch recurrence ({by_label[n.name].fallback})" for n in nodes}
        graph = self.model.graph
        self.constants = constants(graph)
        self.single = None
        if len(graph.node) == 1 and len(nodes) == 1:
            self.single = nodes[0]
        else:
            self.evaluator = evaluator_with_lstm(self.model, self._lstm)

    def _tensor(self, array):
        import torch

        if array is None:
            return None
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # torch.from_numpy warns on read-only memory (a constant)
            array = array.copy()
        return torch.from_numpy(array).to(self.device)

    def _call(self, outputs, inputs, module=None):
        import torch

        module = module or self.modules[tuple(outputs) + ("",) * (3 - len(outputs))]
        X, lens, h0, c0 = (inputs[k] for k in (0, 4, 5, 6))
        dtype = X.dtype
        with torch.inference_mode():
            result = module(self._tensor(X.astype(np.float32, copy=False)), self._tensor(lens),
                            *(self._tensor(None if s is None else s.astype(np.float32, copy=False))
                              for s in (h0, c0)))
        return tuple(r.cpu().numpy().astype(dtype, copy=False) for r in result)

    def _lstm(self, node, inputs, attrs):
        key = tuple(node.output) + ("",) * (3 - len(node.output))
        if key not in self.modules:  # inside If/Loop/Scan, or weights computed at run time:
            from lstm_bench.runtimes.torch_lstm import OnnxLSTM  # a module from the evaluated weights

            weights = lstm_node(node, dict(zip(node.input, inputs))).weights
            module = OnnxLSTM(weights, nn_lstm_fallback(node)).to(self.device).eval()
            return self._call(node.output, inputs, module)
        return self._call(node.output, inputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.single is not None:
            node = self.single
            inputs = [feeds.get(name, self.constants.get(name)) if name else None
                      for name in node.inputs]
            results = self._call(node.outputs, inputs)
            # a graph output may also be a graph input or a constant, passed through as it is
            by_name = {**self.constants, **feeds,
                       **{name: value for name, value in zip(node.outputs, results) if name}}
            return {o.name: by_name[o.name] for o in self.model.graph.output}
        return dict(zip(self.evaluator.output_names, self.evaluator.run(None, feeds)))

    def notes(self) -> list[str]:
        return [WHOLE_GRAPH] * self.whole_graph + [f"{name}: {path}" for name, path
                                                   in self.paths.items() if path != "nn.LSTM"]

    def settings(self) -> dict:
        return {"runs": WHOLE_GRAPH} if self.whole_graph else {}

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def close(self) -> None:
        self.modules, self.evaluator, self.single, self.model = {}, None, None, None
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
