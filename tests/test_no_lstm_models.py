"""Models without an LSTM node (issue 20 item 4): an nn.LSTMCell loop unrolled by the export,
verified as a whole graph against the float64 truth, benched without FLOPs, and compared live
with its LSTM-node twin (tests/zoo.py: ``cell_loop``, ``cell_twin``) at the length the unrolled
one fixes. A graph with no recurrence at all is still refused."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lstm_bench.bench.plan import sweep_shapes
from lstm_bench.errors import LSTMBenchError
from lstm_bench.model import Model

from hostile import QUICK, assert_bad_input, run_cli, save_model
from zoo import CELL_STEPS, ZOO, build_zoo

# live A/B timing kept short: a few paired blocks, a verdict either way
AB_QUICK = ["--span", "0", "--blocks", "3", "--min-time", "0", "--min-reps", "3",
            "--max-reps", "3", "--quiet"]


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("twins"), ["cell_loop", "cell_twin"])


def _ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_the_twins_compute_one_function_with_and_without_an_lstm_node(twins):
    loop, twin = ZOO["cell_loop"], ZOO["cell_twin"]
    feeds = loop.feeds()
    np.testing.assert_allclose(loop.expected(feeds)[0], twin.expected(feeds)[0], atol=1e-6)
    assert "LSTM" not in _ops(twins["cell_loop"]) and {"Sigmoid", "Tanh"} <= _ops(twins["cell_loop"])
    assert "LSTM" in _ops(twins["cell_twin"])
    # the same inputs at the same shape: what a live comparison feeds both
    a, b = (Model.load(twins[name]).feeds(1, CELL_STEPS) for name in ("cell_loop", "cell_twin"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_verify_judges_the_unrolled_cell_as_a_whole_graph(twins, tmp_path, capsys):
    report = tmp_path / "v.json"
    rc, out, err = run_cli(capsys, "verify", twins["cell_loop"], "--runtimes",
                           "ort-cpu,numpy,torch-cpu,ort-cpu-int8", "--json", report)
    assert rc == 0, out + err
    assert "no LSTM node, but Sigmoid/Tanh over MatMul/Gemm" in out
    assert "nothing to diagnose per layer" in out
    data = json.loads(report.read_text())
    assert data["inputs"]["seq_len"] == CELL_STEPS and data["lstm_layer"] is None
    assert data["summary"]["lstm_nodes"] == [] and "unrolled" in data["summary"]["no_lstm_node"]
    rows = {row["runtime"]: row for row in data["results"]}
    assert {row["status"] for row in rows.values()} == {"pass"}, rows
    assert not any(row.get("lstm_layer") for row in rows.values())
    # numpy, built around LSTM nodes, says what ran instead; torch-cpu runs the graph in torch
    assert any("runs the whole graph" in note for note in rows["numpy"]["notes"]), rows["numpy"]
    assert not any("ReferenceEvaluator" in note for note in rows["torch-cpu"]["notes"])
    assert "no LSTM node; " in rows["ort-cpu-int8"]["notes"][0]
    assert "weight values in int8" in rows["ort-cpu-int8"]["notes"][0]


def test_the_unrolled_length_is_the_only_one_fed(twins, capsys):
    for command in (["verify", twins["cell_loop"], "--runtimes", "ort-cpu"],
                    ["bench", twins["cell_loop"], "--runtimes", "ort-cpu", *QUICK]):
        assert_bad_input(run_cli(capsys, *command, "--seq-len", "32"),
                         f"fixes the sequence length at {CELL_STEPS}", "--seq-len 32")


def test_bench_times_it_with_no_flops_and_says_why(twins, tmp_path, capsys):
    report = tmp_path / "b.json"
    quick = [a for a in QUICK if a != "--no-calibrate"]  # calibration is skipped for it
    rc, out, err = run_cli(capsys, "bench", twins["cell_loop"], "--runtimes", "ort-cpu",
                           *quick, "--json", report)
    assert rc == 0, out + err
    data = json.loads(report.read_text())
    (row,) = data["results"]
    assert (row["batch"], row["seq_len"]) == (1, CELL_STEPS)
    assert row["flops"] is None and row["gflops"] is None and row["peak_share"] is None
    assert not data.get("calibration"), data.get("calibration")
    assert any("no FLOPs or % of peak" in note and "no LSTM node" in note
               for note in data["notes"]), data["notes"]


@pytest.mark.parametrize("order", ["lstm_first", "unrolled_first"])
def test_compare_lstm_node_against_unrolled_twin(twins, tmp_path, capsys, order):
    pair = [twins["cell_twin"], twins["cell_loop"]]
    if order == "unrolled_first":
        pair.reverse()
    out_json = tmp_path / "c.json"
    rc, out, err = run_cli(capsys, "compare", *pair, *AB_QUICK, "--json", out_json)
    assert rc in (0, 1), out + err
    data = json.loads(out_json.read_text())
    assert f"measured at seq_len {CELL_STEPS}, the length cell_loop.onnx fixes" in data["notes"]
    (change,) = data["changes"]  # one row, both models measured in it
    assert change["key"][:3] == ["ort-cpu", 1, CELL_STEPS], change
    assert change["verdict"] in ("regression", "slower", "faster", "within noise"), change
    assert change["base_median_ms"] and change["new_median_ms"], change


def test_compare_refuses_a_length_the_unrolled_twin_cannot_take(twins, capsys):
    assert_bad_input(run_cli(capsys, "compare", twins["cell_twin"], twins["cell_loop"],
                             "--seq-len", "32", *AB_QUICK),
                     f"cell_loop.onnx fixes the sequence length at {CELL_STEPS}")


def test_sweep_shapes_feed_every_model_the_length_one_fixes(twins):
    twin, loop = Model.load(twins["cell_twin"]), Model.load(twins["cell_loop"])
    assert sweep_shapes([twin])[0] == ((1, 100),)  # alone: its own default
    for models in ([twin, loop], [loop, twin]):
        shapes, notes = sweep_shapes(models)
        assert shapes == ((1, CELL_STEPS),) and len(notes) == 1
    with pytest.raises(LSTMBenchError, match="fixes the sequence length"):
        sweep_shapes([twin, loop], None, [32])


def _cell_graph(path, weight_as_input: bool = False):
    """MatMul -> Sigmoid -> Tanh (a cell step written out); the weight an initializer, or a
    graph input (no quantizer can make it int8)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 3], list(np.linspace(-1, 1, 9)))
    inputs = [x] + [helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 3])] * weight_as_input
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Sigmoid", ["a"], ["b"]),
             helper.make_node("Tanh", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "cell", inputs, [y],
                              initializer=[] if weight_as_input else [weight])
    return save_model(graph, path, opset=17)


