"""The float64 reference against truth from outside the project.

ONNX's own backend node cases, onnxruntime's CPU kernel as an independent implementation over
the whole attribute space, onnx's ReferenceEvaluator for layout=1, and a scalar transcription of
the six gate equations. Where the spec is silent the reference follows onnxruntime CPU
(docs/reference.md lists each choice and the test here that pins it).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from lstm_bench import reference
from lstm_bench.exporters.weights import export_weights
from lstm_bench.errors import LSTMBenchError
from lstm_bench.spec import DIRECTIONS, LSTMSpec, LSTMWeights

ACTIVATIONS = ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus")

# ORT computes in float32 with fast sigmoid/tanh approximations (about 1e-6 from float64 truth);
# a few steps of recurrence amplify that to a few 1e-6. Scaled by the output's magnitude so
# that unbounded activations (Relu, Affine) are judged relative to their size.
ORT_RTOL = 1e-5
ORT_ATOL = 1e-5


def _load_backend_lstm_cases():
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the other node cases warn about overflowing casts
        return [case for case in load_model_tests(kind="node") if case.name.startswith("test_lstm")]


BACKEND_CASES = _load_backend_lstm_cases()


def test_backend_suite_ships_the_lstm_cases():
    names = {case.name for case in BACKEND_CASES}
    assert len(names) >= 6, names
    assert {"test_lstm_defaults", "test_lstm_with_peepholes", "test_lstm_bidirectional"} <= names


@pytest.mark.parametrize("case", BACKEND_CASES, ids=[case.name for case in BACKEND_CASES])
def test_onnx_backend_node_case(case):
    assert case.data_sets, f"{case.name} carries no data"
    for inputs, expected in case.data_sets:
        feeds = {value.name: array for value, array in zip(case.model.graph.input, inputs)}
        got = reference.run_model(case.model, feeds)
        for value, want in zip(case.model.graph.output, expected):
            assert got[value.name].dtype == np.float64
            # onnx's expected outputs are float32 roundings of a float64 computation.
            np.testing.assert_allclose(got[value.name], want, rtol=1e-6, atol=1e-7,
                                       err_msg=f"{case.name}: {value.name}")


# ---------------------------------------------------------------------------------------------
# onnxruntime CPU over the whole attribute space


def _ort_session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _mixed_case(name, rng):
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in name)


def _random_case(seed):
    """One seeded, well-conditioned configuration: spec, float32 weights, model, feeds.

    Unbounded activations (Relu, Affine, Softplus...) on the gates, fed back through the
    peepholes, can grow outputs doubly exponentially; a float32 runtime cannot be judged
    against them at any fixed tolerance, so such draws are replaced by the next draw.
    """
    rng = np.random.default_rng(seed)
    while True:
        case = _draw_case(rng)
        if max(np.max(np.abs(o), initial=0.0) for o in _reference_for(case[1], case[3])) < 100:
            return case


def _draw_case(rng):
    direction = str(rng.choice(DIRECTIONS))
    D = 2 if direction == "bidirectional" else 1
    T, batch, I, H = (int(rng.integers(1, n)) for n in (6, 5, 5, 6))
    activations = alpha = beta = None
    if rng.random() < 0.6:
        activations = tuple(_mixed_case(str(rng.choice(ACTIVATIONS)), rng) for _ in range(3 * D))
        # Omitted, short or long alpha/beta lists: defaults fill in what the lists lack.
        if rng.random() < 0.65:
            alpha = tuple(float(a) for a in rng.uniform(0.1, 1.2, int(rng.integers(1, 3 * D + 1))))
        if rng.random() < 0.65:
            beta = tuple(float(b) for b in rng.uniform(-0.5, 1.0, int(rng.integers(1, 3 * D + 1))))
    spec = LSTMSpec(
        I, H, direction=direction, bias=bool(rng.random() < 0.7),
        peepholes=bool(rng.random() < 0.5),
        clip=float(rng.uniform(0.3, 3.0)) if rng.random() < 0.3 else None,
        input_forget=int(rng.random() < 0.25),
        activations=activations, activation_alpha=alpha, activation_beta=beta)
    weights = LSTMWeights.random(spec, seed=int(rng.integers(2**31)), scale=0.6)
    X = rng.standard_normal((T, batch, I)).astype(np.float32)
    feeds = {"X": X}
    lens = None
    if rng.random() < 0.6:
        lens = rng.integers(0, T + 1, batch).astype(np.int32)
        if batch > 1:  # make sure both ends of 0..T show up
            lens[rng.permutation(batch)[:2]] = (0, T)
        feeds["sequence_lens"] = lens
    initial = rng.random() < 0.5
    if initial:
        feeds["initial_h"] = rng.uniform(-1, 1, (D, batch, H)).astype(np.float32)
        feeds["initial_c"] = rng.uniform(-1, 1, (D, batch, H)).astype(np.float32)
    model = export_weights(weights, sequence_lens=lens is not None, initial_states=initial)
    return spec, weights, model, feeds


def _reference_for(weights, feeds, **options):
    return reference.lstm(feeds["X"], weights.W, weights.R, weights.B, feeds.get("sequence_lens"),
                          feeds.get("initial_h"), feeds.get("initial_c"), weights.P,
                          **weights.spec.attributes(), **options)


def _assert_close_to_ort(got, expected, label):
    for name, g, e in zip(("Y", "Y_h", "Y_c"), got, expected):
        assert g.shape == e.shape, f"{label} {name}: shape {g.shape} vs ORT {e.shape}"
        scale = max(1.0, float(np.max(np.abs(e), initial=0.0)))
        np.testing.assert_allclose(g, e, rtol=ORT_RTOL, atol=ORT_ATOL * scale,
                                   err_msg=f"{label}: {name}")


RANDOM_SEEDS = range(300)


def test_random_configurations_agree_with_onnxruntime():
    """300 seeded configurations; every failure is collected and reported together."""
    failures = []
    seen = {"directions": set(), "activations": set(), "mixed_case": False, "len_0": 0,
            "len_T": 0, "clip": 0, "input_forget": 0, "peepholes": 0, "no_bias": 0, "initial": 0,
            "default_alpha": 0}
    for seed in RANDOM_SEEDS:
        spec, weights, model, feeds = _random_case(seed)
        expected = _ort_session(model).run(None, feeds)
        got = _reference_for(weights, feeds)
        try:
            _assert_close_to_ort(got, expected, f"seed {seed} {spec}")
        except AssertionError as exc:
            failures.append(" ".join(str(exc).split())[:400])
        lens = feeds.get("sequence_lens", np.array([]))
        seen["directions"].add(spec.direction)
        seen["activations"].update(a.lower() for a in spec.activations or ())
        seen["mixed_case"] |= any(a not in ACTIVATIONS for a in spec.activations or ())
        seen["len_0"] += bool(np.any(lens == 0))
        seen["len_T"] += bool(np.any(lens == len(feeds["X"])))
        seen["clip"] += spec.clip is not None
        seen["input_forget"] += spec.input_forget
        seen["peepholes"] += spec.peepholes
        seen["no_bias"] += not spec.bias
        seen["initial"] += "initial_h" in feeds
        seen["default_alpha"] += spec.activations is not None and spec.activation_alpha is None
    assert not failures, f"{len(failures)} of {len(RANDOM_SEEDS)} disagree:\n" + "\n".join(failures)
    # The draw must really span the attribute space.
    assert seen["directions"] == set(DIRECTIONS)
    assert seen["activations"] == {a.lower() for a in ACTIVATIONS}
    assert seen["mixed_case"]
    assert all(seen[k] >= 20 for k in ("len_0", "len_T", "clip", "input_forget", "peepholes",
                                       "no_bias", "initial", "default_alpha")), seen


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_default_alpha_beta_follow_onnxruntime(name):
    """No activation_alpha/beta: LeakyRelu 0.01, HardSigmoid 0.2/0.5, Elu 1.0, 0 otherwise."""
    for activations in ((name, "Tanh", "Tanh"), ("Sigmoid", name, name)):
        spec = LSTMSpec(3, 4, activations=activations)
        weights = LSTMWeights.random(spec, seed=7, scale=0.8)
        X = np.random.default_rng(1).normal(0, 2, (4, 3, 3)).astype(np.float32)
        model = export_weights(weights)
        _assert_close_to_ort(_reference_for(weights, {"X": X}),
                             _ort_session(model).run(None, {"X": X}), str(activations))


def test_alpha_beta_are_consumed_in_order_by_the_functions_that_take_them():
    # HardSigmoid takes alpha and beta, Tanh takes none, Affine takes both, ScaledTanh too,
    # LeakyRelu only alpha: alpha = (HS 0.3, Affine 0.7, ScaledTanh 1.1, LeakyRelu 0.05).
    spec = LSTMSpec(2, 3, direction="bidirectional",
                    activations=("hardSIGMOID", "TANH", "affine", "ScaledTanh", "leakyrelu",
                                 "Tanh"),
                    activation_alpha=(0.3, 0.7, 1.1, 0.05), activation_beta=(0.4, 0.1, 0.9))
    weights = LSTMWeights.random(spec, seed=2)
    X = np.random.default_rng(3).standard_normal((5, 2, 2)).astype(np.float32)
    got = _reference_for(weights, {"X": X})
    _assert_close_to_ort(got, _ort_session(export_weights(weights)).run(None, {"X": X}), "order")
    # Lists that run out: HardSigmoid (0.3, 0.4), Affine (0.7, default beta 0), ScaledTanh and
    # LeakyRelu their defaults (0, 0) and 0.01; ORT agrees, and so do the explicit values.
    short = spec.replace(activation_alpha=(0.3, 0.7), activation_beta=(0.4,))
    short_weights = LSTMWeights(short, weights.W, weights.R, weights.B)
    got = _reference_for(short_weights, {"X": X})
    _assert_close_to_ort(got, _ort_session(export_weights(short_weights)).run(None, {"X": X}),
                         "short lists")
    explicit = reference.lstm(X, weights.W, weights.R, weights.B, **short.attributes() | {
        "activation_alpha": [0.3, 0.7, 0.0, 0.01], "activation_beta": [0.4, 0.0, 0.0]})
    for a, b in zip(got, explicit):
        np.testing.assert_array_equal(a, b)


def test_thresholded_relu_passes_only_inputs_above_alpha():
    """ORT's ThresholdedRelu is x > alpha (the spec's table writes >=): a cell-gate input of
    exactly alpha gives c~ = 0, so C_t = 0 and Y = 0 for that unit."""
    spec = LSTMSpec(1, 2, activations=("Sigmoid", "ThresholdedRelu", "Tanh"),
                    activation_alpha=(0.5,))
    B = np.zeros((1, 16), np.float32)
    B[0, 6:8] = (0.5, 0.75)  # Wb of the cell gate: unit 0 sits exactly on alpha
    weights = LSTMWeights(spec, np.zeros((1, 8, 1), np.float32), np.zeros((1, 8, 2), np.float32), B)
    X = np.ones((3, 1, 1), np.float32)
    got = _reference_for(weights, {"X": X})
    expected = _ort_session(export_weights(weights)).run(None, {"X": X})
    _assert_close_to_ort(got, expected, "threshold")
    Y = got[0]
    assert np.all(Y[..., 0] == 0) and np.all(Y[..., 1] > 0.1)


def test_ragged_lengths_zero_past_the_end_and_frozen_states():
    """Spec-silent sequence_lens behaviour, checked against ORT and spelled out."""
    spec = LSTMSpec(2, 3, direction="bidirectional", peepholes=True)
    weights = LSTMWeights.random(spec, seed=11)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4, 3, 2)).astype(np.float32)
    lens = np.array([4, 2, 0], np.int32)
    h0 = rng.uniform(-1, 1, (2, 3, 3)).astype(np.float32)
    c0 = rng.uniform(-1, 1, (2, 3, 3)).astype(np.float32)
    feeds = {"X": X, "sequence_lens": lens, "initial_h": h0, "initial_c": c0}
    Y, Y_h, Y_c = _reference_for(weights, feeds)
    model = export_weights(weights, sequence_lens=True, initial_states=True)
    _assert_close_to_ort((Y, Y_h, Y_c), _ort_session(model).run(None, feeds), "ragged")
    assert np.all(Y[2:, :, 1] == 0) and np.all(Y[:, :, 2] == 0)  # zero past each length
    assert np.all(Y_h[:, 2] == 0) and np.all(Y_c[:, 2] == 0)  # length 0: zero, not initial
    np.testing.assert_array_equal(Y_h[0, 1], Y[1, 0, 1])  # forward: state at step len-1
    np.testing.assert_array_equal(Y_h[1, 1], Y[0, 1, 1])  # reverse: state after t = 0
    # The short sequence alone, unpadded, gives the same outputs.
    alone = reference.lstm(X[:2, 1:2], weights.W, weights.R, weights.B, None, h0[:, 1:2],
                           c0[:, 1:2], weights.P, **spec.attributes())
    np.testing.assert_allclose(Y[:2, :, 1:2], alone[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Y_h[:, 1:2], alone[1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Y_c[:, 1:2], alone[2], rtol=1e-13, atol=1e-15)


def test_clip_bounds_the_gate_inputs_after_the_peepholes():
    """clip applies to the i, f, c and o pre-activations, after the peephole terms (o's uses
    C_t), and not to C_t before h; ORT decides where the spec is vague."""
    spec = LSTMSpec(2, 3, peepholes=True, clip=0.3)
    weights = LSTMWeights.random(spec, seed=5, scale=2.0)
    X = np.random.default_rng(6).normal(0, 3, (6, 2, 2)).astype(np.float32)
    h0, c0 = np.random.default_rng(7).uniform(-3, 3, (2, 1, 2, 3)).astype(np.float32)
    feeds = {"X": X, "initial_h": h0, "initial_c": c0}
    got = _reference_for(weights, feeds)
    model = export_weights(weights, initial_states=True)
    _assert_close_to_ort(got, _ort_session(model).run(None, feeds), "clip")
    unclipped = _reference_for(weights.__class__(spec.replace(clip=None), weights.W, weights.R,
                                                 weights.B, weights.P), feeds)
    assert np.max(np.abs(got[0] - unclipped[0])) > 0.05  # the clip really binds here
    # Identity activations expose the bound: every gate lies in +-clip, so |h| <= clip * |C|.
    identity = spec.replace(activations=("Affine",) * 3, activation_alpha=(1.0,) * 3,
                            activation_beta=(0.0,) * 3)
    Y, _, _ = reference.lstm(X, weights.W, weights.R, weights.B, None, h0, c0, weights.P,
                             **identity.attributes())
    c_prev = c0[0].astype(np.float64)
    for t in range(len(X)):
        c_max = 0.3 * np.abs(c_prev) + 0.3 * 0.3  # |f C + i c~| with |f|, |i|, |c~| <= clip
        assert np.all(np.abs(Y[t, 0]) <= 0.3 * c_max + 1e-12)
        c_prev = c_max


def test_unpadded_batch_and_all_full_lengths_give_the_same_result():
    spec = LSTMSpec(3, 4, direction="reverse")
    weights = LSTMWeights.random(spec, seed=9)
    X = np.random.default_rng(2).standard_normal((5, 2, 3))
    plain = reference.lstm(X, weights.W, weights.R, weights.B, direction="reverse")
    full = reference.lstm(X, weights.W, weights.R, weights.B, np.array([5, 5]), direction="reverse")
    for a, b in zip(plain, full):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# opsets and whole models through run_model


@pytest.mark.parametrize("opset", [7, 14, 22])
def test_run_model_evaluates_each_opset(opset):
    spec = LSTMSpec(3, 4, direction="bidirectional", peepholes=True, clip=2.0,
                    activations=("Sigmoid", "Tanh", "Softsign", "HardSigmoid", "Elu", "Tanh"))
    weights = LSTMWeights.random(spec, seed=opset)
    rng = np.random.default_rng(opset)
    feeds = {"X": rng.standard_normal((4, 3, 3)).astype(np.float32),
             "sequence_lens": np.array([4, 1, 3], np.int32),
             "initial_h": rng.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
             "initial_c": rng.uniform(-1, 1, (2, 3, 4)).astype(np.float32)}
    model = export_weights(weights, opset=opset, sequence_lens=True, initial_states=True)
    assert model.opset_import[0].version == opset
    got = reference.run_model(model, feeds)
    assert set(got) == {"Y", "Y_h", "Y_c"}
    direct = _reference_for(weights, feeds)
    for name, want in zip(("Y", "Y_h", "Y_c"), direct):
        assert got[name].dtype == np.float64
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    _assert_close_to_ort([got[n] for n in ("Y", "Y_h", "Y_c")],
                         _ort_session(model).run(None, feeds), f"opset {opset}")


def test_run_model_promotes_the_ops_around_the_lstm(tmp_path):
    """LSTM -> Squeeze -> Gemm -> Sigmoid, as exporters write it, run in float64 from a file."""
    spec = LSTMSpec(2, 5)
    weights = LSTMWeights.random(spec, seed=3)
    lstm_model = export_weights(weights, outputs=("Y_h",))
    graph = lstm_model.graph
    rng = np.random.default_rng(8)
    graph.initializer.extend([
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(rng.standard_normal((5, 1)).astype(np.float32), "dense_W"),
        numpy_helper.from_array(np.array([0.1], np.float32), "dense_b")])
    graph.node.extend([helper.make_node("Squeeze", ["Y_h", "axes"], ["h"]),
                       helper.make_node("Gemm", ["h", "dense_W", "dense_b"], ["logit"]),
                       helper.make_node("Sigmoid", ["logit"], ["prob"])])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, ["batch", 1]))
    onnx.checker.check_model(lstm_model)
    path = tmp_path / "model.onnx"
    onnx.save(lstm_model, str(path))
    X = rng.standard_normal((6, 3, 2)).astype(np.float32)
    got = reference.run_model(path, {"X": X})["prob"]
    assert got.dtype == np.float64 and got.shape == (3, 1)
    np.testing.assert_allclose(got, _ort_session(lstm_model).run(None, {"X": X})[0],
                               rtol=1e-5, atol=1e-6)
    _, Y_h, _ = reference.lstm(X, weights.W, weights.R, weights.B)
    dense_W = numpy_helper.to_array(graph.initializer[-2]).astype(np.float64)
    want = 1 / (1 + np.exp(-(Y_h[0] @ dense_W + np.float64(np.float32(0.1)))))
    np.testing.assert_allclose(got, want, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# layout = 1


def _layout_case(direction, peepholes, bias, seed):
    spec = LSTMSpec(3, 4, direction=direction, layout=1, peepholes=peepholes, bias=bias)
    weights = LSTMWeights.random(spec, seed=seed, dtype=np.float64)
    D = spec.num_directions
    rng = np.random.default_rng(seed)
    feeds = {"X": rng.standard_normal((2, 5, 3)),  # [batch, seq_len, input_size]
             "initial_h": rng.uniform(-1, 1, (2, D, 4)),  # [batch, num_directions, hidden]
             "initial_c": rng.uniform(-1, 1, (2, D, 4))}
    return spec, weights, feeds


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("peepholes,bias", [(False, True), (True, True), (True, False)])
def test_layout_1_matches_onnx_reference_evaluator(direction, peepholes, bias):
    from onnx.reference import ReferenceEvaluator

    spec, weights, feeds = _layout_case(direction, peepholes, bias, seed=len(direction))
    model = export_weights(weights, opset=22, initial_states=True, dtype="float64")
    expected = ReferenceEvaluator(model).run(None, feeds)  # computes in float64 here
    got = _reference_for(weights, feeds)
    for name, g, e in zip(("Y", "Y_h", "Y_c"), got, expected):
        assert g.shape == e.shape, name
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14, err_msg=name)
    assert got[0].shape == (2, 5, spec.num_directions, 4)  # [batch, seq_len, D, hidden]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_layout_1_is_the_transposed_layout_0(direction):
    D = 2 if direction == "bidirectional" else 1
    spec = LSTMSpec(3, 4, direction=direction, peepholes=True, clip=1.5, input_forget=1,
                    activations=("HardSigmoid", "Softsign", "Tanh") * D)
    weights = LSTMWeights.random(spec, seed=4, dtype=np.float64)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 6, 3))  # batch-major
    h0, c0 = rng.uniform(-1, 1, (2, 3, D, 4))
    lens = np.array([6, 0, 4])
    attrs = spec.attributes()
    Y1, Y_h1, Y_c1 = reference.lstm(X, weights.W, weights.R, weights.B, lens, h0, c0, weights.P,
                                    **attrs, layout=1)
    Y0, Y_h0, Y_c0 = reference.lstm(X.transpose(1, 0, 2), weights.W, weights.R, weights.B, lens,
                                    h0.transpose(1, 0, 2), c0.transpose(1, 0, 2), weights.P,
                                    **attrs, layout=0)
    np.testing.assert_allclose(Y1, Y0.transpose(2, 0, 1, 3), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(Y_h1, Y_h0.transpose(1, 0, 2), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(Y_c1, Y_c0.transpose(1, 0, 2), rtol=1e-14, atol=1e-15)
    assert np.abs(Y1).max() > 0.01  # not trivially zero


# ---------------------------------------------------------------------------------------------
# a scalar transcription of the equations


def _scalar_lstm(X, W, R, B, P, h0, c0, reverse):
    """One direction, element by element: the six equations of the ONNX spec, literally."""
    def sigmoid(x):
        return 1.0 / (1.0 + math.exp(-x))

    T, batch, I = X.shape
    H = R.shape[1]
    gate = {"i": 0, "o": 1, "f": 2, "c": 3}
    Y = [[[0.0] * H for _ in range(batch)] for _ in range(T)]
    Y_h, Y_c = [], []
    for b in range(batch):
        h = [float(v) for v in h0[b]]
        c = [float(v) for v in c0[b]]
        for t in (reversed(range(T)) if reverse else range(T)):
            def pre(name, j, h=h):
                row = gate[name] * H + j
                return (sum(X[t, b, k] * W[row, k] for k in range(I))
                        + sum(h[k] * R[row, k] for k in range(H)) + B[row] + B[4 * H + row])
            new_h, new_c = [0.0] * H, [0.0] * H
            for j in range(H):
                i_t = sigmoid(pre("i", j) + P[j] * c[j])
                f_t = sigmoid(pre("f", j) + P[2 * H + j] * c[j])
                c_tilde = math.tanh(pre("c", j))
                new_c[j] = f_t * c[j] + i_t * c_tilde
                o_t = sigmoid(pre("o", j) + P[H + j] * new_c[j])
                new_h[j] = o_t * math.tanh(new_c[j])
            h, c = new_h, new_c
            Y[t][b] = h
        Y_h.append(h)
        Y_c.append(c)
    return np.array(Y), np.array(Y_h), np.array(Y_c)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_matches_a_scalar_loop_over_the_gate_equations(direction):
    spec = LSTMSpec(2, 3, direction=direction, peepholes=True)
    weights = LSTMWeights.random(spec, seed=21, scale=0.9, dtype=np.float64)
    D = spec.num_directions
    rng = np.random.default_rng(22)
    X = rng.standard_normal((4, 2, 2))
    h0, c0 = rng.uniform(-1, 1, (2, D, 2, 3))
    Y, Y_h, Y_c = reference.lstm(X, weights.W, weights.R, weights.B, None, h0, c0, weights.P,
                                 direction=direction)
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        want = _scalar_lstm(X, weights.W[d], weights.R[d], weights.B[d], weights.P[d],
                            h0[d], c0[d], reverse)
        np.testing.assert_allclose(Y[:, d], want[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(Y_h[d], want[1], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(Y_c[d], want[2], rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# dtypes


def test_float64_whatever_the_input_dtype():
    spec = LSTMSpec(2, 3)
    weights = LSTMWeights.random(spec, seed=1)
    X = np.random.default_rng(0).standard_normal((3, 2, 2))
    results = [reference.lstm(X.astype(dt), weights.W.astype(dt), weights.R.astype(dt),
                              weights.B.astype(dt)) for dt in (np.float16, np.float32, np.float64)]
    for outputs in results:
        assert [o.dtype for o in outputs] == [np.float64] * 3
    # float16 inputs are widened exactly, so equal inputs give bit-equal outputs.
    X16, W16, R16, B16 = (a.astype(np.float16) for a in (X, weights.W, weights.R, weights.B))
    wide = reference.lstm(X16.astype(np.float64), W16.astype(np.float64), R16.astype(np.float64),
                          B16.astype(np.float64))
    for a, b in zip(results[0], wide):
        np.testing.assert_array_equal(a, b)


def test_float32_option_is_close_to_float64_and_returned_as_float32():
    spec = LSTMSpec(8, 16, direction="bidirectional", peepholes=True)
    weights = LSTMWeights.random(spec, seed=3)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 4, 8))
    lens = np.array([20, 7, 0, 13])
    truth = reference.lstm(X, weights.W, weights.R, weights.B, lens, P=weights.P,
                           direction="bidirectional")
    fast = reference.lstm(X, weights.W, weights.R, weights.B, lens, P=weights.P,
                          direction="bidirectional", dtype=np.float32)
    for name, t, f in zip(("Y", "Y_h", "Y_c"), truth, fast):
        assert f.dtype == np.float32, name
        np.testing.assert_allclose(f, t, rtol=1e-5, atol=1e-6, err_msg=name)
        assert not np.array_equal(f.astype(np.float64), t)  # really computed in float32


# ---------------------------------------------------------------------------------------------
# bad input


def _good_inputs(direction="forward"):
    spec = LSTMSpec(2, 3, direction=direction, peepholes=True)
    w = LSTMWeights.random(spec, seed=0)
    D = spec.num_directions
    return dict(X=np.zeros((4, 2, 2), np.float32), W=w.W, R=w.R, B=w.B, P=w.P,
                initial_h=np.zeros((D, 2, 3)), initial_c=np.zeros((D, 2, 3)), direction=direction)


def _with(**changes):
    bidirectional = changes.get("direction") == "bidirectional"
    inputs = _good_inputs("bidirectional" if bidirectional else "forward")
    inputs.update(changes)
    return inputs


def _nan_in(array):
    array = array.copy()
    array.flat[0] = np.nan
    return array


_GOOD = _good_inputs()
_SHAPE = r"has shape \[{}\], expected \[{}\] \(\[{}\]\)"
# case -> (inputs to reference.lstm, the message it must raise, as a regex)
BAD_INPUTS = {
    "X rank": (_with(X=np.zeros((4, 2))),
               r"X has rank 2, expected 3: \[seq_length, batch_size, input_size\]"),
    "X rank layout 1": (_with(X=np.zeros((4,)), layout=1),
                        r"X has rank 1, expected 3: \[batch_size, seq_length, input_size\]"),
    "W shape": (_with(W=_GOOD["W"][:, :, :1]),
                "W " + _SHAPE.format("1, 12, 1", "1, 12, 2",
                                     r"num_directions, 4\*hidden_size, input_size")),
    "W for one direction in a bidirectional LSTM": (
        _with(direction="bidirectional", W=_GOOD["W"]),
        r"W has shape \[1, 12, 2\], expected \[2, 12, 2\]"),
    "R shape": (_with(R=_GOOD["R"][:, :8]),
                "R " + _SHAPE.format("1, 8, 3", "1, 12, 3",
                                     r"num_directions, 4\*hidden_size, hidden_size")),
    "R rank": (_with(R=_GOOD["R"][0]),
               r"R has rank 2, expected 3: \[num_directions, 4\*hidden_size, hidden_size\]"),
    "B shape": (_with(B=_GOOD["B"][:, :12]),
                "B " + _SHAPE.format("1, 12", "1, 24", r"num_directions, 8\*hidden_size")),
    "P shape": (_with(P=_GOOD["P"][:, :3]),
                "P " + _SHAPE.format("1, 3", "1, 9", r"num_directions, 3\*hidden_size")),
    "initial_h shape": (_with(initial_h=np.zeros((1, 3, 3))),
                        "initial_h " + _SHAPE.format("1, 3, 3", "1, 2, 3",
                                                     "num_directions, batch_size, hidden_size")),
    "initial_c shape layout 1": (
        _with(initial_c=np.zeros((1, 2, 3)), layout=1, X=np.zeros((2, 4, 2)), initial_h=None),
        "initial_c " + _SHAPE.format("1, 2, 3", "2, 1, 3",
                                     "batch_size, num_directions, hidden_size")),
    "hidden_size disagrees with R": (
        _with(hidden_size=5), r"hidden_size attribute is 5 but R \[1, 12, 3\] has hidden_size 3"),
    "unknown activation": (_with(activations=["Sigmoid", "Swish", "Tanh"]),
                           r"unknown activation 'Swish'"),
    "clip zero": (_with(clip=0.0), r"clip must be > 0, got 0.0"),
    "clip negative": (_with(clip=-1.0), r"clip must be > 0, got -1.0"),
    "sequence_lens above T": (
        _with(sequence_lens=np.array([4, 5])),
        r"sequence_lens values must lie in 0\.\.4 \(seq_length\), got \[4, 5\]"),
    "sequence_lens negative": (_with(sequence_lens=np.array([-1, 2])),
                               r"sequence_lens values must lie in 0\.\.4"),
    "sequence_lens shape": (
        _with(sequence_lens=np.array([4, 4, 4])),
        r"sequence_lens has shape \[3\] and dtype int64, expected integers of shape \[2\]"),
    "sequence_lens floats": (_with(sequence_lens=np.array([4.0, 4.0])),
                             r"sequence_lens has shape \[2\] and dtype float64, expected integers"),
    "too few activations for bidirectional": (
        _with(direction="bidirectional", activations=["Sigmoid", "Tanh", "Tanh"]),
        r"activations: 3 given, expected 6"),
    "NaN in W": (_with(W=_nan_in(_GOOD["W"])), r"W holds non-finite values"),
    "inf in R": (_with(R=_GOOD["R"] * np.inf), r"R holds non-finite values"),
    "NaN in X": (_with(X=_nan_in(np.zeros((4, 2, 2)))), r"X holds non-finite values"),
    "integer X": (_with(X=np.zeros((4, 2, 2), np.int64)),
                  r"X must be a floating-point tensor, got int64"),
    "input_forget": (_with(input_forget=2), r"input_forget must be 0 or 1, got 2"),
    "direction": (_with(direction="sideways"),
                  r"direction must be one of \('forward', 'reverse', 'bidirectional'\), "
                  r"got 'sideways'"),
    "layout": (_with(layout=2), r"layout must be 0 or 1, got 2"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_names_the_input_and_what_was_expected(case):
    inputs, message = BAD_INPUTS[case]
    inputs = dict(inputs)
    with pytest.raises(LSTMBenchError, match=message):
        reference.lstm(inputs.pop("X"), inputs.pop("W"), inputs.pop("R"), **inputs)


def test_good_inputs_of_the_bad_input_table_run():
    for direction in DIRECTIONS:
        Y, _, _ = reference.lstm(**{k: v for k, v in _good_inputs(direction).items()})
        assert Y.shape == (4, 2 if direction == "bidirectional" else 1, 2, 3)


def test_run_model_rejects_bad_feeds_and_paths(tmp_path):
    model = export_weights(LSTMWeights.random(LSTMSpec(2, 3), seed=0), sequence_lens=True)
    X = np.zeros((2, 1, 2), np.float32)
    with pytest.raises(LSTMBenchError, match=r"missing \['sequence_lens'\], unknown \[\]"):
        reference.run_model(model, {"X": X})
    with pytest.raises(LSTMBenchError, match=r"missing \[\], unknown \['x'\]"):
        reference.run_model(model, {"X": X, "sequence_lens": np.array([2], np.int32), "x": X})
    with pytest.raises(LSTMBenchError, match="no such model file"):
        reference.run_model(tmp_path / "absent.onnx", {"X": X})
    (tmp_path / "junk.onnx").write_bytes(b"\x00 not a model")
    with pytest.raises(LSTMBenchError, match="not a readable ONNX model"):
        reference.run_model(tmp_path / "junk.onnx", {"X": X})
    (tmp_path / "empty.onnx").write_bytes(b"")  # parses as an empty ModelProto
    with pytest.raises(LSTMBenchError, match="not an ONNX model"):
        reference.run_model(tmp_path / "empty.onnx", {"X": X})
    # The same model with the right feeds runs.
    out = reference.run_model(model, {"X": X, "sequence_lens": np.array([1], np.int32)})
    assert out["Y"].shape == (2, 1, 1, 3) and np.all(out["Y"][1] == 0)


@pytest.mark.parametrize("T, batch", [(0, 2), (3, 0)])
def test_empty_sequence_or_batch_keeps_the_operator_shapes(T, batch):
    W, R = np.full((1, 12, 2), 0.1), np.full((1, 12, 3), 0.1)
    initial_h = np.full((1, batch, 3), 0.5)
    Y, Y_h, Y_c = reference.lstm(np.zeros((T, batch, 2)), W, R, initial_h=initial_h)
    assert Y.shape == (T, 1, batch, 3) and Y_h.shape == Y_c.shape == (1, batch, 3)
    if T == 0:  # no step: zeros, as onnxruntime's CPU kernel gives (not initial_h)
        assert not Y_h.any() and not Y_c.any()
