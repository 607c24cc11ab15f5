"""Which graph inputs carry an LSTM's state into the model and which outputs carry it out: the
pairs a stream feeds back from one call into the next.

A pair is a graph input and a graph output of one dtype and a compatible shape:

- given by the user (``--state IN=OUT``, ``feeds.Given.states``): used as given;
- an LSTM node's own ports: the input is its initial_h (initial_c), the output its Y_h (Y_c);
- found by name (h0 -> hn, state -> stateN, initial_h -> Y_h, h_in -> h_out, hidden ->
  hidden_out, hx -> hy...) and confirmed by the graph: the input reaches LSTM initial states
  only through ops that move values (Slice, Gather, Split, Squeeze...: a packed state unpacked,
  one layer's slice each), and the output is computed, through such ops (Concat, Unsqueeze:
  packed again), from the final states of exactly those LSTMs. A name pair the graph
  contradicts is not used, and the reason says so.

Every LSTM's initial_h and initial_c must then be fed from a carried input (a stacked model
carries every layer's state); a bidirectional LSTM cannot stream at all (its reverse
direction reads the future).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds.branches import chosen_branches
from lstm_bench.model_limits import graphs

# ops that move values without computing new ones: a state passes through them unchanged
MOVES = frozenset({"Identity", "Cast", "Slice", "Gather", "Split", "Squeeze", "Unsqueeze",
                   "Reshape", "Flatten", "Transpose", "Concat", "Expand"})
STARTS = {5: "initial_h", 6: "initial_c"}  # an LSTM's inputs a state enters by
ENDS = {1: "Y_h", 2: "Y_c"}  # and its outputs it leaves by
_FINAL_OF = {"initial_h": "Y_h", "initial_c": "Y_c"}
# name affixes (prefix, suffix) of a state going in, and of one coming out
_IN = (("initial_", ""), ("init_", ""), ("in_", ""), ("input_", ""), ("past_", ""),
       ("prev_", ""), ("", "_in"), ("", "_input"), ("", "in"), ("", "0"), ("", "_0"),
       ("", "_init"), ("", "_prev"), ("", "x"))
_OUT = (("y_", ""), ("final_", ""), ("last_", ""), ("out_", ""), ("output_", ""),
        ("new_", ""), ("next_", ""), ("present_", ""), ("", "_out"), ("", "_output"),
        ("", "out"), ("", "n"), ("", "_n"), ("", "_new"), ("", "_next"), ("", "_final"),
        ("", "y"))


def _stems(name: str, affixes) -> set[str]:
    low = name.lower()
    found = {low}
    for prefix, suffix in affixes:
        if low.startswith(prefix) and low.endswith(suffix) and len(low) > len(prefix + suffix):
            found.add(low[len(prefix):len(low) - len(suffix)].strip("_./:"))
    return found - {""}


# one word of a name that says in, and its counterpart that says out (state_in_0, state_out_0)
_MARKERS = {("in", "out"), ("input", "output"), ("initial", "final"), ("init", "final"),
            ("prev", "next"), ("past", "present"), ("old", "new"), ("0", "n")}


def names_pair(state_in: str, state_out: str) -> bool:
    """Whether the names read as one state going in and coming out (h0 and hn, state and
    stateN, initial_h and Y_h, h_in and h_out; per layer: h0_l1 and hn_l1, h_in_1 and
    h_out_1...)."""
    if state_in == state_out:
        return False
    if _stems(state_in, _IN) & _stems(state_out, _OUT):
        return True
    words_in, words_out = (re.split(r"[_./:-]+", n.lower()) for n in (state_in, state_out))
    differ = [(a, b) for a, b in zip(words_in, words_out) if a != b]
    return len(words_in) == len(words_out) > 1 and len(differ) == 1 and (
        differ[0] in _MARKERS or names_pair(*differ[0]))


@dataclass(frozen=True, eq=False)
class Flow:
    """The data flow of a model, every graph (If branches) included."""

    readers: dict  # value -> [(node, input position)]
    maker: dict  # value -> (node, output position)
    lstms: tuple  # every LSTM node
    branch_out: dict  # an If branch's output -> the If outputs it becomes
    branch_in: dict  # an If output -> the branch outputs it is one of

    @classmethod
    def of(cls, model) -> Flow:
        readers, maker, lstms, branch_out, branch_in = {}, {}, [], {}, {}
        for graph in graphs(model.graph):
            for node in graph.node:
                if node.op_type == "LSTM":
                    lstms.append(node)
                for position, name in enumerate(node.input):
                    readers.setdefault(name, []).append((node, position))
                for position, name in enumerate(node.output):
                    maker[name] = (node, position)
                for attr in node.attribute if node.op_type == "If" else ():
                    for inner, outer in zip(attr.g.output, node.output):
                        branch_out.setdefault(inner.name, []).append(outer)
                        branch_in.setdefault(outer, []).append(inner.name)
        return cls(readers, maker, tuple(lstms), branch_out, branch_in)

    def index(self, node) -> int:
        return next(i for i, lstm in enumerate(self.lstms) if lstm is node)

    def down(self, name: str, moves_only: bool = True) -> frozenset:
        """The LSTM starts (index, "initial_h"|"initial_c") that value ``name`` reaches (through
        moving ops only, or through any op but an LSTM)."""
        found, seen, todo = set(), set(), [name]
        while todo:
            value = todo.pop()
            if value in seen or not value:
                continue
            seen.add(value)
            todo += self.branch_out.get(value, [])
            for node, position in self.readers.get(value, ()):
                if node.op_type == "LSTM":
                    if position in STARTS:
                        found.add((self.index(node), STARTS[position]))
                elif not moves_only or (node.op_type in MOVES
                                        and (position == 0 or node.op_type == "Concat")):
                    todo += list(node.output)
        return frozenset(found)

    def up(self, name: str, moves_only: bool = True) -> frozenset:
        """What value ``name`` is computed from: LSTM ends (index, "Y_h"|"Y_c"|"Y") and graph
        inputs ("input", name); through moving ops only, or any op but an LSTM (shapes read
        by Shape or Size carry no values)."""
        found, seen, todo = set(), set(), [name]
        while todo:
            value = todo.pop()
            if value in seen or not value:
                continue
            seen.add(value)
            todo += self.branch_in.get(value, [])
            if value not in self.maker:
                found.add(("input", value))
                continue
            node, position = self.maker[value]
            if node.op_type == "LSTM":
                found.add((self.index(node), ENDS.get(position, "Y")))
            elif not moves_only:
                if node.op_type not in ("Shape", "Size"):
                    todo += list(node.input)
            elif node.op_type in MOVES:
                todo += list(node.input if node.op_type == "Concat" else node.input[:1])
        return frozenset(found)

    def front_end(self, names) -> list:
        """The nodes that the values ``names`` pass through before any LSTM."""
        nodes, seen, todo = [], set(), list(names)
        while todo:
            value = todo.pop()
            if value in seen or not value:
                continue
            seen.add(value)
            todo += self.branch_out.get(value, [])
            for node, _ in self.readers.get(value, ()):
                if node.op_type != "LSTM" and not any(node is n for n in nodes):
                    nodes.append(node)
                    todo += list(node.output)
        return nodes


def _type(value) -> tuple:
    """(elem_type, dims or None): dims an int, a dim_param, or None where unknown."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return tensor.elem_type, None
    return tensor.elem_type, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                   for d in tensor.shape.dim)


