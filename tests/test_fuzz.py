"""Fuzzing the command line with malformed user files (issue 9, "What to build" 5).

Hypothesis generates malformed ONNX models, .keras archives, .npz files, checkpoints and bench
reports, and every case runs through the real CLI (``lstm_bench.cli.main`` in this process;
the memory bombs also as subprocesses under an address-space limit). The contract, checked on
every case:

- the exit code is 0, 1 or 2; nothing else escapes (no traceback, no SystemExit of another code);
- exit 2 prints exactly one line on stderr;
- no file outside the outputs the command names is created, changed or removed (the folder is
  snapshotted before and after);
- memory stays bounded: the peak resident set of this process grows by less than
  ``MEMORY_GROWTH_LIMIT`` over the whole fuzz run (and sizes above LSTM_BENCH_MAX_ARRAY_MB,
  set to 256 here, are refused before allocating).

Default run (CI): a few dozen cases per file kind, about 30 s on 2 cores. Longer:

    LSTM_BENCH_FUZZ=long python -m pytest tests/test_fuzz.py -p no:cacheprovider -s

(``LSTM_BENCH_FUZZ_EXAMPLES=N`` sets the cases per test directly.) The number of cases run and
of contract violations is printed at the end of the module's run (use -s or -rA to see it).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz suite needs hypothesis "
                                 "(pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hostile import keras_archive, npy_bytes, snapshot  # noqa: E402
from lstm_bench import seed  # noqa: E402
from lstm_bench.cli import main  # noqa: E402

_LONG = os.environ.get("LSTM_BENCH_FUZZ") == "long"
EXAMPLES = int(os.environ.get("LSTM_BENCH_FUZZ_EXAMPLES", 1000 if _LONG else 0)) or None
MEMORY_GROWTH_LIMIT = 2 * 2 ** 30  # bytes of peak RSS the whole fuzz run may add
ARRAY_LIMIT_MB = "256"
SHIPPED = seed.shipped_checkpoint()

settings.register_profile("lstm-bench-fuzz", deadline=None, database=None, derandomize=not _LONG,
                          suppress_health_check=list(HealthCheck), print_blob=True)
settings.load_profile("lstm-bench-fuzz")

STATS = {"cases": 0, "violations": 0, "by_exit": {0: 0, 1: 0, 2: 0}}


def examples(default: int):
    return settings(max_examples=EXAMPLES or default)


@pytest.fixture(scope="module", autouse=True)
def fuzz_environment(request):
    """Limits low enough that a generated size is refused rather than allocated; the summary
    of the run at the end."""
    saved = os.environ.get("LSTM_BENCH_MAX_ARRAY_MB")
    os.environ["LSTM_BENCH_MAX_ARRAY_MB"] = ARRAY_LIMIT_MB
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    if saved is None:
        os.environ.pop("LSTM_BENCH_MAX_ARRAY_MB", None)
    else:
        os.environ["LSTM_BENCH_MAX_ARRAY_MB"] = saved
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (f"fuzz: {STATS['cases']} generated cases run, {STATS['violations']} contract "
            f"violations; exit codes {STATS['by_exit']}; peak RSS grew {growth / 2 ** 20:.0f} MiB")
    if reporter is not None:
        reporter.write_line(line)
    assert growth < MEMORY_GROWTH_LIMIT, line


def check_contract(argv, folder: Path, outputs=()) -> int:
    """Run ``lstm-bench ARGV`` in-process and assert the contract; returns the exit code."""
    before = snapshot(folder)
    out, err = io.StringIO(), io.StringIO()
    STATS["cases"] += 1
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main([str(a) for a in argv])
            except SystemExit as exc:  # argparse's usage errors: exit 2 too
                rc = exc.code
        problems = []
        if rc not in (0, 1, 2):
            problems.append(f"exit code {rc}")
        text = err.getvalue()
        if "Traceback" in text:
            problems.append("a traceback")
        if rc == 2 and len(text.strip().splitlines()) != 1:
            problems.append(f"{len(text.strip().splitlines())} lines on stderr")
        after = snapshot(folder)
        allowed = {str(Path(o).relative_to(folder)) for o in outputs}
        touched = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        if touched - allowed:
            problems.append(f"files touched outside the outputs: {sorted(touched - allowed)}")
        if rc == 2 and touched & allowed:  # exit 1 is a verdict: its report is wanted
            problems.append(f"a refused command wrote {sorted(touched & allowed)}")
    except BaseException as exc:  # an exception escaping main() is a violation too
        STATS["violations"] += 1
        raise AssertionError(f"{argv}: {type(exc).__name__} escaped: {exc}") from exc
    if problems:
        STATS["violations"] += 1
        raise AssertionError(f"{argv}: {'; '.join(problems)}\nstderr: {text[-2000:]}")
    STATS["by_exit"][rc] += 1
    return rc


@contextlib.contextmanager
def workdir():
    with tempfile.TemporaryDirectory(prefix="lstm-bench-fuzz-") as name:
        yield Path(name)


# --- generators ---------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(["", "x", "[/bold]", "model[v2]", "[red]", "\n", "é", "a" * 300,
                            "../etc", "batch", "seq", "T", "N"])
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                         st.floats(allow_nan=False), ODD_TEXT, st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    """Truncate, flip or splice bytes of a valid file."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "garbage"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if kind == "garbage":
        return draw(st.binary(max_size=256))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        else:
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(buf)


