"""What a Keras archive's layers mean, as data: the parsed layers and the activation tables.

Shared by the archive reader (``keras``), the ONNX emitter (``keras_onnx``) and the float64 walk
(``keras_walk``), so that neither of the last two depends on the other.

Masks: a layer's ``masked`` says that its input carries a Keras mask (from
``Embedding(mask_zero=True)`` or ``Masking``), which Keras passes on through layers that
support masking (Dropout, Dense, TimeDistributed, normalization, LSTM with return_sequences)
and drops at the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_bench.spec import LSTMWeights

# Keras 3 activation name -> (ONNX RNN activation, alpha, beta); None = that parameter unused.
RNN_ACTIVATIONS = {
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
# integer types a Keras token input may be declared with; the ONNX input keeps them
TOKEN_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _gelu(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


# Keras 3 activation name -> float64 NumPy function: the reference side of Dense/Activation.
NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
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

# --------------------------------------------------------------------------------------------
# The parsed layers


@dataclass(frozen=True, eq=False)
class KerasLSTM:
    """An LSTM or Bidirectional(LSTM) layer; weights in ONNX layout (go_backwards = reverse)."""

    name: str
    weights: LSTMWeights
    return_sequences: bool
    merge_mode: str | None = None  # Bidirectional only
    masked: bool = False
    zero_output_for_mask: bool = False  # Keras forces it in Bidirectional with sequences

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
class KerasEmbedding:
    """An Embedding: token ids [batch, time] -> table rows; mask_zero masks id 0."""

    name: str
    table: np.ndarray  # [vocab, dim]
    mask_zero: bool


@dataclass(frozen=True, eq=False)
class KerasMasking:
    """Masking: a step whose features all equal mask_value is masked (and zeroed)."""

    name: str
    mask_value: float


@dataclass(frozen=True, eq=False)
class KerasConv1D:
    """Conv1D, channels_last: kernel [k, in, out], padding valid / same / causal."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray | None
    strides: int
    dilation: int
    padding: str
    activation: str


@dataclass(frozen=True, eq=False)
class KerasPool1D:
    """MaxPooling1D / AveragePooling1D (kind "max" / "average"), channels_last."""

    name: str
    kind: str
    pool_size: int
    strides: int
    padding: str


@dataclass(frozen=True, eq=False)
class KerasGlobalPool:
    """GlobalMax/AveragePooling1D over time; the average skips masked steps, as Keras does."""

    name: str
    kind: str
    masked: bool = False


@dataclass(frozen=True, eq=False)
class KerasAffine:
    """BatchNormalization at inference: x * scale + shift over the last axis."""

    name: str
    scale: np.ndarray
    shift: np.ndarray


@dataclass(frozen=True, eq=False)
class KerasLayerNorm:
    """LayerNormalization over the last axis."""

    name: str
    gamma: np.ndarray | None
    beta: np.ndarray | None
    epsilon: float


@dataclass(frozen=True, eq=False)
class KerasFlatten:
    """Flatten: [batch, time, features] -> [batch, time * features] (time must be fixed)."""

    name: str


@dataclass(frozen=True, eq=False)
class KerasReshape:
    """Reshape to ``(batch, *target)``; RepeatVector(n) is target ``(n, features)`` of a
    ``(batch, features)`` tensor, repeated rather than reshaped (``repeat``)."""

    name: str
    target: tuple
    repeat: bool = False


@dataclass(frozen=True, eq=False)
class KerasMerge:
    """A merge of a functional model's branches: concat (last axis), add, subtract, multiply,
    average, maximum or minimum."""

    name: str
    kind: str


@dataclass(frozen=True, eq=False)
class KerasModel:
    """What an archive holds, identity layers left out: the input and the layer chain."""

    name: str
    input_name: str
    input_size: int | None  # features; None for token ids [batch, time]
    time_steps: int | None  # as saved; the exported graph accepts any length where it can
    layers: tuple
    tokens: bool = False  # the input is token ids (the model starts with an Embedding)
    mask_value: float | None = None  # what a padded step holds, where the model masks
    # per layer: (ids of its input tensors, id of its output); "" or ``source`` is the input
    wiring: tuple = ()
    source: str = ""
    output: str = ""
    fixed_length: bool = False  # a Flatten / Reshape folds time into features: T as saved
    token_dtype: str = "int64"  # the token input's integer type, as the InputLayer declares it

    @property
    def masked(self) -> bool:
        return self.mask_value is not None



