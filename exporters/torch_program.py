"""A ``torch.export`` program saved with ``torch.export.save`` (``.pt2``) to ONNX.

Loading: ``torch.export.load`` reads JSON (the graph) and raw tensor bytes (the weights), but it
also calls ``torch.load`` on the saved example inputs, first with ``weights_only=True`` and, if
that fails, again with ``weights_only=False``: arbitrary code. It unpickles tensor subclasses
and custom objects, and an archive may carry compiled AOTInductor code. So before
``torch.export.load`` runs, the archive is checked here: every pickled member must load with
``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors and plain containers),
no weight or constant may be stored as a pickle, and no compiled code may be present. An archive
that needs more is refused unless the caller passes ``trust_pickle=True``
(``--trust-pickle``): only for files you made yourself.

Inputs: any number of tensors of any layout ([batch, seq, features], token ids, an image
[batch, 1, 32, width], a seq2seq's (src, tgt), an LSTM state (x, h0, c0)). ``torch.export``
specializes every length that reaches an nn.LSTM (the program's input is ``[batch, 30, ...]``
even with ``Dim.AUTO``), while the ONNX LSTM operator takes any: ``program_inputs`` finds the
axes that are lengths on fake tensors, and the file leaves them symbolic together with the
program's own dynamic dims, where the program's graph, run with its shape guards lifted,
computes at other sizes; the proof compares the file with that output, every input grown by its
own dims. Where the graph bakes a length in (a Reshape to it, a Linear over the flattened
sequence), the file keeps the example's shape and the export says so. A program of one input
names it "input" (and its axes "batch", "seq"), as ``export_torch`` does; several inputs keep
the program's argument names (axes "batch", "src_len", "tgt_len", ...). An nn.LSTM with
``proj_size`` is refused before anything runs: ONNX's LSTM has no projection.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from lstm_bench import interrupts
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.program_inputs import plan_inputs, probe_inputs
from lstm_bench.exporters.torch_export import (METADATA_EXPORTER, ExportOptions, export_with,
                                               proj_size_refusal, save_model)
from lstm_bench.files import parse_json

# archive members holding compiled code that torch.export.load may hand to AOTInductor
_COMPILED = (".so", ".cpp", ".cubin", ".dll", ".dylib")


def dynamic_batch_hint(axis: int) -> str:
    """How to export a program for any batch, as the note of a fixed-batch program says it:
    one entry per positional argument (torch 2.13 refuses a bare {0: Dim} for forward(x))."""
    return f"dynamic_shapes=({{{axis}: torch.export.Dim('batch')}},)"


def check_archive(path: Path) -> None:
    """Refuse a .pt2 whose loading would unpickle more than plain tensors (see module doc)."""
    import torch
    from torch.export.pt2_archive import constants as names

    # constants torch.export.load unpickles with a full unpickler, by file name prefix
    unpickled = tuple(getattr(names, key) for key in ("CUSTOM_OBJ_FILENAME_PREFIX",
                                                      "OPAQUE_OBJ_FILENAME_PREFIX")
                      if hasattr(names, key))
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise LSTMBenchError(f"{path}: not a zip archive, so not a program saved with "
                             "torch.export.save") from None
    with archive:
        members = archive.namelist()
        if not any("/models/" in f"/{n}" and n.endswith(".json") for n in members):
            raise LSTMBenchError(f"{path}: no serialized program in the archive; save it with "
                                 "torch.export.save(torch.export.export(model, args), 'model.pt2')")
        risky = []
        for name in members:
            if name.endswith(_COMPILED):
                risky.append(f"{name} (compiled code)")
            elif name.endswith("_config.json") and "/data/" in f"/{name}":
                try:  # parse_json: strict and bounded (nesting, numbers)
                    config = parse_json(archive.read(name), name).get("config", {})
                    config = config if isinstance(config, dict) else {}
                except (LSTMBenchError, AttributeError):
                    risky.append(f"{name} (unreadable)")
                    continue
                for key, entry in config.items():
                    entry = entry if isinstance(entry, dict) else {}
                    if entry.get("use_pickle") or str(entry.get("path_name", "")).startswith(unpickled):
                        risky.append(f"{name}: {key} (stored as a pickle or custom object)")
            elif name.endswith(".pt") or "/sample_inputs/" in name:
                # read with torch.load(weights_only=True), falling back to a full unpickler
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception as exc:  # torch's unpickler raises many types
                    interrupts.check()  # a signal it turned into an error is no risk found
                    risky.append(f"{name} (needs a full unpickler: {type(exc).__name__})")
    if risky:
        raise LSTMBenchError(
            f"{path}: loading this program would unpickle or run more than tensors: "
            f"{'; '.join(risky[:5])}{' ...' if len(risky) > 5 else ''}. Pass --trust-pickle "
            "only if you made the file yourself")


def load_program(path, *, trust_pickle: bool = False):
    """The ``ExportedProgram`` in ``path``, checked first unless ``trust_pickle``."""
    import torch

    path = Path(path)
    if not trust_pickle:
        check_archive(path)
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # torch raises many types for a bad archive
        interrupts.check()  # unless a signal came, which torch turned into one of them
        raise LSTMBenchError(f"{path}: torch.export.load failed: "
                             f"{first_line(exc, with_type=True)[:300]}") from None


def _lstm_calls(program) -> list:
    import torch

    return [n for n in program.graph.nodes if n.op == "call_function"
            and n.target in (torch.ops.aten.lstm.input, torch.ops.aten.lstm.data)]


def _unguarded(program):
    """The program as a module, without the pre-hook that checks input shapes."""
    module = program.module(check_guards=False)
    for key, hook in list(module._forward_pre_hooks.items()):
        if getattr(hook, "__name__", "") == "_check_input_constraints_pre_hook":
            del module._forward_pre_hooks[key]
    return module


def _outputs(value) -> list[np.ndarray]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value.detach().numpy()]
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _outputs(v)]
    raise LSTMBenchError(f"the program returns a {type(value).__name__}; only tensors (possibly "
                         "in tuples) can be exported")


def _proj_size(calls) -> int:
    """The projection size of the first aten.lstm call that has one, else 0: the weights per
    layer and direction are (w_ih, w_hh[, b_ih, b_hh][, w_hr])."""
    for call in calls:
        params, has_biases, layers, bidirectional = (call.args[2], call.args[3], call.args[4],
                                                     call.args[7])
        per_direction = len(params) // (int(layers) * (2 if bidirectional else 1))
        if per_direction == (5 if has_biases else 3):
            return int(params[per_direction - 1].meta["val"].shape[0])
    return 0


def _notes(plan, batch_first: bool) -> list[str]:
    """What the file could not keep, or had to find, in the export's notes."""
    notes = []
    # a program of one [batch, seq(, features)] input: its batch and time axes are the LSTM's
    sequence = len(plan.names) == 1 and plan.examples[0].dim() in (2, 3)
    batch_axis = int(not batch_first)
    for axis in (a for a in plan.axes if a.fixed_by_export):
        index, k = axis.places[0]
        if sequence and axis.name == "seq":
            notes.append(f"torch.export fixed the sequence length at {axis.size}; the ONNX file "
                         f"takes any length (proven at {axis.probe})")
        else:
            notes.append(f"torch.export fixed axis {k} of {plan.names[index]} at {axis.size}; "
                         f"the ONNX file takes any ({axis.name}, proven at {axis.probe})")
    if all(a.name == "batch" for a in plan.axes):
        if sequence:
            notes.append(f"the program's graph computes only at sequence length "
                         f"{plan.examples[0].shape[1 - batch_axis]} (it bakes the length in "
                         "beyond the LSTM), so the ONNX file keeps that length")
        else:
            shapes = ", ".join(f"{n} {list(x.shape)}" for n, x in zip(plan.names, plan.examples))
            notes.append("the program's graph computes only at its example's lengths (it bakes "
                         f"them in beyond the LSTM), so the ONNX file keeps them: {shapes}")
    if plan.fixed_batch is not None:
        how = (f"torch.export.export(model, (x,), {dynamic_batch_hint(batch_axis)})" if sequence
               else "dynamic_shapes giving the batch axis of every input the same "
                    "torch.export.Dim('batch')")
        notes.append(f"the program fixes the batch at {plan.fixed_batch} (export it with {how} "
                     "for any batch)")
    return notes


