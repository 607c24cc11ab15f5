"""Evaluate a whole ONNX model in float64: LSTM nodes with ``reference.lstm``, the rest with onnx.

Exported graphs wrap the LSTM in Transpose, Squeeze, Gemm, Sigmoid and friends. To give them a
float64 truth too, the model is promoted to float64 (float initializers, constants, Casts and
graph inputs, and what is float32 by default: ConstantOfShape without a value, Constant's
value_float, RandomNormal's dtype, ...) and run by ``onnx.reference.ReferenceEvaluator`` with our
LSTM in place of its own, which ignores sequence_lens, clip, input_forget and activations, and
with ``reference.ops`` in place of the operators onnx's evaluator fails or errs on
(GatherElements past 64 steps, pooling, Loop, Scan, ...).

A user's model is untrusted input: it is checked as it is read (``lstm_bench.model_check``,
``lstm_bench.model_limits``), and ``run_model`` turns every error of onnx's evaluator (shape
errors, dangling outputs, memory) into an ``LSTMBenchError``, and stops after
``LSTM_BENCH_REFERENCE_TIMEOUT_S`` seconds (default 600, ``lstm_bench.files.LIMITS_S``) with a
clear message, for a Loop whose count is computed at run time.

Sizes: before evaluating, every value whose size shape inference can tell at the fed shapes is
checked against LSTM_BENCH_MAX_ARRAY_MB (``model_limits.check_values_at``). What inference
cannot tell (a size computed from the feeds' values, an Expand to a computed shape) meets a
hard cap: while the evaluator runs, the process's address space may grow by at most twice
LSTM_BENCH_MAX_ARRAY_MB per value of the graph (``_memory_budget``: every value held at once,
in float64; at least 4 GiB), and an allocation past it is a MemoryError, one line and exit 2,
not gigabytes taken from the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import limit_bytes, limit_seconds, size_text
from lstm_bench.model import Model, load_proto
from lstm_bench.reference.lstm import lstm
from lstm_bench.reference.ops import overrides

try:
    import resource
except ImportError:  # Windows: no address-space limit, no cap
    resource = None

# The least the float64 evaluation may add to the address space, whatever the array limit: the
# libraries' own reservations made while it runs (OpenBLAS's buffers of each of its threads on
# first use, a malloc arena of 64-128 MB per thread) must never fail under the cap.
MIN_MEMORY_BUDGET = 4 * 2 ** 30

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


# Operators whose float output is float32 unless an attribute says otherwise: the attribute is
# added, saying float64.
_FLOAT32_BY_DEFAULT = {"RandomNormal": "dtype", "RandomUniform": "dtype", "SequenceEmpty": "dtype",
                       "HannWindow": "output_datatype", "HammingWindow": "output_datatype",
                       "BlackmanWindow": "output_datatype", "MelWeightMatrix": "output_datatype"}
# Integer attributes that name an output's element type (Cast's "to", RandomNormal's "dtype",
# DequantizeLinear's "output_dtype", ...).
_TYPE_ATTRIBUTES = {"to", "dtype", "output_dtype", "output_datatype"}


def _promote_node(node):
    """Make ``node``'s float constants and float output types float64."""
    from onnx import AttributeProto, TensorProto, helper

    low_floats = _low_floats()
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            _promote_tensor(attr.t)
        elif attr.type == AttributeProto.TENSORS:
            for tensor in attr.tensors:
                _promote_tensor(tensor)
        elif attr.type == AttributeProto.SPARSE_TENSOR:
            _promote_tensor(attr.sparse_tensor.values)
        elif attr.type == AttributeProto.GRAPH:
            _promote_graph(attr.g)
        elif attr.type == AttributeProto.GRAPHS:
            for graph in attr.graphs:
                _promote_graph(graph)
        elif (attr.name in _TYPE_ATTRIBUTES and attr.type == AttributeProto.INT
              and attr.i in low_floats):
            attr.i = TensorProto.DOUBLE
    names = {attr.name for attr in node.attribute}
    if node.op_type == "Constant" and names & {"value_float", "value_floats"}:
        # value_float(s) always means float32: made a float64 tensor value instead
        attr = next(a for a in node.attribute if a.name in ("value_float", "value_floats"))
        value = np.array(attr.f if attr.name == "value_float" else list(attr.floats), np.float64)
        node.attribute.remove(attr)
        node.attribute.append(helper.make_attribute("value", _float64_tensor(value)))
    elif node.op_type == "ConstantOfShape" and "value" not in names:  # default: float32 zero
        node.attribute.append(helper.make_attribute("value", _float64_tensor(np.zeros(1))))
    elif node.op_type in _FLOAT32_BY_DEFAULT and _FLOAT32_BY_DEFAULT[node.op_type] not in names:
        node.attribute.append(helper.make_attribute(_FLOAT32_BY_DEFAULT[node.op_type],
                                                    TensorProto.DOUBLE))


def _float64_tensor(array):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array, np.float64))


def _promote_graph(graph):
    from onnx import TensorProto

    low_floats = _low_floats()
    for tensor in graph.initializer:
        _promote_tensor(tensor)
    for sparse in graph.sparse_initializer:
        _promote_tensor(sparse.values)
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type in low_floats:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    del graph.value_info[:]
    for node in graph.node:
        _promote_node(node)


