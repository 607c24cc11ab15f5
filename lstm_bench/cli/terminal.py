"""Reports on a terminal: every table (``print_table``, the terminal's writer of a
``bench.table.Table``), and the bench report, its decision first.

At any width the tables keep runtime names whole: rows are grouped by shape (a heading row per
shape, runtimes fastest first) so that batch and sequence length need no columns, and below
100 columns only the figures a reader compares are shown (median, its 95 % CI, the ratio to
the fastest, noise); the full figures are in the JSON, Markdown and HTML files. Streaming rows
(one call of a chunk of steps, h and c carried) have their own table: their figures are per
call and per step, not per sequence.

The width: the terminal's, also when standard output is piped (`| head`, `| less`: the
terminal of standard error or input); with no terminal at all (a log, cron) $COLUMNS, else 80.

Names come from users' files and paths: whatever a console of ``make_console`` prints shows
their control characters as escapes (``lstm_bench.printable.visible``: an ``ESC[2J`` in a file
name neither clears the screen nor colours a fake verdict), and text from a file is never read
as rich markup (``Text``, or ``markup=False``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import textwrap

from lstm_bench.bench.decision import decide, plural
from lstm_bench.bench.table import WIDE_TERMINAL, Detail, Group, Table
from lstm_bench.bench.tables import cold_table, latency_table, streaming_table
from lstm_bench.bench.text import (MEDIAN_CAPTION, machine_warnings, no_peak_note, noise_line,
                                   split_rows)
from lstm_bench.cli.columns import fitting
from lstm_bench.printable import visible


def make_console(stderr: bool = False):
    """A rich console as wide as the terminal that shows control characters in what it prints
    as escapes (see the module doc)."""
    return _visible_console()(stderr=stderr)


@functools.cache
def _visible_console():
    """rich's Console, its rendered text made ``visible`` (its own line breaks kept) before it
    reaches the terminal; rich's own styles and cursor moves are added after, untouched."""
    from rich.console import Console
    from rich.segment import Segment

    class VisibleConsole(Console):
        def render(self, renderable, options=None):
            for segment in super().render(renderable, options):
                yield segment if segment.control else Segment(
                    visible(segment.text, keep="\n"), segment.style)

    return VisibleConsole


def print_lines(console, lines, marker: str = "", style: str | None = None,
                indent: int = 2) -> None:
    """Lines as hanging bullets that wrap at spaces only (a path or a URL stays whole, on a
    line of its own when it is long), with no padding after them."""
    from rich.text import Text

    lead = " " * indent + (marker + " " if marker else "")
    width = max(console.width - len(lead), 20)
    for line in lines:
        # a line break in a reason is a space (as textwrap makes it), other controls are shown
        # as escapes, first: they take room on the line
        line = visible(re.sub(r"[\t\n\r\v\f]", " ", line))
        # "95 %", "12 ms": a figure and its unit stay on one line
        glued = re.sub(r" (?=(%|ms|x)\b)", "\0", line)
        wrapped = textwrap.wrap(glued, width, break_long_words=False,
                                break_on_hyphens=False) or [""]
        for i, part in enumerate(wrapped):
            text = (lead if i == 0 else " " * len(lead)) + part.replace("\0", " ")
            console.print(Text(text, style=style), soft_wrap=True, highlight=False)


def print_paths(console, label: str, paths) -> None:
    """``label: path`` when it fits the width, else the label and then one path per line:
    a path is never broken across lines (a terminal's own wrap would cut it anywhere)."""
    paths = [visible(str(p)) for p in paths]  # a line break in a name shown, not obeyed
    if not paths:
        return
    one_line = f"{label} " + ", ".join(paths)
    if len(one_line) <= console.width:
        console.print(one_line, soft_wrap=True, highlight=False, markup=False)
        return
    console.print(label.rstrip(":") + ":", highlight=False, markup=False)
    for path in paths:
        console.print(f"  {path}", soft_wrap=True, highlight=False, markup=False)


def print_recorded(console, run_id: int, db) -> None:
    """Where the history database got this run, and the command that shows it: the path and
    the command each kept whole (``print_paths``)."""
    print_paths(console, f"recorded as run #{run_id} in", [db])
    print_paths(console, "see:", [f"lstm-bench history --db {db}"])


def print_table(console, table: Table, *, caption: str | None = None,
                compact: bool = False) -> None:
    """A ``bench.table.Table``: its title (bold), ``caption`` (dim), then ``grid``."""
    from rich.text import Text

    if table.title:
        console.print(Text(table.title, style="bold"))
    if caption:
        print_lines(console, [caption], indent=0, style="dim")
    console.print(grid(table, console.width, compact=compact))


