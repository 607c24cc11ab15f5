"""A runtime's outputs against the float64 truth: every output judged by ``lstm_bench.tolerances``,
the result a ``Verdict``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lstm_bench.tolerances import TOLERANCES, Failure, compare_output
from lstm_bench.verify.sensitivity import WIDENED, Float32Floor
from lstm_bench.verify.verdict import PASS, Verdict


def runtime_precision(runtime, outputs: dict) -> str:
    """The precision row a runtime is judged by: its declared one, else its float outputs' dtype."""
    if runtime.precision:
        return runtime.precision
    for value in outputs.values():
        dtype = np.asarray(value).dtype
        if np.issubdtype(dtype, np.floating):
            return dtype.name
    return "float32"


def compare(runtime: str, outputs: dict, truth: dict, precision: str,
            time_axes: dict[str, int] | None = None,
            floor: Float32Floor | None = None) -> Verdict:
    """Every output of ``truth`` against ``outputs``; a Verdict with status pass or fail.

    ``floor``: the model's ``Float32Floor`` on the same feeds; a float32 output beyond the
    table is judged again against its widened limit."""
    tolerance = TOLERANCES.get(precision, TOLERANCES["float32"])
    # nothing compared must not read as a pass
    errors = () if truth else (Failure(runtime, "*", "outputs", "none to compare", None),)
    judged = []
    for name, expected in truth.items():
        axis = (time_axes or {}).get(name)
        output = compare_output(runtime, name, outputs.get(name), expected, tolerance,
                                precision, axis)
        widened = (floor.limits().get(name) if floor is not None and precision in WIDENED
                   and [f.metric for f in output.failures] == ["abs_error"] else None)
        if widened is not None:
            output = compare_output(runtime, name, outputs.get(name), expected, tolerance,
                                    precision, axis, floor=widened[0])
            output = replace(output, float32_floor=widened[1])
        judged.append(output)
    return Verdict(runtime, PASS, precision=precision, tolerance=tolerance,
                   outputs=tuple(judged), errors=errors).settled()