def _shown(value) -> str:
    from onnx import helper

    elem, dims = _type(value)
    name = helper.tensor_dtype_to_np_dtype(elem).name if elem else "untyped"
    return f"{name} [{', '.join('?' if d is None else str(d) for d in dims)}]" \
        if dims is not None else f"{name} of unknown shape"


def compatible(a, b) -> bool:
    """Whether graph values ``a`` and ``b`` can be the same state: one dtype, one rank, and no
    axis both fix at different sizes."""
    (elem_a, dims_a), (elem_b, dims_b) = _type(a), _type(b)
    if elem_a != elem_b:
        return False
    if dims_a is None or dims_b is None:
        return True
    return len(dims_a) == len(dims_b) and all(
        not (isinstance(x, int) and isinstance(y, int) and x and y and x != y)
        for x, y in zip(dims_a, dims_b))


def _ends_of(starts: frozenset) -> frozenset:
    return frozenset((i, _FINAL_OF[port]) for i, port in starts)


@dataclass(frozen=True)
class States:
    """The state pairs of a model (``find_states``), or why it cannot stream."""

    pairs: tuple = ()  # (input, output)
    reason: str | None = None
    hides_state: bool = False  # no graph input reaches an LSTM's initial state
    lstm_ports: tuple = ()  # (port, name): a graph input or output that is an LSTM's port
    flow: Flow | None = None


