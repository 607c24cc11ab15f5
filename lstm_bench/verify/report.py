"""verify's report (``lstm-bench verify --json``) and the part of it a bench report carries.

``VerifyReport`` is what ``verify`` returns: every runtime's ``Verdict`` and what they were
measured on. ``VerifySummary`` is its verdicts beside the timings (a bench report's ``verify``),
taken from the report in memory (``of``) or from its JSON (``read``, for
``bench --verify-json``). Both hold the same ``Verdict`` objects, written and read by
``Verdict.to_dict`` / ``Verdict.from_dict`` alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import read_json, write_json
from lstm_bench.model import Model
from lstm_bench.schema import RUNTIME, Each, Fields, check
from lstm_bench.tolerances import TOLERANCES, Failure
from lstm_bench.verify.baked import SecondShape
from lstm_bench.verify.verdict import DRIFT, ERROR, FAIL, PASS, SKIP, Verdict

# What a verify report's JSON is (its "schema" key): `bench --verify-json` refuses any other file.
SCHEMA = "lstm-bench/verify/1"

# The layout ``Verdict.to_dict`` writes, as ``lstm_bench.schema`` checks it before a report is
# read back: every field a reader, a table or a plot uses, of the type it uses (keys written
# for readers only, such as a verdict's sentence, are let through unchecked).
NUMBER = (float, None)  # a figure; null where it was NaN or inf
STATUSES = frozenset({PASS, FAIL, DRIFT, SKIP, ERROR})
FAILURE = Fields({"runtime": (str, None), "output": str, "metric": str,
                  "value": (float, str, None), "limit": (float, str, None), "detail": str},
                 required=("output", "metric", "value", "limit"))
OUTPUT = Fields({"name": str, "dtype": str, "shape": [int], "max_abs": NUMBER,
                 "max_rel": NUMBER, "mean_abs": NUMBER, "max_ulp": (int, None),
                 "ulp_dtype": (str, None), "limit_at_worst": NUMBER, "float32_floor": NUMBER,
                 "time_axis": (int, None), "per_step_max_abs": ([NUMBER], None),
                 "failures": [FAILURE]}, required=("name", "dtype"))
LAYER = {"label": (str, None), "detail": (str, None), "status": (STATUSES, None),
         "reason": (str, None), "outputs": ([OUTPUT], None), "errors": ([FAILURE], None)}
VERDICT = {
    "runtime": RUNTIME, "status": (STATUSES, None), "device": (str, None),
    "precision": (str, None), "reason": (str, None), "notes": ([str], None),
    "tolerance": (Fields({"atol": float, "rtol": float}, required=("atol", "rtol")), None),
    "outputs": ([OUTPUT], None), "errors": ([FAILURE], None), "settings": (dict, None),
    "streaming": (Fields({"runtime": str, "status": frozenset({PASS, FAIL, SKIP}),
                          "chunks": [int], "max_abs": Each(NUMBER), "reason": (str, None),
                          "failures": [FAILURE]}, required=("runtime", "status")), None),
    "lstm_layer": (LAYER, None), "lstm_layers": ([LAYER], None)}
# `lstm-bench verify --json` (``VerifyReport.to_dict``)
VERIFY_REPORT = Fields({"schema": str, "model": (str, None), "sha256": (str, None),
                        "inputs": (dict, None),
                        "results": [Fields(VERDICT, required=("runtime",))]},
                       required=("results",))
# a bench report's ``verify`` (``VerifySummary.to_dict``): the verdicts by runtime
VERIFY_SECTION = {"inputs": (dict, None), "sha256": (str, None), "other_model": (str, None),
                  "runtimes": (Each(VERDICT, keys=RUNTIME), None)}


@dataclass(frozen=True)
class VerifyReport:
    """Every runtime's verdict, and what it was measured on."""

    model: Model
    inputs: dict  # what the runtimes were fed (``Inputs.describe``)
    results: tuple[Verdict, ...] = ()
    time_axes: dict[str, int] = field(default_factory=dict)
    # what each LSTM layer alone ran on (``LayerCheck.describe``), in graph order
    lstm_layers: tuple[dict, ...] = ()
    # the model at a second length and batch (None: not run): a finding fails the file
    second_shape: SecondShape | None = None

    @property
    def lstm_layer(self) -> dict | None:
        """What the first LSTM layer alone ran on (None: none was judged)."""
        return self.lstm_layers[0] if self.lstm_layers else None

    @property
    def failures(self) -> list[Failure]:
        return [f for r in self.results for f in r.failures]

    @property
    def file_ok(self) -> bool:
        """The file's outputs follow its inputs (``verify.baked``); True where not checked."""
        return self.second_shape is None or bool(self.second_shape)

    @property
    def skipped(self) -> dict[str, str]:
        return {r.runtime: r.reason for r in self.results if r.status == SKIP}

    def __bool__(self):
        return all(self.results) and self.file_ok

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "model": str(self.model),
            "sha256": self.model.sha256,  # ties the report to the model it judged
            "passed": bool(self),
            "summary": self.model.summary,
            "inputs": self.inputs,
            "tolerances": {k: {"atol": v.atol, "rtol": v.rtol} for k, v in TOLERANCES.items()},
            "time_axes": self.time_axes,
            "lstm_layer": self.lstm_layer,
            "lstm_layers": list(self.lstm_layers),
            "second_shape": None if self.second_shape is None else self.second_shape.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
            "failures": [asdict(f) for f in self.failures],
        }

    def write(self, path) -> None:
        """The report as strict JSON (NaN and inf as null: ``lstm_bench.files``' one rule)."""
        write_json(path, self.to_dict(), indent=2)


