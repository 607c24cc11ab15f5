"""Ctrl-C (SIGINT) and SIGTERM while a command runs: one exception, and a record of the signal.

Python raises KeyboardInterrupt in whatever code the main thread runs when the signal comes.
When that code is a finalizer (``__del__``, a weakref or gc callback), Python prints the
exception as "Exception ignored in ..." and goes on; a library's broad ``except`` swallows it
too, or turns it into another exception (``type()`` makes one raised in ``__set_name__`` a
RuntimeError). So the handler also records the signal: long loops call ``check()`` at safe
points (the harness between blocks, ``run`` between its steps), and the CLI exits 130 (SIGINT)
or 143 (SIGTERM) whenever a signal was recorded, whatever became of its exception. A catch-all
after which the work goes on (an exporter's fallback to the next exporter, a runtime skipped or
marked failing) calls ``check()`` first, so that a signal in disguise is no failure to work
around; ``export`` calls it before it writes its file.

SIGTERM raises ``Terminated``, a KeyboardInterrupt, so that ``finally`` blocks clean up as for
Ctrl-C. A signal this process inherited as ignored stays ignored, as in any program: a shell
script's background job (``lstm-bench run &``) ignores SIGINT, so that the Ctrl-C meant for the
script does not stop it; stop such a job with SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

_received: list[int] = []  # the signals received while ``handled()`` is active


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks clean up as for Ctrl-C."""


def _raise(signum: int):
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame):
    _received.append(signum)
    _raise(signum)


def received() -> int | None:
    """The first signal received in the active ``handled()`` block, or None."""
    return _received[0] if _received else None


def check() -> None:
    """Raise again the interrupt of a signal received earlier, in case its exception was
    swallowed on its way (see the module doc). Outside ``handled()``, nothing to do."""
    if _received:
        _raise(_received[0])


@contextlib.contextmanager
def handled():
    """SIGINT and SIGTERM raise and are recorded in this block (main thread only: signal
    handlers can only be set there); the previous handlers come back after it, so that a
    caller of ``lstm_bench.cli.main`` in-process keeps its own. A KeyboardInterrupt that a
    finalizer could not raise is not printed: the record raises it again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_hook = sys.unraisablehook

    def unraisable(info):
        if not (_received and isinstance(info.exc_value, KeyboardInterrupt)):
            previous_hook(info)

    previous = {signum: signal.getsignal(signum) for signum in EXIT_CODES}
    # ignored: left so; None: a handler set outside Python, which could not be put back
    replaced = {signum: handler for signum, handler in previous.items()
                if handler is not None and handler is not signal.SIG_IGN}
    _received.clear()
    try:
        sys.unraisablehook = unraisable
        for signum in replaced:
            signal.signal(signum, _on_signal)
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _received.clear()


@contextlib.contextmanager
def held(signum: int):
    """``signum`` held back during the block and delivered after it. A process started in
    the block inherits the blocked signal and never sees it (as multiprocessing starts its
    resource tracker). The handler waits too: another thread of this process may take the
    signal, and Python would raise it in the main thread in the middle of the block."""
    swap = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signum) is not None)
    came = []
    if swap:
        handler = signal.signal(signum, lambda signum, frame: came.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if swap:
            signal.signal(signum, handler)
            if came:
                signal.raise_signal(signum)  # to the handler it was meant for
