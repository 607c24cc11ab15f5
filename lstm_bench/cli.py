"""The ``lstm-bench`` command line.

Each subcommand lives in its own module, imported only when that subcommand runs, so that
``lstm-bench --help`` stays fast (no torch, no onnxruntime). A command module has
``add_arguments(parser)`` and ``main(args) -> int``; its one-line help is in ``COMMANDS`` (the
one copy, read by --help). Options shared by several commands come from ``lstm_bench.options``.

Exit codes: 0 success, 1 a parity or regression failure, 2 bad input (``LSTMBenchError``,
argparse errors, an input too large for this machine's memory): one line on stderr, never a
traceback. SIGTERM is turned into an exception like Ctrl-C, so that temporary files are removed
and a run folder is marked as interrupted on the way out (exit 130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from lstm_bench.console import PipeSafe
from lstm_bench.errors import LSTMBenchError, first_line

# subcommand -> (module, one-line help). Written out by hand: the order is the order in --help.
COMMANDS = {
    "train": ("lstm_bench.cli_train", "train the seed's LSTM classifier on a built-in task"),
    "export": ("lstm_bench.exporters.cli_export", "export a checkpoint, .keras, .pt2 or .npz to ONNX and prove it"),
    "verify": ("lstm_bench.runtimes.cli_verify", "run a model on every runtime against the float64 truth"),
    "bench": ("lstm_bench.bench.cli_bench", "measure latency and throughput of each runtime"),
    "compare": ("lstm_bench.bench.cli_compare", "compare two bench JSON reports; exit 1 on a regression"),
    "history": ("lstm_bench.bench.cli_history", "bench results over time, change points flagged"),
    "run": ("lstm_bench.bench.cli_run", "the whole job on the built-in seed model: export, verify, bench"),
}

EXIT_BAD_INPUT = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks clean up as for Ctrl-C."""


def _on_sigterm(signum, frame):
    raise Terminated()


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
        from lstm_bench import __version__

        print(f"lstm-bench {__version__}")
        return 0
    if top_args.command is None:
        top.print_help()
        return 0
    module_name, help_ = COMMANDS[top_args.command]
    parser = _Parser(prog=f"lstm-bench {top_args.command}", description=help_)
    previous, stdout = None, sys.stdout
    sys.stdout = PipeSafe(stdout)  # `| head`, logs: lstm_bench/console.py
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        module = importlib.import_module(module_name)
        module.add_arguments(parser)
        args = parser.parse_args(argv[split + 1:])
        from lstm_bench.files import check_limit_variables

        check_limit_variables()  # a bad LSTM_BENCH_* limit is bad input before any work
        return int(module.main(args) or 0)
    except LSTMBenchError as exc:
        return _bad_input(top_args.command, str(exc))
    except MemoryError as exc:  # a size that passed the checks but not this machine's memory
        return _bad_input(top_args.command, f"out of memory ({first_line(exc)}); the input or "
                          "the requested shapes are too large for this machine")
    except Terminated:
        print(f"lstm-bench {top_args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"lstm-bench {top_args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()
        sys.stdout = stdout
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _bad_input(command: str, message: str) -> int:
    message = " ".join(message.split())  # always one line
    print(f"lstm-bench {command}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
