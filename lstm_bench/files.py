"""Users' files, read and written safely: the one atomic writer, the one JSON reader and
serializer, .npz without unpickling, and the size limits every reader checks before allocating.

Writing: ``atomic_path`` hands out a temporary file created exclusively (``O_EXCL``, an
unpredictable name, never a symlink followed) in the target's own folder; it replaces the
target only when the body succeeded, and is removed on any failure, Ctrl-C or SIGTERM (the CLI
turns SIGTERM into an exception so that this cleanup runs). The file gets the user's normal
permissions (``0o666 & ~umask``), not mkstemp's 0600.

Reading: every size a file declares is checked against a limit before anything of that size is
allocated. The limits (environment variables, in MiB, for the rare model that needs more):

=============================  =======  ====================================================
``LSTM_BENCH_MAX_ARRAY_MB``    4096     one array: .npz member, HDF5 dataset, feed, tensor
``LSTM_BENCH_MAX_JSON_MB``     64       one JSON file (reports, configs, sidecars)
``LSTM_BENCH_MAX_FEEDS_MB``    8192     all the feeds a bench holds at once, with an estimate
                                        of its runtimes' outputs (``check_total_size``)
=============================  =======  ====================================================
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.outputs import target_problem

LIMITS_MB = {"LSTM_BENCH_MAX_ARRAY_MB": 4096, "LSTM_BENCH_MAX_JSON_MB": 64,
             "LSTM_BENCH_MAX_FEEDS_MB": 8192}
_MAX_JSON_INT = 2 ** 63  # a JSON integer beyond int64 is not a count, a size or a time


# Time limits, in seconds, for a model that runs away (a Loop whose count is computed).
LIMITS_S = {"LSTM_BENCH_REFERENCE_TIMEOUT_S": 600.0, "LSTM_BENCH_CALL_TIMEOUT_S": 600.0}
# The largest values the variables take. A size past a petabyte is no limit, and 1e308 MiB
# in bytes is no number (int(inf) raised). A time limit must fit the clocks that enforce it:
# setitimer (the reference) refuses 1e10 s and threading's timers (the call limit) anything
# over threading.TIMEOUT_MAX (9.2e9 s); the call limit's timer thread then died, leaving the
# guard off. 1e6 s is 11.6 days, far from both.
MAX_LIMIT_MB = 1e9
MAX_LIMIT_S = 1e6


def _positive_env(name: str, default: float, unit: str, most: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and 0 < value <= most):
        raise LSTMBenchError(f"{name}={text!r}: expected a positive number of {unit}, at most "
                             f"{most:g}")
    return value


def limit_bytes(name: str) -> int:
    """A limit of ``LIMITS_MB`` in bytes, from its environment variable when set."""
    return int(_positive_env(name, LIMITS_MB[name], "MiB", MAX_LIMIT_MB) * 2 ** 20)


def limit_seconds(name: str) -> float:
    """A time limit of ``LIMITS_S``, from its environment variable when set."""
    return _positive_env(name, LIMITS_S[name], "seconds", MAX_LIMIT_S)


def check_limit_variables() -> None:
    """Every limit variable that is set must be valid: checked when a command starts, so that
    a bad value is refused before any work rather than wherever the limit is first needed."""
    for name in LIMITS_MB:
        limit_bytes(name)
    for name in LIMITS_S:
        limit_seconds(name)


def size_text(n: int) -> str:
    """A byte count as people read it in an error: bytes, KiB, MiB or GiB."""
    if n < 2 ** 20:
        return f"{n} bytes" if n < 2 ** 10 else f"{n / 2 ** 10:.3g} KiB"
    return f"{n / 2 ** 30:.3g} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.3g} MiB"


def check_array_size(shape, dtype, what: str) -> None:
    """Refuse an array whose declared ``shape`` and ``dtype`` (or item size in bytes) exceed
    LSTM_BENCH_MAX_ARRAY_MB, before allocating it (Python ints: no overflow)."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise LSTMBenchError(f"{what}: negative dimension in shape {dims}")
    itemsize = dtype if isinstance(dtype, int) else np.dtype(dtype).itemsize
    kind = f"{itemsize}-byte values" if isinstance(dtype, int) else np.dtype(dtype).name
    nbytes = math.prod(dims) * itemsize
    allowed = limit_bytes("LSTM_BENCH_MAX_ARRAY_MB")
    if nbytes > allowed:
        raise LSTMBenchError(f"{what}: shape {dims} of {kind} would take "
                             f"{size_text(nbytes)}, above the limit of {size_text(allowed)} "
                             "(set LSTM_BENCH_MAX_ARRAY_MB to allow more)")


