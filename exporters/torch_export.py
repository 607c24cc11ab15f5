"""torch modules with ``nn.LSTM`` layers to ONNX, one ``LSTM`` node per layer.

Both of torch's exporters are selectable. What each does with an LSTM (torch 2.13, measured):

- TorchScript (``dynamo=False``): dynamic axes as asked; a ``PackedSequence`` built in
  ``forward`` from (padded input, lengths) becomes the nodes' ``sequence_lens`` input.
- dynamo (``dynamo=True``): ``torch.export`` specialises the sequence length to the example's
  (the LSTM's composite kernel reads it while tracing; torch.onnx then retries with that axis
  fixed). The LSTM nodes still take any length, so we give the axes their symbolic names back,
  let the Reshapes of time-major outputs copy the sequence axis instead of the baked-in
  length, and infer the other shapes again. An example batch of 1 is baked into the initial
  states, so ``exporter="auto"`` uses TorchScript there (an explicit ``"dynamo"`` fails the
  proof below with a clear message). It cannot take a ``PackedSequence``, writes weights as
  external data (pulled back inline here), and leaves R's gate reordering as a Slice/Concat
  chain above 8192 elements (folded here, so that R is an initializer).

Before anything is written (``check=True``) each graph is run in onnxruntime on an input one
batch larger and three steps longer than the example and compared with torch.

Every file written here holds its weights inline (below 2 GB), passes ``onnx.checker`` and
strict shape inference, has exactly one ``LSTM`` node per ``nn.LSTM`` layer and no ``Loop`` or
``Scan``, and is written atomically: a failed export leaves nothing at ``path``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from lstm_bench import interrupts
from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.torch_graph import (assert_structure, fold_weights, relax_shapes,
                                              static_dims, unbake_lengths)
from lstm_bench.exporters.torch_proof import check_against_onnxruntime, probe_args
from lstm_bench.exporters.torch_quiet import quiet
from lstm_bench.files import atomic_path

EXPORTERS = ("auto", "dynamo", "torchscript")
METADATA_EXPORTER = "lstm_bench.exporter"
_TWO_GB = 2 ** 31


@dataclass(frozen=True)
class ExportOptions:
    """What one export is asked for: the opset, the layout of the traced input and which of its
    axes the file leaves symbolic."""

    opset: int | None
    dynamic: bool  # batch and sequence axes symbolic
    batch_first: bool
    has_lengths: bool  # the module takes (input, lengths)
    fixed_batch: bool = False  # a program whose batch is baked in: only the length is relaxed
    names: tuple[str, ...] = ()  # the inputs' names (default: "input", and "lengths")
    # per input, ((axis, dim name), ...) to leave symbolic (default: "batch" and "seq" as above)
    symbolic: tuple = ()

    @property
    def axes(self) -> tuple[int, int]:
        """(batch axis, time axis) of the input."""
        return (0, 1) if self.batch_first else (1, 0)

    @property
    def input_names(self) -> list[str]:
        if self.names:
            return list(self.names)
        return ["input", "lengths"] if self.has_lengths else ["input"]

    def input_axes(self) -> list[dict[int, str]]:
        """Per input, {axis: dim name} of the axes the file leaves symbolic."""
        if self.symbolic:
            return [dict(axes) for axes in self.symbolic]
        if not self.dynamic:
            return []
        batch_axis, time_axis = self.axes
        first = {time_axis: "seq"} if self.fixed_batch else {batch_axis: "batch", time_axis: "seq"}
        return [first, {0: "batch"}] if self.has_lengths else [first]

    def where(self, args) -> str:
        """The shape of ``args`` as the proof's messages say it."""
        if self.names or args[0].dim() not in (2, 3):
            return "input shapes " + ", ".join(f"{name} {list(a.shape)}"
                                               for name, a in zip(self.input_names, args))
        batch_axis, time_axis = self.axes
        return f"batch {args[0].shape[batch_axis]}, sequence length {args[0].shape[time_axis]}"


