"""The one path of every bench: a ``bench.plan.SweepPlan`` measured (in this process or in
worker processes, pyperf-style; a GEMM in the rotation calibrates the machine's peak) with a
live display, and one report document per model (``run_plan``)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, replace

from lstm_bench.bench.harness import Subject, SweepResult, Timeline, sweep
from lstm_bench.bench.machine import (Calibration, GemmProbe, busy_warning, calibration_notes,
                                      cpu_snapshot, judged, load_average, machine_info,
                                      other_cores)
from lstm_bench.bench.plan import SweepPlan, check_memory
from lstm_bench.bench.report import BenchReport, build_document
from lstm_bench.bench.speed import SpeedProbe, phase_note, section
from lstm_bench.bench.stats import merge
from lstm_bench.bench.streaming import streamed_report, streaming_factories, streaming_model
from lstm_bench.bench.text import no_peak_note, peak_comparable
from lstm_bench.bench.trial import trial_crashes
from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds import describe_random
from lstm_bench.files import limit_seconds
from lstm_bench.interrupts import held
from lstm_bench.verify.isolate import die_with_parent, exit_words
from lstm_bench.verify.streaming import StreamPorts


# Worker processes of a default bench: each is one invocation of the code, and their spread
# is the noise a saved report carries (``bench.gate``). Chosen by measurement (issue 21, a
# 2-core AMD EPYC, docs/bench.md): with 3, a +20 % step of saved reports was caught in 5 of 6
# pairs on a steady machine (a worker that strayed widened the interval); with 5, in 6 of 6,
# and +10 % in 6 of 6, with no false alarm in 20 idle pairs; each worker costs its start-up
# (about 1.2 s): a default bench took 17 s against 15 s. ``run`` stays in one process: its
# workers would load every runtime twice over (measured in docs/bench.md).
DEFAULT_PROCESSES = 5
MIN_SPAN_PER_PROCESS = 1.0  # seconds: a worker with less span has too short a share to spread
RUNNING_BYTES = 256  # room for the name of the runtime a worker is calling


def default_processes(span: float) -> int:
    """The worker processes a bench takes when not told: ``DEFAULT_PROCESSES`` where
    the span gives each at least ``MIN_SPAN_PER_PROCESS``, else one (this process: a short
    span, ``--span 0`` smoke tests, is one stretch anyway)."""
    return DEFAULT_PROCESSES if span >= DEFAULT_PROCESSES * MIN_SPAN_PER_PROCESS else 1


def run_plan(plan: SweepPlan, verify=None) -> list[BenchReport]:
    """Measure ``plan``: one ``bench.report.BenchReport`` per model, in order (``verify``: a
    ``VerifySummary`` to show beside the timings, or None). A streaming plan times its model
    one chunk per call (``bench.streaming``); its report has a ``streaming`` section."""
    if plan.streaming:
        return [_streamed(plan, verify)]
    results, load = _measured(plan)
    return [_report(plan, model, result, load, verify)
            for model, result in zip(plan.models, results)]


def _measured(plan: SweepPlan, ports: StreamPorts | None = None) -> tuple[list, dict]:
    """(one SweepResult per model, each skipping the runtimes not available here; the load)."""
    # before any runtime library loads (they write files of their own): a shape the model
    # cannot be fed is refused here too; every runtime asked for counts, available here or not
    check_memory(plan.models, plan.shapes, len(plan.runtimes.names), plan.command, plan.inputs)
    factories, unavailable = plan.runtimes.pick()
    crashed = trial_crashes(plan, factories, ports)  # each left out, the others measured
    if crashed:
        gone = {c["runtime"] for c in crashed}
        factories = {name: f for name, f in factories.items() if name not in gone}
        # worker processes make the plan's runtimes themselves
        plan = replace(plan, runtimes=replace(plan.runtimes, names=tuple(
            name for name in plan.runtimes.names if name not in gone)))
        unavailable += crashed
    if ports is not None:
        factories = streaming_factories(factories, ports)
    if factories:
        results, load = measure_sweep(plan, factories, ports)
    else:  # nothing to time: the report says why each runtime was not
        results, load = [SweepResult([], [], plan.settings) for _ in plan.models], {}
    for result in results:
        result.skipped[:0] = unavailable
    return results, load


def _report(plan: SweepPlan, model, result, load, verify, timed=None) -> BenchReport:
    """The report of ``model``'s result; ``timed``: the model timed in its place (a streaming
    plan's stateful variant), whose feeds the report describes."""
    if not result.measurements:
        raise LSTMBenchError(
            f"{model.path}: no runtime could {'stream' if plan.streaming else 'run'} the model: "
            + "; ".join(f"{s['runtime']}: {s['reason']}" for s in result.skipped))
    fed = (plan.inputs.describe() if plan.inputs is not None
           else describe_random((timed or model).proto, plan.shapes, seed=plan.seed,
                                   given=(timed or model).given))
    report = finish_document(result, model={**model.info(), "inputs_fed": fed},
                             threads_list=plan.threads, load=load, verify=verify)
    # said of this sweep: `run` also notes its sequence sweep's batches (another default)
    report.notes[:0] = [f"streaming sweep: {n}" if plan.streaming else n for n in plan.notes]
    if model.flops_note and not plan.streaming:  # streaming rows have no % of peak anyway
        report.notes.append(f"{model.path.name}: {model.flops_note}")
    return report


