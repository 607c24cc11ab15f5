"""Every LSTM layer judged alone (issue 20 item 2): each layer of a stack, an encoder and a
decoder at the steps each sees, the LSTMs inside If branches; per-layer drift in the verdict,
the JSON (every layer) and the tables (a line per layer); all layers of a runtime in one job of
its child process, a crash the error of its own layer alone."""

import json
import os
import signal

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cases import verify_file
from hostile import run_cli
from lstm_bench.bench.tables import verify_table
from lstm_bench.feeds import Given
from lstm_bench.model import Model, as_model
from lstm_bench.runtimes.numpy_rt import NumpyRuntime
from lstm_bench.runtimes.registry import make_factories
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify import isolate
from lstm_bench.verify.parity import compare
from lstm_bench.verify.report import VerifySummary
from lstm_bench.verify.run import VerifyPlan, verify
from lstm_bench.verify.verdict import DRIFT, ERROR, FAIL, PASS, Verdict

FLOAT = TensorProto.FLOAT


def _lstm(name, x, sizes, seed, initial=()):
    """(nodes, initializers, Y squeezed to [T, B, H], Y_h) of one LSTM node on ``x``."""
    weights = LSTMWeights.random(LSTMSpec(*sizes), seed=seed)
    inits = [numpy_helper.from_array(v, f"{name}_{k}") for k, v in weights.tensors().items()]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), f"{name}_axis"))
    states = list(initial) or ["", ""]
    nodes = [helper.make_node("LSTM", [x, f"{name}_W", f"{name}_R", f"{name}_B", "", *states],
                              [f"{name}_Y", f"{name}_Yh"], hidden_size=sizes[1], name=name),
             helper.make_node("Squeeze", [f"{name}_Y", f"{name}_axis"], [f"{name}_y"])]
    return nodes, inits, f"{name}_y", f"{name}_Yh"


