"""Runtimes one by one: availability, the ort-cuda fallback rule and placement, torch's two
paths, the float16 converter, and the inputs (random, ragged, .npz checks)."""

import numpy as np
import onnx
import pytest

from lstm_bench.exporters.weights import export_weights
from lstm_bench.errors import LSTMBenchError
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.runtimes.cuda import cuda_device_reason
from lstm_bench.runtimes.inputs import input_specs, load_inputs, make_inputs
from lstm_bench.runtimes.ort_cuda import OrtCudaRuntime, placement_from_profile, predicted_fallback
from lstm_bench.runtimes.registry import RUNTIMES, get_runtime


def one_node(tmp_path, spec, name="m", **options):
    path = tmp_path / f"{name}.onnx"
    export_weights(LSTMWeights.random(spec, seed=1), path, **options)
    return path, onnx.load(str(path))


def test_registry_lists_every_backend_and_each_says_why_it_cannot_run():
    assert list(RUNTIMES) == ["ort-cpu", "ort-cuda", "torch-cpu", "torch-cuda", "numpy",
                              "onnx-reference", "ort-cpu-int8", "ort-cpu-fp16",
                              "openvino-cpu", "openvino-cpu-static"]
    for name in RUNTIMES:
        runtime = get_runtime(name)
        assert runtime.name == name and runtime.device in ("cpu", "cuda")
        reason = runtime.available()
        assert reason is None or (isinstance(reason, str) and reason)
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
    from lstm_bench.runtimes.torch_rt import TorchRuntime

    for spec, path_name in [(LSTMSpec(3, 4, direction="reverse"), "nn.LSTM"),
                            (LSTMSpec(3, 4, peepholes=True), "torch recurrence (peepholes)")]:
        path, _ = one_node(tmp_path, spec)
        runtime = TorchRuntime()
        runtime.open(str(path))
        assert runtime.paths == {"lstm": path_name}


def test_float16_conversion(tmp_path):
    from lstm_bench.runtimes.ort_variants import to_float16

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
    from lstm_bench.runtimes.parity import compare

    result = compare("numpy", {}, {}, "float32")
    assert result.status == "fail" and not result
    assert [f.metric for f in result.failures] == ["outputs"]
    nan_truth = compare("numpy", {"Y": np.ones(3, np.float32)}, {"Y": np.array([1.0, np.nan, 1.0])},
                        "float32")
    assert nan_truth.status == "fail" and nan_truth.failures[0].metric == "abs_error"


def test_streaming_fails_a_runtime_whose_chunked_states_are_nan(tmp_path):
    from lstm_bench.runtimes.ort_cpu import OrtRuntime
    from lstm_bench.runtimes.streaming import streaming_parity

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
