"""The steps of `lstm-bench run` (``lstm_bench.cli.run``): export the seed, verify on every
runtime, bench and stream; and the check of its sweep before anything is made."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from lstm_bench import seed
from lstm_bench.bench.plan import RuntimeChoice, SweepPlan, check_memory, fit_batches, \
    fit_lengths, sweep_shapes
from lstm_bench.bench.report import BenchReport
from lstm_bench.bench.runner import run_plan
from lstm_bench.errors import LSTMBenchError
from lstm_bench.exporters.source import export_source
from lstm_bench.feeds import fed_seq_len
from lstm_bench.files import check_array_size
from lstm_bench.model import Model, output_bytes
from lstm_bench.verify.report import VerifySummary
from lstm_bench.verify.run import VerifyPlan, verify

BATCHES = (1, 8, 32)


class SeedSizes:
    """The seed model as ``check_memory`` sizes it before `lstm-bench run` exports it: one
    LSTM over X [batch, SEQ_LEN, INPUT_SIZE] of float32 (``lstm_bench.seed``)."""

    path = Path("seed.onnx")
    layer_sizes = ((seed.INPUT_SIZE, seed.HIDDEN_SIZE, 1),)

    def feed_bytes(self, batch: int, seq_len: int) -> int:
        check_array_size((batch, seq_len, seed.INPUT_SIZE), np.float32, f"--batch {batch}")
        return 4 * batch * seq_len * seed.INPUT_SIZE

    def output_bytes(self, batch: int, seq_len: int) -> int:
        return output_bytes(self.layer_sizes, batch, seq_len)


def check_run(model: Model | None, batches, runtimes: RuntimeChoice, seq_lens=None) -> None:
    """`run`'s sweep checked before its folder is made: ``batches`` (None: ``BATCHES``) at
    ``seq_lens`` (None: the model's sequence length), a batch or length the model cannot take
    refused, each shape's feeds within
    LSTM_BENCH_MAX_ARRAY_MB and all of them, with the outputs of ``runtimes``, within
    LSTM_BENCH_MAX_FEEDS_MB (``check_memory``). ``model``: the model run was given; None for
    the seed, whose sizes are known without exporting it."""
    if model is None:
        sized, batches, seq_len = SeedSizes(), list(batches or BATCHES), seed.SEQ_LEN
    else:
        sized, seq_len = model, fed_seq_len(model.proto, None, model.given)
        batches, _ = fit_batches(model, batches, BATCHES)
        if seq_lens:
            fit_lengths([model], list(seq_lens))  # refuses a length the model cannot take
    check_memory([sized], [(b, t) for b in batches for t in seq_lens or [seq_len]],
                 len(runtimes.names), "run")


def export_seed(folder: Path) -> tuple[Model, dict]:
    """The shipped seed checkpoint exported to folder/seed.onnx and proven against torch: the
    model, and what the report says of its export."""
    result = export_source(seed.shipped_checkpoint(), folder / "seed.onnx")
    return Model.load(result.path), {
        "source": str(result.source), "exporter": result.exporter,
        "compared_with": result.reference, "max_abs_error": result.max_abs_error,
        "check_shape": list(result.check_shape), "passed": result.passed}


def verify_model(model: Model, runtimes: RuntimeChoice, folder: Path, source=None, *,
                 seq_len: int | None = None, threads: int | None = None) -> VerifySummary:
    """Verify ``model`` on ``runtimes`` (at batch 1, or the model's), writing
    folder/verify.json. verify judges the model's LSTM layer alone too (batch 8): its hidden
    states show the drift over time that the seed's one-probability output hides, and count in
    each runtime's one verdict. ``source``: the checkpoint the model was exported from, run as
    torch-source. ``seq_len``, ``threads``: as verify's (None: the model's length, else 100;
    each runtime's default threads)."""
    report = verify(model, VerifyPlan(runtimes.factories(), source=source, seq_len=seq_len,
                                      threads=threads))
    report.write(folder / "verify.json")
    return VerifySummary.of(report)


def bench_and_stream(plan: SweepPlan, verify_summary: VerifySummary) -> BenchReport:
    """The report of ``plan``, with the latency of streaming its model added: one step per
    call, h and c carried (``bench.streaming``), at batch 1 or the batch the model fixes. A
    model that cannot be streamed gets the reason in the report's ``streaming`` section
    instead (the rest of the report stands)."""
    (report,) = run_plan(plan, verify_summary)
    shapes, notes = sweep_shapes(plan.models, None, [1])
    streaming = replace(plan, shapes=shapes, notes=notes, streaming=True)
    try:
        (stream,) = run_plan(streaming)
    except LSTMBenchError as exc:
        report.extra["streaming"] = {"chunks": streaming.lengths, "measured": False,
                                     "reason": str(exc)}
        return report
    report.measurements += stream.measurements
    report.notes += [n for n in stream.notes if n not in report.notes]
    known = {(s.runtime, s.threads) for s in report.skipped}
    report.skipped += [s for s in stream.skipped if (s.runtime, s.threads) not in known]
    report.extra["streaming"] = stream.extra["streaming"]
    return report
