"""One Keras layer config (and its weights) to a parsed layer of ``keras_layers``.

``LayerReader`` reads the layers of a model one at a time, input first, keeping the running
tensor's size, rank, fixed length and mask (Keras passes a mask on through the layers that
support masking and drops it at the others); ``read_lstm`` maps an LSTM or Bidirectional(LSTM)
to ONNX layout. The weights come from the archive reader (``keras._Weights``), passed in.
Which layer classes exist, which are the identity at inference, and what to do instead of the
ones people try most are the tables below.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.keras_layers import (
    NUMPY_ACTIVATIONS, RNN_ACTIVATIONS, KerasAffine, KerasConv1D, KerasDense, KerasEmbedding,
    KerasFlatten, KerasGlobalPool, KerasLayerNorm, KerasLSTM, KerasMasking, KerasMerge,
    KerasPool1D, KerasReshape)
from lstm_bench.spec import LSTMSpec, LSTMWeights

MERGE_MODES = ("concat", "sum", "mul", "ave")

# Layers kept, and their snake_case names: the h5 group Keras files a layer under when the
# group carries no ``name`` attribute (older Keras 3 releases).
SUPPORTED = {"InputLayer": "input_layer", "LSTM": "lstm", "Bidirectional": "bidirectional",
              "Dense": "dense", "Activation": "activation", "Dropout": "dropout",
              "Embedding": "embedding", "Masking": "masking",
              "SpatialDropout1D": "spatial_dropout1d", "GaussianDropout": "gaussian_dropout",
              "GaussianNoise": "gaussian_noise", "Conv1D": "conv1d",
              "MaxPooling1D": "max_pooling1d", "AveragePooling1D": "average_pooling1d",
              "GlobalMaxPooling1D": "global_max_pooling1d",
              "GlobalAveragePooling1D": "global_average_pooling1d",
              "TimeDistributed": "time_distributed", "BatchNormalization": "batch_normalization",
              "LayerNormalization": "layer_normalization", "Flatten": "flatten",
              "Reshape": "reshape", "RepeatVector": "repeat_vector"}
# merge layers of functional models -> the kind KerasMerge computes
MERGES = {"Concatenate": "concat", "Add": "add", "Subtract": "subtract", "Multiply": "multiply",
           "Average": "average", "Maximum": "maximum", "Minimum": "minimum"}
SUPPORTED.update({cls: cls.lower() for cls in MERGES})
# identity at inference
IDENTITY = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise")
# what to do instead, for layers people try
INSTEAD = {
    "Lambda": "Lambda layers hold code, which lstm-bench never runs: rewrite it as built-in layers",
    "GRU": "lstm-bench measures LSTM layers; a GRU has its own ONNX operator",
    "SimpleRNN": "lstm-bench measures LSTM layers",
    "Attention": "attention layers are not supported: export the LSTM encoder on its own",
    "MultiHeadAttention": "attention layers are not supported: export the LSTM encoder on its own",
    "ConvLSTM1D": "ConvLSTM has no ONNX LSTM equivalent",
}



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


def check_builtin(layer: dict, label: str, where: str):
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
        if keras_name not in RNN_ACTIVATIONS:
            raise LSTMBenchError(f"{where}: {label}: {key}={keras_name!r} has no ONNX LSTM "
                                 f"equivalent; supported: {sorted(RNN_ACTIVATIONS)}")
        onnx_name, alpha, beta = RNN_ACTIVATIONS[keras_name]
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


def read_lstm(layer, input_size, weights, where) -> KerasLSTM:
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
            check_builtin(sub, f"Bidirectional layer {name!r}", where)
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


def _positive(cfg: dict, key: str, label: str, where: str) -> int:
    value = cfg.get(key)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, int) or value < 1:
        raise LSTMBenchError(f"{where}: {label}: {key}={value!r} is not a positive integer")
    return value


class LayerReader:
    """Reads one layer config at a time, tracking the running tensor's size, rank and mask."""

    def __init__(self, weights, where: str, size: int | None, time_steps: int | None):
        self.weights, self.where = weights, where
        self.size, self.rank, self.steps = size, 3 if size else 2, time_steps
        self.masked = False  # the running tensor carries a Keras mask
        self.fixed_length = False  # a layer folds the time axis into features
        self.mask_value = None  # what a padded input step holds (0 for token ids)

    def state(self) -> tuple:
        return self.size, self.rank, self.steps, self.masked

    def load(self, state: tuple) -> None:
        self.size, self.rank, self.steps, self.masked = state

    def merge(self, layer, states: list[tuple]) -> tuple[KerasMerge, tuple]:
        """A merge layer over the running tensors ``states``; (parsed, its output state)."""
        cls, cfg = layer["class_name"], layer["config"]
        label = f"{cls} layer {cfg['name']!r}"
        sizes, ranks = [s[0] for s in states], {s[1] for s in states}
        if any(s[3] for s in states):
            self.fail(label, "merges masked tensors (after an Embedding with mask_zero or "
                             "Masking); not supported: merge after the LSTMs that consume the mask")
        if len(ranks) != 1:
            self.fail(label, "merges tensors of different ranks")
        (rank,) = ranks
        steps = {s[2] for s in states}
        if cls == "Concatenate":
            if cfg.get("axis", -1) not in (-1, rank - 1):
                self.fail(label, f"axis={cfg.get('axis')} is not supported; only the last axis")
            size = sum(sizes)
        else:
            if len(set(sizes)) != 1:
                self.fail(label, f"merges tensors of sizes {sizes}")
            size = sizes[0]
        return (KerasMerge(cfg["name"], MERGES[cls]),
                (size, rank, steps.pop() if len(steps) == 1 else None, False))

    def fail(self, label, text):
        raise LSTMBenchError(f"{self.where}: {label}: {text}")

    def activation(self, cfg, label):
        activation = _activation_name(cfg.get("activation"), label, self.where)
        if activation not in NUMPY_ACTIVATIONS:
            self.fail(label, f"activation {activation!r} is not supported; supported: "
                             f"{sorted(NUMPY_ACTIVATIONS)}")
        return activation

    def dense(self, cfg, name, label, sub=""):
        if cfg.get("lora_rank"):
            self.fail(label, "LoRA-enabled Dense is not supported")
        units = _positive(cfg, "units", label, self.where)
        shapes = [(self.size, units)] + ([(units,)] if cfg.get("use_bias", True) else [])
        arrays = self.weights.read(name, label, sub, shapes)
        parsed = KerasDense(name, arrays[0].astype(np.float32),
                            arrays[1].astype(np.float32) if len(arrays) > 1 else None,
                            self.activation(cfg, label))
        self.size = units
        return parsed

    def sequence(self, label):
        if self.rank != 3:
            self.fail(label, "receives a 2-D tensor; it needs (batch, time, features): set "
                             "return_sequences=True on the LSTM before it")

    def read(self, layer):
        cls, cfg = layer["class_name"], layer["config"]
        name = cfg["name"]
        label = f"{cls} layer {name!r}"
        if cfg.get("data_format", "channels_last") != "channels_last":
            self.fail(label, "data_format='channels_first' is not supported")
        if cls in IDENTITY:
            return None
        if cls == "Embedding":
            if self.size is not None:
                self.fail(label, "an Embedding must be the model's first layer")
            vocab, dim = (_positive(cfg, k, label, self.where) for k in ("input_dim", "output_dim"))
            (table,) = self.weights.read(name, label, "", [(vocab, dim)])
            self.size, self.rank = dim, 3
            if cfg.get("mask_zero"):
                self.masked, self.mask_value = True, 0.0
            return KerasEmbedding(name, table.astype(np.float32), bool(cfg.get("mask_zero")))
        if cls == "Masking":
            self.sequence(label)
            value = float(cfg.get("mask_value", 0.0))
            self.masked, self.mask_value = True, value
            return KerasMasking(name, value)
        if cls in ("LSTM", "Bidirectional"):
            self.sequence(label)
            parsed = read_lstm(layer, self.size, self.weights, self.where)
            if self.masked and parsed.return_sequences and parsed.weights.spec.direction == "reverse":
                self.fail(label, "go_backwards with return_sequences on a masked input is not "
                                 "supported (Keras returns it in processing order); use "
                                 "Bidirectional, or return_sequences=False")
            if self.masked:
                zero = parsed.return_sequences and (cls == "Bidirectional" or bool(
                    cfg.get("zero_output_for_mask")))
                parsed = dataclasses.replace(parsed, masked=True, zero_output_for_mask=zero)
            self.size, self.rank = parsed.output_size, 3 if parsed.return_sequences else 2
            self.masked = self.masked and parsed.return_sequences
            return parsed
        if cls == "Dense":
            return self.dense(cfg, name, label)
        if cls == "TimeDistributed":
            inner = cfg.get("layer") or {}
            if inner.get("class_name") != "Dense":
                self.fail(label, f"wraps {inner.get('class_name')!r}; only TimeDistributed(Dense) "
                                 "is supported")
            check_builtin(inner, label, self.where)
            self.sequence(label)
            return self.dense(inner["config"], name, label, "layer/")
        if cls == "Activation":
            return KerasDense(name, None, None, self.activation(cfg, label))
        if cls == "Conv1D":
            self.sequence(label)
            if cfg.get("groups", 1) != 1:
                self.fail(label, "grouped convolution (groups > 1) is not supported")
            padding = cfg.get("padding", "valid")
            if padding not in ("valid", "same", "causal"):
                self.fail(label, f"padding={padding!r} is not supported")
            filters = _positive(cfg, "filters", label, self.where)
            k = _positive(cfg, "kernel_size", label, self.where)
            shapes = [(k, self.size, filters)] + ([(filters,)] if cfg.get("use_bias", True) else [])
            arrays = self.weights.read(name, label, "", shapes)
            self.size, self.steps, self.masked = filters, None, False  # Conv1D drops the mask
            return KerasConv1D(name, arrays[0].astype(np.float32),
                               arrays[1].astype(np.float32) if len(arrays) > 1 else None,
                               _positive(cfg, "strides", label, self.where),
                               _positive(cfg, "dilation_rate", label, self.where), padding,
                               self.activation(cfg, label))
        if cls in ("MaxPooling1D", "AveragePooling1D"):
            self.sequence(label)
            padding = cfg.get("padding", "valid")
            if padding not in ("valid", "same"):
                self.fail(label, f"padding={padding!r} is not supported")
            if padding == "same" and cls == "AveragePooling1D":
                # TensorFlow leaves padded cells out of the mean; Keras' torch backend pads
                # uneven "same" explicitly with zeros and counts them: no one answer to match
                self.fail(label, "padding='same' is not supported: Keras' backends disagree on "
                                 "padded cells; use padding='valid'")
            size = _positive(cfg, "pool_size", label, self.where)
            strides = _positive(cfg, "strides", label, self.where) if cfg.get("strides") else size
            self.steps, self.masked = None, False
            return KerasPool1D(name, "max" if cls.startswith("Max") else "average", size, strides,
                               padding)
        if cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
            self.sequence(label)
            if cfg.get("keepdims"):
                self.fail(label, "keepdims=True is not supported")
            parsed = KerasGlobalPool(name, "max" if "Max" in cls else "average",
                                     masked=self.masked and "Average" in cls)
            self.rank, self.masked = 2, False
            return parsed
        if cls == "BatchNormalization":
            if cfg.get("axis", -1) not in (-1, self.rank - 1, [-1]):
                self.fail(label, f"axis={cfg.get('axis')} is not supported; only the last axis")
            shapes = [(self.size,)] * (2 + bool(cfg.get("scale", True)) + bool(cfg.get("center", True)))
            arrays = [a.astype(np.float64) for a in self.weights.read(name, label, "", shapes)]
            gamma = arrays.pop(0) if cfg.get("scale", True) else np.ones(self.size)
            beta = arrays.pop(0) if cfg.get("center", True) else np.zeros(self.size)
            mean, var = arrays
            scale = gamma / np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
            return KerasAffine(name, scale.astype(np.float32),
                               (beta - mean * scale).astype(np.float32))
        if cls == "LayerNormalization":
            if cfg.get("axis", -1) not in (-1, [-1], self.rank - 1, [self.rank - 1]):
                self.fail(label, f"axis={cfg.get('axis')} is not supported; only the last axis")
            if cfg.get("rms_scaling"):
                self.fail(label, "rms_scaling=True is not supported")
            scale, center = cfg.get("scale", True), cfg.get("center", True)
            arrays = self.weights.read(name, label, "", [(self.size,)] * (scale + center))
            gamma = arrays.pop(0).astype(np.float32) if scale else None
            beta = arrays.pop(0).astype(np.float32) if center else None
            return KerasLayerNorm(name, gamma, beta, float(cfg.get("epsilon", 1e-3)))
        if cls == "Flatten":
            if self.rank == 3:
                if self.steps is None:
                    self.fail(label, "flattens a time axis of unknown length; give the Input a "
                                     "fixed length (keras.Input((T, features)))")
                self.size, self.rank, self.masked = self.size * self.steps, 2, False
                self.fixed_length = True
            return KerasFlatten(name)
        if cls == "RepeatVector":
            if self.rank != 2:
                self.fail(label, "repeats a 3-D tensor; RepeatVector takes (batch, features)")
            n = _positive(cfg, "n", label, self.where)
            self.rank, self.steps, self.masked = 3, n, False
            return KerasReshape(name, (n, self.size), repeat=True)
        if cls == "Reshape":
            target = cfg.get("target_shape")
            if not isinstance(target, list) or not 1 <= len(target) <= 2 \
                    or not all(isinstance(d, int) and (d > 0 or d == -1) for d in target):
                self.fail(label, f"target_shape={target} is not supported; (features,) or "
                                 "(time, features) with at most one -1")
            if -1 in target and target.count(-1) > 1:
                self.fail(label, "target_shape has more than one -1")
            total = self.size * (self.steps if self.rank == 3 else 1) if self.size else None
            if self.rank == 3 and self.steps is None or total is None:
                self.fail(label, "reshapes a tensor of unknown length; give the Input a fixed "
                                 "length")
            known = int(np.prod([d for d in target if d != -1]))
            if total % known or (-1 not in target and known != total):
                self.fail(label, f"target_shape={target} does not hold {total} values")
            target = [total // known if d == -1 else d for d in target]
            self.fixed_length = self.fixed_length or self.rank == 3
            self.size, self.rank, self.masked = target[-1], len(target) + 1, False
            self.steps = target[0] if len(target) == 2 else None
            return KerasReshape(name, tuple(target))
        self.fail(label, "is not supported")  # guarded by read_keras' class check
