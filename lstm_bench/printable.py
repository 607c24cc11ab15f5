"""Names from users' files shown as text, never as instructions to the device that shows them.

A file name, a runtime name or a commit can hold any character. Printed raw, an escape
sequence (``ESC[2J ESC[31m...``) clears a terminal and colours a fake verdict; a bidirectional
override reorders what the reader sees. ``visible`` writes such characters as escapes, the
one way for the terminal writer (``lstm_bench.cli.terminal``), the CLI's error line and the
plots (``bench.plots.plot_text``).
"""

from __future__ import annotations

import re

# C0 and C1 controls (ESC, BEL, CR, the 8-bit CSI 0x9b...), DEL, and the characters that
# reorder or break text without being seen: bidirectional marks, embeddings, overrides and
# isolates, the line and paragraph separators
HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control and bidirectional-override character written as its escape
    (ESC as ``\\x1b``, a line break as ``\\n``, U+202E as ``\\u202e``); characters in
    ``keep`` (a writer's own line breaks, ``"\\n"``) stay as they are."""
    if keep:
        return HIDDEN.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
    return HIDDEN.sub(_escape, text)
