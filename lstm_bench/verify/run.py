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
from lstm_bench.errors import LSTMBenchError, RuntimeSkip, first_line
from lstm_bench.files import limit_seconds
from lstm_bench.feeds import Inputs, check_given, fit_batches, input_specs, load_inputs, \
    make_inputs
from lstm_bench.feeds.batch import fixed_batch
from lstm_bench.model import Model
from lstm_bench.runtimes.torch_source import TorchSourceRuntime, match_model
from lstm_bench.seed import load_checkpoint
from lstm_bench.tolerances import Failure
from lstm_bench.verify import baked, isolate
from lstm_bench.verify.layers import layers_alone
from lstm_bench.verify.memory import check_fits
from lstm_bench.verify.parity import compare, runtime_precision
from lstm_bench.verify.report import VerifyReport
from lstm_bench.verify.sensitivity import Float32Floor
from lstm_bench.verify.streaming import streaming_parity
from lstm_bench.verify.verdict import ERROR, FAIL, PASS, SKIP, Verdict


def time_axes(model, truth: dict, batch: int, seq_len: int | None,
              given=None) -> dict[str, int]:
    from onnx import helper

    axes = {}
    for node in model.graph.node:
        if node.op_type == "LSTM" and node.output and node.output[0] in truth:
            layout = next((helper.get_attribute_value(a) for a in node.attribute
                           if a.name == "layout"), 0)
            axes[node.output[0]] = 1 if layout else 0
    seq_params = {p for s in input_specs(model, given) for p, r in zip(s.dim_params, s.roles)
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
                   time_axes(model.proto, outputs, inputs.batch, inputs.seq_len,
                             model.given))

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
    # where the model wraps its LSTMs, also judge each LSTM layer alone at this batch (None:
    # do not), as part of each runtime's verdict (``verify.layers``)
    lstm_layer_batch: int | None = 8
    # also run the model at a second length and batch on onnxruntime CPU: outputs that do not
    # follow the inputs fail the file (``verify.baked``)
    second_shape: bool = True


def verify_runtime(runtime, truth: Truth, *, threads: int | None = None,
                   streaming: bool = True, phase=lambda what: None) -> Verdict:
    """One unopened runtime on ``truth.model``: skip with its reason, error with the message,
    or compare (and stream). A failing or erroring runtime's notes say which of the model's
    LSTM features it refuses, ignores or runs elsewhere (``runtime.lstm_support``).
    ``phase(what)`` is told each step before it starts (a crash is reported by the step)."""
    name, device, model = runtime.name, runtime.device, truth.model
    phase("loading its library")
    reason = runtime.available()
    if reason:
        return Verdict(name, SKIP, device=device, reason=reason)
    with runtime:
        try:
            phase("opening")
            runtime.open(model, threads=threads)
            phase("running")
            outputs = runtime.run({k: v.copy() for k, v in truth.inputs.feeds.items()})
            runtime.synchronize()
        except RuntimeSkip as exc:  # it cannot prepare this model (its quantizer refuses it)
            return Verdict(name, SKIP, device=device, settings=runtime.settings(),
                           reason=str(exc).removeprefix(f"{name}: "))
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
        phase("comparing")
        result = compare(name, outputs, truth.outputs, precision, truth.axes, truth.floor)
        if streaming:
            phase("streaming")
        result = replace(result, device=device, settings=runtime.settings(),
                         notes=tuple(runtime.notes()),
                         streaming=streaming_parity(runtime, model, truth.inputs.feeds,
                                                    precision=precision)
                         if streaming else None).settled()
    if result.status == FAIL:
        result = replace(result, notes=_with_explanation(runtime, model, result.notes))
    return result


