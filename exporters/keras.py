"""Keras 3 ``.keras`` archives to ONNX graphs with one ``LSTM`` node per Keras LSTM layer.

The archive is read with ``zipfile``, ``json`` and ``h5py`` only: Keras is never imported here
and nothing from the file is executed (a ``Lambda`` layer's pickled code stays a string we
refuse by name). Supported: Sequential and linear-chain functional models of InputLayer, LSTM
(return_sequences, go_backwards, use_bias, activation / recurrent_activation with an ONNX RNN
equivalent), Bidirectional(LSTM) with merge_mode concat, sum, mul or ave, Dense, Activation and
Dropout (a no-op at inference). Anything else raises ``LSTMBenchError`` naming the layer.

Keras semantics kept in the graph:
- Gate order i, f, c, o becomes ONNX i, o, f, c; one Keras bias becomes ``B = [b | 0]``.
- ``go_backwards`` is ONNX ``reverse``; with return_sequences Keras returns the sequence in
  processing order (time-reversed), so the graph flips ONNX's input-aligned Y back.
- Bidirectional's backward sequence is input-aligned (Keras flips it), as ONNX's Y already is.
- hard_sigmoid is Keras 3's ``relu6(x + 3) / 6`` = ONNX HardSigmoid(alpha=1/6, beta=0.5).
The graph takes Keras' ``(batch, time, features)`` input with batch and time dynamic, runs each
LSTM at layout 0 between Transposes (onnxruntime rejects layout 1) and computes in float32.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import check_array_size, limit_bytes, parse_json
from lstm_bench.spec import LSTMSpec, LSTMWeights

DEFAULT_OPSET = 22
SUPPORTED_OPSETS = tuple(range(14, 23))
OUTPUT_NAME = "output"
MERGE_MODES = ("concat", "sum", "mul", "ave")

# Keras 3 activation name -> (ONNX RNN activation, alpha, beta); None = that parameter unused.
_RNN_ACTIVATIONS = {
    "sigmoid": ("Sigmoid", None, None),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
    "elu": ("Elu", 1.0, None),
    "leaky_relu": ("LeakyRelu", 0.2, None),
}

# Keras' selu constants (torch's, which Keras 3 on torch calls).
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


# Keras 3 activation name -> float64 NumPy function: the reference side of Dense/Activation.
_NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "exponential": np.exp,
    "hard_sigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "hard_silu": lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hard_swish": lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "gelu": _gelu,
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
}

# Layers kept, and their snake_case names: the h5 group Keras files a layer under when the
# group carries no ``name`` attribute (older Keras 3 releases).
_SUPPORTED = {"InputLayer": "input_layer", "LSTM": "lstm", "Bidirectional": "bidirectional",
              "Dense": "dense", "Activation": "activation", "Dropout": "dropout"}


# --------------------------------------------------------------------------------------------
# The parsed model


@dataclass(frozen=True, eq=False)
class KerasLSTM:
    """An LSTM or Bidirectional(LSTM) layer; weights in ONNX layout (go_backwards = reverse)."""

    name: str
    weights: LSTMWeights
    return_sequences: bool
    merge_mode: str | None = None  # Bidirectional only

    @property
    def output_size(self) -> int:
        H = self.weights.spec.hidden_size
        return 2 * H if self.merge_mode == "concat" else H


@dataclass(frozen=True, eq=False)
class KerasDense:
    """A Dense layer (kernel in Keras layout ``(in, units)``) or, with kernel None, an Activation."""

    name: str
    kernel: np.ndarray | None
    bias: np.ndarray | None
    activation: str


@dataclass(frozen=True, eq=False)
class KerasModel:
    """What an archive holds, Dropout left out: input name, features, and the layer chain."""

    name: str
    input_name: str
    input_size: int
    time_steps: int | None  # as saved; the exported graph accepts any length
    layers: tuple


# --------------------------------------------------------------------------------------------
# Reading the archive


def _open_archive(keras_path):
    """(config dict, h5py.File) of a .keras archive, with a clear error for each bad case."""
    import h5py

    path = Path(keras_path)
    if not path.is_file():
        raise LSTMBenchError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise LSTMBenchError(f"{path}: the archive has no config.json; not a Keras 3 "
                                     ".keras file (save it with model.save('model.keras'))")
            if "model.weights.h5" not in names:
                sharded = " (sharded weights are not supported)" if "model.weights.json" in names else ""
                raise LSTMBenchError(f"{path}: the archive has no model.weights.h5{sharded}")
            # Declared sizes checked first; zipfile never inflates past the declared size.
            for member, limit in (("config.json", "LSTM_BENCH_MAX_JSON_MB"),
                                  ("model.weights.h5", "LSTM_BENCH_MAX_ARRAY_MB")):
                size = archive.getinfo(member).file_size
                if size > limit_bytes(limit):
                    raise LSTMBenchError(f"{path}: {member} declares {size} bytes, above the "
                                         f"limit of {limit_bytes(limit)} (set {limit} to allow "
                                         "more)")
            config_bytes = archive.read("config.json")
            weights_bytes = archive.read("model.weights.h5")
    except zipfile.BadZipFile:
        raise LSTMBenchError(f"{path}: not a zip archive, so not a Keras 3 .keras file (legacy "
                             "HDF5 .h5 models are not supported: re-save as .keras)") from None
    except OSError as exc:
        raise LSTMBenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:  # encrypted, corrupt
        raise LSTMBenchError(f"{path}: cannot read the archive ({first_line(exc)})") from None
    config = parse_json(config_bytes, f"{path}: config.json", "Keras config")
    if not isinstance(config, dict):
        raise LSTMBenchError(f"{path}: config.json does not describe a Keras model")
    try:
        h5 = h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError as exc:
        raise LSTMBenchError(f"{path}: model.weights.h5 is not a readable HDF5 file "
                             f"({first_line(exc)})") from None
    try:
        _refuse_foreign_storage(h5, f"{path}: model.weights.h5")
    except BaseException:
        h5.close()
        raise
    return config, h5


def _refuse_foreign_storage(h5, where: str) -> None:
    """Weights must live inside the archive: an HDF5 external link, a dataset with external
    raw storage or a virtual dataset would read other files of this machine (or their fill
    value) as weights, so each is refused by name before any dataset is read."""
    import h5py

    def problem(name, link) -> str | None:
        if isinstance(link, h5py.ExternalLink):
            return f"{name!r} is an external link to {link.filename!r}"
        if isinstance(link, h5py.SoftLink):
            return None  # inside this file; its target is visited by its own hard link
        if not isinstance(link, h5py.HardLink):
            return f"{name!r} is a user-defined link"
        obj = h5.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                return (f"dataset {name!r} keeps its data in external file(s) "
                        f"{[e[0] for e in obj.external]}")
            if obj.is_virtual:
                return f"dataset {name!r} is a virtual dataset (mapped from other files)"
        return None

    found = []

    def visit(name, link):  # h5py cannot raise through its visitor: a result stops it
        try:
            found.append(problem(name, link))
        except Exception as exc:  # a damaged object: reported like the others
            found.append(f"{name!r} cannot be read ({first_line(exc)})")
        return found[-1]

    try:
        h5.visititems_links(visit)
    except Exception as exc:  # h5py's OSError, KeyError, SystemError for a damaged file
        raise LSTMBenchError(f"{where}: not a readable HDF5 file ({first_line(exc)})") from None
    if found and found[-1]:
        raise LSTMBenchError(f"{where}: {found[-1]}; weights must be stored inside the archive")


def _chain(model_config: dict, where: str) -> list[dict]:
    """The layer configs of a Sequential or linear-chain Functional model, input first."""
    cls = model_config.get("class_name")
    config = model_config.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise LSTMBenchError(f"{where}: config.json holds no layer list; not a Keras model config")
    layers = config["layers"]
    if cls == "Sequential":
        return layers
    if cls not in ("Functional", "Model"):
        raise LSTMBenchError(f"{where}: model class {cls!r} is not supported; only Sequential and "
                             "functional models (a linear chain of layers) are")
    by_name = {layer.get("name"): layer for layer in layers}

    def endpoints(key):
        value = config.get(key)
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            value = [value]  # a single input/output is sometimes saved unwrapped
        if not isinstance(value, list) or len(value) != 1:
            raise LSTMBenchError(f"{where}: the functional model has "
                                 f"{len(value) if isinstance(value, list) else 'no'} {key}; "
                                 "only one input and one output are supported")
        return value[0][0]

    first, last = endpoints("input_layers"), endpoints("output_layers")
    chain, name = [], last
    while True:
        layer = by_name.get(name)
        if layer is None:
            raise LSTMBenchError(f"{where}: layer {name!r} is referenced but not defined in config.json")
        chain.append(layer)
        if name == first:
            break
        nodes = layer.get("inbound_nodes") or []
        label = f"{layer.get('class_name')} layer {name!r}"
        if len(nodes) != 1:
            raise LSTMBenchError(f"{where}: {label} is called {len(nodes)} times; only a linear "
                                 "chain of layers, each called once, is supported")
        node = nodes[0] if isinstance(nodes[0], dict) else {}  # Keras 2 wrote lists here
        args = node.get("args") or []
        tensors = [a for a in args
                   if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__"]
        # training / mask flags are fine; any other keyword (initial_state=...) is a second input
        extra = [k for k, v in (node.get("kwargs") or {}).items()
                 if k not in ("training", "mask") or v not in (None, False, True)]
        if len(args) != 1 or len(tensors) != 1 or extra:
            raise LSTMBenchError(f"{where}: {label} does not take exactly one tensor from the "
                                 "previous layer; only a linear chain of layers is supported")
        name = tensors[0]["config"]["keras_history"][0]
        if len(chain) > len(layers):
            raise LSTMBenchError(f"{where}: the functional graph has a cycle at layer {name!r}")
    chain.reverse()
    unused = [layer.get("name") for layer in layers if all(layer is not c for c in chain)]
    if unused:
        raise LSTMBenchError(f"{where}: layers {unused} are not on the path from input to output; "
                             "only a linear chain of layers is supported")
    return chain


class _Weights:
    """Finds each layer's variables in model.weights.h5."""

    def __init__(self, h5, chain, sequential: bool, where: str):
        self.h5, self.where = h5, where
        self.groups = {}
        # Keras 3.x writes the layer name as the ``name`` attribute of ``layers/<key>/vars``;
        # <key> itself is the snake_case class name, numbered in model.layers order.
        top = h5.get("layers")
        if top is not None:
            for key, group in top.items():
                vars_group = group.get("vars") if hasattr(group, "get") else None
                if vars_group is not None and "name" in vars_group.attrs:
                    self.groups[_text(vars_group.attrs["name"])] = f"layers/{key}"
        used = {}
        for layer in chain:
            cls, name = layer["class_name"], layer["config"].get("name")
            if sequential and cls == "InputLayer":
                continue  # Sequential.layers leaves its InputLayer out
            base = _SUPPORTED[cls]
            key = base if base not in used else f"{base}_{used[base] + 1}"
            used[base] = used.get(base, -1) + 1
            self.groups.setdefault(name, f"layers/{key}")

    def read(self, layer_name: str, label: str, sub: str, shapes: list[tuple]) -> list[np.ndarray]:
        """The arrays at ``<layer group>/<sub>/vars/0..n-1``, checked against ``shapes``."""
        path = f"{self.groups.get(layer_name, 'layers/?')}/{sub}vars".replace("//", "/")
        group = self.h5.get(path)
        if group is None:
            raise LSTMBenchError(f"{self.where}: {label}: no weights at {path} in model.weights.h5")
        if len(group) != len(shapes):
            raise LSTMBenchError(f"{self.where}: {label}: {path} in model.weights.h5 holds "
                                 f"{len(group)} arrays, expected {len(shapes)}")
        arrays = []
        for index, shape in enumerate(shapes):
            dataset = group.get(str(index))
            if dataset is None or not hasattr(dataset, "shape"):
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} is missing")
            if _text(dataset.attrs.get("dtype", "")) == "bfloat16":
                raise LSTMBenchError(f"{self.where}: {label}: bfloat16 weights are not supported")
            if tuple(dataset.shape) != tuple(shape):
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} has shape "
                                     f"{list(dataset.shape)}, expected {list(shape)}")
            # a sparse or compressed dataset can declare far more than the archive holds
            check_array_size(dataset.shape, dataset.dtype if dataset.dtype.kind in "fiub"
                             else np.float64, f"{self.where}: {label}: {path}/{index}")
            try:
                array = np.asarray(dataset[()])
            except (OSError, ValueError, TypeError, RuntimeError) as exc:
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} cannot be read "
                                     f"({first_line(exc)})") from None
            if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} must hold finite "
                                     f"floats, got {array.dtype}")
            arrays.append(array)
        return arrays


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _activation_name(value, label: str, where: str) -> str:
    """A builtin Keras activation's name from its serialized form (string or function dict)."""
    if isinstance(value, dict) and str(value.get("module", "")).startswith("keras") \
            and isinstance(value.get("config"), str):
        value = value["config"]
    if value is None:
        return "linear"
    if not isinstance(value, str):
        raise LSTMBenchError(f"{where}: {label}: custom activation {value!r} is not supported")
    return value


