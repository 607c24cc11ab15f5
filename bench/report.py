"""Rendering, kept apart from measuring: one JSON document, and the table, Markdown and HTML
drawn from it (so any report can be redrawn from a saved JSON file).

The document: ``schema``, ``model``, ``machine``, ``settings``, ``peak_gflops``, ``results``
(one row per runtime, batch, seq_len and threads; see ``Measurement.as_dict``), ``skipped``,
``warnings`` and, when a verify run went with it, ``verify``.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import write_text  # noqa: F401  (re-exported for the report writers)

SCHEMA = "lstm-bench/bench/1"
REQUIRED_ROW_KEYS = ("runtime", "batch", "seq_len", "threads", "latency_ms", "throughput",
                     "samples_ns")


def build_document(result, *, model: dict, machine: dict, verify: dict | None = None) -> dict:
    """The JSON report of a ``harness.SweepResult``."""
    rows = [m.as_dict() for m in result.measurements]
    warnings = [w for w in (m.warning() for m in result.measurements) if w]
    return {
        "schema": SCHEMA,
        "model": model,
        "machine": machine,
        "settings": result.settings.as_dict(),
        "peak_gflops": result.peak_gflops,
        "results": rows,
        "skipped": result.skipped,
        "warnings": warnings,
        **({"verify": verify} if verify else {}),
    }


def write_json(doc: dict, path) -> Path:
    from lstm_bench import files

    return files.write_json(path, doc)


def load_json(path) -> dict:
    """A bench JSON report, checked enough that ``compare`` and the renderers can trust it."""
    from lstm_bench.files import read_json

    path = Path(path)
    doc = read_json(path, "report")
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise LSTMBenchError(f"{path}: not an lstm-bench report (no top-level 'results' list)")
    if not doc["results"]:  # an empty report would compare as "no regression"
        raise LSTMBenchError(f"{path}: the report has no results; nothing to compare")
    for i, row in enumerate(doc["results"]):
        missing = [k for k in REQUIRED_ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise LSTMBenchError(f"{path}: results[{i}] lacks {', '.join(missing)}")
        if not isinstance(row["runtime"], str) or not all(
                isinstance(row[k], int) and not isinstance(row[k], bool)
                for k in ("batch", "seq_len")) or not (
                row["threads"] is None or isinstance(row["threads"], int)):
            raise LSTMBenchError(f"{path}: results[{i}] needs a runtime name and integer batch, "
                                 "seq_len and threads")
        samples = row["samples_ns"]
        if (not isinstance(samples, list) or not samples
                or not all(isinstance(s, (int, float)) and not isinstance(s, bool)
                           and math.isfinite(s) and s >= 0 for s in samples)):
            raise LSTMBenchError(f"{path}: results[{i}].samples_ns must be a non-empty list of "
                                 "non-negative numbers")
    return doc


# --- figures ------------------------------------------------------------------------------

def _fmt(value, spec=".3g", none="–"):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, spec)


def _num(value) -> str:
    """Throughput-style figures: 12,345 rather than 1.234e+04."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _ci(row) -> str:
    ci = row["latency_ms"].get("median_ci95")
    return f"{ci[0]:.4g}–{ci[1]:.4g}" if ci else "–"


COLUMNS = ("runtime", "batch", "seq_len", "threads", "median ms", "95% CI", "min ms", "p90 ms",
           "p99 ms", "seq/s", "steps/s", "GFLOP/s", "% peak", "IQR/med", "reps")


def _cells(row) -> list[str]:
    lat = row["latency_ms"]
    share = row.get("peak_share")
    return [row["runtime"], str(row["batch"]), str(row["seq_len"]), _fmt(row["threads"], "d"),
            _fmt(lat["median"], ".4g"), _ci(row), _fmt(lat["min"], ".4g"), _fmt(lat["p90"], ".4g"),
            _fmt(lat["p99"], ".4g"), _num(row["throughput"]["sequences_per_s"]),
            _num(row["throughput"]["steps_per_s"]), _fmt(row.get("gflops"), ".3g"),
            _fmt(None if share is None else 100 * share, ".1f"),
            _fmt(row.get("noise_iqr_over_median"), ".1%") + (" !" if row.get("noisy") else ""),
            str(row.get("reps", len(row["samples_ns"])))]


