"""A benchmark run from the command line's point of view: parse the lists, pick the runtimes,
calibrate the machine's peak, sweep with a live display, and build the report document."""

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
    """A progress bar and a table of the results so far, on stderr, while a sweep runs."""

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
        elif kind == "shape":
            self.progress.update(self.task, description=f"timing batch {info['batch']}, "
                                 f"seq_len {info['seq_len']}, {info['threads']} threads")
        elif kind == "opened":
            self.progress.advance(self.task)
        elif kind == "result":
            self.rows.append(info["measurement"])
        elif kind == "shape_done":
            self.progress.advance(self.task)
            self.live.update(Group(self.progress, results_table(self.rows[-12:],
                                                                  self.console.width)))


def run_bench(model_path, *, runtimes: str | None = None, batches=(1,), seq_lens=(100,),
              threads_list=(None,), settings=None, verify=None,
              calibrate: bool = True, show_progress: bool = True, console=None,
              clock=time.perf_counter_ns, ort_options=None, inputs=None):
    """Measure a model and return its ``bench.report.BenchReport`` (``verify``: a
    ``VerifySummary`` to show beside the timings, or None).

    ``inputs``: an .npz of feeds (as for verify); its shape replaces ``batches`` x ``seq_lens``.
    """
    from lstm_bench.bench.harness import Settings, sweep
    from lstm_bench.bench.machine import default_threads, machine_info, peak_gflops
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.bench.report import build_document

    model = BenchModel(model_path)
    feeds_for, fed = model.feeds, None
    if inputs is not None:
        from lstm_bench.runtimes.inputs import load_inputs

        fed = load_inputs(inputs, model.proto)
        batches, seq_lens = [fed.batch], [fed.seq_len or 1]
        feeds_for = lambda batch, seq_len, seed=0: fed.feeds  # noqa: E731
    factories, unavailable = pick_runtimes(runtimes)
    threads_list = [t or default_threads() for t in threads_list]
    shapes = [(b, t) for b in batches for t in seq_lens]
    peak = peak_gflops() if calibrate else None
    total = len(threads_list) * (len(factories) + len(shapes))
    with LiveDisplay(total, console=console, enabled=show_progress) as display:
        result = sweep(model.model, factories, shapes, threads_list, feeds_for,
                       settings or Settings(), clock=clock, flops_for=model.flops,
                       peak_gflops=peak, on_event=display, ort_options=ort_options)
    result.skipped[:0] = unavailable
    if not result.measurements:
        raise LSTMBenchError(f"{model_path}: no runtime could run the model: " + "; ".join(
            f"{s['runtime']}: {s['reason']}" for s in result.skipped))
    info = model.info()
    if fed is not None:
        info["inputs_fed"] = fed.describe()
    return build_document(result, model=info, machine=machine_info(threads_list), verify=verify)
