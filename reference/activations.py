"""The eleven activation functions of the ONNX RNN operators, with onnxruntime's defaults.

The spec names the functions but leaves default alpha/beta open; we follow onnxruntime's CPU
kernel (``rnn_helpers.cc``): LeakyRelu alpha 0.01, HardSigmoid 0.2/0.5, Elu 1.0, and 0 for
every other parameter a function takes (Affine, ThresholdedRelu, ScaledTanh). alpha/beta lists
are consumed in order, each entry only by a function that takes that parameter.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError


# Each function computes fn(x) with the given alpha, beta into ``out`` (which may be ``x``
# itself, or None for a new array) and returns it: the LSTM loop works in preallocated buffers.

def _store(value, out):
    if out is None:
        return value
    np.copyto(out, value)
    return out


def _sigmoid(x, alpha, beta, out):
    # 1 / (1 + exp(-x)); below x = -709 exp overflows to inf, which gives the exact 0 (callers
    # in a loop silence that warning once, np.errstate costs a microsecond per call).
    out = np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def _tanh(x, alpha, beta, out):
    return np.tanh(x, out=out)


def _relu(x, alpha, beta, out):
    return np.maximum(x, 0.0, out=out)


def _affine(x, alpha, beta, out):
    out = np.multiply(x, alpha, out=out)
    out += beta
    return out


def _leaky_relu(x, alpha, beta, out):
    return _store(np.where(x >= 0, x, alpha * x), out)


def _thresholded_relu(x, alpha, beta, out):
    # x > alpha as onnxruntime has it (the spec's table writes >=; equal inputs have measure 0).
    return _store(np.where(x > alpha, x, 0.0), out)


def _scaled_tanh(x, alpha, beta, out):
    out = np.multiply(x, beta, out=out)
    np.tanh(out, out=out)
    out *= alpha
    return out


def _hard_sigmoid(x, alpha, beta, out):
    out = _affine(x, alpha, beta, out)
    return np.clip(out, 0.0, 1.0, out=out)


def _elu(x, alpha, beta, out):
    return _store(np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0))), out)


def _softsign(x, alpha, beta, out):
    return _store(x / (1.0 + np.abs(x)), out)


def _softplus(x, alpha, beta, out):
    return np.logaddexp(0.0, x, out=out)  # log(1 + e^x) without overflow


# name (lower case) -> (function, takes alpha, takes beta, default alpha, default beta)
ACTIVATIONS = {
    "sigmoid": (_sigmoid, False, False, 0.0, 0.0),
    "tanh": (_tanh, False, False, 0.0, 0.0),
    "relu": (_relu, False, False, 0.0, 0.0),
    "affine": (_affine, True, True, 0.0, 0.0),
    "leakyrelu": (_leaky_relu, True, False, 0.01, 0.0),
    "thresholdedrelu": (_thresholded_relu, True, False, 0.0, 0.0),
    "scaledtanh": (_scaled_tanh, True, True, 0.0, 0.0),
    "hardsigmoid": (_hard_sigmoid, True, True, 0.2, 0.5),
    "elu": (_elu, True, False, 1.0, 0.0),
    "softsign": (_softsign, False, False, 0.0, 0.0),
    "softplus": (_softplus, False, False, 0.0, 0.0),
}

DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")


def resolve(names, alphas=None, betas=None):
    """Bind each activation name to a one-argument function, consuming alpha/beta in order.

    Returns a list of ``(lower_name, alpha, beta, fn)``; ``fn(x, out=None)`` writes into
    ``out`` when given (``out`` may be ``x``).
    """
    alphas, betas = list(alphas or ()), list(betas or ())
    bound = []
    for name in names:
        key = str(name).lower()
        if key not in ACTIVATIONS:
            raise LSTMBenchError(
                f"activations: unknown activation {name!r}; expected one of "
                "Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, "
                "HardSigmoid, Elu, Softsign, Softplus (any case)")
        fn, takes_alpha, takes_beta, default_alpha, default_beta = ACTIVATIONS[key]
        alpha = alphas.pop(0) if takes_alpha and alphas else default_alpha
        beta = betas.pop(0) if takes_beta and betas else default_beta
        bound.append((key, float(alpha), float(beta),
                      lambda x, out=None, fn=fn, a=float(alpha), b=float(beta): fn(x, a, b, out)))
    return bound
