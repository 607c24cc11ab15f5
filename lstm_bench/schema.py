"""The layout of a document read back from a user's file, checked before anything uses it.

lstm-bench reads back what it wrote (a verify report for ``bench --verify-json``, bench reports
for ``compare``, the rows of the history database), but the file is the user's: edited by
hand, cut short, or crafted. ``check(doc, spec, where)`` holds a document against a spec
written once beside its reader (``lstm_bench.verify.report``, ``bench.report``,
``bench.history``), so that a string where a number belongs is one line and exit 2 before any
work, not a traceback in a plot after the benchmark. A spec is plain data:

- a type: ``str``, ``int``, ``float`` (an int or a float; NaN and inf only in a document in
  memory: ``lstm_bench.files.parse_json`` refuses them in a file), ``bool``, ``dict`` (any
  object), ``list`` (any list), ``object`` (anything); never a bool where a number belongs;
- ``None``: null; a tuple of specs: any one of them (``(float, None)``);
- a frozenset of strings: one of them; a ``Pattern``: text that matches it;
- ``[spec]``: a list of such items;
- a dict ``{key: spec}``: an object whose keys, where present, match (other keys are let
  through: a reader keeps what it does not know); ``Fields(..., required=...)`` names the
  keys it must have;
- ``Each(spec, keys=...)``: an object whose every value (and key) matches;
- ``RUNTIME``: a runtime's name, as the registry spells them.

Every document is also bounded as a whole, walked without recursion: at most ``MAX_DEPTH``
levels of nesting and ``MAX_TEXT`` characters in any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lstm_bench.errors import LSTMBenchError
from lstm_bench.printable import visible

MAX_DEPTH = 32  # levels of objects and lists; the deepest report lstm-bench writes has 10
MAX_TEXT = 64 * 1024  # characters in one string or key (a name, a path, a reason)


@dataclass(frozen=True)
class Fields:
    """An object: its keys' specs, and the keys it must have."""

    specs: dict
    required: tuple = ()


@dataclass(frozen=True)
class Each:
    """An object whose every value matches ``spec`` and every key ``keys``."""

    spec: object
    keys: object = str


@dataclass(frozen=True)
class Pattern:
    """Text matching ``regex`` whole; ``what`` says what it is in a message."""

    regex: str
    what: str
    compiled: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "compiled", re.compile(self.regex))


# the registry's names (ort-cpu, torch-source, openvino-cpu-static): no spaces, no markup, no
# math text, no control characters
RUNTIME = Pattern(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}",
                  "a runtime name (letters, digits, '.', '_', '+', '-'; at most 64)")


def bound(doc, where: str) -> None:
    """Refuse a document nested more than MAX_DEPTH levels or holding a string over MAX_TEXT
    characters (an explicit stack: a deep document cannot exhaust Python's)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise LSTMBenchError(f"{where}: holds a string of {len(value):,} characters "
                                     f"(at most {MAX_TEXT:,}); not a file lstm-bench wrote")
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise LSTMBenchError(f"{where}: nested more than {MAX_DEPTH} levels deep; not "
                                     "a file lstm-bench wrote")
            items = [*value, *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)


def check(doc, spec, where: str) -> None:
    """Refuse (LSTMBenchError: ``where``, the path to the first value that does not match,
    what it should be and what it is) a document that is not of ``spec`` (see the module
    doc); ``bound`` first."""
    bound(doc, where)
    problem = _mismatch(doc, spec, "")
    if problem is not None:
        path, expected, value = problem
        at = f"{path.lstrip('.')} " if path else ""
        raise LSTMBenchError(f"{where}: {at}must be {expected}, not {_kind(value)}; not a "
                             "file lstm-bench wrote")


def _mismatch(value, spec, path: str):
    """(path, what was expected, the value) of the first mismatch, or None."""
    if isinstance(spec, tuple):
        problems = [_mismatch(value, s, path) for s in spec]
        if all(problems):
            deepest = max(problems, key=lambda p: len(p[0]))
            if deepest[0] != path:  # it matched an alternative's shape, not its contents
                return deepest
            return path, " or ".join(_describe(s) for s in spec), value
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return path, _describe(spec), value
        return next((p for i, item in enumerate(value)
                     if (p := _mismatch(item, spec[0], f"{path}[{i}]"))), None)
    if isinstance(spec, (dict, Fields)):
        specs, required = (spec, ()) if isinstance(spec, dict) else (spec.specs, spec.required)
        if not isinstance(value, dict):
            return path, "an object", value
        missing = [key for key in required if key not in value]
        if missing:
            return f"{path}.{missing[0]}", _describe(specs[missing[0]]), _MISSING
        return next((p for key, s in specs.items() if key in value
                     if (p := _mismatch(value[key], s, f"{path}.{key}"))), None)
    if isinstance(spec, Each):
        if not isinstance(value, dict):
            return path, "an object", value
        for key, item in value.items():
            problem = (_mismatch(key, spec.keys, f"{path} key")
                       or _mismatch(item, spec.spec, f"{path}.{key}"))
            if problem:
                return problem
        return None
    return None if _matches(value, spec) else (path, _describe(spec), value)


def _matches(value, spec) -> bool:
    if spec is None:
        return value is None
    if spec is object:
        return True
    if spec is float:  # NaN and inf only in memory: a file's are refused as it is parsed
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(spec, frozenset):
        return isinstance(value, str) and value in spec
    if isinstance(spec, Pattern):
        return isinstance(value, str) and spec.compiled.fullmatch(value) is not None
    return isinstance(value, spec)


_MISSING = object()


def _describe(spec) -> str:
    if isinstance(spec, tuple):
        return " or ".join(_describe(s) for s in spec)
    if isinstance(spec, list):
        return "a list"
    if isinstance(spec, (dict, Fields, Each)):
        return "an object"
    if isinstance(spec, frozenset):
        return "one of " + ", ".join(repr(s) for s in sorted(spec))
    if isinstance(spec, Pattern):
        return spec.what
    return {None: "null", str: "text", int: "an integer", float: "a number", bool: "true or false",
            dict: "an object", list: "a list"}.get(spec, "anything")


def _kind(value) -> str:
    """What a value is, in a message (text shortened, its control characters visible)."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return f"the number {value:.6g}" if isinstance(value, float) else f"the integer {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"the text {visible(repr(shown))}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
