"""Keras 3 ``.keras`` archives to ONNX graphs with one ``LSTM`` node per Keras LSTM layer.

The archive is read with ``zipfile``, ``json`` and ``h5py`` only: Keras is never imported here
and nothing from the file is executed (a ``Lambda`` layer's pickled code stays a string we
refuse by name). Supported: Sequential and functional models (one input, one output, each layer
called once; Concatenate / Add / Subtract / Multiply / Average / Maximum / Minimum merge
branches) of InputLayer, LSTM (return_sequences, go_backwards, use_bias, activation /
recurrent_activation with an ONNX RNN equivalent), Bidirectional(LSTM) with merge_mode concat,
sum, mul or ave, Dense, TimeDistributed(Dense), Activation, Embedding (mask_zero), Masking,
Conv1D, Max/Average pooling and their Global forms, BatchNormalization, LayerNormalization,
Flatten, Reshape, RepeatVector, and the layers that are the identity at inference (Dropout,
SpatialDropout1D, GaussianDropout, GaussianNoise). Anything else raises ``LSTMBenchError``
naming the layer (and, for the layers people try most, what to do instead).

This module reads the archive and the model's wiring; ``keras_read`` turns each layer config
into a parsed layer (``keras_layers``), ``keras_onnx`` writes the graph and ``keras_walk``
computes the float64 check.

Keras semantics kept in the graph:
- Gate order i, f, c, o becomes ONNX i, o, f, c; one Keras bias becomes ``B = [b | 0]``.
- ``go_backwards`` is ONNX ``reverse``; with return_sequences Keras returns the sequence in
  processing order (time-reversed), so the graph flips ONNX's input-aligned Y back.
- Bidirectional's backward sequence is input-aligned (Keras flips it), as ONNX's Y already is.
- hard_sigmoid is Keras 3's ``relu6(x + 3) / 6`` = ONNX HardSigmoid(alpha=1/6, beta=0.5).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.files import atomic_path, check_array_size, limit_bytes, parse_json
from lstm_bench.exporters.keras_layers import TOKEN_DTYPES, KerasLSTM, KerasModel
from lstm_bench.exporters.keras_onnx import DEFAULT_OPSET, build_keras_model
from lstm_bench.exporters.keras_read import (INSTEAD, MERGES, SUPPORTED as _SUPPORTED,
                                             LayerReader, check_builtin)
from lstm_bench.exporters.keras_walk import walk

__all__ = ["read_keras", "export_keras", "keras_reference", "build_keras_model", "KerasModel"]

# --------------------------------------------------------------------------------------------
# Reading the archive


def _open_archive(keras_path):
    """(config dict, h5py.File) of a .keras archive, with a clear error for each bad case."""
    import h5py

    path = Path(keras_path)
    if not path.is_file():
        raise LSTMBenchError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise LSTMBenchError(f"{path}: the archive has no config.json; not a Keras 3 "
                                     ".keras file (save it with model.save('model.keras'))")
            if "model.weights.h5" not in names:
                sharded = " (sharded weights are not supported)" if "model.weights.json" in names else ""
                raise LSTMBenchError(f"{path}: the archive has no model.weights.h5{sharded}")
            # Declared sizes checked first; zipfile never inflates past the declared size.
            for member, limit in (("config.json", "LSTM_BENCH_MAX_JSON_MB"),
                                  ("model.weights.h5", "LSTM_BENCH_MAX_ARRAY_MB")):
                size = archive.getinfo(member).file_size
                if size > limit_bytes(limit):
                    raise LSTMBenchError(f"{path}: {member} declares {size} bytes, above the "
                                         f"limit of {limit_bytes(limit)} (set {limit} to allow "
                                         "more)")
            config_bytes = archive.read("config.json")
            weights_bytes = archive.read("model.weights.h5")
    except zipfile.BadZipFile:
        raise LSTMBenchError(f"{path}: not a zip archive, so not a Keras 3 .keras file (legacy "
                             "HDF5 .h5 models are not supported: re-save as .keras)") from None
    except OSError as exc:
        raise LSTMBenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (RuntimeError, NotImplementedError, EOFError, zlib.error) as exc:  # encrypted, corrupt
        raise LSTMBenchError(f"{path}: cannot read the archive ({first_line(exc)})") from None
    config = parse_json(config_bytes, f"{path}: config.json", "Keras config")
    if not isinstance(config, dict):
        raise LSTMBenchError(f"{path}: config.json does not describe a Keras model")
    try:
        h5 = h5py.File(io.BytesIO(weights_bytes), "r")
    except OSError as exc:
        raise LSTMBenchError(f"{path}: model.weights.h5 is not a readable HDF5 file "
                             f"({first_line(exc)})") from None
    try:
        _refuse_foreign_storage(h5, f"{path}: model.weights.h5")
    except BaseException:
        h5.close()
        raise
    return config, h5


def _refuse_foreign_storage(h5, where: str) -> None:
    """Weights must live inside the archive: an HDF5 external link, a dataset with external
    raw storage or a virtual dataset would read other files of this machine (or their fill
    value) as weights, so each is refused by name before any dataset is read."""
    import h5py

    def problem(name, link) -> str | None:
        if isinstance(link, h5py.ExternalLink):
            return f"{name!r} is an external link to {link.filename!r}"
        if isinstance(link, h5py.SoftLink):
            return None  # inside this file; its target is visited by its own hard link
        if not isinstance(link, h5py.HardLink):
            return f"{name!r} is a user-defined link"
        obj = h5.get(name)
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                return (f"dataset {name!r} keeps its data in external file(s) "
                        f"{[e[0] for e in obj.external]}")
            if obj.is_virtual:
                return f"dataset {name!r} is a virtual dataset (mapped from other files)"
        return None

    found = []

    def visit(name, link):  # h5py cannot raise through its visitor: a result stops it
        try:
            found.append(problem(name, link))
        except Exception as exc:  # a damaged object: reported like the others
            found.append(f"{name!r} cannot be read ({first_line(exc)})")
        return found[-1]

    try:
        h5.visititems_links(visit)
    except Exception as exc:  # h5py's OSError, KeyError, SystemError for a damaged file
        raise LSTMBenchError(f"{where}: not a readable HDF5 file ({first_line(exc)})") from None
    if found and found[-1]:
        raise LSTMBenchError(f"{where}: {found[-1]}; weights must be stored inside the archive")


def _chain(model_config: dict, where: str) -> tuple[list[dict], dict[str, list[str]]]:
    """The layer configs of a Sequential or Functional model in topological order, input
    first, and each layer's input layers by name (a merge layer has several)."""
    cls = model_config.get("class_name")
    config = model_config.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise LSTMBenchError(f"{where}: config.json holds no layer list; not a Keras model config")
    layers = config["layers"]
    if cls == "Sequential":
        names = [layer.get("config", {}).get("name") for layer in layers]
        return layers, {name: [prev] for prev, name in zip(names, names[1:])}
    if cls not in ("Functional", "Model"):
        raise LSTMBenchError(f"{where}: model class {cls!r} is not supported; only Sequential and "
                             "functional models are")
    by_name = {layer.get("name"): layer for layer in layers}

    def endpoints(key):
        value = config.get(key)
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            value = [value]  # a single input/output is sometimes saved unwrapped
        if not isinstance(value, list) or len(value) != 1:
            raise LSTMBenchError(f"{where}: the functional model has "
                                 f"{len(value) if isinstance(value, list) else 'no'} {key}; "
                                 "only one input and one output are supported")
        return value[0][0]

    first, last = endpoints("input_layers"), endpoints("output_layers")
    inputs: dict[str, list[str]] = {}
    needed, order, mask_ops = [last], [], set()
    while needed:  # every layer the output depends on, each read once
        name = needed.pop()
        if name in inputs or name == first:
            continue
        layer = by_name.get(name)
        if layer is None:
            raise LSTMBenchError(f"{where}: layer {name!r} is referenced but not defined in config.json")
        nodes = layer.get("inbound_nodes") or []
        label = f"{layer.get('class_name')} layer {name!r}"
        if len(nodes) != 1:
            raise LSTMBenchError(f"{where}: layer {name!r} is called {len(nodes)} times (a "
                                 "shared layer); only layers called once are supported")
        node = nodes[0] if isinstance(nodes[0], dict) else {}  # Keras 2 wrote lists here
        args = node.get("args") or []
        if len(args) == 1 and isinstance(args[0], list):  # a merge layer: a list of tensors
            args = args[0]
        tensors = [a for a in args
                   if isinstance(a, dict) and a.get("class_name") == "__keras_tensor__"]
        # training / mask flags are fine; any other keyword (initial_state=...) is a second input
        kwargs = node.get("kwargs") or {}
        extra = [k for k, v in kwargs.items()
                 if k not in ("training", "mask") or v not in (None, False, True)]
        mask = kwargs.get("mask")
        if isinstance(mask, dict) and mask.get("class_name") == "__keras_tensor__":
            # the mask Keras propagated (a NotEqual op layer after an Embedding): recomputed
            # here from mask_zero / Masking, and the proof with padded input judges that
            extra.remove("mask")
            mask_ops.add(mask["config"]["keras_history"][0])
        if not tensors or len(tensors) != len(args) or extra:
            raise LSTMBenchError(f"{where}: {label} takes inputs other than tensors of earlier "
                                 "layers (initial_state=..., constants); not supported")
        history = [t["config"]["keras_history"] for t in tensors]
        for source, call, output in history:
            if call:
                raise LSTMBenchError(f"{where}: layer {source!r} is called more than once (a "
                                     "shared layer); only layers called once are supported")
            if output:
                raise LSTMBenchError(f"{where}: {label} takes output {output} of layer "
                                     f"{source!r}; only layers with one output are supported")
        inputs[name] = [h[0] for h in history]
        needed.extend(inputs[name])
        if len(inputs) > len(layers):
            raise LSTMBenchError(f"{where}: the functional graph has a cycle at layer {name!r}")
    used = set(inputs) | {first}
    order = [layer for layer in layers if layer.get("name") in used]  # Keras saves them in order
    unused = [layer.get("name") for layer in layers
              if layer.get("name") not in used | mask_ops]
    if unused:
        raise LSTMBenchError(f"{where}: layers {unused} are not on a path from input to output; "
                             "not supported")
    if not order or order[0].get("name") != first:
        raise LSTMBenchError(f"{where}: the model's input layer {first!r} does not come first")
    return order, inputs


