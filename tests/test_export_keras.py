"""Keras 3 .keras archives to ONNX: real Keras (torch backend) models, compared with predict.

Every model is built and saved once per module (Keras import and predict are slow); each
export runs in onnxruntime at a batch size (and, where the Keras model allows it, a sequence
length) other than the one it was built with, and is compared with ``model.predict`` and with
``keras_reference``, the float64 walk of the archive's weights.
"""

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import onnx
import pytest

from lstm_bench.exporters.keras import export_keras, keras_reference, read_keras
from lstm_bench.errors import LSTMBenchError
from lstm_bench.reference import run_model

import keras  # noqa: E402  (after KERAS_BACKEND is set above)
import onnxruntime as ort  # noqa: E402
from keras import layers  # noqa: E402

from keras_models import save_randomized  # noqa: E402

ATOL = 1e-5
# The seed example passes input_shape to LSTM as written; Keras 3 warns and accepts it.
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")


def _seed_model():
    """The seed's example as written: Sequential, LSTM(50, input_shape=(100, 1)), Dense(1, sigmoid)."""
    model = keras.Sequential()
    model.add(layers.LSTM(50, input_shape=(100, 1)))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 100, 1), dtype=np.float32), rng.integers(0, 2, (64, 1)),
              epochs=1, batch_size=32, verbose=0)
    return model


def _functional_model():
    inputs = keras.Input((None, 4), name="signal")
    x = layers.LSTM(6, return_sequences=True, name="encoder")(inputs)
    x = layers.Dropout(0.3)(x)
    x = layers.Bidirectional(layers.LSTM(3), merge_mode="ave", name="summary")(x)
    x = layers.Dense(4, activation="gelu")(x)
    x = layers.Dense(2)(x)
    outputs = layers.Activation("softmax")(x)
    return keras.Model(inputs, outputs, name="classifier")


def _sequential(*stack, features=3):
    return keras.Sequential([keras.Input((None, features)), *stack])


