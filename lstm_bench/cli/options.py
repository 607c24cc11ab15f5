"""The command-line options that several commands share, parsed once with one meaning.

``--runtimes``, ``--batch``, ``--seq-len``, ``--threads``, ``--quiet``, ``--seed``, ``--range``
and ``--min-time`` are added by the functions here and parsed by argparse ``type`` functions,
so a bad value is a usage error (one line, exit code 2) before any work starts. Each command
keeps its own options beside these. ``--runtimes``, ``--batch``, ``--seq-len`` and
``--threads`` take the same form in verify, bench, run and compare: a comma list (``1,8``; one
value is a list of one); a command sweeps a list where that makes sense and refuses one of
several values with the reason where it does not (``single``).

Bounds (a value outside is refused): batch and sequence lengths 1 .. 2**31-1 (onnxruntime's
and the LSTM's sequence_lens are int32; the memory a shape needs is checked separately against
``LSTM_BENCH_MAX_ARRAY_MB``, see ``lstm_bench.files``); thread counts 1 .. ``MAX_THREADS``;
lists at most ``MAX_LIST`` values; seeds 0 .. 2**32-1; ranges of finite floats whose width is
finite too; durations finite and 0 or more. The timing options (``--span``, ``--min-time``,
``--processes``, ``--blocks``, ``--block``) are bounded where they are used, by
``bench.harness.Settings`` (``MAX_SPAN``, ``MAX_PROCESSES``, ...), for callers of the API too.
"""

from __future__ import annotations

import argparse
import math

from lstm_bench.bench.machine import default_threads
from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds import Given
from lstm_bench.runtimes.registry import RUNTIMES

MAX_DIM = 2 ** 31 - 1
MAX_THREADS = 1024
MAX_LIST = 64
MAX_SEED = 2 ** 32 - 1


class OptionError(argparse.ArgumentTypeError, LSTMBenchError):
    """A bad option value: argparse's usage error on the command line, the project's bad-input
    error when these parsers are called from code."""


def _integer(text: str, low: int, high: int) -> int:
    # argparse puts "argument --NAME: " before these messages
    try:
        value = int(str(text).strip())
    except ValueError:
        raise OptionError(f"{str(text).strip()!r} is not an integer") from None
    if value < low:
        raise OptionError(f"{value} is below {low}")
    if value > high:
        raise OptionError(f"{value} is above the limit of {high}")
    return value


def _int_list(text: str, low: int, high: int) -> list[int]:
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise OptionError("empty; give a comma-separated list such as 1,8,32")
    if len(items) > MAX_LIST:
        raise OptionError(f"{len(items)} values, at most {MAX_LIST} in one run")
    values = []
    for item in items:
        value = _integer(item, low, high)
        if value not in values:
            values.append(value)
    return values


def positive_int(text: str) -> int:
    return _integer(text, 1, MAX_DIM)


def sizes(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]: batch sizes or sequence lengths."""
    return _int_list(text, 1, MAX_DIM)


def thread_count(text: str) -> int:
    return _integer(text, 1, MAX_THREADS)


def thread_counts(text: str) -> list[int]:
    return _int_list(text, 1, MAX_THREADS)


def seed(text: str) -> int:
    return _integer(text, 0, MAX_SEED)


def _nonnegative(text: str, what: str) -> float:
    # NaN or infinity would pass every check made with it (a percentage: the gate silently off)
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"expected {what}, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise OptionError(f"expected {what}, finite and 0 or more, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A duration: 0 or more (0: the minimum repetitions alone)."""
    return _nonnegative(text, "a number of seconds")


def percent(text: str) -> float:
    """A threshold in percent, 0 or more."""
    return _nonnegative(text, "a percentage")


def series_name(text: str) -> str:
    """A history series' name (bench/run/history --series): printable text, 200 characters at
    most (it heads tables and names the series in every database)."""
    if not text.strip() or not text.isprintable() or len(text) > 200:
        raise OptionError(f"a series name is 1 to 200 printable characters, got {text[:40]!r}")
    return text