def _check_builtin(layer: dict, label: str, where: str):
    """Refuse a custom class that merely borrows a Keras layer's class name."""
    if layer.get("registered_name") or not str(layer.get("module") or "keras").startswith("keras"):
        raise LSTMBenchError(f"{where}: {label} is a custom layer "
                             f"({layer.get('registered_name') or layer.get('module')}); not supported")


def _lstm_direction(cfg: dict, label: str, where: str):
    """(activations, alphas, betas) of one Keras LSTM config, in ONNX f, g, h order."""
    if cfg.get("return_state"):
        raise LSTMBenchError(f"{where}: {label}: return_state=True is not supported")
    if cfg.get("stateful"):
        raise LSTMBenchError(f"{where}: {label}: stateful=True carries state across batches, which "
                             "the exported graph cannot; re-save the model with stateful=False")
    acts, alphas, betas = [], [], []
    for key in ("recurrent_activation", "activation", "activation"):
        keras_name = _activation_name(cfg.get(key, "tanh" if key == "activation" else "sigmoid"),
                                      label, where)
        if keras_name not in _RNN_ACTIVATIONS:
            raise LSTMBenchError(f"{where}: {label}: {key}={keras_name!r} has no ONNX LSTM "
                                 f"equivalent; supported: {sorted(_RNN_ACTIVATIONS)}")
        onnx_name, alpha, beta = _RNN_ACTIVATIONS[keras_name]
        acts.append(onnx_name)
        if alpha is not None:
            alphas.append(alpha)
        if beta is not None:
            betas.append(beta)
    return acts, alphas, betas


