"""A zoo of LSTM models shaped as people ship them (issue 19), each made by the route a user takes.

Every entry of ``ZOO`` writes its ONNX file into a folder (``entry.build(folder) -> path``):
deterministic (fixed seeds), small enough that a default ``verify`` takes seconds. Where a
framework made the file, ``entry.source()`` returns the framework's model (a torch module, or a
Keras model) and ``entry.expected(feeds)`` what it computes on ``entry.feeds()``, which are
shaped unlike the export's example (another batch and length) wherever the file is dynamic.
``entry.options`` are what a user passes to ``verify`` when the tool cannot tell an input's shape
or value from the graph (``--shape NAME=DIMS``, ``--value NAME=V``).

Used by tests/test_zoo.py and by the before/after surveys of issue 19.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras runs on PyTorch here, never TensorFlow


@dataclass(frozen=True)
class ZooModel:
    name: str
    route: str                                 # how the ONNX file is made
    build: Callable[[Path], Path]              # writes folder/NAME.onnx, returns its path
    feeds: Callable[[], dict]                  # ONNX input name -> array
    expected: Callable[[dict], list]           # the framework's outputs on those feeds, in order
    source: Callable | None = None             # the framework's model (None: built by hand)
    options: tuple[str, ...] = ()              # what verify needs to be told (--shape, --value)


def _seeded(seed: int, make):
    """``make()`` under torch's RNG seeded with ``seed``, the caller's RNG left as it was."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make().eval()


@contextlib.contextmanager
def _one_thread():
    """torch on one thread: these models are tiny, and two threads on a busy 2-core machine
    make a Keras LSTM over 200 steps ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _torch_run(module, feeds: dict) -> list:
    """The module's outputs on the feeds (passed positionally, in the feeds' order), flattened."""
    import torch

    with torch.no_grad(), _one_thread():
        out = module(*(torch.from_numpy(v) for v in feeds.values()))
    flat = []
    for item in out if isinstance(out, tuple) else (out,):
        flat.extend(item if isinstance(item, tuple) else (item,))
    return [t.numpy() for t in flat]


def _export(module, args, path: Path, names: tuple[list, list], axes: dict | None) -> Path:
    """torch.onnx.export as a user calls it; ``axes`` None: torch's default exporter, no
    dynamic axes given (dynamo, which bakes the example's shape); else TorchScript with them."""
    import torch

    from lstm_bench.exporters.torch_quiet import quiet  # the exporters' prints and warnings

    inputs, outputs = names
    args = tuple(torch.from_numpy(a) for a in args)
    with quiet():
        if axes is None:
            torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs)
        else:
            torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, dynamo=False)
    return path


def _exported(file: str, module, example: tuple, names: tuple[list, list], axes=None):
    """A build: ``module()`` exported on the ``example`` arrays as folder/``file``."""
    return lambda folder: _export(module(), example, Path(folder) / file, names, axes)


def _rand(seed: int, *shape) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


_BATCH_FIRST = {"x": {0: "batch", 1: "seq_len"}, "y": {0: "batch", 1: "seq_len"}}


def _tagger(seed: int, outputs: int | None, **lstm):
    """``nn.LSTM(**lstm)``, then a Linear over every step (``outputs`` wide) or nothing."""
    from torch import nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(**lstm)
            width = lstm["hidden_size"] * (2 if lstm.get("bidirectional") else 1)
            self.head = nn.Linear(width, outputs) if outputs else nn.Identity()

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    return _seeded(seed, Tagger)


# --- 1. convolution (STFT-like) front end over raw audio + LSTM --------------------------

def _frontend_module():
    from torch import nn

    class ConvFrontEnd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 16, 64, stride=32)
            self.lstm = nn.LSTM(16, 24, batch_first=True)
            self.head = nn.Linear(24, 3)

        def forward(self, audio):  # [B, samples] -> [B, frames, 3]
            frames = self.conv(audio.unsqueeze(1)).transpose(1, 2)
            return self.head(self.lstm(frames)[0])

    return _seeded(1, ConvFrontEnd)


