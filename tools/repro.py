"""Reproducibility and gate checks, measured the way a user runs the commands.

    python -m tools.repro invocations [--runs 6] [--model M.onnx] [-- BENCH OPTIONS]
    python -m tools.repro false-alarms [--pairs 10] [--mode live|reports]
    python -m tools.repro detect [--pairs 3] [--hidden 50,57]

``invocations`` runs ``lstm-bench bench MODEL --runtimes ort-cpu --batch 1 --seq-len 100``
``--runs`` times, each in a fresh process, and prints each median and the max/min ratio of
the medians (the goal of issue 10: at most 1.10). ``false-alarms`` compares identical code
with itself ``--pairs`` times and counts the regressions `compare` reports (goal: 0): live
(``compare A.onnx A.onnx``, both in one rotation) or from reports (``--pairs + 1`` bench runs,
each compared with the next). ``detect`` makes two seed-shaped models whose hidden sizes
make the second cost about 20 % more and runs ``compare BASE.onnx NEW.onnx`` ``--pairs`` times:
each should exit 1. Without ``--model`` the model is the seed's shape (one LSTM layer,
input 1, hidden 50, random weights with a fixed seed). Extra arguments after ``--`` go to
every ``lstm-bench`` call (e.g. ``-- --span 20``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstm_bench.exporters.weights import export_weights
from lstm_bench.files import write_text
from lstm_bench.spec import LSTMSpec, LSTMWeights


def lstm_bench(*argv: str) -> subprocess.CompletedProcess:
    """One `lstm-bench` invocation in a fresh process, as a user types it."""
    return subprocess.run([sys.executable, "-m", "lstm_bench.cli", *argv], capture_output=True,
                          text=True)


def seed_shaped(folder, hidden: int = 50) -> Path:
    path = Path(folder) / f"seed_shape_h{hidden}.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(input_size=1, hidden_size=hidden)), path)
    return path


def _check(result: subprocess.CompletedProcess, allowed=(0,)) -> None:
    if result.returncode not in allowed:
        sys.exit(f"lstm-bench exited {result.returncode}: {result.stderr.strip()[-500:]}")


def _bench(model, out: Path, extra) -> dict:
    result = lstm_bench("bench", str(model), "--runtimes", "ort-cpu", "--batch", "1",
                        "--seq-len", "100", "--quiet", "--no-history", "--json", str(out), *extra)
    _check(result)
    return json.loads(out.read_text())


def invocations(args, folder: Path) -> dict:
    model = args.model or seed_shaped(folder)
    medians, rows = [], []
    for i in range(args.runs):
        started = time.perf_counter()
        doc = _bench(model, folder / f"run{i}.json", args.extra)
        (row,) = doc["results"]
        medians.append(row["latency_ms"]["median"])
        phases = row.get("phases")
        rows.append({"median_ms": medians[-1], "ci95": row["latency_ms"]["median_ci95"],
                     "blocks": row.get("block_count"), "phases": phases,
                     "load_average": doc["machine"].get("load_average"),
                     "wall_s": time.perf_counter() - started})
        ci = row["latency_ms"]["median_ci95"]
        print(f"run {i + 1}: median {medians[-1] * 1e3:.1f} us over {row.get('block_count')} "
              f"blocks, CI {[round(c * 1e3, 1) for c in ci] if ci else '-'}"
              + (f", phases fast {phases['fast_ms'] * 1e3:.1f} us ({phases['fast_share']:.0%})"
                 f" / slow {phases['slow_ms'] * 1e3:.1f} us" if phases else "")
              + f" ({rows[-1]['wall_s']:.1f} s)", flush=True)
    ratio = max(medians) / min(medians)
    print(f"max/min of the {args.runs} medians: {ratio:.3f} (goal <= 1.10)")
    return {"runs": rows, "max_over_min": ratio}


def _compare(label: str, base, new, out: Path, extra=()) -> dict:
    """One `lstm-bench compare` (of two reports, or two models live), printed and returned."""
    r = lstm_bench("compare", str(base), str(new), "--quiet", "--json", str(out), *extra)
    _check(r, (0, 1))
    (change,) = json.loads(out.read_text())["changes"]
    print(f"{label}: exit {r.returncode}, change {change['change_pct']:+.1f} %, p(slower) "
          f"{change['p_slower']:.2g}", flush=True)
    return {"exit": r.returncode, "change_pct": change["change_pct"],
            "p_slower": change["p_slower"]}


def false_alarms(args, folder: Path) -> dict:
    model = args.model or seed_shaped(folder)
    results = []
    if args.mode == "live":
        for i in range(args.pairs):
            results.append(_compare(f"pair {i + 1}", model, model, folder / f"pair{i}.json",
                                    args.extra))
    else:
        reports = []
        for i in range(args.pairs + 1):
            reports.append(folder / f"bench{i}.json")
            _bench(model, reports[-1], args.extra)
            if i:
                results.append(_compare(f"pair {i}", reports[-2], reports[-1],
                                        folder / f"pair{i}.json"))
    alarms = sum(r["exit"] == 1 for r in results)
    print(f"false alarms ({args.mode}): {alarms} of {len(results)} identical pairs (goal 0)")
    return {"mode": args.mode, "pairs": results, "false_alarms": alarms}


def detect(args, folder: Path) -> dict:
    base_h, new_h = (int(h) for h in args.hidden.split(","))
    base, new = seed_shaped(folder, base_h), seed_shaped(folder, new_h)
    results = [_compare(f"H={base_h} vs H={new_h}, try {i + 1}", base, new,
                        folder / f"ab{i}.json", args.extra) for i in range(args.pairs)]
    caught = sum(r["exit"] == 1 for r in results)
    print(f"slowdown caught in {caught} of {len(results)} (goal: all)")
    return {"hidden": [base_h, new_h], "tries": results, "caught": caught}


def split_extra(argv) -> tuple[list, list]:
    """(this tool's arguments, the bench options after ``--``)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    return argv[:argv.index("--")], argv[argv.index("--") + 1:]


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m tools.repro",
                                     description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)
    p = sub.add_parser("invocations", help="max/min of the medians of identical bench runs")
    p.add_argument("--runs", type=int, default=6)
    p = sub.add_parser("false-alarms", help="regressions reported for identical code")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--mode", choices=("live", "reports"), default="live")
    p = sub.add_parser("detect", help="a real ~20 %% slowdown, caught or not")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--hidden", default="50,57",
                   help="hidden sizes of BASE and NEW (default 50,57: +10 to +25 %% at batch 1 measured here)")
    for p in sub.choices.values():
        p.add_argument("--model", help="the model (default: the seed's shape)")
        p.add_argument("--json", metavar="PATH", help="write the figures")
    args = parser.parse_args(argv)
    args.extra = extra
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        check = {"invocations": invocations, "false-alarms": false_alarms, "detect": detect}
        figures = check[args.check](args, Path(tmp))
    figures["wall_s"] = time.perf_counter() - started
    print(f"took {figures['wall_s']:.0f} s")
    if args.json:
        write_text(args.json, json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
