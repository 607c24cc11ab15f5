"""The history as one self-contained HTML page: per model and CPU, a panel per shape with each
runtime's median over the runs (95 % CI bars), change points ringed (red: slower, green:
faster), and the change points listed."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from lstm_bench.bench.decision import plural, shape_label
from lstm_bench.bench.series import change_lines, machine_line, quiet_line, series_table
from lstm_bench.bench.page import CSS, html_table
from lstm_bench.bench.plots import _figure, _legend, _png, dot_rows, plot_text, \
    runtime_colours, thread_styles, value_axis

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _plot(series) -> Figure:
    """A panel per shape: each runtime's median over the runs (lines, CI bars), change points
    ringed; with a single run, one row per runtime instead (a dot at its median, CI bar, the
    figure written beside it), since a lone x position stacks every runtime into one column."""
    shapes = sorted({s.shape for s in series})
    runs = sorted({p.run_id for s in series for p in s.points})
    x_of = {run: i for i, run in enumerate(runs)}
    # a commit is any text in the database: drawn literally (``plot_text``), once
    commits = {p.run_id: plot_text((p.git_commit or "?")[:7]) for s in series for p in s.points}
    colours = runtime_colours({s.runtime for s in series})
    styles = thread_styles({s.threads for s in series})
    many_threads = len(styles) > 1

    def label(s):
        return plot_text(f"{s.runtime}, {s.threads} thr" if many_threads else s.runtime)

    if len(runs) == 1:
        per_panel = max(sum(1 for s in series if s.shape == shape) for shape in shapes)
        fig, axes = _figure(len(shapes), height=max(2.4, 0.36 * per_panel + 1.4))
        order = list(colours)
        for ax, shape in zip(axes, shapes):
            rows = []
            for s in sorted((s for s in series if s.shape == shape),
                            key=lambda s: (order.index(s.runtime), s.threads or 0)):
                m = s.points[0].measurement
                rows.append({"label": label(s), "colour": colours[s.runtime],
                             "value": m.stats.median, "ci": m.stats.median_ci})
            dot_rows(ax, rows, f"median ms, 95% CI (run #{runs[0]}, {commits[runs[0]]})")
            ax.set_title(plot_text(shape_label(shape)))
        return fig
    fig, axes = _figure(len(shapes), height=3.8)
    for ax, shape in zip(axes, shapes):
        values = []
        for s in (s for s in series if s.shape == shape):
            style, marker = styles[s.threads]
            xs = [x_of[p.run_id] for p in s.points]
            ys = [p.measurement.stats.median for p in s.points]
            cis = [p.measurement.stats.median_ci or (y, y) for p, y in zip(s.points, ys)]
            values += ys + [v for c in cis for v in c]
            ax.errorbar(xs, ys, yerr=[[max(y - c[0], 0) for y, c in zip(ys, cis)],
                                      [max(c[1] - y, 0) for y, c in zip(ys, cis)]],
                        color=colours[s.runtime], linestyle=style, marker=marker, capsize=2,
                        label=label(s))
            for p in s.change_points:
                ax.plot([x_of[p.run_id]], [p.measurement.stats.median], "o", markersize=14,
                        markerfacecolor="none", markeredgewidth=2,
                        markeredgecolor="#2a7" if p.change.verdict == "faster" else "#d22")
        ax.set_title(plot_text(shape_label(shape)))
        values = [v for v in values if v > 0]
        if values:
            value_axis(ax.yaxis, min(values), max(values))
        ax.set_ylabel("median ms")
        ax.set_xticks(range(len(runs)), [f"#{r}\n{commits[r]}" for r in runs], fontsize="small")
        ax.set_xlim(-0.3, len(runs) - 0.7)
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes)
    return fig


def render_history(series, db) -> str:
    groups: dict[tuple, list] = {}
    for s in series:
        groups.setdefault(s.model_cpu, []).append(s)
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>lstm-bench history</title><style>{CSS}</style></head><body>",
             "<h1>lstm-bench history</h1>",
             f"<p class=\"meta\">{html.escape(str(db))}: "
             f"{plural(len({p.run_id for s in series for p in s.points}), 'run')}, "
             f"{plural(len(series), 'series', 'series')}. "
             "A ringed point differs from the run before by compare's test (red: slower, "
             "green: faster).</p>"]
    if not series:
        parts.append("<p>No results recorded yet.</p>")
    for (sha, cpu), group in groups.items():
        path = group[0].model_path or "model"
        parts.append(f"<h2>{html.escape(path)} <span class=\"meta\">(sha256 "
                     f"{html.escape((sha or '?')[:12])}) on {html.escape(cpu or '?')}</span></h2>")
        parts.append(f"<img alt=\"history of {html.escape(path)}\" "
                     f"src=\"data:image/png;base64,{_png(_plot(group))}\">")
        lines = change_lines(group)
        parts.append("<h3>Change points</h3>" + ("<ul>" + "".join(
            f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>" if lines
            else f"<p>{html.escape(quiet_line(group))}.</p>"))
        machine = machine_line(group)
        if machine:
            parts.append(f"<p class=\"meta\">{html.escape(machine)}.</p>")
        parts.append("<details><summary>every series</summary>" + html_table(
            series_table(group)) + "</details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