def _streamed(plan: SweepPlan, verify) -> BenchReport:
    """The report of a streaming plan: its model, or the stateful variant made of it (in a
    temporary folder, where the runtimes and worker processes read it), timed in chunks."""
    (model,) = plan.models
    with tempfile.TemporaryDirectory(prefix="lstm-bench-stream-") as folder:
        stream = streaming_model(model, folder)  # first: a model that cannot stream fails fast
        # no GEMM peak: streaming rows have no % peak
        timed = replace(plan, models=(stream.model,), calibrate=False)
        (result,), load = _measured(timed, stream.ports)
        report = _report(plan, model, result, load, verify, stream.model)
        return streamed_report(report, stream, plan.lengths)


def measure_models(plan: SweepPlan, factories: dict, on_event=None,
                   timeline: Timeline | None = None) -> list:
    """``harness.sweep`` of the plan's models and these runtimes (name -> factory); one
    SweepResult per model. This is what each worker process runs."""
    subjects = [Subject(model, _feeds_for(plan, model), model.flops) for model in plan.models]
    return sweep(subjects, factories, plan.shapes, plan.threads, plan.settings,
                 timeline=timeline or Timeline(plan.clock),
                 probes={"gemm": GemmProbe if plan.calibrate else None, "speed": SpeedProbe},
                 on_event=on_event)


def _feeds_for(plan: SweepPlan, model):
    """The feeds of ``model`` at a (batch, seq_len): the .npz's, else seeded random ones."""
    if plan.inputs is not None:
        return lambda batch, seq_len: plan.inputs.feeds
    return lambda batch, seq_len: model.feeds(batch, seq_len, plan.seed)


_RUNNING = None  # in a worker: where it writes the name of the runtime it is calling


def _start_worker(parent: int, running) -> None:
    """A worker's first step: it dies with its parent, and keeps ``running`` (shared memory)
    to say which runtime it is calling, so that a crash has a name (``measure_in_processes``)."""
    global _RUNNING
    die_with_parent(parent)
    _RUNNING = running


def _mark(name: str) -> None:
    _RUNNING.value = name.encode()[:RUNNING_BYTES - 1]