def _save(path, nodes, inputs, outputs, inits):
    model = helper.make_model(helper.make_graph(nodes, path.stem, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _stack(folder):
    """Three stacked LSTMs (2 -> 4 -> 5 -> 6) whose output is the last one's Y_h."""
    nodes, inits, x = [], [], "x"
    for index, (sizes, seed) in enumerate((((2, 4), 1), ((4, 5), 2), ((5, 6), 3)), 1):
        more, weights, x, last = _lstm(f"l{index}", x, sizes, seed)
        nodes += more
        inits += weights
    nodes.append(helper.make_node("Identity", [last], ["h"]))
    return _save(folder / "stack.onnx", nodes,
                 [helper.make_tensor_value_info("x", FLOAT, ["seq", "batch", 2])],
                 [helper.make_tensor_value_info("h", FLOAT, [1, "batch", 6])], inits)


def _encoder_decoder(folder):
    """An encoder over src, a decoder over tgt started from the encoder's final state."""
    enc, enc_w, _, enc_h = _lstm("encoder", "src", (2, 4), 4)
    enc[0].output.append("encoder_Yc")
    dec, dec_w, y, _ = _lstm("decoder", "tgt", (3, 4), 5, ("encoder_Yh", "encoder_Yc"))
    return _save(folder / "encdec.onnx", enc + dec + [helper.make_node("Identity", [y], ["y"])],
                 [helper.make_tensor_value_info("src", FLOAT, ["src_len", "batch", 2]),
                  helper.make_tensor_value_info("tgt", FLOAT, ["tgt_len", "batch", 3])],
                 [helper.make_tensor_value_info("y", FLOAT, ["tgt_len", "batch", 4])],
                 enc_w + dec_w)


def _branches(folder, condition):
    """An If whose branches each run an LSTM over the outer x: ``condition`` "constant" (no
    input chooses: both run as far as verify can tell) or "sr" (an input chooses)."""
    def branch(tag, seed):
        nodes, inits, _, last = _lstm(f"{tag}_lstm", "x", (2, 4), seed)
        return helper.make_graph(nodes[:1], tag, [],
                                 [helper.make_tensor_value_info(last, FLOAT, [1, "batch", 4])],
                                 inits)

    inputs = [helper.make_tensor_value_info("x", FLOAT, ["seq", "batch", 2])]
    inits = []
    if condition == "sr":
        inputs.append(helper.make_tensor_value_info("sr", TensorProto.INT64, []))
        inits.append(numpy_helper.from_array(np.array(16000, np.int64), "k"))
        nodes = [helper.make_node("Equal", ["sr", "k"], ["cond"])]
    else:
        inits.append(numpy_helper.from_array(np.array(True), "cond"))
        nodes = []
    nodes.append(helper.make_node("If", ["cond"], ["h"], then_branch=branch("high", 6),
                                  else_branch=branch("low", 7)))
    return _save(folder / f"branches_{condition}.onnx", nodes, inputs,
                 [helper.make_tensor_value_info("h", FLOAT, [1, "batch", 4])], inits)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layers")
    return {"stack": _stack(folder), "encdec": _encoder_decoder(folder),
            "constant": _branches(folder, "constant"), "sr": _branches(folder, "sr")}


def _labels(verdict):
    return [(layer.label, layer.detail, layer.status) for layer in verdict.lstm_layers]


def test_every_layer_of_a_stack_is_judged_alone_in_one_job_per_runtime(files, monkeypatch):
    jobs = []
    call = isolate.Child.call

    def counted(self, func, *args, **kwargs):
        jobs.append(func.__name__)
        return call(self, func, *args, **kwargs)

    monkeypatch.setattr(isolate.Child, "call", counted)
    report = verify_file(files["stack"], ["ort-cpu", "numpy"], seq_len=12, streaming=False)
    for verdict in report.results:
        assert verdict.status == PASS
        assert _labels(verdict) == [(f"l{i} alone", "Y, batch 8, seq_len 12", PASS)
                                    for i in (1, 2, 3)]
    # ort-cpu runs in the child: its three layers are one job, not three
    assert jobs.count("_layers_judged_in_child") == 1
    assert jobs.count("_judged_in_child") == 1  # the model itself
    data = json.loads(json.dumps(report.to_dict()))
    assert [layer["label"] for layer in data["lstm_layers"]] == ["l1 alone", "l2 alone",
                                                                 "l3 alone"]
    assert [layer["seq_len"] for layer in data["lstm_layers"]] == [12, 12, 12]
    for row, verdict in zip(data["results"], report.results):
        assert len(row["lstm_layers"]) == 3 and row["lstm_layer"]["status"] == PASS
        assert Verdict.from_dict(row) == verdict  # every layer read back
    # bench's verify table: the runtime's line, then a line per layer
    rows = verify_table(VerifySummary.of(report)).rows
    assert [row.cells[0] for row in rows] == ["ort-cpu", "", "", "", "numpy", "", "", ""]
    assert rows[2].cells[5].startswith("LSTM layer l2 alone (Y, batch 8, seq_len 12): within")


def test_the_terminal_table_has_a_line_per_layer(files, capsys):
    rc, out, _ = run_cli(capsys, "verify", files["stack"], "--runtimes", "numpy",
                         "--seq-len", "5", "--no-streaming")
    assert rc == 0, out
    assert [line.split()[0] for line in out.splitlines() if " alone: Y " in line] == \
        ["l1", "l2", "l3"]


def test_an_encoder_and_a_decoder_are_judged_at_the_steps_each_sees(files):
    model = Model.load(files["encdec"]).with_given(Given({"src": (9, 2, 2), "tgt": (5, 2, 3)}))
    report = verify(model, VerifyPlan(make_factories(["numpy"]), streaming=False))
    assert _labels(report.results[0]) == [("encoder alone", "Y, batch 8, seq_len 9", PASS),
                                          ("decoder alone", "Y, batch 8, seq_len 5", PASS)]
    assert [layer["seq_len"] for layer in report.lstm_layers] == [9, 5]


def test_the_lstms_inside_if_branches_are_judged(files):
    both = verify_file(files["constant"], ["numpy"], seq_len=6, streaming=False)
    assert sorted(_labels(both.results[0])) == [
        ("high_lstm alone", "Y, batch 8, seq_len 6", PASS),
        ("low_lstm alone", "Y, batch 8, seq_len 6", PASS)]
    # a value that chooses the branch: the LSTM of the branch it takes
    model = Model.load(files["sr"]).with_given(Given(values={"sr": 8000}))
    chosen = verify(model, VerifyPlan(make_factories(["numpy"]), seq_len=6, streaming=False))
    assert _labels(chosen.results[0]) == [("low_lstm alone", "Y, batch 8, seq_len 6", PASS)]


def _judged(error):
    """A layer's verdict: Y off by ``error`` at one of two steps, at the int8 row."""
    return compare("rt", {"Y": np.float32([0.0, error])}, {"Y": np.array([0.0, 0.0])}, "int8",
                   {"Y": 0})


def test_a_drifting_middle_layer_is_named_by_the_verdict_and_the_reports():
    verdict = compare("rt", {"p": np.float32([0.5])}, {"p": np.array([0.5])}, "int8")
    for index, error in enumerate((0.01, 0.4, 0.02), 1):
        verdict = verdict.with_lstm_layer(_judged(error), f"l{index} alone",
                                          "Y, batch 8, seq_len 2")
    assert verdict.status == DRIFT and not verdict.failed
    assert [layer.status for layer in verdict.lstm_layers] == [PASS, FAIL, PASS]
    assert verdict.lstm_layer.label == "l2 alone"  # the one that decides
    assert verdict.layer_status == FAIL and verdict.layer_max_abs_error == pytest.approx(0.4)
    assert [f.output for f in verdict.failures] == ["l2 alone: Y"]
    assert "LSTM layer l2 alone's hidden states beyond it (max abs 0.4)" in verdict.statement()
    assert "the LSTM layer l2 alone's hidden states are beyond" in verdict.why_excluded()
    parts = verdict.sentence().split("; ")
    assert len(parts) == 4 and "l2 alone (Y, batch 8, seq_len 2): over that tolerance" in parts[2]
    data = json.loads(json.dumps(verdict.to_dict()))
    assert Verdict.from_dict(data) == verdict
    # a report written when verify judged one layer: its layer read back
    del data["lstm_layers"]
    assert [layer.label for layer in Verdict.from_dict(data).lstm_layers] == ["l2 alone"]


class SegfaultOnHidden5(NumpyRuntime):
    """Dies of SIGSEGV opening a model built in memory whose LSTM has hidden size 5."""

    name = "segfault-on-hidden-5"
    native_code = True

    def open(self, model, *, threads=None):
        model = as_model(model)
        if model.path is None and model.layer_sizes[0][1] == 5:
            os.kill(os.getpid(), signal.SIGSEGV)
        super().open(model, threads=threads)


def test_a_crash_on_one_layer_is_that_layers_error_and_the_others_are_judged(files):
    report = verify(Model.load(files["stack"]),
                    VerifyPlan({"crash": SegfaultOnHidden5}, seq_len=4, streaming=False))
    (verdict,) = report.results
    assert verdict.status == FAIL and verdict.model_ok
    assert [layer.status for layer in verdict.lstm_layers] == [PASS, ERROR, PASS]
    assert verdict.lstm_layer.reason == "crashed: SIGSEGV while opening l2 alone"
