"""Token inputs and their padding, read from the graph and its metadata.

Token inputs (integers that index an embedding: a Gather over a constant table, perhaps through
Cast / Reshape / Transpose) are drawn over the table's real rows, ``0..vocab-1``, read from the
graph. Ragged token (or masked float) inputs are padded the way the model's framework pads: a
model exported by lstm-bench from Keras with a mask records its padding in the file's metadata
(``lstm_bench.padding``: "pre", ``pad_sequences``' default, or "post"; ``lstm_bench.pad_value``;
``lstm_bench.padded_inputs``), and ``make_inputs(given=Given(padding=...))`` overrides it.
"""

from __future__ import annotations

from lstm_bench.graph import constants

# Ops between a token input and its embedding's Gather that keep the token values.
_PASS_THROUGH = {"Cast", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten",
                 "Expand", "Clip"}
PADDINGS = ("pre", "post")


def token_vocab(model) -> dict[str, int]:
    """Integer graph input name -> the number of rows of the embedding table it indexes.

    An input indexes a table when it reaches the indices of a Gather (or the first input of
    GatherND, unsupported here) whose data is a constant, through value-keeping ops only.
    """
    values = constants(model.graph)
    producer = {out: node for node in model.graph.node for out in node.output}
    inputs = {v.name for v in model.graph.input}
    vocab: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[0] not in values:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        table = values[node.input[0]]
        name = node.input[1]
        while name not in inputs and name in producer \
                and producer[name].op_type in _PASS_THROUGH:
            name = producer[name].input[0]
        if name in inputs and name not in values and table.ndim:
            rows = int(table.shape[axis])
            vocab[name] = min(rows, vocab.get(name, rows))
    return vocab


def padding_metadata(model) -> tuple[str | None, float, set[str]]:
    """(padding side, pad value, inputs padded) recorded by lstm-bench's Keras export."""
    props = {p.key: p.value for p in model.metadata_props}
    side = props.get("lstm_bench.padding")
    padded = set(filter(None, props.get("lstm_bench.padded_inputs", "").split(",")))
    return (side if side in PADDINGS else None), float(props.get("lstm_bench.pad_value", 0)), padded