class _Weights:
    """Finds each layer's variables in model.weights.h5."""

    def __init__(self, h5, chain, sequential: bool, where: str):
        self.h5, self.where = h5, where
        self.groups = {}
        # Keras 3.x writes the layer name as the ``name`` attribute of ``layers/<key>/vars``;
        # <key> itself is the snake_case class name, numbered in model.layers order.
        top = h5.get("layers")
        if top is not None:
            for key, group in top.items():
                vars_group = group.get("vars") if hasattr(group, "get") else None
                if vars_group is not None and "name" in vars_group.attrs:
                    self.groups[_text(vars_group.attrs["name"])] = f"layers/{key}"
        used = {}
        for layer in chain:
            cls, name = layer["class_name"], layer["config"].get("name")
            if sequential and cls == "InputLayer":
                continue  # Sequential.layers leaves its InputLayer out
            base = _SUPPORTED[cls]
            key = base if base not in used else f"{base}_{used[base] + 1}"
            used[base] = used.get(base, -1) + 1
            self.groups.setdefault(name, f"layers/{key}")

    def read(self, layer_name: str, label: str, sub: str, shapes: list[tuple]) -> list[np.ndarray]:
        """The arrays at ``<layer group>/<sub>/vars/0..n-1``, checked against ``shapes``."""
        path = f"{self.groups.get(layer_name, 'layers/?')}/{sub}vars".replace("//", "/")
        group = self.h5.get(path)
        if group is None:
            raise LSTMBenchError(f"{self.where}: {label}: no weights at {path} in model.weights.h5")
        if len(group) != len(shapes):
            raise LSTMBenchError(f"{self.where}: {label}: {path} in model.weights.h5 holds "
                                 f"{len(group)} arrays, expected {len(shapes)}")
        arrays = []
        for index, shape in enumerate(shapes):
            dataset = group.get(str(index))
            if dataset is None or not hasattr(dataset, "shape"):
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} is missing")
            if _text(dataset.attrs.get("dtype", "")) == "bfloat16":
                raise LSTMBenchError(f"{self.where}: {label}: bfloat16 weights are not supported")
            if tuple(dataset.shape) != tuple(shape):
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} has shape "
                                     f"{list(dataset.shape)}, expected {list(shape)}")
            # a sparse or compressed dataset can declare far more than the archive holds
            check_array_size(dataset.shape, dataset.dtype if dataset.dtype.kind in "fiub"
                             else np.float64, f"{self.where}: {label}: {path}/{index}")
            try:
                array = np.asarray(dataset[()])
            except (OSError, ValueError, TypeError, RuntimeError) as exc:
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} cannot be read "
                                     f"({first_line(exc)})") from None
            if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
                raise LSTMBenchError(f"{self.where}: {label}: {path}/{index} must hold finite "
                                     f"floats, got {array.dtype}")
            arrays.append(array)
        return arrays


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_keras(keras_path) -> KerasModel:
    """Parse a .keras archive into a ``KerasModel`` (json + h5py; nothing is executed)."""
    where = str(keras_path)
    config, h5 = _open_archive(keras_path)
    try:
        chain, wiring = _chain(config, where)
        for layer in chain:
            cls = layer.get("class_name")
            name = (layer.get("config") or {}).get("name") or layer.get("name")
            if cls not in _SUPPORTED:
                instead = f" ({INSTEAD[cls]})" if cls in INSTEAD else ""
                raise LSTMBenchError(f"{where}: layer {name!r} of class {cls} is not "
                                     f"supported{instead}; supported layers: "
                                     f"{', '.join(_SUPPORTED)}")
            check_builtin(layer, f"{cls} layer {name!r}", where)
        sequential = config.get("class_name") == "Sequential"
        source = ""  # the model input's id in ``wiring``
        dtype = None  # the InputLayer's, where the model has one
        if chain and chain[0]["class_name"] == "InputLayer":
            shape = chain[0]["config"].get("batch_shape") or chain[0]["config"].get("batch_input_shape")
            input_name = chain[0]["config"].get("name") or "input"
            dtype = chain[0]["config"].get("dtype")
            source = chain[0]["config"].get("name") or chain[0].get("name")
            chain = chain[1:]
        elif chain:
            shape = (chain[0].get("build_config") or {}).get("input_shape") \
                or config["config"].get("build_input_shape")
            input_name = "input"
        else:
            shape = input_name = None
        if not chain:
            raise LSTMBenchError(f"{where}: the model has no layers besides its input")
        takers = [layer for layer in chain
                  if wiring.get(layer["config"]["name"], [source]) == [source]]
        tokens = all(layer["class_name"] == "Embedding" for layer in takers)
        if tokens:
            if not isinstance(shape, list) or len(shape) != 2:
                raise LSTMBenchError(f"{where}: the model input has shape {shape}; an Embedding "
                                     "takes token ids (batch, time)")
        elif not isinstance(shape, list) or len(shape) != 3 or not isinstance(shape[2], int):
            raise LSTMBenchError(f"{where}: the model input has shape {shape}; expected "
                                 "(batch, time, features) with a known number of features")
        weights = _Weights(h5, chain, sequential, where)
        time_steps = shape[1] if isinstance(shape[1], int) else None
        reader = LayerReader(weights, where, None if tokens else shape[2], time_steps)
        states = {source: reader.state()}
        alias: dict[str, str] = {}  # identity layers pass their input on
        layers, links = [], []
        for layer in chain:
            name = layer["config"]["name"]
            inputs = [alias.get(n, n) for n in wiring.get(name, [source])]
            if layer["class_name"] in MERGES:
                parsed, state = reader.merge(layer, [states[n] for n in inputs])
            else:
                if len(inputs) != 1:
                    raise LSTMBenchError(f"{where}: {layer['class_name']} layer {name!r} takes "
                                         f"{len(inputs)} inputs; only merge layers take several")
                reader.load(states[inputs[0]])
                parsed = reader.read(layer)
                state = reader.state()
            if parsed is None:
                alias[name] = inputs[0]
                continue
            states[name] = state
            layers.append(parsed)
            links.append((tuple(inputs), name))
        output = alias.get(chain[-1]["config"]["name"], chain[-1]["config"]["name"])
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise LSTMBenchError(f"{where}: config.json is not a Keras 3 model config this exporter "
                             f"understands ({type(exc).__name__}: {exc})") from None
    finally:
        h5.close()
    if not any(isinstance(layer, KerasLSTM) for layer in layers):
        raise LSTMBenchError(f"{where}: the model has no LSTM layer")
    return KerasModel(config["config"].get("name", "model"), input_name,
                      None if tokens else shape[2], time_steps, tuple(layers), tokens=tokens,
                      mask_value=reader.mask_value, wiring=tuple(links), source=source,
                      output=output, fixed_length=reader.fixed_length,
                      token_dtype=_token_dtype(dtype) if tokens else "int64")


