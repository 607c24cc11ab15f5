"""The per-call overhead floor (issue 22): every runtime is timed, in the same rotation as its
own cells, on a model with the same inputs that computes nothing (``bench.floor``); each row
records it, the JSON round-trips it, and the tables show it where it matters."""

import numpy as np
import onnx
import pytest

from lstm_bench.bench.floor import CallFloor, floor_model, floor_text
from lstm_bench.bench.harness import Settings, Subject, Timeline, sweep
from lstm_bench.bench.report import check_row
from lstm_bench.bench.stats import Block, Measurement, merge
from lstm_bench.bench.streaming import streaming_factories
from lstm_bench.bench.tables import latency_table, streaming_table
from lstm_bench.errors import RuntimeSkip
from lstm_bench.exporters.weights import export_weights
from lstm_bench.model import Model
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.registry import make_factories
from lstm_bench.spec import LSTMSpec, LSTMWeights
from lstm_bench.verify.streaming import stream_ports

MS = 1_000_000


class Clock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


class Timed(BaseRuntime):
    """Each call advances the clock: ``ms`` on the model, ``floor_ms`` on its floor model;
    ``log`` records (which, round of the clock) per call."""

    def __init__(self, name, clock, ms, floor_ms, log, refuse_floor=False):
        self.name, self.clock, self.ms, self.floor_ms = name, clock, ms, floor_ms
        self.log, self.refuse_floor, self.floor = log, refuse_floor, False

    def open(self, model, *, threads=None):
        self.floor = model.proto.graph.name == "call_floor"
        if self.floor and self.refuse_floor:
            raise RuntimeSkip(f"{self.name}: nothing here to quantize")

    def run(self, feeds):
        self.clock.now += int((self.floor_ms if self.floor else self.ms) * MS)
        self.log.append("floor" if self.floor else self.name)
        return {}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("floor") / "tiny.onnx"
    export_weights(LSTMWeights.random(LSTMSpec(2, 4), seed=0), path, initial_states=True)
    return Model.load(path)


def test_the_floor_model_has_the_same_inputs_and_stands_in_for_outputs_it_can(tiny_model):
    proto = tiny_model.proto
    floor = floor_model(proto)
    onnx.checker.check_model(floor, full_check=True)
    assert [i for i in floor.graph.input] == [i for i in proto.graph.input
                                              if i.name not in {t.name for t in
                                                                proto.graph.initializer}]
    assert {n.op_type for n in floor.graph.node} == {"Identity"}
    by_output = {n.output[0]: n.input[0] for n in floor.graph.node}
    # the state outputs stand in for themselves (a stream carries them), Y has no stand-in
    assert by_output["Y_h"] == "initial_h" and by_output["Y_c"] == "initial_c"
    assert by_output["X.floor"] == "X" and "Y" not in by_output
    ort = pytest.importorskip("onnxruntime")
    feeds = tiny_model.feeds(2, 3)
    out = ort.InferenceSession(floor.SerializeToString()).run(["Y_h", "X.floor"], feeds)
    assert np.array_equal(out[0], feeds["initial_h"]) and np.array_equal(out[1], feeds["X"])


def test_each_row_gets_its_runtimes_floor_timed_in_the_same_rounds(tiny_model):
    clock, log = Clock(), []
    factories = {"fast": lambda: Timed("fast", clock, 2.0, 0.5, log),
                 "int8": lambda: Timed("int8", clock, 1.0, 0.1, log, refuse_floor=True)}
    settings = Settings(span=0, blocks=3, block=2, block_time=1, min_time=0, min_reps=1,
                        warmup_reps=1, warmup_time=0)
    (result,) = sweep([Subject(tiny_model, lambda b, t: {})], factories, [(1, 5), (4, 5)], [1],
                      settings, timeline=Timeline(clock))
    rows = {(m.runtime, m.batch): m for m in result.measurements}
    for batch in (1, 4):
        fast = rows["fast", batch]
        assert fast.call_floor.block_ns == (MS // 2,) * 3 and fast.call_floor.median_ms == 0.5
        assert floor_text(fast) == "0.5 25%"
        refused = rows["int8", batch].call_floor
        assert refused.median_ms is None and refused.reason == "nothing here to quantize"
        assert floor_text(rows["int8", batch]) == "–"
    # opening: a first run per shape for fast, its floor and int8 (whose floor refused);
    # warm-up: a call per cell; then each round, per cell, one untimed call and a block of
    # 2: the floor's right after its runtime's own, in every round
    assert log[:6] == ["fast", "fast", "floor", "floor", "int8", "int8"]
    cell = ["fast"] * 3 + ["floor"] * 3 + ["int8"] * 3
    assert log[12:] == cell * 2 * 3
    assert result.skipped == []


def test_the_floor_round_trips_through_json_and_merges_over_processes():
    blocks = tuple(Block(0, i, i * MS, 1) for i in range(2))
    m = Measurement("ort-cpu", 1, 1, 1, samples_ns=(3 * MS, 5 * MS), blocks=blocks,
                    call_floor=CallFloor((MS, 2 * MS)))
    row = m.as_dict()
    assert row["call_floor"] == {"median_ms": 1.5, "block_medians_ns": [MS, 2 * MS]}
    check_row(row, "row")
    back = Measurement.from_dict(row)
    assert back.call_floor == m.call_floor and back.as_dict() == row
    none = Measurement("x", 1, 1, 1, samples_ns=(MS,), call_floor=CallFloor(reason="no"))
    assert none.as_dict()["call_floor"] == {"median_ms": None, "reason": "no"}
    assert Measurement.from_dict(none.as_dict()).call_floor == CallFloor(reason="no")
    assert Measurement.from_dict({**row, "call_floor": None}).call_floor is None
    other = Measurement("ort-cpu", 1, 1, 1, samples_ns=(4 * MS,),
                        blocks=(Block(1, 0, 0, 1),), call_floor=CallFloor((3 * MS,)))
    assert merge([m, other]).call_floor.block_ns == (MS, 2 * MS, 3 * MS)
    with pytest.raises(Exception, match="call_floor"):
        check_row({**row, "call_floor": {"median_ms": "fast"}}, "row")


def test_a_real_runtime_streams_on_its_floor_and_the_tables_show_it(tiny_model):
    """ort-cpu, wrapped to stream (its state outputs fed back), on the floor model too; the
    streaming table shows the floor, and so does a batch-1 latency table."""
    ports, _ = stream_ports(tiny_model)
    factories = streaming_factories(make_factories(["ort-cpu"]), ports)
    settings = Settings(span=0, blocks=2, min_time=0, min_reps=4, max_reps=4, warmup_reps=1,
                        warmup_time=0)
    (result,) = sweep([Subject(tiny_model, lambda b, t: tiny_model.feeds(b, t))], factories,
                      [(1, 1)], [1], settings)
    (row,) = result.measurements
    assert row.call_floor.median_ms > 0 and len(row.call_floor.block_ns) == 2
    for table in (streaming_table([row]), latency_table([row])):
        column = next(c for c in table.columns if c.name == "call floor ms")
        assert column.detail.name == "NARROW"  # batch 1: shown on every terminal
    wide = latency_table([Measurement("x", 8, 1, 1, samples_ns=(MS,))])
    assert next(c for c in wide.columns if c.name == "call floor ms").detail.name == "WIDE"
