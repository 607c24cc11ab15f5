"""Standard output as pipes and logs want it: `lstm-bench history | head -2`, `> log.txt`.

- A reader that leaves early (`| head -2`) closes the pipe, and the next write raises
  BrokenPipeError. Like other Unix tools, a command then stops talking quietly; unlike one
  killed by SIGPIPE, it still finishes its work (a report or page it was asked to write) and
  exits with its own code: from the broken write on, standard output goes to /dev/null.
- Into a file or a pipe, lines carry no trailing spaces (rich pads table cells and wrapped
  lines to the console's width); on a terminal they are invisible and left alone.

``lstm_bench.cli.main`` puts ``PipeSafe`` around ``sys.stdout`` for every command, so print()
and rich consoles alike go through it.
"""

from __future__ import annotations

import os
import re

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

    def write(self, text: str) -> int:
        written = len(text)
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
