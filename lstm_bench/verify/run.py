"""Run one model on every runtime and judge each against the float64 truth: ``verify``.

Used by ``lstm-bench verify`` and later by ``lstm-bench run`` and the HTML report (which plots
``per_step_max_abs``). Rendering lives in ``runtimes.cli_verify``; this module only measures.

Which axis of an output is time (for the per-step error), in order:
1. an output that is an LSTM node's Y: axis 0 (layout 0) or 1 (layout 1);
2. an axis whose dim_param is the inputs' sequence dim_param (see ``runtimes.inputs``);
3. the one symbolic axis whose size equals seq_len (and not batch) in the evaluated output;
otherwise the output gets no per-step error (Y_h, a classifier's [batch, 1]).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.tolerances import TOLERANCES, Failure
from lstm_bench.model import Model
from lstm_bench.runtimes.base import first_line
from lstm_bench.feeds import Inputs
from lstm_bench.verify.parity import RuntimeParity, compare, runtime_precision
from lstm_bench.verify.sensitivity import Float32Floor


def time_axes(model, truth: dict, batch: int, seq_len: int | None) -> dict[str, int]:
    from onnx import helper

    from lstm_bench.feeds import input_specs

    axes = {}
    for node in model.graph.node:
        if node.op_type == "LSTM" and node.output and node.output[0] in truth:
            layout = next((helper.get_attribute_value(a) for a in node.attribute
                           if a.name == "layout"), 0)
            axes[node.output[0]] = 1 if layout else 0
    seq_params = {p for s in input_specs(model) for p, r in zip(s.dim_params, s.roles)
                  if r == "seq_len" and p}
    for value in model.graph.output:
        if value.name in axes or value.name not in truth:
            continue
        dims = value.type.tensor_type.shape.dim
        named = [a for a, d in enumerate(dims) if d.dim_param and d.dim_param in seq_params]
        if len(named) == 1:
            axes[value.name] = named[0]
            continue
        shape = np.shape(truth[value.name])
        if seq_len is None or seq_len == batch or len(dims) != len(shape):
            continue
        symbolic = [a for a, d in enumerate(dims)
                    if not (d.HasField("dim_value") and d.dim_value > 0) and shape[a] == seq_len]
        if len(symbolic) == 1:
            axes[value.name] = symbolic[0]
    return axes


# What a verify report's JSON is (its "schema" key): `bench --verify-json` refuses any other file.
SCHEMA = "lstm-bench/verify/1"


@dataclass
class VerifyReport:
    """Every runtime's parity with the truth, and what it was measured on."""

    model: str
    summary: dict
    inputs: dict
    results: list[RuntimeParity] = field(default_factory=list)
    time_axes: dict[str, int] = field(default_factory=dict)
    lstm_layer: dict | None = None  # what the LSTM-layer-alone check ran on (LayerCheck.describe)
    sha256: str | None = None  # the model file's: ties the report to the model it judged

    @property
    def failures(self) -> list[Failure]:
        return [f for r in self.results for f in r.failures]

    @property
    def skipped(self) -> dict[str, str]:
        return {r.runtime: r.reason for r in self.results if r.status == "skip"}

    def __bool__(self):
        return all(self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self else 1

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "model": self.model,
            "sha256": self.sha256,
            "passed": bool(self),
            "summary": self.summary,
            "inputs": self.inputs,
            "tolerances": {k: {"atol": v.atol, "rtol": v.rtol} for k, v in TOLERANCES.items()},
            "time_axes": self.time_axes,
            "lstm_layer": self.lstm_layer,
            "results": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
            "failures": [f.__dict__ for f in self.failures],
        }


