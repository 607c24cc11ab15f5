"""lstm-bench's pytest plugin: gate your own LSTM model in your own test suite (docs/pytest.md).

Installed with lstm-bench as the ``pytest11`` entry point ``lstm_bench`` (``-p lstm_bench``
loads it where plugin autoload is off, ``-p no:lstm_bench`` turns it off). It adds options and
two fixtures, and does nothing until a test asks for one:

- ``lstm_verify(model, runtimes=None, *, batch=None, seq_len=None, seed=0, inputs=None)``:
  ``lstm-bench verify`` on the model (a path or an ``onnx.ModelProto``), at one thread as the
  command; the test fails with verify's one-line reason (that of its CI annotation,
  ``bench.ci_reports``) and then the lines the command prints (``FAIL ...``, "N of M
  runtime(s) failed"), and is skipped when none of the runtimes can run here. Returns the
  ``VerifyReport``.
- ``lstm_latency_gate(new, baseline=None, *, runtimes=None, fail_above=None, batch=None,
  seq_len=None)``: ``lstm-bench compare BASE.onnx NEW.onnx`` on two model files, the live
  A/B run (both models interleaved block by block), short by default; the test fails with
  compare's one-line reason (its headline and each regressing row). Skipped without a
  baseline. Returns the ``Comparison``.

Bad input (a missing model, an unknown runtime) fails the test with the command's one line,
"lstm-bench verify: error: ...", never a traceback. An option given a bad value is pytest's
usage error.

pytest loads this module in every run of a user's tests (and of lstm-bench's own), so it
imports nothing heavy: lstm-bench's libraries load onnx and NumPy, and are imported by the
options' parsers and the fixtures when they run, the one place in the app layer where project
modules are not imported at module level.
"""

from __future__ import annotations

import contextlib
import warnings

import pytest

# The gate's timing: short, so that a test takes seconds; the blocks are paired by round, and
# a one-sided signed-rank test on 15 pairs can reach p < 0.01 (7 pairs at the least).
GATE_BLOCKS = 15
GATE_SPAN = 2.0
DEFAULT_RUNTIMES = "ort-cpu"


def _runtimes(text: str) -> list[str]:
    """--lstm-bench-runtimes: the command line's parser (``options.runtime_names``)."""
    from lstm_bench.cli.options import runtime_names
    from lstm_bench.runtimes.registry import RUNTIMES

    return runtime_names(text) or list(RUNTIMES)


def _percent(text: str) -> float:
    from lstm_bench.cli.options import percent

    return percent(text)


def _seconds(text: str) -> float:
    from lstm_bench.cli.options import seconds

    return seconds(text)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("lstm-bench", "lstm-bench: gate LSTM models (docs/pytest.md)")
    group.addoption("--lstm-bench-runtimes", type=_runtimes, default=None, metavar="A,B,...|all",
                    help="the runtimes lstm_verify and lstm_latency_gate run where a test names "
                         f"none (default: {DEFAULT_RUNTIMES})")
    group.addoption("--lstm-bench-baseline", default=None, metavar="BASE.onnx",
                    help="the model lstm_latency_gate compares with where a test names none "
                         "(without one, the gate's tests are skipped)")
    group.addoption("--lstm-bench-fail-above", type=_percent, default=None, metavar="PCT",
                    help="a significant slowdown of the median above PCT percent fails the "
                         "gate (default 5, as lstm-bench compare)")
    group.addoption("--lstm-bench-span", type=_seconds, default=None, metavar="S",
                    help=f"seconds the gate's {GATE_BLOCKS} rounds of blocks are spread over "
                         f"(default {GATE_SPAN:g}; longer sees more of a shared machine's phases)")


@contextlib.contextmanager
def _bad_input(command: str):
    """The project's bad-input error as the command's one line, failing the test."""
    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.printable import visible

    try:
        yield
    except LSTMBenchError as exc:
        message = visible(" ".join(str(exc).split()))
        pytest.fail(f"lstm-bench {command}: error: {message}", pytrace=False)


def _runtime_names(config, runtimes) -> list[str]:
    """The runtimes a fixture runs: the test's (a list, or a comma string), else the option's,
    else ort-cpu; checked as the command line checks them."""
    if runtimes is None:
        return config.getoption("lstm_bench_runtimes") or _runtimes(DEFAULT_RUNTIMES)
    return _runtimes(runtimes if isinstance(runtimes, str) else ",".join(runtimes))


def _model(model, *, files_only: bool = False):
    """A ``Model`` from a path or (unless ``files_only``) an in-memory ModelProto, checked as
    the commands check it."""
    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.model import Model

    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        return Model.load(model).check_lstm()
    if files_only:  # a bench report records the file it measured
        raise LSTMBenchError(f"the latency gate measures model files, not a "
                             f"{type(model).__name__}: save it (onnx.save) and give its path")
    return Model.built(model).check_lstm()


def verify_failure_lines(report) -> list[str]:
    """What ``lstm-bench verify`` prints for a failing report, in its order (none: it passed):
    the file's findings at a second shape, each runtime's failures, the count."""
    from lstm_bench.cli.verify import failure_lines  # loads the verify libraries

    findings = [] if report.second_shape is None else [
        f"FAIL file: {finding.message}" for finding in report.second_shape.findings]
    return findings + failure_lines(report)  # findings: only where the file failed


