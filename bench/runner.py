"""A benchmark run from the command line's point of view: parse the lists, pick the runtimes,
calibrate the machine's peak, sweep (in this process or in worker processes, pyperf-style)
with a live display, and build the report document."""

from __future__ import annotations

import time

from lstm_bench.errors import LSTMBenchError


def pick_runtimes(text) -> tuple[dict, list[dict]]:
    """(name -> factory of the available ones, [{"runtime", "reason"} for the others]).

    ``text``: names as ``lstm_bench.options.runtime_names`` parses them (a list, or None for
    every registered runtime), or the same as one comma string; unknown names are an error.
    """
    from lstm_bench.options import runtime_names
    from lstm_bench.runtimes.registry import RUNTIMES

    names = runtime_names(text) if isinstance(text, str) else text
    if names is None:
        names = list(RUNTIMES)
    else:
        if not names:
            raise LSTMBenchError("--runtimes is empty; name some of: " + ", ".join(RUNTIMES))
        unknown = [n for n in names if n not in RUNTIMES]
        if unknown:
            raise LSTMBenchError(f"--runtimes: unknown {', '.join(unknown)}; known: "
                                 f"{', '.join(RUNTIMES)}")
    chosen, skipped = {}, []
    for name in dict.fromkeys(names):
        reason = RUNTIMES[name]().available()
        if reason:
            skipped.append({"runtime": name, "threads": None, "reason": reason})
        else:
            chosen[name] = RUNTIMES[name]
    if not chosen:
        raise LSTMBenchError("no runtime can run here: " + "; ".join(
            f"{s['runtime']}: {s['reason']}" for s in skipped))
    return chosen, skipped


class LiveDisplay:
    """A progress line and a table of the results so far, on stderr, while a sweep runs."""

    def __init__(self, total: int, console=None, enabled: bool = True):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.total = total
        self.rows: list = []
        self.live = None

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                                 console=self.console)
        self.task = self.progress.add_task("benchmark", total=self.total)
        self.group = Group(self.progress)
        self.live = Live(self.group, console=self.console, refresh_per_second=8, transient=True)
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def __call__(self, kind: str, **info) -> None:
        if self.live is None:
            return
        from rich.console import Group

        from lstm_bench.bench.terminal import results_table

        if kind == "open":
            self.progress.update(self.task, description=f"opening {info['runtime']} "
                                 f"({info['threads']} threads)")
        elif kind == "skip":
            self.progress.advance(self.task)
            from rich.markup import escape

            self.console.print(f"[dim]skipped {info['runtime']}: {escape(info['reason'])}[/dim]",
                               highlight=False)
        elif kind == "opened":
            self.progress.advance(self.task)
        elif kind == "timing":
            self.progress.update(self.task, description=f"timing {info['cells']} cells, "
                                 f"{info['threads']} threads")
        elif kind == "process":
            self.progress.update(self.task, description=f"worker process {info['process'] + 1}"
                                 f" of {info['processes']}")
        elif kind == "result":
            self.rows.append(info["measurement"])
            self.live.update(Group(self.progress, results_table(self.rows[-12:],
                                                                self.console.width)))
        elif kind == "done":
            self.progress.advance(self.task)


def fed_inputs(model, inputs):
    """The feeds of an .npz (``--inputs``), checked against the model, as verify reads them."""
    from lstm_bench.runtimes.inputs import load_inputs

    return load_inputs(inputs, model.proto)


def _subject(model, inputs=None):
    """A harness Subject of a BenchModel, or of a path (read here: in a worker process); with
    ``inputs`` (an .npz), every shape gets its feeds."""
    from lstm_bench.bench.harness import Subject
    from lstm_bench.bench.model import BenchModel

    if not isinstance(model, BenchModel):
        model = BenchModel(model)
    feeds_for = model.feeds
    if inputs is not None:
        fed = fed_inputs(model, inputs)
        feeds_for = lambda batch, seq_len, seed=0: fed.feeds  # noqa: E731
    return Subject(model.model, feeds_for, model.flops)