def _worker(job: dict) -> list[dict]:
    """Entry point of a worker process: measure, and return the rows and calibrations as they
    are (pickled: their statistics are the parent's to compute, over every worker's blocks;
    computing them here cost each worker about a second, mostly importing SciPy)."""
    plan = SweepPlan.from_job(job["plan"])
    factories = plan.runtimes.factories()
    if job["stream_ports"] is not None:  # a streaming bench: each runtime carries h and c
        factories = streaming_factories(factories, StreamPorts(**job["stream_ports"]))
    results = measure_models(plan, factories, timeline=Timeline(
        origin=job["origin"], process=job["process"],
        mark=_mark if _RUNNING is not None else Timeline.mark))
    return [{"rows": r.measurements, "skipped": r.skipped, "calibrations": r.calibrations,
             "speed": r.speed} for r in results]


def worker_settings(settings, processes: int):
    """Each of N workers takes 1/N of the span, the blocks and the minimum time."""
    return replace(settings, span=settings.span / processes,
                   blocks=max(1, -(-settings.blocks // processes)),
                   min_time=settings.min_time / processes,
                   min_reps=max(1, -(-settings.min_reps // processes)),
                   max_reps=max(1, settings.max_reps // processes),
                   max_time=settings.max_time / processes)


def measure_in_processes(plan: SweepPlan, ports: StreamPorts | None = None,
                         on_event=None, worker=None) -> list:
    """The sweep in ``settings.processes`` fresh worker processes, one after another (as
    pyperf does: in parallel they would compete for the cores), each with its share of the
    span; a cell's blocks from every process are merged into one Measurement. A worker makes
    the plan's runtimes itself (for a streaming bench, wrapped to stream through ``ports``).
    Each worker calibrates the GEMM peak in its own rotation; their GEMM blocks are pooled per
    thread count, as the rows' blocks are. A worker that dies of a signal while calling a
    runtime (a native crash its trial did not meet, ``bench.trial``) names it: that runtime is
    left out ("crashed: SIGSEGV while being timed"), its rows from earlier workers dropped, and
    the worker's share measured again without it. ``worker``: the workers' entry point (tests
    give one that registers runtimes of their own)."""
    notify = on_event or (lambda kind, **info: None)
    processes = plan.settings.processes
    share = replace(plan, settings=worker_settings(plan.settings, processes))
    job = {"plan": share.as_job(), "stream_ports": None if ports is None else asdict(ports),
           "origin": time.perf_counter_ns()}  # CLOCK_MONOTONIC: one time axis for all workers
    names = job["plan"]["runtimes"]["names"]
    parts, crashed = [], {}
    for process in range(processes):
        notify("process", process=process, processes=processes)
        while names:
            try:
                parts.append(_in_worker(worker, {**job, "process": process}, process))
                break
            except _Crashed as exc:  # that runtime is left out, the others measured again
                crashed[exc.runtime] = {"runtime": exc.runtime, "threads": None,
                                        "reason": exc.reason}
                names[:] = [name for name in names if name != exc.runtime]
        notify("done")
    results = []
    for i in range(len(plan.models)):
        by_key: dict = {}
        for part in parts:
            for m in part[i]["rows"]:
                if m.runtime not in crashed:  # its figures from the workers before the crash too
                    by_key.setdefault(m.key, []).append(m)
        skipped = {(s["runtime"], s["threads"]): s for part in parts for s in part[i]["skipped"]}
        skipped.update({(name, None): entry for name, entry in crashed.items()})
        calibrations = Calibration.merge(c for part in parts for c in part[i]["calibrations"])
        speed: dict = {}
        for part in parts:
            for m in part[i]["speed"]:
                speed.setdefault(m.threads, []).append(m)
        results.append(SweepResult([merge(ms) for ms in by_key.values()],
                                   list(skipped.values()), plan.settings, calibrations,
                                   [merge(ms) for ms in speed.values()]))
    return results


class _Crashed(Exception):
    def __init__(self, runtime: str, reason: str):
        super().__init__(reason)
        self.runtime, self.reason = runtime, reason


def _in_worker(worker, job: dict, process: int) -> list[dict]:
    """``worker(job)`` in a fresh worker process. A worker killed by a signal while calling a
    runtime (a native crash, the out-of-memory killer) raises ``_Crashed`` naming it; any
    other abrupt end (the call time limit's exit, a crash outside every runtime) is the one
    line of an LSTMBenchError."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter, nothing inherited
    running = context.Array("c", RUNNING_BYTES, lock=False)
    ours = []
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_start_worker,
                             initargs=(os.getpid(), running)) as pool:
        try:
            # the worker starts with Ctrl-C blocked (a terminal sends it to the whole
            # process group): this process alone handles it, and ends the worker
            with held(signal.SIGINT):
                future = pool.submit(worker or _worker, job)
            ours = list(pool._processes.values())  # its exit code says how it ended
            return future.result()
        except KeyboardInterrupt:  # rather than wait for the worker's share of the span
            for child in multiprocessing.active_children():
                child.terminate()
            raise
        except BrokenProcessPool:
            for child in ours:
                child.join(5)
            code = next((c.exitcode for c in ours if c.exitcode is not None), None)
            name = running.value.decode(errors="replace")
            if code is not None and code < 0 and name:
                raise _Crashed(name, f"crashed: {exit_words(code)} while being timed (worker process "
                                     f"{process})") from None
            raise LSTMBenchError(
                f"worker process {process} ended abruptly while measuring (a crash, out of "
                "memory, or a runtime's first calls over LSTM_BENCH_CALL_TIMEOUT_S = "
                f"{limit_seconds('LSTM_BENCH_CALL_TIMEOUT_S'):g} s)") from None


def measure_sweep(plan: SweepPlan, factories: dict, ports: StreamPorts | None = None) -> tuple:
    """(one SweepResult per model, the load averages before and after), under the plan's
    display. ``factories``: runtime name -> factory; in worker processes
    (``settings.processes`` > 1) the plan's runtimes are made there instead (streaming
    through ``ports`` where given, as ``factories`` do)."""
    load_before, cpu_before = load_average(), cpu_snapshot()
    in_process = plan.settings.processes == 1
    total = (len(plan.threads) * len(factories) * len(plan.models) if in_process
             else plan.settings.processes)
    with plan.display(total) as display:
        if in_process:
            results = measure_models(plan, factories, on_event=display)
        else:
            results = measure_in_processes(plan, ports, on_event=display)
    return [with_peaks(r) for r in results], {
        "before": load_before, "after": load_average(),
        "other_cores": other_cores(cpu_before, cpu_snapshot())}


def with_peaks(result):
    """The SweepResult with its calibrations judged (``machine.judged``) and each CPU row
    given the GEMM peak of its thread count: its % of peak divides by it (None where that
    calibration is unreliable, and for work of another precision than the float32 GEMM's:
    ``text.peak_comparable``, said in the report's notes)."""
    result.calibrations = judged(result.calibrations)
    peaks = {c.threads: c.usable_peak for c in result.calibrations}
    result.measurements = [replace(m, peak_gflops=peaks.get(m.threads)
                                   if peak_comparable(m) else None)
                           if m.device == "cpu" else m for m in result.measurements]
    return result


def finish_document(result, *, model: dict, threads_list, load, verify=None):
    """The ``bench.report.BenchReport`` (``model``: its info), with the load averages, a
    note when the machine was busy and one for each thread count whose GEMM calibration was
    too unsteady for a % of peak."""
    machine = machine_info(list(threads_list))
    machine["load_average"] = load
    machine["speed"] = section(result.speed)  # the machine's speed beside the rows: bench.gate
    report = build_document(result, model=model, machine=machine, verify=verify)
    busy = busy_warning(load["before"], load["after"], max(threads_list), load.get("other_cores"))
    if busy:
        report.notes.append(busy)
    report.notes += calibration_notes(report.calibrations)
    phases = phase_note(machine["speed"])
    if phases:
        report.notes.append(phases)
    no_peak = no_peak_note(report.measurements) if report.calibrations else None
    if no_peak:
        report.notes.append(no_peak)
    return report
