"""Runtimes one by one: availability, the ort-cuda fallback rule and placement, torch's two
paths, the float16 converter, and the inputs (random, ragged, .npz checks)."""

import json

import numpy as np
import onnx
import pytest

from lstm_bench.bench.machine import LIBRARIES
from lstm_bench.cli import main
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.weights import export_weights
from lstm_bench.feeds import input_specs, load_inputs, make_inputs
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.cuda import cuda_device_reason
from lstm_bench.runtimes.features import EVERYTHING, LSTMSupport
from lstm_bench.runtimes.ort_cpu import OrtRuntime, session_options
from lstm_bench.runtimes.ort_cuda import OrtCudaRuntime, placement_from_profile, predicted_fallback
from lstm_bench.runtimes.ort_options import parse_ort_options
from lstm_bench.runtimes.ort_variants import OrtFp16Runtime, OrtInt8Runtime, cpu_flags, \
    int8_settings, to_float16
from lstm_bench.runtimes.registry import RUNTIMES, get_runtime
from lstm_bench.runtimes.torch_rt import TorchRuntime
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.tolerances import TOLERANCES
from lstm_bench.verify.parity import compare
from lstm_bench.verify.streaming import streaming_parity
from tools import int8_survey


def one_node(tmp_path, spec, name="m", **options):
    path = tmp_path / f"{name}.onnx"
    export_weights(LSTMWeights.random(spec, seed=1), path, **options)
    return path, onnx.load(str(path))


def test_registry_lists_every_backend_and_each_says_why_it_cannot_run():
    for name in RUNTIMES:
        runtime = get_runtime(name)
        assert runtime.name == name
        assert runtime.device == ("cuda" if name.endswith("-cuda") else "cpu"), name
        # the tolerance row it is judged by where it changes the model, else its outputs' dtype
        expected = {"-int8": "int8", "-fp16": "float16"}.get(name[name.rfind("-"):])
        assert runtime.precision == expected or (expected is None and runtime.precision
                                                 in (None, "float32")), name
        assert runtime.precision is None or runtime.precision in TOLERANCES
        assert isinstance(runtime.lstm_support, LSTMSupport)
        assert set(runtime.libraries) <= set(LIBRARIES)  # each report records their versions
        assert isinstance(runtime, BaseRuntime)  # the Protocol's defaults and context manager
        reason = runtime.available()
        assert reason is None or (isinstance(reason, str) and reason)
    assert {"onnxruntime", "torch", "openvino"} <= set(LIBRARIES)
    with pytest.raises(LSTMBenchError, match="unknown runtime 'tpu'"):
        get_runtime("tpu")


@pytest.mark.skipif(cuda_device_reason() is None, reason="a CUDA device is present")
@pytest.mark.parametrize("name", ["ort-cuda", "torch-cuda"])
def test_gpu_runtimes_skip_with_the_reason_without_a_gpu(name):
    assert get_runtime(name).available().startswith("no CUDA device")


@pytest.mark.parametrize("spec,expected", [
    (LSTMSpec(3, 4), []),
    (LSTMSpec(3, 4, activations=("sigmoid", "TANH", "Tanh")), []),  # explicit defaults, any case
    (LSTMSpec(3, 4, direction="bidirectional", activations=("Sigmoid", "Tanh", "Tanh") * 2), []),
    (LSTMSpec(3, 4, clip=3.0), ["clip is set"]),
    (LSTMSpec(3, 4, peepholes=True), ["peepholes (P)"]),
    (LSTMSpec(3, 4, input_forget=1), ["input_forget = 1"]),
    (LSTMSpec(3, 4, activations=("HardSigmoid", "Tanh", "Tanh")), ["activations"]),
    (LSTMSpec(3, 4, activations=("Sigmoid", "Tanh", "Tanh"), activation_alpha=(0.5,)),
     ["activation_alpha is set"]),
    (LSTMSpec(3, 4, clip=1.0, peepholes=True, input_forget=1), ["clip", "input_forget", "peepholes"]),
])
def test_ort_cuda_fallback_rule(tmp_path, spec, expected):
    _, model = one_node(tmp_path, spec)
    found = predicted_fallback(model)
    if not expected:
        assert found == {}
    else:
        assert list(found) == ["lstm"]
        for word in expected:
            assert word in found["lstm"]


