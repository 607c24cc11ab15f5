"""Streaming any model whose state leaves and re-enters the graph (issue 20 item 1): state pairs
found by name and confirmed by the graph, or given with --state IN=OUT; chunks of the model's
own frames; every layer's state carried. Streaming parity (verify) and `bench --streaming`."""

import json
from dataclasses import asdict

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lstm_bench.bench.streaming import StreamingRuntime, streaming_model
from lstm_bench.feeds import Given
from lstm_bench.model import Model
from lstm_bench.runtimes.registry import RUNTIMES
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.state_pairs import names_pair
from lstm_bench.verify.streaming import StreamPorts, stream_ports, streaming_parity

from hostile import QUICK, assert_bad_input, run_cli
from zoo import build_zoo

I, H = 3, 4
VAD = Given(values={"sr": 16000})


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("zoo"),
                     ["kws_state", "packed_state_vad", "stacked_state"])


def _model(nodes, inputs, outputs, extra=()):
    """A model of ``nodes`` around LSTM weights W, R, B (``I`` -> ``H``), and ``extra``
    initializers."""
    weights = LSTMWeights.random(LSTMSpec(input_size=I, hidden_size=H), seed=0)
    inits = [numpy_helper.from_array(v.astype(np.float32), n)
             for n, v in weights.tensors().items()] + list(extra)
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _value(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _renamed(state_in=("a", "b"), state_out=("p", "q"), swap=False):
    """x [seq, batch, I] and two states through Identity into one LSTM; its Y_h / Y_c out
    through Identity (``swap``: each under the other's name)."""
    h0, c0 = state_in
    hn, cn = reversed(state_out) if swap else state_out
    nodes = [helper.make_node("Identity", [h0], ["h0_"]),
             helper.make_node("Identity", [c0], ["c0_"]),
             helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0_", "c0_"], ["y", "Yh", "Yc"],
                              hidden_size=H),
             helper.make_node("Identity", ["Yh"], [hn]), helper.make_node("Identity", ["Yc"], [cn])]
    state = [1, "batch", H]
    return _model(nodes, [_value("x", "seq", "batch", I), _value(h0, *state), _value(c0, *state)],
                  [_value("y", "seq", 1, "batch", H), _value(state_out[0], *state),
                   _value(state_out[1], *state)])


def _conv_front_end(pads=0, window=8, hop=4):
    """audio [batch, samples] -> Conv (window, hop) -> LSTM, its state packed [2, batch, H]
    (state -> state_out); y [frames, batch, H] per frame."""
    rng = np.random.default_rng(5)
    consts = {"kernel": rng.uniform(-0.5, 0.5, (I, 1, window)).astype(np.float32),
              "axis1": np.array([1], np.int64), "zero": np.array([0], np.int64),
              "one": np.array([1], np.int64), "two": np.array([2], np.int64)}
    nodes = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(v, name))
             for name, v in consts.items()]
    nodes += [helper.make_node("Unsqueeze", ["audio", "axis1"], ["x1"]),
              helper.make_node("Conv", ["x1", "kernel"], ["frames"], kernel_shape=[window],
                               strides=[hop], pads=[pads, pads]),
              helper.make_node("Transpose", ["frames"], ["X"], perm=[2, 0, 1]),
              helper.make_node("Slice", ["state", "zero", "one", "zero"], ["h0"]),
              helper.make_node("Slice", ["state", "one", "two", "zero"], ["c0"]),
              helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y", "Yh", "Yc"],
                               hidden_size=H),
              helper.make_node("Squeeze", ["Y", "axis1"], ["y"]),
              helper.make_node("Concat", ["Yh", "Yc"], ["state_out"], axis=0)]
    return _model(nodes, [_value("audio", "batch", "samples"), _value("state", 2, "batch", H)],
                  [_value("y", "frames", "batch", H), _value("state_out", 2, "batch", H)])


