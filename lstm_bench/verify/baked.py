"""Exports that baked their example's shape: the model run at a second length and batch.

An exporter traces the model on an example, and a Python int taken from ``x.shape`` (a
reshape to ``(T, B, -1)``, a slice up to the example's length) becomes a constant: the file
declares dynamic inputs, but an output keeps the example's length, or the model fails at any
other one. Every runtime runs the same graph, so they all agree with the float64 truth and
parity cannot see it. So the model is run once more, on onnxruntime CPU in the runtimes' child
process (``isolate``: it loads native code), with the LSTM's steps + 3 and the batch + 1
where the inputs leave those axes dynamic, and each output's shape at both runs is held
against the inputs and against the file's declaration. A finding, a failure of the file and
not of a runtime (verify exits 1), is:

- an output axis the file declares fixed that is another size at either run (also where
  every input is fixed: the declaration is what serving code reads);
- an output axis named like a dynamic input axis (one dim_param) that is another size;
- on an output that declares its shape, an axis it declares dynamic that stays put while
  what it followed at the first run moves: the LSTM's steps, the batch or an input's length
  it equalled, or the time axis of a ``[time, batch, ...]`` or ``[batch, time, ...]`` output
  (beside the axis that follows the batch);
- a model that runs at the first shape and fails at the second.

Where onnxruntime cannot run the model at all, shape inference (``model_limits.values_at``)
tells the second shapes it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.feeds import Inputs, input_specs, make_inputs
from lstm_bench.feeds.batch import fixed_batch
from lstm_bench.feeds.probe import lstm_nodes_anywhere
from lstm_bench.files import limit_seconds
from lstm_bench.model import Model
from lstm_bench.runtimes.ort_cpu import OrtRuntime
from lstm_bench.verify import isolate

MORE_STEPS = (3, 1, 2)  # the second length: the LSTM's steps + 3 (+ 1 or 2 where a front
# end's stride cannot give + 3)
RE_EXPORT = "re-export with dynamic axes"


@dataclass(frozen=True)
class Finding:
    """One way the file's outputs do not follow its inputs."""

    output: str | None  # None: the model as a whole (it fails at the second shape)
    axis: int | None
    message: str

    def to_dict(self) -> dict:
        return {"output": self.output, "axis": self.axis, "message": self.message}


@dataclass(frozen=True)
class Move:
    """What changed between the two runs: the LSTM's steps, the batch, an input's axis."""

    what: str  # "the LSTM's steps", "the batch", "input 'audio' axis 1"
    before: int
    after: int
    kind: str  # "length" or "batch": what the export baked where an output stays put


@dataclass(frozen=True)
class SecondShape:
    """The check's result: both runs' input and output shapes, and its findings."""

    first: dict  # input name -> shape at the first run (the runtimes' feeds)
    second: dict  # at the second run; empty where no input axis is dynamic
    moves: tuple[Move, ...]
    outputs: dict  # output name -> (shape at the first run, at the second or None)
    checked_by: str | None  # "onnxruntime CPU", "shape inference", None: not run
    findings: tuple[Finding, ...] = ()
    note: str | None = None  # what could not be checked, and why

    def __bool__(self):
        return not self.findings

    def moved_text(self) -> str:
        return moved_text(self.moves)

    def to_dict(self) -> dict:
        return {"passed": bool(self), "checked_by": self.checked_by,
                "moved": {m.what: [m.before, m.after] for m in self.moves},
                "inputs": {name: [list(self.first[name]), list(self.second.get(name, ()))
                                  or None] for name in self.first},
                "outputs": {name: [list(a), None if b is None else list(b)]
                            for name, (a, b) in self.outputs.items()},
                "findings": [f.to_dict() for f in self.findings], "note": self.note}


def moved_text(moves) -> str:
    """"the LSTM's steps 100 -> 103, the batch 1 -> 2": what the second run changed (the
    inputs' lengths that give them said where they are shown)."""
    return ", ".join(f"{m.what} {m.before} -> {m.after}" for m in moves
                     if not m.what.startswith("input"))


