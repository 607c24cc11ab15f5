"""The report's plots, drawn with matplotlib (no pyplot, no display) as base64 PNG.

Drawn for a slide: full page width, one legend per figure outside the data, one colour per
runtime (the same in every plot and report: the registry's order) and one line style and
marker per thread count. Scaling curves: latency against batch (one panel per sequence
length), throughput against sequence length (against batch when the sweep had one length),
latency against threads (one line per runtime) when the sweep had several; cold start as
side-by-side bars on linear axes (session open | first run); streaming latency per step as one
row per runtime, p50 joined to p99; verify's error per time step with each precision's
tolerance.

Text from the data (runtime names, precisions, commits) goes through ``plot_text`` on its way
in: drawn as written, never read as math text.

Value axes carry enough labels to read a figure off them (``value_axis``). Throughput is drawn
on plain axes from 0, where a runtime ten times slower than the fastest at every point would
only flatten the contenders: it is left out of the panel and named under it.

A runtime the decision left out (``marks``: ``Decision.marks()``, e.g. verify found it
drifting) is drawn faded, its label carrying the marker ("ort-cpu-int8 (excluded: drift)"),
and never sets the "fastest" that leaves slow runtimes out of a panel.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections import defaultdict
from typing import TYPE_CHECKING

from lstm_bench.bench.decision import decide, shape_label
from lstm_bench.bench.text import first_per_runtime, split_rows
from lstm_bench.files import private_env_folder
from lstm_bench.printable import visible
from lstm_bench.runtimes.registry import RUNTIMES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_IN = 13.0  # with DPI, about 1300 px: the page's full width
DPI = 100
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
EXCLUDED_ALPHA = 0.4  # how a runtime the decision left out is drawn: faded
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939")


def plot_text(text) -> str:
    """``text`` from a report or the history (a name, a precision, a commit) as matplotlib
    draws it literally. Between two ``$`` matplotlib reads math text, and raises on what it
    cannot parse (``$\\foo$``): every ``$`` is escaped (``\\$``, which it draws as ``$``), the
    only character its text layout reads outside math; control characters are shown as
    escapes (``lstm_bench.printable.visible``), which no font has a glyph for. Apply once: an
    escaped text escaped again would show its backslashes."""
    return visible(str(text)).replace("$", r"\$")


def runtime_colours(names) -> dict[str, str]:
    """One colour per runtime, fixed by the registry's order so it is the same in every plot."""
    order = list(RUNTIMES) + sorted(set(names) - set(RUNTIMES))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(order)}


def thread_styles(threads) -> dict:
    ordered = sorted(set(threads), key=lambda t: (t is None, t or 0))
    return {t: (STYLES[i % len(STYLES)], MARKERS[i % len(MARKERS)]) for i, t in enumerate(ordered)}


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


PER_ROW = 3  # panels side by side; more wrap onto further rows