def check_total_size(parts, what: str, limit: str = "LSTM_BENCH_MAX_FEEDS_MB",
                     shown: int = 3) -> None:
    """Refuse when ``parts`` ((label, bytes) of everything ``what`` would hold at once) sum
    above ``limit``, before any of it is allocated; the one-line error names the largest parts
    and the variable that raises the limit."""
    parts = [(label, int(n)) for label, n in parts]
    total = sum(n for _, n in parts)
    allowed = limit_bytes(limit)
    if total <= allowed:
        return
    largest = sorted(parts, key=lambda part: -part[1])
    listed = ", ".join(f"{label}: {size_text(n)}" for label, n in largest[:shown])
    more = f", and {len(parts) - shown} smaller" if len(parts) > shown else ""
    raise LSTMBenchError(f"{what} would hold {size_text(total)} at once, above the limit of "
                         f"{size_text(allowed)} (set {limit} to allow more); the largest: "
                         f"{listed}{more}")


# --- .npz -----------------------------------------------------------------------------------

def load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz (never unpickled); ``what`` names its content in errors.

    Each member must be an ``.npy`` whose header declares no more than the member holds and no
    more than LSTM_BENCH_MAX_ARRAY_MB; decompression never goes past the declared size.
    """
    path = Path(path)
    if not path.is_file():
        raise LSTMBenchError(f"{path}: {'a directory, not a' if path.is_dir() else 'no such'} file")
    if not zipfile.is_zipfile(path):
        raise LSTMBenchError(f"{path}: not an .npz file (an .npz is a zip of .npy arrays)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for info in members:
                if info.is_dir() or not info.filename.endswith(".npy"):
                    raise LSTMBenchError(f"member {info.filename!r} is not an .npy array")
            return {info.filename[:-4]: _read_member(archive, info) for info in members}
    except LSTMBenchError as exc:
        raise LSTMBenchError(f"{path}: not a readable .npz of {what} ({exc})") from None
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError,
            zipfile.BadZipFile) as exc:  # zlib.error is an Exception: caught below
        raise LSTMBenchError(f"{path}: not a readable .npz of {what} ({first_line(exc)})") from None
    except Exception as exc:  # zlib.error, struct.error from a corrupt member
        raise LSTMBenchError(f"{path}: not a readable .npz of {what} "
                             f"({first_line(exc, with_type=True)})") from None


def _read_member(archive, info) -> np.ndarray:
    fmt = np.lib.format
    where = info.filename
    check_array_size((info.file_size,), np.uint8, where)
    with archive.open(info) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise LSTMBenchError(f"{where}: unsupported .npy format version {version}")
        if dtype.hasobject:
            raise LSTMBenchError(f"{where}: holds Python objects (pickled); only plain numeric "
                                 "arrays are read")
        check_array_size(shape, dtype, where)
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise LSTMBenchError(f"{where}: the header declares shape {list(shape)} of "
                                 f"{dtype.name}, more than the member's {info.file_size} bytes")
    with archive.open(info) as f:
        return fmt.read_array(f, allow_pickle=False)


# --- JSON -----------------------------------------------------------------------------------

def _plain(value):
    """``value`` with numpy scalars and arrays, paths and tuples made plain JSON, and every
    non-finite float (NaN, inf) written as null: one rule for every file lstm-bench writes."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value, indent: int | None = 1) -> str:
    """The JSON text of ``value``; NaN and inf become null (strict JSON any reader accepts)."""
    return json.dumps(_plain(value), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | Path, value, indent: int | None = 1) -> Path:
    return write_text(path, to_json(value, indent))


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text):
    value = int(text)
    if abs(value) >= _MAX_JSON_INT:
        raise ValueError(f"the integer {text[:20]}... is too large")
    return value


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def parse_json(data: bytes | str, where: str, what: str = "file"):
    """JSON from a user's file: strict (no NaN/Infinity), numbers in int64/float range, nesting
    bounded by json's own recursion check."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                          parse_float=_finite_float)
    except LSTMBenchError:
        raise
    except UnicodeDecodeError:
        raise LSTMBenchError(f"{where}: not a readable JSON {what} (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise LSTMBenchError(f"{where}: not a readable JSON {what} ({exc.msg} at line "
                             f"{exc.lineno})") from None
    except RecursionError:  # json's scanner bounds its own nesting
        raise LSTMBenchError(f"{where}: not a readable JSON {what} (nested too deeply)") from None
    except ValueError as exc:
        raise LSTMBenchError(f"{where}: not a readable JSON {what} ({first_line(exc)})") from None


def read_json(path: str | Path, what: str = "file"):
    """A user's JSON file, no larger than LSTM_BENCH_MAX_JSON_MB, parsed by ``parse_json``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise LSTMBenchError(f"{path}: a directory, not a {what}")
        allowed = limit_bytes("LSTM_BENCH_MAX_JSON_MB")
        if size > allowed:
            raise LSTMBenchError(f"{path}: {size_text(size)}, above the limit of "
                                 f"{size_text(allowed)} for a {what} (set "
                                 "LSTM_BENCH_MAX_JSON_MB to allow more)")
        data = path.read_bytes()
    except FileNotFoundError:
        raise LSTMBenchError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise LSTMBenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_json(data, str(path), what)