def _declared(model) -> dict[str, list | None]:
    """Output name -> its declared dims, (size or None, dim_param) per axis; None where the
    file declares no shape."""
    found = {}
    for value in model.graph.output:
        tensor = value.type.tensor_type
        found[value.name] = None if not tensor.HasField("shape") else [
            (d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None, d.dim_param)
            for d in tensor.shape.dim]
    return found


def _input_params(model, first: dict, second: dict) -> dict[str, list]:
    """dim_param -> (input, axis, size at the first run, at the second) of each input axis
    that the file names."""
    found: dict[str, list] = {}
    for value in model.graph.input:
        if value.name not in first:
            continue
        for axis, d in enumerate(value.type.tensor_type.shape.dim):
            if d.dim_param and axis < len(first[value.name]):
                after = second.get(value.name, first[value.name])
                found.setdefault(d.dim_param, []).append(
                    (value.name, axis, first[value.name][axis], after[axis]))
    return found


def _shapes_text(shapes: dict) -> str:
    return ", ".join(f"{name!r} {list(shape)}" for name, shape in shapes.items())


def _declared_findings(name, declared, shapes, when) -> list[Finding]:
    """An output's size against the file's declaration at one run (``when``: its words)."""
    if declared is None or not declared:
        return []
    if len(declared) != len(shapes):
        return [Finding(name, None, f"output {name!r} has rank {len(shapes)} {when}, but the "
                                    f"file declares rank {len(declared)}: its declared shape "
                                    f"is wrong; {RE_EXPORT}")]
    # the graph computes the size, only the declaration is wrong (torch's dynamo exporter
    # writes one for a batch-first LSTM's outputs even when every input axis is dynamic): so
    # besides a new export, the declaration alone can be mended
    return [Finding(name, axis, f"output {name!r} axis {axis} is {size} {when}, but the file "
                                f"declares it fixed at {dim}: the export wrote its example's "
                                f"shape into the declaration; {RE_EXPORT}, or make that dim "
                                "symbolic (onnx.tools.update_model_dims)")
            for axis, ((dim, _), size) in enumerate(zip(declared, shapes))
            if dim is not None and size != dim][:1]


def _named_findings(name, declared, runs, params) -> list[Finding]:
    """An output axis that shares a dim_param with an input axis and is another size."""
    for axis, (_, param) in enumerate(declared or ()):
        for source, source_axis, *sizes in params.get(param, ()):
            for (shape, when), size in zip(runs, sizes):
                if shape is not None and axis < len(shape) and shape[axis] != size:
                    return [Finding(name, axis, (
                        f"output {name!r} axis {axis} is {shape[axis]} {when}, where input "
                        f"{source!r} axis {source_axis} is {size}, though the file names both "
                        f"{param!r} (one size): the export baked its example's shape, or "
                        f"declared the output wrong; {RE_EXPORT}"))]
    return []


def _stays(name, axis, size, move) -> Finding:
    goes = "go" if move.what.endswith("steps") else "goes"
    return Finding(name, axis, f"output {name!r} axis {axis} stays {size} when {move.what} "
                               f"{goes} {move.before} -> {move.after}: the export baked its "
                               f"example's {move.kind}; {RE_EXPORT}")


# onnxruntime's error: "... running Reshape node. Name:'/Reshape' Status Message:
# /onnxruntime_src/...reshape_helper.h:84 onnxruntime::ReshapeHelper::...(...) size != 0 ...
# was false. The input tensor cannot be reshaped ...": the node and the last sentences
_ORT_NODE = re.compile(r"running (\S+) node\. Name:'([^']*)' Status Message: (?:\S+:\d+ .*? "
                       r"was false\. )?(.*)")


def _ort_text(message: str) -> str:
    found = _ORT_NODE.search(message)
    return f"{found[1]} node {found[2]!r}: {found[3]}" if found else message


