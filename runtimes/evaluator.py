"""Whole exported graphs on the numpy and torch runtimes.

The rest of the graph (Transpose, Squeeze, Gemm, Sigmoid around the LSTM) is evaluated by onnx's
ReferenceEvaluator in the model's own dtype, and only the LSTM nodes go through the
implementation under test (``reference.model.evaluator_with_lstm``).
"""

from __future__ import annotations


def run_evaluator(evaluator, model, feeds):
    outputs = evaluator.run(None, feeds)
    return {o.name: value for o, value in zip(model.graph.output, outputs)}
