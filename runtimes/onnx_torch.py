"""An ONNX graph translated to a torch program, so that torch-cpu and torch-cuda run the whole
file in torch, as a torch deployment would, with no Python evaluator in the timed path.

``translate(proto, device)`` reads the graph once: each node becomes a torch function from the
operator table ``OPS`` (``runtimes.torch_ops``, ``runtimes.torch_nn_ops``, and here LSTM and the
control flow), nodes whose inputs are all constants are computed once, and LSTM nodes become
``torch_lstm.OnnxLSTM`` modules (nn.LSTM where it has the node's features; stacked layers one
multi-layer nn.LSTM, ``runtimes.lstm_stack``). A node outside the table raises ``Untranslated``
naming it: the runtime reports a skip, never a slower fallback.

Shape arithmetic: a value is *static* when it follows from the constants and the feeds' shapes
alone (Shape, then Gather/Concat/Unsqueeze of it, a ConstantOfShape of that). On the first call
with a given set of feed shapes, the static values are computed once and kept (as Python ints
where an operator reads them as a shape); later calls with those shapes run only the rest.

Tensors stay in torch from the feeds to the outputs; the caller runs ``Program.call`` under
``torch.inference_mode()``. Imported only by the torch runtimes' ``open`` (it imports torch).
"""

from __future__ import annotations

import numpy as np
import torch

from lstm_bench.errors import LSTMBenchError
from lstm_bench.graph import lstm_node
from lstm_bench.runtimes.lstm_stack import fused_lstm, stacks
from lstm_bench.runtimes.features import nn_lstm_fallback
from lstm_bench.runtimes.torch_lstm import OnnxLSTM
from lstm_bench.runtimes.torch_nn_ops import NN_OPS
from lstm_bench.runtimes.torch_ops import TENSOR_OPS, Untranslated, dtype_of, host

NONE, SINK = 0, 1  # slots: an absent input (None), an output nobody reads
# ops whose output shape depends on their inputs' values, not only on their shapes
DATA_SHAPED = frozenset({"NonZero", "Range", "If", "Loop", "Scan"})
# ops whose function returns a tuple, whatever their number of outputs
RETURNS_TUPLE = frozenset({"Split", "Dropout", "TopK", "LSTM", "If", "Loop", "Scan"})
SIGNATURES = 32  # feed shapes remembered per program (a sweep uses a few)


class Context:
    """What an operator's maker is told of its node."""

    def __init__(self, node, program, attrs):
        self.node, self.program, self.attrs = node, program, attrs
        self.opset, self.device = program.opset, program.device
        self.outputs = len(node.output)

    def constant(self, name: str):
        """The value of a constant input (an initializer, a Constant, a folded node), or None."""
        return self.program.constant(name)

    def subprogram(self, graph, free: list[str]) -> Program:
        """A body graph as a program whose inputs are its own, then ``free`` (the names it
        reads from the enclosing graphs)."""
        return Program(graph, self.opset, self.device, [i.name for i in graph.input] + free,
                       self.program.lstms)


def _attributes(node) -> dict:
    from onnx import helper, numpy_helper

    attrs = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        elif a.type == a.TENSOR:
            value = tensor_of(numpy_helper.to_array(value), f"attribute {a.name}")
        attrs[a.name] = value
    return attrs


def tensor_of(array, what: str):
    """A torch tensor of an ONNX tensor's values (``Untranslated`` for strings)."""
    array = np.array(array)
    if array.dtype.kind not in "biuf":
        raise Untranslated(f"{what} holds {array.dtype} values, which torch has no tensor of")
    return torch.from_numpy(array)


def free_names(graph) -> list[str]:
    """Names a (sub)graph reads but does not define: values of the graphs around it."""
    defined = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    seen: dict[str, None] = {}
    for node in graph.node:
        used = list(node.input)
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                used += free_names(g)
        seen.update((name, None) for name in used if name and name not in defined)
        defined.update(node.output)
    seen.update((o.name, None) for o in graph.output if o.name not in defined)
    return list(seen)


def untranslated(graph) -> list[str]:
    """Every operator of the graph (and of its bodies) outside ``OPS``, named once."""
    found: dict[str, None] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            found[f"{node.domain}.{node.op_type}"] = None
        elif node.op_type not in OPS and node.op_type != "Constant":
            found[node.op_type] = None
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                found.update(dict.fromkeys(untranslated(g)))
    return list(found)


