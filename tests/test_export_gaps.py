"""Issue 20's export gaps: `.pt2` programs with several inputs or any layout, proj_size refused
alike on every route, and Keras token inputs keeping their integer type.

Each export is judged against its own framework (torch's module, Keras' predict) at shapes other
than the export's example: another batch and other lengths, each input by its own dims.
"""

import os
import shutil

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hostile import assert_bad_input, run_cli

import zoo
from lstm_bench import seed
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters import export_source, export_torch
from lstm_bench.exporters.torch_quiet import quiet

ATOL = 1e-5
PROJ_REFUSAL = "the LSTM has proj_size=4: ONNX's LSTM operator has no projection"


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _ort(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _save_program(module, args, shapes, path):
    with quiet():  # torch.export's warnings on nn.LSTM's flat weights
        program = torch.export.export(module, tuple(torch.from_numpy(a) for a in args),
                                      dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


def _agrees(path, module, feeds):
    """Max |onnxruntime - torch| over every output on ``feeds`` (asserted within ATOL)."""
    got = _ort(path, feeds)
    want = zoo._torch_run(module, feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    error = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    assert error < ATOL, error
    return error


def test_seq2seq_program_with_two_lengths_exports_and_verifies(tmp_path, capsys):
    """The zoo's seq2seq .pt2: src and tgt of two lengths torch.export fixed, the file takes
    any (each its own axis), and verify reaches its verdict on it."""
    source = zoo.save_seq2seq_program(tmp_path)
    out = tmp_path / "s.onnx"
    rc, text, err = run_cli(capsys, "export", source, "-o", out)
    assert rc == 0, err
    assert "on inputs src [3, 10, 6], tgt [3, 9, 6]" in text  # each input grown by its own dims
    assert "fixed axis 1 of src at 7" in text and "fixed axis 1 of tgt at 5" in text
    model = onnx.load(str(out))
    assert [(v.name, _dims(v)) for v in model.graph.input] == [
        ("src", ["batch", "src_len", 6]), ("tgt", ["batch", "tgt_len", 6])]
    assert _dims(model.graph.output[0]) == ["batch", "tgt_len", 11]
    entry = zoo.ZOO["seq2seq_pt2"]
    _agrees(out, entry.source(), entry.feeds())
    rc, _, err = run_cli(capsys, "verify", out, "--runtimes", "ort-cpu,numpy")
    assert rc == 0, err


def test_state_inputs_program_exports(tmp_path):
    """(x, h0, c0) -> (y, hn, cn): the states follow the batch, only x has a length."""
    module = zoo._kws_module()
    batch = torch.export.Dim("batch")
    source = _save_program(module, (zoo._rand(1, 2, 8, 10), zoo._rand(2, 1, 2, 16),
                                    zoo._rand(3, 1, 2, 16)),
                           ({0: batch}, {1: batch}, {1: batch}), tmp_path / "kws.pt2")
    result = export_source(source, tmp_path / "kws.onnx")
    assert result.passed
    model = onnx.load(str(tmp_path / "kws.onnx"))
    assert [_dims(v) for v in model.graph.input] == [["batch", "x_len", 10], [1, "batch", 16],
                                                     [1, "batch", 16]]
    feeds = {"x": zoo._rand(4, 5, 21, 10), "h0": zoo._rand(5, 1, 5, 16),
             "c0": zoo._rand(6, 1, 5, 16)}
    _agrees(tmp_path / "kws.onnx", module, feeds)


@pytest.mark.parametrize("width", ["fixed by torch.export", "Dim.AUTO"])
def test_image_program_takes_any_width(tmp_path, width):
    """A CRNN over [B, 1, 32, W]: the file takes any width, whether torch.export fixed it or
    kept it symbolic (its LSTM then runs W // 4 steps, which the dynamo exporter bakes)."""
    module = zoo._crnn_module()
    shapes = ({0: torch.export.Dim("batch")},) if width.startswith("fixed") else \
        ({0: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    source = _save_program(module, (zoo._rand(7, 2, 1, 32, 64),), shapes, tmp_path / "crnn.pt2")
    result = export_source(source, tmp_path / "crnn.onnx")
    assert result.passed and result.check_shape == (3, 1, 32, 80)
    model = onnx.load(str(tmp_path / "crnn.onnx"))
    assert _dims(model.graph.input[0]) == ["batch", 1, 32, "seq"]
    _agrees(tmp_path / "crnn.onnx", module, {"input": zoo._rand(8, 3, 1, 32, 160)})


class Projected(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 8, proj_size=4, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


def test_proj_size_is_refused_alike_on_every_route(tmp_path, capsys):
    """One line, exit 2, the same reason: .pt2 (before: onnxruntime's message on initial_c),
    both of torch's exporters through export_torch, and a checkpoint."""
    torch.manual_seed(0)
    module = Projected().eval()
    source = _save_program(module, (zoo._rand(9, 2, 5, 3),),
                           ({0: torch.export.Dim("batch")},), tmp_path / "proj.pt2")
    line = assert_bad_input(run_cli(capsys, "export", source, "-o", tmp_path / "p.onnx"),
                            "lstm-bench export: error:", PROJ_REFUSAL)
    assert "onnxruntime" not in line.split(";")[0]
    for exporter in ("torchscript", "dynamo", "auto"):
        with pytest.raises(LSTMBenchError, match=PROJ_REFUSAL):
            export_torch(module, torch.randn(2, 5, 3), tmp_path / "p.onnx", exporter=exporter)
    # a checkpoint whose state_dict is an nn.LSTM(1, 50, proj_size=4)'s (before: its keys did
    # not match the seed's)
    state = torch.load(seed.shipped_checkpoint(), weights_only=True)
    state["lstm.weight_hh_l0"], state["lstm.weight_hr_l0"] = torch.zeros(200, 4), torch.zeros(4, 50)
    state["dense.weight"] = torch.zeros(1, 4)
    torch.save(state, tmp_path / "ckpt.pt")
    shutil.copy(seed.shipped_checkpoint().with_suffix(".json"), tmp_path / "ckpt.json")
    assert_bad_input(run_cli(capsys, "export", tmp_path / "ckpt.pt", "-o", tmp_path / "p.onnx",
                             "--exporter", "torchscript"), PROJ_REFUSAL)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.json", "ckpt.pt", "proj.pt2"]


def _keras_tokens(dtype, mask_zero):
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((None,), dtype=dtype, name="tokens"),
                              layers.Embedding(30, 6, mask_zero=mask_zero),
                              layers.LSTM(5), layers.Dense(2)])
    rng = np.random.default_rng(11)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("dtype, mask_zero", [("int32", True), ("int32", False),
                                              ("int64", True)])
def test_keras_token_input_keeps_its_dtype(tmp_path, dtype, mask_zero):
    """Input(dtype="int32") stays int32 (before: int64, and serving code that fed Keras int32
    got "Unexpected input data type"); onnxruntime takes the same feed and equals Keras."""
    model = _keras_tokens(dtype, mask_zero)
    model.save(tmp_path / "text.keras")
    result = export_source(tmp_path / "text.keras", tmp_path / "text.onnx")
    assert result.passed and "keras predict" in result.reference
    proto = onnx.load(str(tmp_path / "text.onnx"))
    want = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    assert proto.graph.input[0].type.tensor_type.elem_type == want
    tokens = np.random.default_rng(12).integers(1, 30, (3, 17)).astype(dtype)
    tokens[1, :9] = 0  # padded in front
    got = _ort(tmp_path / "text.onnx", {"tokens": tokens})[0]
    np.testing.assert_allclose(got, model.predict(tokens, verbose=0), rtol=0, atol=ATOL)


def test_stacked_time_major_program_with_a_fixed_batch(tmp_path):
    """3 layers, [seq, batch, features], batch fixed: the dynamo exporter shares one baked
    Reshape target between the layers (before: the proof failed at another length)."""
    module = zoo._stacked_module()
    source = _save_program(module, (zoo._rand(10, *zoo.STACKED_EXAMPLE),), None,
                           tmp_path / "stacked.pt2")
    result = export_source(source, tmp_path / "stacked.onnx")
    assert result.passed and any("fixes the batch at 5" in note for note in result.notes)
    model = onnx.load(str(tmp_path / "stacked.onnx"))
    assert _dims(model.graph.input[0]) == ["seq", 5, 12]
    _agrees(tmp_path / "stacked.onnx", module, {"input": zoo._rand(11, 41, 5, 12)})
