"""The saved-report gate measured: false alarms on identical code, idle and busy, and the
detection of real slowdowns (issue 21). A benchmark, not a test: it takes minutes.

    python -m tools.gate_false_alarms [--pairs 20] [--busy-pairs 10] [--slow-pairs 10]
        [--runtimes ort-cpu,numpy] [--batch 1,8] [--hidden 50,56,57] [--json PATH]
        [--db PATH|URL] [-- BENCH OPTIONS]

Each pair is what a CI pipeline does: two `lstm-bench bench MODEL --json` invocations (each a
fresh process, with the default worker processes), then `lstm-bench compare BASE.json
NEW.json`. Identical pairs bench the same model twice, on an idle machine (``--pairs``) and
with every core kept busy while NEW is measured (``--busy-pairs``: this script starts one
CPU-bound process per usable core itself and ends them after); any exit 1 is a false alarm,
and "inconclusive: busy machine" rows are counted apart. Slow pairs bench a seed-shaped model
(one LSTM layer, input 1, T = 100, fixed random weights) of hidden size 50 against the same of
a larger hidden size (``--hidden 50,56,57``: ort-cpu +10 % and +20 % on a 2-core AMD EPYC,
measured live with ``lstm-bench compare``; numpy's rows change less, +1 to +9 %: the cost of
a hidden size is not smooth in every kernel, and the change each pair showed is printed per
row); exit 1 is a detection. Options after ``--`` go to every `bench` (e.g.
``-- --processes 5``). Run it on an otherwise idle machine: other work is the busy case.

``--rejudge PATH|URL`` measures nothing: it judges the pairs such a database recorded again,
with this lstm-bench's compare (after a change of its rules).

``--db PATH|URL`` records every bench into that history database instead of none, a named
series per kind: ``identical-idle`` and ``identical-busy`` (runs of one commit and model),
and ``step-h50-h56`` (one per slower model) where the slow pairs then bench every BASE before
every NEW, so that the series holds one real step; ``python -m tools.changepoints --db PATH``
scores history's change points on them (docs/history.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstm_bench.bench.gate import busy_cores
from lstm_bench.bench.machine import usable_cores
from lstm_bench.files import write_text
from tools.repro import lstm_bench, seed_shaped, split_extra

BUSY_LOOP = "while True: pass"


def bench(model, out: Path, args, name: str | None = None) -> float:
    """One `lstm-bench bench` invocation; its wall time in seconds. With ``--db``, recorded in
    the series ``name``."""
    started = time.perf_counter()
    history = ["--db", args.db, "--series", name] if args.db else ["--no-history"]
    result = lstm_bench("bench", str(model), "--runtimes", args.runtimes, "--batch", args.batch,
                        "--seq-len", "100", "--quiet", *history, "--json", str(out),
                        *args.extra)
    if result.returncode != 0:
        sys.exit(f"lstm-bench bench exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def busy_load(count: int) -> list[subprocess.Popen]:
    """``count`` CPU-bound processes (a Python busy loop each), started now."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]


def end(processes: list[subprocess.Popen]) -> None:
    for process in processes:  # only the ones this script started, by their handle
        process.terminate()
    for process in processes:
        process.wait()