def _cold_rows(doc) -> list[list[str]]:
    seen, rows = set(), []
    for row in doc["results"]:
        key = (row["runtime"], row["threads"])
        if key in seen:
            continue
        seen.add(key)
        cold = row.get("cold_start_ms") or {}
        rows.append([row["runtime"], _fmt(row["threads"], "d"), _fmt(cold.get("open"), ".4g"),
                     _fmt(cold.get("first_run"), ".4g"), _fmt(row.get("peak_memory_mb"), ".1f")])
    return rows


COLD_COLUMNS = ("runtime", "threads", "session open ms", "first run ms", "peak memory MB")


def _machine_line(doc) -> str:
    m = doc.get("machine", {})
    libs = m.get("libraries", {})
    lib_text = ", ".join(f"{k} {v}" for k, v in libs.items() if k != "lstm-bench")
    peak = doc.get("peak_gflops")
    return (f"{m.get('cpu', '?')}, {m.get('usable_cores', '?')} cores; "
            f"float32 GEMM peak {_fmt(peak, '.0f')} GFLOP/s; {lib_text}; "
            f"commit {m.get('git_commit') or 'unknown'}")


# --- terminal ------------------------------------------------------------------------------

def rich_table(rows: list[dict], title: str | None = None):
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        cells = _cells(row)
        style = "yellow" if row.get("noisy") else None
        table.add_row(*cells, style=style)
    return table


def make_console(stderr: bool = False):
    """A rich console; into a log or a pipe it is wide enough to keep table rows on one line."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console


def print_terminal(doc: dict, console=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = console or make_console()
    console.print(rich_table(doc["results"],
                             title="latency and throughput (median of the samples)"))
    cold = Table(title="cold start and memory", header_style="bold")
    for i, col in enumerate(COLD_COLUMNS):
        cold.add_column(col, justify="left" if i == 0 else "right")
    for cells in _cold_rows(doc):
        cold.add_row(*cells)
    console.print(cold)
    for skip in doc.get("skipped", []):
        console.print(f"[dim]skipped {skip['runtime']}: {escape(skip['reason'])}[/dim]",
                      highlight=False)
    for warning in doc.get("warnings", []):
        console.print(f"[yellow]noisy:[/yellow] {escape(warning)}", highlight=False)
    if doc.get("warnings"):
        console.print("[dim]noisy figures: an idle machine or a longer --min-time may help; "
                      "`lstm-bench compare` tests shifts against this noise[/dim]", highlight=False)


# --- Markdown ------------------------------------------------------------------------------

def _md_table(columns, rows) -> str:
    def esc(text):
        return str(text).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in rows]
    return "\n".join(lines)


def render_markdown(doc: dict) -> str:
    model = doc.get("model", {})
    parts = [f"# lstm-bench: {Path(model.get('path', 'model')).name}", "",
             _machine_line(doc), "",
             "## Latency and throughput", "",
             _md_table(COLUMNS, [_cells(r) for r in doc["results"]]), "",
             "Latency in ms over the raw samples; 95% CI is the distribution-free confidence "
             "interval of the median; `!` marks IQR/median above 10 %.", "",
             "## Cold start and memory", "",
             _md_table(COLD_COLUMNS, _cold_rows(doc)), ""]
    if doc.get("verify"):
        parts += ["## Verify", "", _md_table(("runtime", "max abs error", "verify"),
                                             _verify_rows(doc["verify"])), ""]
    if doc.get("skipped"):
        parts += ["## Skipped", ""] + [f"- {s['runtime']}: {s['reason']}"
                                       for s in doc["skipped"]] + [""]
    if doc.get("warnings"):
        parts += ["## Noisy figures (IQR above 10 % of the median)", ""] + [
            f"- {w}" for w in doc["warnings"]] + [""]
    return "\n".join(parts)


def _verify_rows(verify: dict) -> list[list[str]]:
    rows = []
    for name, entry in verify.get("runtimes", {}).items():
        status = entry.get("status") or "–"
        reason = entry.get("reason")
        rows.append([name, _fmt(entry.get("max_abs_error"), ".3g"),
                     f"{status}: {reason}" if reason else status])
    return rows


# --- HTML ----------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
tr.noisy td{background:#fff6d5}.meta{color:#555}img{max-width:100%;margin:.5em 0}"""