# name -> builder; every model except the (trained) seed gets random weights, biases included.
CASES = {
    "seed": _seed_model,
    "stacked": lambda: _sequential(layers.LSTM(8, return_sequences=True), layers.LSTM(6),
                                   layers.Dense(2, activation="softmax")),
    "go_backwards_sequence": lambda: _sequential(layers.LSTM(5, go_backwards=True, return_sequences=True),
                                                 layers.Dense(2, activation="softplus")),
    "go_backwards_last": lambda: _sequential(layers.LSTM(5, go_backwards=True), layers.Dense(1)),
    "bidirectional": lambda: _sequential(
        layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True), merge_mode="sum"),
        layers.Bidirectional(layers.LSTM(3), merge_mode="mul"), layers.Dense(1, activation="tanh")),
    "hard_sigmoid": lambda: _sequential(layers.LSTM(6, recurrent_activation="hard_sigmoid"),
                                        layers.Dense(1, activation="sigmoid")),
    "no_bias": lambda: _sequential(layers.LSTM(5, use_bias=False, return_sequences=True),
                                   layers.Dropout(0.5), layers.LSTM(4, use_bias=False),
                                   layers.Dense(2, use_bias=False, activation="relu")),
    "activations": lambda: _sequential(
        layers.LSTM(5, activation="softsign", recurrent_activation="hard_sigmoid", return_sequences=True),
        layers.LSTM(4, activation="linear", return_sequences=True),
        layers.Bidirectional(layers.LSTM(3, activation="elu", recurrent_activation="hard_sigmoid",
                                         return_sequences=True)),
        layers.LSTM(3, activation="relu", recurrent_activation="hard_sigmoid", go_backwards=True),
        layers.Dense(3, activation="selu")),
    "functional": _functional_model,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (archive path, Keras model); built and saved once for the whole module."""
    return save_randomized(CASES, tmp_path_factory.mktemp("keras"), np.random.default_rng(1),
                           keep=("seed",))


def _input_size(model):
    return model.input_shape[-1]


def _run_onnx(onnx_model, X):
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


def _count_lstm_layers(model):
    return sum(isinstance(layer, (layers.LSTM, layers.Bidirectional)) for layer in model.layers)


@pytest.mark.parametrize("opset", [22, 14])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_keras_predict(saved, case, opset):
    path, model = saved[case]
    onnx_model = export_keras(path, opset=opset)
    # Keras' fixed time axis (the seed's 100) is kept for predict; otherwise another length.
    steps = model.input_shape[1] or 13
    X = np.random.default_rng(2).standard_normal((5, steps, _input_size(model))).astype(np.float32)
    expected = model.predict(X, verbose=0) if opset == 22 else keras_reference(path, X)
    got = _run_onnx(onnx_model, X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(keras_reference(path, X), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("case", list(CASES))
def test_graph_agrees_with_keras_reference_in_float64(saved, case):
    """The graph's assembly (Transposes, Slice, merges) against keras_reference's NumPy one."""
    path, model = saved[case]
    X = np.random.default_rng(4).standard_normal((3, 9, _input_size(model)))
    (got,) = run_model(export_keras(path), {read_keras(path).input_name: X}).values()
    # Not bit-equal: ONNX attributes and constants are float32 (HardSigmoid's 1/6, Selu's alpha).
    np.testing.assert_allclose(got, keras_reference(path, X), rtol=0, atol=1e-7)


@pytest.mark.parametrize("case", list(CASES))
def test_graph_shape(saved, case):
    path, model = saved[case]
    onnx_model = export_keras(path)
    onnx.checker.check_model(onnx_model, full_check=True)
    ops = [node.op_type for node in onnx_model.graph.node]
    assert ops.count("LSTM") == _count_lstm_layers(model)
    assert not {"Loop", "Scan"} & set(ops)
    for node in onnx_model.graph.node:
        if node.op_type == "LSTM":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs.get("layout", 0) == 0
    (graph_input,) = onnx_model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:2]] == ["batch", "seq_len"]
    assert dims[2].dim_value == _input_size(model)
    assert [o.name for o in onnx_model.graph.output] == ["output"]
    assert onnx_model.opset_import[0].version == 22


def test_bidirectional_is_one_node(saved):
    onnx_model = export_keras(saved["bidirectional"][0])
    directions = [onnx.helper.get_attribute_value(a).decode() for n in onnx_model.graph.node
                  if n.op_type == "LSTM" for a in n.attribute if a.name == "direction"]
    assert directions == ["bidirectional"] * 3


def test_functional_names_and_hard_sigmoid_attributes(saved):
    onnx_model = export_keras(saved["functional"][0])
    assert onnx_model.graph.input[0].name == "signal"
    assert [n.name for n in onnx_model.graph.node if n.op_type == "LSTM"] == ["encoder", "summary"]
    hard = export_keras(saved["hard_sigmoid"][0])
    (node,) = [n for n in hard.graph.node if n.op_type == "LSTM"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert [a.decode() for a in attrs["activations"]] == ["HardSigmoid", "Tanh", "Tanh"]
    assert attrs["activation_alpha"] == pytest.approx([1 / 6])
    assert attrs["activation_beta"] == pytest.approx([0.5])


def test_seed_runs_at_any_length_and_batch(saved):
    """The seed model was saved for 100 steps; the graph takes any length and batch size."""
    path, _ = saved["seed"]
    onnx_model = export_keras(path)
    for batch, steps in ((1, 7), (17, 250)):
        X = np.random.default_rng(batch).random((batch, steps, 1), dtype=np.float32)
        np.testing.assert_allclose(_run_onnx(onnx_model, X), keras_reference(path, X),
                                   rtol=0, atol=ATOL)


def test_read_keras_describes_the_seed(saved):
    parsed = read_keras(saved["seed"][0])
    assert (parsed.input_size, parsed.time_steps) == (1, 100)
    lstm, dense = parsed.layers
    assert lstm.weights.spec.hidden_size == 50 and not lstm.return_sequences
    assert dense.kernel.shape == (50, 1) and dense.activation == "sigmoid"


@pytest.mark.parametrize("case", ["functional", "stacked", "bidirectional"])
def test_finds_weights_without_name_attributes(saved, case, tmp_path):
    """Older Keras 3 files lack the layer name on ``layers/<key>/vars``: fall back to the key
    Keras derives from the class name and the layer's position."""
    import h5py

    path = saved[case][0]
    with zipfile.ZipFile(path) as archive:
        buffer = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(buffer, "a") as h5:
        h5.visititems(lambda _, item: item.attrs.__delitem__("name") if "name" in item.attrs else None)
    stripped = tmp_path / "stripped.keras"
    _rewrite(path, stripped, weights=buffer.getvalue())
    X = np.random.default_rng(3).standard_normal((2, 6, _input_size(saved[case][1]))).astype(np.float32)
    np.testing.assert_array_equal(keras_reference(stripped, X), keras_reference(path, X))


