"""One runtime's verdict against the float64 truth: the one type verify produces, writes to JSON
once (``to_dict``) and bench, run, compare and every report read back (``from_dict``).

A verdict is ``pass``, ``fail``, ``error`` (it could not run), ``skip`` (it cannot run here) or
``drift``: the model's own outputs within the tolerance, one of its LSTM layers alone beyond it
(the model hides an error that another model on the same layer may not show). Every LSTM layer
of the model is judged alone (``lstm_layers``, ``verify.layers``); ``lstm_layer`` is the one
that decides (the worst). What each counts as
is decided here and nowhere else: ``failed`` (verify's and run's exit code) and ``passed`` (a
candidate for bench's decision); a drift is neither. Every sentence about a verdict is worded
here too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from lstm_bench.errors import LSTMBenchError
from lstm_bench.tolerances import Failure, OutputParity, Tolerance
from lstm_bench.verify.sensitivity import widened_note
from lstm_bench.verify.streaming import StreamingParity

PASS, FAIL, DRIFT, SKIP, ERROR = "pass", "fail", "drift", "skip", "error"
DRIFT_MEANING = "the model's output within tolerance, its LSTM layer alone beyond it"


@dataclass(frozen=True)
class LayerVerdict:
    """One LSTM layer of the model alone (its hidden states Y, whose drift over time a model
    with one output per sequence hides), judged with the same runtime and tolerance row:
    pass, fail, or error with the reason."""

    label: str  # e.g. "lstm alone"
    detail: str  # e.g. "Y, batch 8, seq_len 100"
    status: str
    reason: str | None = None
    outputs: tuple[OutputParity, ...] = ()
    errors: tuple[Failure, ...] = ()

    @property
    def failures(self) -> list[Failure]:
        """Its failures, each output named "<label>: <output>" as the reports show it."""
        found = list(self.errors) + [f for o in self.outputs for f in o.failures]
        return [replace(f, output=f"{self.label}: {f.output}") for f in found]

    @property
    def max_abs_error(self) -> float | None:
        return worst(self.outputs)

    def to_dict(self) -> dict:
        return {"label": self.label, "detail": self.detail, "status": self.status,
                "reason": self.reason, "outputs": [o.to_dict() for o in self.outputs],
                "errors": [asdict(f) for f in self.errors]}

    @classmethod
    def from_dict(cls, data: dict, runtime: str) -> LayerVerdict:
        return cls(str(data.get("label") or ""), str(data.get("detail") or ""),
                   data.get("status") or ERROR, data.get("reason"),
                   _outputs(data, runtime), _failures(data.get("errors"), runtime))


@dataclass(frozen=True)
class Verdict:
    """One runtime's verdict: the status and everything it rests on."""

    runtime: str
    status: str
    device: str = "cpu"
    precision: str | None = None
    tolerance: Tolerance | None = None
    reason: str | None = None  # why it was skipped, or the error
    notes: tuple[str, ...] = ()
    outputs: tuple[OutputParity, ...] = ()  # the model's own
    streaming: StreamingParity | None = None
    errors: tuple[Failure, ...] = ()  # not tied to one output (it could not run, nothing compared)
    settings: dict = field(default_factory=dict)  # what it ran with (runtime.settings())
    lstm_layers: tuple[LayerVerdict, ...] = ()  # each LSTM layer alone, in graph order

    # --- what it counts as -------------------------------------------------------------------

    @property
    def passed(self) -> bool:
        """A candidate for bench's decision: a pass only (a drift is stated, not recommended)."""
        return self.status == PASS

    @property
    def failed(self) -> bool:
        """Counts against verify's and run's exit code (a drift or a skip does not)."""
        return self.status in (FAIL, ERROR)

    def __bool__(self):
        return not self.failed

    def with_lstm_layer(self, layer: Verdict, label: str, detail: str) -> Verdict:
        """This verdict with one more LSTM layer alone (``layer``: its verdict by the same
        runtime) part of it, the status settled again."""
        alone = LayerVerdict(label, detail, layer.status, layer.reason, layer.outputs,
                             layer.errors)
        return replace(self, lstm_layers=self.lstm_layers + (alone,)).settled()

    @property
    def lstm_layer(self) -> LayerVerdict | None:
        """The layer that decides (None: none was judged): the first that could not run, else
        the first failing one with the largest error, else the one with the largest error."""
        def rank(layer):
            error = layer.max_abs_error
            return (layer.status == ERROR, bool(layer.failures),
                    -1.0 if error is None or math.isnan(error) else error)
        return max(self.lstm_layers, key=rank, default=None)

    def settled(self) -> Verdict:
        """This verdict with pass, fail or drift decided from what was judged (a skip and an
        error stay): fail when the model's own outputs, its streaming or its run failed (the
        LSTM layer's failure to run included), drift when only the layer's outputs did."""
        if self.status in (SKIP, ERROR):
            return self
        layers = self.lstm_layers
        own = (self.errors or any(o.failures for o in self.outputs)
               or (self.streaming is not None and self.streaming.failures)
               or any(layer.errors for layer in layers))
        drift = any(o.failures for layer in layers for o in layer.outputs)
        return replace(self, status=FAIL if own else DRIFT if drift else PASS)

    # --- the figures it rests on -------------------------------------------------------------

    @property
    def failures(self) -> list[Failure]:
        found = list(self.errors) + [f for o in self.outputs for f in o.failures]
        if self.streaming is not None:
            found += self.streaming.failures
        for layer in self.lstm_layers:
            found += layer.failures
        return found

    @property
    def model_ok(self) -> bool | None:
        """The model's own outputs within tolerance (None: it did not run)."""
        if self.status in (SKIP, ERROR):
            return None
        return not any(o.failures for o in self.outputs)

    @property
    def max_abs_error(self) -> float | None:
        """The model's own outputs' worst element (inf: a failed output without a finite one)."""
        return worst(self.outputs)

    @property
    def layer_status(self) -> str | None:
        return None if self.lstm_layer is None else self.lstm_layer.status

    @property
    def layer_max_abs_error(self) -> float | None:
        return None if self.lstm_layer is None else self.lstm_layer.max_abs_error

    @property
    def per_step_max_abs_error(self) -> list[float] | None:
        """The error per time step for the drift plot: the LSTM layer's where it was judged
        (the worst layer's, ``lstm_layer``), else the model's first output with a time axis
        (non-finite: inf)."""
        layer = self.lstm_layer.outputs if self.lstm_layer is not None else ()
        steps = next((o.per_step_max_abs for o in (*layer, *self.outputs)
                      if o.per_step_max_abs), None)
        return None if steps is None else [
            math.inf if v is None or math.isnan(v) else float(v) for v in steps]

    # --- in words ----------------------------------------------------------------------------

    def sentence(self) -> str:
        """verify's wording: the status and everything it rests on (the model's outputs, and
        the LSTM layer alone where it was checked), so no note contradicts it."""
        if self.status in (SKIP, ERROR):
            return f"{self.status}: {self.reason}"
        row = f"{self.precision} tolerance {self.tolerance}" if self.tolerance else "tolerance"
        own = any(o.failures for o in self.outputs) or self.errors
        parts = [f"model outputs {'over' if own else 'within'} the {row} "
                 f"(max abs {error_text(self.max_abs_error)}{self._widened(self.outputs)})"]
        parts += [self.layer_sentence(layer) for layer in self.lstm_layers]
        return f"{self.status}: " + "; ".join(parts)

    def layer_sentence(self, layer: LayerVerdict) -> str:
        """One LSTM layer alone in words (a part of ``sentence``; a line of its own where a
        report lists the layers)."""
        what = f"LSTM layer {layer.label} ({layer.detail})"
        if layer.status == ERROR:
            return f"{what}: error: {layer.reason}"
        return (f"{what}: {'over' if layer.failures else 'within'} that tolerance "
                f"(max abs {error_text(layer.max_abs_error)}{self._widened(layer.outputs)})")

    def statement(self) -> str:
        """The reports' wording: both checks in one sentence, the limit in its own column."""
        if self.status == SKIP:
            return f"skipped: {self.reason or 'not available'}"
        if self.status == ERROR:
            return f"could not run: {self.reason or 'error'}"
        model = "model output within" if self.model_ok else "model output beyond"
        text = (f"{model} {self.precision or ''} tolerance "
                f"(max abs {error_text(self.max_abs_error)})")
        if self.layer_status in (PASS, FAIL) and len(self.lstm_layers) > 1:
            layer = self.lstm_layer
            text += (f"; the {len(self.lstm_layers)} LSTM layers' hidden states, each alone, "
                     f"within it (max abs {error_text(layer.max_abs_error)})"
                     if layer.status == PASS else
                     f"; LSTM layer {layer.label}'s hidden states beyond it "
                     f"(max abs {error_text(layer.max_abs_error)})")
        elif self.layer_status in (PASS, FAIL):
            within = "within" if self.layer_status == PASS else "beyond"
            text += (f"; LSTM layer's hidden states {within} it "
                     f"(max abs {error_text(self.layer_max_abs_error)})")
        if self.status == FAIL and self.why_failed():
            text += f"; {self.why_failed()}"
        return " ".join(text.split())

    def why_excluded(self) -> str:
        """Why bench's decision leaves a runtime that did not pass out, in a few words."""
        if self.status == SKIP:
            return f"skipped by verify: {self.reason or 'not available'}"
        if self.status == ERROR:
            return f"could not run: {self.reason or 'error'}"
        if self.model_ok and self.layer_status == FAIL:
            word = "drift" if self.status == DRIFT else "failed verify"
            which = (f"LSTM layer {self.lstm_layer.label}'s" if len(self.lstm_layers) > 1
                     else "LSTM layer's")
            return (f"{word}: the {which} hidden states are beyond its "
                    f"{self.precision} tolerance (max abs {error_text(self.layer_max_abs_error)}), "
                    f"though the model output is within it ({error_text(self.max_abs_error)})")
        return f"failed verify: {self.why_failed() or 'beyond tolerance'}"

    def why_failed(self) -> str | None:
        """The reason, else the first failure in a few words."""
        if self.reason or not self.failures:
            return self.reason
        return self.failures[0].brief()

    def limit(self) -> str:
        if self.tolerance is None:
            return "–"
        return f"{self.tolerance.atol:.0e}+{self.tolerance.rtol:.0e}·|truth|"

    def _widened(self, outputs) -> str:
        note = widened_note(outputs, self.runtime)
        return f", {note}" if note else ""

    # --- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The verdict's JSON; ``verdict`` (its sentence), ``failures`` (all of them, the
        LSTM layers' named "<label>: <output>") and ``lstm_layer`` (the worst of
        ``lstm_layers``) are written for readers, not read back."""
        return {"runtime": self.runtime, "status": self.status, "device": self.device,
                "precision": self.precision,
                "tolerance": None if self.tolerance is None else asdict(self.tolerance),
                "reason": self.reason, "notes": list(self.notes),
                "outputs": [o.to_dict() for o in self.outputs],
                "streaming": None if self.streaming is None else self.streaming.to_dict(),
                "errors": [asdict(f) for f in self.errors], "settings": self.settings,
                "lstm_layer": None if self.lstm_layer is None else self.lstm_layer.to_dict(),
                "lstm_layers": [layer.to_dict() for layer in self.lstm_layers],
                "verdict": self.sentence(), "failures": [asdict(f) for f in self.failures]}

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        """From ``to_dict`` (LSTMBenchError where it is not one)."""
        if not isinstance(data, dict) or not isinstance(data.get("runtime"), str):
            raise LSTMBenchError("verify data: every result needs a runtime name")
        runtime = data["runtime"]
        try:
            tolerance, layer, streaming = (data.get(k) for k in
                                           ("tolerance", "lstm_layer", "streaming"))
            # every layer; a report written before there were several: its one layer
            layers = data.get("lstm_layers") or ([layer] if layer else [])
            return cls(
                runtime, data.get("status") or ERROR, data.get("device") or "cpu",
                data.get("precision"), Tolerance(**tolerance) if tolerance else None,
                data.get("reason"), tuple(data.get("notes") or ()), _outputs(data, runtime),
                StreamingParity.from_dict(streaming) if streaming else None,
                _failures(data.get("errors"), runtime), data.get("settings") or {},
                tuple(LayerVerdict.from_dict(each, runtime) for each in layers))
        except (TypeError, AttributeError) as exc:  # a field missing, or of the wrong kind
            raise LSTMBenchError(f"verify data: the result of {runtime} is not one verify "
                                 f"writes ({exc})") from None


def worst(outputs) -> float | None:
    """The largest max abs error over ``outputs``; inf where one failed without a finite
    figure (NaN or inf in it, written as null, or missing)."""
    errors = [o.max_abs for o in outputs]
    if any(o.failures for o in outputs) and any(e is None or not math.isfinite(e)
                                                for e in errors):
        return math.inf
    return max((float(e) for e in errors if e is not None), default=None)


def _outputs(data: dict, runtime: str) -> tuple[OutputParity, ...]:
    return tuple(OutputParity.from_dict(o, runtime) for o in data.get("outputs") or ()
                 if isinstance(o, dict))


def _failures(entries, runtime: str) -> tuple[Failure, ...]:
    return tuple(Failure.from_dict(f, runtime) for f in entries or () if isinstance(f, dict))


def error_text(value, spec: str = ".2g") -> str:
    """An error figure in a report: "–" for none, "non-finite" for NaN or inf."""
    if value is None:
        return "–"
    return "non-finite" if not math.isfinite(value) else format(value, spec)