def check_given_states(model, given) -> None:
    """Refuse ``--state`` pairs that name what the model does not take or return, or an
    input and an output of different dtypes or shapes (bad input, one line)."""
    inputs = {v.name: v for v in model.graph.input}
    outputs = {v.name: v for v in model.graph.output}
    for state_in, state_out in given.states:
        where = f"--state {state_in}={state_out}"
        if state_in not in inputs:
            raise LSTMBenchError(f"{where}: the model has no input {state_in!r}; its inputs: "
                                 f"{list(inputs)}")
        if state_out not in outputs:
            raise LSTMBenchError(f"{where}: the model has no output {state_out!r}; its "
                                 f"outputs: {list(outputs)}")
        if not compatible(inputs[state_in], outputs[state_out]):
            raise LSTMBenchError(f"{where}: input {state_in!r} is {_shown(inputs[state_in])} "
                                 f"but output {state_out!r} is {_shown(outputs[state_out])}: a "
                                 "state must re-enter as it left")


def find_states(model, given) -> States:
    """The state pairs of ``model`` (a ModelProto; ``given``: ``feeds.Given``, its ``values``
    choose If branches, its ``states`` are pairs given): see the module docstring."""
    from onnx import helper

    check_given_states(model, given)
    chosen = chosen_branches(model, given.values)
    flow = Flow.of(chosen)
    if not flow.lstms and not given.states:
        return States(reason="the model has no LSTM node", flow=flow)
    for node in flow.lstms:
        direction = next((helper.get_attribute_value(a) for a in node.attribute
                          if a.name == "direction"), b"forward")
        if direction == b"bidirectional":
            return States(reason="a bidirectional LSTM needs the whole sequence; it cannot be "
                                 "streamed", flow=flow)
    initializers = {t.name for t in chosen.graph.initializer}
    inputs = {v.name: v for v in chosen.graph.input if v.name not in initializers}
    outputs = {v.name: v for v in chosen.graph.output}
    starts = {name: flow.down(name) for name in inputs}
    starts = {name: found for name, found in starts.items() if found}
    ends = {name: frozenset(e for e in flow.up(name) if e[1] in ("Y_h", "Y_c"))
            for name in outputs}
    ports = _lstm_ports(flow, inputs, outputs)
    pairs = list(given.states)
    problems: dict[str, list[str]] = {}  # state input -> what the names and the graph say
    for name, reached in starts.items():
        if any(name == state_in for state_in, _ in pairs):
            continue
        taken = {state_out for _, state_out in pairs}
        named = [out for out in outputs if out not in taken and names_pair(name, out)
                 and compatible(inputs[name], outputs[out])]
        confirmed = [out for out in named if ends[out] == _ends_of(reached)]
        literal = [out for out in outputs if out not in taken and _literal(flow, name, out)]
        for out in sorted(set(named) - set(confirmed) - set(literal)):
            problems.setdefault(name, []).append(
                f"{name!r} and {out!r} pair by name, but the graph contradicts it ({out!r} is "
                f"not computed from the final states of the LSTM states {name!r} starts)")
        found = literal or confirmed
        if len(found) == 1:
            pairs.append((name, found[0]))
        elif found:
            problems.setdefault(name, []).append(f"{name!r} pairs with each of {found}: "
                                                 f"give --state {name}=OUT")
    if not pairs:
        if not starts and not given.states:
            return States(reason="the model does not take an LSTM's state as an input and "
                                 "return it (no graph input reaches an LSTM's initial_h or "
                                 "initial_c)", hides_state=True, flow=flow)
        return States(reason=_unpaired(flow, starts, ends, inputs, outputs, problems), flow=flow)
    missing = _uncarried(flow, [state_in for state_in, _ in pairs])
    if missing:
        unpaired = {n: r for n, r in starts.items() if n not in {i for i, _ in pairs}}
        hint = _unpaired(flow, unpaired, ends, inputs, outputs, problems) if unpaired else ""
        return States(reason=f"{missing}; {hint}" if hint else missing, flow=flow)
    return States(tuple(pairs), lstm_ports=tuple(ports), flow=flow)


