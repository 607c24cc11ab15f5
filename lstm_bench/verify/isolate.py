"""Runtimes that load native code run in a child process, so that their crash is theirs alone.

onnxruntime, OpenVINO and torch are C++ libraries: a bug there ends the process that runs them
with a signal (onnxruntime 1.32 segfaults creating a session for the float16 copy of a plain
TorchScript LSTM export, docs/LSTM_FACTS), and Python cannot catch it. verify and bench
therefore open and run such a runtime in a ``Child``: one process for the whole life of this
one (``session``), reused for every runtime and every command (it pays its start and the
libraries' import once, as this process did), started again only after a crash or an
interrupted job. The child reports which step it is in (``phase``), so that a crash becomes
the runtime's verdict ("crashed: SIGSEGV while opening") and the rest of the report is
written. Each job takes this process's working folder, ``sys.path`` and environment with it,
so the child runs it as this process would.

The child is a fresh interpreter (fork is unsafe once torch or onnxruntime started threads)
that imports this module alone, not the parent's main script (multiprocessing's "spawn" would:
a script that calls ``verify`` then needs no ``if __name__ == "__main__"`` guard). Jobs and
answers are pickled between the two (our own data, never a user's file). It ignores Ctrl-C (a
terminal sends it to the whole process group: the parent alone handles it, and ends the
child) and dies with its parent (``die_with_parent``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

from lstm_bench.errors import LSTMBenchError
from lstm_bench.interrupts import held

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Run first in each child process: the child ends when its parent does. A parent that
    is killed (SIGKILL, the out-of-memory killer) cannot end its child, which would wait for
    work for ever and keep multiprocessing's resource tracker alive with it. On Linux the
    kernel sends the child SIGKILL as the parent dies (``prctl(PR_SET_PDEATHSIG)``: the
    parent's main thread spawns the children, and the signal follows the thread that did);
    elsewhere a thread checks every second whether the parent is still there."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the signal was asked for
                os._exit(1)
            return

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="lstm-bench-parent-watch", daemon=True).start()


def needs_child(factory) -> bool:
    """Whether the runtime ``factory`` makes loads native code (``native_code``, true unless
    the runtime says otherwise) and can be sent to a child: a factory is sent by name, so one
    made in a function (a lambda) or in the main script (the child does not run it) runs in
    this process."""
    if not getattr(factory(), "native_code", True):
        return False
    try:
        return b"__main__" not in pickle.dumps(factory)
    except Exception:  # pickled by name, a lambda cannot be
        return False


@dataclass(frozen=True)
class Shared:
    """An argument sent to a child once: later calls send its key alone, and the child uses
    the value it kept (a model's feeds and truth, judged by one runtime after another)."""

    key: str
    value: object = None


class Crashed(Exception):
    """The child died while it ran a job (a signal, an exit) or a step outlasted its limit."""

    def __init__(self, how: str, phase: str, timed_out: bool = False):
        super().__init__(f"{how} while {phase}")
        self.how, self.phase, self.timed_out = how, phase, timed_out

    @property
    def reason(self) -> str:
        """The runtime's verdict in words: "crashed: SIGSEGV while opening"."""
        return (f"stopped: {self.phase} took longer than {self.how}" if self.timed_out
                else f"crashed: {self}")


def exit_words(code: int | None) -> str:
    """How a child ended, from its exit code: "SIGSEGV", "SIGKILL (out of memory?)"
    (what the kernel's out-of-memory killer sends), "exited with code 1"."""
    if code is None or code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"{name} (out of memory?)" if -code == signal.SIGKILL else name


# The child's program. ``-c`` puts the working folder first on sys.path: a user's folder may
# hold a numpy.py, so it goes before anything is imported (the parent's path follows it, from
# PYTHONPATH).
CHILD = ("import sys; sys.path[:] = [p for p in sys.path if p]; "
         "from lstm_bench.verify.isolate import serve; serve()")


class Child:
    """One child process that runs jobs, ``func(*args, phase=...)``, one at a time: started on
    first use (or by ``warm``), started again after a crash, ended by ``close``."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.kept: set[str] = set()  # the keys of the Shared values the child holds
        self.warming = False  # the answer of ``warm``'s job is still to be read

    def warm(self, func, *args) -> None:
        """Start the child now, unless it runs, with ``func(*args)`` as its first job (its
        answer and its crash are ignored): it imports what later jobs need while this process
        works on."""
        if self.process is None:
            self.start()
            self._send(func, args)
            self.warming = True

    def start(self) -> None:
        """Start a new child (``close`` the running one first)."""
        mine, theirs = socket.socketpair()
        with theirs, held(signal.SIGINT):  # Ctrl-C blocked until the child ignores it
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        # this process keeps one end: the child's death reads as end of file
        self.process, self.conn, self.kept = process, Connection(mine.detach()), set()

    def call(self, func, *args, limit: float | None = None):
        """``func(*args, phase=...)`` in the child: its result, or the exception it raised
        raised here. Crashed when the child dies (it is started again for the next call), or
        when one phase of the job outlasts ``limit`` seconds (the child is ended)."""
        try:
            return self._call(func, args, limit)
        except (Exception, KeyboardInterrupt) as exc:
            if not isinstance(exc, (Crashed, LSTMBenchError)):  # a job cut short, a bug
                self.close()
            raise

    def _call(self, func, args, limit):
        if self.warming:
            self.warming = False
            try:
                self._answer("starting", limit)
            except Exception:  # a crash included: the job's own call will say what went wrong
                self.close()
        sent = tuple(Shared(a.key) if isinstance(a, Shared) and a.key in self.kept else a
                     for a in args)
        for attempt in (1, 2):  # a child that died while idle is started again, once
            if self.process is None:
                self.start()
                sent = args
            try:
                self._send(func, sent)
                break
            except (BrokenPipeError, ConnectionResetError):
                code = self._ended()
                if attempt == 2:
                    raise Crashed(exit_words(code), "receiving its job") from None
        self.kept |= {a.key for a in args if isinstance(a, Shared)}
        return self._answer("starting", limit)

    def _send(self, func, args) -> None:
        # first where to run it: unpickling the job imports modules, on that sys.path
        self.conn.send(_context())
        self.conn.send((func, args))

    def forget(self) -> None:
        """Drop the Shared values the child holds (the end of a command's jobs)."""
        if self.process is not None and self.kept:
            try:
                self.call(_forget)
            except Crashed:  # gone, and what it held with it
                pass
        self.kept = set()

    def _answer(self, phase: str, limit: float | None):
        while True:
            # the limit is the steps': the child's start (the interpreter, the job's modules)
            # is not one, and on a busy machine it can take seconds
            if not self.conn.poll(None if phase == "starting" else limit):
                self.close()
                raise Crashed(f"{limit:g} s (LSTM_BENCH_CALL_TIMEOUT_S)", phase, timed_out=True)
            try:
                kind, value = self.conn.recv()
            except (EOFError, ConnectionResetError):
                raise Crashed(exit_words(self._ended()), phase) from None
            if kind == "phase":
                phase = value
            elif kind == "raised":
                raise value
            else:
                return value

    def _ended(self) -> int | None:
        """The exit code of a child that is gone (its pipe closed), after ``close``."""
        process = self.process
        try:
            process.wait(5)  # it is ending: its exit code comes with it
        except subprocess.TimeoutExpired:
            pass
        self.close()
        return process.returncode

    def close(self) -> None:
        """End the child (a job it is running is abandoned: nothing of it is kept)."""
        process, conn, self.process, self.conn = self.process, self.conn, None, None
        self.warming = False
        if conn is not None:
            conn.close()
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()


_CHILD = Child()  # this process's child, for all its sessions
atexit.register(_CHILD.close)


@contextlib.contextmanager
def session():
    """This process's child for one command's jobs: what they shared is dropped at the end,
    and the child is ended when the block ends in an exception (an interrupt, bad input found
    meanwhile: the child may be in the middle of a job)."""
    try:
        yield _CHILD
    except BaseException:
        _CHILD.close()
        raise
    _CHILD.forget()


def _context() -> tuple:
    """What a job takes from this process: its working folder, ``sys.path`` and environment."""
    try:
        cwd = os.getcwd()
    except OSError:  # removed meanwhile: the child stays where it is
        cwd = None
    return cwd, list(sys.path), dict(os.environ)


def _forget(*, phase) -> None:
    _KEPT.clear()


_KEPT: dict = {}  # in the child: the Shared values, by key


def serve() -> None:
    """The child's loop (``sys.argv``: its end of the connection, the parent's pid): run each
    job sent, answer with its phases and its result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn, parent = Connection(int(sys.argv[1])), int(sys.argv[2])
    die_with_parent(parent)

    def phase(what: str) -> None:
        conn.send(("phase", what))

    while True:
        try:
            cwd, path, environ = conn.recv()
            job = conn.recv_bytes()
        except (EOFError, OSError):  # the parent closed its end, or is gone
            return
        try:
            if cwd is not None:
                os.chdir(cwd)
            sys.path[:] = path
            os.environ.clear()
            os.environ.update(environ)
            func, args = pickle.loads(job)
        except Exception as exc:  # a job that names what cannot be imported here
            conn.send(("raised", RuntimeError(f"the child process cannot load its job: "
                                              f"{type(exc).__name__}: {exc}")))
            continue
        for arg in args:
            if isinstance(arg, Shared) and arg.value is not None:
                _KEPT[arg.key] = arg.value
        args = [_KEPT[a.key] if isinstance(a, Shared) else a for a in args]
        try:
            answer = ("done", func(*args, phase=phase))
        except BaseException as exc:  # raised again in the parent
            answer = ("raised", exc)
        try:
            if answer[0] == "raised":  # one whose arguments do not come back: its text
                pickle.loads(pickle.dumps(answer[1]))
            conn.send(answer)
        except Exception:  # what does not pickle: the text of it, a bug's traceback kept
            text = ("".join(traceback.format_exception(answer[1])) if answer[0] == "raised"
                    else f"{func.__name__} returned what cannot be sent")
            conn.send(("raised", RuntimeError(text)))

