"""compare's verdicts as files: JSON, Markdown and a self-contained HTML page.

Renders ``bench.compare.Change`` objects; the verdicts themselves are compare's."""

from __future__ import annotations

import html
from dataclasses import asdict

from lstm_bench.files import write_json, write_text

COLUMNS = ("runtime", "batch", "seq_len", "threads", "base ms", "new ms", "change", "p (slower)",
           "verdict")


def _fmt(value, spec) -> str:
    return "–" if value is None else format(value, spec)


def rows(changes) -> list[list[str]]:
    out = []
    for c in changes:
        runtime, batch, seq_len, threads, *_ = c.key
        out.append([runtime, str(batch), str(seq_len), _fmt(threads, "d"),
                    _fmt(c.base_median_ms, ".4g"), _fmt(c.new_median_ms, ".4g"),
                    _fmt(c.change_pct, "+.1f") + (" %" if c.change_pct is not None else ""),
                    _fmt(c.p_slower, ".2g"), c.verdict])
    return out


def headline(changes) -> str:
    regressions = [c for c in changes if c.regression]
    if regressions:
        return f"{len(regressions)} regression(s) of {len(changes)} rows"
    return f"no regression in {len(changes)} rows"


def to_dict(changes, *, base, new, fail_above, notes=()) -> dict:
    return {"schema": "lstm-bench/compare/1", "base": str(base), "new": str(new),
            "fail_above_pct": fail_above, "regression": any(c.regression for c in changes),
            "headline": headline(changes), "notes": list(notes),
            "changes": [{**asdict(c), "key": list(c.key)} for c in changes]}


def render_markdown(changes, *, base, new, fail_above, notes=()) -> str:
    from lstm_bench.bench.markdown import md_table

    parts = [f"# lstm-bench compare: {headline(changes)}", "",
             f"Base `{base}`, new `{new}`; a regression is slower beyond noise and by more than "
             f"{fail_above:g} %.", ""]
    parts += [f"> {n}" for n in notes] + ([""] if notes else [])
    parts += [md_table(COLUMNS, rows(changes)), ""]
    return "\n".join(parts)


def render_html(changes, *, base, new, fail_above, notes=()) -> str:
    from lstm_bench.bench.page import CSS, html_table

    title = f"lstm-bench compare: {headline(changes)}"
    colour = "#d22" if any(c.regression for c in changes) else "#2a7"
    return "\n".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1 style=\"color:{colour}\">{html.escape(title)}</h1>",
        f"<p class=\"meta\">base {html.escape(str(base))}, new {html.escape(str(new))}; a "
        f"regression is slower beyond noise and by more than {fail_above:g} %.</p>",
        *[f"<p class=\"warn\">{html.escape(n)}</p>" for n in notes],
        html_table(COLUMNS, rows(changes)), "</body></html>\n"])


def write_compare_reports(changes, *, base, new, fail_above, notes=(), json=None, md=None,
                          html=None) -> list:
    """Each format given a path; returns the paths written."""
    context = dict(base=base, new=new, fail_above=fail_above, notes=notes)
    written = []
    if json:
        written.append(write_json(json, to_dict(changes, **context)))
    if md:
        written.append(write_text(md, render_markdown(changes, **context)))
    if html:
        written.append(write_text(html, render_html(changes, **context)))
    return written