def _token_dtype(dtype) -> str:
    """The integer type the model's token input is declared with (``keras.Input(dtype=...)``),
    kept by the ONNX input so that the user's serving code feeds what it fed Keras; int64 where
    the input is declared float (Keras casts it) or not at all."""
    if isinstance(dtype, dict):  # a DTypePolicy's config
        dtype = (dtype.get("config") or {}).get("name")
    return dtype if dtype in TOKEN_DTYPES else "int64"


def keras_reference(keras_path, X) -> np.ndarray:
    """What the archive's model (a path, or a model ``read_keras`` parsed) computes on ``X`` in
    float64: ``X`` floats ``(batch, time, features)``, or token ids ``(batch, time)`` for a
    model that starts with an Embedding."""
    return walk(keras_path if isinstance(keras_path, KerasModel) else read_keras(keras_path), X)


def export_keras(keras_path, path=None, *, opset: int | None = None):
    """Export a Keras 3 ``.keras`` archive to ONNX; saved atomically to ``path`` when given.

    Returns the ModelProto. Input: ``(batch, time, features)`` named after the InputLayer;
    output ``"output"``; batch and time dynamic; one ONNX LSTM node per Keras LSTM layer.
    """
    import onnx

    model = build_keras_model(read_keras(keras_path),
                              opset=DEFAULT_OPSET if opset is None else opset)
    if path is not None:
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
    return model