# --- writing --------------------------------------------------------------------------------

def file_mode() -> int:
    """The permissions a file created by ``open()`` gets now: 0o666 less the umask (read from
    /proc on Linux, where setting it to read it back would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path, *, make_folder: bool = False):
    """A temporary path beside ``path`` to write into; it becomes ``path`` only if the body
    finishes, and is removed otherwise (error, Ctrl-C, SIGTERM through the CLI).

    The temporary file is created exclusively under an unpredictable name (``mkstemp``), so a
    planted file or symlink is never written through; the final rename replaces a symlink at
    ``path`` itself, never its target. A ``path`` that is not a regular file to replace (a
    device, FIFO or socket, a link to one or to a stream of this process, a dangling link, an
    immutable file or a file in an append-only folder) is refused before anything is created
    (``target_problem``).
    """
    path = Path(path)
    problem = target_problem(path)  # a device, a FIFO, a link to a stream or to nowhere
    if problem:
        raise LSTMBenchError(f"cannot write {path}: {problem}")
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise LSTMBenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        raise LSTMBenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write a report, creating its folder; a half-written file never replaces a good one."""
    path = Path(path)
    with atomic_path(path, make_folder=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


@contextlib.contextmanager
def private_env_folder(name: str, prefix: str):
    """Within the block, the environment variable ``name`` (where a third-party library keeps
    its cache or config: ``MPLCONFIGDIR``, ``TORCHINDUCTOR_CACHE_DIR``) names a new private
    temporary folder, removed with whatever the library put there when the block ends; unless
    the user set it, whose choice stands. So the library writes neither into HOME nor an empty
    folder into the temporary folder that would outlive the command."""
    if os.environ.get(name):
        yield
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        os.environ[name] = folder
        try:
            yield
        finally:
            os.environ.pop(name, None)