def pair(label: str, models, folder: Path, args, busy: bool = False,
         name: str | None = None, measured=None) -> dict:
    """Bench BASE, bench NEW (under load when ``busy``), compare the two reports; or compare
    the two ``measured`` already: (BASE report, NEW report, their bench wall times)."""
    base, new, verdicts = folder / "base.json", folder / "new.json", folder / "compare.json"
    if measured:
        base, new, walls = measured
    else:
        walls = [bench(models[0], base, args, name)]
        load = busy_load(usable_cores()) if busy else []
        try:
            walls.append(bench(models[1], new, args, name))
        finally:
            end(load)
    result = lstm_bench("compare", str(base), str(new), "--allow-different-models",
                        "--json", str(verdicts))
    if result.returncode not in (0, 1):
        sys.exit(f"lstm-bench compare exited {result.returncode}: {result.stderr.strip()}")
    changes = json.loads(verdicts.read_text())["changes"]
    # what the reports themselves recorded: an "idle" pair on a machine others were using
    # is not an idle pair
    taken = [busy_cores(json.loads(path.read_text())) for path in (base, new)]
    rows = [{"row": f"{c['key'][0]} b={c['key'][1]}", "change_pct": c["change_pct"],
             "median_change_pct": c.get("median_change_pct"), "speed_pct": c.get("speed_pct"),
             "low_pct": c.get("low_pct"), "high_pct": c.get("high_pct"),
             "verdict": c["verdict"], "spread": c.get("spread")} for c in changes]
    flagged = "".join(f" ({side} busy: others took {c:.2f} cores)" for side, c
                      in zip(("BASE", "NEW"), taken) if c)
    print(f"{label}: exit {result.returncode}, bench {walls[0]:.0f} s + {walls[1]:.0f} s"
          f"{flagged}; "
          + "; ".join(f"{r['row']} {r['change_pct']:+.1f} % "
                      f"[{r['low_pct']:+.1f}, {r['high_pct']:+.1f}] {r['verdict']}"
                      for r in rows) + machine_text(rows), flush=True)
    return {"exit": result.returncode, "bench_wall_s": walls, "rows": rows,
            "busy_cores": taken}


def machine_text(rows) -> str:
    shifts = {r["speed_pct"] for r in rows if r.get("speed_pct") is not None}
    return f"; machine {max(shifts, key=abs):+.1f} %" if shifts else ""


def series(kind: str, count: int, models, folder: Path, args, busy=False,
           name: str | None = None) -> dict:
    measured = [None] * count
    if args.db and models[0] != models[1]:  # one step in the recorded series
        reports = [(folder / f"base-{i}.json", folder / f"new-{i}.json") for i in range(count)]
        walls = [[bench(models[0], b, args, name) for b, _ in reports],
                 [bench(models[1], n, args, name) for _, n in reports]]
        measured = [(*r, list(w)) for r, w in zip(reports, zip(*walls))]
    results = [pair(f"{kind} {i + 1}/{count}", models, folder, args, busy, name, measured[i])
               for i in range(count)]
    rows = [r for p in results for r in p["rows"]]
    return {"pairs": results, "failed": sum(p["exit"] == 1 for p in results),
            "rows": len(rows), "rows_regressed": sum(r["verdict"] == "regression" for r in rows),
            "rows_inconclusive": sum(r["verdict"].startswith("inconclusive") for r in rows),
            "pairs_inconclusive": sum(p["exit"] == 0 and any(
                r["verdict"].startswith("inconclusive") for r in p["rows"]) for p in results),
            "pairs_recorded_busy": sum(any(p["busy_cores"]) for p in results)}


def rejudge(db) -> dict:
    """The pairs a ``--db`` run recorded, judged again by this lstm-bench's compare (a rule
    changed since, or another threshold): each identical series in consecutive pairs, each
    step series as every BASE against every NEW in order, as the run paired them."""
    from lstm_bench.bench.compare import compare_reports
    from lstm_bench.bench.history import read_history
    from lstm_bench.bench.report import SCHEMA

    docs: dict = {}
    for c in read_history(db):
        doc = docs.setdefault(c["run_id"], (c["series"], {
            "schema": SCHEMA, "model": {"path": c["model_path"], "sha256": c["model_sha256"]},
            "machine": json.loads(c["machine"] or "{}"), "results": []}))[1]
        doc["results"].append(json.loads(c["row"]))
    by_series: dict = {}
    for run_id in sorted(docs):
        by_series.setdefault(docs[run_id][0], []).append(docs[run_id][1])
    figures = {}
    for name, runs in by_series.items():
        half = len(runs) // 2
        pairs = (list(zip(runs[0::2], runs[1::2])) if name.startswith("identical")
                 else list(zip(runs[:half], runs[half:])))
        verdicts = [[c.verdict for c in compare_reports(a, b, allow_different_models=True)]
                    for a, b in pairs]
        figures[name] = {
            "pairs": len(pairs), "failed": sum("regression" in v for v in verdicts),
            "pairs_inconclusive": sum("regression" not in v and any(
                x.startswith("inconclusive") for x in v) for v in verdicts),
            "rows": sum(map(len, verdicts)),
            "rows_inconclusive": sum(x.startswith("inconclusive") for v in verdicts for x in v)}
        f = figures[name]
        print(f"{name}: exit 1 in {f['failed']} of {f['pairs']} pairs; inconclusive (not "
              f"failed) {f['pairs_inconclusive']} pairs, {f['rows_inconclusive']} of "
              f"{f['rows']} rows")
    return figures