@dataclass(frozen=True)
class VerifySummary:
    """verify's verdicts beside the timings: one ``Verdict`` per runtime."""

    inputs: dict
    verdicts: dict[str, Verdict]
    sha256: str | None = None  # the model verify judged (None: not recorded)
    other_model: str | None = None  # a note where it judged another model (allowed)

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())

    @property
    def per_step_model(self) -> str | None:
        """What the per-step errors were measured on, where not the model's own outputs."""
        if any(len(v.lstm_layers) > 1 for v in self.verdicts.values()):
            return "the worst of the model's LSTM layers alone, output Y"
        if any(v.layer_status in (PASS, FAIL) for v in self.verdicts.values()):
            return "the model's LSTM layer alone, output Y"
        return None

    @classmethod
    def of(cls, report: VerifyReport) -> VerifySummary:
        return cls(report.inputs, {r.runtime: r for r in report.results}, report.model.sha256)

    @classmethod
    def read(cls, path, model: Model, *,
             allow_different_models: bool = False) -> VerifySummary:
        """From a file written by `lstm-bench verify --json`, refused (LSTMBenchError) when it
        is not a verify report, or is one of another model than ``model`` (its sha256) unless
        ``allow_different_models``."""
        data = read_json(path, "verify report")
        # a new file beside the one given, never the given one (it may be a report to keep)
        fresh = Path(path).with_name("verify.json")
        if fresh.resolve() == Path(path).resolve():
            fresh = Path(path).with_name(f"{Path(path).stem}-new.json")
        rerun = f"write one with `lstm-bench verify {model.path} --json {fresh}`"
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != SCHEMA:
            if isinstance(schema, str) and schema.startswith("lstm-bench/bench"):
                raise LSTMBenchError(f"{path}: a bench report, not a verify report; {rerun}")
            raise LSTMBenchError(f"{path}: not a verify report (schema {schema!r}, expected "
                                 f"{SCHEMA!r}); {rerun}")
        try:  # its whole layout, before anything of it is used (`bench` has not started)
            summary = cls.from_verify_json(data)
        except LSTMBenchError as exc:
            raise LSTMBenchError(f"{path}: {exc}; {rerun}") from None
        if data.get("sha256") != model.sha256 and not allow_different_models:
            raise LSTMBenchError(
                f"{path}: a verify report of another model ({data.get('model')}, sha256 "
                f"{str(data.get('sha256'))[:12]}) than {model.path} (sha256 "
                f"{model.sha256[:12]}); verify this model, or pass --allow-different-models "
                "to use it anyway")
        if data.get("sha256") == model.sha256:
            return summary
        # allowed, but every report says whose verdicts these are
        return replace(summary, other_model=(
            f"verify verdicts from {path}, a report of another model: {data.get('model')} "
            f"(sha256 {str(data.get('sha256'))[:12]}), not {model.path} (sha256 "
            f"{model.sha256[:12]}); used by --allow-different-models"))

    @classmethod
    def from_verify_json(cls, data: dict) -> VerifySummary:
        """From a verify report's JSON (``VerifyReport.to_dict``), checked against its
        layout (``VERIFY_REPORT``)."""
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise LSTMBenchError("verify data must be the JSON of `lstm-bench verify --json` "
                                 "(a top-level 'results' list)")
        check(data, VERIFY_REPORT, "verify data")
        verdicts = [Verdict.from_dict(entry) for entry in data["results"]]
        names = [v.runtime for v in verdicts]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise LSTMBenchError(f"verify data: two results for {', '.join(twice)}")
        return cls(data.get("inputs") or {}, {v.runtime: v for v in verdicts}, data.get("sha256"))

    def to_dict(self) -> dict:
        return {"passed": self.passed, "inputs": self.inputs, "per_step_model": self.per_step_model,
                "sha256": self.sha256,
                **({"other_model": self.other_model} if self.other_model else {}),
                "runtimes": {name: v.to_dict() for name, v in self.verdicts.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> VerifySummary:
        """From the ``verify`` section of a bench report (``to_dict``)."""
        verdicts = {}
        for name, entry in (data.get("runtimes") or {}).items():
            if not isinstance(entry, dict):
                raise LSTMBenchError(f"verify.runtimes.{name}: expected an object")
            verdicts[name] = Verdict.from_dict({"runtime": name, **entry})
        return cls(data.get("inputs") or {}, verdicts, data.get("sha256"), data.get("other_model"))
