"""onnx's ReferenceEvaluator with each LSTM node computed by a function of ours.

This is how the numpy and torch runtimes handle whole exported graphs (Transpose, Squeeze,
Gemm, Sigmoid around the LSTM): the rest of the graph is evaluated by onnx in the model's own
dtype, and only the LSTM nodes go through the implementation under test.
"""

from __future__ import annotations


def evaluator_with_lstm(model, lstm):
    """A ReferenceEvaluator for ``model`` whose LSTM nodes call ``lstm(node, inputs, attrs)``.

    ``inputs`` are the node's 8 operator inputs (None where absent), ``attrs`` its attributes
    with the schema's defaults; ``lstm`` returns (Y, Y_h, Y_c).
    """
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class LSTM(OpRun):
        op_domain = ""

        def _run(self, *inputs, **attrs):
            attrs.pop("output_sequence", None)  # opset 1 only
            inputs = tuple(inputs) + (None,) * (8 - len(inputs))
            return tuple(lstm(self.onnx_node, inputs, attrs))

    return ReferenceEvaluator(model, new_ops=[LSTM])


def run_evaluator(evaluator, model, feeds):
    outputs = evaluator.run(None, feeds)
    return {o.name: value for o, value in zip(model.graph.output, outputs)}
