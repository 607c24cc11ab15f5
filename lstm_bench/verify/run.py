"""Run one model on every runtime and judge each against the float64 truth: ``verify``.

Used by ``lstm-bench verify`` and ``lstm-bench run``; rendering lives in ``lstm_bench.cli.verify``,
this module only measures.

Which axis of an output is time (for the per-step error), in order:
1. an output that is an LSTM node's Y: axis 0 (layout 0) or 1 (layout 1);
2. an axis whose dim_param is the inputs' sequence dim_param (see ``lstm_bench.feeds``);
3. the one symbolic axis whose size equals seq_len (and not batch) in the evaluated output;
otherwise the output gets no per-step error (Y_h, a classifier's [batch, 1]).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lstm_bench import interrupts, reference
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.weights import build_lstm_model
from lstm_bench.feeds import Inputs, check_given, fit_batches, input_specs, load_inputs, \
    make_inputs
from lstm_bench.model import Model
from lstm_bench.runtimes.torch_source import TorchSourceRuntime, match_model
from lstm_bench.seed import load_checkpoint
from lstm_bench.tolerances import Failure
from lstm_bench.verify.parity import compare, runtime_precision
from lstm_bench.verify.report import VerifyReport
from lstm_bench.verify.sensitivity import Float32Floor
from lstm_bench.verify.streaming import streaming_parity
from lstm_bench.verify.verdict import ERROR, FAIL, PASS, SKIP, Verdict


def time_axes(model, truth: dict, batch: int, seq_len: int | None) -> dict[str, int]:
    from onnx import helper

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


@dataclass(frozen=True)
class Truth:
    """A model, the feeds it is judged on, its float64 outputs on them and their time axes."""

    model: Model
    inputs: Inputs
    outputs: dict
    axes: dict

    @classmethod
    def of(cls, model: Model, inputs: Inputs) -> Truth:
        outputs = reference.run_model(model.proto, inputs.feeds)
        return cls(model, inputs, outputs,
                   time_axes(model.proto, outputs, inputs.batch, inputs.seq_len))

    @functools.cached_property
    def floor(self) -> Float32Floor:
        """The widened limits of a model that amplifies float32 rounding (``sensitivity``)."""
        return Float32Floor(self.model, self.inputs.feeds, self.outputs, self.axes)


@dataclass(frozen=True)
class VerifyPlan:
    """What ``verify`` runs, built once by the command line."""

    runtimes: Mapping[str, Callable]  # name -> factory of a fresh, unopened runtime
    batch: int | None = None  # None: 1, or the batch the model fixes (another is refused)
    seq_len: int | None = None
    inputs: str | Path | None = None  # an .npz of feeds (checked) instead of random ones
    seed: int = 0
    value_range: tuple[float, float] = (-1.0, 1.0)
    ragged: bool = False  # random sequence_lens in 1..seq_len, one full
    zero_length: bool = False  # with ragged: one of them 0
    threads: int | None = None
    streaming: bool = True  # also chunked runs against one call, where the model has states
    source: str | Path | None = None  # the train checkpoint: its torch module as torch-source
    # where the model wraps its LSTM, also judge its first LSTM layer alone at this batch
    # (None: do not), as part of each runtime's verdict
    lstm_layer_batch: int | None = 8


def verify_runtime(runtime, truth: Truth, *, threads: int | None = None,
                   streaming: bool = True) -> Verdict:
    """One unopened runtime on ``truth.model``: skip with its reason, error with the message,
    or compare (and stream). A failing or erroring runtime's notes say which of the model's
    LSTM features it refuses, ignores or runs elsewhere (``runtime.lstm_support``)."""
    name, device, model = runtime.name, runtime.device, truth.model
    reason = runtime.available()
    if reason:
        return Verdict(name, SKIP, device=device, reason=reason)
    with runtime:
        try:
            runtime.open(model, threads=threads)
            outputs = runtime.run({k: v.copy() for k, v in truth.inputs.feeds.items()})
            runtime.synchronize()
        except Exception as exc:  # a runtime that cannot run this model is a failing runtime
            interrupts.check()  # unless it is a signal that torch turned into an error
            # lstm-bench's own message names the runtime, which the row names already
            ours = isinstance(exc, LSTMBenchError)
            message = first_line(exc, with_type=not ours).removeprefix(f"{name}: ")
            return Verdict(name, ERROR, device=device, reason=message,
                           notes=_with_explanation(runtime, model, runtime.notes()),
                           settings=runtime.settings(),
                           errors=(Failure(name, "*", "error", message, None),))
        precision = runtime_precision(runtime, outputs)
        result = compare(name, outputs, truth.outputs, precision, truth.axes, truth.floor)
        result = replace(result, device=device, settings=runtime.settings(),
                         notes=tuple(runtime.notes()),
                         streaming=streaming_parity(runtime, model, truth.inputs.feeds,
                                                    precision=precision)
                         if streaming else None).settled()
    if result.status == FAIL:
        result = replace(result, notes=_with_explanation(runtime, model, result.notes))
    return result


def _with_explanation(runtime, model, notes) -> tuple[str, ...]:
    return tuple(notes) + tuple(line for line in runtime.lstm_support.explain(model.proto)
                                if line not in notes)


@dataclass(frozen=True)
class LayerCheck:
    """The model's first LSTM node alone, its feeds and truth: the drift of its hidden states
    over time, which a model whose output is one value per sequence does not show."""

    label: str
    truth: Truth

    @property
    def detail(self) -> str:
        return f"Y, batch {self.truth.inputs.batch}, seq_len {self.truth.inputs.seq_len}"

    def describe(self) -> dict:
        return {"label": self.label, "detail": self.detail, **self.truth.inputs.describe(),
                "time_axes": self.truth.axes}

    def add_to(self, verdict: Verdict, runtime, threads: int | None) -> Verdict:
        """``verdict`` with this layer on ``runtime`` (unopened, the one ``verdict`` judged)
        part of it; no streaming: the model's own check has it."""
        layer = verify_runtime(runtime, self.truth, threads=threads, streaming=False)
        return verdict.with_lstm_layer(layer, self.label, self.detail)


