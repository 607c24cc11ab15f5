"""The tables of the bench and run reports as data (``bench.table``), one builder each:
latency and throughput, streaming latency, cold start and memory, verify's verdicts, run's
summary. Every writer draws the same cells; rows are grouped by shape, runtimes fastest
first, and ``~`` after a ratio marks a runtime whose median's 95 % CI overlaps the one ranked
just above it (their order is within noise). A runtime the decision left out (``marks``:
``Decision.marks()``, e.g. verify found it drifting) is ranked after the candidates, dimmed,
with its marker ("excluded: drift") in place of a ratio: the ratios and "best" are the
candidates' alone.

``keyed_groups`` groups the rows of compare and history (one per ``stats.RowKey``) the same
way, by shape and thread count.
"""

from __future__ import annotations

from lstm_bench.bench.decision import overlap, ratio, shape_label
from lstm_bench.bench.floor import floor_text
from lstm_bench.bench.table import Column, Detail, Group, Row, Table, one_group
from lstm_bench.bench.text import ci_text, first_per_runtime, fmt, noise_text, num, \
    peak_text, per_step, ranked_groups
from lstm_bench.verify.sensitivity import FACTOR
from lstm_bench.verify.verdict import ERROR, error_text

NARROW, WIDE, PAGE, FULL = Detail
EXCLUDED_STYLE = "dim"  # the style of a row the decision left out (the page greys it)


def _threads(measurements) -> Column:
    """Threads: on every terminal where they differ, on a wide one always."""
    several = len({m.threads for m in measurements}) > 1
    return Column("threads", "thr", detail=NARROW if several else WIDE)


def _floor(measurements) -> Column:
    """The runtime's per-call floor (``bench.floor``): shown where it matters, a table with
    batch 1 or streaming rows; on a wide terminal always."""
    small = any(m.batch == 1 or m.streaming for m in measurements)
    return Column("call floor ms", "floor ms", detail=NARROW if small else WIDE)


def _ranked(measurements, cells, marks=None) -> tuple[Group, ...]:
    """A group per shape, the candidates fastest first, then the runtimes in ``marks`` (runtime
    -> its marker: left out by the decision), fastest first; ``cells(m, versus)`` the row's,
    with ``versus`` a candidate's ratio to the fastest candidate and ``~`` where it is within
    noise of the row above (a space otherwise, so that the ratios line up on a terminal), or
    an excluded runtime's marker."""
    marks = marks or {}
    groups = []
    for shape, ranked in ranked_groups(measurements):
        candidates = [m for m in ranked if m.runtime not in marks]
        best = max(candidates[0].stats.median, 1e-12) if candidates else None
        rows = []
        for i, m in enumerate(candidates):
            tie = i > 0 and overlap(m, candidates[i - 1])
            rows.append(Row(cells(m, ratio(m.stats.median / best) + ("~" if tie else " "))))
        rows += [Row(cells(m, marks[m.runtime]), style=EXCLUDED_STYLE)
                 for m in ranked if m.runtime in marks]
        groups.append(Group(shape_label(shape, short=True), tuple(rows)))
    return tuple(groups)


def latency_table(measurements, marks=None) -> Table:
    """Whole-sequence rows (``marks``: runtime -> the marker of one the decision left out)."""
    columns = (Column("runtime", align="left"), Column("batch", grouped=True),
               Column("seq_len", grouped=True), _threads(measurements), Column("median ms"),
               Column("95% CI"), Column("vs best"), Column("min ms", detail=FULL),
               Column("p90 ms", detail=FULL), Column("p99 ms", detail=WIDE),
               _floor(measurements), Column("seq/s", detail=WIDE), Column("steps/s", detail=FULL),
               Column("GFLOP/s", detail=WIDE), Column("% peak", detail=WIDE), Column("noise"),
               Column("reps", detail=PAGE))

    def cells(m, versus):
        s = m.stats
        return (m.runtime, str(m.batch), str(m.seq_len), fmt(m.threads, "d"), fmt(s.median),
                ci_text(m), versus, fmt(s.min), fmt(s.p90), fmt(s.p99), floor_text(m),
                num(m.sequences_per_s),
                num(m.steps_per_s), fmt(m.gflops, ".3g"), peak_text(m), noise_text(m),
                str(m.reps))
    return Table("latency and throughput", columns, _ranked(measurements, cells, marks),
                 importance=("threads", "median ms", "vs best", "noise", "95% CI",
                             "call floor ms", "p99 ms", "seq/s", "GFLOP/s", "% peak"))


