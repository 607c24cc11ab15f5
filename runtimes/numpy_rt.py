"""``reference.lstm`` computing in float32, as a runtime under test.

The same equations as the float64 truth, rounded to float32 at every step: what a careful
float32 implementation can reach. The rest of the graph runs in onnx's ReferenceEvaluator.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.model import as_model
from lstm_bench.reference.lstm import lstm
from lstm_bench.reference.model import evaluator_with_lstm
from lstm_bench.runtimes.base import BaseRuntime


class NumpyRuntime(BaseRuntime):
    name = "numpy"
    device = "cpu"
    compute_dtype = np.float32

    def __init__(self):
        self.evaluator = None

    def open(self, model, *, threads: int | None = None) -> None:
        # threads: NumPy's BLAS pool is fixed at import time; the argument is accepted and unused.
        self.evaluator = evaluator_with_lstm(as_model(model).proto, self._lstm)

    def _lstm(self, node, inputs, attrs):
        out_dtype = inputs[0].dtype
        outputs = lstm(*inputs, **attrs, dtype=self.compute_dtype)
        return tuple(o.astype(out_dtype, copy=False) for o in outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.evaluator.output_names, self.evaluator.run(None, feeds)))

    def close(self) -> None:
        self.evaluator = None
