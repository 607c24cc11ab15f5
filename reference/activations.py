"""The eleven activation functions of the ONNX RNN operators, with onnxruntime's defaults.

The spec names the functions but leaves default alpha/beta open; we follow onnxruntime's CPU
kernel (``rnn_helpers.cc``): LeakyRelu alpha 0.01, HardSigmoid 0.2/0.5, Elu 1.0, and 0 for
every other parameter a function takes (Affine, ThresholdedRelu, ScaledTanh). alpha/beta lists
are consumed in order, each entry only by a function that takes that parameter.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError


def _sigmoid(x, alpha, beta):
    # 1/(1+exp(-x)) written through tanh: one ufunc, no overflow warning, exact to a few ulp.
    out = np.multiply(x, 0.5)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def _hard_sigmoid(x, alpha, beta):
    return np.clip(alpha * x + beta, 0.0, 1.0)


def _softplus(x, alpha, beta):
    return np.logaddexp(0.0, x)


def _elu(x, alpha, beta):
    return np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


# name (lower case) -> (function, takes alpha, takes beta, default alpha, default beta)
ACTIVATIONS = {
    "sigmoid": (_sigmoid, False, False, 0.0, 0.0),
    "tanh": (lambda x, a, b: np.tanh(x), False, False, 0.0, 0.0),
    "relu": (lambda x, a, b: np.maximum(x, 0.0), False, False, 0.0, 0.0),
    "affine": (lambda x, a, b: a * x + b, True, True, 0.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), True, False, 0.01, 0.0),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0.0), True, False, 0.0, 0.0),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), True, True, 0.0, 0.0),
    "hardsigmoid": (_hard_sigmoid, True, True, 0.2, 0.5),
    "elu": (_elu, True, False, 1.0, 0.0),
    "softsign": (lambda x, a, b: x / (1.0 + np.abs(x)), False, False, 0.0, 0.0),
    "softplus": (_softplus, False, False, 0.0, 0.0),
}

DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")


def resolve(names, alphas=None, betas=None):
    """Bind each activation name to a one-argument function, consuming alpha/beta in order.

    Returns a list of ``(lower_name, alpha, beta, fn)``.
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
                      lambda x, fn=fn, a=float(alpha), b=float(beta): fn(x, a, b)))
    return bound
