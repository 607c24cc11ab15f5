"""Which columns of a terminal table fit a width, so that rich never has to cut a cell.

rich squeezes a table that is too wide by shrinking its columns, and a cell that no longer
fits gets an ellipsis ("0.0026…", "noi…") even with no_wrap, or is folded mid-word. The
tables here instead leave out their least important columns until every kept one has the
width its widest cell needs (``lstm_bench.cli.terminal.grid``, for every table).
"""

from __future__ import annotations


def spacing(count: int) -> int:
    """The characters a box.SIMPLE_HEAD table with pad_edge=False adds to its ``count``
    columns: a space at each edge and three between two columns (padding, divider, padding)."""
    return 3 * count - 1 if count else 0


def fitting(columns: list[str], needed: dict[str, int], width: int,
            importance: list[str]) -> list[str]:
    """``columns`` (in their order) less the least important ones, until the kept columns'
    ``needed`` widths and their spacing fit ``width``. ``importance`` lists the columns that
    may go, most important first; a column not in it is always kept. When even the columns
    that must stay are too wide, they are all that is left (rich then squeezes them)."""
    kept = list(columns)
    droppable = [c for c in reversed(importance) if c in kept]
    while sum(needed[c] for c in kept) + spacing(len(kept)) > width and droppable:
        kept.remove(droppable.pop(0))
    return kept
