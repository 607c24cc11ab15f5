"""Which int8 settings suit this CPU: ``python -m tools.int8_survey``.

Quantizes small random LSTMs (T=16, B=4, I=8, H=16, as in docs/verify.md) with every
(per_channel, reduce_range) pair and prints the max abs error of Y against the float64 truth,
next to the settings ``ort-cpu-int8`` chooses for this CPU (``ort_variants.int8_settings``).
Run it on each CPU family to check that choice; the figures are onnxruntime's on that CPU.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from lstm_bench import reference
from lstm_bench.exporters.weights import export_weights
from lstm_bench.feeds import make_inputs
from lstm_bench.runtimes.ort_cpu import create_session, session_options
from lstm_bench.runtimes.ort_variants import cpu_flags, int8_settings
from lstm_bench.spec import LSTMSpec, LSTMWeights


def survey(models: int = 6) -> dict[tuple[bool, bool], list[float]]:
    """(per_channel, reduce_range) -> max abs error of Y of each random model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = Path(tempfile.mkdtemp(prefix="lstm-bench-"))
    errors: dict[tuple[bool, bool], list[float]] = {}
    logging.disable(logging.WARNING)
    try:
        for seed in range(models):
            source = folder / "model.onnx"
            model = export_weights(LSTMWeights.random(LSTMSpec(8, 16), seed=seed), source)
            feeds = make_inputs(model, batch=4, seq_len=16, seed=seed).feeds
            truth = reference.run_model(model, feeds)["Y"]
            for per_channel in (False, True):
                for reduce_range in (False, True):
                    out = folder / "quantized.onnx"
                    quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8,
                                     per_channel=per_channel, reduce_range=reduce_range)
                    session = create_session("int8-survey", out, ["CPUExecutionProvider"],
                                             session_options(1))
                    (y,) = session.run(["Y"], feeds)
                    errors.setdefault((per_channel, reduce_range), []).append(
                        float(np.abs(y - truth).max()))
    finally:
        logging.disable(logging.NOTSET)
        shutil.rmtree(folder, ignore_errors=True)
    return errors


def main(argv=None) -> int:
    models = int((argv or sys.argv[1:] or ["6"])[0])
    chosen = int8_settings(cpu_flags())
    print(f"ort-cpu-int8 on this CPU: {chosen}")
    for (per_channel, reduce_range), values in survey(models).items():
        mark = " <- chosen" if (per_channel, reduce_range) == (chosen.per_channel,
                                                                chosen.reduce_range) else ""
        print(f"per_channel={per_channel!s:5} reduce_range={reduce_range!s:5} "
              f"max abs Y {min(values):.3f}-{max(values):.3f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
