"""torch modules with nn.LSTM through both of torch's exporters, proven in onnxruntime.

Every case exports at one batch size and length, then runs the file at others and compares it
with torch's own output and with the float64 reference evaluation of the file.
"""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_bench.exporters.torch_export import METADATA_EXPORTER, export_torch
from lstm_bench.errors import LSTMBenchError
from lstm_bench.reference.model import run_model
from lstm_bench.tolerances import TOLERANCES

INPUT_SIZE, HIDDEN_SIZE = 3, 8
EXAMPLE_BATCH, EXAMPLE_STEPS = 2, 5
RUN_BATCH, RUN_STEPS = 5, 11  # other than the example's, in both axes


class Tagger(nn.Module):
    """nn.LSTM and its three outputs; packs the input when lengths are given."""

    def __init__(self, ragged=False, **lstm_options):
        super().__init__()
        self.lstm = nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, **lstm_options)
        self.ragged = ragged

    def forward(self, x, lengths=None):
        bf = self.lstm.batch_first
        if not self.ragged:
            y, (h, c) = self.lstm(x)
            return y, h, c
        packed = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
        y, (h, c) = self.lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=bf, total_length=x.shape[1 if bf else 0])
        return y, h, c


class Classifier(nn.Module):
    """Two nn.LSTM modules in a row, then a linear head on the last step."""

    def __init__(self):
        super().__init__()
        self.first = nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, batch_first=True, bidirectional=True)
        self.second = nn.LSTM(2 * HIDDEN_SIZE, HIDDEN_SIZE, num_layers=2, batch_first=True,
                              dropout=0.5)
        self.head = nn.Linear(HIDDEN_SIZE, 2)

    def forward(self, x):
        y, _ = self.first(x)
        y, _ = self.second(y)
        return torch.softmax(self.head(y[:, -1]), dim=-1)


# name -> (options of nn.LSTM, ragged). Names follow onnx's LSTM node tests where they fit.
CASES = {
    "defaults": ({}, False),
    "batchwise": ({"batch_first": True}, False),
    "no_bias": ({"bias": False}, False),
    "bidirectional": ({"bidirectional": True}, False),
    "stacked_2": ({"num_layers": 2}, False),
    "stacked_3_dropout_batchwise": ({"num_layers": 3, "dropout": 0.3, "batch_first": True}, False),
    "bidirectional_stacked_2_batchwise_no_bias": (
        {"num_layers": 2, "bidirectional": True, "batch_first": True, "bias": False}, False),
    "bidirectional_stacked_3": ({"num_layers": 3, "bidirectional": True}, False),
    "ragged": ({}, True),
    "ragged_batchwise_bidirectional": ({"batch_first": True, "bidirectional": True}, True),
    "ragged_stacked_2_bidirectional": ({"num_layers": 2, "bidirectional": True}, True),
}
# The dynamo exporter takes seconds per model: a subset covering stacking, direction, bias
# and both layouts. It cannot export ragged input (PackedSequence): TorchScript does.
DYNAMO_CASES = ["defaults", "batchwise", "stacked_3_dropout_batchwise",
                "bidirectional_stacked_2_batchwise_no_bias", "bidirectional_stacked_3"]


def _input(batch_first, batch, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, steps, INPUT_SIZE) if batch_first else (steps, batch, INPUT_SIZE)
    return torch.randn(shape, generator=generator)


def _lengths(batch, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[1] = steps  # one full-length sequence, so pad_packed_sequence keeps every step
    return lengths


def _lstm_nodes(model):
    return [n for n in model.graph.node if n.op_type == "LSTM"]


def _export_and_prove(tmp_path, name, exporter):
    options, ragged = CASES[name]
    torch.manual_seed(0)
    module = Tagger(ragged=ragged, **options)
    module.train()  # export must switch dropout off itself
    bf = options.get("batch_first", False)
    x = _input(bf, EXAMPLE_BATCH, EXAMPLE_STEPS, seed=1)
    lengths = _lengths(EXAMPLE_BATCH, EXAMPLE_STEPS, seed=2) if ragged else None
    path = tmp_path / f"{name}.onnx"
    proto = export_torch(module, x, path, exporter=exporter, lengths=lengths)
    assert module.training, "export_torch must restore the module's training mode"
    assert sorted(os.listdir(tmp_path)) == [path.name], "weights inline, nothing else left"

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    layers = options.get("num_layers", 1)
    nodes = _lstm_nodes(model)
    assert len(nodes) == layers
    assert not [n for n in model.graph.node if n.op_type in ("Loop", "Scan")]
    used = {p.key: p.value for p in model.metadata_props}[METADATA_EXPORTER]
    assert used == exporter
    if ragged:
        assert all(len(n.input) > 4 and n.input[4] for n in nodes), "sequence_lens expected"
    assert proto.graph.input[0].name == "input"
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == (["batch", "seq", ""] if bf else ["seq", "batch", ""])

    # Run it at another batch size and length than the example.
    module.eval()
    run_x = _input(bf, RUN_BATCH, RUN_STEPS, seed=3)
    feeds = {"input": run_x.numpy()}
    args = [run_x]
    if ragged:
        run_lengths = _lengths(RUN_BATCH, RUN_STEPS, seed=4)
        feeds["lengths"] = run_lengths.numpy()
        args.append(run_lengths)
    with torch.no_grad():
        expected = [t.numpy() for t in module(*args)]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    truth = run_model(model, feeds)
    tolerance = TOLERANCES["float32"]
    for index, (want, have, exact) in enumerate(zip(expected, got, truth.values())):
        assert have.shape == want.shape == exact.shape, index
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-4, err_msg=f"output {index}")
        # onnxruntime and torch both within the float32 tolerance of the float64 truth
        for label, value in (("onnxruntime", have), ("torch", want)):
            bound = tolerance.atol + tolerance.rtol * np.abs(exact)
            assert np.all(np.abs(value - exact) <= bound), f"{label} output {index}"
    return model