_frontend_build = _exported(
    "frontend.onnx", _frontend_module, (_rand(0, 2, 1600),), (["audio"], ["logits"]),
    {"audio": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"}})


# --- 2. packed state, a scalar sample rate selecting If branches (silero VAD's shape) -----

def _vad_module():
    import torch
    from torch import nn

    class Branch(nn.Module):
        def __init__(self, window, hop):
            super().__init__()
            self.window, self.hop = window, hop
            self.conv = nn.Conv1d(1, 16, window, stride=hop)
            self.lstm = nn.LSTM(16, 32)
            self.proj = nn.Linear(32, 1)

        def forward(self, audio, state):
            frames = self.conv(audio.unsqueeze(1)).permute(2, 0, 1)  # [F, B, 16]
            _, (h, c) = self.lstm(frames, (state[0:1], state[1:2]))
            return torch.sigmoid(self.proj(h[0])), torch.cat([h, c])

    class PackedStateVad(nn.Module):
        def __init__(self):
            super().__init__()
            self.rates = nn.ModuleDict({"16000": Branch(64, 32), "8000": Branch(32, 16)})

        def forward(self, audio, state, sr):
            return self.rates["16000" if int(sr) == 16000 else "8000"](audio, state)

    return _seeded(2, PackedStateVad)


def _onnx_gates(tensor) -> np.ndarray:
    """torch's gate order i, f, g, o -> ONNX's i, o, f, c (first axis)."""
    i, f, g, o = np.split(tensor.detach().numpy(), 4)
    return np.concatenate([i, o, f, g])


def _vad_branch(branch, tag: str):
    """One If branch: Conv front end, LSTM (layout 0) from the packed state, sigmoid head."""
    from onnx import TensorProto, helper, numpy_helper

    lstm = branch.lstm
    weights = {
        "conv_w": branch.conv.weight.detach().numpy(), "conv_b": branch.conv.bias.detach().numpy(),
        "W": _onnx_gates(lstm.weight_ih_l0)[None], "R": _onnx_gates(lstm.weight_hh_l0)[None],
        "B": np.concatenate([_onnx_gates(lstm.bias_ih_l0), _onnx_gates(lstm.bias_hh_l0)])[None],
        "proj_w": branch.proj.weight.detach().numpy(), "proj_b": branch.proj.bias.detach().numpy(),
        "one": np.array([1], np.int64), "zero": np.array([0], np.int64),
        "two": np.array([2], np.int64)}
    n = {k: f"{tag}_{k}" for k in ("x", "conv", "frames", "h0", "c0", "Y", "Y_h", "Y_c", "h",
                                    "logit", "output", "stateN", *weights)}
    nodes = [
        helper.make_node("Unsqueeze", ["input", n["one"]], [n["x"]]),
        helper.make_node("Conv", [n["x"], n["conv_w"], n["conv_b"]], [n["conv"]],
                         kernel_shape=[branch.window], strides=[branch.hop]),
        helper.make_node("Transpose", [n["conv"]], [n["frames"]], perm=[2, 0, 1]),
        helper.make_node("Slice", ["state", n["zero"], n["one"], n["zero"]], [n["h0"]]),
        helper.make_node("Slice", ["state", n["one"], n["two"], n["zero"]], [n["c0"]]),
        helper.make_node("LSTM", [n["frames"], n["W"], n["R"], n["B"], "", n["h0"], n["c0"]],
                         [n["Y"], n["Y_h"], n["Y_c"]], hidden_size=32),
        helper.make_node("Squeeze", [n["Y_h"], n["zero"]], [n["h"]]),
        helper.make_node("Gemm", [n["h"], n["proj_w"], n["proj_b"]], [n["logit"]], transB=1),
        helper.make_node("Sigmoid", [n["logit"]], [n["output"]]),
        helper.make_node("Concat", [n["Y_h"], n["Y_c"]], [n["stateN"]], axis=0)]
    outputs = [helper.make_tensor_value_info(n["output"], TensorProto.FLOAT, ["batch", 1]),
               helper.make_tensor_value_info(n["stateN"], TensorProto.FLOAT, [2, "batch", 32])]
    initializers = [numpy_helper.from_array(v, n[k]) for k, v in weights.items()]
    return helper.make_graph(nodes, f"sr_{tag}", [], outputs, initializers)


def _vad_build(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rates = _vad_module().rates
    nodes = [helper.make_node("Equal", ["sr", "sr_16k"], ["is_16k"]),
             helper.make_node("If", ["is_16k"], ["output", "stateN"],
                              then_branch=_vad_branch(rates["16000"], "sr16k"),
                              else_branch=_vad_branch(rates["8000"], "sr8k"))]
    graph = helper.make_graph(
        nodes, "packed_state_vad",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "samples"]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 32]),
         helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
         helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", 32])],
        [numpy_helper.from_array(np.array(16000, np.int64), "sr_16k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)],
                              producer_name="zoo")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = folder / "packed_state_vad.onnx"
    onnx.save(model, str(path))
    return path


def _vad_feeds() -> dict:
    return {"input": _rand(20, 3, 1024), "state": _rand(21, 2, 3, 32) / 2,
            "sr": np.array(16000, np.int64)}


# --- 3. keyword spotting: (x, h0, c0) -> (y, hn, cn) --------------------------------------

def _kws_module():
    from torch import nn

    class KeywordSpotter(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(10, 16, batch_first=True)
            self.head = nn.Linear(16, 4)

        def forward(self, x, h0, c0):
            y, (hn, cn) = self.lstm(x, (h0, c0))
            return self.head(y), hn, cn

    return _seeded(3, KeywordSpotter)


_kws_build = _exported(
    "kws_state.onnx", _kws_module, (_rand(30, 2, 8, 10), _rand(31, 1, 2, 16), _rand(32, 1, 2, 16)),
    (["x", "h0", "c0"], ["y", "hn", "cn"]),
    {"x": {0: "batch", 1: "frames"}, "h0": {1: "batch"}, "c0": {1: "batch"},
     "y": {0: "batch", 1: "frames"}, "hn": {1: "batch"}, "cn": {1: "batch"}})


# --- 4. OCR CRNN, dynamic image width ----------------------------------------------------

def _crnn_module():
    from torch import nn

    class CRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 x W/2
                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 8 x W/4
                nn.Conv2d(16, 24, (8, 1)), nn.ReLU())                         # 1 x W/4
            self.lstm = nn.LSTM(24, 16, bidirectional=True)
            self.head = nn.Linear(32, 37)

        def forward(self, image):  # [B, 1, 32, W] -> [W/4, B, 37]
            columns = self.features(image).squeeze(2).permute(2, 0, 1)
            return self.head(self.lstm(columns)[0])

    return _seeded(4, CRNN)


_crnn_build = _exported(
    "crnn.onnx", _crnn_module, (_rand(40, 2, 1, 32, 64),), (["image"], ["logits"]),
    {"image": {0: "batch", 3: "width"}, "logits": {0: "steps", 1: "batch"}})


# --- 5. seq2seq: the encoder's final (h, c) starts the decoder ----------------------------

def _seq2seq_module():
    from torch import nn

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(6, 20, batch_first=True)
            self.decoder = nn.LSTM(6, 20, batch_first=True)
            self.head = nn.Linear(20, 11)

        def forward(self, src, tgt):  # [B, S, 6], [B, U, 6] -> [B, U, 11]
            _, state = self.encoder(src)
            return self.head(self.decoder(tgt, state)[0])

    return _seeded(5, Seq2Seq)


_seq2seq_build = _exported(
    "seq2seq.onnx", _seq2seq_module, (_rand(50, 2, 7, 6), _rand(51, 2, 5, 6)),
    (["src", "tgt"], ["logits"]), {"src": {0: "batch", 1: "src_len"},
                                   "tgt": {0: "batch", 1: "tgt_len"},
                                   "logits": {0: "batch", 1: "tgt_len"}})


# --- 6. time-major stacked LSTM with dropout, dynamic and as the default exporter bakes it -

STACKED_EXAMPLE = (20, 5, 12)  # [seq_len, batch, features]: what the baked export keeps


def _stacked_module():
    return _tagger(6, None, input_size=12, hidden_size=5, num_layers=3, dropout=0.2)


_stacked_build = _exported(
    "stacked.onnx", _stacked_module, (_rand(60, *STACKED_EXAMPLE),), (["x"], ["y"]),
    {"x": {0: "seq_len", 1: "batch"}, "y": {0: "seq_len", 1: "batch"}})


_stacked_baked_build = _exported(
    "stacked_baked.onnx", _stacked_module, (_rand(60, *STACKED_EXAMPLE),), (["x"], ["y"]))


# --- 7. bias=False -----------------------------------------------------------------------

def _no_bias_module():
    # a Linear over every step (MatMul + Add), as in the crashing bias=False model
    return _tagger(7, 4, input_size=8, hidden_size=12, bias=False, batch_first=True)


_no_bias_build = _exported("no_bias.onnx", _no_bias_module, (_rand(70, 2, 9, 8),),
                           (["x"], ["y"]), _BATCH_FIRST)


# --- 8. masked Keras tokens, exported by lstm-bench (verified at T > 64) ------------------

KERAS_STEPS = 200


def _keras_module():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input((None,), dtype="int32", name="tokens"),
                              layers.Embedding(50, 8, mask_zero=True), layers.LSTM(10),
                              layers.Dense(3)])
    rng = np.random.default_rng(8)  # weights a trained model could have (biases included)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                           for w in layer.get_weights()])
    return model