def _tiny_model_bytes() -> bytes:
    from lstm_bench.exporters.weights import export_weights
    from lstm_bench.spec import LSTMSpec, LSTMWeights

    with workdir() as folder:
        export_weights(LSTMWeights.random(LSTMSpec(input_size=2, hidden_size=3)),
                       folder / "tiny.onnx")
        return (folder / "tiny.onnx").read_bytes()


TINY = _tiny_model_bytes()


@st.composite
def structural_onnx(draw) -> bytes:
    """The tiny LSTM model with one structural change a hostile file could make."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(TINY)
    graph = model.graph
    kind = draw(st.sampled_from(["dim", "dim_param", "op_type", "drop_initializer",
                                 "attribute", "elem_type", "output_name", "huge_initializer",
                                 "constant_of_shape", "input_default", "opset"]))
    dim = graph.input[0].type.tensor_type.shape.dim[draw(st.integers(0, 2))]
    if kind == "dim":
        dim.dim_value = draw(st.sampled_from([0, 1, 7, 10 ** 6, 10 ** 12, 2 ** 62]))
    elif kind == "dim_param":
        dim.dim_param = draw(ODD_TEXT)
    elif kind == "op_type":
        graph.node[0].op_type = draw(st.sampled_from(["GRU", "Loop", "Foo", "ConstantOfShape",
                                                      "Relu", ""]))
    elif kind == "drop_initializer" and len(graph.initializer):
        del graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
    elif kind == "attribute":
        graph.node[0].attribute.append(helper.make_attribute(
            draw(st.sampled_from(["hidden_size", "clip", "direction", "layout", "input_forget",
                                  "activations"])),
            draw(st.one_of(st.integers(-3, 10 ** 9), st.floats(allow_nan=True),
                           st.sampled_from(["reverse", "sideways"]),
                           st.lists(st.sampled_from(["Tanh", "Nope"]), min_size=1, max_size=4)))))
    elif kind == "elem_type":
        graph.input[0].type.tensor_type.elem_type = draw(st.sampled_from(
            [TensorProto.STRING, TensorProto.INT8, TensorProto.DOUBLE, TensorProto.BOOL, 0]))
    elif kind == "output_name":
        graph.output[0].name = draw(ODD_TEXT)
    elif kind == "huge_initializer":
        tensor = graph.initializer[0]
        tensor.dims[0] = draw(st.sampled_from([10 ** 6, 10 ** 12, 0]))
    elif kind == "constant_of_shape":
        size = draw(st.sampled_from([10, 10 ** 5, 10 ** 9]))
        graph.initializer.append(numpy_helper.from_array(np.array([size, size], np.int64), "S"))
        graph.node.append(helper.make_node("ConstantOfShape", ["S"], ["big"]))
        graph.output.append(helper.make_tensor_value_info("big", TensorProto.FLOAT, None))
    elif kind == "input_default":
        graph.initializer.append(numpy_helper.from_array(
            np.ones([draw(st.integers(1, 3)) for _ in range(3)], np.float32), graph.input[0].name))
    else:
        model.opset_import[0].version = draw(st.sampled_from([1, 7, 13, 99]))
    return model.SerializeToString()


@given(data=st.one_of(structural_onnx(), byte_mutation(TINY)),
       command=st.sampled_from(["verify", "verify-batch", "bench"]))
@examples(30)
def test_fuzz_onnx_models(data, command):
    with workdir() as folder:
        model = folder / "m[1].onnx"
        model.write_bytes(data)
        report = folder / "r.json"
        if command == "bench":
            argv = ["bench", model, "--runtimes", "ort-cpu,numpy", "--min-time", "0.001",
                    "--min-reps", "1", "--max-reps", "2", "--no-calibrate", "--quiet",
                    "--json", report]
        else:
            argv = ["verify", model, "--runtimes", "numpy,ort-cpu,onnx-reference",
                    "--no-streaming", "--json", report]
            if command == "verify-batch":
                argv += ["--batch", "3", "--seq-len", "4"]
        check_contract(argv, folder, outputs=[report])


@st.composite
def invalid_onnx(draw) -> bytes:
    """The tiny LSTM model made invalid in one or two ways that still parse (issue 18): each
    must be refused as bad input (exit 2) before anything runs, never judged."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(TINY)
    graph = model.graph
    lstm = graph.node[0]
    for kind in draw(st.lists(st.sampled_from([
            "second_initializer", "constant_shadow", "output_shadows_input", "node_names",
            "output_twice", "output_is_input", "opset", "ir_version", "output_type",
            "float_attribute", "input_dim", "undefined_input", "no_default_opset"]),
            min_size=1, max_size=2)):
        name = draw(st.sampled_from([t.name for t in graph.initializer]))
        if kind == "second_initializer":
            tensor = next(t for t in graph.initializer if t.name == name)
            array = numpy_helper.to_array(tensor) * draw(st.sampled_from([1, 2]))
            graph.initializer.append(numpy_helper.from_array(array, name))
        elif kind == "constant_shadow":
            graph.node.append(helper.make_node("Constant", [], [name], value_float=1.0))
        elif kind == "output_shadows_input":
            graph.node.append(helper.make_node("Identity", [graph.output[1].name],
                                               [graph.input[0].name]))
        elif kind == "node_names":
            lstm.name = "n"
            graph.node.append(helper.make_node("Identity", [graph.output[1].name], ["Z"], name="n"))
            graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, [1, "b", 3]))
        elif kind == "output_twice":
            graph.output.append(graph.output[draw(st.integers(0, len(graph.output) - 1))])
        elif kind == "output_is_input":
            graph.output.append(graph.input[0])
        elif kind == "opset":
            model.opset_import[0].version = draw(st.sampled_from([1, 5, 6, 40, 99, 2 ** 40]))
        elif kind == "ir_version":
            model.ir_version = draw(st.sampled_from([0, 1, 2, 99, 2 ** 40]))
        elif kind == "output_type":
            graph.output[draw(st.integers(0, len(graph.output) - 1))].type.tensor_type.elem_type = (
                draw(st.sampled_from([TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL,
                                      TensorProto.STRING])))
        elif kind == "float_attribute":
            attr = draw(st.sampled_from(["activation_alpha", "activation_beta", "clip"]))
            bad = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
            lstm.attribute.append(helper.make_attribute(
                attr, bad if attr == "clip" else [bad, 1.0, 1.0]))
        elif kind == "input_dim":
            dim = graph.input[0].type.tensor_type.shape.dim[draw(st.integers(0, 2))]
            dim.Clear()
            dim.dim_value = draw(st.sampled_from([0, -1, -3, -(2 ** 40)]))
        elif kind == "undefined_input":
            lstm.input[draw(st.integers(0, len(lstm.input) - 1))] = "nowhere"
        else:
            del model.opset_import[:]
            model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    return model.SerializeToString()


