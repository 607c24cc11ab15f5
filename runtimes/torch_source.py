"""``torch-source``: the original torch module of a train checkpoint, run on the ONNX model's feeds.

The other runtimes run what is in the ONNX file; this one runs what the file was exported from
(``lstm_bench.seed.load_checkpoint``: the state_dict read with ``torch.load(weights_only=True)``),
so verify shows the exported model and its source against the same float64 truth. The ONNX
model only lends its names: its one input is the module's ``x`` (batch, time, input_size) and
the module's probability (batch, 1) is returned under its one output's name. It needs a
checkpoint, so it is not in the registry; ``verify(..., source=CHECKPOINT)`` adds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstm_bench.errors import LSTMBenchError
from lstm_bench.feeds import input_specs
from lstm_bench.model import as_model
from lstm_bench.runtimes.base import BaseRuntime
from lstm_bench.runtimes.torch_rt import TorchThreads, torch_missing
from lstm_bench.seed import load_checkpoint


def _shape(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim]


def match_model(module, model, checkpoint) -> tuple[str, str]:
    """(input name, output name) of ``model`` when it takes and returns what ``module`` does.

    Raises:
        LSTMBenchError: the ONNX model's inputs or outputs differ from the module's.
    """
    from onnx import TensorProto

    where = f"--source {checkpoint}: the ONNX model does not match the checkpoint's module"
    inputs, outputs = input_specs(model), list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise LSTMBenchError(f"{where}: it has {len(inputs)} input(s) "
                             f"({', '.join(s.name for s in inputs)}) and {len(outputs)} output(s) "
                             f"({', '.join(o.name for o in outputs)}); the module takes one "
                             "input and returns one output")
    spec, output = inputs[0], outputs[0]
    size = module.lstm.input_size
    checks = [
        (spec.dtype == np.float32, f"input {spec.name} is {spec.dtype}, not float32"),
        (len(spec.dims) == 3 and spec.dims[2] == size,
         f"input {spec.name} has shape {list(spec.dims)}, not [batch, time, {size}]"),
        (output.type.tensor_type.elem_type == TensorProto.FLOAT,
         f"output {output.name} is not float32"),
        (len(_shape(output)) == 2 and _shape(output)[1] in (1, None),
         f"output {output.name} has shape {_shape(output)}, not [batch, 1]"),
    ]
    for ok, problem in checks:
        if not ok:
            raise LSTMBenchError(f"{where}: {problem}")
    return spec.name, output.name


class TorchSourceRuntime(BaseRuntime):
    name = "torch-source"
    device = "cpu"
    libraries = ("torch",)

    def __init__(self, checkpoint_path):
        self.checkpoint_path = checkpoint_path
        self.module = None
        self.threads = TorchThreads()

    def available(self) -> str | None:
        return torch_missing()

    def open(self, model, *, threads: int | None = None) -> None:
        model = as_model(model)
        self.module, _ = load_checkpoint(self.checkpoint_path)
        self.input_name, self.output_name = match_model(self.module, model.proto,
                                                        self.checkpoint_path)
        self.threads.set(threads)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        x = np.ascontiguousarray(feeds[self.input_name], dtype=np.float32)
        with torch.inference_mode():
            y = self.module(torch.from_numpy(x))
        return {self.output_name: y.numpy()}

    def notes(self) -> list[str]:
        return [f"torch module from {Path(self.checkpoint_path).name}"]

    def close(self) -> None:
        self.module = None
        self.threads.restore()