def _lstm_layers(model) -> list:
    from torch import nn

    layers = [m for m in model.modules() if isinstance(m, nn.LSTM)]
    if not layers:
        raise LSTMBenchError(f"{type(model).__name__} has no nn.LSTM layer; export_torch exports "
                             "modules built on nn.LSTM")
    for layer in layers:
        if getattr(layer, "proj_size", 0):
            raise LSTMBenchError(proj_size_refusal(layer.proj_size))
    return layers


def proj_size_refusal(proj_size: int) -> str:
    """Why an nn.LSTM(proj_size=k) is refused, the same on every route (module, .pt2)."""
    return (f"the LSTM has proj_size={proj_size}: ONNX's LSTM operator has no projection (its "
            "hidden state is not multiplied by a weight before it recurs), so no graph of LSTM "
            "nodes computes it; use proj_size=0 (torch's dynamo exporter writes a graph that "
            "fails in onnxruntime, its TorchScript exporter refuses it)")


def _vocab(model) -> int | None:
    """Rows of the model's first nn.Embedding (token ids are drawn below it), or None."""
    from torch import nn

    return next((m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)), None)


def _packed_input(model, batch_first):
    """``model`` takes a PackedSequence; the wrapper takes (padded input, lengths) instead."""
    import torch
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    class PackedInput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x, lengths):
            packed = pack_padded_sequence(x, lengths, batch_first=batch_first,
                                          enforce_sorted=False)
            total = x.shape[1 if batch_first else 0]

            def unpack(value):
                if isinstance(value, PackedSequence):
                    return pad_packed_sequence(value, batch_first=batch_first,
                                               total_length=total)[0]
                if isinstance(value, (tuple, list)):
                    return type(value)(unpack(v) for v in value)
                return value

            return unpack(self.model(packed))

    return PackedInput()


def _flatten(value, where="output") -> list:
    import torch
    from torch.nn.utils.rnn import PackedSequence

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, PackedSequence):
        raise LSTMBenchError(f"the model's {where} is a PackedSequence; return "
                             "pad_packed_sequence(...)[0] so that it is a tensor")
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flatten(v, where)]
    raise LSTMBenchError(f"the model's {where} holds a {type(value).__name__}; only tensors "
                         "(possibly in tuples) can be exported")


def _prepare_inputs(model, example_input, lengths, batch_first):
    """(module to export, args tuple, has_lengths)."""
    import torch
    from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

    if isinstance(example_input, PackedSequence):
        if lengths is not None:
            raise LSTMBenchError("give either a PackedSequence or lengths, not both")
        x, lens = pad_packed_sequence(example_input, batch_first=batch_first)
        return _packed_input(model, batch_first), (x, lens.to(torch.int64)), True
    if not isinstance(example_input, torch.Tensor):
        raise LSTMBenchError(f"example_input must be a tensor or a PackedSequence, got "
                             f"{type(example_input).__name__}")
    x = example_input
    layout = "[batch, seq" if batch_first else "[seq, batch"
    tokens = not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
    if not ((x.dim() == 3 and x.is_floating_point()) or (x.dim() == 2 and tokens)):
        raise LSTMBenchError(f"example_input must be a floating-point tensor {layout}, features] "
                             f"or integer token ids {layout}] for a model that starts with an "
                             f"embedding, got {x.dtype} of shape {list(x.shape)}")
    if tokens:
        vocab = _vocab(model)
        if vocab is None:
            raise LSTMBenchError("example_input holds integers but the model has no "
                                 "nn.Embedding to look them up; give float features")
        if int(x.min()) < 0 or int(x.max()) >= vocab:
            raise LSTMBenchError(f"example_input holds token ids {int(x.min())}..{int(x.max())}; "
                                 f"the model's nn.Embedding has {vocab} rows")
    if lengths is None:
        return model, (x,), False
    lengths = torch.as_tensor(lengths)
    batch, steps = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    if lengths.dim() != 1 or lengths.shape[0] != batch or lengths.is_floating_point():
        raise LSTMBenchError(f"lengths must be integers of shape [{batch}] (one per sequence), "
                             f"got {lengths.dtype} of shape {list(lengths.shape)}")
    if int(lengths.min()) < 1 or int(lengths.max()) > steps:
        raise LSTMBenchError(f"lengths must lie in 1..{steps}, got {lengths.tolist()}")
    return model, (x, lengths.to(torch.int64)), True