def test_node_placement_is_read_from_a_real_onnxruntime_profile(tmp_path):
    import onnxruntime

    path, _ = one_node(tmp_path, LSTMSpec(3, 4))
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "p")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {"X": np.zeros((2, 1, 3), np.float32)})
    assert placement_from_profile(session.end_profiling()) == {"lstm": "CPUExecutionProvider"}


class _StandInAccelerator(OrtCudaRuntime):
    """ort-cuda's selection logic with the Azure provider standing in for CUDA (no GPU here):
    onnxruntime places the LSTM on the CPU provider, which is what a CUDA fallback looks like."""

    providers = ["AzureExecutionProvider", "CPUExecutionProvider"]

    def available(self):
        import onnxruntime

        return None if "AzureExecutionProvider" in onnxruntime.get_available_providers() else "no Azure EP"


def test_ort_cuda_reports_lstm_nodes_the_session_placed_on_cpu(tmp_path):
    runtime = _StandInAccelerator()
    if runtime.available():
        pytest.skip(runtime.available())
    path, _ = one_node(tmp_path, LSTMSpec(3, 4, clip=1.0))
    runtime.open(str(path))
    assert runtime.placement == {"lstm": "CPUExecutionProvider"}
    assert runtime.fallback_nodes == {"lstm": "clip is set"}
    assert runtime.notes() == ["LSTM on CPU (fallback): lstm: clip is set"]
    out = runtime.run({"X": np.zeros((5, 2, 3), np.float32)})
    assert out["Y"].shape == (5, 1, 2, 4)


def test_torch_picks_nn_lstm_where_it_can_and_a_recurrence_elsewhere(tmp_path):
    for spec, path_name in [(LSTMSpec(3, 4, direction="reverse"), "nn.LSTM"),
                            (LSTMSpec(3, 4, peepholes=True), "torch recurrence (peepholes)")]:
        path, _ = one_node(tmp_path, spec)
        runtime = TorchRuntime()
        runtime.open(str(path))
        assert runtime.paths == {"lstm": path_name}


def test_float16_conversion(tmp_path):
    _, model = one_node(tmp_path, LSTMSpec(3, 4, peepholes=True))
    F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    converted = to_float16(model)
    onnx.checker.check_model(converted, full_check=True)
    assert {t.data_type for t in converted.graph.initializer} == {F16}
    assert {v.type.tensor_type.elem_type for v in
            list(converted.graph.input) + list(converted.graph.output)} == {F16}
    kept = to_float16(model, keep_io=True)
    onnx.checker.check_model(kept, full_check=True)
    assert [i.type.tensor_type.elem_type for i in kept.graph.input] == [F32]
    assert [n.op_type for n in kept.graph.node] == ["Cast", "LSTM", "Cast", "Cast", "Cast"]


# ---- inputs ----------------------------------------------------------------------------

def test_random_inputs_follow_the_layout_and_are_seeded(tmp_path):
    _, model = one_node(tmp_path, LSTMSpec(3, 4, layout=1), initial_states=True)
    a = make_inputs(model, batch=5, seq_len=7, seed=1, value_range=(2.0, 3.0))
    b = make_inputs(model, batch=5, seq_len=7, seed=1, value_range=(2.0, 3.0))
    assert a.feeds["X"].shape == (5, 7, 3) and a.feeds["initial_h"].shape == (5, 1, 4)
    assert all(np.array_equal(a.feeds[k], b.feeds[k]) for k in a.feeds)
    assert a.feeds["X"].min() >= 2.0 and a.feeds["X"].max() <= 3.0


