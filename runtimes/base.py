"""What a runtime is: a name, a device, a precision, an availability check and four verbs
(open, run, synchronize, close), plus the notes and settings it reports.

Runtimes never time themselves: the bench harness owns the clock and calls ``synchronize``
before reading it, so GPU work is finished when it is measured.

``BaseRuntime`` gives the defaults (CPU, no declared precision, always available, no notes,
nothing to synchronize or close) and a context manager that closes the runtime::

    with get_runtime("ort-cpu") as runtime:
        runtime.open(model, threads=1)
        outputs = runtime.run(feeds)
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lstm_bench.runtimes.features import EVERYTHING, LSTMSupport


class Runtime(Protocol):
    name: str  # the registry key, e.g. "ort-cpu"
    device: str  # "cpu" or "cuda"
    # The tolerance row it is judged by when it changes the model ("int8", "float16");
    # None: the dtype of its outputs.
    precision: str | None
    lstm_support: LSTMSupport  # what it does with each LSTM feature (runtimes.features)
    libraries: tuple[str, ...]  # the pip distributions it runs on, whose versions reports record

    def available(self) -> str | None:
        """None when this runtime can run on this machine, else the reason it cannot."""

    def open(self, model, *, threads: int | None = None) -> None:
        """Load ``model`` (a ``lstm_bench.model.Model`` or a path).

        ``threads`` is the intra-op thread count (None: the runtime's default). Options of
        one runtime alone (onnxruntime's session options) are given when it is made
        (``runtimes.registry.make_factories``), not here.
        """

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by graph output name, as NumPy arrays on the host."""

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""

    def close(self) -> None:
        """Release the session or module and restore any global setting ``open`` changed."""

    def notes(self) -> list[str]:
        """What a reader of the verdict should know (fallbacks, paths taken), one line each."""

    def settings(self) -> dict:
        """The settings it ran with (session options, quantization), for the reports."""


class BaseRuntime:
    """Defaults for the optional parts of ``Runtime`` and a context manager that closes."""

    name = "runtime"
    device = "cpu"
    precision: str | None = None
    lstm_support = EVERYTHING  # runtimes.features: which LSTM features it computes natively
    libraries: tuple[str, ...] = ()
    uses_ort_options = False  # made with onnxruntime's session options (``ort_options=``)

    def available(self) -> str | None:
        return None

    def synchronize(self) -> None:
        pass

    def close(self) -> None:
        pass

    def notes(self) -> list[str]:
        return []

    def settings(self) -> dict:
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

