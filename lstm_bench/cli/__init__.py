"""The ``lstm-bench`` command line.

Each subcommand lives in its own module, imported only when that subcommand runs, so that
``lstm-bench --help`` stays fast (no torch, no onnxruntime). A command module has
``add_arguments(parser)`` and ``main(args) -> int``; its one-line help is in ``COMMANDS`` (the
one copy, read by --help). Options shared by several commands come from ``lstm_bench.cli.options``.

Exit codes: 0 success, 1 a parity or regression failure, 2 bad input (``LSTMBenchError``,
argparse errors, an input too large for this machine's memory): one line on stderr, never a
traceback; ``lstm-bench`` without a command prints the help on stderr and exits 2. Ctrl-C and SIGTERM raise an exception (``lstm_bench.interrupts``), so that temporary
files are removed and a run folder is marked as interrupted on the way out: one line on stderr,
exit 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from lstm_bench import __version__, interrupts
from lstm_bench.cli.console import PipeSafe
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.printable import visible

# subcommand -> (module, one-line help). Written out by hand: the order is the order in --help.
COMMANDS = {
    "train": ("lstm_bench.cli.train", "train the seed's LSTM classifier on a built-in task"),
    "export": ("lstm_bench.cli.export", "export a checkpoint, .keras, .pt2 or .npz to ONNX and prove it"),
    "verify": ("lstm_bench.cli.verify", "run a model on every runtime against the float64 truth"),
    "bench": ("lstm_bench.cli.bench", "measure latency and throughput of each runtime"),
    "compare": ("lstm_bench.cli.compare", "compare two bench JSON reports; exit 1 on a regression"),
    "history": ("lstm_bench.cli.history", "bench results over time, change points flagged"),
    "run": ("lstm_bench.cli.run", "the whole job on the built-in seed model: export, verify, bench"),
}

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, exit code 2."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items())
    parser = _Parser(
        prog="lstm-bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="ONNX export and multi-backend runtime benchmark suite for LSTM models.",
        epilog=f"commands:\n{lines}\n\n`lstm-bench COMMAND --help` describes each command.",
        usage="lstm-bench [-h] [--version] COMMAND ...",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("command", nargs="?", choices=list(COMMANDS), metavar="COMMAND",
                        help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    top_args = top.parse_args(argv[:split + 1])
    if top_args.version:
        print(f"lstm-bench {__version__}")
        return 0
    if top_args.command is None:  # a script that forgot its command must not pass
        top.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    command = top_args.command
    stdout, stderr = sys.stdout, sys.stderr
    # `| head`, logs, GitHub Actions' workflow commands: lstm_bench/cli/console.py
    sys.stdout, sys.stderr = PipeSafe(stdout), PipeSafe(stderr)
    try:
        with interrupts.handled():
            return _interruptible(command, argv[split + 1:])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = stdout, stderr


def _interruptible(command: str, argv: list[str]) -> int:
    """The command's exit code; 130 after Ctrl-C, 143 after SIGTERM (one line on stderr)."""
    try:
        code = _run(command, argv)
        interrupts.check()  # a signal whose exception a finalizer or a library swallowed
        return code
    except BaseException as exc:
        # after a signal, whatever escapes is the interrupt, even if a library turned it into
        # another exception (type() makes one from __set_name__ a RuntimeError)
        signum = interrupts.received()
        if signum is None and isinstance(exc, KeyboardInterrupt):  # not from a signal
            signum = signal.SIGTERM if isinstance(exc, interrupts.Terminated) else signal.SIGINT
        if signum is None:
            return _failed(command, exc)
    word = "terminated" if signum == signal.SIGTERM else "interrupted"
    print(f"lstm-bench {command}: {word}", file=sys.stderr)
    # CPython (3.11) marks the process to die by SIGINT at exit, whatever its exit code, when a
    # KeyboardInterrupt passed through code run by exec() or eval() of a string (dataclasses
    # and namedtuple make their methods so, as a module is imported), even if caught since;
    # the next such call that succeeds clears the mark, so that `python -m lstm_bench.cli`
    # exits with the code returned here.
    exec("")
    return interrupts.EXIT_CODES[signum]


def _run(command: str, argv: list[str]) -> int:
    module_name, help_ = COMMANDS[command]
    parser = _Parser(prog=f"lstm-bench {command}", description=help_)
    module = importlib.import_module(module_name)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    from lstm_bench.files import check_limit_variables  # here: it imports numpy, --help does not

    check_limit_variables()  # a bad LSTM_BENCH_* limit is bad input before any work
    return int(module.main(args) or 0)


def _failed(command: str, exc: BaseException) -> int:
    """Bad input is one line and exit code 2; anything else goes on up (argparse's exits, and
    bugs: a traceback)."""
    if isinstance(exc, LSTMBenchError):
        return _bad_input(command, str(exc))
    if isinstance(exc, MemoryError):  # a size that passed the checks, not this machine's memory
        return _bad_input(command, f"out of memory ({first_line(exc)}); the input or "
                          "the requested shapes are too large for this machine")
    raise exc


def _bad_input(command: str, message: str) -> int:
    # always one line, and a name in it (a file's, a runtime's) cannot drive the terminal
    message = visible(" ".join(message.split()))
    print(f"lstm-bench {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT

