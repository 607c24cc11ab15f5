"""How far outputs are from their truth, judged by one tolerance table and one check.

Used by every judgement lstm-bench makes: verify (a runtime against the float64 truth),
streaming parity (chunked calls against one call) and export proofs (the ONNX file against its
source framework).

An output passes when every element satisfies ``|actual - truth| <= atol + rtol * |truth|``
with (atol, rtol) from ``TOLERANCES``, keyed by the precision the runtime computes in: the
output's dtype, or a runtime's declared ``precision`` ("float16", "int8") when it transforms
the model. Besides that verdict every output carries max abs, max rel, mean abs error, the
ULP distance in the precision's float type, and for sequence outputs the max abs error of each
time step (the drift over a long sequence). Every failure is collected, none stops the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    def __str__(self):
        return f"{self.atol:.0e} + {self.rtol:.0e}·|truth|"


# The one tolerance table (docs/verify.md explains each row).
TOLERANCES = {
    "float64": Tolerance(atol=1e-5, rtol=1e-4),  # most runtimes compute a float64 model in float32
    "float32": Tolerance(atol=1e-5, rtol=1e-4),
    "float16": Tolerance(atol=5e-3, rtol=5e-3),
    "int8": Tolerance(atol=5e-2, rtol=5e-2),
}

# max_rel and max_ulp leave out elements with |truth| < REL_FLOOR * max|truth| of that output:
# near zero they say nothing (a padded step whose truth is 0.0 is billions of ULPs from 1e-30,
# a 1e-8 error on a 1e-5 value is 1e-3 relative). The abs_error verdict still judges them.
REL_FLOOR = 1e-3

_ULP_TYPES = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
_INT_TYPES = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32,
              np.dtype(np.float64): np.int64}


def ulp_distance(actual, truth, dtype) -> np.ndarray:
    """How many representable ``dtype`` values lie between actual and truth (both rounded)."""
    dtype = np.dtype(dtype)
    ints = _INT_TYPES[dtype]
    bits = np.iinfo(ints).bits

    def ordered(x):
        i = np.ascontiguousarray(x, dtype=dtype).view(ints).astype(np.int64)
        # two's-complement view of sign-magnitude floats: negative values count down from 0
        return np.where(i < 0, -(i & ((1 << (bits - 1)) - 1)), i)

    return np.abs(ordered(actual) - ordered(truth))


@dataclass(frozen=True)
class Failure:
    """One check that did not hold."""

    runtime: str
    output: str
    metric: str
    value: float | str | None
    limit: float | str | None
    detail: str = ""

    def __str__(self):
        def fmt(x):
            return f"{x:.3g}" if isinstance(x, float) else str(x)

        text = f"{self.runtime}: {self.output}: {self.metric} = {fmt(self.value)}"
        if self.limit is not None:
            text += f" > limit {fmt(self.limit)}"
        return text + (f" ({self.detail})" if self.detail else "")


@dataclass
class OutputParity:
    """One output of one runtime against the truth."""

    name: str
    dtype: str
    shape: list[int]
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    max_ulp: int | None = None
    ulp_dtype: str | None = None
    limit_at_worst: float | None = None  # atol + rtol*|truth| at the element that fails most
    # Where the limit was widened for a model that amplifies float32 rounding (see
    # runtimes.sensitivity): the max abs error of a plain float32 evaluation of this output.
    float32_floor: float | None = None
    time_axis: int | None = None
    per_step_max_abs: list[float] | None = None
    failures: list[Failure] = field(default_factory=list)

    def __bool__(self):
        return not self.failures

    def to_dict(self):
        out = asdict(self)
        out["failures"] = [asdict(f) for f in self.failures]
        out["passed"] = bool(self)
        return out


def compare_output(runtime: str, name: str, actual, truth, tolerance: Tolerance,
                   precision: str, time_axis: int | None = None, floor=None) -> OutputParity:
    """``actual`` against ``truth``. ``floor``: a widened limit (an array broadcastable to
    ``truth``, see runtimes.sensitivity); each element may be off by the larger of the two."""
    truth = np.asarray(truth)
    result = OutputParity(name, "missing" if actual is None else np.asarray(actual).dtype.name,
                          list(truth.shape), time_axis=time_axis)
    if actual is None:
        result.failures.append(Failure(runtime, name, "missing", "no such output", None))
        return result
    actual = np.asarray(actual)
    if actual.shape != truth.shape:
        result.shape = list(actual.shape)
        result.failures.append(Failure(runtime, name, "shape", str(list(actual.shape)),
                                       None, f"truth has {list(truth.shape)}"))
        return result
    if np.issubdtype(truth.dtype, np.integer) or truth.dtype == np.bool_:
        wrong = int(np.count_nonzero(actual != truth))
        result.max_abs = float(np.max(np.abs(actual.astype(np.int64) - truth), initial=0))
        if wrong:
            result.failures.append(Failure(runtime, name, "mismatches", float(wrong), 0.0))
        return result
    a64 = actual.astype(np.float64)
    finite = np.isfinite(a64)
    if not finite.all():
        result.failures.append(Failure(runtime, name, "non_finite", float(np.size(a64) - finite.sum()),
                                       0.0, "NaN or inf in the output"))
        a64 = np.where(finite, a64, np.inf)
    error = np.abs(a64 - truth)
    magnitude = np.abs(truth)
    if error.size:
        result.max_abs = float(error.max())
        result.mean_abs = float(error.mean()) if finite.all() else float("inf")
        significant = (magnitude >= REL_FLOOR * magnitude.max()) & (magnitude > 0)
        result.max_rel = float((error[significant] / magnitude[significant]).max()) \
            if significant.any() else 0.0
        # int8 has no float ULP to count in; a float32 ULP of a quantized model says nothing.
        ulp_name = precision if precision in _ULP_TYPES else None
        if ulp_name in _ULP_TYPES and finite.all():
            result.ulp_dtype = ulp_name
            result.max_ulp = int(ulp_distance(a64[significant], truth[significant],
                                              _ULP_TYPES[ulp_name]).max(initial=0))
        limit = tolerance.atol + tolerance.rtol * magnitude
        if floor is not None:
            limit = np.maximum(limit, floor)
        excess = np.where(finite, error - limit, -np.inf)  # non-finite: reported once, above
        excess[np.isnan(excess)] = np.inf  # a NaN truth: NaN > 0 is False, so fail it here
        worst = np.unravel_index(int(np.argmax(excess)), error.shape)
        result.limit_at_worst = float(limit[worst])
        if excess[worst] > 0:
            bad = int(np.count_nonzero(excess > 0))
            result.failures.append(Failure(
                runtime, name, "abs_error", float(error[worst]), float(limit[worst]),
                f"at index {list(map(int, worst))}, truth {float(truth[worst]):.6g}; "
                f"{bad} of {error.size} elements over atol {tolerance.atol:g} + rtol {tolerance.rtol:g}·|truth|"
                + (" or the widened float32 limit" if floor is not None else "")))
        if time_axis is not None and error.ndim > time_axis:
            others = tuple(a for a in range(error.ndim) if a != time_axis)
            result.per_step_max_abs = [float(x) for x in error.max(axis=others)]
    return result
