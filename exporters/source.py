"""Export any source lstm-bench knows to ONNX and prove it: the engine of ``lstm-bench export``.

A source is a checkpoint from ``lstm-bench train`` (NAME.pt + NAME.json), a Keras 3 ``.keras``
archive, a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``), or an ``.npz``
of raw weights (``LSTMWeights.save_npz``). The exported file is run in
onnxruntime on a seeded random input whose batch size and sequence length differ from the
export's example, against the source's own output: torch's forward for a checkpoint, the float64
evaluation of the archive's weights for Keras, ``reference.lstm`` in float64 for raw weights.
Only a file that passes is moved to its final path; a failure leaves nothing there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_bench import interrupts, seed
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.keras import export_keras, keras_reference, read_keras
from lstm_bench.exporters.ort_quiet import session_options
from lstm_bench.exporters.torch_export import (EXPORTERS, METADATA_EXPORTER, export_torch,
                                               proj_size_refusal)
from lstm_bench.exporters.torch_program import export_program
from lstm_bench.exporters.weights import export_weights
from lstm_bench.files import atomic_path, private_env_folder
from lstm_bench.outputs import check_distinct
from lstm_bench.graph import summary
from lstm_bench.reference import lstm
from lstm_bench.spec import LSTMWeights
from lstm_bench.tolerances import TOLERANCES, Tolerance, compare_output

SOURCE_KINDS = {".pt": "checkpoint", ".json": "checkpoint", ".keras": "keras", ".npz": "npz",
                ".pt2": "program"}
# The proof's input: another batch size and sequence length than any export example here.
CHECK_BATCH, CHECK_STEPS, CHECK_SEED = 3, 37, 20240
EXAMPLE_BATCH = 2  # checkpoints export with (2, seq_len, 1): not 1, which torch.export specialises


class ExportParityError(Exception):
    """The exported file computes something else than its source (the CLI's exit code 1)."""

    def __init__(self, message: str, result: ExportResult):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class ExportResult:
    """A proven export: where it is, how far it is from its source, what the graph holds."""

    path: Path
    source: Path
    source_kind: str  # "checkpoint" | "keras" | "program" | "npz"
    exporter: str  # "dynamo" | "torchscript" | "keras" | "weights"
    reference: str  # what the file was compared with
    max_abs_error: float
    tolerance: Tolerance
    check_shape: tuple  # the proof's input shape
    within_tolerance: bool
    summary: dict = field(repr=False)  # lstm_bench.graph.summary
    file_size: int = 0
    notes: tuple[str, ...] = ()  # what the export could not keep, or had to assume

    @property
    def passed(self) -> bool:
        return self.within_tolerance and not np.isnan(self.max_abs_error)

    def __bool__(self) -> bool:
        return self.passed

    def describe(self) -> str:
        """The summary ``lstm-bench export`` prints."""
        s = self.summary
        lines = [f"{self.path}: {_size(self.file_size)}, opset {s['opset']}, "
                 f"exported from {self.source_kind} {self.source} by {self.exporter}"]
        for role, values in (("input", s["inputs"]), ("output", s["outputs"])):
            for v in values:
                dims = ", ".join(str(d) for d in v["shape"])
                dynamic = [str(d) for d in v["shape"] if isinstance(d, str)]
                lines.append(f"  {role:<6} {v['name']}: {v['dtype']}[{dims}]"
                             + (f"  dynamic: {', '.join(dynamic)}" if dynamic else ""))
        for node in s["lstm_nodes"]:
            attrs = {k: v for k, v in node.items() if k != "name"}
            text = " ".join(f"{k}={v}" for k, v in attrs.items())
            lines.append(f"  LSTM   {node['name']}: {text}")
        others = {k: v for k, v in s["op_counts"].items() if k != "LSTM"}
        if others:
            lines.append("  other ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(others.items())))
        lines.append(f"max abs error {self.max_abs_error:.3g} vs {self.reference} "
                     f"(onnxruntime CPU; tolerance {self.tolerance})")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _references(checks) -> str:
    """What the file was proven against, each input shape once with the references fed it:
    "A and B on input [4, 10, 1], and vs B on input [4, 37, 1]" (after "vs"); with several
    inputs "A on inputs src [3, 10, 6], tgt [3, 9, 6]"."""
    groups: dict[int, tuple[list[str], dict]] = {}
    for label, _, fed in checks:
        groups.setdefault(id(fed), ([], fed))[0].append(label)

    def shapes(fed) -> str:
        if len(fed) == 1:
            return f"input {list(np.shape(next(iter(fed.values()))))}"
        return "inputs " + ", ".join(f"{name} {list(np.shape(v))}" for name, v in fed.items())

    return ", and vs ".join(f"{' and '.join(labels)} on {shapes(fed)}"
                            for labels, fed in groups.values())


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MiB"


def source_kind(source: str | Path) -> str:
    """"checkpoint", "keras" or "npz" by suffix; LSTMBenchError for anything else."""
    path = Path(source)
    kind = SOURCE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise LSTMBenchError(f"{path}: unsupported source {path.suffix or '(no suffix)'!s}; "
                             "expected a checkpoint from `lstm-bench train` (.pt with its .json), "
                             "a Keras 3 archive (.keras), a torch.export program saved with "
                             "torch.export.save (.pt2) or raw LSTM weights (.npz)")
    return kind


# A user's own torch module goes through torch.export, not through a train checkpoint.
OWN_MODULE = ("for your own torch module, save it as a program: torch.export.save("
              "torch.export.export(model, (x,)), \"m.pt2\"), then `lstm-bench export m.pt2 -o "
              "m.onnx`")


def _check_checkpoint_pair(source: Path) -> Path:
    """A .pt (or .json) is a train checkpoint only with its other half beside it; a lone .pt
    is most often a user's own state_dict, which needs its module: say how to export that.
    Returns the other half."""
    pair = source.with_suffix(".json" if source.suffix.lower() == ".pt" else ".pt")
    if not pair.is_file():
        raise LSTMBenchError(f"{pair}: no such file: a .pt exports as an `lstm-bench train` "
                             f"checkpoint (NAME.pt plus NAME.json); {OWN_MODULE}")
    return pair


def _onnxruntime_outputs(path: Path, feeds: dict) -> list[np.ndarray]:
    import onnxruntime

    try:  # onnxruntime's own log lines off: a failure is reported below, once
        session = onnxruntime.InferenceSession(str(path), session_options(),
                                               providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    except Exception as exc:  # onnxruntime's own exception types
        raise LSTMBenchError(f"onnxruntime cannot run the exported model: "
                             f"{first_line(exc)}") from None


def _checkpoint(source):
    """``seed.load_checkpoint``, saying so when the checkpoint is an nn.LSTM(proj_size=k)'s."""
    import torch

    pt = Path(source).with_suffix(".pt")
    try:
        model, config = seed.load_checkpoint(source)
    except LSTMBenchError as exc:
        if "weight_hr_l" not in str(exc):
            raise
        # its keys were read, so the file is a bounded tensor-only state_dict: read it again
        state = torch.load(pt, map_location="cpu", weights_only=True)
        size = next(int(v.shape[0]) for k, v in state.items() if "weight_hr_l" in k)
        raise LSTMBenchError(f"{pt}: {proj_size_refusal(size)}") from None
    projection = config["architecture"].get("proj_size")
    if projection:
        raise LSTMBenchError(f"{pt}: {proj_size_refusal(projection)}")
    return model, config


def _export_checkpoint(source, tmp, opset, exporter):
    import torch

    model, config = _checkpoint(source)
    steps = int(config["architecture"].get("seq_len", seed.SEQ_LEN))
    generator = torch.Generator().manual_seed(CHECK_SEED)
    example = torch.randn(EXAMPLE_BATCH, steps, seed.INPUT_SIZE, generator=generator)
    proto = export_torch(model, example, tmp, opset=opset, exporter=exporter)
    used = next(p.value for p in proto.metadata_props if p.key == METADATA_EXPORTER)
    X = np.random.default_rng(CHECK_SEED).standard_normal(
        (CHECK_BATCH, CHECK_STEPS, seed.INPUT_SIZE)).astype(np.float32)
    with torch.no_grad():
        expected = [model(torch.from_numpy(X)).numpy()]
    return used, "torch's forward", {"input": X}, expected


def _keras_probe(parsed, rng, steps: int | None = None) -> np.ndarray:
    """The proof's input for a Keras model: ragged where it masks, padded on both sides;
    ``steps`` long (default: the model's saved length, else CHECK_STEPS)."""
    batch, steps = CHECK_BATCH + 1, steps or parsed.time_steps or CHECK_STEPS
    if parsed.tokens:
        vocab = parsed.layers[0].table.shape[0]
        dtype = np.dtype(parsed.token_dtype)  # as the model's input declares it
        high = min(vocab, int(np.iinfo(dtype).max) + 1)
        X = rng.integers(1 if parsed.masked else 0, high, (batch, steps)).astype(dtype)
    else:
        X = rng.standard_normal((batch, steps, parsed.input_size)).astype(np.float32)
    if parsed.masked:  # pad_sequences' default (in front), the other side, and none
        pad = np.asarray(parsed.mask_value, X.dtype)
        X[0, :steps // 3] = pad
        X[1, steps - steps // 4:] = pad
        X[2, :steps - 2] = pad
    return X


def _keras_predict(source, X):
    """``model.predict`` of the archive loaded by Keras in safe mode, or None without Keras."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    try:
        model = keras.saving.load_model(str(source), compile=False, safe_mode=True)
        return np.asarray(model.predict(X, verbose=0))
    except Exception as exc:  # Keras raises many types; its message says what it refused
        raise LSTMBenchError(f"{source}: Keras (safe mode) cannot load or run the model: "
                             f"{first_line(exc, with_type=True)[:300]}") from None


def _export_keras(source, tmp, opset):
    """(exporter, checks: (label, expected outputs, feeds) each, notes)."""
    # read_keras refuses anything but built-in layers before Keras ever sees the file
    parsed = read_keras(source)
    proto = export_keras(source, tmp, opset=opset)
    rng = np.random.default_rng(CHECK_SEED)
    name = proto.graph.input[0].name

    def walk(X):  # the float32 input itself (upcast): only the arithmetic differs
        return [np.asarray(keras_reference(parsed, X if parsed.tokens else X.astype(np.float64)))]

    X = _keras_probe(parsed, rng)
    feeds = {name: X}
    checks = [("the archive's weights in float64", walk(X), feeds)]
    predicted = _keras_predict(source, X)
    if predicted is not None:
        checks.insert(0, ("keras predict (safe mode)", [predicted], feeds))
    notes = []
    if parsed.time_steps and not parsed.fixed_length:
        # The model was saved for one length, the file takes any (it declares the axis
        # dynamic): prove another length too, against the walk alone (Keras' predict is held
        # to the saved length).
        steps = CHECK_STEPS if parsed.time_steps != CHECK_STEPS else CHECK_STEPS + 3
        other = _keras_probe(parsed, rng, steps)
        checks.append(("the archive's weights in float64", walk(other), {name: other}))
        notes.append(f"the model was saved for sequence length {parsed.time_steps} and the "
                     f"file takes any: proven at {list(X.shape)} against Keras and the float64 "
                     f"walk, and at {list(other.shape)} against the walk alone")
    return "keras", checks, notes


def _export_npz(source, tmp, opset):
    weights = LSTMWeights.load_npz(source)
    spec = weights.spec
    if spec.layout:
        raise LSTMBenchError(f"{source}: layout=1 cannot be proven here: onnxruntime's CPU LSTM "
                             "rejects it; save the weights with layout=0 (the model then takes "
                             "[seq, batch, features])")
    export_weights(weights, tmp, opset=22 if opset is None else opset)
    X = np.random.default_rng(CHECK_SEED).standard_normal(
        (CHECK_STEPS, CHECK_BATCH, spec.input_size)).astype(np.float32)
    # The file holds float32 weights: the reference gets exactly those, upcast.
    tensors = {k: v.astype(np.float32).astype(np.float64) for k, v in weights.tensors().items()}
    expected = list(lstm(X.astype(np.float64), tensors["W"], tensors["R"], tensors.get("B"),
                         None, None, None, tensors.get("P"), **spec.attributes()))
    return "weights", "lstm_bench.reference.lstm in float64", {"X": X}, expected


def _export_program(source, tmp, opset, trust_pickle):
    feeds, expected, notes = export_program(source, tmp, opset=opset, trust_pickle=trust_pickle)
    return "dynamo", "the torch.export program's output", feeds, expected, notes


def export_source(source: str | Path, out: str | Path, *, opset: int | None = None,
                  exporter: str = "auto", trust_pickle: bool = False) -> ExportResult:
    """Export ``source`` to ``out`` (.onnx) and prove it in onnxruntime; see the module doc.

    ``exporter`` ("auto", "dynamo", "torchscript") applies to checkpoints. Raises
    ``LSTMBenchError`` for bad input and ``ExportParityError`` (with ``.result``) when the file
    does not compute what its source computes; either way nothing is left at ``out``.
    """
    import onnx

    source, out = Path(source), Path(out)
    kind = source_kind(source)
    if not source.is_file():
        raise LSTMBenchError(f"{source}: no such file")
    companion = _check_checkpoint_pair(source) if kind == "checkpoint" else None
    if not os.access(source, os.R_OK):
        raise LSTMBenchError(f"{source}: not readable (permission denied)")
    if exporter not in EXPORTERS:
        raise LSTMBenchError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if trust_pickle and kind != "program":
        raise LSTMBenchError("--trust-pickle applies to torch.export programs (.pt2) only")
    if exporter != "auto" and kind != "checkpoint":
        raise LSTMBenchError(f"--exporter {exporter} applies to torch checkpoints only, not to "
                             f"{kind} sources")
    if out.suffix.lower() != ".onnx":
        raise LSTMBenchError(f"{out}: the output path must end in .onnx")
    check_distinct({"SOURCE": source, "SOURCE's other half": companion}, {"--output": out})

    notes = ()
    # Built and proven in a private folder: a source that turns out bad leaves no trace beside
    # OUT (not even a temporary file); only a proven file is copied there, atomically.
    # torch's compiler makes its cache folder (torchinductor_USER) in the temporary folder as
    # the exporter imports it, and leaves it there, empty: it goes to a private one instead
    with tempfile.TemporaryDirectory(prefix="lstm-bench-export-") as work, \
            private_env_folder("TORCHINDUCTOR_CACHE_DIR", "lstm-bench-torch-"):
        tmp = Path(work) / out.name
        if kind == "checkpoint":
            used, reference, feeds, expected = _export_checkpoint(source, tmp, opset, exporter)
        elif kind == "keras":
            used, checks, notes = _export_keras(source, tmp, opset)
        elif kind == "program":
            used, reference, feeds, expected, notes = _export_program(source, tmp, opset,
                                                                      trust_pickle)
        else:
            used, reference, feeds, expected = _export_npz(source, tmp, opset)
        if kind != "keras":
            checks = [(reference, expected, feeds)]
        feeds = checks[0][2]  # the shape the result's check_shape records
        reference = _references(checks)
        proto = onnx.load(str(tmp))
        outputs = {}  # onnxruntime's outputs per input fed (checks share them)
        tolerance = TOLERANCES["float32"]
        judged = []
        for label, expected, fed in checks:  # every reference judges the file on its own
            if id(fed) not in outputs:
                outputs[id(fed)] = _onnxruntime_outputs(tmp, fed)
            got = outputs[id(fed)]
            if len(got) != len(expected):
                raise LSTMBenchError(f"the exported model has {len(got)} outputs, {label} "
                                     f"{len(expected)}")
            for index, (have, want) in enumerate(zip(got, expected)):
                want = np.asarray(want, dtype=np.float64)
                if np.shape(have) != want.shape:
                    raise LSTMBenchError(f"the exported model's output has shape "
                                         f"{list(np.shape(have))}, {label} {list(want.shape)}")
                judged.append(compare_output("export", f"output {index} vs {label}", have, want,
                                             tolerance, "float32"))
        # max() would drop a NaN; keep it in the report
        errors = [j.max_abs for j in judged if j.max_abs is not None]
        max_abs = float(np.max(errors)) if errors else 0.0
        within = all(judged)
        result = ExportResult(
            path=out, source=source, source_kind=kind, exporter=used, reference=reference,
            max_abs_error=max_abs, tolerance=tolerance, within_tolerance=within,
            check_shape=tuple(next(iter(feeds.values())).shape), summary=summary(proto),
            file_size=tmp.stat().st_size, notes=tuple(notes))
        if not result.passed:
            raise ExportParityError(
                f"{out}: the exported model is {max_abs:.3g} (max abs error) from "
                f"{reference}, beyond the tolerance {tolerance}; nothing was written", result)
        # a signal whose exception a finalizer or a library swallowed: nothing placed
        interrupts.check()
        data = tmp.with_name(tmp.name + ".data")  # weights past 2 GB (torch_export.save_model)
        placed = []
        try:  # the model last; a failure removes the data file placed before it
            for made, target in ((data, out.with_name(data.name)), (tmp, out)):
                if made.exists():
                    with atomic_path(target, make_folder=True) as final:  # exclusively
                        shutil.copyfile(made, final)
                    placed.append(target)
        except BaseException:
            for target in placed:
                target.unlink(missing_ok=True)
            raise
    return result
