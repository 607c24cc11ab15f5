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

from dataclasses import dataclass, field

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.parity import TOLERANCES, Failure
from lstm_bench.runtimes.parity import RuntimeParity, compare, runtime_precision


def time_axes(model, truth: dict, batch: int, seq_len: int | None) -> dict[str, int]:
    from onnx import helper

    from lstm_bench.runtimes.inputs import input_specs

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


@dataclass
class VerifyReport:
    """Every runtime's parity with the truth, and what it was measured on."""

    model: str
    summary: dict
    inputs: dict
    results: list[RuntimeParity] = field(default_factory=list)
    time_axes: dict[str, int] = field(default_factory=dict)

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
            "model": self.model,
            "passed": bool(self),
            "summary": self.summary,
            "inputs": self.inputs,
            "tolerances": {k: {"atol": v.atol, "rtol": v.rtol} for k, v in TOLERANCES.items()},
            "time_axes": self.time_axes,
            "results": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
            "failures": [f.__dict__ for f in self.failures],
        }


def verify_runtime(name, model_path, model, feeds, truth, axes, *, threads=None,
                   streaming=True, chunks=3) -> RuntimeParity:
    """One runtime (a registry name or an unopened runtime): skip with its reason, error with
    the message, or compare and stream."""
    from lstm_bench.runtimes.registry import get_runtime

    runtime = get_runtime(name) if isinstance(name, str) else name
    name = runtime.name
    device = getattr(runtime, "device", "cpu")
    reason = runtime.available()
    if reason:
        return RuntimeParity(name, "skip", device=device, reason=reason)
    try:
        runtime.open(str(model_path), threads=threads)
        outputs = runtime.run({k: v.copy() for k, v in feeds.items()})
        runtime.synchronize()
    except Exception as exc:  # a runtime that cannot run this model is a failing runtime
        notes = list(runtime.notes()) if hasattr(runtime, "notes") else []
        runtime.close()
        message = first_line(exc, with_type=True)
        return RuntimeParity(name, "error", device=device, reason=message, notes=notes,
                             errors=[Failure(name, "*", "error", message, None)])
    try:
        precision = runtime_precision(runtime, outputs)
        result = compare(name, outputs, truth, precision, axes)
        result.device = device
        result.notes = list(runtime.notes()) if hasattr(runtime, "notes") else []
        if streaming:
            from lstm_bench.runtimes.streaming import streaming_parity

            result.streaming = streaming_parity(runtime, model, feeds, chunks=chunks,
                                                precision=precision, name=name)
            result.settle()
    finally:
        runtime.close()
    return result


def verify(model_path, runtimes=None, *, batch: int = 1, seq_len: int | None = None,
           inputs=None, seed: int = 0, ragged: bool = False, zero_length: bool = False,
           value_range: tuple[float, float] = (-1.0, 1.0), threads: int | None = None,
           streaming: bool = True, chunks: int = 3, source=None) -> VerifyReport:
    """Run ``model_path`` on ``runtimes`` (default: all registered) against the float64 truth.

    Args:
        inputs: a path to an .npz of feeds (checked against the model), or None for seeded
            random feeds of ``batch`` x ``seq_len`` (``ragged``: random sequence_lens in
            1..seq_len with one full; ``zero_length``: one of them 0).
        streaming: also check chunked runs against one call where the model exposes states.
        source: a train checkpoint the model was exported from: adds a "torch-source" row
            (``runtimes.torch_source``), its torch module judged like the other runtimes.
    Raises:
        LSTMBenchError: bad input (missing model, unknown runtime, bad batch, bad .npz, a
            source checkpoint that is unreadable or does not match the model).
    """
    from lstm_bench import reference
    from lstm_bench.graph import summary
    from lstm_bench.reference.model import load_model
    from lstm_bench.runtimes.inputs import load_inputs, make_inputs
    from lstm_bench.runtimes.registry import RUNTIMES

    names = list(RUNTIMES) if runtimes is None else list(runtimes)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        raise LSTMBenchError(f"unknown runtime(s) {unknown or names}; known: {', '.join(RUNTIMES)}")
    model = load_model(model_path)
    extra = []  # runtimes outside the registry
    if source is not None:
        from lstm_bench.runtimes.torch_source import TorchSourceRuntime, match_model

        runtime = TorchSourceRuntime(source)
        if runtime.available() is None:  # a bad checkpoint or a mismatch is bad input
            from lstm_bench.seed import load_checkpoint

            match_model(load_checkpoint(source)[0], model, source)
        extra.append(runtime)
    if inputs is not None:
        if ragged:
            raise LSTMBenchError("--ragged and --inputs exclude each other: the .npz holds the lengths")
        chosen = load_inputs(inputs, model)
    else:
        chosen = make_inputs(model, batch=batch, seq_len=seq_len, seed=seed,
                             value_range=value_range, ragged=ragged, zero_length=zero_length)
    truth = reference.run_model(model, chosen.feeds)
    axes = time_axes(model, truth, chosen.batch, chosen.seq_len)
    report = VerifyReport(str(model_path), summary(model), chosen.describe(), time_axes=axes)
    for name in names + extra:
        report.results.append(verify_runtime(name, model_path, model, chosen.feeds, truth, axes,
                                             threads=threads, streaming=streaming, chunks=chunks))
    return report


def write_json(report: VerifyReport, path) -> None:
    from lstm_bench import files

    files.write_json(path, report.to_dict(), indent=2)
