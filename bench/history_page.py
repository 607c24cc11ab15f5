"""The history as one self-contained HTML page: per series and machine, a panel per shape with
each runtime's median over the runs (95 % CI bars, each run's date on the time axis), change
points ringed (red: slower, green: faster), and the change points listed; and as a JSON
document (``history_json``) with every point."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from lstm_bench.bench.decision import plural, shape_label
from lstm_bench.bench.history_sql import shown
from lstm_bench.bench.series import change_lines, changed, machine_line, quiet_line, \
    series_table
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
    commits = {p.run_id: plot_text(f"{when(p.recorded)[5:]}\n{(p.git_commit or '?')[:7]}")
               for s in series for p in s.points}
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
            when_commit = commits[runs[0]].replace("\n", ", ")
            dot_rows(ax, rows, f"median ms, 95% CI (run #{runs[0]}, {when_commit})")
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
                        markeredgecolor="#2a7" if p.segment.verdict == "faster" else "#d22")
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


def when(recorded: str) -> str:
    """A run's recorded time, to the minute: ``2026-11-27 00:01``."""
    return recorded[:16].replace("T", " ")


def machine_label(machine: dict, *, with_id: bool = True) -> str:
    """``name (CPU, N cores, GPU) [machine ID]``, from what the database recorded."""
    parts = [machine.get("cpu") or "?"]
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    if machine.get("gpu"):
        parts.append(machine["gpu"])
    text = ", ".join(parts)
    if machine.get("name"):
        text = f"{machine['name']} ({text})"
    return f"{text} [machine {machine.get('id') or '?'}]" if with_id else text


def group_label(group) -> str:
    """One series on one machine: its name, its latest model (the path where it is not the
    series' name) and the machine."""
    s = group[0]
    model = f"model {s.model_path}, " if s.model_path != s.key.series else ""
    return (f"{s.key.series} ({model}sha256 {(s.points[-1].model_sha256 or '?')[:12]}) on "
            f"{machine_label(s.machine, with_id=False)}")


def time_span(group) -> str:
    """The group's runs on the time axis (how many, from when to when) and its machine's id."""
    points = sorted({(p.run_id, p.recorded) for s in group for p in s.points})
    machine = f"machine {group[0].key.machine_id}"
    if len(points) == 1:
        return f"1 run, #{points[0][0]} at {when(points[0][1])}, {machine}"
    return (f"{len(points)} runs, #{points[0][0]} at {when(points[0][1])} -> #{points[-1][0]} "
            f"at {when(points[-1][1])}, {machine}")


def by_series(series) -> list[tuple[str, list]]:
    """(label, its series) per series name and machine, in the order the database gave them."""
    groups: dict[tuple, list] = {}
    for s in series:
        groups.setdefault(s.series_machine, []).append(s)
    return [(group_label(group), group) for group in groups.values()]


def history_json(series, db) -> dict:
    """Every series with every point: when, commit, model, median and CI, the change against
    the point before and what changed with it, and where a segment starts its change against
    the segment before (``--json``)."""
    def point(s, i, p):
        c = p.change
        return {"run": p.run_id, "recorded": p.recorded, "git_commit": p.git_commit,
                "model_sha256": p.model_sha256, "median_ms": p.measurement.stats.median,
                "ci_ms": list(p.measurement.stats.median_ci or ()) or None,
                "change": None if c is None else {
                    "verdict": c.verdict, "change_pct": c.change_pct, "p_slower": c.p_slower,
                    "p_faster": c.p_faster, "change_point": p in s.change_points,
                    "changed": changed(s.points[i - 1], p)},
                # where a segment starts: its change against the segment before (the
                # change point's figures; bench.changepoints)
                "segment": None if p.segment is None else {
                    "verdict": p.segment.verdict, "change_pct": p.segment.change_pct,
                    "low_pct": p.segment.low_pct, "high_pct": p.segment.high_pct,
                    "base_processes": p.segment.base_processes,
                    "new_processes": p.segment.new_processes}}

    return {"database": shown(db), "series": [
        {"series": s.key.series, "machine": s.machine, "runtime": s.runtime,
         "mode": s.key.row.mode, "chunk": s.key.row.chunk, "batch": s.key.row.batch,
         "seq_len": s.key.row.seq_len, "threads": s.threads, "model_path": s.model_path,
         "points": [point(s, i, p) for i, p in enumerate(s.points)]} for s in series]}


def render_history(series, db) -> str:
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>lstm-bench history</title><style>{CSS}</style></head><body>",
             "<h1>lstm-bench history</h1>",
             f"<p class=\"meta\">{html.escape(shown(db))}: "
             f"{plural(len({p.run_id for s in series for p in s.points}), 'run')}, "
             f"{plural(len(series), 'series', 'series')}. "
             "A ringed point starts a segment of the series that differs from the one before "
             "by compare's test (red: slower, green: faster).</p>"]
    if not series:
        parts.append("<p>No results recorded yet.</p>")
    for label, group in by_series(series):
        path = group[0].key.series
        parts.append(f"<h2>{html.escape(label)} <span class=\"meta\">"
                     f"{html.escape(time_span(group))}</span></h2>")
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