@given(data=invalid_onnx(), command=st.sampled_from(["verify", "bench"]))
@examples(30)
def test_fuzz_invalid_models_are_bad_input(data, command):
    with workdir() as folder:
        model = folder / "m.onnx"
        model.write_bytes(data)
        report = folder / "r.json"
        argv = ([command, model, "--runtimes", "numpy,ort-cpu", "--json", report]
                + (["--no-streaming"] if command == "verify" else
                   ["--min-time", "0.001", "--min-reps", "1", "--max-reps", "2",
                    "--no-calibrate", "--quiet", "--no-history"]))
        assert check_contract(argv, folder, outputs=[report]) == 2, "an invalid model was run"


@st.composite
def keras_files(draw, folder: Path) -> Path:
    path = folder / "m.keras"
    kind = draw(st.sampled_from(["config", "units", "tamper", "bytes", "members"]))
    if kind == "config":
        layers = [{"class_name": draw(st.sampled_from(["InputLayer", "LSTM", "Dense", "GRU",
                                                       "Bidirectional", "Lambda"])),
                   "config": draw(st.one_of(JSON_VALUES, st.fixed_dictionaries(
                       {"name": ODD_TEXT, "units": JSON_SCALARS})))}
                  for _ in range(draw(st.integers(0, 3)))]
        config = {"class_name": draw(st.sampled_from(["Sequential", "Functional", "Foo"])),
                  "config": draw(st.one_of(JSON_VALUES, st.just({"layers": layers})))}
        return keras_archive(path, config=config)
    if kind == "units":
        return keras_archive(path, units=2, config={"class_name": "Sequential", "config": {
            "layers": [{"class_name": "InputLayer", "config": {
                "batch_shape": draw(st.lists(st.one_of(st.none(), st.integers(-1, 10 ** 9)),
                                             max_size=4)), "name": draw(ODD_TEXT)}},
                {"class_name": "LSTM", "config": {"name": "lstm",
                                                  "units": draw(JSON_SCALARS)}}]}})
    if kind == "tamper":
        which = draw(st.sampled_from(["0", "1", "2"]))
        shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=3)))
        dtype = draw(st.sampled_from(["f4", "f8", "i4", "S3", "f2"]))
        external = draw(st.booleans())

        def tamper(h5):
            del h5[f"layers/lstm/cell/vars/{which}"]
            if external:
                h5["layers/lstm/cell/vars"].create_dataset(
                    which, shape=(8,), dtype="f4", external=[(str(folder / "outside"), 0, 32)])
            else:
                h5["layers/lstm/cell/vars"].create_dataset(which, shape=shape, dtype=dtype)

        return keras_archive(path, tamper=tamper)
    keras_archive(path)
    if kind == "bytes":
        path.write_bytes(draw(byte_mutation(path.read_bytes())))
    else:  # drop or duplicate members
        with zipfile.ZipFile(path) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        keep = draw(st.lists(st.sampled_from(sorted(members)), max_size=4))
        with zipfile.ZipFile(path, "w") as archive:
            for name in keep:
                archive.writestr(name, members[name])
    return path


