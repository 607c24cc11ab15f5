"""The proof of a torch export: the graph in onnxruntime against torch, at another shape.

The probe input is one batch larger and three steps longer than the export's example (the same
shape when the axes are static), so that a graph that baked in the example's shape is caught.
"""

from __future__ import annotations

import numpy as np

from lstm_bench.errors import LSTMBenchError, first_line
from lstm_bench.exporters.ort_quiet import session_options
from lstm_bench.tolerances import TOLERANCES, compare_output


def probe_args(args, batch_first, has_lengths, dynamic, *, vocab: int | None = None,
               grow=(1, 3)):
    """Seeded inputs ``grow`` = (batch, steps) larger than the example (if dynamic).

    Token inputs (integer, ``[batch, seq]`` or ``[seq, batch]``) are drawn over ``vocab`` rows.
    """
    import torch

    x = args[0]
    batch, steps = (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])
    new_batch, new_steps = (batch + grow[0], steps + grow[1]) if dynamic else (batch, steps)
    generator = torch.Generator().manual_seed(1234)
    shape = (new_batch, new_steps) if batch_first else (new_steps, new_batch)
    if x.is_floating_point():
        new_args = [torch.randn(shape + tuple(x.shape[2:]), generator=generator, dtype=x.dtype)]
    else:
        high = vocab or int(x.max()) + 1
        new_args = [torch.randint(0, high, shape + tuple(x.shape[2:]), generator=generator,
                                  dtype=x.dtype)]
    if has_lengths:
        lengths = torch.randint(1, new_steps + 1, (new_batch,), generator=generator)
        lengths[0] = new_steps
        new_args.append(lengths)
    return new_args, new_batch, new_steps


def check_against_onnxruntime(proto, probe_args, expected, which, where):
    """Run ``proto`` in onnxruntime on the probe input; raise if it drifts from torch.

    ``where`` says the probe's shape in the message ("batch 3, sequence length 8")."""
    import onnxruntime

    hint = ""
    if which == "dynamo":
        hint = ("; torch.export fixes an axis to the example's size in some LSTM graphs "
                "(an example batch of 1 above all): use exporter='torchscript', or an example "
                "with batch >= 2")
    try:  # onnxruntime's own log lines off: the failure is reported below, once
        session = onnxruntime.InferenceSession(proto.SerializeToString(), session_options(),
                                               providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {name: t.numpy() for name, t in zip(names, probe_args)})
    except Exception as exc:  # onnxruntime's own exception types
        text = first_line(exc)
        raise LSTMBenchError(f"the {which} exporter's graph fails in onnxruntime at "
                             f"{where}: {text[:300]}{hint}") from None
    for index, (want, have) in enumerate(zip(expected, got)):
        judged = compare_output(which, f"output {index}", have, np.asarray(want, np.float64),
                                TOLERANCES["float32"], "float32")
        if judged:
            continue
        error = (f"max abs error {judged.max_abs:.3g}" if want.shape == have.shape else
                 f"shape {list(have.shape)} instead of {list(want.shape)}")
        raise LSTMBenchError(
            f"the {which} exporter's graph disagrees with torch on output {index} at {where} "
            f"({error}){hint}")
