"""Keras models as people build them for text and time series, exported and compared with Keras.

Common examples: text classification (Embedding with mask_zero, Bidirectional LSTM), sequence
tagging (TimeDistributed(Dense) over a masked Bidirectional LSTM), time-series forecasting
(Conv1D, pooling, normalization before an LSTM), Masking over float features, and functional
models whose branches are merged. Each is built and saved once (module scope), with random
weights, and judged against ``model.predict`` at a batch size and sequence length other than
anything it was built with, on batches padded in front (``pad_sequences``' default), at the
back, and not at all.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import onnxruntime as ort
import pytest

from lstm_bench.exporters.keras import export_keras, keras_reference
from lstm_bench.exporters.source import export_source

import keras  # noqa: E402  (after KERAS_BACKEND is set above)
from keras import layers  # noqa: E402

from keras_models import save_randomized  # noqa: E402

ATOL = 1e-5
VOCAB = 40


def _tokens():
    return keras.Input((None,), dtype="int32", name="tokens")


def _merged():
    inputs = keras.Input((None, 3), name="signal")
    forward = layers.LSTM(4, name="forward")(inputs)
    summary = layers.Bidirectional(layers.LSTM(3), name="summary")(inputs)
    both = layers.Concatenate()([forward, summary])
    added = layers.Add()([layers.Dense(5, activation="tanh")(both), layers.Dense(5)(both)])
    return keras.Model(inputs, layers.Dense(2, activation="softmax")(added))


def _masked_functional():
    inputs = _tokens()
    x = layers.Embedding(VOCAB, 6, mask_zero=True)(inputs)
    x = layers.LSTM(5, return_sequences=True)(x)
    x = layers.LSTM(4, go_backwards=True)(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


# name -> (builder, input kind: "tokens" or features, whether padded batches apply)
CASES = {
    "text_classification": (lambda: keras.Sequential([
        _tokens(), layers.Embedding(VOCAB, 8, mask_zero=True), layers.SpatialDropout1D(0.2),
        layers.Bidirectional(layers.LSTM(6)), layers.Dropout(0.5),
        layers.Dense(1, activation="sigmoid")]), "tokens"),
    "sequence_tagging": (lambda: keras.Sequential([
        _tokens(), layers.Embedding(VOCAB, 6, mask_zero=True),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True)),
        layers.TimeDistributed(layers.Dense(4, activation="softmax"))]), "tokens"),
    "masked_stack_average": (lambda: keras.Sequential([
        _tokens(), layers.Embedding(VOCAB, 6, mask_zero=True),
        layers.LSTM(6, return_sequences=True), layers.LayerNormalization(),
        layers.LSTM(5, return_sequences=True), layers.GlobalAveragePooling1D(),
        layers.Dense(2)]), "tokens"),
    "masked_functional_backwards": (_masked_functional, "tokens"),
    "embedding_no_mask": (lambda: keras.Sequential([
        _tokens(), layers.Embedding(VOCAB, 5), layers.LSTM(4, return_sequences=True),
        layers.GlobalMaxPooling1D(), layers.Dense(1)]), "tokens"),
    "forecasting_conv": (lambda: keras.Sequential([
        keras.Input((None, 3)), layers.Conv1D(8, 3, padding="causal", activation="relu"),
        layers.MaxPooling1D(2), layers.Conv1D(6, 2, strides=2, padding="same", dilation_rate=1),
        layers.BatchNormalization(), layers.LSTM(6), layers.Dense(1)]), "features"),
    "forecasting_sequence": (lambda: keras.Sequential([
        keras.Input((None, 2)), layers.LSTM(5, return_sequences=True),
        layers.AveragePooling1D(2), layers.TimeDistributed(layers.Dense(1))]), "features"),
    "masking_flatten": (lambda: keras.Sequential([
        keras.Input((14, 2)), layers.Masking(mask_value=0.0), layers.LSTM(5, return_sequences=True),
        layers.Flatten(), layers.Dense(1)]), "features"),
    "merged_branches": (_merged, "features"),
    "autoencoder_repeat_vector": (lambda: keras.Sequential([
        keras.Input((None, 2)), layers.LSTM(6), layers.RepeatVector(5),
        layers.LSTM(4, return_sequences=True), layers.TimeDistributed(layers.Dense(2))]),
        "features"),
    "reshape": (lambda: keras.Sequential([
        keras.Input((None, 3)), layers.LSTM(4), layers.Dense(8), layers.Reshape((4, 2)),
        layers.LSTM(3, go_backwards=True, return_sequences=True), layers.Reshape((-1,))]),
        "features"),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (archive path, Keras model); built and saved once for the whole module."""
    builders = {name: build for name, (build, _) in CASES.items()}
    return save_randomized(builders, tmp_path_factory.mktemp("keras_layers"),
                           np.random.default_rng(7))


def _batch(model, kind, padding, rng, batch=5, steps=11):
    """A batch at another size and length than the fixture's; padded rows where asked."""
    steps = model.input_shape[1] or steps
    if kind == "tokens":
        X = rng.integers(1, VOCAB, (batch, steps)).astype(np.int32)  # as keras.Input declares
    else:
        X = rng.standard_normal((batch, steps, model.input_shape[-1])).astype(np.float32)
    lengths = [steps, steps - 3, 2, steps - 1, 1][:batch]
    for row, n in enumerate(lengths):
        if padding == "pre":
            X[row, :steps - n] = 0
        elif padding == "post":
            X[row, n:] = 0
    return X


def _onnx(path, X):
    session = ort.InferenceSession(export_keras(path).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: X})[0]


MASKED = {"text_classification", "sequence_tagging", "masked_stack_average",
          "masked_functional_backwards", "masking_flatten"}


# padded batches where the model masks; elsewhere padding would be just data
PADDED = [(case, padding) for case in CASES
          for padding in (("pre", "post", None) if case in MASKED else (None,))]


@pytest.mark.filterwarnings("ignore:Layer 'flatten' .* was passed an input with a mask")
@pytest.mark.parametrize(("case", "padding"), PADDED)
def test_matches_keras_predict(saved, case, padding):
    path, model = saved[case]
    X = _batch(model, CASES[case][1], padding, np.random.default_rng(3))
    expected = model.predict(X, verbose=0)
    got = _onnx(path, X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    walk = keras_reference(path, X if CASES[case][1] == "tokens" else X.astype(np.float64))
    np.testing.assert_allclose(walk, expected, rtol=0, atol=ATOL)


def test_masks_become_sequence_lens(saved):
    """One LSTM node per Keras LSTM, each fed the mask's lengths; padding side in metadata."""
    proto = export_keras(saved["text_classification"][0])
    (node,) = [n for n in proto.graph.node if n.op_type == "LSTM"]
    assert len(node.input) >= 5 and node.input[4]
    assert not {"Loop", "Scan"} & {n.op_type for n in proto.graph.node}
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["lstm_bench.padding"] == "pre" and props["lstm_bench.padded_inputs"] == "tokens"
    assert proto.graph.input[0].type.tensor_type.elem_type == 6  # int32, as keras.Input says


def test_export_source_proves_against_keras_predict(saved, tmp_path):
    """The CLI's engine: keras predict in safe mode first, the float64 walk second."""
    path, _ = saved["sequence_tagging"]
    result = export_source(path, tmp_path / "tagger.onnx")
    assert result.passed and result.max_abs_error < ATOL
    assert result.reference.startswith("keras predict (safe mode) and the archive's weights")
    assert result.check_shape == (4, 37)  # the proof's own batch and length, padded rows in it
