"""onnx's own backend test cases for LSTM, run through onnx's test runner
(``onnx.backend.test.BackendTest``) against lstm-bench's runtimes (``runtimes.onnx_backend``).

A case passes unless the runtime declares (``lstm_support``) that it refuses or ignores a
feature the case's node uses: then it must fail, so that onnx's cases check the declarations.
sequence_lens that are all full (the peephole case's) change nothing: ignoring them is no fault.
"""

import re
import unittest
import warnings

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx.backend.test.loader import load_model_tests

from lstm_bench.errors import LSTMBenchError
from lstm_bench.runtimes.features import node_features
from lstm_bench.runtimes.onnx_backend import backend
from lstm_bench.runtimes.registry import get_runtime

RUNTIMES = ("ort-cpu", "numpy", "torch-cpu", "onnx-reference")
PATTERN = r"^test_lstm_\w+_cpu$"


def lstm_cases(name: str) -> dict:
    """test name -> onnx's test function, of onnx's LSTM node cases on the CPU."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other node cases warn about overflowing casts
        runner = onnx.backend.test.BackendTest(backend(name), __name__).include(PATTERN)
        case = runner.test_cases["OnnxBackendNodeModelTest"]
    return {test: getattr(case, test) for test in sorted(dir(case)) if re.match(PATTERN, test)}


CASES = {name: lstm_cases(name) for name in RUNTIMES}
BACKEND_CASES = {case.name: case for case in load_model_tests(kind="node")
                 if case.name.startswith("test_lstm")}


def features_at_work(case) -> set[str]:
    """The LSTM features the case's node uses (``node_features``) that change its outputs."""
    node = case.model.graph.node[0]
    used = set(node_features(node))
    (inputs, _), = case.data_sets
    feeds = {v.name: a for v, a in zip(case.model.graph.input, inputs)}
    lens = feeds.get(node.input[4]) if len(node.input) > 4 else None
    if lens is not None and np.all(lens == feeds[node.input[0]].shape["layout" in used]):
        used.discard("sequence_lens")  # every sequence full length
    return used


def test_onnx_ships_the_lstm_cases():
    for name, cases in CASES.items():
        assert len(cases) >= 6, (name, sorted(cases))
        assert {"test_lstm_defaults_cpu", "test_lstm_with_peepholes_cpu",
                "test_lstm_bidirectional_cpu"} <= set(cases)


@pytest.mark.parametrize("runtime,test", [(r, t) for r in RUNTIMES for t in CASES[r]])
def test_onnx_lstm_case(runtime, test):
    func = CASES[runtime][test]
    support = get_runtime(runtime).lstm_support
    used = features_at_work(BACKEND_CASES[test.removesuffix("_cpu")])
    if used & (support.refuses | support.ignores):  # declared: onnx's check must fail
        with pytest.raises((AssertionError, LSTMBenchError)):
            func(unittest.TestCase())
    else:
        func(unittest.TestCase())


def test_the_adapter_speaks_onnx_backend_api():
    from onnx.backend.base import Backend

    ort = backend("ort-cpu")
    assert issubclass(ort, Backend) and backend("ort-cpu") is ort
    assert ort.supports_device("CPU") and not ort.supports_device("CUDA")
    case = BACKEND_CASES["test_lstm_defaults"]
    (inputs, expected), = case.data_sets
    by_name = {v.name: a for v, a in zip(case.model.graph.input, inputs)}
    outputs = ort.run_model(case.model, by_name)
    np.testing.assert_allclose(outputs[0], expected[0], rtol=1e-3, atol=1e-7)
    assert outputs[case.model.graph.output[0].name] is outputs[0]
    with pytest.raises(LSTMBenchError, match="unknown runtime 'nope'"):
        backend("nope")
    with pytest.raises(LSTMBenchError, match="ort-cpu runs on cpu, not CUDA"):
        ort.prepare(case.model, "CUDA")
