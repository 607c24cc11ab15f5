"""Inputs that choose the model's If branches (a sample rate, a mode flag): found in the graph,
never drawn at random.

A random value checks one branch by chance and says nothing of the others, so such an input
must be given (``--value NAME=V``); the error names the values the graph compares it with.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.graph import constants as graph_constants


def branch_inputs(model) -> dict[str, list]:
    """Graph input -> the constants it is compared with, for every input that an If node's
    condition is computed from (in the main graph)."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    inputs = {value.name for value in graph.input} - {t.name for t in graph.initializer}
    constants = graph_constants(graph, max_values=16)  # a compared value, not a weight
    found: dict[str, set] = {}
    for node in graph.node:
        if node.op_type != "If":
            continue
        reached, compared, todo, seen = set(), set(), [node.input[0]], set()
        while todo:
            name = todo.pop()
            if name in seen or not name:
                continue
            seen.add(name)
            if name in inputs:
                reached.add(name)
            elif name in constants:
                compared.update(np.asarray(constants[name]).ravel().tolist())
            elif name in producer and producer[name].op_type not in ("Shape", "Size"):
                todo.extend(producer[name].input)  # a shape read is no value: not a choice
        for name in reached:
            found.setdefault(name, set()).update(compared)
    return {name: sorted(values) for name, values in found.items()}


def _condition(model, node, values: dict) -> bool | None:
    """The value of If ``node``'s condition when the inputs are ``values``: its ancestors in
    the main graph evaluated by onnx's evaluator; None where they need anything else."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    producer = {out: n for n in graph.node for out in n.output}
    declared = {v.name: v for v in graph.input}
    initializers = {t.name for t in graph.initializer}
    needed, todo, used = [], [node.input[0]], set()
    while todo:
        name = todo.pop()
        if name in used or not name:
            continue
        used.add(name)
        if name in producer:
            needed.append(producer[name])
            todo.extend(producer[name].input)
        elif name in declared and name not in values and name not in initializers:
            return None  # computed from an input not given
    inputs = [declared[name] for name in used if name in values and name in declared]
    order = [n for n in graph.node if any(n is m for m in needed)]
    sub = helper.make_model(
        helper.make_graph(order, "condition", inputs,
                          [helper.make_tensor_value_info(node.input[0], onnx.TensorProto.BOOL, None)],
                          [t for t in graph.initializer if t.name in used]),
        opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        feeds = {v.name: np.full([d.dim_value for d in v.type.tensor_type.shape.dim],
                                 values[v.name], helper.tensor_dtype_to_np_dtype(
                                     v.type.tensor_type.elem_type)) for v in inputs}
        return bool(np.asarray(ReferenceEvaluator(sub).run(None, feeds)[0]).ravel()[0])
    except Exception:  # anything the evaluator cannot do: the If stays as it is
        return None


def chosen_branches(model, values: dict):
    """``model`` with every If of its main graph whose condition ``values`` decide replaced by
    the branch they choose (its nodes and initializers, its outputs renamed to the If's): what
    shape inference should see of a model fed those values. ``model`` itself where none is."""
    import onnx
    from onnx import helper

    if not values or not any(node.op_type == "If" for node in model.graph.node):
        return model
    chosen = onnx.ModelProto()
    chosen.CopyFrom(model)
    nodes = []
    for node in chosen.graph.node:
        taken = _condition(model, node, values) if node.op_type == "If" else None
        if taken is None:
            nodes.append(node)
            continue
        branch = next(a.g for a in node.attribute
                      if a.name == ("then_branch" if taken else "else_branch"))
        nodes.extend(branch.node)
        chosen.graph.initializer.extend(branch.initializer)
        nodes.extend(helper.make_node("Identity", [inner.name], [outer])
                     for inner, outer in zip(branch.output, node.output))
    del chosen.graph.node[:]
    chosen.graph.node.extend(nodes)
    return chosen


# at most this many value sets are tried for the inputs choosing branches (their product)
MAX_CANDIDATES = 64


def _candidates(compared: list) -> list:
    """Values worth trying for an input the graph compares with ``compared``: the constants
    themselves first (a sample rate of 16000 reads as one), then values beside them that the
    other side of an Equal, Less or Greater takes (half and double before one off: 8000 is a
    sample rate, 15999 is not)."""
    out = list(compared)
    for value in compared:
        half = value // 2 if isinstance(value, int) else value / 2
        out += [half, value * 2, value - 1, value + 1]
    out.append(0)
    return list(dict.fromkeys(out))  # in order, once each


def branch_cases(model, values: dict) -> list[dict]:
    """One set of values per distinct choice of the model's If branches, for the inputs that
    choose them and are not in ``values``: what verify runs once each so that every branch is
    checked. Empty when there are none, or when a condition cannot be decided from those
    inputs alone (it reads another input): the user then gives them with --value."""
    import itertools

    missing = {name: compared for name, compared in branch_inputs(model).items()
               if name not in values}
    if not missing or not all(missing.values()):
        return []
    ifs = [node for node in model.graph.node if node.op_type == "If"]
    names = list(missing)
    tried = itertools.islice(itertools.product(*(_candidates(missing[n]) for n in names)),
                             MAX_CANDIDATES)
    cases: dict[tuple, dict] = {}
    for combo in tried:
        case = dict(zip(names, combo))
        taken = tuple(_condition(model, node, {**values, **case}) for node in ifs)
        if None in taken:
            return []
        cases.setdefault(taken, case)
    return list(cases.values())


def check_branch_inputs(model, values: dict) -> None:
    """Refuse feeds that would draw an input choosing the model's branches at random."""
    missing = {name: compared for name, compared in branch_inputs(model).items()
               if name not in values}
    if missing:
        name, compared = next(iter(missing.items()))
        seen = ", ".join(f"{v:g}" for v in compared[:8]) or "no constant"
        raise LSTMBenchError(
            f"input {name!r} chooses the model's If branches (the graph compares it with "
            f"{seen}); give it with --value {name}=V, and run once more with another value for "
            "each other branch to check")
