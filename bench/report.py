"""The bench report as data: what was measured, on what, and what verify said of each runtime.

A ``BenchReport`` holds the ``Measurement`` objects of a sweep, typed, until a writer
(``lstm_bench.cli.terminal``; ``WRITERS``: JSON, ``bench.markdown``, ``bench.page``) turns it
into text.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lstm_bench.bench.decision import decide
from lstm_bench.bench.floor import FLOOR_SPEC
from lstm_bench.bench.machine import Calibration
from lstm_bench.bench.markdown import render_markdown
from lstm_bench.bench.page import render_html
from lstm_bench.bench.stats import SEQUENCE, STREAMING, Measurement
from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import read_json, to_json, write_text
from lstm_bench.schema import RUNTIME, Each, Fields, check
from lstm_bench.verify.report import NUMBER, VERIFY_SECTION, VerifySummary

SCHEMA = "lstm-bench/bench/1"
REQUIRED_ROW_KEYS = ("runtime", "batch", "seq_len", "threads", "latency_ms", "throughput",
                     "samples_ns")

# The layout ``to_dict`` and ``Measurement.as_dict`` write, as ``lstm_bench.schema`` checks it
# before a report is read back: every field a reader, a table or a plot uses, of the type it
# uses (figures written for readers only are let through; a row's other keys are its runtime's
# settings).
ROW = Fields({
    "runtime": RUNTIME, "batch": int, "seq_len": int, "threads": (int, None),
    "samples_ns": [float], "latency_ms": dict, "throughput": dict, "device": str,
    "flops": NUMBER, "cold_start_ms": (Each(NUMBER), None), "peak_memory_mb": NUMBER,
    "blocks": ([Fields({"process": int, "round": int, "start_s": float, "calls": int},
                       required=("process", "round", "start_s", "calls"))], None),
    "mode": (frozenset({SEQUENCE, STREAMING}), None), "stateful_variant": (bool, None),
    "call_floor": (FLOOR_SPEC, None)},
    required=REQUIRED_ROW_KEYS)
MACHINE = {"cpu": (str, None), "cores": (int, None), "usable_cores": (int, None),
           "git_commit": (str, None), "libraries": (dict, None),
           "load_average": ({"before": ([float], None), "after": ([float], None),
                             "other_cores": NUMBER}, None),
           "thread_settings": (dict, None)}
BENCH_REPORT = Fields({
    "schema": str, "model": ({"path": str, "sha256": (str, None), "inputs_fed": (dict, None)},
                             None),
    "machine": (MACHINE, None), "settings": (dict, None), "peak_gflops": NUMBER,
    "calibration": ([dict], None), "results": [ROW],
    "skipped": ([Fields({"runtime": str, "reason": str, "threads": (int, None)},
                        required=("runtime",))], None),
    "notes": ([str], None), "verify": (VERIFY_SECTION, None), "export": (dict, None)},
    required=("results",))


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
        calibrations = [Calibration.from_dict(c) for c in doc.get("calibration") or []
                        if isinstance(c, dict)]
        return cls(
            model=doc.get("model") or {}, machine=doc.get("machine") or {},
            settings=doc.get("settings") or {},
            measurements=[Measurement.from_dict(r) for r in doc["results"]],
            skipped=[Skip(s.get("runtime", "?"), s.get("reason", ""), s.get("threads"))
                     for s in doc.get("skipped") or [] if isinstance(s, dict)],
            peak_gflops=doc.get("peak_gflops"),
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
    """A bench JSON document, checked against its layout (``BENCH_REPORT``, and what the types
    cannot say: sizes at least 1, blocks that hold the samples) so that ``compare`` and the
    renderers can trust it."""
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
    check(doc, BENCH_REPORT, str(where))
    for i, row in enumerate(doc["results"]):
        _check_counts(row, f"{where}: results[{i}]")
    return doc


def check_row(row, where: str) -> None:
    """One result row (``Measurement.as_dict``) read back alone: a history database's."""
    check(row, ROW, where)
    _check_counts(row, where)
    if not row["samples_ns"] or any(s < 0 for s in row["samples_ns"]):
        raise LSTMBenchError(f"{where}: samples_ns must be a non-empty list of non-negative "
                             "numbers")


def _check_counts(row: dict, where: str) -> None:
    """What the types of a row (``ROW``) cannot say: sizes at least 1, blocks that hold its
    samples."""
    blocks = row.get("blocks") or []
    if min(row["batch"], row["seq_len"], row["threads"] or 1) < 1 or any(
            b["calls"] < 1 for b in blocks):
        raise LSTMBenchError(f"{where} needs batch, seq_len, threads and the calls of each "
                             "block at least 1")
    if blocks and sum(b["calls"] for b in blocks) != len(row["samples_ns"]):
        raise LSTMBenchError(f"{where}: its blocks hold {sum(b['calls'] for b in blocks)} "
                             f"calls, its samples_ns {len(row['samples_ns'])}")


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


def write_formats(writers: dict, subject, paths: dict) -> list[Path]:
    """Write ``subject`` in each format of ``writers`` (format -> renderer of text) given a
    path in ``paths``; returns the paths written. Every format is rendered before any is
    written (the plots take the time, the writes milliseconds), so a Ctrl-C leaves the set
    whole or absent, not a JSON without its HTML."""
    unknown = set(paths) - set(writers)
    if unknown:
        raise TypeError(f"no writer for {', '.join(sorted(unknown))}")
    rendered = [(path, writers[kind](subject)) for kind, path in paths.items() if path]
    return [write_text(path, text) for path, text in rendered]


# format -> writer: a new format is one writer and one line here
WRITERS = {"json": lambda report: to_json(report.to_dict()), "md": render_markdown,
           "html": render_html}


def write_reports(report: BenchReport, **paths) -> list[Path]:
    """The report in each format of ``WRITERS`` given a path (``json=``, ``md=``,
    ``html=``); returns the paths written (``write_formats``)."""
    return write_formats(WRITERS, report, paths)
