"""How faithful the harness is: its ort-cpu median beside a bare ``InferenceSession.run`` loop,
and its own cost per timed call.

    python -m tools.fidelity [--model M.onnx] [--batch 1,8] [--seq-len 100]
                                        [--threads 1,2] [--ort-option K=V] [--rounds 8]
                                        [--reps 200] [--json PATH]

The harness (``bench.harness.measure`` over the registry's ort-cpu runtime, one block of
``reps`` calls a round) and a bare loop over a second session take turns, ``rounds`` times, so
drift hits both alike. The bare session is made with the ort-cpu runtime's own session code
(``runtimes.ort_cpu.session_options`` and ``create_session``, with ``--ort-option`` too) and
providers, and the options are those of ``lstm-bench bench``; the bare loop times
each call with ``perf_counter_ns`` and nothing else (no runtime wrapper, no synchronize, no
bookkeeping). Without ``--model`` the model is the seed's shape: one LSTM layer, input 1,
hidden 50.

The overhead is the median timed call of a runtime that does nothing: what the harness adds
to every sample (two clock reads, the call, ``synchronize``); the loop cost is the wall time
of the whole measurement divided by its calls (the bookkeeping between samples, not in them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstm_bench.bench.harness import Cell, Settings, measure
from lstm_bench.bench.machine import default_threads
from lstm_bench.cli.bench import add_shape_arguments, sweep_lists
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.weights import export_weights
from lstm_bench.files import write_json
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_cpu import create_session, session_options
from lstm_bench.runtimes.ort_options import parse_ort_options
from lstm_bench.runtimes.registry import get_runtime
from lstm_bench.spec import LSTMSpec, LSTMWeights


class NullRuntime:
    """A runtime that does no work: what remains of a timed call is the harness's own cost."""

    name = "null"
    device = "cpu"

    def available(self):
        return None

    def open(self, model, *, threads=None):
        pass

    def run(self, feeds):
        return {}

    def synchronize(self):
        pass

    def close(self):
        pass


def one_block(reps: int):
    """Settings for exactly one block of ``reps`` timed calls, no warm-up, no span."""
    return Settings(span=0, blocks=1, block=reps, min_time=0, min_reps=reps, max_reps=reps,
                    warmup_reps=0, warmup_time=0)


def harness_overhead(reps: int = 20_000) -> dict:
    """Median ns the harness adds per sample, and its bookkeeping per call."""
    measure([Cell(NullRuntime(), {})], one_block(reps))  # warm the code paths
    cell = Cell(NullRuntime(), {})
    start = time.perf_counter_ns()
    measure([cell], one_block(reps))
    wall = time.perf_counter_ns() - start
    return {"timed_call_overhead_ns": float(np.median(cell.samples)),
            "loop_cost_per_call_ns": wall / reps, "reps": reps}


def seed_shaped_model(folder) -> Path:
    path = Path(folder) / "seed_shape.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=1, hidden_size=50)), path)
    return path


def fidelity(model_path=None, *, batch: int = 1, seq_len: int = 100, rounds: int = 8,
             reps: int = 200, threads: int | None = None, ort_options=None) -> dict:
    """The harness's ort-cpu median against a bare loop's, in turns; figures in a dict."""
    threads = threads or default_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(model_path) if model_path else seed_shaped_model(tmp)
        feeds = Model.load(path).feeds(batch, seq_len)
        runtime = get_runtime("ort-cpu", ort_options)
        runtime.open(str(path), threads=threads)
        # the bare session: the runtime's own options and providers, nothing of its wrapper
        session = create_session("bare loop", path, runtime.providers,
                                 session_options(threads, ort_options))
        for _ in range(20):  # warm both
            runtime.run(feeds)
            session.run(None, feeds)
        harness_samples, bare_samples, bare_loop_means = [], [], []
        clock = time.perf_counter_ns
        for _ in range(rounds):
            cell = Cell(runtime, feeds)
            measure([cell], one_block(reps))
            harness_samples += cell.samples
            loop_start = clock()
            for _ in range(reps):
                start = clock()
                session.run(None, feeds)
                bare_samples.append(clock() - start)
            bare_loop_means.append((clock() - loop_start) / reps)
        runtime.close()
    harness_median = float(np.median(harness_samples)) / 1e3
    bare_median = float(np.median(bare_samples)) / 1e3
    return {
        "model": str(model_path or "seed shape (I=1, H=50)"), "batch": batch, "seq_len": seq_len,
        "threads": threads, "rounds": rounds, "reps_per_round": reps,
        "harness_median_us": harness_median, "bare_median_us": bare_median,
        "median_difference_pct": 100 * (harness_median - bare_median) / bare_median,
        "harness_mean_us": float(np.mean(harness_samples)) / 1e3,
        "bare_loop_mean_us": float(np.mean(bare_loop_means)) / 1e3,
        **harness_overhead(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fidelity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model")
    add_shape_arguments(parser)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    try:
        batches, seq_lens, threads_list = sweep_lists(args)
        ort_options = parse_ort_options(args.ort_options)
    except LSTMBenchError as exc:
        parser.error(str(exc))
    results = []
    for threads in threads_list:
        for batch in batches or (1,):
            for seq_len in seq_lens or (100,):
                f = fidelity(args.model, batch=batch, seq_len=seq_len, rounds=args.rounds,
                             reps=args.reps, threads=threads, ort_options=ort_options)
                results.append(f)
                print(f"ort-cpu b={batch} T={seq_len} threads={threads}: harness median "
                      f"{f['harness_median_us']:.2f} us, bare loop median "
                      f"{f['bare_median_us']:.2f} us ({f['median_difference_pct']:+.2f} %); "
                      f"means {f['harness_mean_us']:.2f} / {f['bare_loop_mean_us']:.2f} us; "
                      f"overhead {f['timed_call_overhead_ns']:.0f} ns in the sample, "
                      f"{f['loop_cost_per_call_ns']:.0f} ns wall per call")
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
