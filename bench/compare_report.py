"""compare's verdicts as files: JSON, Markdown and a self-contained HTML page.

Renders ``bench.compare.Change`` objects; the verdicts themselves are compare's."""

from __future__ import annotations

import html
from dataclasses import asdict

from lstm_bench.bench.compare import ALPHA, CELLS, caption, cells_of, shape_of
from lstm_bench.files import to_json, write_text

COLUMNS = tuple("threads" if c == "thr" else c for c in CELLS)


def rows(changes) -> list[list[str]]:
    """One row per change, grouped by shape as on the terminal."""
    return [cells_of(c) for c in sorted(changes, key=shape_of)]


def headline(changes) -> str:
    """The verdict over the rows both reports have; rows only in one are counted apart (no
    test was run on them)."""
    from lstm_bench.bench.decision import plural

    compared = [c for c in changes if not c.verdict.startswith("only in")]
    regressions = [c for c in compared if c.regression]
    alone = [f"{plural(n, 'row')} only in {side}" for side in ("base", "new")
             if (n := sum(c.verdict == f"only in {side}" for c in changes))]
    rows = plural(len(compared), "row") + (" compared" if alone else "")
    text = f"{plural(len(regressions), 'regression')} of {rows}" if regressions else \
        f"no regression in {rows}"
    return text + ("; " + ", ".join(alone) if alone else "")


def to_dict(changes, *, base, new, fail_above, notes=(), paired=False) -> dict:
    return {"schema": "lstm-bench/compare/1", "base": str(base), "new": str(new),
            "fail_above_pct": fail_above, "alpha": ALPHA,
            "test": "wilcoxon (paired blocks)" if paired else "mann-whitney (blocks)",
            "regression": any(c.regression for c in changes),
            "headline": headline(changes), "notes": list(notes),
            "changes": [{**asdict(c), "key": list(c.key)} for c in changes]}


def render_markdown(changes, *, base, new, fail_above, notes=(), paired=False) -> str:
    from lstm_bench.bench.markdown import md_table

    parts = [f"# lstm-bench compare: {headline(changes)}", "",
             f"Base `{base}`, new `{new}`. {caption(fail_above, paired)}", ""]
    parts += [f"> {n}" for n in notes] + ([""] if notes else [])
    parts += [md_table(COLUMNS, rows(changes)), ""]
    return "\n".join(parts)


def render_html(changes, *, base, new, fail_above, notes=(), paired=False) -> str:
    from lstm_bench.bench.page import CSS, html_table

    title = f"lstm-bench compare: {headline(changes)}"
    colour = "#d22" if any(c.regression for c in changes) else "#2a7"
    return "\n".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1 style=\"color:{colour}\">{html.escape(title)}</h1>",
        f"<p class=\"meta\">base {html.escape(str(base))}, new {html.escape(str(new))}. "
        f"{html.escape(caption(fail_above, paired))}</p>",
        *[f"<p class=\"warn\">{html.escape(n)}</p>" for n in notes],
        html_table(COLUMNS, rows(changes), group_by=2), "</body></html>\n"])


def write_compare_reports(changes, *, base, new, fail_above, notes=(), json=None, md=None,
                          html=None, paired=False) -> list:
    """Each format given a path; returns the paths written. ``paired``: a live comparison
    (both models in one rotation, tested pair by pair)."""
    context = dict(base=base, new=new, fail_above=fail_above, notes=notes, paired=paired)
    rendered = []  # all rendered before any is written, as bench.report.write_reports does
    if json:
        rendered.append((json, to_json(to_dict(changes, **context))))
    if md:
        rendered.append((md, render_markdown(changes, **context)))
    if html:
        rendered.append((html, render_html(changes, **context)))
    return [write_text(path, text) for path, text in rendered]