def verify_runtime(name, model, feeds, truth, axes, *, threads=None, ort_options=None,
                   streaming=True, chunks=3, floor=None) -> RuntimeParity:
    """One runtime (a registry name or an unopened runtime) on ``model`` (a
    ``lstm_bench.model.Model`` or a path): skip with its reason, error with the message, or
    compare and stream. A failing or erroring runtime's notes say which of the model's LSTM
    features it refuses, ignores or runs elsewhere (``runtime.lstm_support``). ``floor``: the
    model's ``runtimes.sensitivity.Float32Floor`` on these feeds (None: the table alone)."""
    from lstm_bench.model import as_model
    from lstm_bench.runtimes.registry import get_runtime

    model = as_model(model)
    runtime = get_runtime(name) if isinstance(name, str) else name
    name, device = runtime.name, runtime.device
    reason = runtime.available()
    if reason:
        return RuntimeParity(name, "skip", device=device, reason=reason)
    with runtime:
        try:
            runtime.open(model, threads=threads, ort_options=ort_options)
            outputs = runtime.run({k: v.copy() for k, v in feeds.items()})
            runtime.synchronize()
        except Exception as exc:  # a runtime that cannot run this model is a failing runtime
            # lstm-bench's own message names the runtime, which the row names already
            message = (first_line(exc).removeprefix(f"{name}: ")
                       if isinstance(exc, LSTMBenchError)
                       else f"{type(exc).__name__}: {first_line(exc)}")
            notes = _with_explanation(runtime, model, runtime.notes())
            return RuntimeParity(name, "error", device=device, reason=message, notes=notes,
                                 settings=runtime.settings(),
                                 errors=[Failure(name, "*", "error", message, None)])
        precision = runtime_precision(runtime, outputs)
        result = compare(name, outputs, truth, precision, axes, floor)
        result.device = device
        result.settings = runtime.settings()
        result.notes = runtime.notes()
        if streaming:
            from lstm_bench.verify.streaming import streaming_parity

            result.streaming = streaming_parity(runtime, model, feeds, chunks=chunks,
                                                precision=precision, name=name)
            result.settle()
    if result.status == "fail":
        result.notes = _with_explanation(runtime, model, result.notes)
    return result


def _with_explanation(runtime, model, notes: list[str]) -> list[str]:
    return list(notes) + [line for line in runtime.lstm_support.explain(model.proto)
                          if line not in notes]


@dataclass(frozen=True)
class LayerCheck:
    """The model's first LSTM node alone, its feeds and truth: the drift of its hidden states
    over time, which a model whose output is one value per sequence does not show."""

    model: Model
    label: str
    inputs: Inputs
    truth: dict
    axes: dict

    @property
    def detail(self) -> str:
        return f"Y, batch {self.inputs.batch}, seq_len {self.inputs.seq_len}"

    def describe(self) -> dict:
        return {"label": self.label, "detail": self.detail, **self.inputs.describe()}

    @functools.cached_property
    def floor(self) -> Float32Floor:
        return Float32Floor(self.model, self.inputs.feeds, self.truth, self.axes)


def lstm_layer_check(model, folder, *, batch: int, seq_len: int | None, seed: int = 0,
                     value_range=(-1.0, 1.0)) -> LayerCheck | None:
    """The check of ``model``'s first LSTM layer alone, written to ``folder``; None where the
    model is that layer already (one LSTM node returning Y) or has no LSTM node."""
    from pathlib import Path

    from lstm_bench import reference
    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.model import as_model
    from lstm_bench.feeds import make_inputs

    try:
        nodes = model.lstm_nodes
    except LSTMBenchError:  # weights known only at run time: no layer to lift out
        return None
    if not nodes:
        return None
    node = nodes[0]
    graph = model.proto.graph
    if len(graph.node) == 1 and node.outputs[0] in {o.name for o in graph.output}:
        return None
    path = Path(folder) / "lstm-layer.onnx"
    export_weights(node.weights, path, outputs=("Y",))
    layer = as_model(path)
    inputs = make_inputs(layer.proto, batch=batch, seq_len=seq_len, seed=seed,
                         value_range=value_range)
    truth = reference.run_model(layer.proto, inputs.feeds)
    return LayerCheck(layer, f"{node.name} alone", inputs, truth,
                      time_axes(layer.proto, truth, inputs.batch, inputs.seq_len))