def test_flops_are_absent_not_zero(tmp_path):
    model = Model.load(_cell_graph(tmp_path / "cell.onnx"))
    assert model.flops(1, 10) is None and "no FLOPs" in model.flops_note
    assert "nothing to diagnose per layer" in model.no_lstm_note


def test_int8_that_quantizes_nothing_is_a_skip_that_says_why(tmp_path, capsys):
    report = tmp_path / "v.json"
    rc, out, err = run_cli(capsys, "verify", _cell_graph(tmp_path / "cell.onnx", True),
                           "--runtimes", "ort-cpu,ort-cpu-int8", "--json", report)
    assert rc == 0, out + err
    rows = {row["runtime"]: row for row in json.loads(report.read_text())["results"]}
    assert rows["ort-cpu"]["status"] == "pass"
    assert rows["ort-cpu-int8"]["status"] == "skip"
    assert "no LSTM node, and the quantizer made none of its weights int8" in \
        rows["ort-cpu-int8"]["reason"]


def test_a_graph_with_no_recurrence_is_still_refused(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    relu = save_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]),
                      tmp_path / "relu.onnx", opset=17)
    for command in ("verify", "bench"):
        assert_bad_input(run_cli(capsys, command, relu, "--runtimes", "ort-cpu"),
                         "has no LSTM node", "torch.nn.LSTM")