def _constant_value(attrs: dict):
    for key, make in (("value", lambda v: v), ("value_float", torch.tensor),
                      ("value_floats", torch.tensor),
                      ("value_int", lambda v: torch.tensor(v, dtype=torch.int64)),
                      ("value_ints", lambda v: torch.tensor(v, dtype=torch.int64))):
        if key in attrs:
            return make(attrs[key])
    raise Untranslated(f"Constant with {', '.join(attrs) or 'no value'}")


def _on(device, tensor):
    """Float tensors live on the device; integer ones (shapes, indices) stay on the host."""
    return tensor.to(device) if tensor.is_floating_point() else tensor


class Program:
    """One graph as torch steps over numbered slots (see the module doc)."""

    def __init__(self, graph, opset: int, device: str, inputs: list[str],
                 lstms: dict | None = None, stacked: tuple = ()):
        """``lstms``: where each LSTM node's label is told how it runs (shared with bodies);
        ``stacked``: chains of node indices run as one multi-layer nn.LSTM
        (``runtimes.lstm_stack``), each with the program that knows their weights."""
        from onnx import numpy_helper

        self.opset, self.device = opset, device
        self.lstms = {} if lstms is None else lstms
        self.slots: dict[str, int] = {"": NONE}
        self.template: list = [None, None]
        self.constant_slots: set[int] = set()
        self.static: set[int] = set()  # known from the constants and the feeds' shapes alone
        for tensor in graph.initializer:
            array = numpy_helper.to_array(tensor)
            self._constant(tensor.name, _on(device, tensor_of(array, f"initializer {tensor.name}")))
        self.inputs = [self._slot(name) for name in inputs]
        shaped = set(self.inputs)  # with ``static``: shapes known from the feeds' shapes
        self.steps = []
        fused = {chain[-1]: (chain, known) for chain, known in stacked}
        inside = {i for chain, _ in stacked for i in chain[:-1]}
        for index, node in enumerate(graph.node):
            if index in inside:  # computed by the chain's step, at its last layer
                continue
            try:
                if index in fused:
                    self._add_stack(graph, *fused[index])
                else:
                    self._add(node, shaped)
            except Untranslated as exc:  # a form of the operator: say which node
                raise Untranslated(f"{node.op_type} (node {node.name!r}): {exc}") from None
        missing = [o.name for o in graph.output if o.name not in self.slots]
        if missing:
            raise LSTMBenchError(f"graph output(s) {', '.join(missing)} made by no node")
        self.outputs = [self.slots[o.name] for o in graph.output]
        self.bound: dict = {}

    def constant(self, name: str):
        """The value of a constant (an initializer, a Constant, a folded node), or None."""
        slot = self.slots.get(name)
        return self.template[slot] if slot in self.constant_slots else None

    def _add_stack(self, graph, chain: list[int], known: Program) -> None:
        layers = [graph.node[i] for i in chain[::2]]
        fn, modules = fused_lstm(layers, known.constant, self.device)
        for node, module in zip(layers, modules):
            self.lstms[node.name or f"LSTM#{len(self.lstms)}"] = module
        inputs = [list(n.input) + [""] * (7 - len(n.input)) for n in layers]
        ins = [self.slots[inputs[0][0]]] + [self.slots[i[k]] for i in inputs for k in (5, 6)]
        names = [layers[-1].output[0]] + [(list(n.output) + ["", "", ""])[k]
                                          for n in layers for k in (1, 2)]
        outs = tuple(self._slot(name) if name else SINK for name in names)
        self.steps.append((fn, tuple(ins), outs, (), False))

    def _slot(self, name: str) -> int:
        if name not in self.slots:
            self.slots[name] = len(self.template)
            self.template.append(None)
        return self.slots[name]

    def _constant(self, name: str, value) -> None:
        slot = self._slot(name)
        self.template[slot] = value
        self.constant_slots.add(slot)
        self.static.add(slot)

    def _add(self, node, shaped: set) -> None:
        attrs = _attributes(node)
        if node.op_type == "Constant":
            self._constant(node.output[0], _on(self.device, _constant_value(attrs)))
            return
        missing = [name for name in node.input if name and name not in self.slots]
        if missing:
            raise LSTMBenchError(f"node {node.name or node.op_type}: input(s) "
                                 f"{', '.join(missing)} made by no node")
        free = [name for name in free_names_of(node) if name in self.slots]
        maker, hosts = OPS[node.op_type]
        context = Context(node, self, attrs)
        context.free = free
        fn = maker(attrs, context)
        if len(node.output) == 1 and node.op_type in RETURNS_TUPLE:
            fn = _first(fn)
        ins = tuple(self.slots[name] for name in list(node.input) + free)
        outs = tuple(self._slot(name) if name else SINK for name in node.output)
        if all(i in self.constant_slots or i == NONE for i in ins) and not free and \
                node.op_type not in ("LSTM", "If", "Loop", "Scan"):
            for slot, value in zip(outs, _as_tuple(fn(*(self.template[i] for i in ins)))):
                if slot != SINK:
                    self.template[slot] = value
                    self.constant_slots.add(slot)
                    self.static.add(slot)
            return
        data = [i for p, i in enumerate(ins) if p not in hosts]
        valued = self.static | {NONE}
        known = all(i in valued for p, i in enumerate(ins) if p in hosts)
        if node.op_type in ("Shape", "Size"):
            static = ins[0] in shaped or ins[0] in valued
        else:
            static = known and not free and node.op_type not in DATA_SHAPED and \
                node.op_type != "LSTM" and all(i in valued for i in data)
        if static:
            self.static.update(outs)
        if static or (known and node.op_type not in DATA_SHAPED
                      and all(i in shaped or i in valued for i in data)):
            shaped.update(outs)
        self.steps.append((fn, ins, outs, tuple(hosts), static))

    def _bind(self, env: list):
        """Run every step on the feeds in ``env`` (the first call with their shapes) and keep
        what is static: the slots template of later calls with these shapes (static values
        computed, shapes read as Python ints), and the steps left for them to run."""
        plan = []
        for fn, ins, outs, hosts, static in self.steps:
            _store(env, outs, fn(*[env[i] for i in ins]), len(outs) == 1)
            if static:
                continue
            ins = list(ins)
            for p in hosts:  # a shape known now: read as Python ints once, not at every call
                if p < len(ins) and ins[p] in self.static and ins[p] != NONE:
                    env.append(host(env[ins[p]]))
                    ins[p] = len(env) - 1
            plan.append((fn, tuple(ins), outs, len(outs) == 1))
        template = [value.contiguous() if slot in self.static and isinstance(value, torch.Tensor)
                    else value if slot in self.static or slot >= len(self.template)
                    else self.template[slot] for slot, value in enumerate(env)]
        return template, plan

    def call(self, values: list) -> list:
        """The graph's outputs (tensors) for its inputs (tensors, in ``inputs`` order)."""
        key = tuple(v.shape for v in values)
        bound = self.bound.get(key)
        if bound is None:  # the first call with these shapes
            env = list(self.template)
            for slot, value in zip(self.inputs, values):
                env[slot] = value
            if len(self.bound) >= SIGNATURES:
                self.bound.clear()
            self.bound[key] = self._bind(env)
        else:
            template, plan = bound
            env = template.copy()
            for slot, value in zip(self.inputs, values):
                env[slot] = value
            for fn, ins, outs, single in plan:  # the timed path: ``_store`` inlined
                result = fn(*[env[i] for i in ins])
                if single:
                    env[outs[0]] = result
                else:
                    for slot, value in zip(outs, result):
                        env[slot] = value
        # a value kept across calls is handed out as a copy: a caller may write to it
        return [env[s].clone() if s in self.static else env[s] for s in self.outputs]