def judge(make, truth: Truth, child: isolate.Child | None, *, threads: int | None = None,
          streaming: bool = True, label: str | None = None) -> Verdict:
    """``verify_runtime`` of a runtime ``make()`` makes: in ``child`` where given (the runtime
    loads native code, ``isolate``), where a crash, or a step beyond LSTM_BENCH_CALL_TIMEOUT_S,
    is the runtime's error (the child is started again for the next one). ``label``: what the
    truth is, when not the model itself (the LSTM layer alone), named in a crash's reason."""
    if child is None:
        return verify_runtime(make(), truth, threads=threads, streaming=streaming)
    try:
        return child.call(_judged_in_child, make, _shared(truth), threads, streaming, label,
                          limit=limit_seconds("LSTM_BENCH_CALL_TIMEOUT_S"))
    except isolate.Crashed as exc:
        return _crashed(make, truth, exc)


def _shared(truth: Truth) -> isolate.Shared:
    return isolate.Shared(f"truth {id(truth)}", truth)  # sent to the child once


def _crashed(make, truth: Truth, exc: isolate.Crashed) -> Verdict:
    runtime = make()
    return Verdict(runtime.name, ERROR, device=runtime.device, reason=exc.reason,
                   notes=_with_explanation(runtime, truth.model, ()),
                   errors=(Failure(runtime.name, "*", "error", exc.reason, None),))


def _ready(*, phase) -> None:
    """A child's first job: unpickling it imported this module; the model's proto needs onnx."""
    import onnx  # noqa: F401


def _judged_in_child(make, truth: Truth, threads, streaming, label, *, phase) -> Verdict:
    told = phase if label is None else (lambda what: phase(f"{what} {label}"))
    return verify_runtime(make(), truth, threads=threads, streaming=streaming, phase=told)


def _layers_judged_in_child(make, threads, labels, *truths, phase) -> list[Verdict]:
    return [_judged_in_child(make, truth, threads, False, label, phase=phase)
            for label, truth in zip(labels, truths)]


def _with_explanation(runtime, model, notes) -> tuple[str, ...]:
    return tuple(notes) + tuple(line for line in runtime.lstm_support.explain(model.proto)
                                if line not in notes)


@dataclass(frozen=True)
class LayerCheck:
    """One LSTM node of the model alone, its feeds and truth: the drift of its hidden states
    over time, which a model whose output is one value per sequence does not show."""

    label: str
    truth: Truth

    @property
    def detail(self) -> str:
        return f"Y, batch {self.truth.inputs.batch}, seq_len {self.truth.inputs.seq_len}"

    def describe(self) -> dict:
        return {"label": self.label, "detail": self.detail, **self.truth.inputs.describe(),
                "time_axes": self.truth.axes}


def add_layers(verdict: Verdict, make, checks, child: isolate.Child | None,
               threads: int | None) -> Verdict:
    """``verdict`` with each LSTM layer alone (``checks``) judged by the runtime ``make()``
    makes (the one that judged ``verdict``) part of it; no streaming: the model's own check
    has it. In ``child`` where given, all layers in one job (the runtime's library loaded
    once); a crash is the error of the layer it happened on, and the others are judged
    again one job each."""
    if child is None or len(checks) == 1:
        layers = [judge(make, c.truth, child, threads=threads, streaming=False, label=c.label)
                  for c in checks]
    else:
        try:
            layers = child.call(_layers_judged_in_child, make, threads,
                                tuple(c.label for c in checks),
                                *(_shared(c.truth) for c in checks),
                                limit=limit_seconds("LSTM_BENCH_CALL_TIMEOUT_S"))
        except isolate.Crashed as exc:
            layers = [_crashed(make, c.truth, exc) if exc.phase.endswith(f" {c.label}")
                      else judge(make, c.truth, child, threads=threads, streaming=False,
                                 label=c.label) for c in checks]
    for check, layer in zip(checks, layers):
        verdict = verdict.with_lstm_layer(layer, check.label, check.detail)
    return verdict


def lstm_layer_checks(model: Model, shapes: dict | None = None, *, batch: int,
                      seq_len: int | None, seed: int = 0,
                      value_range=(-1.0, 1.0)) -> tuple[LayerCheck, ...]:
    """The checks of every LSTM layer of ``model`` alone, each a model built in memory, at
    the steps it sees when the model is fed at ``shapes`` (None: at ``seq_len``); none where
    the model is one LSTM layer already (one LSTM node returning Y) or has no LSTM node
    (``verify.layers``)."""
    return tuple(LayerCheck(layer.label, Truth.of(layer.model, layer.inputs))
                 for layer in layers_alone(model, shapes, batch=batch, seq_len=seq_len,
                                           seed=seed, value_range=value_range))


