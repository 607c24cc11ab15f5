"""The bench report as data: what was measured, on what, and what verify said of each runtime.

A ``BenchReport`` holds the ``Measurement`` objects of a sweep, typed, until a renderer
(``bench.terminal``, ``bench.markdown``, ``bench.page``, ``bench.plots``) turns it into text.
Its JSON document (``to_dict``) is read back through the same types (``load_report``), so any
report can be redrawn from a saved file: ``schema``, ``model``, ``machine``, ``settings``,
``peak_gflops`` (the GEMM peak at the first thread count), ``calibration`` (the GEMM peak per
thread count with its blocks and spread, ``bench.machine.Calibration``), ``decision``,
``results`` (``Measurement.as_dict`` rows, raw samples included, each with the peak its
``peak_share`` divides by), ``skipped``, ``warnings``, and ``verify`` / ``export`` when the run
had them.
Every file goes through ``lstm_bench.files``: one serializer, NaN and inf written as null.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lstm_bench.bench.machine import Calibration
from lstm_bench.bench.stats import Measurement
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import read_json, to_json, write_text

SCHEMA = "lstm-bench/bench/1"
REQUIRED_ROW_KEYS = ("runtime", "batch", "seq_len", "threads", "latency_ms", "throughput",
                     "samples_ns")


@dataclass(frozen=True)
class Verdict:
    """One runtime's verify verdict, as every report states it: one word (pass, fail, drift,
    error, skip; drift: the model's output within tolerance, its LSTM layer alone beyond it),
    and both figures it rests on: the model's own outputs and, where verify judged it,
    the model's LSTM layer alone (its hidden states Y, whose drift a model with one output per
    sequence can hide). ``model_ok`` says which of the two failed a "fail".
    """

    runtime: str
    status: str
    max_abs_error: float | None = None  # the whole model's outputs, worst element
    reason: str | None = None
    precision: str | None = None
    atol: float | None = None
    rtol: float | None = None
    per_step_max_abs_error: list[float] | None = None  # for the drift plot
    layer_status: str | None = None  # the LSTM layer alone, when it was checked
    layer_max_abs_error: float | None = None
    model_ok: bool | None = None  # the model's own outputs within tolerance (None: not run)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")

    def limit(self) -> str:
        if self.atol is None:
            return "–"
        return f"{self.atol:.0e}+{self.rtol:.0e}·|truth|"

    def why_excluded(self) -> str:
        """Why a runtime that is not a pass is left out of the decision, in a few words."""
        if self.status == "skip":
            return f"skipped by verify: {self.reason or 'not available'}"
        if self.status == "error":
            return f"could not run: {self.reason or 'error'}"
        if self.model_ok and self.layer_status == "fail":
            word = "drift" if self.status == "drift" else "failed verify"
            return (f"{word}: the LSTM layer's hidden states are beyond its "
                    f"{self.precision} tolerance (max abs {_err(self.layer_max_abs_error)}), "
                    f"though the model output is within it ({_err(self.max_abs_error)})")
        return f"failed verify: {self.reason or 'beyond tolerance'}"

    def statement(self) -> str:
        """The verdict in words, both checks in one sentence that never contradicts itself."""
        if self.status == "skip":
            return f"skipped: {self.reason or 'not available'}"
        if self.status == "error":
            return f"could not run: {self.reason or 'error'}"
        ok = self.model_ok if self.model_ok is not None else self.status == "pass"
        model = "model output within" if ok else "model output beyond"
        text = f"{model} {self.precision or ''} tolerance (max abs {_err(self.max_abs_error)})"
        if self.layer_status in ("pass", "fail"):
            within = "within" if self.layer_status == "pass" else "beyond"
            text += (f"; LSTM layer's hidden states {within} it "
                     f"(max abs {_err(self.layer_max_abs_error)})")
        if self.status == "fail" and self.reason:
            text += f"; {self.reason}"
        return " ".join(text.split())


def _err(value) -> str:
    if value is None:
        return "–"
    return "non-finite" if not math.isfinite(value) else f"{value:.2g}"


@dataclass(frozen=True)
class VerifySummary:
    """verify's verdicts beside the timings: one ``Verdict`` per runtime."""

    passed: bool | None
    inputs: dict
    verdicts: dict[str, Verdict]
    per_step_model: str | None = None  # what the per-step errors were measured on
    sha256: str | None = None  # the model verify judged (None: not recorded)
    other_model: str | None = None  # a note where it judged another model (allowed)

    @classmethod
    def read(cls, path, model, *, allow_different_models: bool = False) -> VerifySummary:
        """From a file written by `lstm-bench verify --json`, refused (LSTMBenchError) when it
        is not a verify report, or is one of another model than ``model`` (a
        ``lstm_bench.model.Model``: its sha256) unless ``allow_different_models``. A verify report without the model's sha256
        (written before verify recorded it) is refused too: nothing ties it to the model,
        and running verify again takes seconds."""
        from lstm_bench.verify.run import SCHEMA

        data = read_json(path, "verify report")
        # a new file beside the one given, never the given one (it may be a report to keep)
        fresh = Path(path).with_name("verify.json")
        if fresh.resolve() == Path(path).resolve():
            fresh = Path(path).with_name(f"{Path(path).stem}-new.json")
        rerun_command = f"`lstm-bench verify {model.path} --json {fresh}`"
        rerun = f"write one with {rerun_command}"
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != SCHEMA:
            if isinstance(schema, str) and schema.startswith("lstm-bench/bench"):
                raise LSTMBenchError(f"{path}: a bench report, not a verify report; {rerun}")
            if isinstance(data, dict) and "tolerances" in data and "results" in data:
                raise LSTMBenchError(f"{path}: a verify report that does not record which model "
                                     f"it judged (no sha256: an older lstm-bench); run verify "
                                     f"again: {rerun_command}")
            raise LSTMBenchError(f"{path}: not a verify report (schema {schema!r}, expected "
                                 f"{SCHEMA!r}); {rerun}")
        if data.get("sha256") != model.sha256 and not allow_different_models:
            raise LSTMBenchError(
                f"{path}: a verify report of another model ({data.get('model')}, sha256 "
                f"{str(data.get('sha256'))[:12]}) than {model.path} (sha256 "
                f"{model.sha256[:12]}); verify this model, or pass --allow-different-models "
                "to use it anyway")
        try:
            summary = cls.from_verify_json(data)
        except LSTMBenchError as exc:
            raise LSTMBenchError(f"{path}: {exc}") from None
        if data.get("sha256") == model.sha256:
            return summary
        # allowed, but every report says whose verdicts these are
        return replace(summary, other_model=(
            f"verify verdicts from {path}, a report of another model: {data.get('model')} "
            f"(sha256 {str(data.get('sha256'))[:12]}), not {model.path} (sha256 "
            f"{model.sha256[:12]}); used by --allow-different-models"))

    @classmethod
    def from_verify_json(cls, data: dict) -> VerifySummary:
        """From a verify report's JSON (``VerifyReport.to_dict``); where verify judged the
        model's LSTM layer alone, each result holds it (``lstm_layer``, its outputs named
        "<label>: Y" after the model's own)."""
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise LSTMBenchError("verify data must be the JSON of `lstm-bench verify --json` "
                                 "(a top-level 'results' list)")
        verdicts, layer_seen = {}, False
        for entry in data["results"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("runtime"), str):
                raise LSTMBenchError("verify data: every result needs a runtime name")
            name = entry["runtime"]
            status = entry.get("status") or "error"
            tol = entry.get("tolerance") or {}
            outputs = [o for o in entry.get("outputs") or [] if isinstance(o, dict)]
            inner = entry.get("lstm_layer") if isinstance(entry.get("lstm_layer"), dict) else None
            prefix = f"{inner.get('label')}: " if inner else None
            own = [o for o in outputs if not (prefix and str(o.get("name")).startswith(prefix))]
            layer_outputs = [o for o in outputs if o not in own]
            layer_status = layer_worst = None
            if inner is not None and inner.get("status") in ("pass", "fail"):
                layer_seen = True
                layer_status = inner["status"]
                layer_worst = _worst(layer_outputs, layer_status)
            model_ok = status != "error" and all(o.get("passed", True) and not o.get("failures")
                                                  for o in own)
            verdicts[name] = Verdict(
                name, status, _worst(own, "fail" if not model_ok else status),
                entry.get("reason") or _first_failure(entry), entry.get("precision"),
                tol.get("atol"), tol.get("rtol"), _steps(layer_outputs) or _steps(own),
                layer_status, layer_worst, model_ok if status not in ("skip", "error") else None)
        return cls(data.get("passed"), data.get("inputs") or {}, verdicts,
                   "the model's LSTM layer alone, output Y" if layer_seen else None,
                   data.get("sha256"))

    @classmethod
    def of(cls, report) -> VerifySummary:
        """From a ``VerifyReport``."""
        return cls.from_verify_json(report.to_dict())

    def to_dict(self) -> dict:
        return {"passed": self.passed, "inputs": self.inputs, "per_step_model": self.per_step_model,
                "sha256": self.sha256,
                **({"other_model": self.other_model} if self.other_model else {}),
                "runtimes": {name: asdict(v) for name, v in self.verdicts.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> VerifySummary:
        """From the ``verify`` section of a bench report (``to_dict``)."""
        names = {f for f in Verdict.__dataclass_fields__}
        verdicts = {}
        for name, entry in (data.get("runtimes") or {}).items():
            if not isinstance(entry, dict):
                raise LSTMBenchError(f"verify.runtimes.{name}: expected an object")
            known = {k: v for k, v in entry.items() if k in names}
            known.setdefault("runtime", name)
            known.setdefault("status", "error")
            if isinstance(known.get("per_step_max_abs_error"), list):  # null: was non-finite
                known["per_step_max_abs_error"] = _steps(
                    [{"per_step_max_abs": known["per_step_max_abs_error"]}])
            verdicts[name] = Verdict(**known)
        return cls(data.get("passed"), data.get("inputs") or {}, verdicts,
                   data.get("per_step_model"), data.get("sha256"), data.get("other_model"))


def _worst(outputs: list[dict], status: str) -> float | None:
    """The largest max abs error over outputs; inf for a failed check with an output that has
    none (non-finite values, written as null, or a missing output)."""
    errors = [o.get("max_abs") for o in outputs]
    if status == "fail" and any(e is None or not math.isfinite(e) for e in errors):
        return math.inf
    return max((float(e) for e in errors if e is not None), default=None)


def _steps(outputs: list[dict]) -> list[float] | None:
    """The per-step max abs errors of the first output with a time axis (null: inf)."""
    steps = next((o["per_step_max_abs"] for o in outputs if o.get("per_step_max_abs")), None)
    return None if steps is None else [math.inf if v is None else float(v) for v in steps]


def _first_failure(entry: dict) -> str | None:
    failures = entry.get("failures") or []
    if not failures or not isinstance(failures[0], dict):
        return None
    f = failures[0]
    text = f"{f.get('output')}: {f.get('metric')} = {_num_text(f.get('value'))}"
    if f.get("limit") is not None:
        text += f" > limit {_num_text(f.get('limit'))}"
    return text


def _num_text(value) -> str:
    if value is None:
        return "non-finite"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Skip:
    """A runtime that was not measured (at one thread count, or at all: threads None)."""

    runtime: str
    reason: str
    threads: int | None = None


@dataclass
class BenchReport:
    """Everything one bench (or run) measured, typed until rendering."""

    model: dict
    machine: dict
    settings: dict
    measurements: list[Measurement]
    skipped: list[Skip] = field(default_factory=list)
    peak_gflops: float | None = None  # the GEMM peak at the sweep's first thread count
    verify: VerifySummary | None = None
    export: dict | None = None
    notes: list[str] = field(default_factory=list)  # about the machine (busy, load average)
    calibrations: list[Calibration] = field(default_factory=list)  # GEMM peak per thread count
    extra: dict = field(default_factory=dict)  # other top-level keys, kept as they came

    @property
    def warnings(self) -> list[str]:
        """The machine's notes, then each noisy or two-phase measurement."""
        return self.notes + [w for w in (m.warning() for m in self.measurements) if w]

    @property
    def title(self) -> str:
        return f"lstm-bench: {Path(self.model.get('path', 'model')).name}"

    def to_dict(self) -> dict:
        from lstm_bench.bench.decision import decide

        return {
            "schema": SCHEMA, "model": self.model, "machine": self.machine,
            "settings": self.settings, "peak_gflops": self.peak_gflops,
            "calibration": [c.as_dict() for c in self.calibrations],
            "decision": decide(self).to_dict(),
            "results": [m.as_dict() for m in self.measurements],
            "skipped": [asdict(s) for s in self.skipped], "notes": self.notes,
            "warnings": self.warnings,
            **({"verify": self.verify.to_dict()} if self.verify else {}),
            **({"export": self.export} if self.export else {}),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> BenchReport:
        """A document checked by ``check_document`` (``load_report`` does both)."""
        own = {"schema", "model", "machine", "settings", "peak_gflops", "decision", "results",
               "skipped", "notes", "warnings", "verify", "export", "calibration"}
        peak = doc.get("peak_gflops")
        calibrations = [Calibration.from_dict(c) for c in doc.get("calibration") or []
                        if isinstance(c, dict)]
        return cls(
            model=doc.get("model") or {}, machine=doc.get("machine") or {},
            settings=doc.get("settings") or {},
            measurements=[Measurement.from_dict(r, peak if r.get("device", "cpu") == "cpu"
                                                else None) for r in doc["results"]],
            skipped=[Skip(s.get("runtime", "?"), s.get("reason", ""), s.get("threads"))
                     for s in doc.get("skipped") or [] if isinstance(s, dict)],
            peak_gflops=peak,
            verify=VerifySummary.from_dict(doc["verify"]) if doc.get("verify") else None,
            export=doc.get("export"), notes=[str(n) for n in doc.get("notes") or []],
            calibrations=calibrations,
            extra={k: v for k, v in doc.items() if k not in own})


def build_document(result, *, model: dict, machine: dict,
                   verify: VerifySummary | None = None) -> BenchReport:
    """The report of a ``harness.SweepResult``."""
    return BenchReport(model=model, machine=machine, settings=result.settings.as_dict(),
                       measurements=list(result.measurements),
                       skipped=[Skip(s["runtime"], s["reason"], s.get("threads"))
                                for s in result.skipped],
                       peak_gflops=result.calibrations[0].peak_gflops
                       if result.calibrations else None,
                       calibrations=list(result.calibrations), verify=verify,
                       notes=[verify.other_model] if verify and verify.other_model else [])


def check_document(doc, where) -> dict:
    """A bench JSON document, checked enough that ``compare`` and the renderers can trust it."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise LSTMBenchError(f"{where}: not an lstm-bench report (no top-level 'results' list)")
    for i, row in enumerate(doc["results"]):
        missing = [k for k in REQUIRED_ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise LSTMBenchError(f"{where}: results[{i}] lacks {', '.join(missing)}")
        if not isinstance(row["runtime"], str) or not all(
                isinstance(row[k], int) and not isinstance(row[k], bool)
                for k in ("batch", "seq_len")) or not (
                row["threads"] is None or isinstance(row["threads"], int)):
            raise LSTMBenchError(f"{where}: results[{i}] needs a runtime name and integer batch, "
                                 "seq_len and threads")
        samples = row["samples_ns"]
        if (not isinstance(samples, list) or not samples
                or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                           and math.isfinite(s) and s >= 0 for s in samples)):
            raise LSTMBenchError(f"{where}: results[{i}].samples_ns must be a non-empty list of "
                                 "non-negative numbers")
    if doc.get("verify") is not None and not isinstance(doc["verify"], dict):
        raise LSTMBenchError(f"{where}: 'verify' must be an object")
    return doc


def load_json(path) -> dict:
    """A bench JSON report as a checked dict (``load_report`` gives the typed one)."""
    if not Path(path).exists():
        raise LSTMBenchError(f"{path}: no such report")
    doc = check_document(read_json(path, "bench report"), path)
    if not doc["results"]:  # an empty report would compare as "no regression"
        raise LSTMBenchError(f"{path}: the report has no results; nothing to compare")
    return doc


def load_report(path) -> BenchReport:
    return BenchReport.from_dict(load_json(path))


def write_reports(report: BenchReport, *, json=None, md=None, html=None) -> list[Path]:
    """Write the report in each format given a path; returns the paths written. Every format
    is rendered before any is written (the plots take the time, the writes milliseconds), so a
    Ctrl-C leaves the set whole or absent, not a JSON without its HTML."""
    rendered = []
    if json:
        rendered.append((json, to_json(report.to_dict())))
    if md:
        from lstm_bench.bench.markdown import render_markdown

        rendered.append((md, render_markdown(report)))
    if html:
        from lstm_bench.bench.page import render_html

        rendered.append((html, render_html(report)))
    return [write_text(path, text) for path, text in rendered]
