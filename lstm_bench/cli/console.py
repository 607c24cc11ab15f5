"""Standard output as pipes and logs want it: `lstm-bench history | head -2`, `> log.txt`.

- A reader that leaves early (`| head -2`) closes the pipe, and the next write raises
  BrokenPipeError. Like other Unix tools, a command then stops talking quietly; unlike one
  killed by SIGPIPE, it still finishes its work (a report or page it was asked to write) and
  exits with its own code: from the broken write on, standard output goes to /dev/null.
- Into a file or a pipe, lines carry no trailing spaces (rich pads table cells and wrapped
  lines to the console's width); on a terminal they are invisible and left alone.

- In GitHub Actions, a line of user text (a model's name, a path) that would start a workflow
  command (``::`` after spaces) is defused (``lstm_bench.ci.defuse_commands``).
- A document asked for on standard output (``--json -``) is written as it is
  (``write_document``): no trailing space removed, quiet after a broken pipe all the same.

``lstm_bench.cli.main`` puts ``PipeSafe`` around ``sys.stdout`` for every command, so print()
and rich consoles alike go through it.
"""

from __future__ import annotations

import os
import re
import sys

from lstm_bench.ci import defuse_commands, in_github_actions

TRAILING = re.compile(r" +(?=\n)")


class PipeSafe:
    """A text stream around ``stream``: quiet after a broken pipe, no trailing spaces into a
    file or a pipe. Everything else (encoding, fileno, isatty...) is the stream's."""

    def __init__(self, stream):
        self.stream = stream
        self.broken = False
        try:
            self.plain = not stream.isatty()
        except (AttributeError, ValueError):
            self.plain = True
        self._spaces = ""  # spaces at the end of the last write: trailing only if a newline follows
        self.defuse = in_github_actions()
        self._line_start = True  # nothing but spaces written since the last line break

    def write(self, text: str) -> int:
        written = len(text)
        if self.defuse and text:
            lead = "" if self._line_start else "\0"  # "\0": not at the start of a line
            text = defuse_commands(lead + text)[len(lead):]
            tail = text.rsplit("\n", 1)
            self._line_start = not tail[-1].strip(" \t") and (len(tail) > 1 or self._line_start)
        if self.plain:
            text = self._spaces + text
            kept = text.rstrip(" ")
            self._spaces = text[len(kept):]
            text = TRAILING.sub("", kept)
        if not self.broken and text:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return written

    def write_document(self, text: str) -> None:
        """``text`` as it is: a document (JSON, Markdown) or a workflow command of our own."""
        text, self._spaces = self._spaces + text, ""  # spaces held back belong before it
        if not self.broken:
            try:
                self.stream.write(text)
                self.stream.flush()
            except BrokenPipeError:
                self._reader_left()
        self._line_start = text.endswith("\n")

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        self.broken = True
        try:  # the interpreter's last flush of sys.stdout must not fail either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (AttributeError, OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def write_document(text: str, stream=None) -> None:
    """A document or a command line of our own on standard output (``stream``: another),
    written as it is."""
    stream = sys.stdout if stream is None else stream
    if isinstance(stream, PipeSafe):
        stream.write_document(text)
    else:
        stream.write(text)
        stream.flush()
