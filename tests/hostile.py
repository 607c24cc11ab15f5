"""Builders of hostile and malformed user files, and a CLI runner that checks the contract.

Shared by tests/test_safety.py (one test per class of issue 9) and tests/test_fuzz.py. Every
file here is built from the formats' own libraries (onnx.helper, h5py, zipfile, numpy's .npy
header), never by a mock of lstm-bench.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from lstm_bench.cli import main

# bench options for a run whose figures nobody reads: one block of two calls, no calibration,
# no history, no progress
QUICK = ["--span", "0", "--blocks", "1", "--min-time", "0", "--min-reps", "2", "--max-reps", "2",
         "--no-calibrate", "--no-history", "--quiet"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``lstm-bench ARGV`` in this process: (exit code, stdout, stderr)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_bad_input(result, *contains) -> str:
    """Exit 2, exactly one line on stderr (no traceback) containing each of ``contains``."""
    rc, _, err = result
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in contains:
        assert text in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file under ``folder`` (relative path -> size, mtime_ns, mode, link target)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            st = path.lstat()
            target = os.readlink(path) if path.is_symlink() else None
            found[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns, st.st_mode, target)
    return found


# --- ONNX --------------------------------------------------------------------------------

def save_model(graph, path, opset: int = 22, ir_version: int | None = None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.save(model, str(path))
    return Path(path)


def lstm_model(path, edit=None) -> Path:
    """A one-node LSTM model (X [seq_len, batch, 2], hidden 3, outputs Y, Y_h, Y_c);
    ``edit(model)`` may change the ModelProto before it is saved."""
    import onnx

    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.spec import LSTMSpec, LSTMWeights

    model = export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=3)))
    if edit is not None:
        edit(model)
    onnx.save(model, str(path))
    return Path(path)


def add_output(model, name, nodes=(), initializers=()):
    """Append nodes (and constants) to a model and expose ``name`` as a graph output."""
    from onnx import TensorProto, helper

    model.graph.node.extend(nodes)
    model.graph.initializer.extend(initializers)
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))


def constant_of_shape_bomb(path, dims=(10 ** 6, 10 ** 6)) -> Path:
    """The LSTM model plus an output that is a ConstantOfShape of a constant (huge) shape."""
    from onnx import helper, numpy_helper

    def bomb(model):
        add_output(model, "big", [helper.make_node("ConstantOfShape", ["S"], ["big"])],
                   [numpy_helper.from_array(np.array(dims, np.int64), "S")])

    return lstm_model(path, bomb)


def loop_model(path, trips: int, computed: bool = False) -> Path:
    """The LSTM model plus an output counting a Loop's iterations; ``computed``: the trip
    count is Add(c, 0), so only running the graph reveals it."""
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "M0"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.array(0.0, np.float32), "acc0")]
    nodes = [helper.make_node("Add", ["M0", "zero"], ["M"])] if computed else []
    nodes.append(helper.make_node("Loop", ["M" if computed else "M0", "cond", "acc0"], ["count"],
                                  body=body))
    return lstm_model(path, lambda model: add_output(model, "count", nodes, inits))


def external_data_model(folder: Path, location: str) -> Path:
    """A model whose one initializer points at ``location`` as external data."""
    from onnx import TensorProto, helper

    tensor = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "ext", [x], [y],
                              [tensor])
    return save_model(graph, folder / "ext.onnx")


# --- .npz --------------------------------------------------------------------------------

def npy_bytes(header_shape, dtype="<f4", payload=b"") -> bytes:
    """A .npy member whose header declares ``header_shape``, followed by ``payload``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(header_shape)})
    header = header.encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def write_npz(path, members: dict[str, bytes], compress: bool = False) -> Path:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return Path(path)


def weights_npz(path, spec_text: str | None = None, input_size=2, hidden=3) -> Path:
    """A valid .npz of LSTM weights; ``spec_text`` replaces its JSON spec."""
    rng = np.random.default_rng(0)
    arrays = {"W": rng.standard_normal((1, 4 * hidden, input_size)).astype(np.float32),
              "R": rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32)}
    if spec_text is not None:
        arrays["spec"] = np.array(spec_text)
    np.savez(path, **arrays)
    return Path(path)


# --- .keras ------------------------------------------------------------------------------

def keras_archive(path, units: int = 2, features: int = 3, tamper=None,
                  config: dict | None = None) -> Path:
    """A Keras 3 archive of Sequential([Input((None, features)), LSTM(units)]) written with
    json and h5py; ``tamper(h5)`` may change the weights file before it is zipped."""
    import h5py

    shape = [None, None, features]
    config = config or {  # as Keras 3.15 writes it, less the defaults
        "module": "keras", "class_name": "Sequential", "registered_name": None,
        "config": {"name": "sequential", "build_input_shape": shape, "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": shape, "dtype": "float32", "name": "input_layer"}},
            {"module": "keras.layers", "class_name": "LSTM", "registered_name": None,
             "config": {"name": "lstm", "units": units}, "build_config": {"input_shape": shape}}]},
        "build_config": {"input_shape": shape}}
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        group = h5.create_group("layers/lstm/cell/vars")
        group["0"] = rng.standard_normal((features, 4 * units)).astype(np.float32)
        group["1"] = rng.standard_normal((units, 4 * units)).astype(np.float32)
        group["2"] = rng.standard_normal((4 * units,)).astype(np.float32)
        h5.create_group("layers/lstm/vars")
        h5.create_group("vars")
        if tamper is not None:
            tamper(h5)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", buffer.getvalue())
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    return Path(path)


# --- bench reports -----------------------------------------------------------------------

def bench_report(path, runtimes=("ort-cpu",), samples=None) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for name in runtimes:
        s = samples if samples is not None else (1e6 * rng.lognormal(0, 0.05, 50)).astype(int).tolist()
        rows.append({"runtime": name, "batch": 1, "seq_len": 100, "threads": 2,
                     "latency_ms": {"median": 1.0}, "throughput": {}, "samples_ns": s})
    Path(path).write_text(json.dumps({"schema": "lstm-bench/bench/1", "results": rows}))
    return Path(path)