def lstm_layer_check(model: Model, *, batch: int, seq_len: int | None, seed: int = 0,
                     value_range=(-1.0, 1.0)) -> LayerCheck | None:
    """The check of ``model``'s first LSTM layer alone, a model built in memory; None where
    the model is that layer already (one LSTM node returning Y) or has no LSTM node."""
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
    layer = Model.built(build_lstm_model(node.weights, outputs=("Y",)))
    inputs = make_inputs(layer.proto, batch=batch, seq_len=seq_len, seed=seed,
                         value_range=value_range)
    return LayerCheck(f"{node.name} alone", Truth.of(layer, inputs))


def verify(model: Model, plan: VerifyPlan) -> VerifyReport:
    """Run ``model`` on ``plan.runtimes`` (and ``plan.source``'s torch module) against the
    float64 truth.

    Raises:
        LSTMBenchError: bad input (bad batch, bad .npz, a source checkpoint that is unreadable
            or does not match the model).
    """
    if plan.source is not None:
        source = TorchSourceRuntime(plan.source)
        if source.available() is None:  # a bad checkpoint or a mismatch is bad input
            match_model(load_checkpoint(plan.source)[0], model.proto, plan.source)
    truth = Truth.of(model, feeds_for(model, plan))
    layer = None
    if plan.lstm_layer_batch:
        layer = lstm_layer_check(model, batch=plan.lstm_layer_batch,
                                 seq_len=truth.inputs.seq_len, seed=plan.seed,
                                 value_range=plan.value_range)
    results = []
    for make in plan.runtimes.values():
        result = verify_runtime(make(), truth, threads=plan.threads, streaming=plan.streaming)
        if layer is not None and result.status in (PASS, FAIL):
            result = layer.add_to(result, make(), plan.threads)
        results.append(result)
    if plan.source is not None:  # the whole module only: it has no LSTM layer to lift out
        results.append(verify_runtime(source, truth, threads=plan.threads,
                                      streaming=plan.streaming))
    return VerifyReport(model, truth.inputs.describe(), tuple(results), truth.axes,
                        None if layer is None else layer.describe())


def feeds_for(model: Model, plan: VerifyPlan) -> Inputs:
    """The plan's feeds: its .npz (checked against the model and the plan's shape), else
    seeded random ones."""
    if plan.inputs is not None:
        if plan.ragged:
            raise LSTMBenchError("--ragged and --inputs exclude each other: the .npz holds the lengths")
        chosen = load_inputs(plan.inputs, model.proto)
        check_given(chosen, batch=plan.batch, seq_len=plan.seq_len)  # the file's, not another
        return chosen
    if plan.batch is not None:  # refused with the model's name, as bench refuses a list
        fit_batches(model.proto, [plan.batch], None, where=model.path.name)
    return make_inputs(model.proto, batch=plan.batch, seq_len=plan.seq_len, seed=plan.seed,
                       value_range=plan.value_range, ragged=plan.ragged,
                       zero_length=plan.zero_length)