def _reorder(array, units):
    """Keras gate blocks i, f, c, o along the last axis -> ONNX i, o, f, c."""
    i, f, c, o = (array[..., k * units:(k + 1) * units] for k in range(4))
    return np.concatenate([i, o, f, c], axis=-1)


def _read_lstm(layer, input_size, weights: _Weights, where) -> KerasLSTM:
    cls, name = layer["class_name"], layer["config"]["name"]
    cfg = layer["config"]
    if cls == "LSTM":
        directions = [(cfg, "cell/")]
        merge_mode = None
    else:  # Bidirectional
        inner = cfg.get("layer") or {}
        backward = cfg.get("backward_layer")
        if backward is None and isinstance(inner.get("config"), dict):  # Keras derives it
            backward = {**inner, "config": {**inner["config"], "go_backwards": True}}
        backward = backward or {}
        for sub in (inner, backward):
            if sub.get("class_name") != "LSTM":
                raise LSTMBenchError(f"{where}: Bidirectional layer {name!r} wraps "
                                     f"{sub.get('class_name')!r}; only LSTM is supported")
            _check_builtin(sub, f"Bidirectional layer {name!r}", where)
        merge_mode = cfg.get("merge_mode")
        if merge_mode not in MERGE_MODES:
            raise LSTMBenchError(f"{where}: Bidirectional layer {name!r}: merge_mode={merge_mode!r} "
                                 f"is not supported; use one of {list(MERGE_MODES)}")
        fwd, bwd = inner["config"], backward["config"]
        if fwd.get("go_backwards") or not bwd.get("go_backwards", True):
            raise LSTMBenchError(f"{where}: Bidirectional layer {name!r}: the forward layer must "
                                 "run forwards and the backward layer backwards")
        for key in ("units", "return_sequences"):
            if fwd.get(key) != bwd.get(key):
                raise LSTMBenchError(f"{where}: Bidirectional layer {name!r}: forward and backward "
                                     f"layers differ in {key} ({fwd.get(key)} vs {bwd.get(key)})")
        directions = [(fwd, "forward_layer/cell/"), (bwd, "backward_layer/cell/")]
    units = directions[0][0].get("units")
    if not isinstance(units, int) or units < 1:
        raise LSTMBenchError(f"{where}: {cls} layer {name!r}: units={units!r} is not a positive integer")
    label = f"{cls} layer {name!r}"
    any_bias = any(d.get("use_bias", True) for d, _ in directions)
    W, R, B, acts, alphas, betas = [], [], [], [], [], []
    for dir_cfg, sub in directions:
        a, al, be = _lstm_direction(dir_cfg, label, where)
        acts += a
        alphas += al
        betas += be
        shapes = [(input_size, 4 * units), (units, 4 * units)]
        if dir_cfg.get("use_bias", True):
            shapes.append((4 * units,))
        arrays = weights.read(name, label, sub, shapes)
        W.append(_reorder(arrays[0], units).T)
        R.append(_reorder(arrays[1], units).T)
        bias = _reorder(arrays[2], units) if len(arrays) == 3 else np.zeros(4 * units)
        B.append(np.concatenate([bias, np.zeros(4 * units)]))
    if cls == "Bidirectional":
        direction = "bidirectional"
    else:
        direction = "reverse" if cfg.get("go_backwards") else "forward"
    default = acts == ["Sigmoid", "Tanh", "Tanh"] * len(directions)
    spec = LSTMSpec(input_size, units, direction=direction, bias=any_bias,
                    activations=None if default else tuple(acts),
                    activation_alpha=tuple(alphas) or None, activation_beta=tuple(betas) or None)
    lstm_weights = LSTMWeights(spec, np.stack(W).astype(np.float32), np.stack(R).astype(np.float32),
                               np.stack(B).astype(np.float32) if any_bias else None, name=name)
    return KerasLSTM(name, lstm_weights, bool(directions[0][0].get("return_sequences")), merge_mode)


