"""The report's plots, drawn with matplotlib (no pyplot, no display) as base64 PNG.

Drawn for a slide: full page width, one legend per figure outside the data, one colour per
runtime (the same in every plot and report: the registry's order) and one line style and
marker per thread count. Scaling curves: latency against batch (one panel per sequence
length), throughput against sequence length (against batch when the sweep had one length),
latency against threads when the sweep had several; cold start as side-by-side bars on linear
axes (session open | first run); verify's error per time step with each precision's tolerance.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict

from lstm_bench.bench.decision import row_field, shape_key, shape_label

WIDTH_IN = 13.0  # with DPI, about 1300 px: the page's full width
DPI = 100
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939")


def runtime_colours(names) -> dict[str, str]:
    """One colour per runtime, fixed by the registry's order so it is the same in every plot."""
    from lstm_bench.runtimes.registry import RUNTIMES

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


def plain_y(ax, logy: bool = True) -> None:
    """A (log) y axis labelled with plain numbers: 0.1, 1, 1,000, never 10^k."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if logy:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _axes_style(ax, xs, logy):
    """Ticks at the measured x values, plain numbers on both axes (no 2^k, no 10^k labels)."""
    from matplotlib.ticker import NullFormatter

    if len(xs) > 1 and xs[0] > 0 and xs[-1] / xs[0] >= 4:
        ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    plain_y(ax, logy)


def _curves(measurements, panel_of, x_of, y_of):
    """panel -> (runtime, threads) -> sorted [(x, y, (lo, hi) or None)]."""
    panels = defaultdict(lambda: defaultdict(list))
    for m in measurements:
        y, ci = y_of(m)
        panels[panel_of(m)][(m.runtime, m.threads)].append((x_of(m), y, ci))
    return {p: {k: sorted(v) for k, v in lines.items()} for p, lines in sorted(panels.items())}


def _draw(measurements, curves, title_of, xlabel, ylabel, logy=True) -> str:
    colours = runtime_colours({m.runtime for m in measurements})
    styles = thread_styles({m.threads for m in measurements})
    many_threads = len(styles) > 1
    order = list(colours)
    legend_order = []
    fig, axes = _figure(len(curves))
    for ax, (panel, lines) in zip(axes, curves.items()):
        # the registry's order, then threads: the same legend order in every plot
        for (runtime, threads), points in sorted(lines.items(), key=lambda kv: (
                order.index(kv[0][0]), kv[0][1] or 0)):
            xs, ys, cis = zip(*points)
            style, marker = styles[threads]
            label = f"{runtime}, {threads} thr" if many_threads else runtime
            legend_order.append(label)
            kw = dict(color=colours[runtime], linestyle=style, marker=marker, label=label)
            if all(ci is not None for ci in cis):
                lower = [max(y - ci[0], 0) for y, ci in zip(ys, cis)]
                upper = [max(ci[1] - y, 0) for y, ci in zip(ys, cis)]
                ax.errorbar(xs, ys, yerr=[lower, upper], capsize=3, **kw)
            else:
                ax.plot(xs, ys, **kw)
        ax.set_title(title_of(panel))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _axes_style(ax, sorted({x for pts in lines.values() for x, *_ in pts}), logy)
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes, sorted(set(legend_order), key=legend_order.index))
    return _png(fig)


def _median(m):
    return m.stats.median, m.stats.median_ci


def latency_vs_batch(measurements) -> str:
    def panel(m):
        mode, chunk, _, seq_len = shape_key(m)
        return (mode, chunk, seq_len)

    def title(p):
        return f"streaming, chunk {p[1]}" if p[0] == "streaming" else f"sequence length {p[2]}"
    return _draw(measurements, _curves(measurements, panel, lambda m: m.batch, _median), title,
                 "batch", "median latency (ms), 95% CI")


def streaming_latency(measurements) -> str:
    """Streaming rows (``bench.streaming``): p50 latency per step, the bar up to p99."""
    def per_step(m):
        chunk = row_field(m, "chunk") or m.seq_len
        p50, p99 = m.stats.median / chunk, m.stats.p99 / chunk
        return p50, (p50, p99)
    return _draw(measurements, _curves(measurements, lambda m: row_field(m, "chunk"),
                                       lambda m: m.batch, per_step),
                 "streaming, chunk = {} step(s) per call".format, "batch",
                 "latency per step (ms): p50, bar to p99")


def throughput_vs_seq_len(measurements) -> str:
    return _draw(measurements, _curves(measurements, lambda m: m.batch, lambda m: m.seq_len,
                                       lambda m: (m.steps_per_s, None)),
                 "batch {}".format, "sequence length", "time steps / s")


def throughput_vs_batch(measurements) -> str:
    return _draw(measurements, _curves(measurements, lambda m: m.seq_len, lambda m: m.batch,
                                       lambda m: (m.sequences_per_s, None)),
                 "sequence length {}".format, "batch", "sequences / s")


def latency_vs_threads(measurements) -> str:
    return _draw(measurements, _curves(measurements, shape_key, lambda m: m.threads, _median),
                 shape_label, "threads", "median latency (ms), 95% CI")


def cold_start(measurements) -> str:
    """Session open and first run side by side, each on its own linear axis with its values
    written at the bars: a 1 ms open next to a 2 s one is still readable."""
    from lstm_bench.bench.terminal import first_per_runtime

    firsts = first_per_runtime(measurements)
    many_threads = len({m.threads for m in firsts}) > 1
    labels = [f"{m.runtime}, {m.threads} thr" if many_threads else m.runtime for m in firsts]
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
    return _png(fig)


def verify_error_per_step(verify) -> str | None:
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
                label=f"{v.runtime} ({v.precision or '?'})")
    tolerances = {(v.precision, v.atol, v.rtol) for v in verdicts if v.atol is not None}
    for precision, atol, rtol in sorted(tolerances, key=lambda t: t[1]):
        ax.axhspan(atol, atol + rtol, color="0.5", alpha=0.12)
        ax.axhline(atol, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"{precision} tolerance {atol:g} + {rtol:g}·|truth|", (0, atol),
                    xytext=(4, 3), textcoords="offset points", fontsize="small", color="0.25")
    ax.set_yscale("log")
    ax.set_xlabel("time step")
    ax.set_ylabel("max |error| vs float64 reference")
    ax.set_title("verify: error per time step" + (f" ({verify.per_step_model})"
                                                  if verify.per_step_model else ""))
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, [ax])
    return _png(fig)


def all_plots(report) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for every plot the report's data supports."""
    streaming = [m for m in report.measurements if row_field(m, "mode") == "streaming"]
    rows = [m for m in report.measurements if row_field(m, "mode") != "streaming"]
    plots = []
    if rows:
        plots.append(("Latency against batch", latency_vs_batch(rows)))
        if len({m.seq_len for m in rows}) > 1:
            plots.append(("Throughput against sequence length", throughput_vs_seq_len(rows)))
        else:  # one sequence length: the curve worth drawing is against batch
            plots.append(("Throughput against batch", throughput_vs_batch(rows)))
        if len({m.threads for m in rows}) > 1:
            plots.append(("Latency against threads", latency_vs_threads(rows)))
        plots.append(("Cold start", cold_start(rows)))
    if streaming:
        plots.append(("Streaming latency per step", streaming_latency(streaming)))
    if report.verify:
        png = verify_error_per_step(report.verify)
        if png:
            plots.append(("Verify: error per time step", png))
    return plots