def _run_exporter(which, model, args, raw_path, options: ExportOptions, output_names):
    import torch

    common = {"input_names": options.input_names, "output_names": output_names}
    if options.opset is not None:
        common["opset_version"] = int(options.opset)
    batch_axis, time_axis = options.axes
    with quiet():
        if which == "torchscript":
            axes = {}
            if options.dynamic:
                axes["input"] = {batch_axis: "batch", time_axis: "seq"}
                if options.has_lengths:
                    axes["lengths"] = {0: "batch"}
            torch.onnx.export(model, args, str(raw_path), dynamo=False, dynamic_axes=axes or None,
                              **common)
        else:
            shapes = None
            # a saved torch.export program has its shapes already; the relaxing follows below
            if options.dynamic and isinstance(model, torch.nn.Module):
                batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
                shapes = ({batch_axis: batch, time_axis: seq},)
            torch.onnx.export(model, args, str(raw_path), dynamo=True, dynamic_shapes=shapes,
                              external_data=True, optimize=True, verbose=False, **common)


def export_with(which, module, args, options: ExportOptions, *, expected_layers, outputs,
                probe):
    """One exporter's ModelProto, relaxed, checked and proven; raises LSTMBenchError.

    ``outputs``: the module's outputs on ``args``; ``probe``: (probe args, the module's outputs
    on them) for the proof in onnxruntime, or None for no proof.
    """
    import onnx

    opset = options.opset
    output_names = (["output"] if len(outputs) == 1
                    else [f"output_{i}" for i in range(len(outputs))])
    with tempfile.TemporaryDirectory(prefix="lstm-bench-export-") as tmp:
        raw_path = Path(tmp) / "model.onnx"
        try:
            _run_exporter(which, module, args, raw_path, options, output_names)
            # load_external_data pulls the dynamo exporter's model.onnx.data inline.
            proto = onnx.load(str(raw_path), load_external_data=True)
        except Exception as exc:  # the exporters raise many types; keep the first line
            # unless it is a Ctrl-C or SIGTERM that torch turned into an error of its own
            # (C++ code that catches every exception does): that is no exporter failure
            interrupts.check()
            raise LSTMBenchError(f"torch.onnx.export ({which}) failed: "
                                 f"{first_line(exc, with_type=True)}") from None
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        raise LSTMBenchError(f"the {which} exporter wrote opset {written}, not the requested "
                             f"opset {opset}")
    symbolic = options.input_axes()
    if symbolic:
        probes = None
        if probe is not None:
            probes = [(_sizes(symbolic, args), [o.numpy() for o in outputs]),
                      (_sizes(symbolic, probe[0]), probe[1])]
        before = static_dims(proto, [a.shape for a in args]) if which == "dynamo" else None
        relax_shapes(proto, symbolic, probes)
        if before is not None:
            unbake_lengths(proto, before)
    if which == "dynamo":
        proto = fold_weights(proto)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_EXPORTER: which})
    try:
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except Exception as exc:
        interrupts.check()  # a signal turned into this error is no fault of the graph
        raise LSTMBenchError(f"the {which} exporter's graph fails onnx.checker / shape "
                             f"inference: {first_line(exc)}") from None
    assert_structure(proto, expected_layers, options.has_lengths)
    if probe is not None:
        check_against_onnxruntime(proto, probe[0], probe[1], which, options.where(probe[0]))
    return proto


def _sizes(symbolic, args) -> dict[str, int]:
    """Each symbolic dim's size in ``args``, by name, in the order the inputs name them."""
    return {name: int(a.shape[axis]) for axes, a in zip(symbolic, args)
            for axis, name in axes.items()}


