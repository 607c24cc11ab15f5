"""Reading users' files safely: arrays from .npz without unpickling, with one-line errors."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError


def load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz (``allow_pickle=False``); ``what`` names its content in errors."""
    if Path(path).is_file() and not zipfile.is_zipfile(path):
        raise LSTMBenchError(f"{path}: not an .npz file (an .npz is a zip of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise LSTMBenchError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise LSTMBenchError(f"{path}: not a readable .npz of {what} "
                             f"({str(exc).splitlines()[0]})") from None


def write_text(path: str | Path, text: str) -> Path:
    """Write a report, creating its folder; a half-written file never replaces a good one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise LSTMBenchError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


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


def read_json(path: str | Path, what: str = "JSON file"):
    """A user's JSON file, with one-line errors (missing, unreadable, not JSON)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LSTMBenchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LSTMBenchError(f"{path}: a directory, not a {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LSTMBenchError(f"{path}: cannot read ({exc})") from None
    except ValueError as exc:
        raise LSTMBenchError(f"{path}: not JSON ({str(exc).splitlines()[0]})") from None


def check_writable(path: str | Path | None, option: str) -> None:
    """Fail before any work when a report path can never be written (checked up front so a
    long benchmark does not end in a write error)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise LSTMBenchError(f"{option} {path}: is a directory, expected a file path")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir():
        raise LSTMBenchError(f"{option} {path}: {parent} is not a directory")