def grid(table: Table, width: int, *, compact: bool = False):
    """The rows of ``table`` as a rich table, a heading row above each group, in the columns
    whose every cell fits whole at ``width`` (``lstm_bench.cli.columns.fitting``): a figure,
    a heading or a word is never cut (only a huge name is, in its middle: ``cut_names``).
    ``compact``: two spaces between columns rather than
    three, and no blank edge lines."""
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    table = cut_names(table, width)
    detail = Detail.WIDE if width >= WIDE_TERMINAL else Detail.NARROW
    shown = table.shown(detail, grouped=False)
    rows = table.rows
    needed = {}
    for i in shown:
        column = table.columns[i]
        cells = [visible(row.cells[i]) for row in rows]  # as printed: escapes take room
        if column.wrap:  # it may wrap at spaces, never inside a word
            cells = [max(cell.split() or [""], key=len) for cell in cells]
        needed[i] = max(len(text) for text in column.heading.split("\n") + cells)
    needed[shown[0]] = max([needed[shown[0]]] + [len(visible(g.heading)) for g in table.groups
                                                  if g.heading])
    names = fitting([table.columns[i].name for i in shown],
                    {table.columns[i].name: needed[i] for i in shown}, width,
                    list(table.importance))
    kept = [i for i in shown if table.columns[i].name in names]
    drawn = RichTable(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                      **(dict(show_edge=False, padding=(0, 1, 0, 0)) if compact else {}))
    for n, i in enumerate(kept):
        column = table.columns[i]
        drawn.add_column(column.heading, justify="left" if n == 0 else column.align,
                         no_wrap=not column.wrap,
                         min_width=needed[i] if n == 0 or column.wrap else None)
    for group in table.groups:
        if group.heading:
            drawn.add_row(Text(visible(group.heading), style="bold"), *[""] * (len(kept) - 1))
        for j, row in enumerate(group.rows):
            # headless groups of several rows are set apart by a line
            last = group.heading is None and len(group.rows) > 1 and j == len(group.rows) - 1
            drawn.add_row(*(Text(visible(row.cells[i]),
                                 style=row.styles.get(table.columns[i].name, ""))
                            for i in kept), style=row.style, end_section=last)
    return drawn


def cut_names(table: Table, width: int) -> Table:
    """``table`` with every word longer than a fifth of ``width`` (24 characters at least,
    as printed: ``visible``) cut in its middle with an ellipsis, which no figure, heading or
    runtime name is. A 200 KB output name made verify's table leave out every column but the
    runtime and its verdict to make room for it; the JSON, Markdown and HTML keep it whole."""
    longest = max(24, width // 5)
    head = longest // 2

    def cut(text: str) -> str:
        return " ".join(word if len(word) <= longest
                        else word[:head] + "\u2026" + word[len(word) - (longest - head - 1):]
                        for word in visible(text).split(" "))

    return dataclasses.replace(table, groups=tuple(
        Group(group.heading and cut(group.heading),
              tuple(dataclasses.replace(row, cells=tuple(map(cut, row.cells)))
                    for row in group.rows))
        for group in table.groups))


def print_decision(report, console) -> None:
    """The decision: the fastest verified runtime per shape, then who was left out and why,
    then what makes the figures less sure (noise, a busy machine). Bullets hang, so a wrapped
    line never reads as a new item."""
    decision = decide(report)
    title = "decision: fastest runtime that passed verify" if decision.verified else \
        "decision: fastest runtime (not verified)"
    console.print(f"[bold]{title}[/bold]", highlight=False)
    print_lines(console, decision.lines(), "*")
    print_lines(console, [f"excluded {line}" for line in decision.excluded_lines()], "-",
                style="dim")
    print_lines(console, machine_warnings(report) + [x for x in [noise_line(report)] if x], "!",
                style="yellow")


def print_report(report, console=None) -> None:
    from rich.text import Text

    console = console or make_console()
    print_decision(report, console)
    marks = decide(report).marks()  # the runtimes left out: marked, never ranked
    sequence, stream = split_rows(report.measurements)
    # % peak is a wide terminal's column: why some rows have none is said where it is shown
    no_peak = no_peak_note(sequence) if console.width >= WIDE_TERMINAL else None
    for table in ([latency_table(sequence, marks)] if sequence else []) + (
            [streaming_table(stream, marks)] if stream else []):
        console.print()
        caption = MEDIAN_CAPTION
        if no_peak and table.title == "latency and throughput":
            caption += f"; {no_peak}"
        print_table(console, table, caption=caption)
    print_table(console, cold_table(report.measurements))
    measured = {m.runtime for m in report.measurements}
    for skip in report.skipped:  # runtimes not measured at all are in the decision already
        if skip.runtime in measured:
            console.print(Text(f"skipped {skip.runtime} at {plural(skip.threads, 'thread')}: "
                               f"{skip.reason}", style="dim"))
