"""onnxruntime with CPUExecutionProvider, and the session helpers every onnxruntime-based
runtime shares (availability, session options, a session with a one-line load error)."""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.ort_quiet import session_options as quiet_options
from lstm_bench.model import as_model
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.features import LSTMSupport
from lstm_bench.runtimes.ort_options import OrtOptions

# onnxruntime's LSTM kernels take layout = 0 only.
ORT_CPU = LSTMSupport(refuses=frozenset({"layout"}))


def ort_missing(provider: str) -> str | None:
    """Why onnxruntime with ``provider`` cannot run here, or None."""
    try:
        import onnxruntime
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    if provider not in onnxruntime.get_available_providers():
        return f"{provider} is not in this onnxruntime build"
    return None


def session_options(threads: int | None, ort_options: OrtOptions | None = None):
    """``onnxruntime.SessionOptions``: ``threads`` intra-op threads (one inter-op thread),
    then the user's ``--ort-option`` settings; onnxruntime's own log lines off (a failure is
    raised, and reported once by lstm-bench: ``exporters.ort_quiet``)."""
    options = quiet_options()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if ort_options:
        ort_options.apply(options)
    return options


def create_session(label: str, model, providers, options):
    """An ``InferenceSession`` on ``model`` (a path, or serialized bytes); LSTMBenchError with
    onnxruntime's first line when it refuses the model."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model),
                                            options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        where = "the transformed model" if isinstance(model, bytes) else model
        raise LSTMBenchError(f"{label}: cannot load {where}: {first_line(exc)}") from None


class OrtRuntime(BaseRuntime):
    name = "ort-cpu"
    device = "cpu"
    providers = ("CPUExecutionProvider",)
    lstm_support = ORT_CPU
    libraries = ("onnxruntime", "onnxruntime-gpu")  # either distribution provides the module
    uses_ort_options = True

    def __init__(self, ort_options: OrtOptions | None = None):
        """``ort_options``: the user's session options (``--ort-option``), for every session."""
        self.session = None
        self.output_names: list[str] = []
        self.ort_options = ort_options or OrtOptions()

    def available(self) -> str | None:
        return ort_missing(self.providers[0])

    def open(self, model, *, threads: int | None = None) -> None:
        self.open_session(as_model(model).source, threads=threads)

    def open_session(self, model, *, threads=None) -> None:
        """A session on a path or serialized model (the variants open their transformed copy)."""
        self.session = create_session(self.name, model, self.providers,
                                      session_options(threads, self.ort_options))
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))

    def settings(self) -> dict:
        return {"ort_options": self.ort_options.as_dict()}

    def close(self) -> None:
        self.session = None