def promote_to_float64(model):
    """A copy of the model whose float computations all happen in float64."""
    import onnx

    promoted = onnx.ModelProto()
    promoted.CopyFrom(model)
    _promote_graph(promoted.graph)
    _name_omitted_outputs(promoted.graph)
    return promoted


# onnx's evaluator stores every omitted output ("") under the name "", where an omitted input
# of a later node reads it: Clip(h, "", max) after LSTM(...) -> ("", h, "") takes the LSTM's Y
# as its min. Omitted outputs are named (these names) before evaluating.
OMITTED = "lstm_bench.omitted/"


def _omitted_outputs(graph) -> bool:
    from lstm_bench.model_limits import graphs  # it imports onnx

    return any(not name for g in graphs(graph) for node in g.node for name in node.output)


def _name_omitted_outputs(graph, counter=None):
    """Give every omitted output of ``graph`` and its subgraphs a name of its own."""
    counter = counter if counter is not None else iter(range(2 ** 62))
    for node in graph.node:
        for k, name in enumerate(node.output):
            if not name:
                node.output[k] = f"{OMITTED}{next(counter)}"
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _name_omitted_outputs(sub, counter)


def _as_written(node):
    """``node`` with the outputs ``_name_omitted_outputs`` named omitted again, as the model
    has it (the torch runtime finds its modules by a node's outputs)."""
    if not any(name.startswith(OMITTED) for name in node.output):
        return node
    original = type(node)()
    original.CopyFrom(node)
    del original.output[:]
    original.output.extend("" if name.startswith(OMITTED) else name for name in node.output)
    return original


def evaluator_with_lstm(model, lstm):
    """A ReferenceEvaluator for ``model`` whose LSTM nodes call ``lstm(node, inputs, attrs)``.

    ``inputs`` are the node's 8 operator inputs (None where absent), ``attrs`` its attributes
    with the schema's defaults; ``lstm`` returns (Y, Y_h, Y_c). ``run_model`` passes our float64
    LSTM; the numpy and torch runtimes pass the implementation under test.
    """
    import onnx
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    if _omitted_outputs(model.graph):  # a model promoted to float64 has them named already
        named = onnx.ModelProto()
        named.CopyFrom(model)
        _name_omitted_outputs(named.graph)
        model = named

    class LSTM(OpRun):
        op_domain = ""

        def __init__(self, onnx_node, run_params):
            super().__init__(onnx_node, run_params)
            self.as_written = _as_written(onnx_node)

        def _run(self, *inputs, **attrs):
            attrs.pop("output_sequence", None)  # opset 1 only; Y is computed either way
            # an omitted input ("") is None: onnx's evaluator would hand over whatever an
            # earlier node's omitted output stored under "" (a seq2seq encoder's Y)
            inputs = tuple(value if name else None
                           for name, value in zip(self.onnx_node.input, inputs))
            inputs = inputs + (None,) * (8 - len(inputs))
            return tuple(lstm(self.as_written, inputs, attrs))

    return ReferenceEvaluator(model, new_ops=[LSTM] + overrides(model))


def run_model(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate ``model`` (a path or ModelProto) on ``feeds`` in float64; outputs by name."""
    from lstm_bench.model_limits import check_values_at, graph_only  # they import onnx

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
    check_values_at(graph_only(model), {name: np.shape(value) for name, value in feeds.items()},
                    "the model")
    budget = _memory_budget(promoted)
    try:
        with _time_limit(_reference_timeout()), _memory_cap(budget):
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
        raise LSTMBenchError(f"the float64 reference ran out of memory evaluating the model (its "
                             f"cap: {size_text(budget)} more, 2 x LSTM_BENCH_MAX_ARRAY_MB per "
                             "value of the graph); its tensors are too large for this machine "
                             "or the limit") from None
    except Exception as exc:  # onnx's evaluator: shape errors, missing values, bad attributes
        raise LSTMBenchError(f"the float64 reference cannot evaluate the model: "
                             f"{first_line(exc, with_type=True)[:300]}") from None
    return {o.name: np.asarray(v) for o, v in zip(promoted.graph.output, outputs)}


def _memory_budget(model) -> int:
    """Bytes the float64 evaluation of ``model`` may add to the process: every value of the
    graph (inputs, initializers, node outputs, subgraphs' too) held at once, each up to twice
    LSTM_BENCH_MAX_ARRAY_MB (the limit counts a float32 value; the reference holds float64),
    and four more for an operator's temporaries (the LSTM's input projection); at least
    ``MIN_MEMORY_BUDGET``."""
    from lstm_bench.model_limits import graphs

    values = sum(len(g.input) + len(g.initializer) + sum(len(n.output) for n in g.node)
                 for g in graphs(model.graph))
    return max(2 * limit_bytes("LSTM_BENCH_MAX_ARRAY_MB") * (values + 4), MIN_MEMORY_BUDGET)


def _address_space() -> int | None:
    """The process's address space in bytes now (Linux), None where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def _memory_cap(nbytes: int):
    """Let the address space grow by at most ``nbytes`` while the block runs: an allocation
    past it fails (a MemoryError in NumPy) instead of taking the machine's memory. Only the
    soft limit changes, and it is put back; main thread only, on a system with RLIMIT_AS and
    /proc (elsewhere no cap), never above a limit already set."""
    used = _address_space()
    if (resource is None or not hasattr(resource, "RLIMIT_AS") or used is None
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = used + nbytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


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
