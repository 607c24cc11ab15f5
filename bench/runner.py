"""A benchmark run from the command line's point of view: parse the lists, pick the runtimes,
sweep (in this process or in worker processes, pyperf-style; a GEMM in the rotation calibrates
the machine's peak) with a live display, and build the report document."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict

from lstm_bench.errors import LSTMBenchError


def requested_runtimes(names) -> list[str]:
    """The runtime names asked for, checked, without loading any runtime library.

    ``names``: a list, or None for every registered runtime; unknown names are an error.
    """
    from lstm_bench.runtimes.registry import RUNTIMES

    if names is None:
        return list(RUNTIMES)
    if not names:
        raise LSTMBenchError("--runtimes is empty; name some of: " + ", ".join(RUNTIMES))
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise LSTMBenchError(f"--runtimes: unknown {', '.join(unknown)}; known: "
                             f"{', '.join(RUNTIMES)}")
    return list(dict.fromkeys(names))


def pick_runtimes(names) -> tuple[dict, list[dict]]:
    """(name -> factory of the available ones, [{"runtime", "reason"} for the others]);
    ``names`` as for ``requested_runtimes``."""
    from lstm_bench.runtimes.registry import RUNTIMES

    chosen, skipped = {}, []
    for name in requested_runtimes(names):
        reason = RUNTIMES[name]().available()
        if reason:
            skipped.append({"runtime": name, "threads": None, "reason": reason})
        else:
            chosen[name] = RUNTIMES[name]
    if not chosen:
        raise LSTMBenchError("no runtime can run here: " + "; ".join(
            f"{s['runtime']}: {s['reason']}" for s in skipped))
    return chosen, skipped


def quiet(total: int):
    """The display of a sweep nobody watches: ``measure_sweep``'s ``display`` is called with the
    count of steps and gives a context whose value takes the sweep's events
    (``lstm_bench.cli.progress.LiveDisplay`` draws them)."""
    return nullcontext(lambda kind, **info: None)


def fed_inputs(model, inputs):
    """The feeds of an .npz (``--inputs``), checked against the model, as verify reads them."""
    from lstm_bench.feeds import load_inputs

    return load_inputs(inputs, model.proto)


def _subject(model, inputs=None, seed: int = 0):
    """A harness Subject of a BenchModel, or of a path (read here: in a worker process); with
    ``inputs`` (an .npz path, or its ``Inputs`` already read), every shape gets its feeds; else
    seeded random feeds at each shape."""
    from lstm_bench.bench.harness import Subject
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.feeds import Inputs

    if not isinstance(model, BenchModel):
        model = BenchModel(model)
    feeds_for = lambda batch, seq_len: model.feeds(batch, seq_len, seed)  # noqa: E731
    if inputs is not None:
        fed = inputs if isinstance(inputs, Inputs) else fed_inputs(model, inputs)
        feeds_for = lambda batch, seq_len: fed.feeds  # noqa: E731
    return Subject(model.model, feeds_for, model.flops)


def check_memory(models, shapes, runtimes: int, command: str, fed=None) -> None:
    """Refuse, before any feed is made, a sweep whose feeds and outputs would exceed
    LSTM_BENCH_MAX_FEEDS_MB. The harness holds the feeds of every shape of every model for the
    whole sweep, and every runtime of a thread count is open at once, each keeping its outputs
    of every shape it ran (an estimate: ``bench.model.HELD_PER_Y``). A worker process
    (``--processes``) holds the same; its parent holds none of them. ``fed``: the ``Inputs`` of
    ``--inputs``, the one shape's feeds. Sizing each shape's feeds (``BenchModel.feed_bytes``)
    also refuses a shape the model cannot be fed, as ``BenchModel.check_shapes`` does."""
    from lstm_bench.files import check_total_size, size_text

    feeds, outputs = [], []
    for model in models:
        name = f"{model.path.name}: " if len(models) > 1 else ""
        for batch, seq_len in shapes:
            at = f"batch {batch} x seq_len {seq_len}"
            feeds.append((f"{name}feeds at {at}",
                          sum(a.nbytes for a in fed.feeds.values()) if fed is not None
                          else model.feed_bytes(batch, seq_len)))
            outputs.append((f"{name}outputs at {at}", runtimes * model.output_bytes(batch, seq_len)))
    size = lambda parts: size_text(sum(n for _, n in parts))  # noqa: E731
    check_total_size(feeds + outputs, f"{command}: the feeds of {len(feeds)} shape"
                     f"{'s' * (len(feeds) > 1)} ({size(feeds)}) and the outputs kept by its "
                     f"{runtimes} runtime{'s' * (runtimes > 1)} ({size(outputs)}, estimated)")


def measure_models(models: list, factories: dict, shapes, threads_list, settings, *,
                   calibrate: bool, process: int = 0, origin: int | None = None,
                   clock=time.perf_counter_ns, on_event=None, ort_options=None,
                   inputs=None, seed: int = 0) -> list:
    """``harness.sweep`` of these models (BenchModels, or paths) and runtimes (name ->
    factory); one SweepResult per model. This is what each worker process runs.
    ``calibrate``: time a GEMM in the rotation, for the rows' % of peak."""
    from lstm_bench.bench.harness import sweep
    from lstm_bench.bench.machine import GemmProbe

    subjects = [_subject(m, inputs, seed) for m in models]
    return sweep(subjects, factories, shapes, threads_list, settings, clock=clock,
                 gemm=GemmProbe if calibrate else None, on_event=on_event, process=process,
                 origin=origin, ort_options=ort_options)