def value_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in str(text).split(","))
    except ValueError:
        raise OptionError(f"expected LOW,HIGH, got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(high - low)):
        raise OptionError(f"expected finite LOW,HIGH whose difference is finite "
                                         f"too, got {text!r}")
    if not low < high:
        raise OptionError(f"expected LOW < HIGH, got {text!r}")
    return low, high


def runtime_names(text: str) -> list[str] | None:
    """'a,b' -> ['a', 'b']; 'all' -> None (every registered runtime). Each name must be in the
    registry: this is where runtime names are checked."""
    if str(text).strip() == "all":
        return None
    names = list(dict.fromkeys(n.strip() for n in str(text).split(",") if n.strip()))
    if not names:
        raise OptionError("empty; give comma-separated runtime names or 'all'")
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise OptionError(f"unknown {', '.join(unknown)}; known: {', '.join(RUNTIMES)}")
    return names


def _named(text: str, what: str) -> tuple[str, str]:
    name, sep, value = str(text).partition("=")
    if not sep or not name.strip() or not value.strip():
        raise OptionError(f"expected NAME={what}, got {text!r}")
    return name.strip(), value.strip()


def input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """'x=2x1x32x160' -> ('x', (2, 1, 32, 160)); a scalar input's shape is empty: 'sr='."""
    name, sep, dims = str(text).partition("=")
    if not sep or not name.strip():
        raise OptionError(f"expected NAME=DIMS such as x=2x1x32x160, got {text!r}")
    dims = dims.strip()
    return name.strip(), tuple(_integer(d, 1, MAX_DIM) for d in dims.split("x")) if dims else ()


def input_value(text: str) -> tuple[str, float]:
    """'sr=16000' -> ('sr', 16000.0): a value that fills an input (a scalar or config input)."""
    name, value = _named(text, "V")
    try:
        number = float(value)
    except ValueError:
        raise OptionError(f"expected NAME=NUMBER, got {text!r}") from None
    if not math.isfinite(number):
        raise OptionError(f"expected a finite number, got {text!r}")
    return name, number


# --- adding them ----------------------------------------------------------------------------

def add_runtimes(parser) -> None:
    parser.add_argument("--runtimes", type=runtime_names, default=None, metavar="A,B,...|all",
                        help="comma-separated runtime names, or 'all' (default: every "
                             "registered runtime; those that cannot run here are listed as "
                             "skipped)")


def add_batch(parser, *, default, what: str = "") -> None:
    """--batch N,N,...: the same form in every command (one value is a list of one); not
    given, it is None: the command feeds ``default``, or the batch the model fixes where it
    takes one batch only (lstm_bench.feeds.fit_batches). ``what``: how the command uses a list."""
    parser.add_argument("--batch", type=sizes, default=None, metavar="N,N,...",
                        help=f"comma list of batch sizes{what} (default: "
                             f"{','.join(map(str, default))}, or the model's batch where it "
                             "fixes one)")


def add_seq_len(parser, *, default=None, what: str = "") -> None:
    shown = ",".join(map(str, default)) if default else "the model's, else 100"
    parser.add_argument("--seq-len", type=sizes, default=default, metavar="T,T,...",
                        help=f"comma list of sequence lengths for dynamic axes{what} "
                             f"(default: {shown})")


def single(values, option: str, why: str):
    """The one value of a list option where the command takes one (None: not given); a list
    of several is refused, saying ``why``."""
    if values is None:
        return None
    if len(values) > 1:
        raise LSTMBenchError(f"{option} {','.join(map(str, values))}: one value here ({why})")
    return values[0]


def add_threads(parser, *, many: bool = True, default=None, help_: str | None = None) -> None:
    if many:
        parser.add_argument("--threads", type=thread_counts, default=default, metavar="N,N,...",
                            help=help_ or "comma list of intra-op thread counts, the same for "
                                          "every CPU runtime (default: 1; at most 4 x the "
                                          "usable cores)")
    else:
        parser.add_argument("--threads", type=thread_count, default=default, metavar="N",
                            help=help_ or f"intra-op threads (at most {MAX_THREADS})")


def add_given(parser) -> None:
    """--shape and --value: what the graph cannot tell about the inputs, given by name."""
    parser.add_argument("--shape", dest="shapes", type=input_shape, action="append", default=[],
                        metavar="NAME=DIMS",
                        help="the whole shape of input NAME, e.g. x=2x1x32x160 (repeatable): "
                             "for an axis the graph does not tie to the LSTM's batch or steps")
    parser.add_argument("--value", dest="values", type=input_value, action="append", default=[],
                        metavar="NAME=V",
                        help="fill input NAME with V, e.g. sr=16000 (repeatable): scalar and "
                             "config inputs, such as one that selects the model's branches")


def given(args) -> Given:
    """The --shape, --value (and --state, where the command has it) options as
    ``feeds.Given``; an input named twice is refused."""
    for option, pairs in (("--shape", args.shapes), ("--value", args.values)):
        names = [name for name, _ in pairs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise LSTMBenchError(f"{option} names {', '.join(map(repr, twice))} more than once")
    return Given(dict(args.shapes), dict(args.values), states=states(args))


def state_pair(text: str) -> tuple[str, str]:
    """'h0=hn' -> ('h0', 'hn'): a graph input and the graph output the state leaves by."""
    return _named(text, "OUT")


def add_state(parser) -> None:
    """--state IN=OUT: a state pair that the names or the graph do not show (streaming)."""
    parser.add_argument("--state", dest="states", type=state_pair, action="append", default=[],
                        metavar="IN=OUT",
                        help="stream the state the model returns as output OUT back into input "
                             "IN at the next call (repeatable), e.g. h0=hn; pairs are found "
                             "by name and graph where this is not given")


def states(args) -> tuple[tuple[str, str], ...]:
    """The --state pairs (none for a command without the option); an input or an output named
    twice is refused."""
    pairs = tuple(getattr(args, "states", None) or ())
    for side, names in (("input", [i for i, _ in pairs]), ("output", [o for _, o in pairs])):
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise LSTMBenchError(f"--state names {side} {', '.join(map(repr, twice))} more "
                                 "than once")
    return pairs


def threads_or_default(threads: list[int] | None) -> list[int]:
    """The thread counts to use and record: the given ones, or the default (1)."""
    return list(threads) if threads else [default_threads()]


def add_junit_xml(parser) -> None:
    parser.add_argument("--junit-xml", metavar="PATH",
                        help="write the verdicts as JUnit XML, a test case each, for CI test "
                             "reporters ('-': standard output)")


def add_quiet(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def add_ort_option(parser) -> None:
    """--ort-option KEY=VALUE (repeatable), validated by runtimes.ort_options before any work."""
    parser.add_argument("--ort-option", dest="ort_options", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="an onnxruntime session option for every onnxruntime-based runtime, "
                             "recorded in the reports (repeatable): graph_optimization_level="
                             "basic, execution_mode=parallel, intra_op_spinning=0, "
                             "inter_op_threads=N, session.KEY=V")


def add_history(parser, *, default_db: str) -> None:
    """--db, --series and --no-history: where bench and run append their results, under which
    series (bench.history)."""
    parser.add_argument("--db", metavar="PATH|URL",
                        help="history database to append the results to: a SQLite file or "
                             "postgresql://user@host:port/dbname (default: "
                             f"$LSTM_BENCH_DB, else {default_db})")
    parser.add_argument("--series", metavar="NAME", type=series_name,
                        help="the history series these results continue (default: the model "
                             "file's name; a retrained model keeps its series)")
    parser.add_argument("--no-history", action="store_true", help="do not record the results")


def add_seed(parser, *, help_: str = "seed of the random inputs (default 0)",
             default: int | None = 0) -> None:
    """--seed; ``default=None`` where the command must tell a given seed from the default
    (bench and verify refuse one with --inputs; ``seed_or_default`` reads it)."""
    parser.add_argument("--seed", type=seed, default=default, help=help_)


def refuse_with_inputs(args, given: dict[str, bool]) -> None:
    """With --inputs F.npz the file holds the values: an option given beside it that would
    draw them (--seed, --range, ...) is refused, not silently unused. ``given``: option -> given."""
    if getattr(args, "inputs", None):
        for option, is_given in given.items():
            if is_given:
                raise LSTMBenchError(f"{option} conflicts with --inputs: the values come from "
                                     f"the file; leave {option} out with --inputs")


def seed_or_default(value: int | None) -> int:
    return 0 if value is None else value


def add_min_time(parser, *, default: float, help_: str) -> None:
    parser.add_argument("--min-time", type=seconds, default=default, help=help_)
