"""Keras test models saved once per module, with random weights a trained model could have."""

import numpy as np


def save_randomized(builders, root, rng, keep=()):
    """Build each model, give every layer but those of ``keep`` (names) random weights, and
    save it as ``root/NAME.keras``; returns name -> (archive path, Keras model).

    Random weights, biases included, so that a mix-up of gates or of bias halves shows; a
    BatchNormalization layer gets a positive variance (gamma, beta, mean, variance).
    """
    from keras import layers

    out = {}
    for name, build in builders.items():
        model = build()
        if name not in keep:
            for layer in model.layers:
                weights = layer.get_weights()
                if isinstance(layer, layers.BatchNormalization):
                    weights = [rng.normal(1, 0.2, w.shape) for w in weights[:3]] + \
                              [rng.uniform(0.5, 2.0, weights[3].shape)]
                    layer.set_weights([w.astype(np.float32) for w in weights])
                elif weights:
                    layer.set_weights([rng.normal(0.0, 0.5, w.shape).astype(w.dtype)
                                       for w in weights])
        path = root / f"{name}.keras"
        model.save(path)
        out[name] = (path, model)
    return out
