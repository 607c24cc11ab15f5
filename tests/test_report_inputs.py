"""Issue 18, classes 6 and 8: report inputs are checked against their layout before use, text
that reaches matplotlib is drawn literally, and names printed to a terminal cannot drive it.

Every report lstm-bench reads back (a verify JSON given to ``bench --verify-json``, the bench
JSON reports given to ``compare``, the rows of a history database) may have been edited by
hand or crafted: a string where a number belongs, an odd runtime name, nesting hundreds of
levels deep. Each is refused up front (one line, exit 2, before any measuring), never a
traceback in a plot after the benchmark ran. Each case here failed before the fix (a
traceback, exit 1, or a silent exit 0).
"""

from __future__ import annotations

import copy
import json
import sqlite3

import pytest

from hostile import assert_bad_input, run_cli, snapshot
from lstm_bench.bench import history
from lstm_bench.bench.report import load_report
from lstm_bench.cli import main

FAST = ["--runtimes", "numpy", "--seq-len", "3", "--span", "0", "--blocks", "4", "--min-time",
        "0", "--min-reps", "4", "--no-calibrate", "--quiet"]
DEEP = 900  # parses (json's own limit is about 1000 levels), far beyond any report's layout


def deep(levels: int = DEEP):
    value = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture(scope="module")
def verify_doc(tiny, tmp_path_factory):
    """A verify report as `lstm-bench verify --json` writes it (per-step errors included)."""
    path = tmp_path_factory.mktemp("verify") / "v.json"
    assert main(["verify", str(tiny), "--runtimes", "numpy,ort-cpu", "--no-streaming",
                 "--json", str(path)]) == 0
    return json.loads(path.read_text())


