"""The report's plots, drawn with matplotlib (no pyplot, no display) as base64 PNG.

Scaling curves: latency against batch (one panel per sequence length), throughput against
sequence length (one panel per batch; against batch when the sweep had one length), latency
against threads when the sweep had several, cold start per runtime, and verify's error per
time step when verify data is present.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(panels: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(4.6 * panels, 14), 3.6), layout="constrained")
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def _label(runtime, threads, many_threads):
    return f"{runtime} ({threads} thr)" if many_threads else runtime


def _curves(rows, panel_key, x_key, value):
    """panel -> line label -> sorted [(x, y, (lo, hi) or None)]."""
    many_threads = len({r["threads"] for r in rows}) > 1
    panels = defaultdict(lambda: defaultdict(list))
    for r in rows:
        panels[r[panel_key]][_label(r["runtime"], r["threads"], many_threads)].append(
            (r[x_key], *value(r)))
    return {p: {k: sorted(v) for k, v in lines.items()} for p, lines in sorted(panels.items())}


def _axes_style(ax, xs, logy):
    """Ticks at the measured x values, plain numbers on both axes (no 2^k, no 10^k labels)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}")
    if len(xs) > 1 and xs[0] > 0 and xs[-1] / xs[0] >= 4:
        ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())


def _draw(curves, title_fmt, xlabel, ylabel, logy=True):
    fig, axes = _figure(len(curves))
    for ax, (panel, lines) in zip(axes, curves.items()):
        for label, points in lines.items():
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            errs = [p[2] for p in points]
            if all(e is not None for e in errs):
                lower = [max(y - e[0], 0) for y, e in zip(ys, errs)]
                upper = [max(e[1] - y, 0) for y, e in zip(ys, errs)]
                ax.errorbar(xs, ys, yerr=[lower, upper], marker="o", capsize=3, label=label)
            else:
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(title_fmt.format(panel))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _axes_style(ax, sorted({x for pts in lines.values() for x, *_ in pts}), logy)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    return _png(fig)


def latency_vs_batch(rows) -> str:
    return _draw(_curves(rows, "seq_len", "batch",
                         lambda r: (r["latency_ms"]["median"],
                                    r["latency_ms"].get("median_ci95"))),
                 "seq_len = {}", "batch", "median latency (ms)")


def streaming_latency(rows) -> str:
    """Streaming rows (bench/streaming.py): p50 latency per step, p99 as the bar's top."""
    return _draw(_curves(rows, "chunk", "batch",
                         lambda r: (r["per_step_ms"]["p50"],
                                    (r["per_step_ms"]["p50"], r["per_step_ms"]["p99"]))),
                 "streaming, chunk = {} step(s) per call", "batch",
                 "latency per step (ms): p50, bar to p99")


def throughput_vs_batch(rows) -> str:
    return _draw(_curves(rows, "seq_len", "batch",
                         lambda r: (r["throughput"]["sequences_per_s"], None)),
                 "seq_len = {}", "batch", "sequences / s")


def throughput_vs_seq_len(rows) -> str:
    return _draw(_curves(rows, "batch", "seq_len",
                         lambda r: (r["throughput"]["steps_per_s"], None)),
                 "batch = {}", "sequence length", "time steps / s")


def latency_vs_threads(rows) -> str:
    curves = defaultdict(lambda: defaultdict(list))
    for r in rows:
        curves[f"b={r['batch']}, T={r['seq_len']}"][r["runtime"]].append(
            (r["threads"], r["latency_ms"]["median"], r["latency_ms"].get("median_ci95")))
    curves = {p: {k: sorted(v) for k, v in lines.items()} for p, lines in curves.items()}
    return _draw(curves, "{}", "threads", "median latency (ms)")


def cold_start(rows) -> str:
    seen = {}
    for r in rows:
        seen.setdefault(f"{r['runtime']} ({r['threads']} thr)", r.get("cold_start_ms") or {})
    fig, (ax,) = _figure(1)
    labels = list(seen)
    opens = [seen[k].get("open") or 0 for k in labels]
    firsts = [seen[k].get("first_run") or 0 for k in labels]
    ax.barh(labels, opens, label="session open")
    ax.barh(labels, firsts, left=opens, label="first run")
    ax.set_xscale("log")  # session creation spans microseconds (numpy) to seconds
    ax.set_xlabel("ms (log scale)")
    ax.set_title("cold start")
    ax.legend(fontsize="small")
    return _png(fig)


def verify_error_per_step(verify: dict) -> str | None:
    lines = {name: entry["per_step_max_abs_error"]
             for name, entry in verify.get("runtimes", {}).items()
             if entry.get("per_step_max_abs_error")}
    if not lines:
        return None
    fig, (ax,) = _figure(1)
    for name, errors in lines.items():
        ax.plot(range(len(errors)), [max(e, 1e-12) for e in errors], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("time step")
    ax.set_ylabel("max |error| vs float64 reference")
    ax.set_title("verify: error per time step" + (f"\n({verify['per_step_model']})"
                                                    if verify.get("per_step_model") else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _png(fig)


def all_plots(doc: dict) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for every plot the document's data supports."""
    rows = [r for r in doc["results"] if r.get("mode") != "streaming"]  # bench/streaming.py
    plots = []
    if rows:
        plots.append(("Latency against batch", latency_vs_batch(rows)))
        if len({r["seq_len"] for r in rows}) > 1:
            plots.append(("Throughput against sequence length", throughput_vs_seq_len(rows)))
        else:  # one sequence length: the curve worth drawing is against batch
            plots.append(("Throughput against batch", throughput_vs_batch(rows)))
        if len({r["threads"] for r in rows}) > 1:
            plots.append(("Latency against threads", latency_vs_threads(rows)))
        plots.append(("Cold start", cold_start(rows)))
    streaming = [r for r in doc["results"] if r.get("mode") == "streaming"]
    if streaming:
        plots.append(("Streaming latency per step", streaming_latency(streaming)))
    if doc.get("verify"):
        png = verify_error_per_step(doc["verify"])
        if png:
            plots.append(("Verify: error per time step", png))
    return plots
