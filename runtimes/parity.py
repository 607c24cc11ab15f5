"""A runtime's verdict against the float64 truth: every output judged by ``lstm_bench.parity``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lstm_bench.parity import TOLERANCES, Failure, OutputParity, Tolerance, compare_output


@dataclass
class RuntimeParity:
    """One runtime's verdict: pass, fail, skip (with the reason) or error (it could not run)."""

    runtime: str
    status: str  # "pass" | "fail" | "skip" | "error"
    device: str = "cpu"
    precision: str | None = None
    tolerance: Tolerance | None = None
    reason: str | None = None  # why it was skipped, or the error
    notes: list[str] = field(default_factory=list)
    outputs: list[OutputParity] = field(default_factory=list)
    streaming: object | None = None  # runtimes.streaming.StreamingParity
    errors: list[Failure] = field(default_factory=list)

    @property
    def failures(self) -> list[Failure]:
        found = list(self.errors)
        for output in self.outputs:
            found += output.failures
        if self.streaming is not None:
            found += self.streaming.failures
        return found

    def __bool__(self):
        return self.status in ("pass", "skip")

    def settle(self) -> RuntimeParity:
        if self.status not in ("skip", "error"):
            self.status = "fail" if self.failures else "pass"
        return self

    def to_dict(self):
        return {"runtime": self.runtime, "status": self.status, "device": self.device,
                "precision": self.precision,
                "tolerance": None if self.tolerance is None else asdict(self.tolerance),
                "reason": self.reason, "notes": list(self.notes),
                "outputs": [o.to_dict() for o in self.outputs],
                "streaming": None if self.streaming is None else self.streaming.to_dict(),
                "failures": [asdict(f) for f in self.failures]}


def runtime_precision(runtime, outputs: dict) -> str:
    """The precision row a runtime is judged by: its declared one, else its float outputs' dtype."""
    declared = getattr(runtime, "precision", None)
    if declared:
        return declared
    for value in outputs.values():
        dtype = np.asarray(value).dtype
        if np.issubdtype(dtype, np.floating):
            return dtype.name
    return "float32"


def compare(runtime: str, outputs: dict, truth: dict, precision: str,
            time_axes: dict[str, int] | None = None) -> RuntimeParity:
    """Every output of ``truth`` against ``outputs``; a RuntimeParity with status pass or fail."""
    tolerance = TOLERANCES.get(precision, TOLERANCES["float32"])
    result = RuntimeParity(runtime, "pass", precision=precision, tolerance=tolerance)
    if not truth:  # nothing compared must not read as a pass
        result.errors.append(Failure(runtime, "*", "outputs", "none to compare", None))
    for name, expected in truth.items():
        result.outputs.append(compare_output(runtime, name, outputs.get(name), expected, tolerance,
                                             precision, (time_axes or {}).get(name)))
    return result.settle()