def measure_models(models: list, factories: dict, shapes, threads_list, settings, *,
                   peak: float | None, process: int = 0, origin: int | None = None,
                   clock=time.perf_counter_ns, on_event=None, ort_options=None,
                   inputs=None) -> list:
    """``harness.sweep`` of these models (BenchModels, or paths) and runtimes (name ->
    factory); one SweepResult per model. This is what each worker process runs."""
    from lstm_bench.bench.harness import sweep

    subjects = [_subject(m, inputs) for m in models]
    return sweep(subjects, factories, shapes, threads_list, settings,
                 clock=clock, peak_gflops=peak, on_event=on_event, process=process,
                 origin=origin, ort_options=ort_options)


def _worker(job: dict) -> list[dict]:
    """Entry point of a worker process: measure, and return plain rows (JSON-able data)."""
    from lstm_bench.bench.harness import Settings
    from lstm_bench.runtimes.registry import RUNTIMES

    results = measure_models(job["paths"], {n: RUNTIMES[n] for n in job["names"]},
                             [tuple(s) for s in job["shapes"]],
                             job["threads_list"], Settings(**job["settings"]), peak=job["peak"],
                             process=job["process"], origin=job["origin"],
                             ort_options=job["ort_options"], inputs=job["inputs"])
    return [{"rows": [m.as_dict() for m in r.measurements], "skipped": r.skipped}
            for r in results]