class Verify:
    """``lstm_verify``: one model judged against the float64 truth (see the module doc)."""

    def __init__(self, request):
        self.request = request

    def __call__(self, model, runtimes=None, *, batch: int | None = None,
                 seq_len: int | None = None, seed: int = 0, inputs=None):
        from lstm_bench.bench.ci_reports import verify_failure_text
        from lstm_bench.bench.machine import default_threads
        from lstm_bench.runtimes.registry import make_factories
        from lstm_bench.verify.run import VerifyPlan, verify
        from lstm_bench.verify.verdict import DRIFT, SKIP

        with _bad_input("verify"):
            names = _runtime_names(self.request.config, runtimes)
            plan = VerifyPlan(make_factories(names), batch=batch, seq_len=seq_len,
                              inputs=inputs, seed=seed, threads=default_threads())
            report = verify(_model(model), plan)
        reason = verify_failure_text(report)
        ran = [r for r in report.results if r.status != SKIP]
        self.request.node.user_properties.append(
            ("lstm-bench verify", reason or f"{len(ran)} runtime(s) passed"))
        if reason:  # the one line of CI annotations, then the lines the command prints
            pytest.fail("\n".join([reason, *verify_failure_lines(report)]), pytrace=False)
        if not ran:
            pytest.skip("lstm-bench verify: no runtime can run here: " + "; ".join(
                f"{name}: {reason}" for name, reason in report.skipped.items()))
        for result in (r for r in ran if r.status == DRIFT):
            warnings.warn(f"lstm-bench verify: DRIFT {result.runtime}: "
                          f"{result.sentence().removeprefix(DRIFT + ': ')}", stacklevel=2)
        return report


class LatencyGate:
    """``lstm_latency_gate``: a live A/B run of a baseline and a new model (see the module
    doc)."""

    def __init__(self, request):
        self.request = request

    def __call__(self, new, baseline=None, *, runtimes=None, fail_above: float | None = None,
                 batch: int | None = None, seq_len: int | None = None):
        config = self.request.config
        baseline = baseline if baseline is not None else config.getoption("lstm_bench_baseline")
        if baseline is None:
            pytest.skip("lstm-bench compare: no baseline model: give one to lstm_latency_gate "
                        "or pass --lstm-bench-baseline BASE.onnx")
        from lstm_bench.bench.ci_reports import compare_failure_text
        from lstm_bench.bench.compare import compare_reports
        from lstm_bench.bench.compare_report import Comparison
        from lstm_bench.bench.runner import run_plan

        with _bad_input("compare"):
            if fail_above is None:
                fail_above = config.getoption("lstm_bench_fail_above")
            fail_above = 5.0 if fail_above is None else _percent(fail_above)
            span = config.getoption("lstm_bench_span")
            plan = self.plan((baseline, new), _runtime_names(config, runtimes), batch, seq_len,
                             GATE_SPAN if span is None else span)
            base_doc, new_doc = (report.to_dict() for report in run_plan(plan))
            changes = compare_reports(base_doc, new_doc, fail_above=fail_above, paired=True,
                                      allow_different_models=True)
        base_name, new_name = (str(model) for model in plan.models)
        comparison = Comparison(changes, base_name, new_name, fail_above, plan.notes,
                                paired=True)
        self.request.node.user_properties.append(("lstm-bench compare", comparison.headline))
        reason = compare_failure_text(comparison)
        if reason:
            pytest.fail(f"lstm-bench compare {base_name} {new_name}: {reason}", pytrace=False)
        return comparison

    @staticmethod
    def plan(paths, names, batch, seq_len, span):
        """``compare BASE.onnx NEW.onnx``'s plan (``cli.bench.ab_plan``) at the gate's short
        timing: one rotation, the base model's batch and length, no GEMM calibration."""
        from lstm_bench.bench.harness import Settings
        from lstm_bench.bench.machine import default_threads
        from lstm_bench.bench.plan import RuntimeChoice, SweepPlan, sweep_shapes

        models = tuple(_model(path, files_only=True) for path in paths)
        shapes, notes = sweep_shapes(models, None if batch is None else [batch],
                                     None if seq_len is None else [seq_len])
        # the gate compares the two models' figures: no call floor to time beside them
        settings = Settings(span=span, blocks=GATE_BLOCKS, warmup_time=0.02, call_floor=False)
        return SweepPlan(models, RuntimeChoice.of(names), shapes, (default_threads(),),
                         settings, calibrate=False, notes=notes, command="compare")


@pytest.fixture
def lstm_verify(request) -> Verify:
    """A callable: ``lstm_verify("model.onnx")`` fails the test where a runtime disagrees
    with the float64 truth (docs/pytest.md)."""
    return Verify(request)


@pytest.fixture
def lstm_latency_gate(request) -> LatencyGate:
    """A callable: ``lstm_latency_gate("new.onnx")`` fails the test where the model is slower
    than the baseline beyond noise and the threshold (docs/pytest.md)."""
    return LatencyGate(request)