def _stay_findings(name, declared, first, second, moves, states: int) -> list[Finding]:
    """Output axes that stay put while what they followed at the first run moves. ``states``:
    the most LSTM states a packed state axis holds (every node's directions), so that a
    ``[D, batch, H]`` state beside the batch is not taken for a baked time axis."""
    if second is None or len(first) != len(second) or declared is None:
        return []  # no declared shape: a size equal to a length by chance cannot be told
    fixed = {axis for axis, (dim, _) in enumerate(declared) if dim is not None}
    # the last axis of [.., time, features] is the features: equal to a length by chance
    last = len(first) - 1 if len(first) >= 3 else None
    found = {}
    for axis, (before, after) in enumerate(zip(first, second)):
        followed = [m for m in moves if m.before == before and m.before > 1]
        if axis not in fixed and axis != last and before == after and followed:
            found[axis] = _stays(name, axis, before, followed[0])
    batch = next((m for m in moves if m.kind == "batch"), None)
    steps = next((m for m in moves if m.what == "the LSTM's steps"), None)
    with_batch = [axis for axis, (a, b) in enumerate(zip(first, second))
                  if batch is not None and (a, b) == (batch.before, batch.after)]
    if steps is not None and len(with_batch) == 1 and len(first) >= 3 and with_batch[0] < 2:
        time = 1 - with_batch[0]  # [batch, time, ...] or [time, batch, ...]
        if (time not in fixed and first[time] == second[time] and first[time] > states
                and time not in found):
            found[time] = _stays(name, time, first[time], steps)
    return [found[axis] for axis in sorted(found)]


def findings_of(model, first_in: dict, second_in: dict, first_out: dict, second_out: dict,
                moves) -> list[Finding]:
    """Every finding on ``model``'s outputs (name -> shape at each run; an output missing from
    ``second_out`` is not checked at the second run)."""
    declared = _declared(model)
    params = _input_params(model, first_in, second_in)
    states = sum(2 if any(a.name == "direction" and a.s == b"bidirectional" for a in n.attribute)
                 else 1 for n in lstm_nodes_anywhere(model))
    at_first = f"with {_shapes_text(first_in)}"
    at_second = f"with {_shapes_text(second_in)}"
    found = []
    for name, first in first_out.items():
        second = second_out.get(name)
        mine = _declared_findings(name, declared.get(name), first, at_first)
        if second is not None and not mine:
            mine = _declared_findings(name, declared.get(name), second, at_second)
        if not mine:
            mine = _named_findings(name, declared.get(name),
                                   [(first, at_first), (second, at_second)], params)
        found += mine or _stay_findings(name, declared.get(name), first, second, moves, states)
    return found


def second_inputs(model: Model, inputs: Inputs, *,
                  seed: int = 0) -> tuple[Inputs | None, str | None]:
    """(the feeds of the second run, None) or (None, why there is none): the LSTM's steps
    + 3 and the batch + 1 where the inputs leave those axes dynamic."""
    specs = input_specs(model.proto, model.given)
    more_steps = inputs.seq_len is not None and any("seq_len" in s.roles for s in specs)
    more_batch = fixed_batch(model.proto, specs) is None
    if not (more_steps or more_batch):
        return None, None
    reason = None
    for more in MORE_STEPS if more_steps else (0,):
        try:
            return make_inputs(model.proto, batch=inputs.batch + more_batch,
                               seq_len=None if inputs.seq_len is None else inputs.seq_len + more,
                               seed=seed, given=model.given), None
        except LSTMBenchError as exc:  # no input length gives that many steps
            reason = str(exc)
    return None, f"no second shape can be fed: {reason}"


def _moves(inputs: Inputs, second: Inputs) -> tuple[Move, ...]:
    moves = []
    if second.seq_len != inputs.seq_len:
        moves.append(Move("the LSTM's steps", inputs.seq_len, second.seq_len, "length"))
    if second.batch != inputs.batch:
        moves.append(Move("the batch", inputs.batch, second.batch, "batch"))
    for name, array in inputs.feeds.items():
        after = second.feeds[name].shape
        moves += [Move(f"input {name!r} axis {axis}", a, b, "length")
                  for axis, (a, b) in enumerate(zip(array.shape, after)) if a != b]
    return tuple(moves)


