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

from dataclasses import asdict, dataclass, fields

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

    def brief(self) -> str:
        """``output: metric = value > limit L``; a value lost to JSON (NaN, inf) is null."""
        def fmt(x):
            return "non-finite" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)

        text = f"{self.output}: {self.metric} = {fmt(self.value)}"
        return text + (f" > limit {fmt(self.limit)}" if self.limit is not None else "")

    def __str__(self):
        return f"{self.runtime}: {self.brief()}" + (f" ({self.detail})" if self.detail else "")

    @classmethod
    def from_dict(cls, data: dict, runtime: str) -> Failure:
        """From ``asdict`` of one (a report's JSON); ``runtime`` where the entry has none."""
        return cls(**{"runtime": runtime, **known_fields(cls, data)})


@dataclass(frozen=True)
class OutputParity:
    """One output of one runtime against the truth."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    max_ulp: int | None = None
    ulp_dtype: str | None = None
    limit_at_worst: float | None = None  # atol + rtol*|truth| at the element that fails most
    # Where the limit was widened for a model that amplifies float32 rounding (see
    # verify.sensitivity): the max abs error of a plain float32 evaluation of this output.
    float32_floor: float | None = None
    time_axis: int | None = None
    per_step_max_abs: tuple[float, ...] | None = None
    failures: tuple[Failure, ...] = ()

    def __bool__(self):
        return not self.failures

    def to_dict(self):
        steps = self.per_step_max_abs
        return {**asdict(self), "shape": list(self.shape),
                "per_step_max_abs": None if steps is None else list(steps),
                "failures": [asdict(f) for f in self.failures], "passed": bool(self)}

    @classmethod
    def from_dict(cls, data: dict, runtime: str) -> OutputParity:
        """From ``to_dict`` (a report's JSON; non-finite figures were written as null)."""
        known = known_fields(cls, data)
        steps = known.get("per_step_max_abs")
        return cls(**{**known, "shape": tuple(known.get("shape") or ()),
                      "per_step_max_abs": None if steps is None else tuple(steps),
                      "failures": tuple(Failure.from_dict(f, runtime)
                                        for f in known.get("failures") or ())})


def known_fields(cls, data: dict) -> dict:
    """The entries of ``data`` that are fields of the dataclass ``cls`` (a report's JSON may
    hold derived figures beside them, such as an output's ``passed``)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def compare_output(runtime: str, name: str, actual, truth, tolerance: Tolerance,
                   precision: str, time_axis: int | None = None, floor=None) -> OutputParity:
    """``actual`` against ``truth``. ``floor``: a widened limit (an array broadcastable to
    ``truth``, see verify.sensitivity); each element may be off by the larger of the two."""
    truth = np.asarray(truth)
    if actual is None:
        return OutputParity(name, "missing", tuple(truth.shape), time_axis=time_axis, failures=(
            Failure(runtime, name, "missing", "no such output", None),))
    actual = np.asarray(actual)
    found = {"name": name, "dtype": actual.dtype.name, "shape": tuple(truth.shape),
             "time_axis": time_axis}
    if actual.shape != truth.shape:
        return OutputParity(**{**found, "shape": tuple(actual.shape)}, failures=(Failure(
            runtime, name, "shape", str(list(actual.shape)), None,
            f"truth has {list(truth.shape)}"),))
    if np.issubdtype(truth.dtype, np.integer) or truth.dtype == np.bool_:
        wrong = int(np.count_nonzero(actual != truth))
        return OutputParity(
            **found, max_abs=float(np.max(np.abs(actual.astype(np.int64) - truth), initial=0)),
            failures=(Failure(runtime, name, "mismatches", float(wrong), 0.0),) if wrong else ())
    failures = []
    a64 = actual.astype(np.float64)
    finite = np.isfinite(a64)
    if not finite.all():
        failures.append(Failure(runtime, name, "non_finite", float(np.size(a64) - finite.sum()),
                                0.0, "NaN or inf in the output"))
        a64 = np.where(finite, a64, np.inf)
    error = np.abs(a64 - truth)
    magnitude = np.abs(truth)
    if not error.size:
        return OutputParity(**found, failures=tuple(failures))
    found["max_abs"] = float(error.max())
    found["mean_abs"] = float(error.mean()) if finite.all() else float("inf")
    significant = (magnitude >= REL_FLOOR * magnitude.max()) & (magnitude > 0)
    found["max_rel"] = float((error[significant] / magnitude[significant]).max()) \
        if significant.any() else 0.0
    # int8 has no float ULP to count in; a float32 ULP of a quantized model says nothing.
    if precision in _ULP_TYPES and finite.all():
        found["ulp_dtype"] = precision
        found["max_ulp"] = int(ulp_distance(a64[significant], truth[significant],
                                            _ULP_TYPES[precision]).max(initial=0))
    limit = tolerance.atol + tolerance.rtol * magnitude
    if floor is not None:
        limit = np.maximum(limit, floor)
    excess = np.where(finite, error - limit, -np.inf)  # non-finite: reported once, above
    excess[np.isnan(excess)] = np.inf  # a NaN truth: NaN > 0 is False, so fail it here
    worst = np.unravel_index(int(np.argmax(excess)), error.shape)
    found["limit_at_worst"] = float(limit[worst])
    if excess[worst] > 0:
        bad = int(np.count_nonzero(excess > 0))
        failures.append(Failure(
            runtime, name, "abs_error", float(error[worst]), float(limit[worst]),
            f"at index {list(map(int, worst))}, truth {float(truth[worst]):.6g}; "
            f"{bad} of {error.size} elements over atol {tolerance.atol:g} + rtol {tolerance.rtol:g}·|truth|"
            + (" or the widened float32 limit" if floor is not None else "")))
    if time_axis is not None and error.ndim > time_axis:
        others = tuple(a for a in range(error.ndim) if a != time_axis)
        found["per_step_max_abs"] = tuple(float(x) for x in error.max(axis=others))
    return OutputParity(**found, failures=tuple(failures))