@given(data=st.data())
@examples(25)
def test_fuzz_keras_archives(data):
    with workdir() as folder:
        (folder / "outside").write_bytes(b"not weights" * 4)
        path = data.draw(keras_files(folder))
        check_contract(["export", path, "-o", folder / "o.onnx"], folder,
                       outputs=[folder / "o.onnx"])


NPY_DTYPES = st.sampled_from(["<f4", "<f8", "<i4", "|b1", "<c8", "<U3", "|O", ">f4", "<f2"])


@st.composite
def npz_members(draw) -> dict[str, bytes]:
    members = {}
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(["W.npy", "R.npy", "B.npy", "P.npy", "spec.npy", "X.npy",
                                     "x", "../W.npy", "dir/", "W.npy"]))
        kind = draw(st.sampled_from(["array", "lying", "garbage"]))
        if kind == "array":
            shape = tuple(draw(st.lists(st.integers(0, 12), max_size=3)))
            array = np.asarray(draw(st.one_of(
                st.just(np.ones(shape, np.float32)),
                st.just(np.full(shape, np.nan, np.float32)),
                st.just(np.zeros(shape, np.int64)),
                st.just(np.array(json.dumps(draw(JSON_VALUES))))))
            )
            buf = io.BytesIO()
            np.save(buf, array, allow_pickle=False)
            members[name] = buf.getvalue()
        elif kind == "lying":
            shape = tuple(draw(st.lists(st.integers(0, 10 ** 7), max_size=3)))
            members[name] = npy_bytes(shape, draw(NPY_DTYPES),
                                      draw(st.binary(max_size=64)))
        else:
            members[name] = draw(st.binary(max_size=64))
    return members