def _keras_build(folder: Path) -> Path:
    from lstm_bench.exporters.source import export_source

    archive = folder / "keras_masked.keras"
    _keras_module().save(archive)
    path = folder / "keras_masked.onnx"
    export_source(archive, path)  # what `lstm-bench export model.keras -o model.onnx` runs
    return path


def _keras_feeds() -> dict:
    tokens = np.random.default_rng(80).integers(1, 50, (3, KERAS_STEPS))
    tokens[1, :120] = 0  # padded in front (pad_sequences' default)
    tokens[2, 150:] = 0  # padded at the back
    return {"tokens": tokens.astype(np.int32)}  # the Keras input's dtype, which the file keeps


def _keras_expected(feeds: dict) -> list:
    with _one_thread():
        return [_keras_module().predict(feeds["tokens"].astype(np.int32), verbose=0)]


# --- 9. a Linear over every step of a 2-layer bidirectional batch-first LSTM -------------

def _linear_steps_module():
    return _tagger(9, 5, input_size=8, hidden_size=16, num_layers=2, bidirectional=True,
                   batch_first=True)


_linear_steps_build = _exported("linear_steps.onnx", _linear_steps_module,
                                (_rand(90, 2, 10, 8),), (["x"], ["y"]), _BATCH_FIRST)