def test_exported_wrapper_dims_are_mapped_by_name_then_position():
    from onnx import helper

    def graph_with(dims):
        x = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, dims)
        y = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, dims)
        return helper.make_model(helper.make_graph([helper.make_node("Identity", ["input"], ["out"])],
                                                   "g", [x], [y]))

    for dims in (["batch_size", "sequence_length", 1], ["s0", "s1", 1], [None, None, 1],
                 ["sequence_length", "batch_size", 1]):
        feeds = make_inputs(graph_with(dims), batch=3, seq_len=11).feeds
        expected = (11, 3, 1) if dims[0] == "sequence_length" else (3, 11, 1)
        assert feeds["input"].shape == expected, dims


def test_fixed_sequence_length_is_used_and_a_conflicting_one_refused(tmp_path):
    from onnx import helper

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 100, 1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                                                [helper.make_tensor_value_info("y", 1, None)]))
    assert make_inputs(model, batch=2).feeds["x"].shape == (2, 100, 1)
    with pytest.raises(LSTMBenchError, match="fixes the sequence length at 100"):
        make_inputs(model, seq_len=50)


def test_ragged_lengths(tmp_path):
    _, model = one_node(tmp_path, LSTMSpec(3, 4), sequence_lens=True)
    for seed in range(20):
        lengths = make_inputs(model, batch=6, seq_len=9, seed=seed, ragged=True,
                              zero_length=seed % 2 == 0).feeds["sequence_lens"]
        assert lengths.dtype == np.int32 and 9 in lengths and lengths.max() <= 9
        assert (0 in lengths) == (seed % 2 == 0) and (lengths.min() >= 1 or seed % 2 == 0)
    assert set(make_inputs(model, batch=3, seq_len=9).feeds["sequence_lens"]) == {9}
    with pytest.raises(LSTMBenchError, match="batch of at least 2"):
        make_inputs(model, batch=1, ragged=True)
    _, plain = one_node(tmp_path, LSTMSpec(3, 4), name="plain")
    with pytest.raises(LSTMBenchError, match="needs a model with a sequence_lens input"):
        make_inputs(plain, batch=2, ragged=True)


def test_npz_inputs_are_checked_against_the_model(tmp_path):
    _, model = one_node(tmp_path, LSTMSpec(3, 4), sequence_lens=True, initial_states=True)
    good = make_inputs(model, batch=2, seq_len=5).feeds
    np.savez(tmp_path / "good.npz", **good)
    loaded = load_inputs(tmp_path / "good.npz", model)
    assert loaded.batch == 2 and loaded.seq_len == 5 and loaded.source.endswith("good.npz")

    bad = dict(good, X=good["X"].astype(np.float64), extra=np.zeros(1))
    del bad["initial_c"]
    bad["initial_h"] = np.zeros((1, 3, 4), np.float32)  # batch 3 vs X's 2
    bad["sequence_lens"] = np.array([5, 9], np.int32)  # 9 > seq_len
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(LSTMBenchError) as info:
        load_inputs(tmp_path / "bad.npz", model)
    message = str(info.value)
    for part in ("missing ['initial_c']", "unknown ['extra']", "dtype float64",
                 "'initial_h' axis 1 (batch) is 3", "lengths [5, 9]"):
        assert part in message, message

    np.savez(tmp_path / "rank.npz", **dict(good, X=good["X"][0]))
    with pytest.raises(LSTMBenchError, match="rank 2"):
        load_inputs(tmp_path / "rank.npz", model)
    empty = {k: v[:, :0] if v.ndim == 3 else v[:0] for k, v in good.items()}  # batch 0
    np.savez(tmp_path / "empty.npz", **empty)
    with pytest.raises(LSTMBenchError, match="empty: an empty input verifies nothing"):
        load_inputs(tmp_path / "empty.npz", model)
    np.savez(tmp_path / "pickled.npz", X=np.array([{"a": 1}], dtype=object))
    with pytest.raises(LSTMBenchError, match="not a readable .npz"):
        load_inputs(tmp_path / "pickled.npz", model)
    with pytest.raises(LSTMBenchError, match="no such file"):
        load_inputs(tmp_path / "nope.npz", model)


