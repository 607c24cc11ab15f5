"""A model's own float32 sensitivity: how far a plain float32 evaluation lands from the truth.

A recurrence can amplify rounding. The trained seed model on random inputs is the example:
at T = 100 every float32 runtime is within 1e-5 of the float64 truth on its hidden states, at
T = 1000 lstm-bench's own float32 reference (runtime ``numpy``) is 7e-6 to 3e-5 away and
onnxruntime, torch and OpenVINO 8e-6 to 4.5e-5, and at T = 3000 all of them 3e-4 to 7e-3,
though each computes every step right. A fixed tolerance there fails float32 itself, not
the runtime, and the decision would then pick whichever float32 runtime was luckiest.

So a float32 (or float64-model) output beyond the tolerance table is judged again against a
widened limit: ``FACTOR`` times the error of the float32 reference on the same feeds, taken
per time step as the running maximum (an error that grows over time is allowed to grow, but
an early step is not judged by a late one), or as one maximum for an output without time.
The factor is measured: over 8 models (trained seed, Keras, torch, bidirectional, stacked,
peepholes, clip, unrolled), T = 100, 1000, 3000 and two seeds, a correct float32 runtime was
0.1x to 6.5x the float32 reference's error; OpenVINO on peepholes, which it computes wrong,
was 4e5x. Every widened output says so in its verdict, with the float32 reference's error.
"""

from __future__ import annotations

import numpy as np

from lstm_bench import interrupts
from lstm_bench.runtimes.numpy_rt import NumpyRuntime

FACTOR = 20
WIDENED = ("float32", "float64")  # the precision rows judged by a float32 evaluation
PROBE = "numpy"  # the runtime whose evaluation the limit comes from (it meets it by construction)


def widened_note(outputs, runtime: str) -> str | None:
    """The words for outputs judged by a widened limit (``OutputParity.float32_floor``), or
    None when none was."""
    floors = [o.float32_floor for o in outputs if o.float32_floor is not None]
    if not floors:
        return None
    own = (f"; {PROBE} is that evaluation, so it meets this limit by construction"
           if runtime == PROBE else "")
    return (f"widened to {FACTOR}x a plain float32 evaluation's error of {max(floors):.2g}: "
            f"the model amplifies float32 rounding at this length{own}")


class Float32Floor:
    """The widened limits of one model on one set of feeds, computed on first use."""

    def __init__(self, model, feeds: dict, truth: dict, axes: dict):
        self.model, self.feeds, self.truth, self.axes = model, feeds, truth, axes
        self._limits = None

    def limits(self) -> dict:
        """Output name -> (limit array broadcastable to the truth, float32 max abs error);
        empty when the float32 reference cannot run the model."""
        if self._limits is None:
            self._limits = _limits(self.model, self.feeds, self.truth, self.axes)
        return self._limits


def _limits(model, feeds, truth, axes) -> dict:
    try:
        with NumpyRuntime() as runtime:
            runtime.open(model)
            outputs = runtime.run({k: v.copy() for k, v in feeds.items()})
    except Exception:  # no float32 evaluation, no widening: the table's verdict stands
        interrupts.check()  # a signal turned into an error ends the command, as any signal
        return {}
    limits = {}
    for name, expected in truth.items():
        expected = np.asarray(expected)
        actual = np.asarray(outputs.get(name))
        if (actual.shape != expected.shape or not expected.size
                or not np.issubdtype(expected.dtype, np.floating)):
            continue
        error = np.abs(actual.astype(np.float64) - expected)
        if not np.all(np.isfinite(error)):
            continue
        axis = axes.get(name)
        if axis is None or error.ndim <= axis:
            limit = np.full((1,) * error.ndim, error.max())
        else:
            others = tuple(a for a in range(error.ndim) if a != axis)
            per_step = np.maximum.accumulate(error.max(axis=others))
            limit = np.expand_dims(per_step, others)
        limits[name] = (FACTOR * limit, float(error.max()))
    return limits