def streaming_table(measurements, marks=None) -> Table:
    """Streaming rows: a call carries ``chunk`` steps of ``batch`` streams, so its figures
    are per call and per step; steps/s, never seq/s; no % peak (``text.NO_PEAK``). ``marks``
    as for ``latency_table``."""
    columns = (Column("runtime", align="left"), Column("batch", grouped=True),
               Column("chunk", grouped=True), _threads(measurements), Column("p50 ms"),
               Column("95% CI", detail=WIDE), Column("vs best"), Column("p99 ms"),
               Column("p50 ms/step", "p50/step"), Column("p99 ms/step", "p99/step"),
               _floor(measurements), Column("steps/s", detail=WIDE), Column("GFLOP/s", detail=WIDE),
               Column("noise"), Column("reps", detail=PAGE))

    def cells(m, versus):
        return (m.runtime, str(m.batch), str(m.seq_len), fmt(m.threads, "d"),
                fmt(m.stats.median), ci_text(m), versus, fmt(m.stats.p99),
                fmt(per_step(m, "p50")), fmt(per_step(m, "p99")), floor_text(m),
                num(m.steps_per_s),
                fmt(m.gflops, ".3g"), noise_text(m), str(m.reps))
    return Table("streaming: latency per call, and per step of the chunk", columns,
                 _ranked(measurements, cells, marks),
                 importance=("threads", "p50 ms", "vs best", "p50 ms/step", "noise",
                             "p99 ms/step", "call floor ms", "95% CI", "p99 ms", "steps/s",
                             "GFLOP/s"))


def cold_table(measurements) -> Table:
    """Per opened runtime (runtime and thread count): session open, first run, memory."""
    columns = (Column("runtime", align="left"), Column("threads", "thr"),
               Column("session open ms", "open ms"), Column("first run ms"),
               Column("peak memory MB", "peak MB"))
    rows = [Row((m.runtime, fmt(m.threads, "d"), fmt((m.cold or {}).get("open")),
                 fmt((m.cold or {}).get("first_run")), fmt(m.peak_memory_mb, ".1f")))
            for m in first_per_runtime(measurements)]
    return Table("cold start and memory", columns, one_group(rows))


def verify_table(verify) -> Table:
    """verify's verdicts beside the timings (a ``report.VerifySummary``), in words."""
    columns = (Column("runtime", align="left"), Column("verdict", align="left"),
               Column("model output max abs"), Column("LSTM layer max abs"),
               Column("tolerance"), Column("details", align="left", wrap=True))
    rows = []
    for v in verify.verdicts.values():
        rows.append(Row((v.runtime, v.status, error_text(v.max_abs_error),
                         error_text(v.layer_max_abs_error) if v.layer_status else "–", v.limit(),
                         v.statement())))
        if len(v.lstm_layers) > 1:  # a line per layer beneath, the worst one above
            rows += [Row(("", "", "", error_text(layer.max_abs_error)
                          if layer.status != ERROR else "–", "", v.layer_sentence(layer)))
                     for layer in v.lstm_layers]
    return Table("verify", columns, one_group(rows))


STATUS_STYLES = {"pass": "green", "fail": "bold red", "error": "bold red", "skip": "dim",
                 "drift": "yellow"}


def named_outputs(verdict) -> list[tuple]:
    """(name, OutputParity) of a runtime's outputs, then each of its LSTM layers', named
    "<label>: <output>" (the layer checked alone)."""
    return [(o.name, o) for o in verdict.outputs] + [
        (f"{layer.label}: {o.name}", o) for layer in verdict.lstm_layers for o in layer.outputs]