def _output_shapes(make, truth, second: dict, first: dict, *, phase):
    """In the child: (output name -> shape at the ``second`` feeds, None), or (None, the
    error) where it fails there, with whether it runs the ``first`` ones; the model is
    ``truth.model`` (the truth the runtimes are judged on, sent to the child once)."""
    model = truth.model
    runtime = make()
    reason = runtime.available()
    if reason:
        return None, (reason, False)
    with runtime:
        phase("opening the model for a second shape")
        try:
            runtime.open(model)
        except Exception as exc:  # it cannot run the model at all: not the shape's doing
            return None, (first_line(exc), False)
        phase("running the model at a second shape")
        try:
            outputs = runtime.run(second)
        except Exception as exc:
            message = first_line(exc)
            phase("running the model at its first shape")
            try:
                runtime.run(first)
            except Exception:
                return None, (message, False)
            return None, (message, True)
    return {name: tuple(value.shape) for name, value in outputs.items()}, None


def _inferred(model: Model, shapes: dict) -> dict:
    """Output name -> shape that shape inference tells at these input shapes (the file's own
    declarations of its outputs left out: they are what is checked)."""
    import onnx

    from lstm_bench.model_limits import values_at

    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model.skeleton)
    for value in skeleton.graph.output:
        value.type.tensor_type.ClearField("shape")
    outputs = {value.name for value in skeleton.graph.output}
    return {name: tuple(dims) for name, dims, _ in values_at(skeleton, shapes) if name in outputs}


def check(truth: isolate.Shared, child: isolate.Child, *, seed: int = 0) -> SecondShape:
    """The check of ``truth.value.model`` fed ``truth.value.inputs`` (its float64 ``outputs``
    on them, by name; ``verify.run.Truth``, shared with the runtimes' jobs): the second run
    on onnxruntime CPU in ``child``, the findings."""
    model, inputs, outputs = truth.value.model, truth.value.inputs, truth.value.outputs
    first_in = {name: tuple(array.shape) for name, array in inputs.feeds.items()}
    first_out = {name: tuple(value.shape) for name, value in outputs.items()}
    second, note = second_inputs(model, inputs, seed=seed)
    if second is None:  # one shape: only the declaration is checked
        found = findings_of(model.proto, first_in, {}, first_out, {}, ())
        return SecondShape(first_in, {}, (), {n: (s, None) for n, s in first_out.items()},
                           None, tuple(found), note)
    second_in = {name: tuple(array.shape) for name, array in second.feeds.items()}
    moves = _moves(inputs, second)
    checked_by, findings = "onnxruntime CPU", []
    try:
        second_out, failed = child.call(
            _output_shapes, OrtRuntime, truth, second.feeds, inputs.feeds,
            limit=limit_seconds("LSTM_BENCH_CALL_TIMEOUT_S"))
    except isolate.Crashed as exc:
        second_out, failed = None, (exc.reason, False)
    if failed and failed[1]:  # it runs at the first shape, not at the second
        moved = moved_text(moves) or "its inputs' lengths"
        findings.append(Finding(None, None, (
            f"the model runs with {_shapes_text(first_in)} but fails with "
            f"{_shapes_text(second_in)} ({moved}), though the file declares those axes "
            f"dynamic: onnxruntime: {_ort_text(failed[0])}: the export baked its example's "
            f"shape; {RE_EXPORT}")))
        second_out = {}
    elif failed:  # onnxruntime cannot run it: what shape inference tells
        checked_by, second_out = "shape inference", _inferred(model, second_in)
        # why is ort-cpu's verdict to say, once: its message is not repeated here
        note = f"onnxruntime CPU could not run the model: shape inference told the second " \
               f"run's shapes of {len(second_out)} of {len(first_out)} output(s)"
    findings += findings_of(model.proto, first_in, second_in, first_out, second_out, moves)
    return SecondShape(first_in, second_in, moves,
                       {name: (shape, second_out.get(name)) for name, shape in first_out.items()},
                       checked_by, tuple(findings), note)