# --- the zoo -----------------------------------------------------------------------------

def _torch_entry(name, route, build, module, feeds, options=()):
    return ZooModel(name, route, build, feeds, lambda f: _torch_run(module(), f), module, options)


TORCHSCRIPT = "torch.onnx.export(dynamo=False, dynamic_axes)"

ZOO = {entry.name: entry for entry in (
    _torch_entry("frontend", TORCHSCRIPT, _frontend_build, _frontend_module,
                 lambda: {"audio": _rand(10, 3, 3200)}),
    _torch_entry("packed_state_vad", "onnx.helper, If on sr (torch weights)", _vad_build,
                 _vad_module, _vad_feeds, ("--value", "sr=16000")),
    _torch_entry("kws_state", TORCHSCRIPT, _kws_build, _kws_module,
                 lambda: {"x": _rand(33, 3, 25, 10), "h0": _rand(34, 1, 3, 16),
                          "c0": _rand(35, 1, 3, 16)}),
    _torch_entry("crnn", TORCHSCRIPT, _crnn_build, _crnn_module,
                 lambda: {"image": _rand(41, 3, 1, 32, 160)}, ("--shape", "image=2x1x32x160")),
    _torch_entry("seq2seq", TORCHSCRIPT, _seq2seq_build, _seq2seq_module,
                 lambda: {"src": _rand(52, 3, 13, 6), "tgt": _rand(53, 3, 9, 6)},
                 ("--shape", "src=2x13x6", "--shape", "tgt=2x9x6")),
    _torch_entry("stacked", TORCHSCRIPT, _stacked_build, _stacked_module,
                 lambda: {"x": _rand(61, 30, 3, 12)}),
    _torch_entry("stacked_baked", "torch.onnx.export defaults (dynamo, no dynamic axes)",
                 _stacked_baked_build, _stacked_module,
                 lambda: {"x": _rand(62, *STACKED_EXAMPLE)}),
    _torch_entry("no_bias", TORCHSCRIPT, _no_bias_build, _no_bias_module,
                 lambda: {"x": _rand(71, 3, 17, 8)}),
    ZooModel("keras_masked", "keras .save + lstm-bench export (KERAS_BACKEND=torch)", _keras_build,
             _keras_feeds, _keras_expected, _keras_module),
    _torch_entry("linear_steps", TORCHSCRIPT, _linear_steps_build, _linear_steps_module,
                 lambda: {"x": _rand(91, 3, 15, 8)}),
)}