def verify(model_path, runtimes=None, *, batch: int | None = None, seq_len: int | None = None,
           inputs=None, seed: int = 0, ragged: bool = False, zero_length: bool = False,
           value_range: tuple[float, float] = (-1.0, 1.0), threads: int | None = None,
           ort_options=None, streaming: bool = True, chunks: int = 3, source=None,
           lstm_layer_batch: int | None = 8) -> VerifyReport:
    """Run ``model_path`` (a path or ``lstm_bench.model.Model``) on ``runtimes`` (default: all
    registered) against the float64 truth.

    Args:
        inputs: a path to an .npz of feeds (checked against the model), or None for seeded
            random feeds of ``batch`` (None: 1, or the batch the model fixes; another is
            refused) x ``seq_len`` (``ragged``: random sequence_lens in
            1..seq_len with one full; ``zero_length``: one of them 0).
        ort_options: ``runtimes.ort_options.OrtOptions`` for the onnxruntime-based runtimes.
        streaming: also check chunked runs against one call where the model exposes states.
        source: a train checkpoint the model was exported from: adds a "torch-source" row
            (``runtimes.torch_source``), its torch module judged like the other runtimes.
        lstm_layer_batch: where the model wraps its LSTM (an exported classifier), also judge
            its first LSTM layer alone on random feeds of this batch at the same seq_len, as
            part of each runtime's verdict (None: do not).
    Raises:
        LSTMBenchError: bad input (missing model, unknown runtime, bad batch, bad .npz, a
            source checkpoint that is unreadable or does not match the model).
    """
    import shutil
    import tempfile

    from lstm_bench import reference
    from lstm_bench.model import as_model
    from lstm_bench.feeds import check_given, fit_batches, load_inputs, make_inputs
    from lstm_bench.runtimes.registry import RUNTIMES

    names = list(RUNTIMES) if runtimes is None else list(runtimes)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        raise LSTMBenchError(f"unknown runtime(s) {unknown or names}; known: {', '.join(RUNTIMES)}")
    model = as_model(model_path)
    extra = []  # runtimes outside the registry
    if source is not None:
        from lstm_bench.runtimes.torch_source import TorchSourceRuntime, match_model

        runtime = TorchSourceRuntime(source)
        if runtime.available() is None:  # a bad checkpoint or a mismatch is bad input
            from lstm_bench.seed import load_checkpoint

            match_model(load_checkpoint(source)[0], model.proto, source)
        extra.append(runtime)
    if inputs is not None:
        if ragged:
            raise LSTMBenchError("--ragged and --inputs exclude each other: the .npz holds the lengths")
        chosen = load_inputs(inputs, model.proto)
        check_given(chosen, batch=batch, seq_len=seq_len)  # the file's shape, not another
    else:
        if batch is not None:  # refused with the model's name, as bench refuses a list
            fit_batches(model.proto, [batch], None, where=model.path.name)
        chosen = make_inputs(model.proto, batch=batch, seq_len=seq_len, seed=seed,
                             value_range=value_range, ragged=ragged, zero_length=zero_length)
    truth = reference.run_model(model.proto, chosen.feeds)
    axes = time_axes(model.proto, truth, chosen.batch, chosen.seq_len)
    floor = Float32Floor(model, chosen.feeds, truth, axes)
    report = VerifyReport(str(model.path), model.summary, chosen.describe(), time_axes=axes,
                          sha256=model.sha256)
    folder = tempfile.mkdtemp(prefix="lstm-bench-")
    try:
        layer = None
        if lstm_layer_batch:
            layer = lstm_layer_check(model, folder, batch=lstm_layer_batch,
                                     seq_len=chosen.seq_len, seed=seed, value_range=value_range)
            if layer is not None:
                report.lstm_layer = layer.describe()
                report.time_axes.update({f"{layer.label}: {name}": axis
                                         for name, axis in layer.axes.items()})
        for name in names + extra:
            result = verify_runtime(name, model, chosen.feeds, truth, axes, threads=threads,
                                    ort_options=ort_options, streaming=streaming, chunks=chunks,
                                    floor=floor)
            if layer is not None and result.status in ("pass", "fail") and name in RUNTIMES:
                result.add_lstm_layer(verify_runtime(
                    name, layer.model, layer.inputs.feeds, layer.truth, layer.axes,
                    threads=threads, ort_options=ort_options, streaming=False,
                    floor=layer.floor), layer.label, layer.detail)
            report.results.append(result)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def write_json(report: VerifyReport, path) -> None:
    """The report as strict JSON (NaN and inf as null: ``lstm_bench.files``' one rule)."""
    from lstm_bench.files import write_json as write

    write(path, report.to_dict(), indent=2)
