"""GitHub Actions: a command's decision in the job's step summary, a failing gate as an
annotation, and user text that can never act as a workflow command.

- ``GITHUB_STEP_SUMMARY`` (set by the runner to a file of the step): ``append_summary`` adds a
  command's Markdown to it with a plain append (the runner owns the file and reads it when the
  step ends; replacing it atomically would drop what earlier commands of the step wrote). Only
  a regular file that exists is appended to, never one reached through a symbolic link, a
  device or a FIFO; a summary that cannot be written is a warning, never the command's failure.
- ``GITHUB_ACTIONS=true``: ``error_command`` is the ``::error title=...::message`` line the
  runner turns into an annotation, escaped by the runner's rules (``%``, CR and LF in the
  message; also ``:`` and ``,`` in the title, a property).
- The runner reads any output line that starts, after spaces, with ``::`` as a command
  (``::add-mask::``, ``::stop-commands::``...). ``defuse_commands`` breaks such a start in
  text that the command did not mean as one (a model's name, a path), with a zero-width space
  after the first colon.
"""

from __future__ import annotations

import os
import re
import stat

from lstm_bench.printable import visible

SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
# the runner refuses a step summary above 1 MiB; one command's part stays well below
MAX_SUMMARY_BYTES = 512 * 1024
_COMMAND_START = re.compile(r"(?m)^([ \t]*):(?=:)")
_SURROGATE = re.compile("[\ud800-\udfff]")


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def summary_path() -> str | None:
    """The step summary file the runner gave (None: not in GitHub Actions)."""
    return os.environ.get(SUMMARY_VARIABLE) or None


def append_summary(markdown: str) -> str | None:
    """Append ``markdown`` to the step summary; None when done or when there is none, else
    why it was not written (the caller prints it as a warning)."""
    path = summary_path()
    if path is None:
        return None
    data = markdown.rstrip("\n").encode("utf-8", "backslashreplace") + b"\n\n"
    if len(data) > MAX_SUMMARY_BYTES:
        return f"{SUMMARY_VARIABLE} {path}: the summary ({len(data)} bytes) is above " \
               f"{MAX_SUMMARY_BYTES} bytes; not written"
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a link, a device, a FIFO
            return f"{SUMMARY_VARIABLE} {visible(path)}: not a regular file; not written"
        fd = os.open(path, flags)  # no O_CREAT: the runner makes it
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since lstat
                return f"{SUMMARY_VARIABLE} {visible(path)}: not a regular file; not written"
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"{SUMMARY_VARIABLE} {visible(path)}: {exc.strerror or exc}; not written"
    return None


def _data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _shown(text: str, keep: str = "") -> str:
    # control characters and lone surrogates (a file name that is not UTF-8) as escapes
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", visible(str(text), keep=keep))


def error_command(title: str, message: str) -> str:
    """The ``::error`` line of a failing gate (the runner shows it as an annotation): one
    line whatever ``title`` and ``message`` hold, control characters shown as escapes."""
    return f"::error title={_property(_shown(title))}::{_data(_shown(message, keep=chr(10)))}"


def defuse_commands(text: str) -> str:
    """``text`` with every line that would start a workflow command (``::`` after spaces)
    broken by a zero-width space: shown the same, never run."""
    return _COMMAND_START.sub("\\1:\u200b", text)