def _html_table(columns, rows, classes=None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(doc: dict) -> str:
    """A self-contained page: tables and the plots as inline PNG (data: URIs), no links out."""
    from lstm_bench.bench.plots import all_plots

    model = doc.get("model", {})
    title = f"lstm-bench: {Path(model.get('path', 'model')).name}"
    plots = "".join(f"<h3>{html.escape(caption)}</h3><img alt=\"{html.escape(caption)}\" "
                    f"src=\"data:image/png;base64,{data}\">" for caption, data in all_plots(doc))
    rows = doc["results"]
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class=\"meta\">{html.escape(_machine_line(doc))}</p>",
        "<h2>Latency and throughput</h2>",
        _html_table(COLUMNS, [_cells(r) for r in rows],
                    ["noisy" if r.get("noisy") else "" for r in rows]),
        "<p class=\"meta\">Latency in ms; 95% CI is the distribution-free confidence interval "
        "of the median; highlighted rows have IQR/median above 10 %.</p>",
        "<h2>Cold start and memory</h2>", _html_table(COLD_COLUMNS, _cold_rows(doc)),
    ]
    if doc.get("verify"):
        parts += ["<h2>Verify</h2>",
                  _html_table(("runtime", "max abs error", "verify"), _verify_rows(doc["verify"]))]
    parts += ["<h2>Plots</h2>", plots or "<p>No plots: nothing was measured.</p>"]
    if doc.get("skipped"):
        parts += ["<h2>Skipped</h2><ul>"] + [
            f"<li>{html.escape(s['runtime'])}: {html.escape(s['reason'])}</li>"
            for s in doc["skipped"]] + ["</ul>"]
    if doc.get("warnings"):
        parts += ["<h2>Noisy figures (IQR above 10 % of the median)</h2><ul>"] + [
            f"<li>{html.escape(w)}</li>" for w in doc["warnings"]] + ["</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def verify_section(verify: dict) -> dict:
    """The part of a verify report (``VerifyReport.to_dict()``) that the bench reports show:
    each runtime's status, its largest error and, for the first output with a time axis, the
    max abs error of each time step."""
    if not isinstance(verify, dict) or not isinstance(verify.get("results"), list):
        raise LSTMBenchError("verify data must be the JSON of `lstm-bench verify --json` "
                             "(a top-level 'results' list)")
    def number(v):
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    def output_ok(o):
        if not isinstance(o, dict):
            return False
        steps = o.get("per_step_max_abs") or []
        return number(o.get("max_abs")) and isinstance(steps, list) and all(map(number, steps))

    if not all(isinstance(r, dict) and isinstance(r.get("runtime"), str)
               and all(isinstance(r.get(k), (str, type(None))) for k in ("status", "reason"))
               and isinstance(r.get("outputs") or [], list)
               and all(output_ok(o) for o in r.get("outputs") or [])
               for r in verify["results"]):
        raise LSTMBenchError("verify data: each entry of 'results' must be an object with a "
                             "runtime name, a status and a list of outputs with numeric errors")
    runtimes = {}
    for result in verify["results"]:
        outputs = result.get("outputs") or []
        errors = [o["max_abs"] for o in outputs if o.get("max_abs") is not None]
        per_step = next((o["per_step_max_abs"] for o in outputs if o.get("per_step_max_abs")), None)
        status = result.get("status")
        runtimes[result["runtime"]] = {
            "status": status, "passed": None if status == "skip" else status == "pass",
            "max_abs_error": max(errors) if errors else None,
            "per_step_max_abs_error": per_step, "reason": result.get("reason"),
        }
    return {"passed": verify.get("passed"), "inputs": verify.get("inputs"), "runtimes": runtimes}