def _per_layer():
    """Two stacked LSTMs, one pair of state inputs and outputs per layer (h_in_0 -> h_out_0,
    ...), each through Identity: found by name, layer by layer."""
    nodes, layer_x = [], "x"
    for layer in (0, 1):
        w = "" if layer == 0 else "2"
        nodes += [helper.make_node("Identity", [f"{s}_in_{layer}"], [f"{s}{layer}"])
                  for s in ("h", "c")]
        nodes += [helper.make_node("LSTM", [layer_x, f"W{w}", f"R{w}", f"B{w}", "", f"h{layer}",
                                            f"c{layer}"], [f"Y{layer}", f"Yh{layer}", f"Yc{layer}"],
                                   hidden_size=H),
                  helper.make_node("Squeeze", [f"Y{layer}", "one"], [f"X{layer}"])]
        nodes += [helper.make_node("Identity", [f"Y{s}{layer}"], [f"{s}_out_{layer}"])
                  for s in ("h", "c")]
        layer_x = f"X{layer}"
    second = LSTMWeights.random(LSTMSpec(input_size=H, hidden_size=H), seed=1)
    extra = [numpy_helper.from_array(v.astype(np.float32), f"{n}2")
             for n, v in second.tensors().items()]
    state = [1, "batch", H]
    names = [f"{s}_in_{layer}" for layer in (0, 1) for s in ("h", "c")]
    return _model(nodes, [_value("x", "seq", "batch", I)] + [_value(n, *state) for n in names],
                  [_value("X1", "seq", "batch", H)]
                  + [_value(n.replace("_in_", "_out_"), *state) for n in names],
                  extra + [numpy_helper.from_array(np.array([1], np.int64), "one")])


class Forgetful:
    """A runtime that drops the state it is given: every call starts from zeros."""

    def __init__(self, runtime, states):
        self.runtime, self.states, self.name = runtime, states, runtime.name

    def run(self, feeds):
        return self.runtime.run({k: np.zeros_like(v) if k in self.states else v
                                 for k, v in feeds.items()})


def _parity(path_or_model, given=Given(), runtime="ort-cpu", batch=2, steps=20, forget=()):
    model = (Model.load(path_or_model) if not isinstance(path_or_model, onnx.ModelProto)
             else Model.built(path_or_model)).with_given(given)
    feeds = model.feeds(batch, steps, seed=1)
    opened = RUNTIMES[runtime]()
    opened.open(model)
    try:
        return streaming_parity(Forgetful(opened, forget) if forget else opened, model, feeds)
    finally:
        opened.close()


# --- state pairs: by name, confirmed by the graph -----------------------------------------

@pytest.mark.parametrize("state_in, state_out", [
    ("h0", "hn"), ("c0", "cn"), ("state", "stateN"), ("initial_h", "Y_h"), ("h_in", "h_out"),
    ("hidden", "hidden_out"), ("hx", "hy"), ("past_state", "present_state"), ("h", "h_new"),
    ("h0_l1", "hn_l1"), ("state_in_1", "state_out_1"), ("h_0", "h_n")])
def test_names_pair(state_in, state_out):
    assert names_pair(state_in, state_out)


@pytest.mark.parametrize("state_in, state_out", [
    ("x", "y"), ("h0", "cn"), ("state", "output"), ("h0", "h0"), ("initial_h", "Y_c"),
    ("h0_l0", "hn_l1"), ("h_0", "h_1"), ("in", "out")])
def test_names_do_not_pair(state_in, state_out):
    assert not names_pair(state_in, state_out)


@pytest.mark.parametrize("name, given, pairs, sequence, frames", [
    ("kws_state", Given(), (("h0", "hn"), ("c0", "cn")), (("x", 1),), (1, 1)),
    ("stacked_state", Given(), (("h0", "hn"), ("c0", "cn")), (("x", 1),), (1, 1)),
    ("packed_state_vad", VAD, (("state", "stateN"),), (("input", 1),), (64, 32)),
    ("packed_state_vad", Given(values={"sr": 8000}), (("state", "stateN"),), (("input", 1),),
     (32, 16)),
])
def test_ports_of_the_zoo(zoo, name, given, pairs, sequence, frames):
    ports, reason = stream_ports(Model.load(zoo[name]).with_given(given))
    assert reason is None
    assert ports.states == pairs and ports.sequence == sequence
    assert (ports.window, ports.hop) == frames and ports.uncuttable is None
    assert StreamPorts(**asdict(ports)) == ports  # what a worker process rebuilds
    if name == "packed_state_vad":  # a classifier on the last h: compared at the last call
        assert ports.final == ("output",)