def test_saves_atomically(saved, tmp_path):
    path = saved["seed"][0]
    target = tmp_path / "seed.onnx"
    model = export_keras(path, target)
    assert onnx.load(str(target)) == model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed.onnx"]
    with pytest.raises(LSTMBenchError, match="cannot write"):
        export_keras(path, tmp_path / "missing_dir" / "x.onnx")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(LSTMBenchError):
        export_keras(bad, tmp_path / "bad.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.keras", "seed.onnx"]


def test_never_imports_keras(saved):
    """The exporter reads the archive with zipfile, json and h5py only."""
    code = ("import sys; from exporters.keras import export_keras, keras_reference; "
            f"export_keras({str(saved['functional'][0])!r}); "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'keras'], 'keras imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ---------------------------------------------------------------------------------------------
# Refusals


def _lambda_model():
    inputs = keras.Input((7, 3))
    x = layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)
    return keras.Model(inputs, layers.LSTM(4)(x))


def _shared_layer_model():
    inputs = keras.Input((None, 3))
    shared = layers.Dense(3, name="shared")
    return keras.Model(inputs, layers.LSTM(2)(shared(shared(inputs))))


def _masked_merge_model():
    inputs = keras.Input((None,), dtype="int32")
    x = layers.Embedding(9, 3, mask_zero=True)(inputs)
    both = layers.Add(name="join")([layers.LSTM(2, return_sequences=True)(x),
                                    layers.LSTM(2, return_sequences=True)(x)])
    return keras.Model(inputs, layers.LSTM(2)(both))