def _lstm_ports(flow: Flow, inputs, outputs) -> list[tuple[str, str]]:
    """(port, name) for each graph input that is an LSTM's initial_h / initial_c and each
    graph output that is its Y / Y_h / Y_c, as they are."""
    found = []
    for node in flow.lstms:
        names = list(node.input) + [""] * 8
        found += [(port, names[slot]) for slot, port in STARTS.items() if names[slot] in inputs]
        outs = list(node.output) + [""] * 3
        found += [(port, outs[slot]) for slot, port in ((0, "Y"), *ENDS.items())
                  if outs[slot] in outputs]
    return found


def _literal(flow: Flow, state_in: str, state_out: str) -> bool:
    """One LSTM's own initial_h and Y_h (or initial_c and Y_c), whatever their names."""
    return any(len(node.input) > slot and node.input[slot] == state_in
               and len(node.output) > out and node.output[out] == state_out
               for node in flow.lstms for slot, out in ((5, 1), (6, 2)))


def _uncarried(flow: Flow, carried: list[str]) -> str | None:
    """Why a stream of ``carried`` would reset an LSTM's state at every call, or None."""
    fed = set().union(*(flow.down(name, moves_only=False) for name in carried))
    for i, node in enumerate(flow.lstms):
        label = node.name or f"LSTM {i}"
        for slot, port in STARTS.items():
            if len(node.input) <= slot or not node.input[slot]:
                return (f"LSTM {label!r} has no {port}: its state starts from zeros at every "
                        "call, so it cannot be carried")
            if (i, port) not in fed:
                return (f"LSTM {label!r} takes its {port} from no carried state input: a stream "
                        "would reset it at every call")
    return None


def _label(flow: Flow, i: int) -> str:
    name = flow.lstms[i].name
    return f"LSTM {name!r}" if name else f"LSTM {i}"


def _unpaired(flow, starts, ends, inputs, outputs, problems) -> str:
    """What the graph shows of state inputs that no output pairs with, and which --state
    IN=OUT to give."""
    hints = [line for name in starts for line in problems.get(name, ())]
    give = []
    for name, reached in starts.items():
        candidates = [out for out in outputs if ends[out] == _ends_of(reached)
                      and compatible(inputs[name], outputs[out])]
        started = ", ".join(f"{_label(flow, i)}'s {port}" for i, port in sorted(reached))
        if len(candidates) == 1:
            hints.append(f"input {name!r} starts {started} and output {candidates[0]!r} returns "
                         "its final state, but their names do not pair")
        elif candidates:
            hints.append(f"input {name!r} starts {started}; outputs {candidates} each return "
                         "its final state")
        elif name not in problems:
            hints.append(f"input {name!r} starts {started}, but no output returns its final "
                         "state alone")
        give.append(f"--state {name}={candidates[0] if len(candidates) == 1 else 'OUT'}")
    return "; ".join(hints) + (f": give {' '.join(give)}" if give else "") \
        if hints or give else "no state pair found: give --state IN=OUT"