def _worker(job: dict) -> list[dict]:
    """Entry point of a worker process: measure, and return plain rows (JSON-able data)."""
    from lstm_bench.bench.harness import Settings
    from lstm_bench.runtimes.registry import RUNTIMES

    factories = {n: RUNTIMES[n] for n in job["names"]}
    if job["stream_ports"] is not None:  # a streaming bench: each runtime carries h and c
        from lstm_bench.bench.streaming import StreamingRuntime
        from lstm_bench.verify.streaming import StreamPorts

        ports = StreamPorts(**job["stream_ports"])
        factories = {n: (lambda f=f: StreamingRuntime(f(), ports)) for n, f in factories.items()}
    results = measure_models(job["paths"], factories,
                             [tuple(s) for s in job["shapes"]],
                             job["threads_list"], Settings(**job["settings"]),
                             calibrate=job["calibrate"],
                             process=job["process"], origin=job["origin"],
                             ort_options=job["ort_options"], inputs=job["inputs"],
                             seed=job["seed"])
    return [{"rows": [m.as_dict() for m in r.measurements], "skipped": r.skipped,
             "calibrations": [c.as_dict() for c in r.calibrations]} for r in results]


def worker_settings(settings, processes: int):
    """Each of N workers takes 1/N of the span, the blocks and the minimum time."""
    from dataclasses import replace

    return replace(settings, span=settings.span / processes,
                   blocks=max(1, -(-settings.blocks // processes)),
                   min_time=settings.min_time / processes,
                   min_reps=max(1, -(-settings.min_reps // processes)),
                   max_reps=max(1, settings.max_reps // processes),
                   max_time=settings.max_time / processes)


def measure_in_processes(models, names: list[str], shapes, threads_list, settings, *, calibrate,
                         on_event=None, ort_options=None, inputs=None, seed: int = 0,
                         stream_ports=None) -> list:
    """The sweep in ``settings.processes`` fresh worker processes, one after another (as
    pyperf does: in parallel they would compete for the cores), each with its share of the
    span; a cell's blocks from every process are merged into one Measurement. A worker makes
    its runtimes from the registry, by ``names`` (for a streaming bench, wrapped to stream
    through ``stream_ports``). Each worker calibrates the GEMM peak in its
    own rotation; their GEMM blocks are pooled per thread count, as the rows' blocks are."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    from lstm_bench.bench.harness import SweepResult
    from lstm_bench.bench.machine import Calibration
    from lstm_bench.bench.stats import Measurement, merge
    from lstm_bench.interrupts import held

    notify = on_event or (lambda kind, **info: None)
    processes = settings.processes
    job = {"paths": [str(m.path) for m in models], "names": list(names),
           "shapes": [list(s) for s in shapes], "threads_list": list(threads_list),
           "settings": worker_settings(settings, processes).as_dict(), "calibrate": calibrate,
           "ort_options": ort_options, "inputs": None if inputs is None else str(inputs),
           "seed": seed, "stream_ports": None if stream_ports is None else asdict(stream_ports),
           "origin": time.perf_counter_ns()}  # CLOCK_MONOTONIC: one time axis for all workers
    parts = []
    for process in range(processes):
        notify("process", process=process, processes=processes)
        # spawn: a fresh interpreter, nothing inherited from this one's state
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            try:
                # the worker starts with Ctrl-C blocked (a terminal sends it to the whole
                # process group): this process alone handles it, and ends the worker
                with held(signal.SIGINT):
                    future = pool.submit(_worker, {**job, "process": process})
                parts.append(future.result())
            except KeyboardInterrupt:  # rather than wait for the worker's share of the span
                for child in multiprocessing.active_children():
                    child.terminate()
                raise
            except BrokenProcessPool:
                from lstm_bench.files import limit_seconds

                raise LSTMBenchError(
                    f"worker process {process} ended abruptly while measuring (a crash, out of "
                    "memory, or a runtime's first calls over LSTM_BENCH_CALL_TIMEOUT_S = "
                    f"{limit_seconds('LSTM_BENCH_CALL_TIMEOUT_S'):g} s)") from None
        notify("done")
    results = []
    for i in range(len(models)):
        by_key: dict[tuple, list] = {}
        for part in parts:
            for row in part[i]["rows"]:
                m = Measurement.from_dict(row)
                by_key.setdefault(m.key(), []).append(m)
        skipped = {(s["runtime"], s["threads"]): s for part in parts for s in part[i]["skipped"]}
        calibrations = Calibration.merge(Calibration.from_dict(c) for part in parts
                                         for c in part[i]["calibrations"])
        results.append(SweepResult([merge(ms) for ms in by_key.values()],
                                   list(skipped.values()), settings, calibrations))
    return results


def measure_sweep(models, factories: dict, shapes, threads_list, settings, *, calibrate: bool,
                  display=None, clock=time.perf_counter_ns,
                  ort_options=None, inputs=None, seed: int = 0, stream_ports=None) -> tuple:
    """(one SweepResult per model (BenchModels), the load averages before and after).

    ``factories``: runtime name -> factory; in worker processes (``settings.processes`` > 1)
    the registry's runtimes of those names are made instead (streaming through
    ``stream_ports`` where given, as ``bench.streaming`` wraps its factories). ``inputs``: an .npz path (or,
    in this process, its ``Inputs``); else random feeds from ``seed``."""
    from lstm_bench.bench.machine import cpu_snapshot, load_average, other_cores

    load_before, cpu_before = load_average(), cpu_snapshot()
    in_process = settings.processes == 1
    total = (len(threads_list) * len(factories) * len(models)) if in_process else settings.processes
    with (display or quiet)(total) as display:
        if in_process:
            results = measure_models(models, factories, shapes, threads_list, settings,
                                     calibrate=calibrate, clock=clock, on_event=display,
                                     ort_options=ort_options,
                                     inputs=inputs, seed=seed)
        else:
            results = measure_in_processes(models, list(factories), shapes, threads_list, settings,
                                           calibrate=calibrate, on_event=display,
                                           ort_options=ort_options, inputs=inputs, seed=seed,
                                           stream_ports=stream_ports)
    return [with_peaks(r) for r in results], {
        "before": load_before, "after": load_average(),
        "other_cores": other_cores(cpu_before, cpu_snapshot())}


def with_peaks(result):
    """The SweepResult with its calibrations judged (``machine.judged``) and each CPU row
    given the GEMM peak of its thread count: its % of peak divides by it (None where that
    calibration is unreliable)."""
    from dataclasses import replace

    from lstm_bench.bench.machine import judged

    result.calibrations = judged(result.calibrations)
    peaks = {c.threads: c.usable_peak for c in result.calibrations}
    result.measurements = [replace(m, peak_gflops=peaks.get(m.threads)) if m.device == "cpu"
                           else m for m in result.measurements]
    return result


def finish_document(result, *, model: dict, threads_list, load, verify=None):
    """The ``bench.report.BenchReport`` (``model``: its info), with the load averages, a
    note when the machine was busy and one for each thread count whose GEMM calibration was
    too unsteady for a % of peak."""
    from lstm_bench.bench.machine import busy_warning, calibration_notes, machine_info
    from lstm_bench.bench.report import build_document

    machine = machine_info(threads_list)
    machine["load_average"] = load
    report = build_document(result, model=model, machine=machine, verify=verify)
    busy = busy_warning(load["before"], load["after"], max(threads_list), load.get("other_cores"))
    if busy:
        report.notes.append(busy)
    report.notes += calibration_notes(report.calibrations)
    return report


def resolve_threads(threads_list) -> list[int]:
    from lstm_bench.bench.machine import check_threads, default_threads

    return check_threads([t or default_threads() for t in threads_list])


def fit_batches(model, batches, default) -> tuple[list[int], list[str]]:
    """(the batch sizes to measure ``model`` (a BenchModel) at, notes): ``batches`` as asked
    (None: ``default``), checked against a batch the model fixes (``inputs.fit_batches``)."""
    from lstm_bench.feeds import fit_batches as fit

    fitted, note = fit(model.proto, batches, default, where=model.path.name)
    return fitted, [note] if note else []


def run_bench(model_path, *, runtimes: str | None = None, batches=None, seq_lens=None,
              threads_list=(None,), settings=None, verify=None,
              calibrate: bool = True, display=None,
              clock=time.perf_counter_ns, ort_options=None, inputs=None, seed: int = 0,
              default_batches=(1,)):
    """Measure a model and return its ``bench.report.BenchReport`` (``verify``: a
    ``VerifySummary`` to show beside the timings, or None).

    ``batches``: the sizes asked for (a model that fixes its batch refuses others), or None
    for ``default_batches`` (the model's own batch where it fixes one; a note says so).
    ``seq_lens`` None: the model's (the length it fixes, else 100).
    ``inputs``: an .npz of feeds (as for verify); its shape replaces ``batches`` x ``seq_lens``.
    Otherwise the feeds are random, from ``seed``; the report's ``model.inputs_fed`` says which.
    """
    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.feeds import check_given, describe_random, fed_seq_len

    settings = settings or Settings()
    model = BenchModel(model_path)
    fed, notes = None, []
    if inputs is not None:
        fed = fed_inputs(model, inputs)
        check_given(fed, batch=batches, seq_len=seq_lens)  # the file's shape, not another
        batches, seq_lens = [fed.batch], [fed.seq_len or 1]
    else:
        batches, notes = fit_batches(model, batches, default_batches)
        seq_lens = seq_lens or [fed_seq_len(model.proto)]
    shapes = [(b, t) for b in batches for t in seq_lens]
    # before any runtime library loads (they write files of their own): a shape the model
    # cannot be fed is refused here too; every runtime asked for counts, available here or not
    check_memory([model], shapes, len(requested_runtimes(runtimes)), "bench", fed)
    factories, unavailable = pick_runtimes(runtimes)
    threads_list = resolve_threads(threads_list)
    described = (fed.describe() if fed is not None
                 else describe_random(model.proto, shapes, seed=seed))
    if fed is not None:
        # this process feeds what it read; a worker process reads the file itself
        inputs = fed if settings.processes == 1 else inputs
        del fed
    (result,), load = measure_sweep([model], factories, shapes, threads_list, settings,
                                    calibrate=calibrate, display=display, clock=clock,
                                    ort_options=ort_options,
                                    inputs=inputs, seed=seed)
    result.skipped[:0] = unavailable
    if not result.measurements:
        raise LSTMBenchError(f"{model_path}: no runtime could run the model: " + "; ".join(
            f"{s['runtime']}: {s['reason']}" for s in result.skipped))
    info = {**model.info(), "inputs_fed": described}
    report = finish_document(result, model=info, threads_list=threads_list, load=load,
                             verify=verify)
    report.notes[:0] = notes
    return report


def run_ab(base_path, new_path, *, runtimes: str | None = "ort-cpu", batches=None,
           seq_lens=None, threads_list=(None,), settings=None, calibrate: bool = False,
           display=None, clock=time.perf_counter_ns,
           ort_options=None, seed: int = 0) -> tuple:
    """Both models measured in one rotation (interleaved blocks, same processes): their two
    ``BenchReport``s (base, new). ``batches`` as in ``run_bench`` (default: 1), the same
    for both models: the new one must take the sizes the base one is measured at; so with
    ``seq_lens`` (None: the base model's length)."""
    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.feeds import describe_random, fed_seq_len

    models = [BenchModel(base_path), BenchModel(new_path)]
    batches, notes = fit_batches(models[0], batches, (1,))
    fit_batches(models[1], batches, None)  # refuses what the new model cannot take
    seq_lens = seq_lens or [fed_seq_len(models[0].proto)]
    shapes = [(b, t) for b in batches for t in seq_lens]
    check_memory(models, shapes, len(requested_runtimes(runtimes)), "compare")
    factories, unavailable = pick_runtimes(runtimes)
    threads_list = resolve_threads(threads_list)
    described = [describe_random(m.proto, shapes, seed=seed) for m in models]
    results, load = measure_sweep(models, factories, shapes,
                                  threads_list, settings or Settings(), calibrate=calibrate,
                                  display=display, clock=clock,
                                  ort_options=ort_options, seed=seed)
    docs = []
    for model, result, fed in zip(models, results, described):
        result.skipped[:0] = unavailable
        if not result.measurements:
            raise LSTMBenchError(f"{model.path}: no runtime could run the model: " + "; ".join(
                f"{s['runtime']}: {s['reason']}" for s in result.skipped))
        docs.append(finish_document(result, model={**model.info(), "inputs_fed": fed},
                                    threads_list=threads_list, load=load))
        docs[-1].notes[:0] = notes
    return docs[0], docs[1]