def test_names_that_do_not_pair_say_which_state_to_give():
    model = Model.built(_renamed())
    ports, reason = stream_ports(model)
    assert ports is None
    assert "--state a=p" in reason and "--state b=q" in reason, reason
    ports, reason = stream_ports(model.with_given(Given(states=(("a", "p"), ("b", "q")))))
    assert reason is None and ports.states == (("a", "p"), ("b", "q"))
    assert _parity(model.proto, Given(states=(("a", "p"), ("b", "q")))).status == "pass"


def test_a_name_pair_the_graph_contradicts_is_not_used():
    """hn is the LSTM's final c, cn its final h: h0 -> hn would feed c into h."""
    model = _renamed(("h0", "c0"), ("hn", "cn"), swap=True)
    ports, reason = stream_ports(model)
    assert ports is None
    assert "'h0' and 'hn' pair by name, but the graph contradicts it" in reason, reason
    assert "--state h0=cn" in reason, reason
    given = Given(states=(("h0", "cn"), ("c0", "hn")))
    assert _parity(model, given).status == "pass"


def test_one_pair_per_layer_is_found_by_name_and_carried():
    model = _per_layer()
    ports, reason = stream_ports(model)
    assert reason is None
    assert ports.states == tuple((f"{s}_in_{layer}", f"{s}_out_{layer}")
                                 for layer in (0, 1) for s in ("h", "c"))
    result = _parity(model)
    assert result.status == "pass", [str(f) for f in result.failures]
    assert set(result.max_abs) == {"X1", "h_out_0", "c_out_0", "h_out_1", "c_out_1"}
    assert _parity(model, forget=("c_in_1",)).status == "fail"  # the second layer's c dropped


def test_every_layer_must_be_carried():
    """A second LSTM whose state starts at zeros each call: a stream would reset it."""
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["Y", "hn", "cn"],
                              hidden_size=H, name="first"),
             helper.make_node("Squeeze", ["Y", "one"], ["Y2"]),
             helper.make_node("LSTM", ["Y2", "W2", "R2", "B2"], ["y"], hidden_size=H,
                              name="second")]
    state = [1, "batch", H]
    second = LSTMWeights.random(LSTMSpec(input_size=H, hidden_size=H), seed=1)
    extra = [numpy_helper.from_array(v.astype(np.float32), f"{n}2")
             for n, v in second.tensors().items()]
    model = _model(nodes, [_value("x", "seq", "batch", I), _value("h0", *state),
                           _value("c0", *state)],
                   [_value("y", "seq", 1, "batch", H), _value("hn", *state), _value("cn", *state)],
                   extra + [numpy_helper.from_array(np.array([1], np.int64), "one")])
    ports, reason = stream_ports(model)
    assert ports is None and "LSTM 'second' has no initial_h" in reason, reason


# --- streaming parity ---------------------------------------------------------------------

@pytest.mark.parametrize("name, given, runtime, compared", [
    ("kws_state", Given(), "ort-cpu", {"y", "hn", "cn"}),
    ("kws_state", Given(), "numpy", {"y", "hn", "cn"}),
    ("stacked_state", Given(), "ort-cpu", {"y", "hn", "cn"}),
    ("stacked_state", Given(), "numpy", {"y", "hn", "cn"}),
    ("packed_state_vad", VAD, "ort-cpu", {"output", "stateN"}),
    ("packed_state_vad", VAD, "numpy", {"output", "stateN"}),
])
def test_streaming_parity_carries_every_state(zoo, name, given, runtime, compared):
    result = _parity(zoo[name], given, runtime)
    assert result.status == "pass", [str(f) for f in result.failures]
    assert sum(result.chunks) == 20 and len(result.chunks) == 3  # frames the LSTM sees
    assert set(result.max_abs) == compared


@pytest.mark.parametrize("name, given, states", [
    ("stacked_state", Given(), ("h0",)),  # the packed [2, B, H] h of both layers dropped
    ("packed_state_vad", VAD, ("state",)),
])
def test_streaming_parity_catches_a_dropped_state(zoo, name, given, states):
    result = _parity(zoo[name], given, forget=states)
    assert result.status == "fail" and result.failures[0].metric.startswith("streaming_")


