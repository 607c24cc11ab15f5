"""What verify, bench and compare hand to CI beside their exit code: reports on standard
output (``--json -``), JUnit XML (``--junit-xml``), and in GitHub Actions the step summary and
the ``::error`` annotation of a failing gate (``lstm_bench.ci``).

Where a report goes to standard output, standard output holds that document alone: the
terminal report goes to standard error (``console_for``), and so does the annotation.
"""

from __future__ import annotations

import sys

from lstm_bench import ci, junit
from lstm_bench.cli.console import write_document
from lstm_bench.cli.terminal import make_console
from lstm_bench.files import write_text
from lstm_bench.outputs import check_one_stdout, check_writable, is_stdout


def check_outputs(outputs: dict, takes_stdout=()) -> str | None:
    """Every output path checked before any work (``outputs``: option -> path or None;
    ``takes_stdout``: the options that take ``-``); returns the option writing to standard
    output, if one does (two are refused)."""
    for option, path in outputs.items():
        check_writable(path, option, stdout=option in takes_stdout)
    return check_one_stdout({o: p for o, p in outputs.items() if o in takes_stdout})


def console_for(piped: str | None):
    """The terminal report's console: standard error where a document takes standard output."""
    return make_console(stderr=piped is not None)


def emit(path, text: str) -> list:
    """``text`` to ``path`` (atomically) or to standard output for ``-``; returns the paths
    written to files (for the command's "wrote" line)."""
    if path is None:
        return []
    if is_stdout(path):
        write_document(text)
        return []
    return [write_text(path, text)]


def write_junit(path, name: str, suites) -> list:
    return emit(path, junit.render(name, suites))


def warn(command: str, message: str) -> None:
    print(f"lstm-bench {command}: warning: {message}", file=sys.stderr)


def to_ci(command: str, markdown, failure: str | None, piped: str | None) -> None:
    """In GitHub Actions: ``markdown()`` appended to the step summary, and the ``::error``
    annotation when the gate fails (``failure``: why, in one line); elsewhere nothing. A
    summary that cannot be written is one warning on stderr, never the command's result."""
    if ci.summary_path() is not None:
        try:
            problem = ci.append_summary(markdown())
        except Exception as exc:  # a report the writer stumbles on must not cost the verdict
            problem = f"the summary could not be rendered ({type(exc).__name__}: {exc})"
        if problem:
            warn(command, f"step summary not written: {problem}")
    if failure and ci.in_github_actions():
        line = ci.error_command(f"lstm-bench {command} failed", failure) + "\n"
        write_document(line, sys.stderr if piped else None)
