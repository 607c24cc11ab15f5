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

Sequence length: ``torch.export`` specializes nn.LSTM's sequence length (the program's input is
``[batch, 30, ...]`` even with ``Dim.AUTO``). The ONNX LSTM operator takes any length, so the
exported file gets symbolic batch and sequence axes where the program's own graph, run with
its shape guards lifted, computes at another batch and length; the proof then compares the file
with that output. Where the graph bakes the length in (a Reshape to it, a Linear over the
flattened sequence), the file keeps the example's shape and the export says so.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import numpy as np

from lstm_bench import interrupts
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.torch_export import (METADATA_EXPORTER, ExportOptions, export_with,
                                               save_model)
from lstm_bench.exporters.torch_proof import probe_args
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


def _user_input(program):
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    users = program.graph_signature.user_inputs
    if len(users) != 1:
        raise LSTMBenchError(f"the program takes {len(users)} inputs ({list(users)}); lstm-bench "
                             "exports programs with one input tensor (features or token ids)")
    return placeholders[users[0]].meta.get("val")


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


def _computes_at(module, x) -> bool:
    """Whether the program's graph runs on ``x``'s shape, judged on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs the failure we expect and handle
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            module(mode.from_tensor(x))
        return True
    except Exception:  # a shape the graph bakes in
        interrupts.check()  # or a signal that torch turned into an error: no fallback then
        return False
    finally:
        logger.setLevel(level)


def export_program(path, out, *, opset: int | None = None, trust_pickle: bool = False):
    """Export the program in ``path`` to ``out`` (unproven; the caller proves it).

    Returns (probe feeds, the program's outputs on them, notes). The probe is one batch larger
    and three steps longer than the example where the program's graph computes there.
    """
    import onnx
    import torch

    program = load_program(path, trust_pickle=trust_pickle)
    calls = _lstm_calls(program)
    if not calls:
        raise LSTMBenchError(f"{path}: the program calls no aten.lstm (nn.LSTM); lstm-bench "
                             "exports LSTM programs (a loop over nn.LSTMCell is refused)")
    # aten.lstm.input(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    # batch_first)
    batch_first = bool(calls[0].args[8])
    expected_layers = sum(int(c.args[4]) for c in calls)
    val = _user_input(program)
    if val is None or val.dim() not in (2, 3):
        raise LSTMBenchError(f"{path}: the program's input must be [batch, seq, features] or "
                             "token ids [batch, seq] (or time-major)")
    example = program.example_inputs[0][0] if program.example_inputs else None
    if example is None:
        shape = [d if isinstance(d, int) else 2 for d in val.shape]
        example = (torch.randn(shape) if val.dtype.is_floating_point
                   else torch.zeros(shape, dtype=val.dtype))
    vocab = None
    if not example.is_floating_point():
        tables = [n for n in program.graph.nodes if n.op == "call_function"
                  and n.target == torch.ops.aten.embedding.default]
        if not tables:
            raise LSTMBenchError(f"{path}: the program takes integers but has no embedding")
        vocab = int(tables[0].args[0].meta["val"].shape[0])
    module = _unguarded(program)
    # A static batch is baked into the LSTM's initial states: another batch would abort in
    # torch's kernel, so it is never tried. Another length is tried on fake tensors first (a
    # shape error there is a Python exception), then for real.
    batch_axis, time_axis = (0, 1) if batch_first else (1, 0)
    dynamic_batch = not isinstance(val.shape[batch_axis], int)
    notes = []
    with torch.no_grad():
        outputs = _outputs(module(example))
        for grow in ((int(dynamic_batch), 3), (int(dynamic_batch), 0)):
            args, batch, steps = probe_args((example,), batch_first, False, True, vocab=vocab,
                                            grow=grow)
            if _computes_at(module, args[0]):
                expected = _outputs(module(*args))
                break
    dynamic_length = grow[1] > 0
    steps0 = example.shape[time_axis]
    if dynamic_length:
        notes.append(f"torch.export fixed the sequence length at {steps0}; the ONNX file takes "
                     f"any length (proven at {steps})")
    else:
        notes.append(f"the program's graph computes only at sequence length {steps0} (it bakes "
                     "the length in beyond the LSTM), so the ONNX file keeps that length")
    if not dynamic_batch:
        notes.append(f"the program fixes the batch at {example.shape[batch_axis]} (export it "
                     f"with torch.export.export(model, (x,), {dynamic_batch_hint(batch_axis)}) for "
                     "any batch)")
    options = ExportOptions(opset, dynamic_length or dynamic_batch, batch_first,
                            has_lengths=False, fixed_batch=not dynamic_batch)
    proto = export_with("dynamo", program, (example,), options,
                        expected_layers=expected_layers,
                        outputs=[torch.from_numpy(o) for o in outputs],
                        probe=(args, batch, steps, expected))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_EXPORTER: "dynamo (torch.export program)"})
    interrupts.check()  # one that a finalizer swallowed while the exporter ran: no file
    save_model(proto, out)
    return {"input": args[0].numpy()}, expected, notes