@pytest.mark.parametrize("name", list(CASES))
def test_torchscript_exports_every_case(tmp_path, name):
    _export_and_prove(tmp_path, name, "torchscript")


@pytest.mark.parametrize("name", DYNAMO_CASES)
def test_dynamo_exports_a_subset(tmp_path, name):
    _export_and_prove(tmp_path, name, "dynamo")


def test_every_case_is_named_once_and_dynamo_subset_exists():
    assert set(DYNAMO_CASES) <= set(CASES)
    assert {opts.get("num_layers", 1) for opts, _ in CASES.values()} == {1, 2, 3}


def test_module_with_two_lstms_and_a_head(tmp_path):
    torch.manual_seed(0)
    module = Classifier().eval()
    path = tmp_path / "classifier.onnx"
    export_torch(module, torch.randn(2, 6, INPUT_SIZE), path, exporter="torchscript")
    model = onnx.load(str(path))
    assert len(_lstm_nodes(model)) == 3
    x = torch.randn(4, 13, INPUT_SIZE)
    import onnxruntime

    got = onnxruntime.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, module(x).numpy(), atol=1e-5, rtol=1e-4)


def test_packed_sequence_example_becomes_sequence_lens(tmp_path):
    torch.manual_seed(0)
    lstm = nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, num_layers=2)  # takes and returns PackedSequence
    padded = torch.randn(EXAMPLE_STEPS, 3, INPUT_SIZE)
    packed = pack_padded_sequence(padded, torch.tensor([5, 2, 4]), enforce_sorted=False)
    path = tmp_path / "packed.onnx"
    export_torch(lstm, packed, path)  # auto: TorchScript
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input", "lengths"]
    assert all(n.input[4] for n in _lstm_nodes(model))
    x, lengths = torch.randn(9, 4, INPUT_SIZE), torch.tensor([9, 3, 7, 1])
    import onnxruntime

    got = onnxruntime.InferenceSession(str(path)).run(
        None, {"input": x.numpy(), "lengths": lengths.numpy()})
    with torch.no_grad():
        y, (h, c) = lstm(pack_padded_sequence(x, lengths, enforce_sorted=False))
        y = pad_packed_sequence(y, total_length=9)[0]
    for have, want in zip(got, (y, h, c)):
        np.testing.assert_allclose(have, want.numpy(), atol=1e-5, rtol=1e-4)


def test_auto_uses_dynamo_and_torchscript_where_dynamo_cannot(tmp_path):
    torch.manual_seed(0)
    time_major = export_torch(Tagger(), torch.randn(5, 2, INPUT_SIZE), tmp_path / "tm.onnx")
    batch_of_one = export_torch(Tagger(batch_first=True), torch.randn(1, 5, INPUT_SIZE),
                                tmp_path / "one.onnx")
    ragged = export_torch(Tagger(ragged=True), torch.randn(5, 2, INPUT_SIZE), tmp_path / "r.onnx",
                          lengths=torch.tensor([5, 3]))
    used = [{p.key: p.value for p in m.metadata_props}[METADATA_EXPORTER]
            for m in (time_major, batch_of_one, ragged)]
    assert used == ["dynamo", "torchscript", "torchscript"]


def test_dynamo_with_an_example_batch_of_one_is_refused_not_written(tmp_path):
    # torch.export bakes the batch of 1 into the initial states: the proof at batch 2 fails.
    path = tmp_path / "one.onnx"
    with pytest.raises(LSTMBenchError, match="batch 2"):
        export_torch(Tagger(batch_first=True), torch.randn(1, 5, INPUT_SIZE), path,
                     exporter="dynamo")
    assert os.listdir(tmp_path) == []


def test_dynamo_refuses_an_opset_it_cannot_write(tmp_path):
    with pytest.raises(LSTMBenchError, match="not the requested opset 7"):
        export_torch(Tagger(batch_first=True), torch.randn(2, 5, INPUT_SIZE),
                     tmp_path / "o.onnx", exporter="dynamo", opset=7)
    assert os.listdir(tmp_path) == []