def build_zoo(folder: Path, names=None) -> dict[str, Path]:
    """Write the zoo's ONNX files (all, or ``names``) into ``folder``: name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _one_thread():
        return {name: ZOO[name].build(folder) for name in (names or ZOO)}


def onnxruntime_outputs(path: Path, feeds: dict) -> list:
    """The file's outputs in onnxruntime (CPU, float32), in the graph's output order."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def framework_error(entry: ZooModel, path: Path) -> float:
    """Max |onnxruntime - framework| over every output, on ``entry.feeds()``."""
    feeds = entry.feeds()
    got, want = onnxruntime_outputs(path, feeds), entry.expected(feeds)
    assert len(got) == len(want), (entry.name, len(got), len(want))
    return max(float(np.max(np.abs(g.astype(np.float64) - w))) for g, w in zip(got, want))


# --- 10. an nn.LSTMCell loop unrolled T times, beside its nn.LSTM twin (issue 20 item 4) ---

CELL_STEPS = 16  # the loop's length: the unrolled export keeps it


def _cell_modules():
    """(the LSTMCell loop, its nn.LSTM twin): the same weights, the same function, a Linear
    over every step; the loop is what a hand-written decoder or a streaming cell ships as."""
    import torch
    from torch import nn

    class CellLoop(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.LSTMCell(6, 12)
            self.head = nn.Linear(12, 3)

        def forward(self, x):  # [batch, CELL_STEPS, 6]: the loop runs a fixed number of steps
            h = c = x.new_zeros(x.shape[0], 12)
            steps = []
            for t in range(CELL_STEPS):
                h, c = self.cell(x[:, t], (h, c))
                steps.append(h)
            return self.head(torch.stack(steps, 1))

    class CellTwin(nn.Module):
        def __init__(self, loop):
            super().__init__()
            self.lstm = nn.LSTM(6, 12, batch_first=True)
            self.head = loop.head
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.lstm, f"{name}_l0").copy_(getattr(loop.cell, name))

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    loop = _seeded(10, CellLoop)
    return loop, CellTwin(loop).eval()


_cell_loop_build = _exported(
    "cell_loop.onnx", lambda: _cell_modules()[0], (_rand(100, 2, CELL_STEPS, 6),),
    (["x"], ["y"]), {"x": {0: "batch"}, "y": {0: "batch"}})
_cell_twin_build = _exported("cell_twin.onnx", lambda: _cell_modules()[1],
                             (_rand(100, 2, CELL_STEPS, 6),), (["x"], ["y"]), _BATCH_FIRST)
ZOO.update({entry.name: entry for entry in (
    _torch_entry("cell_loop", "torch.onnx.export(dynamo=False, batch dynamic) of a loop over "
                 "nn.LSTMCell: no LSTM node", _cell_loop_build, lambda: _cell_modules()[0],
                 lambda: {"x": _rand(101, 3, CELL_STEPS, 6)}),
    _torch_entry("cell_twin", TORCHSCRIPT, _cell_twin_build, lambda: _cell_modules()[1],
                 lambda: {"x": _rand(101, 3, CELL_STEPS, 6)}),
)})


# --- a 2-layer LSTM streaming [layers, B, H] states: (x, h0, c0) -> (y, hn, cn) (issue 20 item 1)

def _stacked_state_module():
    from torch import nn

    class StackedState(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 12, num_layers=2, batch_first=True)

        def forward(self, x, h0, c0):  # [B, T, 6], [2, B, 12] x 2
            y, (hn, cn) = self.lstm(x, (h0, c0))
            return y, hn, cn

    return _seeded(12, StackedState)


