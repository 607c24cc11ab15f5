"""onnxruntime with CUDAExecutionProvider, and the detection of LSTM nodes it leaves on the CPU.

The CUDA provider hands an LSTM node back to the CPU provider, silently (a log warning), when
the node has a ``clip``, ``activation_alpha`` or ``activation_beta`` attribute (any value),
activations other than Sigmoid, Tanh, Tanh per direction, ``input_forget`` != 0, or a P input
(``RNNNeedFallbackToCPU`` in onnxruntime's ``cuda_execution_provider.cc``; ``ORT_CUDA``). Such a model then
times the CPU kernel plus two device copies while the user believes it runs on the GPU.

Two independent witnesses, both kept on the runtime after ``open``:

* ``predicted_fallback``: that rule applied to the graph (testable on any machine);
* ``placement``: node name -> execution provider, read from a profiled run of a second
  session (the profile JSON's ``Node`` events carry ``args.provider``);

and ``fallback_nodes``: LSTM node -> reason, from the placement where one was measured, else
from the rule.
"""

from __future__ import annotations

import json
from pathlib import Path

from lstm_bench.errors import first_line
from lstm_bench.feeds import make_inputs
from lstm_bench.model import as_model
from lstm_bench.runtimes.cuda import cuda_device_reason
from lstm_bench.runtimes.features import LSTMSupport, lstm_node_protos
from lstm_bench.runtimes.ort_cpu import OrtRuntime, session_options

# onnxruntime's RNNNeedFallbackToCPU (cuda_execution_provider.cc): cuDNN has no such LSTM.
ORT_CUDA = LSTMSupport(refuses=frozenset({"layout"}),
                       falls_back=frozenset({"activations", "activation_alpha", "activation_beta",
                                             "clip", "input_forget", "peepholes"}),
                       fallback="the CPU provider")


def predicted_fallback(model) -> dict[str, str]:
    """LSTM node name -> why the CUDA provider will run it on the CPU, for every such node."""
    found = {}
    for label, node in lstm_node_protos(model):
        reasons = ORT_CUDA.unsupported(node, "falls_back")
        if reasons:
            found[label] = "; ".join(reasons.values())
    return found


def placement_from_profile(profile_path) -> dict[str, str]:
    """Node name -> execution provider, from an onnxruntime profile JSON file."""
    events = json.loads(Path(profile_path).read_text())
    placement = {}
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") == "Node" and "provider" in args:
            name = event["name"]
            for suffix in ("_kernel_time", "_fence_before", "_fence_after"):
                name = name.removesuffix(suffix)
            placement[name] = args["provider"]
    return placement


class OrtCudaRuntime(OrtRuntime):
    name = "ort-cuda"
    device = "cuda"
    providers = ("CUDAExecutionProvider", "CPUExecutionProvider")
    lstm_support = ORT_CUDA
    probe_placement = True  # profile one run at open() to read where each node was placed

    def __init__(self, ort_options=None):
        super().__init__(ort_options)
        self.predicted_fallback: dict[str, str] = {}
        self.placement: dict[str, str] = {}
        self.fallback_nodes: dict[str, str] = {}
        self.placement_error: str | None = None

    def available(self) -> str | None:
        reason = cuda_device_reason()
        if reason:
            return reason
        return super().available()

    def open(self, model, *, threads: int | None = None) -> None:
        model = as_model(model)
        self.predicted_fallback = predicted_fallback(model.proto)
        super().open(model, threads=threads)
        self.fallback_nodes = dict(self.predicted_fallback)
        self.placement_error = None
        if self.probe_placement:
            try:
                self.placement = self.measure_placement(model, threads)
            except Exception as exc:  # the rule's prediction still stands; say why it is unchecked
                self.placement_error = first_line(exc, with_type=True)
                return
            lstm_names = {n.name or f"LSTM#{i}" for i, n in enumerate(model.proto.graph.node)
                          if n.op_type == "LSTM"}
            self.fallback_nodes = {
                name: self.predicted_fallback.get(name, "placed there by onnxruntime")
                for name, provider in self.placement.items()
                if name in lstm_names and provider != self.providers[0]}

    def measure_placement(self, model, threads) -> dict[str, str]:
        """Run the model once in a profiling session and read the node placement back."""
        import tempfile

        import onnxruntime

        options = session_options(threads, self.ort_options)
        with tempfile.TemporaryDirectory() as tmp:
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / "placement")
            session = onnxruntime.InferenceSession(model.source, options,
                                                   providers=list(self.providers))
            session.run(None, make_inputs(model.proto).feeds)
            profile = session.end_profiling()
            return placement_from_profile(profile)

    def notes(self) -> list[str]:
        notes = [f"LSTM on CPU (fallback): {name}: {why}" for name, why in self.fallback_nodes.items()]
        if self.placement_error:
            notes.append(f"placement not measured (predicted from the graph): {self.placement_error}")
        return notes

    def synchronize(self) -> None:
        pass  # session.run returns host arrays: the device work is finished when it returns
