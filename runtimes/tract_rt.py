"""tract (Sonos' inference engine for edge devices, ``pip install tract``) on the CPU, run as its
Python API is used: ``tract.onnx().load(path)``, the inputs' shapes and types set, then
``into_model().into_runnable()`` and ``run``.

Why it is here: people deploy LSTMs on it, and it is silently wrong on some of them. Measured
with tract 0.23.9 against the float64 truth and onnxruntime (T=20, B=3, I=4, H=8; the parity
cases in tests/cases.py, tests/test_tract.py): plain, bidirectional, peepholes, initial states
and ``layout = 1`` come out exact (1e-7), but it computes ``direction = reverse`` as forward
(max abs 0.18-0.51), and ignores ``clip`` (0.09), ``input_forget`` (0.09) and any non-default
activations (0.2-0.27, even a plain Relu), with no error or warning (its tracker:
sonos/tract#2751). It refuses ``sequence_lens`` fed as an input ("Non constant seq_len is not
supported"), and fails at run time ("Clashing resolution for expression") on a one-way LSTM
without initial states at a batch above 1 whose Y_h and Y_c are both outputs. verify is what
shows each of these.

Shapes: tract panics (the process aborts) translating an LSTM whose batch is a symbol, so the
model is made runnable per fed shape (compiled at the first call of each shape, as
``openvino-cpu-static`` does); ``native_code``: verify and bench run it in a child process.
tract also reads the graph's ``value_info`` and fails to unify the symbolic shapes a torch
export writes there with the fed ones ("Impossible to unify Sym(seq) with Val(100)"): it is
given a copy of the model without them (what its users do), and the notes say so.

Threads: tract's Python API has no thread setting, and its default executor is single-threaded
(measured: CPU time never above wall time, RAYON_NUM_THREADS changes nothing). It runs on one
thread; asked for more, ``open`` raises ``RuntimeSkip`` rather than time one thread under the
name of two.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, RuntimeSkip
from lstm_bench.model import as_model
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.features import LSTMSupport

# Measured with tract 0.23.9 (module doc): computed as if absent (reverse runs forward; alpha
# and beta go with the activations), or refused when fed at run time.
TRACT = LSTMSupport(
    ignores=frozenset({"reverse", "activations", "activation_alpha", "activation_beta", "clip",
                       "input_forget"}),
    refuses=frozenset({"sequence_lens"}))

THREADS_NOTE = ("one thread: tract's Python API has no thread setting and its default "
                "executor is single-threaded")

# numpy dtype name -> tract's name for it in an input fact ("16,2,3,f32")
_DATUM = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64", "int32": "i32",
          "int8": "i8", "uint8": "u8", "bool": "bool"}


class TractRuntime(BaseRuntime):
    name = "tract-cpu"
    precision = "float32"
    lstm_support = TRACT
    libraries = ("tract",)

    def __init__(self):
        # where tract's copy is written: a model built in memory, or one without value_info
        self.folder: Path | None = None
        self.path: str | None = None
        self.runnables: dict = {}  # input shapes and dtypes -> (runnable, input names)
        self.output_names: list[str] = []
        self.version: str | None = None
        self.dropped = 0  # value_info entries of the file left out of tract's copy

    def available(self) -> str | None:
        try:
            import tract  # noqa: F401
        except ImportError as exc:
            return f"tract is not installed ({exc}); pip install tract"
        return None

    def open(self, model, *, threads: int | None = None) -> None:
        import tract

        if threads and threads > 1:
            raise RuntimeSkip(f"{self.name}: runs on one thread only ({THREADS_NOTE}); not "
                              f"measured at {threads} threads")
        model = as_model(model)
        self.version = tract.version()
        source = model.source
        self.dropped = len(model.proto.graph.value_info)
        if self.dropped:
            source = _without_value_info(model.proto)
        if isinstance(source, bytes):  # tract's Python API loads files only
            self.folder = Path(tempfile.mkdtemp(prefix="lstm-bench-tract-"))
            (self.folder / "model.onnx").write_bytes(source)
            source = str(self.folder / "model.onnx")
        self.path, self.runnables = source, {}
        # tract names its outputs after the nodes that make them ("lstm", "lstm.y"): reported
        # under the model's own names, in the model's order, which tract keeps
        self.output_names = [o.name for o in model.proto.graph.output]
        self._load()  # a file tract cannot read fails here, in open

    def _load(self):
        import tract

        try:
            return tract.onnx().load(self.path)
        except tract.TractError as exc:
            raise LSTMBenchError(f"{self.name}: cannot load the model: {_cause(exc)}") from None

    def _runnable(self, feeds: dict[str, np.ndarray]):
        """(runnable, input names) for the shapes and dtypes of ``feeds``."""
        import tract

        key = tuple(sorted((name, a.shape, a.dtype.name) for name, a in feeds.items()))
        if key not in self.runnables:
            inference = self._load()
            names = [inference.input_name(i) for i in range(inference.input_count())]
            missing = [name for name in names if name not in feeds]
            if missing:
                raise LSTMBenchError(f"{self.name}: no feed for input(s) {', '.join(missing)}")
            try:
                for index, name in enumerate(names):
                    array = feeds[name]
                    inference.set_input_fact(index, ",".join(
                        [str(d) for d in array.shape] + [_DATUM.get(array.dtype.name, "f32")]))
                self.runnables[key] = (inference.into_model().into_runnable(), names)
            except tract.TractError as exc:
                raise LSTMBenchError(f"{self.name}: cannot prepare the model for these "
                                     f"shapes: {_cause(exc)}") from None
        return self.runnables[key]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tract

        runnable, names = self._runnable(feeds)
        try:
            results = runnable.run([np.ascontiguousarray(feeds[name]) for name in names])
        except tract.TractError as exc:
            raise LSTMBenchError(f"{self.name}: the run failed: {_cause(exc)}") from None
        return {name: result.to_numpy() for name, result in zip(self.output_names, results)}

    def notes(self) -> list[str]:
        if self.version is None:
            return []
        dropped = (f"; the graph's {self.dropped} value_info entries left out (tract cannot "
                   "unify their symbolic shapes with the fed ones)" if self.dropped else "")
        return [f"tract {self.version}, {THREADS_NOTE}; made runnable per fed shape{dropped}"]

    def settings(self) -> dict:
        # One key: the bench row is flat.
        return {"tract": {"version": self.version, "threads": 1, "why": THREADS_NOTE,
                          "shapes": "static (made runnable per fed shape)"}}

    def close(self) -> None:
        self.runnables, self.path = {}, None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _without_value_info(proto) -> bytes:
    """``proto`` serialized without its main graph's value_info (external data, loaded with
    the model, goes inline)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    del copy.graph.value_info[:]
    return copy.SerializeToString()


def _cause(exc: BaseException) -> str:
    """tract's error in one line: its first line says where ("Evaluating #6 "lstm" Scan"),
    the last of its causes why ("Non constant seq_len is not supported"); a stack trace
    (under RUST_BACKTRACE) is left out."""
    text = str(exc).split("Stack backtrace:", 1)[0]
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and line.strip() != "Caused by:"]
    if not lines:
        return type(exc).__name__
    cause = lines[-1].split(": ", 1)[-1] if lines[-1][:1].isdigit() else lines[-1]
    return (lines[0] if len(lines) == 1 else f"{lines[0]}: {cause}")[:300]
