"""compare's verdicts as a table (``bench.table``) and as files: JSON, Markdown and a
self-contained HTML page, one writer each (``WRITERS``).

Renders ``bench.compare.Change`` objects; the verdicts themselves are compare's."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass

from lstm_bench.bench.compare import ALPHA, PAIRED_TEST, SAVED_TEST, Change, caption
from lstm_bench.bench.gate import INCONCLUSIVE, LIVE_COMMAND, SPEED_CHANGED, spread_summary
from lstm_bench.bench.decision import plural
from lstm_bench.bench.markdown import md_table, md_text
from lstm_bench.bench.page import CSS, html_table
from lstm_bench.bench.report import write_formats
from lstm_bench.bench.table import Column, Detail, Table
from lstm_bench.bench.tables import KEY_COLUMNS, keyed_groups
from lstm_bench.bench.text import ms_text, p_short
from lstm_bench.files import to_json

STYLES = {"regression": "bold red", "slower": "yellow", "faster": "green",
          INCONCLUSIVE: "magenta", SPEED_CHANGED: "magenta"}


@dataclass(frozen=True)
class Comparison:
    """compare's verdicts with what they were judged by, as every writer renders them.
    ``paired``: a live comparison (both models in one rotation, tested pair by pair)."""

    changes: list[Change]
    base: str
    new: str
    fail_above: float
    notes: tuple[str, ...] = ()
    paired: bool = False

    @property
    def regression(self) -> bool:
        return any(c.regression for c in self.changes)

    @property
    def caption(self) -> str:
        spread = None if self.paired else spread_summary(self.changes)
        return caption(self.fail_above, self.paired) + (f" {spread}" if spread else "")

    @property
    def headline(self) -> str:
        """The verdict over the rows both reports have; rows only in one are counted apart
        (no test was run on them)."""
        compared = [c for c in self.changes if not c.verdict.startswith("only in")]
        regressions = [c for c in compared if c.regression]
        alone = [f"{plural(n, 'row')} only in {side}" for side in ("base", "new")
                 if (n := sum(c.verdict == f"only in {side}" for c in self.changes))]
        rows = plural(len(compared), "row") + (" compared" if alone else "")
        text = f"{plural(len(regressions), 'regression')} of {rows}" if regressions else \
            f"no regression in {rows}"
        if self.inconclusive:  # not a failure, but not a pass either: say what settles it
            kinds = {c.verdict for c in self.inconclusive}
            counted = ", ".join(f"{sum(c.verdict == k for c in self.inconclusive)} {k}"
                                for k in (INCONCLUSIVE, SPEED_CHANGED) if k in kinds)
            text += f"; {counted} (measure both live: `{LIVE_COMMAND}`)"
        return text + ("; " + ", ".join(alone) if alone else "")

    @property
    def inconclusive(self) -> list[Change]:
        return [c for c in self.changes if c.inconclusive]


def _pct(value) -> str:
    return "–" if value is None else f"{value:+.1f} %"


def changes_table(changes) -> Table:
    """The verdicts under a heading per shape and thread count, so that runtime names,
    figures and verdicts are never cut: fits 80 columns; from ``table.WIDE_TERMINAL`` on,
    the blocks (or the spread) too. Each column says which figure it is: saved reports show
    the medians' change and the interval the verdict tested; a live run shows the medians'
    change beside the paired change its verdict tests, and the test's p-values."""
    if any(c.test == PAIRED_TEST for c in changes):
        columns = KEY_COLUMNS + (
            Column("base ms"), Column("new ms"), Column("medians change", "medians\nchange"),
            Column("paired change", "paired\nchange"),
            Column("p slower", "p\nslower"), Column("p faster", "p\nfaster"),
            Column("blocks", detail=Detail.WIDE), Column("verdict", align="left", wrap=True))

        def cells(c: Change):
            return (ms_text(c.base_median_ms), ms_text(c.new_median_ms),
                    _pct(c.median_change_pct), _pct(c.change_pct),
                    p_short(c.p_slower), p_short(c.p_faster),
                    f"{c.base_blocks}/{c.new_blocks}" if c.base_blocks is not None else "–",
                    c.verdict)
    else:
        # the machine's change of speed (bench.speed), where a report pair has it: a column
        # on wide terminals; at 80 columns the notes and the spread say it
        machine = any(c.speed_pct is not None for c in changes)
        columns = KEY_COLUMNS + (
            Column("base ms"), Column("new ms"),
            *([Column("machine", detail=Detail.WIDE)] if machine else []), Column("change"),
            Column("90 % interval", "90 %\ninterval"),
            Column("spread", detail=Detail.WIDE, align="left"),
            Column("verdict", align="left", wrap=True))

        def cells(c: Change):
            interval = ("–" if c.low_pct is None else
                        f"{c.low_pct:+.1f}..{c.high_pct:+.1f}")
            return (ms_text(c.base_median_ms), ms_text(c.new_median_ms),
                    *([_pct(c.speed_pct)] if machine else []), _pct(c.change_pct), interval,
                    c.spread or "–", c.verdict)
    return Table("", columns, keyed_groups(changes, lambda c: c.key, cells,
                                           lambda c: STYLES.get(c.verdict)))


def to_dict(comparison: Comparison) -> dict:
    def change(c):
        k = c.key
        return {**asdict(c), "key": [k.runtime, k.batch, k.seq_len, k.threads, k.mode]}
    return {"schema": "lstm-bench/compare/1", "base": str(comparison.base),
            "new": str(comparison.new), "fail_above_pct": comparison.fail_above, "alpha": ALPHA,
            "test": PAIRED_TEST if comparison.paired else SAVED_TEST,
            "regression": comparison.regression,
            "inconclusive": len(comparison.inconclusive), "headline": comparison.headline,
            "notes": list(comparison.notes),
            "changes": [change(c) for c in comparison.changes]}


def render_markdown(comparison: Comparison) -> str:
    parts = [f"# lstm-bench compare: {md_text(comparison.headline)}", "",
             f"Base {md_text(comparison.base)}, new {md_text(comparison.new)}. "
             f"{comparison.caption}", ""]
    parts += [f"> {md_text(n)}" for n in comparison.notes] + ([""] if comparison.notes else [])
    parts += [md_table(changes_table(comparison.changes)), ""]
    return "\n".join(parts)


def render_html(comparison: Comparison) -> str:
    title = f"lstm-bench compare: {comparison.headline}"
    # red: a regression; amber: none, but some rows could not be judged; green: a pass
    colour = "#d22" if comparison.regression else "#b70" if comparison.inconclusive else "#2a7"
    return "\n".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1 style=\"color:{colour}\">{html.escape(title)}</h1>",
        f"<p class=\"meta\">base {html.escape(str(comparison.base))}, new "
        f"{html.escape(str(comparison.new))}. {html.escape(comparison.caption)}</p>",
        *[f"<p class=\"warn\">{html.escape(n)}</p>" for n in comparison.notes],
        html_table(changes_table(comparison.changes)), "</body></html>\n"])


# format -> writer: a new format is one writer and one line here
WRITERS = {"json": lambda comparison: to_json(to_dict(comparison)), "md": render_markdown,
           "html": render_html}


def write_compare_reports(comparison: Comparison, **paths) -> list:
    """Each format of ``WRITERS`` given a path (``json=``, ``md=``, ``html=``); returns the
    paths written (``report.write_formats``)."""
    return write_formats(WRITERS, comparison, paths)
