"""The shared LSTM description: validation, .npz round trip, graph read-back."""

import numpy as np
import pytest

from lstm_bench.exporters.weights import export_weights
from lstm_bench.errors import LSTMBenchError
from lstm_bench.graph import lstm_flops, lstm_nodes, summary
from lstm_bench.spec import LSTMSpec, LSTMWeights


def test_spec_rejects_bad_attributes():
    with pytest.raises(LSTMBenchError, match="direction"):
        LSTMSpec(2, 3, direction="sideways")
    with pytest.raises(LSTMBenchError, match="hidden_size"):
        LSTMSpec(2, 0)
    with pytest.raises(LSTMBenchError, match="layout"):
        LSTMSpec(2, 3, layout=2)


def test_weights_check_shapes_and_values():
    spec = LSTMSpec(2, 3, direction="bidirectional")
    good = LSTMWeights.random(spec)
    with pytest.raises(LSTMBenchError, match=r"W has shape \[1, 12, 2\], expected \[2, 12, 2\]"):
        LSTMWeights(spec, good.W[:1], good.R, good.B)
    bad = good.R.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(LSTMBenchError, match="R holds non-finite"):
        LSTMWeights(spec, good.W, bad, good.B)
    with pytest.raises(LSTMBenchError, match="B is missing"):
        LSTMWeights(spec, good.W, good.R)


def test_npz_round_trip_keeps_every_attribute(tmp_path):
    spec = LSTMSpec(2, 3, direction="reverse", peepholes=True, clip=1.5, input_forget=1,
                    activations=("HardSigmoid", "Tanh", "Softsign"), activation_alpha=(0.3,),
                    activation_beta=(0.4,))
    weights = LSTMWeights.random(spec, seed=3)
    weights.save_npz(tmp_path / "w.npz")
    back = LSTMWeights.load_npz(tmp_path / "w.npz")
    assert back.spec == spec
    for key, value in weights.tensors().items():
        np.testing.assert_array_equal(back.tensors()[key], value)


def test_npz_errors_name_the_file(tmp_path):
    with pytest.raises(LSTMBenchError, match="no such file"):
        LSTMWeights.load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(LSTMBenchError, match="junk.npz"):
        LSTMWeights.load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", W=np.zeros((1, 8, 2), np.float32))
    with pytest.raises(LSTMBenchError, match="'R' is missing"):
        LSTMWeights.load_npz(tmp_path / "partial.npz")


def test_graph_reads_back_what_export_weights_wrote():
    spec = LSTMSpec(4, 5, direction="bidirectional", peepholes=True, clip=2.0,
                    activations=("Sigmoid", "Tanh", "Relu") * 2)
    weights = LSTMWeights.random(spec, seed=1)
    model = export_weights(weights, sequence_lens=True, initial_states=True)
    (node,) = lstm_nodes(model)
    assert node.spec == spec
    np.testing.assert_array_equal(node.weights.W, weights.W)
    info = summary(model)
    assert info["opset"] == 22
    assert info["inputs"][0]["shape"] == ["seq_len", "batch", 4]
    assert info["lstm_nodes"][0]["sequence_lens"] and info["lstm_nodes"][0]["initial_states"]
    assert lstm_flops(model, batch=3, seq_len=7) == 8 * 5 * (4 + 5) * 3 * 7 * 2


def test_a_text_file_named_npz_is_not_an_npz(tmp_path):
    (tmp_path / "w.npz").write_text("W,R\n1,2\n")
    with pytest.raises(LSTMBenchError, match="not an .npz file"):
        LSTMWeights.load_npz(tmp_path / "w.npz")