def _first(fn):
    return lambda *args: fn(*args)[0]


def _store(env: list, outs: tuple, result, single: bool) -> None:
    if single:
        env[outs[0]] = result
    else:
        for slot, value in zip(outs, result):
            env[slot] = value


def free_names_of(node) -> list[str]:
    """Names a node's bodies read from the graphs around them."""
    seen: dict[str, None] = {}
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            seen.update(dict.fromkeys(free_names(g)))
    return list(seen)


def _as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


# --- LSTM and control flow ---------------------------------------------------------------------

def _lstm(attrs, ctx):
    node = ctx.node
    names = list(node.input) + [""] * (8 - len(node.input))
    weights = {name: ctx.constant(name) for name in (names[1], names[2], names[3], names[7])
               if name}
    fallback = nn_lstm_fallback(node)

    def module_of(tensors: dict):
        arrays = {name: value.cpu().numpy() for name, value in tensors.items()}
        return OnnxLSTM(lstm_node(node, arrays).weights, fallback).to(ctx.device).eval()

    fixed = module_of(weights) if all(v is not None for v in weights.values()) else None
    label = node.name or f"LSTM#{len(ctx.program.lstms)}"
    ctx.program.lstms[label] = fixed if fixed is not None else (
        f"weights computed at run time: {'nn.LSTM' if fallback is None else 'torch recurrence'}"
        " built at every call")
    count = ctx.outputs

    def run(X, W, R, B=None, lens=None, h0=None, c0=None, P=None):
        module = fixed if fixed is not None else module_of({name: value for name, value in
                                     zip((names[1], names[2], names[3], names[7]), (W, R, B, P))
                                     if name})
        dtype = X.dtype
        if dtype != torch.float32:  # the module computes in float32
            X, h0, c0 = (None if t is None else t.float() for t in (X, h0, c0))
        out = module(X, lens, h0, c0)
        if dtype != torch.float32:
            out = tuple(t.to(dtype) for t in out)
        return out[:count]
    return run