def export_torch(model, example_input, path, *, opset: int | None = None, dynamic: bool = True,
                 exporter: str = "auto", lengths=None, check: bool = True):
    """Export a torch module built on ``nn.LSTM`` to ``path`` and return the ``onnx.ModelProto``.

    Args:
        model: a ``torch.nn.Module`` holding one or more ``nn.LSTM`` (any num_layers,
            bidirectional, batch_first, bias; dropout is off: the export runs in eval mode).
            Its forward takes the input tensor, or (input, lengths) when ``lengths`` is given.
        example_input: a float tensor laid out as the first nn.LSTM expects (batch_first or
            not), or a ``PackedSequence`` (the model's forward then takes one; it is wrapped to
            take (padded input, lengths) and its PackedSequence outputs come out padded).
        path: the .onnx file to write (weights inline).
        opset: ONNX opset; None is the exporter's default.
        dynamic: batch and sequence axes symbolic ("batch", "seq"); lengths' axis is "batch".
        exporter: "dynamo", "torchscript", or "auto": TorchScript where dynamo cannot do it
            (variable-length input; an example batch of 1 with dynamic axes), otherwise
            dynamo, falling back to TorchScript if dynamo's export or proof fails.
        lengths: int tensor ``[batch]``, the example's sequence lengths; the model packs them.
        check: before writing, run the graph in onnxruntime on an input one batch larger and
            three steps longer than the example (same shape if not dynamic) and compare it
            with torch.

    The graph's inputs are "input" (and "lengths", int64); outputs "output" or "output_0",
    "output_1", ... in the order the model returns them (nested tuples flattened). The exporter
    used is recorded in the model's metadata under ``lstm_bench.exporter``.
    """
    import torch

    if exporter not in EXPORTERS:
        raise LSTMBenchError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if not isinstance(model, torch.nn.Module):
        raise LSTMBenchError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise LSTMBenchError(f"{path}: directory {path.parent} does not exist")
    layers = _lstm_layers(model)
    batch_first = layers[0].batch_first
    expected_layers = sum(layer.num_layers for layer in layers)
    module, args, has_lengths = _prepare_inputs(model, example_input, lengths, batch_first)
    if exporter == "dynamo" and has_lengths:
        raise LSTMBenchError("the dynamo exporter cannot export variable-length input "
                             "(PackedSequence / lengths); use exporter='torchscript' or 'auto'")
    if exporter != "auto":
        order = [exporter]
    elif has_lengths or (dynamic and args[0].shape[0 if batch_first else 1] == 1):
        order = ["torchscript"]  # cases where dynamo's graph is known not to generalise
    else:
        order = ["dynamo", "torchscript"]

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outputs = _flatten(module(*args))
            probe = None
            if check:
                probe_args_, _, _ = probe_args(args, batch_first, has_lengths, dynamic,
                                               vocab=_vocab(model))
                probe = (probe_args_, [t.numpy() for t in _flatten(module(*probe_args_))])
        options = ExportOptions(opset, dynamic, batch_first, has_lengths)
        failures = []
        for which in order:
            try:
                proto = export_with(which, module, args, options,
                                    expected_layers=expected_layers, outputs=outputs, probe=probe)
                break
            except LSTMBenchError as exc:
                # a signal whose exception a library swallowed or turned into this failure
                # ends the export here, rather than fall back to the next exporter
                interrupts.check()
                failures.append(str(exc))
        else:
            raise LSTMBenchError("; ".join(failures) if len(failures) == 1 else
                                 "no exporter succeeded: " + "; ".join(failures))
    finally:
        model.train(was_training)
    interrupts.check()  # one that a finalizer swallowed while the exporter ran: no file
    save_model(proto, path)
    return proto


def save_model(proto, path) -> Path:
    """Write ``proto`` to ``path`` atomically, weights inline (external data only past 2 GB)."""
    import onnx

    path = Path(path)
    with atomic_path(path) as tmp:
        if proto.ByteSize() < _TWO_GB:
            onnx.save(proto, str(tmp))
        else:  # protobuf cannot serialise 2 GB: the weights go beside the model
            onnx.save(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=path.name + ".data")
    return path