_stacked_state_build = _exported(
    "stacked_state.onnx", _stacked_state_module,
    (_rand(120, 2, 7, 6), _rand(121, 2, 2, 12), _rand(122, 2, 2, 12)),
    (["x", "h0", "c0"], ["y", "hn", "cn"]),
    {"x": {0: "batch", 1: "frames"}, "h0": {1: "batch"}, "c0": {1: "batch"},
     "y": {0: "batch", 1: "frames"}, "hn": {1: "batch"}, "cn": {1: "batch"}})
ZOO.update({entry.name: entry for entry in (
    _torch_entry("stacked_state", TORCHSCRIPT, _stacked_state_build, _stacked_state_module,
                 lambda: {"x": _rand(123, 3, 11, 6), "h0": _rand(124, 2, 3, 12),
                          "c0": _rand(125, 2, 3, 12)}),
)})


# --- exports that baked the example's length into a dynamic-input file (issue 20 item 3) ---
# TorchScript with dynamic axes on the input only, of the time-major stack above whose Y is
# cut with Python ints read from x.shape: traced, they become constants. ``reshape`` keeps the
# example's [20, 5, -1] (the output [20, 5, 5] for an input [100, 1, 12], and an error
# at most other shapes); ``slice`` keeps the example's 20 steps at any longer length. Both
# agree with torch at the example's shape, and every runtime agrees with the float64 truth at
# any shape: only a second length shows them. Not in ZOO: bench at other batches fails on the
# reshape, as it should.

def _baked_module(how: str):
    from torch import nn

    class Baked(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _stacked_module()

        def forward(self, x):  # [T, B, 12] -> [T, B, 5], but T and B are the example's
            y = self.inner(x)
            if how == "reshape":
                return y.reshape(int(x.shape[0]), int(x.shape[1]), -1)
            return y[:int(x.shape[0])]

    return Baked().eval()


BAKED = {entry.name: entry for entry in (
    _torch_entry(f"stacked_{how}_baked", "torch.onnx.export(dynamo=False, dynamic_axes on the "
                 "input only), a Python int from x.shape", _exported(
                     f"stacked_{how}_baked.onnx", lambda how=how: _baked_module(how),
                     (_rand(60, *STACKED_EXAMPLE),), (["x"], ["y"]),
                     {"x": {0: "seq_len", 1: "batch"}}),
                 lambda how=how: _baked_module(how), lambda: {"x": _rand(63, *STACKED_EXAMPLE)})
    for how in ("reshape", "slice"))}


def build_baked(folder: Path) -> dict[str, Path]:
    """Write the ``BAKED`` files into ``folder``: name -> path."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with _one_thread():
        return {name: entry.build(Path(folder)) for name, entry in BAKED.items()}


# --- issue 20: a seq2seq torch.export program (.pt2), two inputs of different dynamic lengths -

SEQ2SEQ_PT2_EXAMPLE = ((2, 7, 6), (2, 5, 6))  # src, tgt: torch.export fixes both lengths


def save_seq2seq_program(folder) -> Path:
    """The seq2seq model as a user ships it to `lstm-bench export`: torch.export (batch dynamic;
    torch.export fixes the lengths, which the ONNX file frees again) + torch.export.save."""
    import torch

    from lstm_bench.exporters.torch_quiet import quiet  # torch.export's warnings on nn.LSTM

    src, tgt = (torch.from_numpy(_rand(54 + i, *shape))
                for i, shape in enumerate(SEQ2SEQ_PT2_EXAMPLE))
    batch = torch.export.Dim("batch")
    with quiet(), _one_thread():
        program = torch.export.export(_seq2seq_module(), (src, tgt),
                                      dynamic_shapes=({0: batch}, {0: batch}))
    path = Path(folder) / "seq2seq.pt2"
    torch.export.save(program, str(path))
    return path


def _seq2seq_pt2_build(folder: Path) -> Path:
    from lstm_bench.exporters.source import export_source

    path = Path(folder) / "seq2seq_pt2.onnx"
    export_source(save_seq2seq_program(folder), path)  # `lstm-bench export seq2seq.pt2 -o ...`
    return path


ZOO["seq2seq_pt2"] = _torch_entry(
    "seq2seq_pt2", "torch.export + torch.export.save (.pt2), then lstm-bench export",
    _seq2seq_pt2_build, _seq2seq_module,
    lambda: {"src": _rand(56, 3, 13, 6), "tgt": _rand(57, 3, 9, 6)})
