"""How faithful the harness is: its ort-cpu median beside a bare ``InferenceSession.run`` loop,
and its own cost per timed call.

    python -m bench.fidelity [--model M.onnx] [--batch 1] [--seq-len 100] [--rounds 8]
                             [--reps 200] [--json PATH]

The harness (``bench.harness.round_robin`` over the registry's ort-cpu runtime) and a bare
loop over a second session with the same options take turns, ``rounds`` times, so drift hits
both alike. The bare loop times each call with ``perf_counter_ns`` and nothing else (no
runtime wrapper, no synchronize, no bookkeeping). Without ``--model`` the model is the seed's
shape: one LSTM layer, input 1, hidden 50, T = 100.

The overhead is the median timed call of a runtime that does nothing: what the harness adds
to every sample (two clock reads, the call, ``synchronize``); the loop cost is the wall time
of the whole round-robin divided by its calls (the bookkeeping between samples, not in them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class NullRuntime:
    """A runtime that does no work: what remains of a timed call is the harness's own cost."""

    name = "null"
    device = "cpu"

    def available(self):
        return None

    def open(self, model_path, *, threads=None):
        pass

    def run(self, feeds):
        return {}

    def synchronize(self):
        pass

    def close(self):
        pass


def harness_overhead(reps: int = 20_000) -> dict:
    """Median ns the harness adds per sample, and its bookkeeping per call."""
    from lstm_bench.bench.harness import Settings, round_robin

    settings = Settings(min_time=0, min_reps=reps, max_reps=reps, block=1)
    round_robin([NullRuntime()], {}, settings, timed=False)
    start = time.perf_counter_ns()
    (samples,) = round_robin([NullRuntime()], {}, settings)
    wall = time.perf_counter_ns() - start
    return {"timed_call_overhead_ns": float(np.median(samples)),
            "loop_cost_per_call_ns": wall / reps, "reps": reps}


def seed_shaped_model(folder) -> Path:
    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.spec import LSTMSpec, LSTMWeights

    path = Path(folder) / "seed_shape.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=1, hidden_size=50)), path)
    return path


def fidelity(model_path=None, *, batch: int = 1, seq_len: int = 100, rounds: int = 8,
             reps: int = 200, threads: int | None = None) -> dict:
    """The harness's ort-cpu median against a bare loop's, in turns; figures in a dict."""
    import onnxruntime

    from lstm_bench.bench.harness import Settings, round_robin
    from lstm_bench.bench.machine import default_threads
    from lstm_bench.bench.model import BenchModel
    from lstm_bench.runtimes.registry import get_runtime

    threads = threads or default_threads()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(model_path) if model_path else seed_shaped_model(tmp)
        feeds = BenchModel(path).feeds(batch, seq_len)
        runtime = get_runtime("ort-cpu")
        runtime.open(str(path), threads=threads)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
        settings = Settings(min_time=0, min_reps=reps, max_reps=reps, block=1)
        for _ in range(20):  # warm both
            runtime.run(feeds)
            session.run(None, feeds)
        harness_samples, bare_samples, bare_loop_means = [], [], []
        clock = time.perf_counter_ns
        for _ in range(rounds):
            harness_samples += round_robin([runtime], feeds, settings)[0]
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
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    figures = fidelity(args.model, batch=args.batch, seq_len=args.seq_len, rounds=args.rounds,
                       reps=args.reps, threads=args.threads)
    print(f"ort-cpu b={figures['batch']} T={figures['seq_len']} threads={figures['threads']}: "
          f"harness median {figures['harness_median_us']:.2f} us, bare loop median "
          f"{figures['bare_median_us']:.2f} us ({figures['median_difference_pct']:+.2f} %); "
          f"means {figures['harness_mean_us']:.2f} / {figures['bare_loop_mean_us']:.2f} us")
    print(f"harness overhead per timed call: {figures['timed_call_overhead_ns']:.0f} ns in the "
          f"sample, {figures['loop_cost_per_call_ns']:.0f} ns wall per call")
    if args.json:
        from lstm_bench.files import write_json

        write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