def test_input_specs_mark_roles(tmp_path):
    _, model = one_node(tmp_path, LSTMSpec(3, 4), sequence_lens=True, initial_states=True)
    roles = {s.name: s.roles for s in input_specs(model)}
    assert roles == {"X": ("seq_len", "batch", None), "sequence_lens": ("batch",),
                     "initial_h": (None, "batch", None), "initial_c": (None, "batch", None)}


def test_a_runtime_with_nothing_to_compare_does_not_pass():
    result = compare("numpy", {}, {}, "float32")
    assert result.status == "fail" and not result
    assert [f.metric for f in result.failures] == ["outputs"]
    nan_truth = compare("numpy", {"Y": np.ones(3, np.float32)}, {"Y": np.array([1.0, np.nan, 1.0])},
                        "float32")
    assert nan_truth.status == "fail" and nan_truth.failures[0].metric == "abs_error"


def test_streaming_fails_a_runtime_whose_chunked_states_are_nan(tmp_path):
    path, model = one_node(tmp_path, LSTMSpec(2, 3), initial_states=True)
    feeds = make_inputs(model, batch=2, seq_len=9, seed=0).feeds

    class NanOnChunks(OrtRuntime):  # NaN > limit is False: must not read as a pass
        def run(self, feeds_):
            out = super().run(feeds_)
            if feeds_["X"].shape[0] < 9:
                out = {k: np.full_like(v, np.nan) for k, v in out.items()}
            return out

    runtime = NanOnChunks()
    runtime.open(str(path))
    result = streaming_parity(runtime, model, feeds, chunks=3)
    runtime.close()
    assert result.status == "fail"
    assert {f.output for f in result.failures} == {"Y", "Y_h", "Y_c"}


# ---- the Protocol: base class, context manager, global settings restored ------------------

def test_torch_runtimes_restore_the_global_thread_count_on_close(tmp_path):
    import torch

    path, _ = one_node(tmp_path, LSTMSpec(3, 4))
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with TorchRuntime() as runtime:
        runtime.open(str(path), threads=wanted)
        assert torch.get_num_threads() == wanted
        runtime.run({"X": np.zeros((2, 1, 3), np.float32)})
    assert torch.get_num_threads() == before
    assert runtime.modules == {}  # __exit__ closed it


def test_reduced_precision_variants_are_siblings_not_subclasses():
    assert not issubclass(OrtFp16Runtime, OrtInt8Runtime)
    assert not issubclass(OrtInt8Runtime, OrtFp16Runtime)


# ---- int8 settings per CPU ----------------------------------------------------------------

@pytest.mark.parametrize("flags,reduce_range,path", [
    ({"avx2", "avx512f", "avx512_vnni"}, False, "avx512_vnni"),
    ({"avx2", "avx_vnni"}, False, "avx_vnni"),
    ({"avx2", "fma"}, True, "without VNNI"),  # AMD EPYC Zen 3: AVX2 only
    ({"avx2", "avx512f", "avx512bw"}, True, "without VNNI"),  # Skylake-SP: AVX-512, no VNNI
    (None, True, "unknown"),
])
def test_int8_settings_follow_onnxruntimes_advice_for_the_cpu(flags, reduce_range, path):
    chosen = int8_settings(None if flags is None else frozenset(flags))
    assert chosen.reduce_range is reduce_range and chosen.per_channel is False
    assert path in chosen.cpu_path and f"reduce_range={reduce_range}" in str(chosen)


def test_this_cpus_flags_are_read():
    flags = cpu_flags()
    assert flags is None or "fpu" in flags or "fp" in flags  # x86 or Arm /proc/cpuinfo
    assert OrtInt8Runtime().quantization == int8_settings(flags)


# ---- LSTM features per runtime ------------------------------------------------------------

