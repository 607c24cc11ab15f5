"""The CI parity suite: every registered runtime over a named matrix of LSTM models.

Each (case, runtime) pair runs through ``lstm_bench.verify.run.verify_runtime`` (the path the
CLI takes) against ``reference.run_model``'s float64 truth. A runtime that cannot run here skips
with its own reason; a known failure (onnx's reference LSTM ignoring clip, onnxruntime refusing
layout = 1) must still fail, so that verify is seen to catch it.

int8 is judged differently: onnxruntime's int8 kernels take different instruction paths on
different CPUs (VNNI or not), so its error is a property of onnxruntime on this CPU, not of
lstm-bench. The suite checks our plumbing on every CPU (it runs, is judged at the int8 row,
reports its settings, and its error is finite and far below what a wiring bug gives), never
the quantization quality at a fixed limit.
"""

import functools

import numpy as np
import pytest

from cases import CASES
from lstm_bench.model import Model
from lstm_bench.feeds import make_inputs
from lstm_bench.tolerances import TOLERANCES
from lstm_bench.runtimes.registry import RUNTIMES
from lstm_bench.verify.run import Truth, verify_runtime


@functools.cache
def _availability(name):
    return RUNTIMES[name]().available()


def skip_unless_available(name):
    reason = _availability(name)
    if reason:
        pytest.skip(f"{name}: {reason}")


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity_models")
    cache = {}

    def get(case_name):
        if case_name not in cache:
            case = CASES[case_name]
            path = root / f"{case_name}.onnx"
            case.build(path, seed=7)
            model = Model.load(path)
            inputs = make_inputs(model.proto, batch=case.batch, seq_len=case.seq_len, seed=3,
                                 ragged=case.ragged, zero_length=case.zero_length)
            cache[case_name] = (path, Truth.of(model, inputs))
        return cache[case_name]

    return get


# An int8 error above this is a wiring bug (a swapped gate, a wrong output), not quantization:
# the cases' hidden states lie in (-1, 1) and onnxruntime's int8 errors on them were 0.03-0.10
# on an AVX2 CPU without VNNI and under 0.05 with VNNI.
INT8_GROSS_ERROR = 0.3


def check_int8_plumbing(result):
    """What lstm-bench owes for an int8 runtime on any CPU (see the module docstring)."""
    assert result.status in ("pass", "fail"), result.reason
    assert result.precision == "int8" and result.tolerance == TOLERANCES["int8"]
    assert {f.metric for f in result.failures} <= {"abs_error", "streaming_abs_error"}, \
        [str(f) for f in result.failures]
    quantization = result.settings["quantization"]
    assert isinstance(quantization["reduce_range"], bool) and quantization["cpu_path"]
    assert any(f"reduce_range={quantization['reduce_range']}" in note for note in result.notes)
    for output in result.outputs:
        assert np.isfinite(output.max_abs) and output.max_abs < INT8_GROSS_ERROR, output
    if result.streaming is not None and result.streaming.status != "skip":
        assert all(np.isfinite(v) and v < INT8_GROSS_ERROR
                   for v in result.streaming.max_abs.values())


@pytest.mark.parametrize("runtime", list(RUNTIMES))
@pytest.mark.parametrize("case", list(CASES))
def test_runtime_matches_float64_truth(case, runtime, built):
    skip_unless_available(runtime)
    path, truth = built(case)
    result = verify_runtime(RUNTIMES[runtime](), truth)
    known = CASES[case].known_failures.get(runtime)
    if known:
        assert result.status in ("fail", "error"), f"{runtime} now passes {case} ({known})"
        assert result.failures
        return
    if RUNTIMES[runtime].precision == "int8":
        check_int8_plumbing(result)
    else:
        assert result.status == "pass", "\n".join(map(str, result.failures))
    for output in result.outputs:
        assert output.max_abs is not None and output.mean_abs <= output.max_abs
    if result.streaming is not None and CASES[case].options.get("initial_states") \
            and RUNTIMES[runtime].precision != "int8":
        assert result.streaming.status in ("pass", "skip")


def test_every_registered_runtime_is_covered():
    """A runtime added to the registry is in this suite by the registry itself (its device,
    precision and LSTM support are its own, checked in test_runtimes); a known failure must
    name a registered runtime (a misspelt name would silently never be checked)."""
    for case in CASES.values():
        assert set(case.known_failures) <= set(RUNTIMES), case.name
    # every runtime must be expected to pass some case (else the suite only sees it fail)
    for name in RUNTIMES:
        assert any(name not in case.known_failures for case in CASES.values()), name


def test_int8_follows_the_advice_for_a_cpu_without_vnni_on_any_cpu(built):
    """The AVX2-without-VNNI settings (reduce_range) run for real here whatever this CPU has."""
    from lstm_bench.runtimes.ort_variants import OrtInt8Runtime

    skip_unless_available("ort-cpu-int8")
    path, truth = built("bidirectional")
    runtime = OrtInt8Runtime(flags=frozenset({"avx2", "avx512f"}))
    result = verify_runtime(runtime, truth)
    check_int8_plumbing(result)
    assert result.settings["quantization"]["reduce_range"] is True
    assert "without VNNI" in result.settings["quantization"]["cpu_path"]