def worker_settings(settings, processes: int):
    """Each of N workers takes 1/N of the span, the blocks and the minimum time."""
    from dataclasses import replace

    return replace(settings, span=settings.span / processes,
                   blocks=max(1, -(-settings.blocks // processes)),
                   min_time=settings.min_time / processes,
                   min_reps=max(1, -(-settings.min_reps // processes)),
                   max_reps=max(1, settings.max_reps // processes),
                   max_time=settings.max_time / processes)


def measure_in_processes(models, names: list[str], shapes, threads_list, settings, *, peak,
                         on_event=None, ort_options=None, inputs=None) -> list:
    """The sweep in ``settings.processes`` fresh worker processes, one after another (as
    pyperf does: in parallel they would compete for the cores), each with its share of the
    span; a cell's blocks from every process are merged into one Measurement. A worker makes
    its runtimes from the registry, by ``names``."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    from lstm_bench.bench.harness import SweepResult
    from lstm_bench.bench.stats import Measurement, merge
    from lstm_bench.interrupts import held

    notify = on_event or (lambda kind, **info: None)
    processes = settings.processes
    job = {"paths": [str(m.path) for m in models], "names": list(names),
           "shapes": [list(s) for s in shapes], "threads_list": list(threads_list),
           "settings": worker_settings(settings, processes).as_dict(), "peak": peak,
           "ort_options": ort_options, "inputs": None if inputs is None else str(inputs),
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
                m = Measurement.from_dict(row, peak_gflops=peak if row["device"] == "cpu"
                                          else None)
                by_key.setdefault(m.key(), []).append(m)
        skipped = {(s["runtime"], s["threads"]): s for part in parts for s in part[i]["skipped"]}
        results.append(SweepResult([merge(ms) for ms in by_key.values()], list(skipped.values()),
                                   settings, peak))
    return results


def measure_sweep(models, factories: dict, shapes, threads_list, settings, *, calibrate: bool,
                  show_progress: bool, console=None, clock=time.perf_counter_ns,
                  ort_options=None, inputs=None) -> tuple:
    """(one SweepResult per model (BenchModels), the load averages before and after).

    ``factories``: runtime name -> factory; in worker processes (``settings.processes`` > 1)
    the registry's runtimes of those names are made instead."""
    from lstm_bench.bench.machine import cpu_snapshot, load_average, other_cores, peak_gflops

    load_before, cpu_before = load_average(), cpu_snapshot()
    peak = peak_gflops() if calibrate else None
    in_process = settings.processes == 1
    total = (len(threads_list) * len(factories) * len(models)) if in_process else settings.processes
    with LiveDisplay(total, console=console, enabled=show_progress) as display:
        if in_process:
            results = measure_models(models, factories, shapes, threads_list, settings, peak=peak,
                                     clock=clock, on_event=display, ort_options=ort_options,
                                     inputs=inputs)
        else:
            results = measure_in_processes(models, list(factories), shapes, threads_list, settings,
                                           peak=peak, on_event=display, ort_options=ort_options,
                                           inputs=inputs)
    return results, {"before": load_before, "after": load_average(),
                     "other_cores": other_cores(cpu_before, cpu_snapshot())}


def finish_document(result, *, model: dict, threads_list, load, verify=None):
    """The ``bench.report.BenchReport`` (``model``: its info), with the load averages and a
    note when the machine was busy."""
    from lstm_bench.bench.machine import busy_warning, machine_info
    from lstm_bench.bench.report import build_document

    machine = machine_info(threads_list)
    machine["load_average"] = load
    report = build_document(result, model=model, machine=machine, verify=verify)
    busy = busy_warning(load["before"], load["after"], max(threads_list), load.get("other_cores"))
    if busy:
        report.notes.append(busy)
    return report


def resolve_threads(threads_list) -> list[int]:
    from lstm_bench.bench.machine import check_threads, default_threads

    return check_threads([t or default_threads() for t in threads_list])


def run_bench(model_path, *, runtimes: str | None = None, batches=(1,), seq_lens=(100,),
              threads_list=(None,), settings=None, verify=None,
              calibrate: bool = True, show_progress: bool = True, console=None,
              clock=time.perf_counter_ns, ort_options=None, inputs=None):
    """Measure a model and return its ``bench.report.BenchReport`` (``verify``: a
    ``VerifySummary`` to show beside the timings, or None).

    ``inputs``: an .npz of feeds (as for verify); its shape replaces ``batches`` x ``seq_lens``.
    """
    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.model import BenchModel

    model = BenchModel(model_path)
    fed = None
    if inputs is not None:
        fed = fed_inputs(model, inputs)
        batches, seq_lens = [fed.batch], [fed.seq_len or 1]
    factories, unavailable = pick_runtimes(runtimes)
    threads_list = resolve_threads(threads_list)
    shapes = [(b, t) for b in batches for t in seq_lens]
    (result,), load = measure_sweep([model], factories, shapes, threads_list,
                                    settings or Settings(), calibrate=calibrate,
                                    show_progress=show_progress, console=console, clock=clock,
                                    ort_options=ort_options, inputs=inputs)
    result.skipped[:0] = unavailable
    if not result.measurements:
        raise LSTMBenchError(f"{model_path}: no runtime could run the model: " + "; ".join(
            f"{s['runtime']}: {s['reason']}" for s in result.skipped))
    info = model.info()
    if fed is not None:
        info["inputs_fed"] = fed.describe()
    return finish_document(result, model=info, threads_list=threads_list, load=load,
                           verify=verify)


def run_ab(base_path, new_path, *, runtimes: str | None = "ort-cpu", batches=(1,),
           seq_lens=(100,), threads_list=(None,), settings=None, calibrate: bool = False,
           show_progress: bool = True, console=None, clock=time.perf_counter_ns,
           ort_options=None) -> tuple:
    """Both models measured in one rotation (interleaved blocks, same processes): their two
    ``BenchReport``s (base, new)."""
    from lstm_bench.bench.harness import Settings
    from lstm_bench.bench.model import BenchModel

    models = [BenchModel(base_path), BenchModel(new_path)]
    factories, unavailable = pick_runtimes(runtimes)
    threads_list = resolve_threads(threads_list)
    shapes = [(b, t) for b in batches for t in seq_lens]
    results, load = measure_sweep(models, factories, shapes,
                                  threads_list, settings or Settings(), calibrate=calibrate,
                                  show_progress=show_progress, console=console, clock=clock,
                                  ort_options=ort_options)
    docs = []
    for model, result in zip(models, results):
        result.skipped[:0] = unavailable
        if not result.measurements:
            raise LSTMBenchError(f"{model.path}: no runtime could run the model: " + "; ".join(
                f"{s['runtime']}: {s['reason']}" for s in result.skipped))
        docs.append(finish_document(result, model=model.info(), threads_list=threads_list,
                                    load=load))
    return docs[0], docs[1]
