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

# What it runs of a graph with no LSTM node (an unrolled cell): ``reference.lstm`` none of it.
WHOLE_GRAPH = ("no LSTM node: onnx's ReferenceEvaluator runs the whole graph in float32; "
               "lstm-bench's float32 LSTM computes none of it")


class NumpyRuntime(BaseRuntime):
    name = "numpy"
    native_code = False  # NumPy alone: it runs in the process that asks
    device = "cpu"
    compute_dtype = np.float32

    def __init__(self):
        self.evaluator = None
        self.whole_graph = False  # no LSTM node: the evaluator alone (``WHOLE_GRAPH``)

    def open(self, model, *, threads: int | None = None) -> None:
        # threads: NumPy's BLAS pool is fixed at import time; the argument is accepted and unused.
        model = as_model(model)
        self.whole_graph = model.no_lstm_note is not None
        self.evaluator = evaluator_with_lstm(model.proto, self._lstm)

    def _lstm(self, node, inputs, attrs):
        out_dtype = inputs[0].dtype
        outputs = lstm(*inputs, **attrs, dtype=self.compute_dtype)
        return tuple(o.astype(out_dtype, copy=False) for o in outputs)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.evaluator.output_names, self.evaluator.run(None, feeds)))

    def notes(self) -> list[str]:
        return [WHOLE_GRAPH] * self.whole_graph

    def settings(self) -> dict:
        return {"runs": WHOLE_GRAPH} if self.whole_graph else {}

    def close(self) -> None:
        self.evaluator = None