def verdicts_table(report) -> Table:
    """verify's table: a group per runtime, a row per output (the model's, then its LSTM
    layer's): the verdict on the first row, max abs and its limit, max rel and the ULP
    distance on wide terminals. Too narrow for them all, ULPs go first, then max rel: max abs
    and the limit decide. An output name may wrap at its spaces."""
    columns = (Column("runtime", align="left"), Column("verdict", align="left"),
               Column("output", align="left", wrap=True), Column("max abs"),
               Column("limit"), Column("max rel", detail=WIDE), Column("max ulp", detail=WIDE))
    groups = []
    for result in report.results:
        limit = "" if result.tolerance is None else \
            f"{result.tolerance.atol:.0e}+{result.tolerance.rtol:.0e}|t|"
        rows = []
        for index, (name, output) in enumerate(named_outputs(result) or [(None, None)]):
            first = index == 0
            status = result.status if first else ""
            if output is None:
                cells = (status, "", "", "", "", "")
            else:
                widened = output.float32_floor is not None
                cells = (status, name, fmt(output.max_abs, ".1e"),
                         f"widened: {FACTOR}x f32" if widened else limit if first else "",
                         fmt(output.max_rel, ".1e"), "–" if output.max_ulp is None
                         else f"{output.max_ulp} ({output.ulp_dtype})")
            rows.append(Row((result.runtime if first else "", *cells),
                            styles={"verdict": STATUS_STYLES[result.status]} if first else {}))
        groups.append(Group(None, tuple(rows)))
    return Table("", columns, tuple(groups),
                 ("verdict", "output", "max abs", "limit", "max rel", "max ulp"))


def summary_table(report) -> Table:
    """run's summary, one line per runtime: its verdict with both checks' errors, the latency
    at the smallest batch, the best throughput (whole sequences only: a streaming row's
    figures are per call of a chunk). Fits 80 columns."""
    verdicts = report.verify.verdicts if report.verify else {}
    latency: dict[str, dict] = {}
    best: dict[str, float] = {}
    sequence = [m for m in report.measurements if not m.streaming]
    for m in sequence:
        fastest = latency.setdefault(m.runtime, {})
        fastest[m.batch] = min(fastest.get(m.batch, m.stats.median), m.stats.median)
        best[m.runtime] = max(best.get(m.runtime, 0.0), m.sequences_per_s)
    smallest = min((m.batch for m in sequence), default=1)

    rows = []
    for name in dict.fromkeys(list(latency) + list(verdicts)):
        v = verdicts.get(name)
        status = v.status if v is not None else "–"
        ms = latency.get(name, {}).get(smallest)
        errors = (None, None) if v is None else (v.max_abs_error, v.layer_max_abs_error)
        rows.append(Row((name, status, *(error_text(e, ".1e") for e in errors), fmt(ms),
                         f"{best[name]:,.0f}" if name in best else "–"),
                        styles={"verify": STATUS_STYLES.get(status, "")}))
    columns = (Column("runtime", align="left"), Column("verify", align="left"),
               Column("model err"), Column("layer err"), Column(f"ms b={smallest}"),
               Column("best seq/s"))
    return Table("summary: one verdict per runtime", columns, one_group(rows))


# the leading columns of compare's and history's tables (``keyed_groups``)
KEY_COLUMNS = (Column("runtime", align="left"), Column("batch", grouped=True),
               Column("seq_len", grouped=True), Column("threads", grouped=True))


def keyed_groups(items, key_of, cells_of, style_of=lambda item: None) -> tuple[Group, ...]:
    """Rows of ``items`` (one per ``key_of(item)``, a ``stats.RowKey``) under a heading per
    shape and thread count (the thread count only where they differ), in shape order; each
    row's cells are ``KEY_COLUMNS``' then ``cells_of(item)``."""
    keys = [key_of(item) for item in items]
    many_threads = len({k.threads for k in keys}) > 1
    groups: dict[tuple, list[Row]] = {}
    for item, key in zip(items, keys):
        steps = f"{key.seq_len} (streaming chunk)" if key.chunk else str(key.seq_len)
        groups.setdefault((key.shape, key.threads or 0), []).append(Row(
            (key.runtime, str(key.batch), steps, fmt(key.threads, "d"), *cells_of(item)),
            style=style_of(item)))
    return tuple(Group(shape_label(shape, short=True) + (f" thr={threads}" if many_threads
                                                         else ""), tuple(rows))
                 for (shape, threads), rows in sorted(groups.items(), key=lambda kv: kv[0]))