def export_program(path, out, *, opset: int | None = None, trust_pickle: bool = False):
    """Export the program in ``path`` to ``out`` (unproven; the caller proves it).

    Returns (probe feeds by input name, the program's outputs on them, notes). The probe grows
    every axis the file leaves symbolic (``program_inputs``), each input by its own dims.
    """
    import onnx
    import torch

    program = load_program(path, trust_pickle=trust_pickle)
    calls = _lstm_calls(program)
    if not calls:
        raise LSTMBenchError(f"{path}: the program calls no aten.lstm (nn.LSTM); lstm-bench "
                             "exports LSTM programs (a loop over nn.LSTMCell is refused)")
    if any(c.target != torch.ops.aten.lstm.input for c in calls):
        raise LSTMBenchError(f"{path}: the program runs an LSTM on a PackedSequence; export one "
                             "that takes the padded input (and lengths, with `lstm-bench export` "
                             "of a torch module: exporters.export_torch)")
    projection = _proj_size(calls)
    if projection:  # before any kernel runs: torch's would warn on stderr first
        raise LSTMBenchError(f"{path}: {proj_size_refusal(projection)}")
    batch_first = bool(calls[0].args[8])
    expected_layers = sum(int(c.args[4]) for c in calls)
    module = _unguarded(program)
    plan = plan_inputs(program, module, calls)
    if len(plan.names) == 1 and plan.examples[0].dim() == 2 and \
            not plan.examples[0].is_floating_point() and plan.vocab[0] is None:
        raise LSTMBenchError(f"{path}: the program takes integers but has no embedding")
    examples = list(plan.examples)
    # A static batch is baked into the LSTM's initial states: another batch would abort in
    # torch's kernel, so it is never tried; every other size was tried on fake tensors first.
    with torch.no_grad():
        outputs = _outputs(module(*examples))
        args = probe_inputs(plan)
        try:
            expected = _outputs(module(*args))
        except Exception as exc:  # the kernels' own errors at a shape the fake run allowed
            interrupts.check()
            raise LSTMBenchError(f"{path}: the program fails at input shapes "
                                 f"{plan.shapes(probe=True)}: {first_line(exc)[:300]}") from None
    notes = _notes(plan, batch_first)
    options = ExportOptions(opset, bool(plan.axes), batch_first, has_lengths=False,
                            fixed_batch=plan.fixed_batch is not None,
                            names=plan.names if len(plan.names) > 1 else (),
                            symbolic=plan.symbolic() if plan.axes else ())
    proto = export_with("dynamo", program, tuple(examples), options,
                        expected_layers=expected_layers,
                        outputs=[torch.from_numpy(o) for o in outputs],
                        probe=(args, expected))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_EXPORTER: "dynamo (torch.export program)"})
    interrupts.check()  # one that a finalizer swallowed while the exporter ran: no file
    save_model(proto, out)
    feeds = {name: a.numpy() for name, a in zip(options.input_names, args)}
    return feeds, expected, notes
