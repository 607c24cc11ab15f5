"""Token inputs: ids drawn over the embedding's real rows, padded ragged batches, checked files."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_bench.errors import LSTMBenchError
from lstm_bench.reference import run_model
from lstm_bench.feeds import Given, load_inputs, make_inputs, token_vocab

VOCAB, DIM, HIDDEN = 300, 3, 4


def _token_model(metadata=None):
    """tokens int32 [batch, seq] -> Cast -> Gather(table) -> Transpose -> LSTM -> Y_h."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((VOCAB, DIM)).astype(np.float32), "table"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * HIDDEN, DIM)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * HIDDEN, HIDDEN)).astype(np.float32), "R")]
    nodes = [helper.make_node("Cast", ["tokens"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "ids"], ["embedded"]),
             helper.make_node("Transpose", ["embedded"], ["X"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["X", "W", "R"], ["", "Y_h"], hidden_size=HIDDEN)]
    graph = helper.make_graph(
        nodes, "tokens", [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", "seq"])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "batch", HIDDEN])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model


def test_vocab_is_read_through_value_keeping_ops():
    assert token_vocab(_token_model()) == {"tokens": VOCAB}


def test_random_tokens_span_the_vocabulary_and_are_recorded():
    inputs = make_inputs(_token_model(), batch=64, seq_len=20)
    tokens = inputs.feeds["tokens"]
    assert tokens.dtype == np.int32 and tokens.min() >= 0 and tokens.max() < VOCAB
    assert tokens.max() > VOCAB // 2, "not only the first ten rows"
    assert inputs.describe()["vocab"] == {"tokens": VOCAB}
    run_model(_token_model(), inputs.feeds)  # every id is a valid row


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_ragged_tokens_are_padded_on_the_asked_side(padding):
    inputs = make_inputs(_token_model(), batch=6, seq_len=9, ragged=True, given=Given(padding=padding))
    tokens, lengths = inputs.feeds["tokens"], inputs.lengths["tokens"]
    assert inputs.padding == padding and max(lengths) == 9 and min(lengths) < 9
    for row, n in zip(tokens, lengths):
        real = row[9 - n:] if padding == "pre" else row[:n]
        pad = row[:9 - n] if padding == "pre" else row[n:]
        assert (real != 0).all() and (pad == 0).all()


def test_padding_side_comes_from_the_files_metadata():
    model = _token_model({"lstm_bench.padding": "post", "lstm_bench.pad_value": "0.0",
                          "lstm_bench.padded_inputs": "tokens"})
    inputs = make_inputs(model, batch=4, seq_len=7, ragged=True)
    assert inputs.padding == "post"
    assert all((row[n:] == 0).all() for row, n in zip(inputs.feeds["tokens"], inputs.lengths["tokens"]))


def test_ragged_without_lengths_or_padding_is_refused():
    with pytest.raises(LSTMBenchError, match="sequence_lens input or padded"):
        make_inputs(_token_model(), batch=4, ragged=True)
    with pytest.raises(LSTMBenchError, match="padding must be one of"):
        make_inputs(_token_model(), given=Given(padding="middle"))


def test_a_file_with_ids_past_the_table_is_refused(tmp_path):
    path = tmp_path / "tokens.npz"
    np.savez(path, tokens=np.full((2, 5), VOCAB, np.int32))
    with pytest.raises(LSTMBenchError, match=f"token ids {VOCAB}..{VOCAB}, but its embedding has {VOCAB} rows"):
        load_inputs(path, _token_model())
    np.savez(path, tokens=np.full((2, 5), VOCAB - 1, np.int32))
    loaded = load_inputs(path, _token_model())
    assert (loaded.batch, loaded.seq_len, loaded.vocab) == (2, 5, {"tokens": VOCAB})
