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

import numpy as np

from lstm_bench.runtimes.features import EVERYTHING, LSTMSupport


class BaseRuntime:
    """A runtime, with the defaults of its optional parts and a context manager that closes.

    A subclass names itself and implements ``open`` and ``run``."""

    name = "runtime"  # the registry key, e.g. "ort-cpu"
    device = "cpu"  # or "cuda"
    # The tolerance row it is judged by when it changes the model ("int8", "float16");
    # None: the dtype of its outputs.
    precision: str | None = None
    lstm_support: LSTMSupport = EVERYTHING  # what it does with each LSTM feature
    libraries: tuple[str, ...] = ()  # the pip distributions it runs on: reports record them
    uses_ort_options = False  # made with onnxruntime's session options (``ort_options=``)
    # runs native code of its own, whose crash (a signal) would end the process: verify and
    # bench run it in a child process (``lstm_bench.verify.isolate``)
    native_code = True

    def available(self) -> str | None:
        """None when this runtime can run on this machine, else the reason it cannot."""
        return None

    def open(self, model, *, threads: int | None = None) -> None:
        """Load ``model`` (a ``lstm_bench.model.Model`` or a path). ``threads``: the intra-op
        thread count (None: the runtime's default). Options of one runtime alone
        (onnxruntime's session options) are given when it is made
        (``runtimes.registry.make_factories``), not here."""
        raise NotImplementedError

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by graph output name, as NumPy arrays on the host."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""

    def close(self) -> None:
        """Release the session or module and restore any global setting ``open`` changed."""

    def notes(self) -> list[str]:
        """What a reader of the verdict should know (fallbacks, paths taken), one line each."""
        return []

    def settings(self) -> dict:
        """The settings it ran with (session options, quantization), for the reports."""
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
