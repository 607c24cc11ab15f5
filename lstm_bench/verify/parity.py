"""A runtime's verdict against the float64 truth: every output judged by ``lstm_bench.tolerances``."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

import numpy as np

from lstm_bench.tolerances import TOLERANCES, Failure, OutputParity, Tolerance, compare_output
from lstm_bench.verify.streaming import StreamingParity

DRIFT = "drift"  # the model's output within tolerance, its LSTM layer alone beyond it


@dataclass
class RuntimeParity:
    """One runtime's verdict: pass, fail, drift (see ``settle``), skip (with the reason) or error
    (it could not run)."""

    runtime: str
    status: str  # "pass" | "fail" | "drift" | "skip" | "error"
    device: str = "cpu"
    precision: str | None = None
    tolerance: Tolerance | None = None
    reason: str | None = None  # why it was skipped, or the error
    notes: list[str] = field(default_factory=list)
    outputs: list[OutputParity] = field(default_factory=list)
    streaming: StreamingParity | None = None
    errors: list[Failure] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # what it ran with (runtime.settings())
    # The model's LSTM layer alone, judged like the model and part of this verdict: its
    # outputs follow the model's in ``outputs``, named "<label>: <output>" (add_lstm_layer).
    lstm_layer: RuntimeParity | None = None
    lstm_layer_label: str = ""  # e.g. "lstm alone"
    lstm_layer_detail: str = ""  # e.g. "Y, batch 8, seq_len 100"

    @property
    def failures(self) -> list[Failure]:
        found = list(self.errors)
        for output in self.outputs:
            found += output.failures
        if self.streaming is not None:
            found += self.streaming.failures
        return found

    @property
    def model_outputs(self) -> list[OutputParity]:
        """The model's own outputs (``outputs`` less the LSTM layer's)."""
        prefix = f"{self.lstm_layer_label}: "
        return [o for o in self.outputs if self.lstm_layer is None or not o.name.startswith(prefix)]

    @property
    def max_abs(self) -> float | None:
        """The largest max abs error over the model's own outputs (None: nothing compared)."""
        return _max_abs(self.model_outputs)

    @property
    def verdict(self) -> str:
        """The one verdict in words: the status and everything it rests on (the model's
        outputs, and the LSTM layer alone where it was checked), so no note contradicts it."""
        if self.status in ("skip", "error"):
            return f"{self.status}: {self.reason}"
        row = f"{self.precision} tolerance {self.tolerance}" if self.tolerance else "tolerance"
        own = any(o.failures for o in self.model_outputs) or self.errors
        parts = [f"model outputs {'over' if own else 'within'} the {row} "
                 f"(max abs {_fmt(self.max_abs)}{_widened(self.model_outputs, self.runtime)})"]
        layer = self.lstm_layer
        if layer is not None:
            what = f"LSTM layer {self.lstm_layer_label} ({self.lstm_layer_detail})"
            if layer.status == "error":
                parts.append(f"{what}: error: {layer.reason}")
            else:
                parts.append(f"{what}: {'over' if layer.failures else 'within'} that tolerance "
                             f"(max abs {_fmt(_max_abs(layer.outputs))}"
                             f"{_widened(layer.outputs, self.runtime)})")
        return f"{self.status}: " + "; ".join(parts)

    def __bool__(self):
        return self.status in ("pass", "skip", DRIFT)

    def settle(self) -> RuntimeParity:
        """pass, fail, or ``drift``: the model's own outputs (and streaming) within tolerance
        but the LSTM layer alone not (the model hides an error another model may not)."""
        if self.status not in ("skip", "error"):
            layer = [f for o in self.outputs if o not in self.model_outputs for f in o.failures]
            own = [f for f in self.failures if f not in layer]
            self.status = "fail" if own else DRIFT if layer else "pass"
        return self

    def add_lstm_layer(self, layer: RuntimeParity, label: str, detail: str) -> RuntimeParity:
        """Make the LSTM layer's result part of this verdict: its outputs (and any error)
        join this runtime's, named "<label>: <output>"."""
        self.lstm_layer, self.lstm_layer_label, self.lstm_layer_detail = layer, label, detail

        def relabel(failure):
            return dataclasses.replace(failure, output=f"{label}: {failure.output}")

        for output in layer.outputs:
            self.outputs.append(dataclasses.replace(
                output, name=f"{label}: {output.name}",
                failures=[relabel(f) for f in output.failures]))
        self.errors += [relabel(f) for f in layer.errors]
        return self.settle()

    def to_dict(self):
        return {"runtime": self.runtime, "status": self.status, "device": self.device,
                "precision": self.precision,
                "tolerance": None if self.tolerance is None else asdict(self.tolerance),
                "reason": self.reason, "notes": list(self.notes),
                "outputs": [o.to_dict() for o in self.outputs],
                "streaming": None if self.streaming is None else self.streaming.to_dict(),
                "settings": self.settings, "verdict": self.verdict,
                "lstm_layer": None if self.lstm_layer is None else {
                    "label": self.lstm_layer_label, "detail": self.lstm_layer_detail,
                    "status": self.lstm_layer.status, "reason": self.lstm_layer.reason,
                    "max_abs": _max_abs(self.lstm_layer.outputs)},
                "failures": [asdict(f) for f in self.failures]}


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
            time_axes: dict[str, int] | None = None, floor=None) -> RuntimeParity:
    """Every output of ``truth`` against ``outputs``; a RuntimeParity with status pass or fail.

    ``floor``: a ``runtimes.sensitivity.Float32Floor`` of the same feeds; a float32 output
    beyond the table is judged again against its widened limit."""
    from lstm_bench.verify.sensitivity import WIDENED

    tolerance = TOLERANCES.get(precision, TOLERANCES["float32"])
    result = RuntimeParity(runtime, "pass", precision=precision, tolerance=tolerance)
    if not truth:  # nothing compared must not read as a pass
        result.errors.append(Failure(runtime, "*", "outputs", "none to compare", None))
    for name, expected in truth.items():
        axis = (time_axes or {}).get(name)
        output = compare_output(runtime, name, outputs.get(name), expected, tolerance,
                                precision, axis)
        widened = (floor.limits().get(name) if floor is not None and precision in WIDENED
                   and [f.metric for f in output.failures] == ["abs_error"] else None)
        if widened is not None:
            output = compare_output(runtime, name, outputs.get(name), expected, tolerance,
                                    precision, axis, floor=widened[0])
            output.float32_floor = widened[1]
        result.outputs.append(output)
    return result.settle()


def _widened(outputs, runtime: str) -> str:
    from lstm_bench.verify.sensitivity import widened_note

    note = widened_note(outputs, runtime)
    return f", {note}" if note else ""


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2g}"


def _max_abs(outputs) -> float | None:
    values = [o.max_abs for o in outputs if o.max_abs is not None]
    return max(values) if values else None