@given(members=npz_members(), compress=st.booleans(), target=st.sampled_from(["export", "inputs"]))
@examples(40)
def test_fuzz_npz_files(members, compress, target):
    with workdir() as folder:
        path = folder / "f.npz"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        if target == "export":
            check_contract(["export", path, "-o", folder / "o.onnx"], folder,
                           outputs=[folder / "o.onnx"])
        else:
            model = folder / "m.onnx"
            model.write_bytes(TINY)
            check_contract(["verify", model, "--inputs", path, "--runtimes", "numpy",
                            "--no-streaming"], folder)


@given(change=st.dictionaries(st.sampled_from(["format", "format_version", "architecture",
                                               "seed", "task"]), JSON_VALUES, max_size=2),
       pt=st.one_of(st.none(), byte_mutation(SHIPPED.read_bytes())),
       raw_json=st.one_of(st.none(), st.binary(max_size=64), st.just(b"[" * 50000)))
@examples(25)
def test_fuzz_checkpoints(change, pt, raw_json):
    """Checkpoints through ``verify --source`` (the load and the match against the model; the
    tiny model never matches, so a loadable checkpoint ends in exit 2 too, quickly)."""
    with workdir() as folder:
        (folder / "c.pt").write_bytes(SHIPPED.read_bytes() if pt is None else pt)
        config = json.loads(SHIPPED.with_suffix(".json").read_text())
        (folder / "c.json").write_bytes(raw_json if raw_json is not None
                                        else json.dumps({**config, **change}).encode())
        model = folder / "m.onnx"
        model.write_bytes(TINY)
        check_contract(["verify", model, "--source", folder / "c.pt", "--runtimes", "numpy",
                        "--no-streaming"], folder)


ROW_KEYS = ["runtime", "batch", "seq_len", "threads", "latency_ms", "throughput", "samples_ns"]


