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

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line

EXPORTERS = ("auto", "dynamo", "torchscript")
METADATA_EXPORTER = "lstm_bench.exporter"
_TWO_GB = 2 ** 31
# torch and onnxruntime both compute in float32 with different kernels: a few ulp per step.


def _lstm_layers(model) -> list:
    from torch import nn

    layers = [m for m in model.modules() if isinstance(m, nn.LSTM)]
    if not layers:
        raise LSTMBenchError(f"{type(model).__name__} has no nn.LSTM layer; export_torch exports "
                             "modules built on nn.LSTM")
    for layer in layers:
        if getattr(layer, "proj_size", 0):
            raise LSTMBenchError(
                f"nn.LSTM with proj_size={layer.proj_size} cannot be exported: the ONNX LSTM "
                "operator has no projection (the dynamo exporter writes a graph that fails in "
                "onnxruntime, the TorchScript exporter refuses it); use proj_size=0")
    return layers


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
    if x.dim() != 3 or not x.is_floating_point():
        raise LSTMBenchError(f"example_input must be a floating-point tensor of rank 3 "
                             f"({'[batch, seq, features]' if batch_first else '[seq, batch, features]'}), "
                             f"got {x.dtype} of shape {list(x.shape)}")
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


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints, deprecation warnings and registry logs."""
    import io
    from contextlib import redirect_stdout

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _run_exporter(which, model, args, raw_path, *, opset, input_names, output_names,
                  dynamic, batch_axis, time_axis, has_lengths):
    import torch

    options = {"input_names": input_names, "output_names": output_names}
    if opset is not None:
        options["opset_version"] = int(opset)
    with _quiet():
        if which == "torchscript":
            axes = {}
            if dynamic:
                axes["input"] = {batch_axis: "batch", time_axis: "seq"}
                if has_lengths:
                    axes["lengths"] = {0: "batch"}
            torch.onnx.export(model, args, str(raw_path), dynamo=False, dynamic_axes=axes or None,
                              **options)
        else:
            shapes = None
            if dynamic:
                batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
                shapes = ({batch_axis: batch, time_axis: seq},)
            torch.onnx.export(model, args, str(raw_path), dynamo=True, dynamic_shapes=shapes,
                              external_data=True, optimize=True, verbose=False, **options)


def _set_dims(value_info, dims):
    shape = value_info.type.tensor_type.shape
    for index, name in dims.items():
        dim = shape.dim[index]
        dim.Clear()
        dim.dim_param = name


def _relax_shapes(model, batch_axis, time_axis, has_lengths, probes=None):
    """Give the inputs' batch and time axes symbolic names and infer every other shape again.

    ``probes`` is ``[(batch, steps, outputs), ...]``: torch's outputs at two input shapes. An
    output dim that shape inference leaves unknown is fixed when it is the same in both, and
    named "batch" or "seq" when it follows that axis.
    """
    import onnx

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    _set_dims(inputs[0], {batch_axis: "batch", time_axis: "seq"})
    if has_lengths:
        _set_dims(inputs[1], {0: "batch"})
    declared = {}
    for output in graph.output:
        declared[output.name] = [d.dim_param or None for d in output.type.tensor_type.shape.dim]
        output.type.tensor_type.ClearField("shape")
    del graph.value_info[:]
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output}
    for position, output in enumerate(graph.output):
        rank = len(declared[output.name])
        found = inferred.get(output.name)
        dims = [None] * rank
        if found is not None and found.type.tensor_type.HasField("shape"):
            dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                    for d in found.type.tensor_type.shape.dim]
        shape = output.type.tensor_type.shape
        for index, dim in enumerate(dims):
            entry = shape.dim.add()
            if isinstance(dim, str) and dim.startswith("unk__"):
                dim = None
            if dim is None and probes:
                (b0, t0, outs0), (b1, t1, outs1) = probes
                n0, n1 = outs0[position].shape[index], outs1[position].shape[index]
                dim = (n0 if n0 == n1 else "batch" if (n0, n1) == (b0, b1)
                       else "seq" if (n0, n1) == (t0, t1) else None)
            if dim is None and index < rank:
                dim = declared[output.name][index]  # the exporter's own symbolic name, if any
            if isinstance(dim, int):
                entry.dim_value = dim
            elif dim:
                entry.dim_param = dim
            # else: left unknown, which is valid ONNX and honest
    return model


def _unbake_sequence_length(proto, steps: int) -> int:
    """Let Reshapes copy the sequence axis from their input instead of a baked-in length.

    After ``torch.export`` fixed the sequence length, the dynamo exporter writes Reshapes of
    time-major LSTM outputs with a constant target like ``[steps, -1, D*H]``. Where the data's
    axis k is the symbolic "seq" and the target's entry k is the example's length, entry k
    becomes 0 (ONNX: copy that axis from the input), which is the same reshape at that length
    and the right one at any other. Only constants without other zeros are touched, and the
    proof in onnxruntime still judges the result. Returns the number of Reshapes changed.
    """
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    dims = {v.name: [d.dim_param or None for d in v.type.tensor_type.shape.dim]
            for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    initializers = {t.name: t for t in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        target = initializers.get(node.input[1])
        data_dims = dims.get(node.input[0])
        if target is None or data_dims is None or users.get(node.input[1]) != 1:
            continue
        shape = numpy_helper.to_array(target).copy()
        seq_axes = [k for k, name in enumerate(data_dims[:len(shape)])
                    if name == "seq" and shape[k] == steps]
        if len(seq_axes) != 1 or np.any(shape == 0):
            continue
        shape[seq_axes[0]] = 0
        target.CopyFrom(numpy_helper.from_array(shape, target.name))
        for attr in node.attribute:
            if attr.name == "allowzero":
                attr.i = 0
        changed += 1
    return changed


def _fold_weights(proto):
    """Fold the dynamo exporter's weight preprocessing (gate reordering) into initializers.

    Its own optimizer leaves alone any constant above 8192 elements, so R of an LSTM with
    hidden_size >= 46 stays a Slice/Concat chain computed on every run, and tools that read
    W and R from the file (``lstm_bench.graph``) cannot. Run after the axes are symbolic, so
    that no Shape of the input is folded into a constant.
    """
    import onnxscript.optimizer

    limit = max(sum(int(np.prod(t.dims)) for t in proto.graph.initializer), 8192)
    with _quiet():
        return onnxscript.optimizer.optimize(proto, input_size_limit=limit,
                                             output_size_limit=limit)


def _assert_structure(model, expected_layers: int, has_lengths: bool):
    """One LSTM node per nn.LSTM layer, no Loop or Scan anywhere, sequence_lens when ragged."""

    def walk(graph):
        for node in graph.node:
            yield node
            for attr in node.attribute:
                if attr.HasField("g"):
                    yield from walk(attr.g)
                for sub in attr.graphs:
                    yield from walk(sub)

    nodes = list(walk(model.graph))
    for function in model.functions:
        nodes.extend(function.node)
    loops = sorted({n.op_type for n in nodes if n.op_type in ("Loop", "Scan")})
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    if loops or len(lstms) != expected_layers:
        raise LSTMBenchError(
            f"the exported graph has {len(lstms)} LSTM node(s) for {expected_layers} nn.LSTM "
            f"layer(s){' and ' + '/'.join(loops) + ' nodes' if loops else ''}; expected exactly "
            "one LSTM node per layer and no Loop or Scan (was an LSTM unrolled, called twice, "
            "or left unused?)")
    if has_lengths:
        missing = [n.name or "LSTM" for n in lstms if len(n.input) < 5 or not n.input[4]]
        if missing:
            raise LSTMBenchError(
                f"the model takes lengths but LSTM node(s) {missing} have no sequence_lens "
                "input; pack the input with pack_padded_sequence before the nn.LSTM")


def _probe_args(args, batch_first, has_lengths, dynamic):
    """Seeded inputs one batch larger and three steps longer than the example (if dynamic)."""
    import torch

    x = args[0]
    batch, steps = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    new_batch, new_steps = (batch + 1, steps + 3) if dynamic else (batch, steps)
    generator = torch.Generator().manual_seed(1234)
    shape = (new_batch, new_steps, x.shape[2]) if batch_first else (new_steps, new_batch, x.shape[2])
    new_args = [torch.randn(shape, generator=generator, dtype=x.dtype)]
    if has_lengths:
        lengths = torch.randint(1, new_steps + 1, (new_batch,), generator=generator)
        lengths[0] = new_steps
        new_args.append(lengths)
    return new_args, new_batch, new_steps


def _check_against_onnxruntime(proto, probe_args, expected, which, batch_first):
    """Run ``proto`` in onnxruntime on the probe input; raise if it drifts from torch."""
    import onnxruntime

    x = probe_args[0]
    batch, steps = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    hint = ""
    if which == "dynamo":
        hint = ("; torch.export fixes an axis to the example's size in some LSTM graphs "
                "(an example batch of 1 above all): use exporter='torchscript', or an example "
                "with batch >= 2")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # the failure is reported below, once
    try:
        session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {name: t.numpy() for name, t in zip(names, probe_args)})
    except Exception as exc:  # onnxruntime's own exception types
        text = first_line(exc)
        raise LSTMBenchError(f"the {which} exporter's graph fails in onnxruntime at batch "
                             f"{batch}, sequence length {steps}: {text[:300]}{hint}") from None
    from lstm_bench.parity import TOLERANCES, compare_output

    for index, (want, have) in enumerate(zip(expected, got)):
        judged = compare_output(which, f"output {index}", have, np.asarray(want, np.float64),
                                TOLERANCES["float32"], "float32")
        if judged:
            continue
        error = (f"max abs error {judged.max_abs:.3g}" if want.shape == have.shape else
                 f"shape {list(have.shape)} instead of {list(want.shape)}")
        raise LSTMBenchError(
            f"the {which} exporter's graph disagrees with torch on output {index} at batch "
            f"{batch}, sequence length {steps} ({error}){hint}")


def _export_with(which, module, args, *, opset, dynamic, batch_first, has_lengths,
                 expected_layers, outputs, probe):
    """One exporter's ModelProto, relaxed, checked and proven; raises LSTMBenchError."""
    import onnx

    batch_axis, time_axis = (0, 1) if batch_first else (1, 0)
    input_names = ["input", "lengths"] if has_lengths else ["input"]
    output_names = (["output"] if len(outputs) == 1
                    else [f"output_{i}" for i in range(len(outputs))])
    with tempfile.TemporaryDirectory(prefix="lstm-bench-export-") as tmp:
        raw_path = Path(tmp) / "model.onnx"
        try:
            _run_exporter(which, module, args, raw_path, opset=opset,
                          input_names=input_names, output_names=output_names, dynamic=dynamic,
                          batch_axis=batch_axis, time_axis=time_axis, has_lengths=has_lengths)
            # load_external_data pulls the dynamo exporter's model.onnx.data inline.
            proto = onnx.load(str(raw_path), load_external_data=True)
        except Exception as exc:  # the exporters raise many types; keep the first line
            raise LSTMBenchError(f"torch.onnx.export ({which}) failed: "
                                 f"{first_line(exc, with_type=True)}") from None
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        raise LSTMBenchError(f"the {which} exporter wrote opset {written}, not the requested "
                             f"opset {opset}")
    if dynamic:
        probes = None
        if probe is not None:
            x = args[0]
            b0, t0 = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
            probes = [(b0, t0, [o.numpy() for o in outputs]), (probe[1], probe[2], probe[3])]
        _relax_shapes(proto, batch_axis, time_axis, has_lengths, probes)
    if which == "dynamo":
        if dynamic:
            x = args[0]
            _unbake_sequence_length(proto, x.shape[1] if batch_first else x.shape[0])
        proto = _fold_weights(proto)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_EXPORTER: which})
    try:
        onnx.checker.check_model(proto, full_check=True)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except Exception as exc:
        raise LSTMBenchError(f"the {which} exporter's graph fails onnx.checker / shape "
                             f"inference: {first_line(exc)}") from None
    _assert_structure(proto, expected_layers, has_lengths)
    if probe is not None:
        _check_against_onnxruntime(proto, probe[0], probe[3], which, batch_first)
    return proto


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
                probe_args, new_batch, new_steps = _probe_args(args, batch_first, has_lengths, dynamic)
                probe = (probe_args, new_batch, new_steps,
                         [t.numpy() for t in _flatten(module(*probe_args))])
        failures = []
        for which in order:
            try:
                proto = _export_with(which, module, args, opset=opset, dynamic=dynamic,
                                     batch_first=batch_first, has_lengths=has_lengths,
                                     expected_layers=expected_layers, outputs=outputs,
                                     probe=probe)
                break
            except LSTMBenchError as exc:
                failures.append(str(exc))
        else:
            raise LSTMBenchError("; ".join(failures) if len(failures) == 1 else
                                 "no exporter succeeded: " + "; ".join(failures))
    finally:
        model.train(was_training)
    save_model(proto, path)
    return proto


def save_model(proto, path) -> Path:
    """Write ``proto`` to ``path`` atomically, weights inline (external data only past 2 GB)."""
    import onnx

    from lstm_bench.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if proto.ByteSize() < _TWO_GB:
            onnx.save(proto, str(tmp))
        else:  # protobuf cannot serialise 2 GB: the weights go beside the model
            onnx.save(proto, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=path.name + ".data")
    return path
