"""The bench report as one self-contained HTML page: the decision, the plots, then the tables.

Nothing is fetched from elsewhere (plots are inline PNG). Long sweeps stay short to scroll:
one table per thread count, folded (``<details>``) beyond the first when there are many rows.
"""

from __future__ import annotations

import html

from lstm_bench.bench.decision import decide, plural
from lstm_bench.bench.markdown import CAPTION, STREAM_CAPTION, by_threads, machine_line
from lstm_bench.bench.plots import all_plots
from lstm_bench.bench.table import Detail, Table
from lstm_bench.bench.tables import (EXCLUDED_STYLE, cold_table, latency_table,
                                     streaming_table, verify_table)
from lstm_bench.bench.text import machine_warnings, no_peak_note, noise_line, split_rows

FOLD_ROWS = 24  # more result rows than this: thread counts after the first start folded

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;padding:0 1.5em;color:#222;
max-width:1320px;line-height:1.4}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.meta{color:#555}img{width:100%;height:auto;margin:.3em 0 1em}
.decision{border-left:5px solid #2a7;background:#f2faf5;padding:.6em 1.2em;margin:1em 0}
.decision li{margin:.2em 0}.excluded{color:#555}.warn{color:#8a5a00}
details>summary{cursor:pointer;font-weight:600;margin:.4em 0}
.wrap{overflow-x:auto}tr.group td{border-top:2px solid #999}
tr.excluded td{color:#888;font-style:italic}"""


def html_table(table: Table) -> str:
    """The HTML writer of a ``bench.table.Table``: the columns of ``Detail.PAGE`` (the page's
    tables fit a 1280 px laptop screen; the Markdown keeps min, p90 and steps/s), a rule above
    each new group; a row the decision left out greyed."""
    shown = table.shown(Detail.PAGE)
    head = "".join(f"<th>{html.escape(table.columns[i].name)}</th>" for i in shown)
    style = {i: ' style="white-space:normal;text-align:left"' if table.columns[i].wrap else ""
             for i in shown}
    body = []
    for n, group in enumerate(table.groups):
        for j, row in enumerate(group.rows):
            classes = " ".join(name for name, on in (("group", n > 0 and j == 0),
                                                     ("excluded", row.style == EXCLUDED_STYLE))
                               if on)
            rule = f' class="{classes}"' if classes else ""
            body.append(f"<tr{rule}>" + "".join(
                f"<td{style[i]}>{html.escape(row.cells[i].strip())}</td>" for i in shown)
                + "</tr>")
    return (f'<div class="wrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def decision_html(report) -> str:
    decision = decide(report)
    title = ("Decision: the fastest runtime that passed verify" if decision.verified
             else "Decision: the fastest runtime (not verified)")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in decision.lines())
    parts = [f'<section class="decision"><h2>{title}</h2><ul>{items}</ul>']
    if decision.excluded:
        parts.append('<p class="excluded">Excluded:</p><ul class="excluded">' + "".join(
            f"<li>{html.escape(line)}</li>" for line in decision.excluded_lines()) + "</ul>")
    notes = machine_warnings(report) + [x for x in [noise_line(report)] if x]
    parts += [f'<p class="warn">{html.escape(n)}</p>' for n in notes]
    return "".join(parts) + "</section>"


def _fold(summary: str, body: str, open_: bool) -> str:
    return (f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>"
            f"{body}</details>")


def results_html(measurements, marks=None) -> str:
    groups = by_threads(measurements)
    long = len(measurements) > FOLD_ROWS
    if len(groups) == 1 and not long:
        return html_table(latency_table(measurements, marks))
    return "".join(_fold(f"{plural(threads, 'thread')} ({plural(len(rows), 'row')})",
                         html_table(latency_table(rows, marks)), open_=(i == 0 or not long))
                   for i, (threads, rows) in enumerate(groups))


def render_html(report) -> str:
    title = report.title
    plots = "".join(f"<h3>{html.escape(caption)}</h3><img alt=\"{html.escape(caption)}\" "
                    f"src=\"data:image/png;base64,{data}\">" for caption, data in all_plots(report))
    cold = html_table(cold_table(report.measurements))
    marks = decide(report).marks()  # the runtimes left out: marked, never ranked
    sequence, stream = split_rows(report.measurements)
    tables = []
    if sequence:
        no_peak = no_peak_note(sequence)
        tables += ["<h2>Latency and throughput</h2>",
                   f"<p class=\"meta\">{html.escape(CAPTION.replace('`', ''))}</p>",
                   f"<p class=\"meta\">{html.escape(no_peak)}</p>" if no_peak else "",
                   results_html(sequence, marks)]
    if stream:
        tables += ["<h2>Streaming latency</h2>",
                   f"<p class=\"meta\">{html.escape(STREAM_CAPTION.replace('`', ''))}</p>",
                   html_table(streaming_table(stream, marks))]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class=\"meta\">{html.escape(machine_line(report))}</p>",
        decision_html(report),
        "<h2>Plots</h2>", plots or "<p>No plots: nothing was measured.</p>",
        *tables,
        "<h2>Cold start and memory</h2>",
        cold if len(report.measurements) <= FOLD_ROWS
        else _fold("cold start per runtime and thread count", cold, open_=False),
    ]
    if report.verify:
        parts += ["<h2>Verify</h2>", html_table(verify_table(report.verify))]
    if report.skipped:
        parts += ["<h2>Skipped</h2><ul>"] + [
            f"<li>{html.escape(s.runtime)}: {html.escape(s.reason)}</li>"
            for s in report.skipped] + ["</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)