def _figure(panels: int, height: float = 4.2):
    """A full-width figure with ``panels`` axes, at most PER_ROW to a row."""
    # matplotlib writes its config folder and font cache as it is imported: into a private
    # temporary folder, not ~/.config and ~/.cache (MPLCONFIGDIR, when set, is used instead)
    with private_env_folder("MPLCONFIGDIR", "lstm-bench-matplotlib-"):
        from matplotlib.figure import Figure

    cols = min(panels, PER_ROW)
    rows = -(-panels // cols)
    row_height = height if rows == 1 else 3.4
    fig = Figure(figsize=(WIDTH_IN, row_height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def _legend(fig, axes, order=()) -> None:
    """One legend for the figure, right of the panels, never over the data; entries in
    ``order`` first, in that order (matplotlib lists plain lines before error bars)."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    rank = {label: i for i, label in enumerate(order)}
    labels.sort(key=lambda label: rank.get(label, len(rank)))
    if labels:
        fig.legend([handles[label] for label in labels], labels, loc="outside right upper",
                   fontsize="small", frameon=False)


LOG_RANGE = 8  # values spanning more than this factor get a log axis; fewer, a plain one
LABELLED_DECADES = 3  # a log axis over at most this many decades labels 2 and 5 as well


def _number(value, _=None) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def value_axis(axis, lo: float, hi: float, logy: bool = True, zero: bool = False) -> None:
    """A value axis (``ax.yaxis`` or ``ax.xaxis``) for data between ``lo`` and ``hi``, labelled
    with plain numbers (0.2, 1, 1,000; never 10^k) and enough of them to read a value off it:
    a plain axis when the values span less than LOG_RANGE (from 0 with ``zero``), else a log
    axis labelled at 1, 2 and 5 of each decade (only 1 when it spans many decades)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    ax = axis.axes
    set_scale = ax.set_yscale if axis is ax.yaxis else ax.set_xscale
    set_lim = ax.set_ylim if axis is ax.yaxis else ax.set_xlim
    positive = lo > 0 and hi > 0
    if logy and positive and hi / lo > LOG_RANGE:
        set_scale("log")
        decades = math.log10(hi / lo)
        subs = (1.0, 2.0, 5.0) if decades <= LABELLED_DECADES else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_minor_locator(LogLocator(base=10, subs=[s for s in range(2, 10)
                                                         if s not in subs]))
    else:
        axis.set_major_locator(MaxNLocator(nbins=6))
        if zero and positive:
            set_lim(0, hi * 1.08)
    axis.set_major_formatter(FuncFormatter(_number))
    axis.set_minor_formatter(NullFormatter())


def _x_ticks(ax, xs) -> None:
    """Ticks at the measured x values, plain numbers (no 2^k labels); log when they spread."""
    from matplotlib.ticker import NullFormatter

    if len(xs) > 1 and xs[0] > 0 and xs[-1] / xs[0] >= 4:
        ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _curves(measurements, panel_of, x_of, y_of, line_of=lambda m: (m.runtime, m.threads)):
    """panel -> line -> sorted [(x, y, (lo, hi) or None)]; a line is (runtime, threads), or
    (runtime, None) where the threads are on the x axis."""
    panels = defaultdict(lambda: defaultdict(list))
    for m in measurements:
        y, ci = y_of(m)
        panels[panel_of(m)][line_of(m)].append((x_of(m), y, ci))
    return {p: {k: sorted(v) for k, v in lines.items()} for p, lines in sorted(panels.items())}


SLOW_FACTOR = 10  # a runtime slower than the fastest by this at every x is not drawn
NOTE_CHARS = 120  # characters of a note under a full-width panel (a third under each of 3)


def _too_slow(lines: dict, marks=None) -> dict:
    """The lines (of a higher-is-better figure) below 1/SLOW_FACTOR of the best line at each
    of their x values: drawn, they only stretch the axis under the contenders. The best is a
    candidate's (a runtime not in ``marks``) where there is one."""
    marks = marks or {}
    best: dict = {}
    candidates = {k: v for k, v in lines.items() if k[0] not in marks} or lines
    for points in candidates.values():
        for x, y, _ in points:
            best[x] = max(best.get(x, 0.0), y)
    return {key: points for key, points in lines.items()
            if all(y * SLOW_FACTOR < best.get(x, 0.0) for x, y, _ in points)}


def _label(runtime, threads, many_threads: bool, marks=None) -> str:
    """A line's or a row's label, ready to draw (``plot_text``), with the runtime's marker
    where the decision left it out."""
    text = f"{runtime}, {threads} thr" if many_threads and threads is not None else runtime
    mark = (marks or {}).get(runtime)
    return plot_text(f"{text} ({mark})" if mark else text)


def _draw(measurements, curves, title_of, xlabel, ylabel, logy=True,
          leave_out_slow=False, marks=None) -> Figure:
    """One panel per curve group, one line per (runtime, threads): the runtime's colour, the
    thread count's line style and marker; CI bars where the figures have them. A runtime in
    ``marks`` (left out by the decision) faded, its label marked.

    ``logy`` False (throughput): plain axes from 0, and with ``leave_out_slow`` the runtimes
    far slower than the fastest candidate (``_too_slow``) left out, named under the panel."""
    marks = marks or {}
    colours = runtime_colours({m.runtime for m in measurements})
    styles = thread_styles({key[1] for lines in curves.values() for key in lines})
    many_threads = len(styles) > 1
    order = list(colours)
    legend_order = []
    fig, axes = _figure(len(curves))
    for ax, (panel, lines) in zip(axes, curves.items()):
        slow = _too_slow(lines, marks) if leave_out_slow else {}
        drawn = {k: v for k, v in lines.items() if k not in slow}
        # the registry's order, then threads: the same legend order in every plot
        for (runtime, threads), points in sorted(drawn.items(), key=lambda kv: (
                order.index(kv[0][0]), kv[0][1] or 0)):
            xs, ys, cis = zip(*points)
            style, marker = styles[threads]
            label = _label(runtime, threads, many_threads, marks)
            legend_order.append((order.index(runtime), threads or 0, label))
            kw = dict(color=colours[runtime], linestyle=style, marker=marker, label=label,
                      alpha=EXCLUDED_ALPHA if runtime in marks else 1.0)
            if all(ci is not None for ci in cis):
                lower = [max(y - ci[0], 0) for y, ci in zip(ys, cis)]
                upper = [max(ci[1] - y, 0) for y, ci in zip(ys, cis)]
                ax.errorbar(xs, ys, yerr=[lower, upper], capsize=3, **kw)
            else:
                ax.plot(xs, ys, **kw)
        ax.set_title(plot_text(title_of(panel)))
        note = ""
        if slow:
            # a name never breaks over two lines: no-break spaces, no breaks at hyphens
            names = ", ".join(_label(r, t, many_threads, marks).replace(" ", "\u00a0") for r, t in
                              sorted(slow, key=lambda k: (order.index(k[0]), k[1] or 0)))
            note = "\n" + textwrap.fill(f"not drawn, under 1/{SLOW_FACTOR} of the fastest: "
                                        f"{names}", NOTE_CHARS // min(len(curves), PER_ROW),
                                        break_on_hyphens=False)
        ax.set_xlabel(xlabel + note)
        ax.set_ylabel(ylabel)
        _x_ticks(ax, sorted({x for pts in drawn.values() for x, *_ in pts}))
        values = [v for pts in drawn.values() for _, y, ci in pts
                  for v in ((y,) if ci is None else (y, *ci)) if v > 0]
        if values:
            value_axis(ax.yaxis, min(values), max(values), logy, zero=not logy)
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes, [label for *_, label in sorted(set(legend_order))])
    return fig


def _median(m):
    return m.stats.median, m.stats.median_ci


def latency_vs_batch(measurements, marks=None) -> Figure:
    def panel(m):
        return m.mode, m.chunk, m.seq_len

    def title(p):
        _, chunk, seq_len = p
        return f"streaming, chunk {chunk}" if chunk else f"sequence length {seq_len}"
    return _draw(measurements, _curves(measurements, panel, lambda m: m.batch, _median), title,
                 "batch", "median latency (ms), 95% CI", marks=marks)


def dot_rows(ax, rows, xlabel: str) -> None:
    """One row per entry, top to bottom, on a value axis along x: a dot at ``value`` with
    its CI as a bar (``ci``) or joined by a line to a diamond at ``high`` (p99), and its
    figures written to the right, so that no two rows' marks can cover each other.

    ``rows``: dicts with label, colour, value and optional ci (lo, hi), high, text."""
    for i, row in enumerate(rows):
        colour, value, high, ci = row["colour"], row["value"], row.get("high"), row.get("ci")
        if high is not None:
            ax.plot([value, high], [i, i], color=colour, linewidth=2, alpha=0.6)
            ax.plot([high], [i], "D", color=colour, markerfacecolor="white", markersize=7)
        if ci is not None:
            ax.errorbar([value], [i], xerr=[[max(value - ci[0], 0)], [max(ci[1] - value, 0)]],
                        color=colour, capsize=3)
        ax.plot([value], [i], "o", color=colour, markersize=8)
        right = max(v for v in (value, high, ci[1] if ci else None) if v is not None)
        ax.annotate(row.get("text") or _number(value), (right, i), xytext=(8, 0),
                    textcoords="offset points", va="center", fontsize="small")
    ax.set_yticks(range(len(rows)), [row["label"] for row in rows])
    ax.set_ylim(len(rows) - 0.4, -0.6)  # the first row on top
    values = [v for row in rows for v in (row["value"], row.get("high"), *(row.get("ci") or ()))
              if v is not None and v > 0]
    if values:
        value_axis(ax.xaxis, min(values), max(values), zero=True)
        lo, hi = ax.get_xlim()
        if ax.get_xscale() == "log":
            ax.set_xlim(lo, hi * 3)  # room for the figures written right of the marks
        else:
            ax.set_xlim(lo, hi * 1.3)
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", which="both", alpha=0.3)


def streaming_latency(measurements, marks=None) -> Figure:
    """Streaming rows (``bench.streaming``): per step, a dot at p50 joined to a diamond at p99,
    one row per runtime (and batch, and thread count, where there are several), one panel per
    chunk."""
    colours = runtime_colours({m.runtime for m in measurements})
    order = list(colours)
    many_batches = len({m.batch for m in measurements}) > 1
    many_threads = len({m.threads for m in measurements}) > 1
    chunks = sorted({m.seq_len for m in measurements})  # a streaming row's seq_len: its chunk
    height = max(2.4, 0.36 * max(sum(1 for m in measurements if m.seq_len == c)
                                 for c in chunks) + 1.4)
    fig, axes = _figure(len(chunks), height=height)
    for ax, chunk in zip(axes, chunks):
        rows = []
        for m in sorted((m for m in measurements if m.seq_len == chunk),
                        key=lambda m: (order.index(m.runtime), m.batch, m.threads or 0)):
            p50, p99 = m.stats.median / chunk, m.stats.p99 / chunk
            label = _label(m.runtime, m.threads, many_threads, marks)
            rows.append({"label": label + (f", b={m.batch}" if many_batches else ""),
                         "colour": colours[m.runtime], "value": p50, "high": p99,
                         "text": f"p50 {_number(p50)} · p99 {_number(p99)}"})
        dot_rows(ax, rows, "latency per step (ms): ● p50, ◇ p99")
        ax.set_title(f"streaming, chunk {chunk} step{'s' * (chunk > 1)} per call")
    return fig


def throughput_vs_seq_len(measurements, marks=None) -> Figure:
    return _draw(measurements, _curves(measurements, lambda m: m.batch, lambda m: m.seq_len,
                                       lambda m: (m.steps_per_s, None)),
                 "batch {}".format, "sequence length", "time steps / s", logy=False,
                 leave_out_slow=True, marks=marks)


def throughput_vs_batch(measurements, marks=None) -> Figure:
    return _draw(measurements, _curves(measurements, lambda m: m.seq_len, lambda m: m.batch,
                                       lambda m: (m.sequences_per_s, None)),
                 "sequence length {}".format, "batch", "sequences / s", logy=False,
                 leave_out_slow=True, marks=marks)


def latency_vs_threads(measurements, marks=None) -> Figure:
    """One line per runtime across the thread counts, a panel per shape."""
    curves = _curves(measurements, lambda m: m.key.shape, lambda m: m.threads, _median,
                     line_of=lambda m: (m.runtime, None))
    return _draw(measurements, curves, shape_label, "threads", "median latency (ms), 95% CI",
                 marks=marks)


def cold_start(measurements, marks=None) -> Figure:
    """Session open and first run side by side, each on its own linear axis with its values
    written at the bars: a 1 ms open next to a 2 s one is still readable."""
    firsts = first_per_runtime(measurements)
    many_threads = len({m.threads for m in firsts}) > 1
    labels = [_label(m.runtime, m.threads, many_threads, marks) for m in firsts]
    colours = runtime_colours({m.runtime for m in firsts})
    fig, axes = _figure(2, height=max(2.2, 0.42 * len(firsts) + 1.2))
    for ax, (key, title) in zip(axes, (("open", "session open (ms)"),
                                       ("first_run", "first run (ms)"))):
        values = [(m.cold or {}).get(key) or 0.0 for m in firsts]
        bars = ax.barh(range(len(firsts)), values, color=[colours[m.runtime] for m in firsts])
        ax.bar_label(bars, labels=[f"{v:.3g} ms" for v in values], padding=3, fontsize="small")
        ax.set_yticks(range(len(firsts)), labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(values + [1e-3]) * 1.25)  # room for the value labels
        ax.set_title(title)
        ax.grid(True, axis="x", alpha=0.3)
    return fig


def verify_error_per_step(verify, marks=None) -> Figure | None:
    """Each runtime's max abs error per time step against the float64 truth, with each
    precision's tolerance drawn as a band: atol (truth near 0) up to atol + rtol (|truth| = 1,
    the most an LSTM's hidden state reaches with the default activations)."""
    verdicts = [v for v in verify.verdicts.values() if v.per_step_max_abs_error]
    if not verdicts:
        return None
    colours = runtime_colours({v.runtime for v in verdicts})
    fig, (ax,) = _figure(1, height=4.6)
    for v in verdicts:
        errors = v.per_step_max_abs_error
        ax.plot(range(len(errors)), [max(e, 1e-12) for e in errors], color=colours[v.runtime],
                label=plot_text(f"{v.runtime} ({v.precision or '?'})"
                                + (f" ({marks[v.runtime]})" if v.runtime in (marks or {}) else "")))
    tolerances = {(v.precision, v.tolerance.atol, v.tolerance.rtol) for v in verdicts
                  if v.tolerance is not None}
    for precision, atol, rtol in sorted(tolerances, key=lambda t: t[1]):
        ax.axhspan(atol, atol + rtol, color="0.5", alpha=0.12)
        ax.axhline(atol, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(plot_text(f"{precision} tolerance {atol:g} + {rtol:g}·|truth|"), (0, atol),
                    xytext=(4, 3), textcoords="offset points", fontsize="small", color="0.25")
    ax.set_yscale("log")
    ax.set_xlabel("time step")
    ax.set_ylabel("max |error| vs float64 reference")
    ax.set_title("verify: error per time step" + (f" ({verify.per_step_model})"
                                                  if verify.per_step_model else ""))
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, [ax])
    return fig


def report_figures(report) -> list[tuple[str, Figure]]:
    """(caption, figure) for every plot the report's data supports; the runtimes the decision
    left out marked in each."""
    marks = decide(report).marks()
    rows, streaming = split_rows(report.measurements)
    figures = []
    if rows:
        figures.append(("Latency against batch", latency_vs_batch(rows, marks)))
        if len({m.seq_len for m in rows}) > 1:
            figures.append(("Throughput against sequence length",
                            throughput_vs_seq_len(rows, marks)))
        else:  # one sequence length: the curve worth drawing is against batch
            figures.append(("Throughput against batch", throughput_vs_batch(rows, marks)))
        if len({m.threads for m in rows}) > 1:
            figures.append(("Latency against threads", latency_vs_threads(rows, marks)))
        figures.append(("Cold start", cold_start(rows, marks)))
    if streaming:
        figures.append(("Streaming latency per step", streaming_latency(streaming, marks)))
    if report.verify:
        fig = verify_error_per_step(report.verify, marks)
        if fig is not None:
            figures.append(("Verify: error per time step", fig))
    return figures


def all_plots(report) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for every plot the report's data supports."""
    return [(caption, _png(fig)) for caption, fig in report_figures(report)]