def _if(attrs, ctx):
    free = ctx.free
    then, other = (ctx.subprogram(attrs[key], free) for key in ("then_branch", "else_branch"))
    return lambda cond, *outer: (then if bool(cond) else other).call(list(outer))


def _empty_scan(graph, index: int):
    """A scan output of a body that ran no iteration: [0, declared dims...]."""
    value = graph.output[index].type.tensor_type
    dims = [d.dim_value for d in value.shape.dim]
    return torch.zeros([0] + dims, dtype=dtype_of(value.elem_type or 1))


def _loop(attrs, ctx):
    body = attrs["body"]
    program = ctx.subprogram(body, ctx.free)
    carried = len(ctx.node.input) - 2

    def run(M, cond, *rest):
        state, outer = list(rest[:carried]), list(rest[carried:])
        trips = None if M is None else int(M)
        going = True if cond is None else bool(cond)
        scans = [[] for _ in range(len(body.output) - 1 - carried)]
        step = 0
        while going and (trips is None or step < trips):
            out = program.call([torch.tensor(step, dtype=torch.int64),
                                torch.tensor(going), *state, *outer])
            going, state = bool(out[0]), out[1:1 + carried]
            for k, value in enumerate(out[1 + carried:]):
                scans[k].append(value)
            step += 1
        return (*state, *(torch.stack(s) if s else _empty_scan(body, 1 + carried + k)
                          for k, s in enumerate(scans)))
    return run


def _scan(attrs, ctx):
    if ctx.opset < 9:
        raise Untranslated("Scan before opset 9 (with a batch axis)")
    body, m = attrs["body"], attrs["num_scan_inputs"]
    program = ctx.subprogram(body, ctx.free)
    n = len(body.input) - m
    k = len(body.output) - n
    in_axes = attrs.get("scan_input_axes", [0] * m)
    in_back = attrs.get("scan_input_directions", [0] * m)
    out_axes = attrs.get("scan_output_axes", [0] * k)
    out_back = attrs.get("scan_output_directions", [0] * k)
    inputs = len(ctx.node.input)

    def run(*values):
        state, scanned, outer = list(values[:n]), values[n:inputs], list(values[inputs:])
        axes = [a + x.dim() if a < 0 else a for a, x in zip(in_axes, scanned)]
        steps = scanned[0].shape[axes[0]]
        outs = [[] for _ in range(k)]
        for t in range(steps):
            slices = [x.select(a, steps - 1 - t if back else t)
                      for x, a, back in zip(scanned, axes, in_back)]
            result = program.call([*state, *slices, *outer])
            state = result[:n]
            for j, value in enumerate(result[n:]):
                outs[j].append(value)
        stacked = []
        for j, values_j in enumerate(outs):
            if out_back[j]:
                values_j = values_j[::-1]
            rank = values_j[0].dim() + 1 if values_j else 1
            axis = out_axes[j] + rank if out_axes[j] < 0 else out_axes[j]
            stacked.append(torch.stack(values_j, axis) if values_j
                           else _empty_scan(body, n + j))
        return (*state, *stacked)
    return run


# op_type -> (maker, host input positions): see runtimes.torch_ops
OPS = {**TENSOR_OPS, **NN_OPS, "LSTM": (_lstm, ()), "If": (_if, ()), "Loop": (_loop, ()),
       "Scan": (_scan, ())}


def opset_of(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def translate(proto, device: str = "cpu") -> Program:
    """The model's main graph as a torch ``Program`` whose inputs are the graph inputs that are
    not initializers; ``Untranslated`` naming every operator it has no translation for."""
    graph = proto.graph
    missing = untranslated(graph)
    if missing:
        raise Untranslated(f"no torch translation for {', '.join(missing)}")
    constants = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in constants]
    try:
        program = Program(graph, opset_of(proto), device, inputs)
        chains = stacks(graph, program.constant)
        if chains:  # translated again, now that the layers' weights are known
            program = Program(graph, opset_of(proto), device, inputs,
                              stacked=tuple((chain, program) for chain in chains))
        return program
    except Untranslated as exc:
        raise Untranslated(f"no torch translation for {exc}") from None