def test_static_export_keeps_fixed_axes(tmp_path):
    model = export_torch(Tagger(batch_first=True), torch.randn(2, 5, INPUT_SIZE),
                         tmp_path / "static.onnx", dynamic=False, exporter="torchscript")
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 5, 3]


def test_opset_is_honoured(tmp_path):
    model = export_torch(Tagger(), torch.randn(5, 2, INPUT_SIZE), tmp_path / "o.onnx",
                         exporter="torchscript", opset=17)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_proj_size_is_refused(tmp_path, exporter):
    module = nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, proj_size=4)
    with pytest.raises(LSTMBenchError, match="proj_size"):
        export_torch(module, torch.randn(5, 2, INPUT_SIZE), tmp_path / "p.onnx", exporter=exporter)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, message", [
    (lambda: (nn.Linear(3, 3), torch.randn(2, 3)), "no nn.LSTM"),
    (lambda: (nn.LSTM(3, 4), torch.randn(2, 3)), "floating-point tensor"),
    (lambda: (nn.LSTM(3, 4), torch.ones(2, 5, 3, dtype=torch.int64)), "floating-point"),
    (lambda: (nn.LSTM(3, 4), torch.ones(2, 5, dtype=torch.int64)), "no nn.Embedding"),
    (lambda: (TokenTagger(), torch.full((2, 5), 99)), r"token ids 99..99; .* has 20 rows"),
    (lambda: (nn.LSTM(3, 4), [1, 2]), "tensor or a PackedSequence"),
])
def test_bad_models_and_inputs_are_refused(tmp_path, make, message):
    module, example = make()
    with pytest.raises(LSTMBenchError, match=message):
        export_torch(module, example, tmp_path / "bad.onnx", exporter="torchscript")
    assert os.listdir(tmp_path) == []


class TokenTagger(nn.Module):
    """Embedding -> bidirectional LSTM -> per-step scores: token ids [batch, seq] in."""

    def __init__(self, vocab=20):
        super().__init__()
        self.embedding = nn.Embedding(vocab, INPUT_SIZE, padding_idx=0)
        self.lstm = nn.LSTM(INPUT_SIZE, HIDDEN_SIZE, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * HIDDEN_SIZE, 4)

    def forward(self, tokens):
        return self.head(self.lstm(self.embedding(tokens))[0])


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_token_input_with_an_embedding(tmp_path, exporter):
    """Integer example input: the graph takes int64 ids at any batch and length."""
    torch.manual_seed(3)
    model = TokenTagger().eval()
    example = torch.randint(0, 20, (EXAMPLE_BATCH, EXAMPLE_STEPS))
    proto = export_torch(model, example, tmp_path / "tokens.onnx", exporter=exporter)
    (graph_input,) = proto.graph.input
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in graph_input.type.tensor_type.shape.dim] == ["batch", "seq"]
    tokens = torch.randint(0, 20, (RUN_BATCH, RUN_STEPS))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "tokens.onnx"),
                                           providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": tokens.numpy()})
    with torch.no_grad():
        want = model(tokens).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_bad_lengths_and_exporter_choices(tmp_path):
    module, x = Tagger(ragged=True), torch.randn(5, 2, INPUT_SIZE)
    with pytest.raises(LSTMBenchError, match="lengths must lie"):
        export_torch(module, x, tmp_path / "a.onnx", lengths=torch.tensor([6, 1]))
    with pytest.raises(LSTMBenchError, match="shape \\[2\\]"):
        export_torch(module, x, tmp_path / "a.onnx", lengths=torch.tensor([5, 1, 1]))
    with pytest.raises(LSTMBenchError, match="dynamo exporter cannot"):
        export_torch(module, x, tmp_path / "a.onnx", lengths=torch.tensor([5, 1]),
                     exporter="dynamo")
    with pytest.raises(LSTMBenchError, match="exporter must be"):
        export_torch(module, x, tmp_path / "a.onnx", exporter="tf2onnx")
    with pytest.raises(LSTMBenchError, match="does not exist"):
        export_torch(module, x, tmp_path / "missing" / "a.onnx")
    assert os.listdir(tmp_path) == []


def test_lstm_applied_twice_breaks_the_one_node_per_layer_rule(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(INPUT_SIZE, INPUT_SIZE)

        def forward(self, x):
            return self.lstm(self.lstm(x)[0])[0]

    with pytest.raises(LSTMBenchError, match="one LSTM node per layer"):
        export_torch(Twice(), torch.randn(5, 2, INPUT_SIZE), tmp_path / "t.onnx",
                     exporter="torchscript")
    assert os.listdir(tmp_path) == []


def test_importing_exporters_imports_no_torch():
    code = ("import sys, exporters\n"
            "assert callable(exporters.__getattr__)\n"
            "print([m for m in ('torch', 'onnx', 'onnxruntime', 'keras') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_lazy_api_resolves():
    from lstm_bench import exporters

    assert exporters.export_torch is export_torch
    from lstm_bench.exporters.weights import export_weights

    assert exporters.export_weights is export_weights
    with pytest.raises(AttributeError):
        exporters.no_such_thing  # noqa: B018