@pytest.fixture
def no_measuring(monkeypatch):
    """The benchmark must not start: a refused input is found before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr("lstm_bench.cli.bench.run_plan", refuse)


def _set(path, value):
    """An edit of a document: ``path`` (keys and indices) set to ``value``."""
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


RESULT, OUTPUT = ("results", 0), ("results", 0, "outputs", 0)
BAD_VERIFY = {
    "max_abs text": _set((*OUTPUT, "max_abs"), "abc"),
    "per-step text": _set((*OUTPUT, "per_step_max_abs"), ["x"]),
    "shape not a list": _set((*OUTPUT, "shape"), 5),
    "output not an object": _set((*RESULT, "outputs"), [5]),
    "math text runtime": _set((*RESULT, "runtime"), r"$\foo$"),
    "escape runtime": _set((*RESULT, "runtime"), "\x1b[2J\x1b[31mall passed"),
    "markup runtime": _set((*RESULT, "runtime"), "[red]x"),
    "empty runtime": _set((*RESULT, "runtime"), ""),
    "long runtime": _set((*RESULT, "runtime"), "a" * 10_000),
    "number runtime": _set((*RESULT, "runtime"), 5),
    "status list": _set((*RESULT, "status"), ["pass"]),
    "unknown status": _set((*RESULT, "status"), "great"),
    "tolerance text": _set((*RESULT, "tolerance"), {"atol": "x", "rtol": 1}),
    "notes number": _set((*RESULT, "notes"), 5),
    "settings text": _set((*RESULT, "settings"), "x"),
    "failure without metric": _set((*RESULT, "errors"), [{"output": "Y"}]),
    "inputs text": _set(("inputs",), "x"),
    "results object": _set(("results",), {"a": 1}),
    "deeply nested": _set((*RESULT, "settings"), {"x": deep()}),
    "huge text": _set((*RESULT, "reason"), "x" * 2 ** 20),
}


@pytest.mark.parametrize("edit", list(BAD_VERIFY.values()), ids=list(BAD_VERIFY))
def test_a_crafted_verify_json_is_refused_before_measuring(edit, verify_doc, tiny, tmp_path,
                                                           capsys, no_measuring):
    doc = copy.deepcopy(verify_doc)
    edit(doc)
    crafted = tmp_path / "v.json"
    crafted.write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    line = assert_bad_input(run_cli(capsys, "bench", tiny, "--verify-json", crafted, *FAST,
                                    "--html", tmp_path / "r.html", "--no-history"), str(crafted))
    assert "\x1b" not in line
    assert snapshot(tmp_path) == before


def test_a_verify_json_as_verify_writes_it_is_read_and_drawn(verify_doc, tiny, tmp_path, capsys):
    """The layout verify writes passes the check, and its text reaches the plots literally:
    math text in a precision or a reason is drawn as written, not parsed."""
    doc = copy.deepcopy(verify_doc)
    doc["results"][0]["precision"] = r"$\foo$"
    (tmp_path / "v.json").write_text(json.dumps(doc))
    rc, out, err = run_cli(capsys, "bench", tiny, "--verify-json", tmp_path / "v.json", *FAST,
                           "--html", tmp_path / "r.html", "--json", tmp_path / "r.json",
                           "--no-history")
    assert rc == 0 and "Traceback" not in err, err
    assert "Verify: error per time step" in (tmp_path / "r.html").read_text()
    verify = load_report(tmp_path / "r.json").verify  # the bench report's copy reads back
    assert set(verify.verdicts) == {"numpy", "ort-cpu"}


# --- bench reports given to compare ---------------------------------------------------------

@pytest.fixture(scope="module")
def bench_doc(tiny, verify_doc, tmp_path_factory):
    """A bench report as `lstm-bench bench --json` writes it, verify verdicts included."""
    folder = tmp_path_factory.mktemp("bench")
    (folder / "v.json").write_text(json.dumps(verify_doc))
    assert main(["bench", str(tiny), *FAST, "--verify-json", str(folder / "v.json"), "--json",
                 str(folder / "r.json"), "--no-history"]) == 0
    return json.loads((folder / "r.json").read_text())


ROW = ("results", 0)
BAD_BENCH = {
    "runtime math text": _set((*ROW, "runtime"), r"$\foo$"),
    "runtime escape": _set((*ROW, "runtime"), "\x1b[2Jx"),
    "block text": _set((*ROW, "blocks", 0, "process"), "a"),
    "block calls not the samples": _set((*ROW, "blocks", 0, "calls"), 10 ** 6),
    "cold start text": _set((*ROW, "cold_start_ms"), {"open": "x"}),
    "mode unknown": _set((*ROW, "mode"), "sideways"),
    "device number": _set((*ROW, "device"), 5),
    "peak text": _set(("peak_gflops",), "x"),
    "model path number": _set(("model", "path"), 5),
    "machine text": _set(("machine",), "x"),
    "load average text": _set(("machine", "load_average"), {"before": "x", "after": 1}),
    "skipped runtime number": _set(("skipped",), [{"runtime": 5, "reason": "x"}]),
    "verify status number": _set(("verify", "runtimes", "numpy", "status"), 5),
    "verify runtime name": _set(("verify", "runtimes"), {"[red]x": {"status": "pass"}}),
    "deeply nested extra": _set(("extra",), deep()),
}


@pytest.mark.parametrize("edit", list(BAD_BENCH.values()), ids=list(BAD_BENCH))
def test_a_crafted_bench_report_is_refused_by_compare(edit, bench_doc, tmp_path, capsys):
    doc = copy.deepcopy(bench_doc)
    edit(doc)
    (tmp_path / "base.json").write_text(json.dumps(bench_doc))
    (tmp_path / "new.json").write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    line = assert_bad_input(run_cli(capsys, "compare", tmp_path / "base.json",
                                    tmp_path / "new.json", "--html", tmp_path / "c.html"),
                            "new.json")
    assert "\x1b" not in line
    assert snapshot(tmp_path) == before


def test_a_bench_report_as_bench_writes_it_compares(bench_doc, tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps(bench_doc))
    rc, out, err = run_cli(capsys, "compare", tmp_path / "r.json", tmp_path / "r.json",
                           "--html", tmp_path / "c.html", "--md", tmp_path / "c.md")
    assert rc == 0 and "Traceback" not in err, err
    report = load_report(tmp_path / "r.json")  # and redraws
    assert report.verify is not None and report.measurements


# --- the rows of a history database ---------------------------------------------------------

def _history(tmp_path, edit: str | None = None):
    from test_history import report

    db = tmp_path / "h.sqlite"
    for seed in (1, 2):
        history.record(report(1.0, seed, "c"), db, "bench")
    if edit:
        with sqlite3.connect(db) as con:
            con.execute(edit)
        con.close()
    return db


BAD_ROWS = {
    "runtime math text": "UPDATE results SET runtime = '$\\foo$'",
    "runtime escape": "UPDATE results SET runtime = char(27) || '[2J'",
    "mode math text": "UPDATE results SET mode = '$x$'",
    "batch text": "UPDATE results SET batch = 'abc'",
    "threads blob": "UPDATE results SET threads = x'00'",
    "recorded blob": "UPDATE runs SET recorded = x'00'",  # a text column keeps a blob as one
    "commit blob": "UPDATE runs SET git_commit = x'ff'",
    "row deeply nested": f"UPDATE results SET row = '{'[' * 100_000}{']' * 100_000}'",
    "row nested 900": "UPDATE results SET row = json_set(row, '$.extra', json('"
                      + "[" * DEEP + "]" * DEEP + "'))",
    "row sample text": "UPDATE results SET row = json_set(row, '$.samples_ns[0]', 'x')",
    "row not its columns": "UPDATE results SET row = json_set(row, '$.batch', 7)",
    "row NaN": "UPDATE results SET row = replace(row, '\"batch\": 1', '\"batch\": NaN')",
}


@pytest.mark.parametrize("edit", list(BAD_ROWS.values()), ids=list(BAD_ROWS))
def test_a_crafted_history_row_is_refused(edit, tmp_path, capsys):
    db = _history(tmp_path, edit)
    before = snapshot(tmp_path)
    line = assert_bad_input(run_cli(capsys, "history", "--db", db, "--html",
                                    tmp_path / "h.html"), str(db))
    assert "\x1b" not in line
    assert snapshot(tmp_path) == before


def test_math_text_in_a_commit_is_drawn_literally(tmp_path, capsys):
    db = _history(tmp_path, "UPDATE runs SET git_commit = '$\\foo$', model_path = '$\\bar$', "
                            "cpu = '$x^$'")
    rc, out, err = run_cli(capsys, "history", "--db", db, "--html", tmp_path / "h.html")
    assert rc == 0 and "Traceback" not in err, err
    assert "data:image/png;base64," in (tmp_path / "h.html").read_text()
    db.unlink()  # a single run: its commit in the label under the dots
    db = _history(tmp_path, "DELETE FROM results WHERE run_id = 2")
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET git_commit = '$\\foo$'")
    con.close()
    rc, out, err = run_cli(capsys, "history", "--db", db, "--html", tmp_path / "h.html")
    assert rc == 0 and "Traceback" not in err, err


def test_plot_text_escapes_what_mathtext_reads():
    from matplotlib.figure import Figure

    from lstm_bench.bench.plots import _png, plot_text

    assert plot_text(r"$\foo$") == r"\$\foo\$"
    assert plot_text("a\x1b[2Jb") == "a\\x1b[2Jb"
    fig = Figure()
    ax = fig.subplots()
    for text in (r"$\foo$", r"a\$b", "$x^$", "100 $", "$$"):
        ax.set_title(plot_text(text))
        _png(fig)  # drawn, not parsed as math
        assert ax.title.get_text() == plot_text(text)


# --- names printed to a terminal --------------------------------------------------------------

ESCAPES = "\x1b[2J\x1b[31mall runtimes passed\x1b[0m"


def test_an_output_name_cannot_drive_the_terminal(tiny, tmp_path, capsys):
    """An escape sequence in a file name is shown, not obeyed: no screen cleared, no fake
    coloured verdict; the same in the error line of a refused command."""
    out_json = tmp_path / f"{ESCAPES}.json"
    rc, out, err = run_cli(capsys, "bench", tiny, *FAST, "--json", out_json, "--no-history")
    assert rc == 0, err
    assert "\x1b" not in out and "\\x1b[2J\\x1b[31mall runtimes passed" in out.replace("\n", "")
    rc, out, err = run_cli(capsys, "verify", tiny, "--runtimes", "numpy", "--no-streaming",
                           "--json", tmp_path / f"v{ESCAPES}.json")
    assert rc == 0, err
    assert "\x1b" not in out and "\\x1b[2J" in out.replace("\n", "")
    line = assert_bad_input(run_cli(capsys, "verify", tmp_path / f"{ESCAPES}.onnx"))
    assert "\x1b" not in line and "\\x1b[2J" in line
    line = assert_bad_input(run_cli(capsys, "compare", tmp_path / f"{ESCAPES}.json",
                                    tmp_path / "b.json"))
    assert "\x1b" not in line


def test_names_show_control_characters_and_markup_literally(tmp_path, capsys):
    """The terminal writer: C0 and C1 controls and bidirectional overrides as escapes, rich
    markup as written; its own line breaks stay."""
    import io

    from rich.text import Text

    from lstm_bench.cli.terminal import make_console, print_lines, print_paths
    from lstm_bench.printable import visible

    assert visible("a\x1b[2Jb\x9bc\u202ed\ne") == "a\\x1b[2Jb\\x9bc\\u202ed\\ne"
    assert visible("a\nb", keep="\n") == "a\nb"
    console = make_console()
    console.file = io.StringIO()
    print_paths(console, "wrote", [f"[red]{ESCAPES}.json"])
    print_lines(console, [f"name {ESCAPES}"])
    console.print(Text(f"x{ESCAPES}\ny"))
    text = console.file.getvalue()
    assert "\x1b" not in text and "[red]\\x1b[2J" in text and "x\\x1b" in text
    assert text.count("\n") == 4
