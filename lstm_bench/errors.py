"""The one exception type of the project, and the one way to quote a foreign exception.

Every error caused by bad input (a wrong shape, a missing file, an unsupported layer) is an
``LSTMBenchError`` whose message says what is wrong and where. The CLI prints it as one line
on stderr and exits with code 2; anything else that escapes is a bug.
"""


class LSTMBenchError(Exception):
    """Bad input to lstm-bench: the message names the input and what was expected."""


def first_line(exc: BaseException, *, with_type: bool = False) -> str:
    """The first non-empty line of an exception's message (its type name when it has none),
    for quoting a library's error inside one of ours: ``"ValueError: bad shape"`` with
    ``with_type``."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    name = type(exc).__name__
    if not lines:
        return name
    return f"{name}: {lines[0]}" if with_type else lines[0]


class RuntimeSkip(LSTMBenchError):
    """A runtime that cannot prepare this model (its quantizer refuses the graph, a float16
    copy of it cannot be made, the transformation leaves nothing of what the runtime is named
    for): raised by ``open``; verify makes it that runtime's ``skip`` verdict with the message
    as the reason, and bench leaves the runtime out with it. Not bad input, not a failure."""
