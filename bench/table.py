"""A report's table as data: built once from the results, drawn by every writer.

A ``Table`` holds its cells as text, already formatted (``bench.text``), in groups of rows
(one group per shape, say). The writers only lay it out: the terminal
(``lstm_bench.cli.terminal.print_table``: a heading row per group, the columns a width
holds), Markdown (``bench.markdown.md_table``) and HTML (``bench.page.html_table``: a rule
between groups). Each writer shows the columns up to its ``Detail``; a column ``grouped``
is said by its group's heading on a terminal and is a column of its own in the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

WIDE_TERMINAL = 100  # from this many columns on, a terminal shows the wide set of figures


class Detail(IntEnum):
    """How much of a table a writer shows: a column is shown from its level on."""

    NARROW = 0  # a terminal narrower than WIDE_TERMINAL columns
    WIDE = 1  # a terminal of WIDE_TERMINAL columns or more
    PAGE = 2  # the HTML page (its tables fit a laptop screen)
    FULL = 3  # Markdown: every figure


@dataclass(frozen=True)
class Column:
    name: str
    short: str | None = None  # the heading on a terminal, where it differs ("thr")
    detail: Detail = Detail.NARROW
    align: str = "right"  # or "left"
    wrap: bool = False  # its text may wrap at spaces (never inside a word)
    grouped: bool = False  # said by the group's heading on a terminal

    @property
    def heading(self) -> str:
        """The terminal's heading (it may span lines: "p\\nslower")."""
        return self.short or self.name


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]  # one per column of the table
    style: str | None = None  # the whole row's, on a terminal ("bold red")
    styles: dict[str, str] = field(default_factory=dict)  # column name -> a cell's own


@dataclass(frozen=True)
class Group:
    """Rows that belong together: the terminal puts ``heading`` above them (none: a line
    between groups of several rows), the page a rule."""

    heading: str | None
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Table:
    """``importance``: the columns a narrow terminal may leave out, most important first
    (``lstm_bench.cli.columns.fitting``); the first column always stays."""

    title: str  # "": none
    columns: tuple[Column, ...]
    groups: tuple[Group, ...]
    importance: tuple[str, ...] = ()

    def shown(self, detail: Detail, *, grouped: bool = True) -> list[int]:
        """The indices of the columns a writer of this ``detail`` shows (``grouped``: those
        said by the group headings too)."""
        return [i for i, c in enumerate(self.columns)
                if c.detail <= detail and (grouped or not c.grouped)]

    @property
    def rows(self) -> list[Row]:
        return [row for group in self.groups for row in group.rows]


def one_group(rows) -> tuple[Group]:
    """The groups of a table with no groups."""
    return (Group(None, tuple(rows)),)