def test_lstm_support_explains_what_each_runtime_does_with_a_feature(tmp_path):
    _, model = one_node(tmp_path, LSTMSpec(3, 4, clip=0.5, layout=1), sequence_lens=True)
    assert EVERYTHING.explain(model) == []
    assert RUNTIMES["ort-cpu"].lstm_support.explain(model) == ["lstm: refuses layout = 1"]
    assert RUNTIMES["onnx-reference"].lstm_support.explain(model) == [
        "lstm: ignores sequence_lens, clip is set"]
    assert RUNTIMES["ort-cuda"].lstm_support.explain(model) == [
        "lstm: refuses layout = 1", "lstm: runs on the CPU provider for clip is set"]


# ---- onnxruntime session options ----------------------------------------------------------

def test_ort_options_are_parsed_validated_and_applied():
    options = parse_ort_options(["graph_optimization_level=ORT_ENABLE_BASIC",
                                 "execution_mode=parallel", "intra_op_spinning=0",
                                 "inter_op_threads=3", "session.use_env_allocators=1"])
    assert options.as_dict() == {"graph_optimization_level": "basic", "execution_mode": "parallel",
                                 "intra_op_spinning": "0", "inter_op_threads": "3",
                                 "session.use_env_allocators": "1"}
    import onnxruntime

    applied = session_options(2, options)
    assert applied.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert applied.execution_mode == onnxruntime.ExecutionMode.ORT_PARALLEL
    assert applied.intra_op_num_threads == 2 and applied.inter_op_num_threads == 3
    assert applied.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert not parse_ort_options(None) and parse_ort_options(["intra_op_spinning=1",
                                                              "intra_op_spinning=0"]).as_dict() \
        == {"intra_op_spinning": "0"}  # the last one wins
    for bad, needle in [("nonsense=1", "nonsense: unknown option"),
                        ("intra_op_spinning=2", "expected 0 or 1"),
                        ("execution_mode=fast", "sequential | parallel"),
                        ("inter_op_threads=-1", "0..4096"),
                        ("graph_optimization_level", "expected KEY=VALUE")]:
        with pytest.raises(LSTMBenchError, match=needle):
            parse_ort_options([bad])


@pytest.mark.parametrize("name", [name for name, runtime in RUNTIMES.items()
                                  if runtime.uses_ort_options and runtime.device == "cpu"])
def test_every_onnxruntime_runtime_records_its_options(tmp_path, name):
    path, _ = one_node(tmp_path, LSTMSpec(3, 4))
    options = parse_ort_options(["graph_optimization_level=disable_all", "intra_op_spinning=0"])
    with get_runtime(name, options) as runtime:  # made with its options (the registry's)
        runtime.open(str(path), threads=1)
        assert runtime.settings()["ort_options"] == options.as_dict()
        runtime.run({"X": np.zeros((2, 1, 3), np.float32)})


def test_bench_records_the_ort_options_in_every_row(tmp_path, capsys):
    path, _ = one_node(tmp_path, LSTMSpec(3, 4))
    report = tmp_path / "bench.json"
    code = main(["bench", str(path), "--runtimes", "ort-cpu,numpy", "--threads", "1",
                 "--seq-len", "5", "--min-time", "0", "--min-reps", "3", "--no-calibrate",
                 "--span", "0", "--quiet", "--ort-option", "intra_op_spinning=0", "--json",
                 str(report)])
    assert code == 0, capsys.readouterr()
    rows = {r["runtime"]: r for r in json.loads(report.read_text())["results"]}
    assert rows["ort-cpu"]["ort_options"] == {"intra_op_spinning": "0"}
    assert "ort_options" not in rows["numpy"]  # it does not use onnxruntime
    assert main(["bench", str(path), "--ort-option", "spinning=0"]) == 2
    assert "--ort-option spinning: unknown option" in capsys.readouterr().err


def test_int8_survey_measures_every_setting_and_marks_the_chosen_one(capsys):
    errors = int8_survey.survey(models=1)
    assert set(errors) == {(False, False), (False, True), (True, False), (True, True)}
    assert all(len(v) == 1 and np.isfinite(v[0]) and v[0] < 0.3 for v in errors.values())
    assert int8_survey.main(["1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ort-cpu-int8 on this CPU: QInt8 weights") and out.count("<- chosen") == 1
