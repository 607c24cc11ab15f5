"""Reading users' files safely: arrays from .npz without unpickling, with one-line errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError


def load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz (``allow_pickle=False``); ``what`` names its content in errors."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise LSTMBenchError(f"{path}: no such file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise LSTMBenchError(f"{path}: not a readable .npz of {what} "
                             f"({str(exc).splitlines()[0]})") from None