def read_keras(keras_path) -> KerasModel:
    """Parse a .keras archive into a ``KerasModel`` (json + h5py; nothing is executed)."""
    where = str(keras_path)
    config, h5 = _open_archive(keras_path)
    try:
        chain = _chain(config, where)
        for layer in chain:
            cls = layer.get("class_name")
            name = (layer.get("config") or {}).get("name") or layer.get("name")
            if cls not in _SUPPORTED:
                raise LSTMBenchError(f"{where}: layer {name!r} of class {cls} is not supported; "
                                     f"supported layers: {', '.join(_SUPPORTED)}")
            _check_builtin(layer, f"{cls} layer {name!r}", where)
        sequential = config.get("class_name") == "Sequential"
        if chain and chain[0]["class_name"] == "InputLayer":
            shape = chain[0]["config"].get("batch_shape") or chain[0]["config"].get("batch_input_shape")
            input_name = chain[0]["config"].get("name") or "input"
            chain = chain[1:]
        elif chain:
            shape = (chain[0].get("build_config") or {}).get("input_shape") \
                or config["config"].get("build_input_shape")
            input_name = "input"
        else:
            shape = input_name = None
        if not chain:
            raise LSTMBenchError(f"{where}: the model has no layers besides its input")
        if not isinstance(shape, list) or len(shape) != 3 or not isinstance(shape[2], int):
            raise LSTMBenchError(f"{where}: the model input has shape {shape}; expected "
                                 "(batch, time, features) with a known number of features")
        weights = _Weights(h5, chain, sequential, where)
        size, layers = shape[2], []
        rank = 3  # of the running tensor: (batch, time, x) or (batch, x)
        for layer in chain:
            cls, cfg = layer["class_name"], layer["config"]
            name = cfg["name"]
            label = f"{cls} layer {name!r}"
            if cls == "Dropout":
                continue
            if cls in ("LSTM", "Bidirectional"):
                if rank != 3:
                    raise LSTMBenchError(f"{where}: {label} receives a 2-D tensor; an LSTM needs "
                                         "(batch, time, features): set return_sequences=True on "
                                         "the LSTM before it")
                parsed = _read_lstm(layer, size, weights, where)
                size, rank = parsed.output_size, 3 if parsed.return_sequences else 2
            elif cls == "Dense":
                activation = _activation_name(cfg.get("activation"), label, where)
                if activation not in _NUMPY_ACTIVATIONS:
                    raise LSTMBenchError(f"{where}: {label}: activation {activation!r} is not "
                                         f"supported; supported: {sorted(_NUMPY_ACTIVATIONS)}")
                if cfg.get("lora_rank"):
                    raise LSTMBenchError(f"{where}: {label}: LoRA-enabled Dense is not supported")
                units = cfg.get("units")
                if not isinstance(units, int) or units < 1:
                    raise LSTMBenchError(f"{where}: {label}: units={units!r} is not a positive integer")
                shapes = [(size, units)] + ([(units,)] if cfg.get("use_bias", True) else [])
                arrays = weights.read(name, label, "", shapes)
                parsed = KerasDense(name, arrays[0].astype(np.float32),
                                    arrays[1].astype(np.float32) if len(arrays) > 1 else None,
                                    activation)
                size = units
            else:  # Activation
                activation = _activation_name(cfg.get("activation"), label, where)
                if activation not in _NUMPY_ACTIVATIONS:
                    raise LSTMBenchError(f"{where}: {label}: activation {activation!r} is not "
                                         f"supported; supported: {sorted(_NUMPY_ACTIVATIONS)}")
                parsed = KerasDense(name, None, None, activation)
            layers.append(parsed)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise LSTMBenchError(f"{where}: config.json is not a Keras 3 model config this exporter "
                             f"understands ({type(exc).__name__}: {exc})") from None
    finally:
        h5.close()
    if not any(isinstance(layer, KerasLSTM) for layer in layers):
        raise LSTMBenchError(f"{where}: the model has no LSTM layer")
    time_steps = shape[1] if isinstance(shape[1], int) else None
    return KerasModel(config["config"].get("name", "model"), input_name, shape[2], time_steps,
                      tuple(layers))