def test_overlapping_frames_are_fed_to_each_call(zoo):
    """Window 64, hop 32: each chunk gets the samples of its own frames, sharing 32 with the
    last one (what a streaming caller keeps). Cut without that overlap, the stream would lose
    a frame at each boundary and could not equal one call: what the definition avoids."""
    model = Model.load(zoo["packed_state_vad"]).with_given(VAD)
    ports, _ = stream_ports(model)
    assert ports.spans([2, 3], 64 + 32 * 4) == [(0, 96), (64, 192)]
    result = _parity(zoo["packed_state_vad"], VAD)
    assert "window 64, hop 32" in result.note and "share 32 samples" in result.note
    import onnxruntime

    session = onnxruntime.InferenceSession(str(zoo["packed_state_vad"]),
                                           providers=["CPUExecutionProvider"])
    feeds = model.feeds(1, 10, seed=2)
    whole = session.run(["stateN"], feeds)[0]
    state = feeds["state"]
    for start in (0, 32 * 5):  # halves of the samples, cut where frame 5 starts: 9 frames
        state = session.run(["stateN"], {**feeds, "state": state,
                                         "input": feeds["input"][:, start:start + 32 * 5]})[0]
    assert np.max(np.abs(state - whole)) > 1e-3


def test_a_front_end_streams_its_frames_and_a_padded_one_is_skipped():
    assert _conv_front_end().graph.output[0].name == "y"
    result = _parity(_conv_front_end(), steps=15)
    assert result.status == "pass", [str(f) for f in result.failures]
    assert set(result.max_abs) == {"y", "state_out"} and sum(result.chunks) == 15
    assert "window 8, hop 4" in result.note
    padded = _parity(_conv_front_end(pads=2), steps=15)
    assert padded.status == "skip" and "pads its input" in padded.reason, padded.reason


def test_streaming_runtime_carries_a_packed_state(zoo):
    model = Model.load(zoo["packed_state_vad"]).with_given(VAD)
    ports, _ = stream_ports(model)
    feeds = model.feeds(1, 4, seed=3)
    runtime = RUNTIMES["ort-cpu"]()
    runtime.open(model)
    stream = StreamingRuntime(runtime, ports)
    try:  # two calls of the same 4 frames: the second starts where the first ended
        first, second = stream.run(feeds), stream.run(feeds)
        again = runtime.run({**feeds, "state": first["stateN"]})
    finally:
        runtime.close()
    np.testing.assert_array_equal(second["stateN"], again["stateN"])
    assert not np.array_equal(first["stateN"], second["stateN"])


def test_no_stateful_variant_for_a_model_whose_state_is_in_the_file(tmp_path):
    """Its state leaves and re-enters under names that do not pair: it needs --state, not a
    variant that would hide the state it carries."""
    path = tmp_path / "renamed.onnx"
    onnx.save(_renamed(), str(path))
    with pytest.raises(Exception, match="--state a=p"):
        streaming_model(Model.load(path), tmp_path)
    stream = streaming_model(Model.load(path).with_given(Given(states=(("a", "p"), ("b", "q")))),
                             tmp_path)
    assert not stream.stateful_variant and "a <- p" in stream.note


# --- the command line ---------------------------------------------------------------------

def _verify(capsys, path, folder, *extra):
    report = folder / "verify.json"
    rc, out, err = run_cli(capsys, "verify", path, "--no-lstm-layer", "--json", report, *extra)
    return rc, out, err, report


@pytest.mark.parametrize("name, extra, compared", [
    ("kws_state", (), {"y", "hn", "cn"}),
    ("stacked_state", (), {"y", "hn", "cn"}),
    ("packed_state_vad", ("--value", "sr=16000"), {"output", "stateN"}),
])
def test_verify_streams_the_zoo(zoo, tmp_path, capsys, name, extra, compared):
    rc, out, err, report = _verify(capsys, zoo[name], tmp_path, "--runtimes", "ort-cpu,numpy",
                                   "--seq-len", "12", *extra)
    assert rc == 0, err
    assert out.count("streaming pass") == 2, out
    for row in json.loads(report.read_text())["results"]:
        assert row["streaming"]["status"] == "pass" and sum(row["streaming"]["chunks"]) == 12
        assert set(row["streaming"]["max_abs"]) == compared


def test_verify_with_state_given(tmp_path, capsys):
    path = tmp_path / "renamed.onnx"
    onnx.save(_renamed(), str(path))
    rc, out, _, _ = _verify(capsys, path, tmp_path, "--runtimes", "ort-cpu")
    assert rc == 0 and "streaming check skipped" in out and "--state a=p" in out, out
    rc, out, err, report = _verify(capsys, path, tmp_path, "--runtimes", "ort-cpu",
                                   "--state", "a=p", "--state", "b=q")
    assert rc == 0, err
    assert json.loads(report.read_text())["results"][0]["streaming"]["status"] == "pass"