def main(argv=None) -> int:
    argv, extra = split_extra(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m tools.gate_false_alarms",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="identical pairs, idle")
    parser.add_argument("--busy-pairs", type=int, default=10,
                        help="identical pairs, every core busy while NEW is measured")
    parser.add_argument("--slow-pairs", type=int, default=10, help="pairs per slower model")
    parser.add_argument("--runtimes", default="ort-cpu,numpy")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--hidden", default="50,56,57",
                        help="hidden sizes: the base, then each slower model (default 50,56,57:"
                             " ort-cpu +10 %% and +20 %% here, measured live)")
    parser.add_argument("--json", metavar="PATH", help="write every figure")
    parser.add_argument("--db", metavar="PATH|URL",
                        help="record every bench in this history database, a series per kind "
                             "(slow pairs: every BASE, then every NEW)")
    parser.add_argument("--rejudge", metavar="PATH|URL",
                        help="measure nothing: judge again the pairs a --db run recorded")
    args = parser.parse_args(argv)
    if args.rejudge:
        figures = rejudge(args.rejudge)
        if args.json:
            write_text(args.json, json.dumps(figures, indent=1) + "\n")
        return 0
    args.extra = extra
    hidden = [int(h) for h in args.hidden.split(",")]
    started = time.perf_counter()
    figures: dict = {"runtimes": args.runtimes, "batch": args.batch, "bench_options": extra}
    with tempfile.TemporaryDirectory(prefix="lstm-bench-gate-") as tmp:
        folder = Path(tmp)
        base = seed_shaped(folder, hidden[0])
        figures["idle"] = series("idle identical", args.pairs, (base, base), folder, args,
                                 name="identical-idle")
        figures["busy"] = series("busy identical", args.busy_pairs, (base, base), folder, args,
                                 busy=True, name="identical-busy")
        for h in hidden[1:]:
            figures[f"H{hidden[0]}_vs_H{h}"] = series(f"H={hidden[0]} vs H={h}", args.slow_pairs,
                                                      (base, seed_shaped(folder, h)), folder, args,
                                                      name=f"step-h{hidden[0]}-h{h}")
    figures["wall_s"] = time.perf_counter() - started
    pairs = sum(len(v["pairs"]) for v in figures.values() if isinstance(v, dict))
    idle, busy = figures["idle"], figures["busy"]
    print(f"\nidle identical pairs: false alarms {idle['failed']} of {args.pairs} (goal 0; "
          f"{idle['pairs_recorded_busy']} of them recorded a busy machine: other work ran); "
          f"inconclusive rows {idle['rows_inconclusive']} of {idle['rows']}\n"
          f"busy identical pairs: failed gates {busy['failed']} of {args.busy_pairs} (goal 0); "
          f"inconclusive rows {busy['rows_inconclusive']} of {busy['rows']}")
    for h in hidden[1:]:
        s = figures[f"H{hidden[0]}_vs_H{h}"]
        changes = sorted(r["change_pct"] for p in s["pairs"] for r in p["rows"])
        shown = f"{changes[0]:+.1f} to {changes[-1]:+.1f} %" if changes else "-"
        print(f"H={hidden[0]} vs H={h}: caught {s['failed']} of {args.slow_pairs} pairs, "
              f"{s['rows_regressed']} of {s['rows']} rows (row changes at equal machine speed "
              f"{shown}); inconclusive, not caught: {s['pairs_inconclusive']} pairs")
    print(f"took {figures['wall_s']:.0f} s for {pairs} pairs "
          f"({figures['wall_s'] / max(pairs, 1):.0f} s a pair)")
    if args.json:
        write_text(args.json, json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
