"""torch-cpu against the torch program it was exported from: how close the runtime that runs an
ONNX file in torch (``runtimes.onnx_torch``) comes to the native ``nn.Module``.

    python -m tools.torch_native [--rounds 30] [--reps 50] [--threads 1] [--json PATH]

Two models: the seed (the shipped checkpoint exported as ``lstm-bench run`` does, B=1, T=100,
LSTM(50) -> Dense(1) -> sigmoid), and a 2-layer model with an embedding
(``nn.Embedding(1000, 64) -> nn.LSTM(64, 128, num_layers=2) -> nn.Linear(128, 10)`` on the last
step, B=1, T=100 token ids), exported with ``torch.onnx.export(dynamo=False)``. For each, the
native module under ``torch.inference_mode()``, the torch-cpu runtime and ort-cpu (for scale)
take turns in one process: ``rounds`` rounds, each a block of ``reps`` calls per contender in
turn, so the machine's phases hit all alike. A block's figure is its median call; the report
gives the median of the blocks and torch-cpu / native as the median of the per-round ratios.
Not a test: the figures depend on the machine (``lscpu`` says which).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lstm_bench.bench.pipeline import export_seed
from lstm_bench.files import write_json
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import get_runtime


def _embedding_model(folder: Path):
    """(the 2-layer embedding module, its ONNX file's Model)."""
    import torch

    from lstm_bench.exporters.torch_quiet import quiet

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 64)
            self.lstm = torch.nn.LSTM(64, 128, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(128, 10)

        def forward(self, tokens):
            y, _ = self.lstm(self.embed(tokens))
            return self.head(y[:, -1])

    torch.manual_seed(0)
    module = Tagger().eval()
    path = folder / "embedding.onnx"
    example = torch.randint(0, 1000, (2, 30))
    with quiet():
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["tokens"],
                          output_names=["logits"],
                          dynamic_axes={"tokens": {0: "batch", 1: "seq"}})
    return module, Model.load(path)


def _seed_model(folder: Path):
    from lstm_bench import seed

    model, _ = export_seed(folder)
    module, _ = seed.load_seed_model()
    return module.eval(), model


def _block(call, reps: int) -> float:
    """Median ns of ``reps`` calls."""
    times = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times))


def compare(name: str, module, model: Model, feeds: dict, args) -> dict:
    import torch

    runtimes = {n: get_runtime(n) for n in ("torch-cpu", "ort-cpu")}
    for runtime in runtimes.values():
        runtime.open(model, threads=args.threads)
    torch.set_num_threads(args.threads)
    inputs = [torch.from_numpy(v) for v in feeds.values()]

    def native():
        with torch.inference_mode():
            module(*inputs)

    calls = {"native": native, **{n: (lambda r=r: r.run(feeds)) for n, r in runtimes.items()}}
    got, want = runtimes["torch-cpu"].run(feeds), None
    with torch.inference_mode():
        want = module(*inputs).numpy()
    error = float(np.max(np.abs(next(iter(got.values())) - want)))
    for call in calls.values():  # warm-up
        _block(call, args.reps)
    blocks = {n: [] for n in calls}
    for _ in range(args.rounds):
        for n, call in calls.items():
            blocks[n].append(_block(call, args.reps))
    for runtime in runtimes.values():
        runtime.close()
    ratios = [t / n for t, n in zip(blocks["torch-cpu"], blocks["native"])]
    return {"model": name, "shape": {k: list(v.shape) for k, v in feeds.items()},
            "max_abs_error_vs_native": error,
            "median_us": {n: statistics.median(b) / 1e3 for n, b in blocks.items()},
            "torch_cpu_over_native": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.torch_native", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        module, model = _seed_model(Path(folder))
        x = np.random.default_rng(0).standard_normal((1, args.seq_len, 1)).astype(np.float32)
        results.append(compare("seed", module, model, {model.proto.graph.input[0].name: x},
                               args))
        module, model = _embedding_model(Path(folder))
        tokens = np.random.default_rng(0).integers(0, 1000, (1, args.seq_len)).astype(np.int64)
        results.append(compare("embedding-2-layer", module, model, {"tokens": tokens}, args))
    for r in results:
        print(f"{r['model']:<18} native {r['median_us']['native']:8.1f} us   torch-cpu "
              f"{r['median_us']['torch-cpu']:8.1f} us   ort-cpu {r['median_us']['ort-cpu']:8.1f}"
              f" us   torch-cpu/native {r['torch_cpu_over_native']:.3f} "
              f"({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})   "
              f"max |diff| {r['max_abs_error_vs_native']:.1e}")
    if args.json:
        write_json(args.json, {"machine": platform.processor() or platform.machine(),
                               "threads": args.threads, "rounds": args.rounds,
                               "reps": args.reps, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
