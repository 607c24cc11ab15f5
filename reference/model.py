"""Evaluate a whole ONNX model in float64: LSTM nodes with ``reference.lstm``, the rest with onnx.

Exported graphs wrap the LSTM in Transpose, Squeeze, Gemm, Sigmoid and friends. To give them a
float64 truth too, the model is promoted to float64 (float initializers, constants, Casts and
graph inputs) and run by ``onnx.reference.ReferenceEvaluator`` with our LSTM in place of its own,
which ignores sequence_lens, clip, input_forget and activations.

A user's model is untrusted input: it is checked as it is read (``lstm_bench.model_limits``),
and ``run_model`` turns every error of onnx's evaluator (shape errors, dangling outputs,
memory) into an ``LSTMBenchError``, and stops after ``LSTM_BENCH_REFERENCE_TIMEOUT_S`` seconds
(default 600, ``lstm_bench.files.LIMITS_S``) with a clear message, for a Loop whose count is computed at
run time.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import limit_seconds
from lstm_bench.model import Model, load_proto
from lstm_bench.reference.lstm import lstm

# onnx is imported by the functions that use it: the runtimes import this module, and the
# registry imports them all, so `lstm-bench COMMAND --help` would wait a second for onnx.


def _low_floats() -> set[int]:
    from onnx import TensorProto

    return {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def load_model(model):
    """A ModelProto from a path, a ModelProto or a ``lstm_bench.model.Model``, with a clear
    error for a bad file."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, Model):
        return model.proto
    return load_proto(model)


def _promote_tensor(tensor):
    from onnx import TensorProto, numpy_helper

    if tensor.data_type not in _low_floats():
        return
    array = numpy_helper.to_array(tensor).astype(np.float64)
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    tensor.data_type = TensorProto.DOUBLE


def _promote_graph(graph):
    from onnx import AttributeProto, TensorProto

    low_floats = _low_floats()
    for tensor in graph.initializer:
        _promote_tensor(tensor)
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type in low_floats:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    del graph.value_info[:]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                _promote_tensor(attr.t)
            elif attr.type == AttributeProto.GRAPH:
                _promote_graph(attr.g)
            elif node.op_type in ("Cast", "CastLike") and attr.name == "to" and attr.i in low_floats:
                attr.i = TensorProto.DOUBLE
            elif attr.name == "dtype" and attr.type == AttributeProto.INT and attr.i in low_floats:
                attr.i = TensorProto.DOUBLE  # RandomNormal, EyeLike, ...


def promote_to_float64(model):
    """A copy of the model whose float computations all happen in float64."""
    import onnx

    promoted = onnx.ModelProto()
    promoted.CopyFrom(model)
    _promote_graph(promoted.graph)
    return promoted


def evaluator_with_lstm(model, lstm):
    """A ReferenceEvaluator for ``model`` whose LSTM nodes call ``lstm(node, inputs, attrs)``.

    ``inputs`` are the node's 8 operator inputs (None where absent), ``attrs`` its attributes
    with the schema's defaults; ``lstm`` returns (Y, Y_h, Y_c). ``run_model`` passes our float64
    LSTM; the numpy and torch runtimes pass the implementation under test.
    """
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class LSTM(OpRun):
        op_domain = ""

        def _run(self, *inputs, **attrs):
            attrs.pop("output_sequence", None)  # opset 1 only; Y is computed either way
            inputs = tuple(inputs) + (None,) * (8 - len(inputs))
            return tuple(lstm(self.onnx_node, inputs, attrs))

    return ReferenceEvaluator(model, new_ops=[LSTM])


def run_model(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate ``model`` (a path or ModelProto) on ``feeds`` in float64; outputs by name."""
    model = load_model(model)
    custom = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node
                     if n.domain not in ("", "ai.onnx")})
    if custom:
        raise LSTMBenchError(f"model uses non-standard operators {custom}; the float64 "
                             "reference evaluates standard ONNX only (verify the unquantized model)")
    promoted = promote_to_float64(model)
    feedable = {i.name for i in promoted.graph.input}  # an initializer's default can be fed
    missing = sorted(feedable - {t.name for t in promoted.graph.initializer} - set(feeds))
    unknown = sorted(set(feeds) - feedable)
    if missing or unknown:
        raise LSTMBenchError(f"feeds do not match the model's inputs: missing {missing}, "
                             f"unknown {unknown}")
    cast = {name: np.asarray(value).astype(np.float64) if np.issubdtype(np.asarray(value).dtype, np.floating)
            else np.asarray(value) for name, value in feeds.items()}
    try:
        with _time_limit(_reference_timeout()):
            evaluator = evaluator_with_lstm(promoted,
                                            lambda node, inputs, attrs: lstm(*inputs, **attrs))
            outputs = evaluator.run(None, cast)
    except LSTMBenchError:
        raise
    except _TimeLimit:
        raise LSTMBenchError(f"the float64 reference stopped after {_reference_timeout():g} s "
                             "(a runaway Loop?); set LSTM_BENCH_REFERENCE_TIMEOUT_S to allow "
                             "more") from None
    except MemoryError:
        raise LSTMBenchError("the float64 reference ran out of memory evaluating the model; "
                             "its tensors are too large for this machine") from None
    except Exception as exc:  # onnx's evaluator: shape errors, missing values, bad attributes
        raise LSTMBenchError(f"the float64 reference cannot evaluate the model: "
                             f"{first_line(exc, with_type=True)[:300]}") from None
    return {o.name: np.asarray(v) for o, v in zip(promoted.graph.output, outputs)}


class _TimeLimit(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` inside onnx's
    evaluator swallows it."""


def _reference_timeout() -> float:
    return limit_seconds("LSTM_BENCH_REFERENCE_TIMEOUT_S")


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise ``_TimeLimit`` in this thread after ``seconds`` (main thread only: elsewhere
    signals cannot be delivered, and the limit is not applied)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum, frame):
        raise _TimeLimit()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