REFUSED = {
    "shared": (_shared_layer_model, r"layer 'shared' is called more than once \(a shared layer\)"),
    "masked_merge": (_masked_merge_model, r"Add layer 'join': merges masked tensors"),
    "lambda": (_lambda_model, r"'doubler' of class Lambda is not supported \(Lambda layers hold code"),
    "average_same": (lambda: _sequential(layers.AveragePooling1D(2, padding="same", name="pool"),
                                         layers.LSTM(3)),
                     r"'pool': padding='same' is not supported: Keras' backends disagree"),
    "masked_backwards_sequence": (
        lambda: keras.Sequential([keras.Input((None,), dtype="int32"),
                                  layers.Embedding(5, 2, mask_zero=True),
                                  layers.LSTM(3, go_backwards=True, return_sequences=True,
                                              name="back")]),
        r"LSTM layer 'back': go_backwards with return_sequences on a masked input"),
    "flatten_unknown_length": (lambda: _sequential(layers.LSTM(3, return_sequences=True),
                                                   layers.Flatten(name="flat")),
                               r"'flat': flattens a time axis of unknown length"),
    "gru": (lambda: _sequential(layers.GRU(3, name="gru")), r"'gru' of class GRU"),
    "bidirectional_gru": (lambda: _sequential(layers.Bidirectional(layers.GRU(3), name="bi")),
                          r"Bidirectional layer 'bi' wraps 'GRU'"),
    "lstm_selu": (lambda: _sequential(layers.LSTM(3, activation="selu", name="rnn")),
                  r"LSTM layer 'rnn': activation='selu' has no ONNX LSTM equivalent"),
    "no_lstm": (lambda: _sequential(layers.Dense(3)), r"no LSTM layer"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refuses_unsupported_layers(case, tmp_path):
    build, message = REFUSED[case]
    path = tmp_path / f"{case}.keras"
    build().save(path)
    with pytest.raises(LSTMBenchError, match=message) as info:
        export_keras(path, tmp_path / "out.onnx")
    assert str(path) in str(info.value)
    assert not (tmp_path / "out.onnx").exists()


def _rewrite(source, target, drop=(), weights=None):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            if item in drop:
                continue
            data = weights if item == "model.weights.h5" and weights is not None else src.read(item)
            dst.writestr(item, data)


def test_refuses_bad_archives(saved, tmp_path):
    good = saved["seed"][0]
    with pytest.raises(LSTMBenchError, match="no such file"):
        export_keras(tmp_path / "absent.keras")
    not_zip = tmp_path / "plain.keras"
    not_zip.write_bytes(b"\x89HDF\r\n not a zip")
    with pytest.raises(LSTMBenchError, match=r"plain\.keras: not a zip archive"):
        export_keras(not_zip)
    no_weights = tmp_path / "no_weights.keras"
    _rewrite(good, no_weights, drop={"model.weights.h5"})
    with pytest.raises(LSTMBenchError, match=r"no_weights\.keras: .*no model\.weights\.h5"):
        export_keras(no_weights)
    no_config = tmp_path / "no_config.keras"
    _rewrite(good, no_config, drop={"config.json"})
    with pytest.raises(LSTMBenchError, match=r"no_config\.keras: .*no config\.json"):
        export_keras(no_config)
    bad_h5 = tmp_path / "bad_h5.keras"
    _rewrite(good, bad_h5, weights=b"garbage")
    with pytest.raises(LSTMBenchError, match="model.weights.h5 is not a readable HDF5"):
        keras_reference(bad_h5, np.zeros((1, 4, 1), np.float32))


def test_refuses_weights_of_the_wrong_shape(saved, tmp_path):
    import h5py

    good = saved["seed"][0]
    with zipfile.ZipFile(good) as archive:
        buffer = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(buffer, "a") as h5:
        del h5["layers/lstm/cell/vars/1"]
        h5["layers/lstm/cell/vars/1"] = np.zeros((49, 200), np.float32)
    wrong = tmp_path / "wrong.keras"
    _rewrite(good, wrong, weights=buffer.getvalue())
    with pytest.raises(LSTMBenchError, match=r"LSTM layer 'lstm\w*': layers/lstm/cell/vars/1 has "
                                             r"shape \[49, 200\], expected \[50, 200\]"):
        export_keras(wrong)


def test_refuses_bad_opset_and_input(saved):
    path = saved["seed"][0]
    with pytest.raises(LSTMBenchError, match="opset 7"):
        export_keras(path, opset=7)
    with pytest.raises(LSTMBenchError, match=r"shape \[2, 100\]"):
        keras_reference(path, np.zeros((2, 100), np.float32))


def test_a_keras_model_saved_for_one_length_is_proven_at_another(tmp_path):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    from keras import layers
    from keras_models import save_randomized

    from lstm_bench.exporters.source import CHECK_STEPS, export_source

    def classic():  # the seed's example, smaller: LSTM(4) over a saved length of 10
        return keras.Sequential([keras.Input((10, 1)), layers.LSTM(4),
                                 layers.Dense(1, activation="sigmoid")])

    (archive, _), = save_randomized({"classic": classic}, tmp_path, np.random.default_rng(0)).values()
    result = export_source(archive, tmp_path / "classic.onnx")
    assert result.passed and result.check_shape == (4, 10, 1)
    dims = onnx.load(str(tmp_path / "classic.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_param  # the file declares the length dynamic ...
    # ... so the proof ran at another length too, against the float64 walk
    assert result.reference.endswith(f", and vs the archive's weights in float64 on input "
                                     f"[4, {CHECK_STEPS}, 1]")
    assert any(f"proven at [4, 10, 1] against Keras and the float64 walk, and at "
               f"[4, {CHECK_STEPS}, 1] against the walk alone" in n for n in result.notes)