# --------------------------------------------------------------------------------------------
# The ONNX graph


class _Graph:
    """Nodes and initializers under construction, with unique names per Keras layer."""

    def __init__(self):
        self.nodes, self.initializers, self._used = [], [], set()

    def name(self, base: str) -> str:
        candidate, k = base, 0
        while candidate in self._used:
            k += 1
            candidate = f"{base}_{k}"
        self._used.add(candidate)
        return candidate

    def const(self, base: str, array) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, scope: str, op_type: str, inputs, n_outputs: int = 1, **attrs):
        from onnx import helper

        node_name = self.name(f"{scope}/{op_type}")
        outputs = [f"{node_name}:{k}" for k in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs))
        return outputs[0] if n_outputs == 1 else outputs


def _emit_activation(g: _Graph, scope: str, activation: str, x: str) -> str:
    f32 = np.float32
    if activation == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
              "softsign": "Softsign", "exponential": "Exp", "hard_silu": "HardSwish",
              "hard_swish": "HardSwish"}
    if activation in simple:
        return g.op(scope, simple[activation], [x])
    if activation in ("softmax", "log_softmax"):
        return g.op(scope, "Softmax" if activation == "softmax" else "LogSoftmax", [x], axis=-1)
    if activation == "elu":
        return g.op(scope, "Elu", [x], alpha=1.0)
    if activation == "selu":
        return g.op(scope, "Selu", [x], alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
    if activation == "hard_sigmoid":
        return g.op(scope, "HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if activation == "leaky_relu":
        return g.op(scope, "LeakyRelu", [x], alpha=0.2)
    if activation in ("relu6", "hard_tanh"):
        low, high = (0.0, 6.0) if activation == "relu6" else (-1.0, 1.0)
        bounds = [g.const(f"{scope}/min", f32(low)), g.const(f"{scope}/max", f32(high))]
        return g.op(scope, "Clip", [x, *bounds])
    if activation in ("silu", "swish"):
        return g.op(scope, "Mul", [x, g.op(scope, "Sigmoid", [x])])
    if activation == "mish":
        return g.op(scope, "Mul", [x, g.op(scope, "Tanh", [g.op(scope, "Softplus", [x])])])
    if activation == "gelu":  # exact (erf) form, Keras' default approximate=False
        scaled = g.op(scope, "Mul", [x, g.const(f"{scope}/rsqrt2", f32(1.0 / np.sqrt(2.0)))])
        one_plus = g.op(scope, "Add", [g.op(scope, "Erf", [scaled]), g.const(f"{scope}/one", f32(1.0))])
        half_x = g.op(scope, "Mul", [x, g.const(f"{scope}/half", f32(0.5))])
        return g.op(scope, "Mul", [half_x, one_plus])
    raise LSTMBenchError(f"activation {activation!r} has no ONNX form here")  # guarded by read_keras


def _emit_merge(g: _Graph, scope: str, mode: str, forward: str, backward: str) -> str:
    if mode == "concat":
        return g.op(scope, "Concat", [forward, backward], axis=-1)
    if mode == "sum":
        return g.op(scope, "Add", [forward, backward])
    if mode == "mul":
        return g.op(scope, "Mul", [forward, backward])
    total = g.op(scope, "Add", [forward, backward])  # ave
    return g.op(scope, "Mul", [total, g.const(f"{scope}/half", np.float32(0.5))])


def _emit_lstm(g: _Graph, layer: KerasLSTM, x: str) -> str:
    from onnx import helper

    scope, spec = layer.name, layer.weights.spec
    time_major = g.op(scope, "Transpose", [x], perm=[1, 0, 2])
    inputs = [time_major] + [g.const(f"{scope}/{key}", value)
                             for key, value in layer.weights.tensors().items()]
    node_name = g.name(scope)
    Y, Y_h = f"{node_name}/Y", f"{node_name}/Y_h"
    g.nodes.append(helper.make_node("LSTM", inputs, [Y, Y_h], name=node_name, **spec.attributes()))
    if layer.return_sequences:  # Y [T, D, B, H]
        if spec.direction == "bidirectional":
            idx = [g.const(f"{scope}/index{d}", np.int64(d)) for d in (0, 1)]
            forward, backward = (g.op(scope, "Gather", [Y, i], axis=1) for i in idx)
            seq = _emit_merge(g, scope, layer.merge_mode, forward, backward)
        else:
            seq = g.op(scope, "Squeeze", [Y, g.const(f"{scope}/axis1", np.array([1], np.int64))])
            if spec.direction == "reverse":  # Keras returns go_backwards output in step order
                flip = [g.const(f"{scope}/{k}", np.array([v], np.int64))
                        for k, v in (("start", -1), ("end", np.iinfo(np.int64).min),
                                     ("axis0", 0), ("step", -1))]
                seq = g.op(scope, "Slice", [seq, *flip])
        return g.op(scope, "Transpose", [seq], perm=[1, 0, 2])
    if spec.direction == "bidirectional":  # Y_h [2, B, H]
        idx = [g.const(f"{scope}/index{d}", np.int64(d)) for d in (0, 1)]
        forward, backward = (g.op(scope, "Gather", [Y_h, i], axis=0) for i in idx)
        return _emit_merge(g, scope, layer.merge_mode, forward, backward)
    return g.op(scope, "Squeeze", [Y_h, g.const(f"{scope}/axis0", np.array([0], np.int64))])


def build_keras_model(parsed: KerasModel, *, opset: int = DEFAULT_OPSET):
    """The ONNX ModelProto of a parsed Keras model; checked with full shape inference."""
    import onnx
    from onnx import TensorProto, helper

    if opset not in SUPPORTED_OPSETS:
        raise LSTMBenchError(f"opset {opset} is not supported for Keras models; choose one of "
                             f"{SUPPORTED_OPSETS[0]}..{SUPPORTED_OPSETS[-1]}")
    g = _Graph()
    x = parsed.input_name
    g.name(x)
    output_name = g.name(OUTPUT_NAME)  # "output" unless the input already took that name
    rank, size = 3, parsed.input_size
    for layer in parsed.layers:
        if isinstance(layer, KerasLSTM):
            x = _emit_lstm(g, layer, x)
            rank, size = (3 if layer.return_sequences else 2), layer.output_size
        else:
            if layer.kernel is not None:
                x = g.op(layer.name, "MatMul", [x, g.const(f"{layer.name}/kernel", layer.kernel)])
                if layer.bias is not None:
                    x = g.op(layer.name, "Add", [x, g.const(f"{layer.name}/bias", layer.bias)])
                size = layer.kernel.shape[1]
            x = _emit_activation(g, layer.name, layer.activation, x)
    if x == parsed.input_name:  # cannot happen: read_keras demands an LSTM layer
        raise LSTMBenchError("the model computes nothing")
    for node in g.nodes:  # give the last tensor its public name
        node.output[:] = [output_name if o == x else o for o in node.output]
    out_shape = ["batch", "seq_len", size] if rank == 3 else ["batch", size]
    graph = helper.make_graph(
        g.nodes, parsed.name,
        [helper.make_tensor_value_info(parsed.input_name, TensorProto.FLOAT,
                                       ["batch", "seq_len", parsed.input_size])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)],
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="lstm-bench",
                              doc_string=f"exported from Keras model {parsed.name!r}")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


def export_keras(keras_path, path=None, *, opset: int | None = None):
    """Export a Keras 3 ``.keras`` archive to ONNX; saved atomically to ``path`` when given.

    Returns the ModelProto. Input: ``(batch, time, features)`` named after the InputLayer;
    output ``"output"``; batch and time dynamic; one ONNX LSTM node per Keras LSTM layer.
    """
    import onnx

    model = build_keras_model(read_keras(keras_path),
                              opset=DEFAULT_OPSET if opset is None else opset)
    if path is not None:
        from lstm_bench.files import atomic_path

        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
    return model


# --------------------------------------------------------------------------------------------
# The float64 reference


def _merge(mode: str, forward, backward):
    if mode == "concat":
        return np.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    return (forward + backward) / 2.0


def keras_reference(keras_path, X) -> np.ndarray:
    """What the archive's model computes on ``X`` (batch, time, features), in float64.

    Walks the layers itself, independent of the exported graph: each LSTM through
    ``reference.lstm``, go_backwards / Bidirectional / Dense / activations in NumPy.
    """
    from lstm_bench.reference import lstm

    parsed = read_keras(keras_path) if not isinstance(keras_path, KerasModel) else keras_path
    x = np.asarray(X)
    if x.ndim != 3 or x.shape[2] != parsed.input_size or not np.issubdtype(x.dtype, np.floating):
        raise LSTMBenchError(f"X has shape {list(x.shape)} and dtype {x.dtype}; the model takes "
                             f"floats of shape [batch, time, {parsed.input_size}]")
    x = x.astype(np.float64)
    for layer in parsed.layers:
        if isinstance(layer, KerasLSTM):
            spec, w = layer.weights.spec, layer.weights
            Y, Y_h, _ = lstm(x.transpose(1, 0, 2), w.W, w.R, w.B, direction=spec.direction,
                             activations=spec.activations, activation_alpha=spec.activation_alpha,
                             activation_beta=spec.activation_beta)
            if layer.return_sequences:  # Y [T, D, B, H]
                if spec.direction == "bidirectional":
                    seq = _merge(layer.merge_mode, Y[:, 0], Y[:, 1])
                else:
                    seq = Y[::-1, 0] if spec.direction == "reverse" else Y[:, 0]
                x = seq.transpose(1, 0, 2)
            else:
                x = _merge(layer.merge_mode, Y_h[0], Y_h[1]) if spec.direction == "bidirectional" \
                    else Y_h[0]
        else:
            if layer.kernel is not None:
                x = x @ layer.kernel.astype(np.float64)
                if layer.bias is not None:
                    x = x + layer.bias.astype(np.float64)
            x = _NUMPY_ACTIVATIONS[layer.activation](x)
    return x
