"""What a runtime is: three verbs (open, run, close), a name and an availability check.

Runtimes never time themselves: the bench harness owns the clock and calls ``synchronize``
before reading it, so GPU work is finished when it is measured.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Runtime(Protocol):
    name: str  # the registry key, e.g. "ort-cpu"
    device: str  # "cpu" or "cuda"

    def available(self) -> str | None:
        """None when this runtime can run on this machine, else the reason it cannot."""

    def open(self, model_path: str, *, threads: int | None = None) -> None:
        """Load the model; ``threads`` is the intra-op thread count (None: the default)."""

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by graph output name, as NumPy arrays on the host."""

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""

    def close(self) -> None:
        """Release the session or module."""