def test_onnx_reference_failure_names_what_it_ignores(built):
    path, truth = built("ragged")
    result = verify_runtime(RUNTIMES["onnx-reference"](), truth)
    assert result.status == "fail"
    assert any("ignores sequence_lens" in note for note in result.notes)
    assert {f.output for f in result.failures} == {"Y", "Y_h", "Y_c"}  # all listed, not the first


def test_ragged_case_holds_a_zero_and_a_full_length(built):
    _, truth = built("ragged")
    lengths = truth.inputs.lengths["sequence_lens"]
    assert 0 in lengths and CASES["ragged"].seq_len in lengths


def test_float16_variant_reports_its_accuracy_cost(built):
    skip_unless_available("ort-cpu-fp16")
    path, truth = built("seed")
    result = verify_runtime(RUNTIMES["ort-cpu-fp16"](), truth)
    exact = verify_runtime(RUNTIMES["ort-cpu"](), truth)
    assert result.status == "pass" and result.precision == "float16"
    assert result.tolerance == TOLERANCES["float16"]
    cost = max(o.max_abs for o in result.outputs)
    assert cost > 10 * max(o.max_abs for o in exact.outputs)  # a real, measured cost
    assert cost < TOLERANCES["float16"].atol
    assert result.notes


def test_int8_variant_reports_a_measured_cost(built):
    skip_unless_available("ort-cpu-int8")
    path, truth = built("seed")
    result = verify_runtime(RUNTIMES["ort-cpu-int8"](), truth)
    exact = verify_runtime(RUNTIMES["ort-cpu"](), truth)
    check_int8_plumbing(result)
    assert result.max_abs_error > 10 * exact.max_abs_error  # quantized for real: a cost is measured
    assert "DynamicQuantizeLSTM" in result.notes[0]


def test_per_step_error_follows_the_time_axis(built):
    path, truth = built("batchwise")
    assert truth.axes == {"Y": 1}  # layout 1: Y is [B, T, D, H]
    result = verify_runtime(RUNTIMES["numpy"](), truth)
    y = next(o for o in result.outputs if o.name == "Y")
    assert len(y.per_step_max_abs) == CASES["batchwise"].seq_len
    assert max(y.per_step_max_abs) == pytest.approx(y.max_abs)


def test_multi_layer_graph_runs_both_lstm_nodes_through_torch(built):
    from lstm_bench.runtimes.torch_rt import TorchRuntime

    path, truth = built("multi_layer")
    runtime = TorchRuntime()
    runtime.open(str(path))
    assert len(runtime.modules) == 2
    out = runtime.run(truth.inputs.feeds)
    np.testing.assert_allclose(out["l1_Y_h"], truth.outputs["l1_Y_h"], atol=1e-5)


def test_exported_wrapper_gets_its_time_axis_by_dim_name(built):
    path, truth = built("seed_wrapped")
    assert truth.inputs.feeds["x"].shape == (3, 40, 1)
    assert truth.axes == {"hidden": 1}  # [batch_size, sequence_length, H]; probability has none
    assert truth.outputs["probability"].shape == (3, 1)


def test_ulp_distance_counts_representable_values():
    from lstm_bench.tolerances import ulp_distance

    one = np.float32(1.0)
    assert ulp_distance(np.nextafter(one, np.float32(2)), one, np.float32) == 1
    assert ulp_distance(np.float32(-0.0), np.float32(0.0), np.float32) == 0
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    assert ulp_distance(tiny, -tiny, np.float32) == 2
    assert ulp_distance(np.float16(1.0) + np.float16(2 ** -10) * 3, np.float16(1.0), np.float16) == 3


def test_compare_collects_every_failure_kind():
    from lstm_bench.verify.parity import compare

    truth = {"Y": np.zeros((4, 2)), "Y_h": np.ones((2, 3)), "Y_c": np.ones(3), "extra": np.ones(2)}
    outputs = {"Y": np.full((4, 2), np.nan, np.float32), "Y_h": np.ones((3, 2), np.float32),
               "Y_c": np.array([1, 1, 1.5], np.float32)}
    result = compare("rt", outputs, truth, "float32", {"Y": 0})
    assert not result and result.status == "fail"
    assert [(f.output, f.metric) for f in result.failures] == [
        ("Y", "non_finite"), ("Y_h", "shape"), ("Y_c", "abs_error"), ("extra", "missing")]
    y_c = result.failures[2]
    assert y_c.value == 0.5 and y_c.limit == pytest.approx(1e-5 + 1e-4) and "index [2]" in str(y_c)
    assert result.to_dict()["failures"][0]["runtime"] == "rt"