@pytest.mark.parametrize("command, extra, contains", [
    ("verify", ("--state", "h=hn"), "the model has no input 'h'"),
    ("verify", ("--state", "h0=out"), "the model has no output 'out'"),
    ("verify", ("--state", "h0=y"), "input 'h0' is float32 [1, batch, 16] but output 'y'"),
    ("verify", ("--state", "h0=hn", "--state", "h0=cn"), "--state names input 'h0' more than once"),
    ("verify", ("--state", "h0=hn", "--no-streaming"), "--no-streaming"),
    ("verify", ("--state", "h0"), "expected NAME=OUT"),
    ("bench", ("--state", "h0=hn"), "--state needs --streaming"),
    ("bench", ("--streaming", "--state", "nope=hn"), "the model has no input 'nope'"),
])
def test_bad_state_is_one_line(zoo, tmp_path, capsys, command, extra, contains):
    argv = [command, zoo["kws_state"], "--runtimes", "ort-cpu", *extra]
    if command == "bench":
        argv += QUICK
    assert_bad_input(run_cli(capsys, *argv), contains)


@pytest.mark.parametrize("name, extra", [
    ("kws_state", ()), ("stacked_state", ()), ("packed_state_vad", ("--value", "sr=16000"))])
def test_bench_streaming_times_the_model_itself(zoo, tmp_path, capsys, name, extra):
    report = tmp_path / "stream.json"
    rc, _, err = run_cli(capsys, "bench", zoo[name], "--streaming", "--chunk", "1,4",
                         "--runtimes", "ort-cpu", *QUICK, *extra, "--json", report)
    assert rc == 0, err
    doc = json.loads(report.read_text())
    assert sorted(r["chunk"] for r in doc["results"]) == [1, 4]
    assert all(r["mode"] == "streaming" and not r["stateful_variant"] for r in doc["results"])
    section = doc["streaming"]
    assert section["stateful_variant"] is False and section["ports"]["states"]
    assert "takes the LSTM state as inputs and returns it" in section["note"]


def test_bench_streaming_of_a_model_needing_state_says_which(tmp_path, capsys):
    path = tmp_path / "renamed.onnx"
    onnx.save(_renamed(), str(path))
    assert_bad_input(run_cli(capsys, "bench", path, "--streaming", "--runtimes", "ort-cpu",
                             *QUICK), "cannot be streamed", "--state a=p")
    report = tmp_path / "stream.json"
    rc, _, err = run_cli(capsys, "bench", path, "--streaming", "--runtimes", "ort-cpu",
                         "--state", "a=p", "--state", "b=q", *QUICK, "--json", report)
    assert rc == 0, err
    assert json.loads(report.read_text())["streaming"]["ports"]["states"] == [["a", "p"],
                                                                              ["b", "q"]]


@pytest.fixture(scope="module")
def stacked_hidden(tmp_path_factory):
    """The zoo's 3-layer time-major stack: it keeps every layer's state inside."""
    return build_zoo(tmp_path_factory.mktemp("stacked"), ["stacked"])["stacked"]


def test_a_stack_that_hides_its_state_streams_as_its_stateful_variant(stacked_hidden):
    """Each layer's state becomes an input and an output of the variant; carried over three
    chunks, every layer's final state is the one call's, and a variant that forgets any
    layer's state fails."""
    from lstm_bench.exporters.stateful import stateful_variant

    variant = stateful_variant(onnx.load(stacked_hidden))
    states = [v.name for v in variant.graph.input if v.name.startswith("initial_")]
    assert len(states) == 6  # h and c of each of the 3 layers
    assert _parity(variant).status == "pass"
    assert _parity(variant, forget=("initial_h_3",)).status != "pass"


def test_bench_streams_a_stack_that_hides_its_state(stacked_hidden, capsys, tmp_path):
    out = tmp_path / "s.json"
    rc, _, err = run_cli(capsys, "bench", stacked_hidden, "--streaming", "--runtimes",
                         "ort-cpu", *QUICK, "--json", out)
    assert rc == 0, err
    report = json.loads(out.read_text())
    assert report["streaming"]["stateful_variant"] is True
    assert {row["chunk"] for row in report["results"]} == {1}
