"""The per-call overhead floor of a runtime: what one call costs when the model computes nothing.

A latency of a few microseconds (a streaming step, batch 1) is partly the binding's own cost:
the Python call into the runtime, the feeds handed over and the outputs handed back. A C++ or
Rust deployment would not pay all of it. To tell that cost from the compute, the harness opens
each runtime a second time, on the *floor model* of each model (``floor_model``): the same
inputs (names, types, shapes), each real output that an input of the same type and shape can
stand for passed through from that input with an Identity, and every other input passed
through to an output of its own, so every feed is bound and read back. Its calls are timed in
the same rotation as the runtime's own cells (``bench.harness.sweep``), with the same feeds, so
the floor sees the same phases of the machine as the figure it is set beside.

A row's ``call_floor`` (``CallFloor``) keeps the median of each of the floor's blocks; where the
runtime cannot run the floor model (an int8 variant with no LSTM node to quantize), the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# What a report says the floor is, once.
FLOOR_WHAT = ("the same runtime, opened on a model with the same inputs that computes nothing "
              "(Identity), timed in the same rotation with the same feeds")


@dataclass(frozen=True)
class CallFloor:
    """The floor of one row: its block medians in ns, or the reason it has none."""

    block_ns: tuple[int, ...] = ()
    reason: str | None = None

    @classmethod
    def of(cls, samples_ns, blocks) -> CallFloor:
        """From a floor cell's samples and blocks (``bench.harness.Cell``)."""
        edges = np.cumsum([0] + [b.calls for b in blocks]) if blocks else range(len(samples_ns) + 1)
        medians = [int(np.median(samples_ns[a:b])) for a, b in zip(edges[:-1], edges[1:])]
        return cls(tuple(medians))

    @property
    def median_ms(self) -> float | None:
        return float(np.median(self.block_ns)) / 1e6 if self.block_ns else None

    def as_dict(self) -> dict:
        if not self.block_ns:
            return {"median_ms": None, "reason": self.reason or "not measured"}
        return {"median_ms": self.median_ms, "block_medians_ns": list(self.block_ns)}

    @classmethod
    def from_dict(cls, value) -> CallFloor | None:
        if not isinstance(value, dict):
            return None
        return cls(tuple(int(v) for v in value.get("block_medians_ns") or ()),
                   value.get("reason"))

    @classmethod
    def merged(cls, floors) -> CallFloor | None:
        """The floor of a row measured in several worker processes: their blocks together."""
        found = [f for f in floors if f is not None]
        blocks = tuple(b for f in found for b in f.block_ns)
        if blocks:
            return cls(blocks)
        return found[0] if found else None


# the JSON of ``CallFloor.as_dict`` (``bench.report.ROW``)
FLOOR_SPEC = {"median_ms": (float, None), "block_medians_ns": ([float], None),
              "reason": (str, None)}


def _signature(value_info) -> tuple:
    tensor = value_info.type.tensor_type
    dims = tuple(d.dim_value or d.dim_param or None for d in tensor.shape.dim)
    return tensor.elem_type, dims if tensor.HasField("shape") else None


def floor_model(proto):
    """The floor model of an ONNX ModelProto (see the module doc)."""
    from onnx import helper

    graph = proto.graph
    constants = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    nodes, outputs, used = [], [], set()
    for output in graph.output:
        wanted = _signature(output)
        # an input not yet standing in for another output first (h0 for Y_h, c0 for Y_c)
        fits = [i for i in inputs if _signature(i) == wanted and wanted[1] is not None
                and i.name != output.name]
        source = next((i for i in fits if i.name not in used), fits[0] if fits else None)
        if source is not None:
            nodes.append(helper.make_node("Identity", [source.name], [output.name]))
            outputs.append(output)
            used.add(source.name)
    taken = {o.name for o in outputs} | {i.name for i in inputs}
    for value in inputs:
        if value.name not in used:
            name = f"{value.name}.floor"
            while name in taken:
                name += "_"
            taken.add(name)
            nodes.append(helper.make_node("Identity", [value.name], [name]))
            outputs.append(helper.make_value_info(name, value.type))
    floor = helper.make_model(helper.make_graph(nodes, "call_floor", inputs, outputs),
                              opset_imports=[o for o in proto.opset_import
                                             if o.domain in ("", "ai.onnx")])
    floor.ir_version = proto.ir_version
    return floor


def floor_text(m) -> str:
    """A row's floor in a table (``m``: a ``stats.Measurement``): its median ms and its share
    of the row's median, "0.00795 7%" (narrow: it must fit an 80-column streaming table);
    "–" where there is none."""
    floor = m.call_floor.median_ms if m.call_floor else None
    if floor is None:
        return "–"
    share = floor / m.stats.median if m.stats.median > 0 else 0.0
    return f"{floor:.3g} {share:.0%}"
