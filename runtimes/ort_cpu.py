"""onnxruntime with CPUExecutionProvider."""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line


class OrtRuntime:
    name = "ort-cpu"
    device = "cpu"
    providers = ["CPUExecutionProvider"]

    def __init__(self):
        self.session = None

    def available(self) -> str | None:
        try:
            import onnxruntime
        except ImportError as exc:
            return f"onnxruntime is not installed ({exc})"
        if self.providers[0] not in onnxruntime.get_available_providers():
            return f"{self.providers[0]} is not in this onnxruntime build"
        return None

    def session_options(self, threads):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        return options

    def open(self, model_path: str, *, threads: int | None = None) -> None:
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(
                str(model_path), self.session_options(threads), providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise LSTMBenchError(f"{self.name}: cannot load {model_path}: "
                                 f"{first_line(exc)}") from None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        self.session = None