def lstm_layer_check(model: Model, *, batch: int, seq_len: int | None, seed: int = 0,
                     value_range=(-1.0, 1.0)) -> LayerCheck | None:
    """The check of ``model``'s first LSTM layer alone (``lstm_layer_checks``), or None."""
    return next(iter(lstm_layer_checks(model, batch=batch, seq_len=seq_len, seed=seed,
                                       value_range=value_range)), None)


def verify(model: Model, plan: VerifyPlan) -> VerifyReport:
    """Run ``model`` on ``plan.runtimes`` (and ``plan.source``'s torch module) against the
    float64 truth.

    Raises:
        LSTMBenchError: bad input (bad batch, bad .npz, a source checkpoint that is unreadable
            or does not match the model).
    """
    makers, source = list(plan.runtimes.values()), None
    if plan.source is not None:
        source = functools.partial(TorchSourceRuntime, plan.source)
        if source().available() is None:  # a bad checkpoint or a mismatch is bad input
            match_model(load_checkpoint(plan.source)[0], model.proto, plan.source)
        makers.append(source)
    isolated = [make for make in makers if isolate.needs_child(make)]
    with isolate.session() as child:
        # where it is not running yet, it imports this module and onnx while this process
        # computes the truth; the runtimes' libraries load with their jobs, after the truth:
        # they write files of their own into $HOME, which bad input (a model the truth
        # refuses) must not leave behind
        if isolated:
            child.warm(_ready)
        inputs = feeds_for(model, plan)
        check_fits(model, inputs.feeds, plan.lstm_layer_batch)  # before any is evaluated
        truth = Truth.of(model, inputs)
        checks = ()
        if plan.lstm_layer_batch:
            checks = lstm_layer_checks(model, {n: a.shape for n, a in inputs.feeds.items()},
                                       batch=plan.lstm_layer_batch, seq_len=inputs.seq_len,
                                       seed=plan.seed, value_range=plan.value_range)
        second = baked.check(_shared(truth), child, seed=plan.seed) if plan.second_shape \
            else None
        results = []
        for make in makers:
            where = child if make in isolated else None
            result = judge(make, truth, where, threads=plan.threads, streaming=plan.streaming)
            # torch-source is the whole module only: it has no LSTM layer to lift out
            if checks and result.status in (PASS, FAIL) and make is not source:
                result = add_layers(result, make, checks, where, plan.threads)
            results.append(result)
    return VerifyReport(model, truth.inputs.describe(), tuple(results), truth.axes,
                        tuple(c.describe() for c in checks), second)


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
        fit_batches(model.proto, [plan.batch], None, where=model.path.name,
                    given=model.given)
    batch = ragged_batch(model) if plan.ragged and plan.batch is None else plan.batch
    return make_inputs(model.proto, batch=batch, seq_len=plan.seq_len, seed=plan.seed,
                       value_range=plan.value_range, ragged=plan.ragged,
                       zero_length=plan.zero_length, given=model.given)


RAGGED_BATCH = 2  # the smallest batch that can be ragged: one full sequence and one shorter


def ragged_batch(model: Model) -> int:
    """The batch ``--ragged`` feeds when none is asked: ``RAGGED_BATCH``, or the batch the
    model fixes; a model fixed at batch 1 cannot be fed ragged lengths (refused, saying why)."""
    fixed = fixed_batch(model.proto, given=model.given)
    if fixed is None:
        return RAGGED_BATCH
    if fixed[1] < RAGGED_BATCH:
        raise LSTMBenchError(f"--ragged needs a batch of at least {RAGGED_BATCH} (one full "
                             f"sequence and one shorter), and {fixed[0]}")
    return fixed[1]
