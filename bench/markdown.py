"""The bench report as Markdown: the decision on top, then one table per thread count, and
the streaming rows in a table of their own (per call and per step).

Every text that comes from outside (a model path, a runtime name, a CPU, a note, a reason) goes
through ``md_text``: a name is shown as it is, never read as Markdown or HTML by the renderer.
"""

from __future__ import annotations

import re

from lstm_bench.bench.decision import decide, plural
from lstm_bench.bench.machine import calibration_text
from lstm_bench.bench.table import Detail, Table
from lstm_bench.bench.tables import cold_table, latency_table, streaming_table, verify_table
from lstm_bench.bench.text import NO_PEAK, machine_warnings, no_peak_note, noise_line, split_rows
from lstm_bench.printable import HIDDEN

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


# Markdown's inline syntax and raw HTML: <script>, [links](...), *emphasis*, `code`, entities
# (&#x202E; is a bidi override once rendered), table pipes
_MD_SYNTAX = re.compile(r"[\\`*_\[\]<&|]")


def md_text(text) -> str:
    """``text`` as literal Markdown: its syntax backslash-escaped, each unseen character
    written as its code (a newline as ``\\u000a``: it would start a heading or a list;
    ``printable.HIDDEN``)."""
    text = _MD_SYNTAX.sub(lambda m: "\\" + m.group(), str(text))
    return HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def by_threads(measurements) -> list[tuple[int | None, list]]:
    groups: dict = {}
    for m in measurements:
        groups.setdefault(m.threads, []).append(m)
    return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))


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
            f"{calibration_text(report.calibrations)}; {lib_text}; "
            f"commit {m.get('git_commit') or 'unknown'}{load_text}")


def md_table(table: Table) -> str:
    """The Markdown writer of a ``bench.table.Table``: every column, a row per line."""
    shown = table.shown(Detail.FULL)

    def line(cells):
        return "| " + " | ".join(cells) + " |"
    # the column names are this module's own (seq_len, not seq\_len); the cells are data
    return "\n".join([line(table.columns[i].name.strip().replace("|", "\\|") for i in shown),
                      "|" + "|".join("---" for _ in shown) + "|"]
                     + [line(md_text(str(row.cells[i]).strip()) for i in shown)
                        for row in table.rows])


def decision_markdown(report) -> list[str]:
    decision = decide(report)
    title = "## Decision: the fastest runtime that passed verify" if decision.verified else \
        "## Decision: the fastest runtime (not verified)"
    parts = [title, ""] + [f"- {md_text(line)}" for line in decision.lines()]
    if decision.excluded:
        parts += ["", "Excluded:", ""] + [f"- {md_text(line)}"
                                          for line in decision.excluded_lines()]
    notes = machine_warnings(report) + [x for x in [noise_line(report)] if x]
    for note in notes:  # a blank line between: consecutive "> " lines make one paragraph
        parts += ["", f"> {md_text(note)}"]
    return parts + [""]


def render_markdown(report) -> str:
    parts = [f"# {md_text(report.title)}", "", md_text(machine_line(report)), ""]
    parts += decision_markdown(report)
    marks = decide(report).marks()  # the runtimes left out: marked, never ranked
    sequence, stream = split_rows(report.measurements)
    if sequence:
        no_peak = no_peak_note(sequence)
        parts += ["## Latency and throughput", "", CAPTION, ""]
        parts += [md_text(no_peak), ""] if no_peak else []
        groups = by_threads(sequence)
        for threads, rows in groups:
            if len(groups) > 1:
                parts += [f"### {plural(threads, 'thread')}", ""]
            parts += [md_table(latency_table(rows, marks)), ""]
    if stream:
        parts += ["## Streaming latency", "", STREAM_CAPTION, "",
                  md_table(streaming_table(stream, marks)), ""]
    parts += ["## Cold start and memory", "", md_table(cold_table(report.measurements)), ""]
    if report.verify:
        parts += ["## Verify", "", md_table(verify_table(report.verify)), ""]
    if report.skipped:
        parts += ["## Skipped", ""] + [f"- {md_text(s.runtime)}: {md_text(s.reason)}"
                                        for s in report.skipped] + [""]
    return "\n".join(parts)
