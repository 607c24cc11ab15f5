"""The bench report as Markdown: the decision on top, then one table per thread count, and
the streaming rows in a table of their own (per call and per step)."""

from __future__ import annotations

from lstm_bench.bench.decision import decide, overlap, plural, ratio
from lstm_bench.bench.text import NO_PEAK, ci_text, fmt, noise_text, num, \
    first_per_runtime, machine_warnings, noise_line, peak_text, per_step, ranked_groups, \
    split_rows

COLUMNS = ("runtime", "batch", "seq_len", "threads", "median ms", "95% CI", "vs best", "min ms",
           "p90 ms", "p99 ms", "seq/s", "steps/s", "GFLOP/s", "% peak", "noise", "reps")
# streaming rows: a call carries `chunk` steps of `batch` streams; no seq/s, no % peak (NO_PEAK)
STREAM_COLUMNS = ("runtime", "batch", "chunk", "threads", "p50 ms", "95% CI", "vs best",
                  "p99 ms", "p50 ms/step", "p99 ms/step", "steps/s", "GFLOP/s", "noise", "reps")
# what every latency table's figures are (Markdown and HTML)
CAPTION = ("Latency in ms: the median of the block medians (a block is a run of consecutive "
           "calls, one sample of the machine), runtimes fastest first at each shape; 95% CI is "
           "the distribution-free confidence interval of that median over the blocks; min, p90 "
           "and p99 are over all calls; `~` after the ratio: within noise of the row above (the "
           "CIs overlap); noise is the IQR of the block medians / their median.")
STREAM_CAPTION = ("One call carries `chunk` steps of `batch` streams, h and c carried from the "
                  "call before; p50 and p99 per call (p50: the median of the block medians), and "
                  "per step (over the chunk); steps/s counts steps of every stream; " + NO_PEAK
                  + ".")
COLD_COLUMNS = ("runtime", "threads", "session open ms", "first run ms", "peak memory MB")
VERIFY_COLUMNS = ("runtime", "verdict", "model output max abs", "LSTM layer max abs",
                  "tolerance", "details")


def result_rows(measurements) -> list[list[str]]:
    """Rows grouped by shape, fastest first; ``~`` after the ratio: within noise of the row
    above (their 95 % CIs overlap)."""
    rows = []
    for _, ranked in ranked_groups(measurements):
        best = ranked[0].stats.median
        for i, m in enumerate(ranked):
            tie = "~" if i > 0 and overlap(m, ranked[i - 1]) else ""
            s = m.stats
            rows.append([m.runtime, str(m.batch), str(m.seq_len), fmt(m.threads, "d"),
                         fmt(s.median), ci_text(m), ratio(s.median / max(best, 1e-12)) + tie,
                         fmt(s.min), fmt(s.p90), fmt(s.p99), num(m.sequences_per_s),
                         num(m.steps_per_s), fmt(m.gflops, ".3g"), peak_text(m),
                         noise_text(m), str(m.reps)])
    return rows


def stream_rows(measurements) -> list[list[str]]:
    """Streaming rows (``STREAM_COLUMNS``), grouped by shape, fastest first."""
    rows = []
    for _, ranked in ranked_groups(measurements):
        best = ranked[0].stats.median
        for i, m in enumerate(ranked):
            tie = "~" if i > 0 and overlap(m, ranked[i - 1]) else ""
            rows.append([m.runtime, str(m.batch), str(m.seq_len), fmt(m.threads, "d"),
                         fmt(m.stats.median), ci_text(m),
                         ratio(m.stats.median / max(best, 1e-12)) + tie, fmt(m.stats.p99),
                         fmt(per_step(m, "p50")), fmt(per_step(m, "p99")), num(m.steps_per_s),
                         fmt(m.gflops, ".3g"), noise_text(m), str(m.reps)])
    return rows


def by_threads(measurements) -> list[tuple[int | None, list]]:
    groups: dict = {}
    for m in measurements:
        groups.setdefault(m.threads, []).append(m)
    return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))


def cold_rows(measurements) -> list[list[str]]:
    return [[m.runtime, fmt(m.threads, "d"), fmt((m.cold or {}).get("open")),
             fmt((m.cold or {}).get("first_run")), fmt(m.peak_memory_mb, ".1f")]
            for m in first_per_runtime(measurements)]


def verify_rows(verify) -> list[list[str]]:
    def err(value):
        return fmt(value, ".2g") if value is None or value != float("inf") else "non-finite"
    return [[v.runtime, v.status, err(v.max_abs_error),
             err(v.layer_max_abs_error) if v.layer_status else "–", v.limit(), v.statement()]
            for v in verify.verdicts.values()]


def calibration_line(report) -> str:
    """The GEMM peak per thread count (``bench.machine.calibration_text``); a report of an
    older version has one peak."""
    from lstm_bench.bench.machine import calibration_text

    if report.calibrations or report.peak_gflops is None:
        return calibration_text(report.calibrations)
    return f"float32 GEMM peak {fmt(report.peak_gflops, '.0f')} GFLOP/s"


def machine_line(report) -> str:
    m = report.machine
    libs = m.get("libraries", {})
    lib_text = ", ".join(f"{k} {v}" for k, v in libs.items() if k != "lstm-bench")
    load = m.get("load_average") or {}
    shown = [f"{when} {load[when][0]:.2f}" for when in ("before", "after") if load.get(when)]
    load_text = "; load average " + ", ".join(shown) if shown else ""
    if load.get("other_cores") is not None:
        load_text += f"; other processes used {load['other_cores']:.2f} cores meanwhile"
    return (f"{m.get('cpu', '?')}, {m.get('usable_cores', '?')} cores; "
            f"{calibration_line(report)}; {lib_text}; "
            f"commit {m.get('git_commit') or 'unknown'}{load_text}")


def md_table(columns, rows) -> str:
    def esc(text):
        return str(text).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in rows]
    return "\n".join(lines)


def decision_markdown(report) -> list[str]:
    decision = decide(report)
    title = "## Decision: the fastest runtime that passed verify" if decision.verified else \
        "## Decision: the fastest runtime (not verified)"
    parts = [title, ""] + [f"- {line}" for line in decision.lines()]
    if decision.excluded:
        parts += ["", "Excluded:", ""] + [f"- {line}" for line in decision.excluded_lines()]
    notes = machine_warnings(report) + [x for x in [noise_line(report)] if x]
    for note in notes:  # a blank line between: consecutive "> " lines make one paragraph
        parts += ["", f"> {note}"]
    return parts + [""]


def render_markdown(report) -> str:
    parts = [f"# {report.title}", "", machine_line(report), ""]
    parts += decision_markdown(report)
    sequence, stream = split_rows(report.measurements)
    if sequence:
        parts += ["## Latency and throughput", "", CAPTION, ""]
        groups = by_threads(sequence)
        for threads, rows in groups:
            if len(groups) > 1:
                parts += [f"### {plural(threads, 'thread')}", ""]
            parts += [md_table(COLUMNS, result_rows(rows)), ""]
    if stream:
        parts += ["## Streaming latency", "", STREAM_CAPTION, "",
                  md_table(STREAM_COLUMNS, stream_rows(stream)), ""]
    parts += ["## Cold start and memory", "", md_table(COLD_COLUMNS,
                                                      cold_rows(report.measurements)), ""]
    if report.verify:
        parts += ["## Verify", "", md_table(VERIFY_COLUMNS, verify_rows(report.verify)), ""]
    if report.skipped:
        parts += ["## Skipped", ""] + [f"- {s.runtime}: {s.reason}" for s in report.skipped] + [""]
    return "\n".join(parts)
