"""What ``verify`` will hold in memory, estimated before it starts, and a refusal when that does
not fit in the memory this machine has available (as bench sizes its sweep, ``bench.plan``).

verify's largest cost is the float64 truth: onnx's evaluator keeps every value of the graph
until the run ends, each in float64 (twice the bytes of the float32 runtimes), and the
reference LSTM adds its input projection of every step (four values per value of Y). Then the
truth's outputs are kept, and each runtime runs with a copy of the feeds and of the truth (in a
child process, ``verify.isolate``), its own outputs and working memory, and may need a plain
float32 evaluation of the model for its widened limits (``verify.sensitivity``).

The sizes come from shape inference at the shapes fed (``model_limits.values_at``); a value
whose size only the feeds' contents decide, or one inside an If or Loop body, is not counted:
the estimate is a floor, and the evaluator's own cap stays (``reference.model``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lstm_bench.errors import LSTMBenchError
from lstm_bench.files import size_text
from lstm_bench.model import HELD_PER_Y, Model

# The child process that runs the native runtimes, with onnxruntime, torch and OpenVINO loaded:
# 270 MB resident measured here (Python 3.11, onnxruntime 1.32, torch 2.13), rounded up.
CHILD_LIBRARIES = 300 * 2 ** 20
PROJECTION = 4  # the reference LSTM's input projection: [T, B, 4H] per value of Y [T, B, H]
# Operators whose output the evaluator makes a view of their input (NumPy's transpose,
# squeeze, expand_dims, reshape): no memory of their own. A Transpose, Squeeze and Transpose
# around a TorchScript export's LSTM counted as copies made the estimate 37 % too high.
VIEWS = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity")


@dataclass(frozen=True)
class Estimate:
    """verify's memory at each of its peaks: (what runs then, its (label, bytes) parts)."""

    phases: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]

    @property
    def peak(self) -> tuple[str, tuple[tuple[str, int], ...]]:
        """(what runs, its parts) at the largest of the peaks."""
        return max(self.phases, key=lambda phase: sum(n for _, n in phase[1]))

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.peak[1])


def _itemsize(elem_type, float_bytes: int) -> int:
    from onnx import TensorProto, helper

    if elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16,
                     TensorProto.DOUBLE):
        return float_bytes
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).itemsize or 8
    except (KeyError, ValueError, TypeError):
        return 8


def _lstm_shapes(model: Model, dims: dict) -> list[tuple[int, int, int, int, int]]:
    """(T, B, input size, hidden size, directions) of each LSTM node of the main graph whose X
    has a known shape."""
    from onnx import helper

    found = []
    for node in model.proto.graph.node:
        x = dims.get(node.input[0]) if node.op_type == "LSTM" else None
        if x is None or len(x) != 3:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        steps, batch = (x[1], x[0]) if attrs.get("layout", 0) else (x[0], x[1])
        directions = 2 if attrs.get("direction", b"") == b"bidirectional" else 1
        found.append((steps, batch, x[2], attrs.get("hidden_size", 0), directions))
    return found


def estimate(model: Model, feeds: dict, layer_batch: int | None = None) -> Estimate:
    """verify's memory on ``model`` fed ``feeds`` (name -> array, as made), with each of its
    LSTM layers judged alone at ``layer_batch`` (None: not judged)."""
    from lstm_bench.model_limits import values_at  # it imports onnx

    found = values_at(model.skeleton, {n: a.shape for n, a in feeds.items()})
    dims = {name: d for name, d, _ in found}
    views = {o for node in model.proto.graph.node if node.op_type in VIEWS for o in node.output}
    found = [(name, d, t) for name, d, t in found if name not in views]
    lstms = _lstm_shapes(model, dims)
    # the reference LSTM's input projection, one node at a time: [T, B, 4H] per direction
    projection = max((t * b * PROJECTION * h for t, b, _, h, _ in lstms), default=0)
    values64 = sum(math.prod(d) * _itemsize(t, 8) for _, d, t in found) + 8 * projection
    values32 = sum(math.prod(d) * _itemsize(t, 4) for _, d, t in found) + 4 * projection
    outputs = {o.name for o in model.proto.graph.output}
    outputs64 = sum(math.prod(d) * _itemsize(t, 8) for n, d, t in found if n in outputs)
    y = sum(t * b * h * k for t, b, _, h, k in lstms)  # values of the LSTMs' Y
    fed = sum(a.nbytes for a in feeds.values())
    layer_eval = layer_kept = 0
    alone = len(model.proto.graph.node) == 1  # the model is the layer: no check of it alone
    if layer_batch and lstms and not alone:  # X [T, b, I] fed, in float64, Y and projection
        # each layer alone, one after the other: the largest (the truths of all are kept)
        layer_kept = sum(t * layer_batch * (4 * i + 8 * h * k) for t, _, i, h, k in lstms)
        layer_eval = layer_kept + max(t * layer_batch * (8 * i + 8 * PROJECTION * h)
                                      for t, _, i, h, _ in lstms)
    truth = (("the feeds", fed), ("the float64 truth's outputs", outputs64))
    kept = fed + outputs64 + layer_kept  # held by this process, and a copy by the child
    runtime = fed + HELD_PER_Y * 4 * y + 2 * outputs64 + values32
    return Estimate((
        ("the float64 truth", (("the feeds", fed), ("the float64 values of the graph", values64))),
        ("the LSTM layer alone", truth + (("its feeds and float64 values", layer_eval),)),
        ("a runtime beside the truth", (
            ("the feeds and the float64 truth, kept", kept),
            ("their copy in the runtimes' child process", kept),
            ("the child's libraries", CHILD_LIBRARIES),
            ("a runtime's feeds, outputs and working memory, and a float32 evaluation for its "
             "widened limits", runtime)))))


# A cgroup's limit and use: v2 (the process's own group), then v1 (the container's root view).
CGROUP_FILES = (("memory.max", "memory.current"),
                ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))


def available_memory() -> int | None:
    """Bytes this process may still take: /proc/meminfo's MemAvailable, or less where a
    cgroup (a container's memory limit) allows less; None where none can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        group = next((line.split(":", 2)[2].strip().lstrip("/") for line in
                      Path("/proc/self/cgroup").read_text().splitlines()
                      if line.startswith("0::")), "")
    except OSError:
        group = ""
    for limit, used in CGROUP_FILES:
        folder = Path("/sys/fs/cgroup") / (group if limit == "memory.max" else "")
        try:
            allowed = (folder / limit).read_text().strip()
            if allowed != "max":
                found.append(int(allowed) - int((folder / used).read_text()))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def check_fits(model: Model, feeds: dict, layer_batch: int | None = None, *,
               available: int | None = None) -> Estimate:
    """Refuse (LSTMBenchError, before anything is evaluated) a verify whose estimated peak
    exceeds the memory available (``available``: bytes; None: ``available_memory()``, and no
    check where it cannot be read). Returns the estimate."""
    found = estimate(model, feeds, layer_batch)
    available = available_memory() if available is None else available
    if available is None or found.bytes <= available:
        return found
    what, parts = found.peak
    largest = sorted((p for p in parts if p[1]), key=lambda p: -p[1])[:3]
    shapes = ", ".join(f"{name} {list(a.shape)}" for name, a in feeds.items())
    raise LSTMBenchError(
        f"verify would need about {size_text(found.bytes)} at its peak ({what}: "
        + ", ".join(f"{label} {size_text(n)}" for label, n in largest)
        + f"), more than the {size_text(available)} of memory available, with the inputs fed "
        f"at {shapes}; use a shorter --seq-len or a smaller --batch")
