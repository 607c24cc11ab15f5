"""The inputs of a ``torch.export`` program: which axes the ONNX file leaves symbolic, and the
proof's inputs, which follow each input's own dims.

A program's dynamic dims (the symbols in its input specs, bounded by its range constraints) stay
dynamic. ``torch.export`` also fixes every length that reaches an ``nn.LSTM`` (the LSTM's kernel
reads it while tracing), though the ONNX LSTM takes any: an input axis whose growth alone changes
the sequence length of some ``aten.lstm`` call, the program's graph still computing (judged on
fake tensors, so that no kernel ever sees a shape the program was not made for), is such a
length and becomes symbolic too. The proof grows every symbolic axis: the batch by one, any other
by a quarter (at least 3) plus its rank among them, so that two lengths never grow alike and each
output axis can be told by the input axis it follows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lstm_bench import interrupts
from lstm_bench.errors import LSTMBenchError

# aten.lstm.input(input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
# batch_first)
BATCH_FIRST_ARG = 8


@dataclass(frozen=True)
class Axis:
    """One symbolic dim of the file: its name, its size in the example and in the proof, and
    the (input index, axis) places it sits at (a program's symbol may sit at several)."""

    name: str
    size: int
    probe: int
    places: tuple[tuple[int, int], ...]
    fixed_by_export: bool  # a length torch.export fixed, found to compute at another size


@dataclass(frozen=True)
class ProgramInputs:
    names: tuple[str, ...]
    examples: tuple  # the example tensors, one per input
    axes: tuple[Axis, ...]
    vocab: tuple  # per input: the rows of the embedding its integers index, or None
    fixed_batch: int | None  # the LSTM's batch where the program fixes it, else None

    def symbolic(self) -> tuple:
        """Per input, ((axis, dim name), ...): ``ExportOptions.symbolic``."""
        per_input = [[] for _ in self.names]
        for axis in self.axes:
            for index, k in axis.places:
                per_input[index].append((k, axis.name))
        return tuple(tuple(sorted(axes)) for axes in per_input)

    def shapes(self, probe: bool) -> list[list[int]]:
        """Every input's shape in the example, or in the proof."""
        shapes = [list(x.shape) for x in self.examples]
        for axis in self.axes if probe else ():
            for index, k in axis.places:
                shapes[index][k] = axis.probe
        return shapes


def user_inputs(program) -> list[tuple[str, object]]:
    """(name, fake tensor) of every user input, refusing what the export cannot feed."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    names = list(program.graph_signature.user_inputs)
    if not names:
        raise LSTMBenchError("the program takes no input tensor")
    if program.example_inputs and program.example_inputs[1]:
        keywords = sorted(program.example_inputs[1])
        raise LSTMBenchError(f"the program takes keyword inputs ({keywords}); export it with "
                             "positional arguments: torch.export.export(model, (x, ...))")
    found = []
    for name in names:
        val = placeholders[name].meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise LSTMBenchError(f"the program's input {name!r} is a {type(val).__name__}, not a "
                                 "tensor; lstm-bench exports programs whose inputs are tensors")
        if val.is_complex():
            raise LSTMBenchError(f"the program's input {name!r} is {val.dtype}; lstm-bench "
                                 "feeds real numbers")
        found.append((name, val))
    if program.example_inputs and len(program.example_inputs[0]) != len(found):
        raise LSTMBenchError(f"the program takes {len(program.example_inputs[0])} arguments for "
                             f"{len(found)} input tensors (nested arguments); pass each tensor "
                             "as an argument of its own")
    return found


def _symbol(dim):
    """The sympy symbol of a dynamic dim, None for a static one; refuses derived dims."""
    import sympy

    if isinstance(dim, int):
        return None
    expr = dim.node.expr
    if expr.is_number:
        return None
    if not isinstance(expr, sympy.Symbol):
        raise LSTMBenchError(f"an input dim of the program is {expr}, computed from another; "
                             "lstm-bench exports programs whose dynamic dims are each their own "
                             "torch.export.Dim")
    return expr


def _bounds(program, symbol) -> tuple[int, int | None]:
    """The sizes the program's range constraints allow a symbol: (lowest, highest or None)."""
    limits = program.range_constraints.get(symbol)
    if limits is None:
        return 2, None
    try:
        upper = int(limits.upper)
    except (TypeError, ValueError, AttributeError, OverflowError):  # unbounded (int_oo)
        upper = None
    return max(int(limits.lower), 2), upper  # torch specialises 0 and 1: never probe them


def lstm_lengths(module, args) -> list[int] | None:
    """The sequence length of every aten.lstm call when ``module`` runs on fake tensors shaped
    like ``args``, or None where the graph cannot run at that shape."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    calls = (torch.ops.aten.lstm.input, torch.ops.aten.lstm.data)

    class Recorder(torch.fx.Interpreter):
        def __init__(self, graph_module):
            super().__init__(graph_module)
            self.lengths: list[int] = []

        def call_function(self, target, fn_args, kwargs):
            if target in calls:
                time_axis = int(bool(fn_args[BATCH_FIRST_ARG])) if len(fn_args) > 8 else 0
                self.lengths.append(int(fn_args[0].shape[time_axis]))
            return super().call_function(target, fn_args, kwargs)

    logger = logging.getLogger("torch._subclasses.fake_tensor")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs the failure we expect and handle
    recorder = Recorder(module)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            recorder.run(*(mode.from_tensor(x) for x in args))
        return recorder.lengths
    except Exception:  # a shape the graph bakes in
        interrupts.check()  # or a signal that torch turned into an error: no fallback then
        return None
    finally:
        logger.setLevel(level)


def _examples(program, vals) -> list:
    import torch

    if program.example_inputs:
        return list(program.example_inputs[0])
    sizes = {}  # a symbol at several places has one size
    examples = []
    for _, val in vals:
        shape = []
        for dim in val.shape:
            symbol = _symbol(dim)
            shape.append(dim if symbol is None
                         else sizes.setdefault(symbol, _bounds(program, symbol)[0]))
        examples.append(torch.randn(shape).to(val.dtype) if val.is_floating_point()
                        else torch.zeros(shape, dtype=val.dtype))
    return examples


def _vocabularies(program, names) -> list:
    """Per input: the rows of the embedding its integers reach (through views), or None."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    found = []
    for name in names:
        start = placeholders[name]
        seen, todo, rows = {start}, [start], None
        while todo and rows is None:
            node = todo.pop()
            for user in node.users:
                if user.target == torch.ops.aten.embedding.default and user.args[1] in seen:
                    rows = int(user.args[0].meta["val"].shape[0])
                    break
                val = user.meta.get("val")
                if user not in seen and isinstance(val, torch.Tensor) and not (
                        val.is_floating_point() or val.dtype == torch.bool):
                    seen.add(user)
                    todo.append(user)
        found.append(rows)
    return found


def _state_inputs(calls, placeholders) -> set:
    """The user inputs that an LSTM's initial state (h0, c0) comes from without passing through
    another LSTM: a state has no length (and a grown hidden axis would make torch's kernel
    warn of projections on stderr, even on fake tensors)."""
    import torch

    lstm = (torch.ops.aten.lstm.input, torch.ops.aten.lstm.data)
    todo = [n for call in calls for n in call.args[1]]
    seen = set(todo)
    while todo:
        node = todo.pop()
        if node.target in lstm or any(a.target in lstm for a in node.all_input_nodes):
            continue  # an earlier LSTM's state (an encoder's): its inputs have lengths
        for parent in node.all_input_nodes:  # tensors only: a zeros(batch, ...) is no state
            if parent not in seen and isinstance(parent.meta.get("val"), torch.Tensor):
                seen.add(parent)
                todo.append(parent)
    return {node.name for node in seen if node.name in placeholders}


def _grown(size: int, step: int, low: int, high: int | None) -> int | None:
    for new in (size + step, size - step):
        if new >= low and (high is None or new <= high) and new != size:
            return new
    return None


def plan_inputs(program, module, calls) -> ProgramInputs:
    """The symbolic axes of the program's inputs and how the proof grows them (module doc)."""
    vals = user_inputs(program)
    # the file's input names: "input" for a program's one input (as export_torch names it),
    # else the program's own argument names
    names = ("input",) if len(vals) == 1 else tuple(name for name, _ in vals)
    examples = _examples(program, vals)
    for (name, val), x in zip(vals, examples):
        if tuple(x.shape) != tuple(d if isinstance(d, int) else x.shape[i]
                                   for i, d in enumerate(val.shape)) or x.dtype != val.dtype:
            raise LSTMBenchError(f"the program's example for input {name!r} does not match its "
                                 "input spec")
    lstm_input = calls[0].args[0].meta["val"]
    batch_first = len(calls[0].args) > 8 and bool(calls[0].args[BATCH_FIRST_ARG])
    lstm_batch = lstm_input.shape[0 if batch_first else 1] if lstm_input.dim() == 3 else None
    # the LSTM's batch may be computed from the inputs' dims (an LSTM over an image's rows sees
    # B*H sequences): then it is no one input axis to name, and the inputs' own symbols stand
    expr = None if lstm_batch is None or isinstance(lstm_batch, int) else lstm_batch.node.expr
    batch_symbol = expr if expr is not None and expr.is_Symbol else None
    axes = _program_symbols(program, vals, examples, batch_symbol)
    states = _state_inputs(calls, {name for name, _ in vals})
    known = {place for a in axes for place in a.places}  # the program's own symbols
    known |= {(i, k) for i, (name, val) in enumerate(vals) if name in states
              for k in range(val.dim())}
    axes += _fixed_lengths(module, examples, known, rank=sum(a.name != "batch" for a in axes))
    if any(a.fixed_by_export for a in axes) and lstm_lengths(
            module, _probe_shapes(examples, axes)) is None:
        # each length computes alone but not together: keep them as exported
        axes = [a for a in axes if not a.fixed_by_export]
    fixed = (int(lstm_batch) if isinstance(lstm_batch, int) or (expr is not None and expr.is_number)
             else None)
    return ProgramInputs(names, tuple(examples), _named(axes, names),
                         tuple(_vocabularies(program, [name for name, _ in vals])), fixed)


def _program_symbols(program, vals, examples, batch_symbol) -> list[Axis]:
    """The program's own dynamic dims, each once at every place it sits; named "batch" where
    it is the LSTM's batch, "" (named later) elsewhere."""
    symbols: dict = {}
    for index, (_, val) in enumerate(vals):
        for k, dim in enumerate(val.shape):
            symbol = _symbol(dim)
            if symbol is not None:
                symbols.setdefault(symbol, []).append((index, k))
    axes = []
    rank = 0  # of the axes that are not the batch: each grows by a step of its own
    for symbol, places in symbols.items():
        index, k = places[0]
        size = int(examples[index].shape[k])
        is_batch = symbol == batch_symbol
        step = 1 if is_batch else max(3, size // 4) + rank
        rank += not is_batch
        probe = _grown(size, step, *_bounds(program, symbol))
        axes.append(Axis("batch" if is_batch else "", size, size if probe is None else probe,
                         tuple(places), False))
    return axes


def _fixed_lengths(module, examples, known, rank: int) -> list[Axis]:
    """The lengths torch.export fixed: static axes whose growth alone changes the length of
    some LSTM, judged on fake tensors. ``known``: (input, axis) places not to try (the
    program's symbols, the LSTM states)."""
    baseline = lstm_lengths(module, examples)
    if baseline is None:
        raise LSTMBenchError("the program's graph does not run on its own example inputs")
    axes = []
    for index, x in enumerate(examples):
        for k, dim in enumerate(x.shape):
            if (index, k) in known or dim < 1:
                continue
            for step in (max(3, dim // 4) + rank, dim + rank):  # a quarter more, else double
                args = list(examples)
                args[index] = _resized(x, k, dim + step)
                lengths = lstm_lengths(module, args)
                if lengths is not None and lengths != baseline:
                    axes.append(Axis("", dim, dim + step, ((index, k),), True))
                    rank += 1
                    break
    return axes


def _named(axes: list[Axis], names) -> tuple[Axis, ...]:
    """Every axis but the batch named after where it first sits: "seq" where a program takes
    one input with one such axis (as ``export_torch`` names it), "NAME_len" for an input's one
    such axis, "NAME_dimK" where an input has several."""
    per_input: dict[int, int] = {}
    for axis in axes:
        if not axis.name:
            per_input[axis.places[0][0]] = per_input.get(axis.places[0][0], 0) + 1
    named = []
    for axis in axes:
        index, k = axis.places[0]
        if axis.name:
            name = axis.name
        elif per_input[index] == 1:
            name = "seq" if len(names) == 1 else f"{names[index]}_len"
        else:
            name = f"{names[index]}_dim{k}"
        named.append(Axis(name, axis.size, axis.probe, axis.places, axis.fixed_by_export))
    return tuple(named)


def _resized(x, axis: int, size: int):
    import torch

    shape = list(x.shape)
    shape[axis] = size
    return torch.zeros(shape, dtype=x.dtype)


def _probe_shapes(examples, axes) -> list:
    args = list(examples)
    for axis in axes:
        for index, k in axis.places:
            args[index] = _resized(args[index], k, axis.probe)
    return args


def probe_inputs(plan: ProgramInputs, seed: int = 1234) -> list:
    """Seeded inputs at the proof's shapes: floats N(0, 1), integers over the embedding's rows
    (or the example's range where they reach none), booleans at random."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    args = []
    for x, shape, rows in zip(plan.examples, plan.shapes(probe=True), plan.vocab):
        if x.is_floating_point():
            args.append(torch.randn(shape, generator=generator, dtype=x.dtype))
        elif x.dtype == torch.bool:
            args.append(torch.randint(0, 2, shape, generator=generator).bool())
        else:
            low, high = ((0, rows) if rows else (int(x.min()), int(x.max()) + 1) if x.numel()
                         else (0, 1))
            args.append(torch.randint(low, high, shape, generator=generator, dtype=x.dtype))
    return args