@st.composite
def reports(draw) -> bytes:
    kind = draw(st.sampled_from(["json", "rows", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    rows = []
    for _ in range(draw(st.integers(0, 3))):
        row = {"runtime": "ort-cpu", "batch": 1, "seq_len": 100, "threads": 2,
               "latency_ms": {"median": 1.0}, "throughput": {},
               "samples_ns": draw(st.lists(st.integers(0, 10 ** 9), min_size=1, max_size=30))}
        for key in draw(st.lists(st.sampled_from(ROW_KEYS), max_size=2)):
            row[key] = draw(JSON_VALUES)
        rows.append(row)
    doc = {"schema": "lstm-bench/bench/1", "results": rows,
           "machine": draw(st.one_of(st.just({"cpu": "[/x]"}), JSON_VALUES)),
           "peak_gflops": draw(JSON_SCALARS)}
    return json.dumps(doc).encode()


@given(base=reports(), new=reports(), fail_above=st.sampled_from(["5", "0", "-1", "nan", "x"]))
@examples(40)
def test_fuzz_bench_reports(base, new, fail_above):
    with workdir() as folder:
        (folder / "base.json").write_bytes(base)
        (folder / "new.json").write_bytes(new)
        check_contract(["compare", folder / "base.json", folder / "new.json", "--fail-above",
                        fail_above], folder)


# --- crafted reports and history rows (issue 18): each read through its layout -----------

def _deep(levels: int):
    value = []
    for _ in range(levels):
        value = [value]
    return value


REPORT_VALUES = st.one_of(
    JSON_VALUES, st.sampled_from([r"$\foo$", "$x^$", "\x1b[2J\x1b[31mall passed", "\u202ex",
                                  "a" * 70_000, -1, 0, 2 ** 62, 1e308, "pass", "streaming"]),
    st.integers(33, 950).map(_deep))


def mutated(data, doc):
    """``doc`` with one to three values, found by a random walk down from the top, replaced
    (odd text, another type, deep nesting) or removed."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        parent, key, node = None, None, doc
        while isinstance(node, (dict, list)) and node and (
                parent is None or data.draw(st.integers(0, 3))):
            key = data.draw(st.sampled_from(list(node) if isinstance(node, dict)
                                            else range(len(node))))
            parent, node = node, node[key]
        if parent is None:
            continue
        if isinstance(parent, dict) and data.draw(st.integers(0, 4)) == 0:
            del parent[key]
        else:
            parent[key] = data.draw(REPORT_VALUES)
    return doc


BENCH_FAST = ["--runtimes", "numpy", "--seq-len", "3", "--span", "0", "--blocks", "4",
              "--min-time", "0", "--min-reps", "4", "--no-calibrate", "--quiet", "--no-history"]


@pytest.fixture(scope="module")
def written_reports():
    """A verify report and a bench report of the tiny model, as lstm-bench writes them."""
    with workdir() as folder:
        (folder / "m.onnx").write_bytes(TINY)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["verify", str(folder / "m.onnx"), "--runtimes", "numpy,ort-cpu",
                         "--no-streaming", "--json", str(folder / "v.json")]) == 0
            assert main(["bench", str(folder / "m.onnx"), *BENCH_FAST, "--verify-json",
                         str(folder / "v.json"), "--json", str(folder / "r.json")]) == 0
        return {name: json.loads((folder / f"{name}.json").read_text()) for name in "vr"}


@given(data=st.data())
@examples(15)
def test_fuzz_crafted_verify_reports(data, written_reports):
    """`bench --verify-json` on a verify report with fields replaced: refused up front, or
    measured and drawn (HTML plots) without a traceback."""
    with workdir() as folder:
        (folder / "m.onnx").write_bytes(TINY)
        (folder / "v.json").write_text(json.dumps(mutated(data, written_reports["v"])))
        check_contract(["bench", folder / "m.onnx", *BENCH_FAST, "--verify-json",
                        folder / "v.json", "--allow-different-models", "--html",
                        folder / "r.html"], folder, outputs=[folder / "r.html"])


@given(data=st.data())
@examples(20)
def test_fuzz_crafted_bench_reports(data, written_reports):
    """`compare` of a bench report with one with fields replaced, every format written."""
    with workdir() as folder:
        (folder / "base.json").write_text(json.dumps(written_reports["r"]))
        (folder / "new.json").write_text(json.dumps(mutated(data, written_reports["r"])))
        outputs = [folder / "c.json", folder / "c.md", folder / "c.html"]
        check_contract(["compare", folder / "base.json", folder / "new.json",
                        "--allow-different-models", "--allow-different-machines",
                        *[a for o in outputs for a in (f"--{o.suffix[1:]}", o)]], folder,
                       outputs)


HISTORY_COLUMNS = {"results": ["runtime", "mode", "chunk", "batch", "seq_len", "threads", "row"],
                   "runs": ["recorded", "git_commit", "versions", "model_sha256",
                            "model_path", "cpu"]}
SQL_VALUES = st.one_of(st.none(), st.integers(-2 ** 63, 2 ** 63 - 1), st.floats(),
                       st.binary(max_size=8), ODD_TEXT, REPORT_VALUES.filter(
                           lambda v: isinstance(v, str)))


@given(data=st.data())
@examples(20)
def test_fuzz_crafted_history_rows(data):
    """`history --html` on a database whose rows hold what another program (or a hand) may
    put there: values of any type in any column, result rows' JSON with fields replaced."""
    from lstm_bench.bench import history
    from test_history import report

    with workdir() as folder:
        db = folder / "h.sqlite"
        for seed in (1, 2):
            history.record(report(1.0, seed, "c"), db, "bench")
        table = data.draw(st.sampled_from(sorted(HISTORY_COLUMNS)))
        column = data.draw(st.sampled_from(HISTORY_COLUMNS[table]))
        with contextlib.closing(sqlite3.connect(db)) as con, con:
            if column == "row":
                (row,) = con.execute("SELECT row FROM results LIMIT 1").fetchone()
                value = json.dumps(mutated(data, json.loads(row)))
            else:
                value = data.draw(SQL_VALUES)
            try:
                con.execute(f"UPDATE {table} SET {column} = ? WHERE id = 1", (value,))
            except sqlite3.IntegrityError:  # NOT NULL: SQLite itself keeps that out
                return
        check_contract(["history", "--db", db, "--html", folder / "h.html"], folder,
                       [folder / "h.html"])


# --- the memory bombs, as subprocesses under an address-space limit ----------------------

def _limited(argv, folder, limit_gb=8):
    """``lstm-bench ARGV`` in a child whose address space is capped (so a bomb that got
    through would end in MemoryError or a kill, not in a machine out of memory)."""
    def cap():
        limit = limit_gb * 2 ** 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    before = snapshot(folder)
    proc = subprocess.run([sys.executable, "-m", "lstm_bench.cli", *map(str, argv)], cwd=folder,
                          capture_output=True, text=True, timeout=300, preexec_fn=cap)
    STATS["cases"] += 1
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert snapshot(folder) == before
    STATS["by_exit"][2] += 1
    return proc.stderr


def _zeros_member(path, name, mib, head=b""):
    """A deflated zip member of ``mib`` MiB of zeros (a few hundred KB on disk), streamed."""
    chunk = b"\0" * 2 ** 20
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            member.write(head)
            for _ in range(mib):
                member.write(chunk)


def test_memory_bombs_in_a_memory_capped_subprocess(tmp_path):
    _zeros_member(tmp_path / "bomb.npz", "W.npy", 300, npy_bytes((1, 75 * 2 ** 20, 1)))
    shutil.copy(SHIPPED.with_suffix(".json"), tmp_path / "c.json")
    _zeros_member(tmp_path / "c.pt", "c/data/0", 64)
    assert (tmp_path / "bomb.npz").stat().st_size < 2 * 2 ** 20
    # in-process, tests/test_safety.py covers each bomb; here two of them run as a user would
    for argv, contains in [
        (["export", "bomb.npz", "-o", "x.onnx"], "LSTM_BENCH_MAX_ARRAY_MB"),
        (["export", "c.pt", "-o", "x.onnx"], "declares"),
    ]:
        assert contains in _limited(argv, tmp_path)
