"""``lstm-bench train``: train the seed's LSTM classifier and write a checkpoint (.pt + .json)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_bench.cli import options
from lstm_bench.errors import LSTMBenchError
from lstm_bench.outputs import check_writable
from lstm_bench.seed import (FORMAT, FORMAT_VERSION, HELD_OUT_SIZE, HIDDEN_SIZE, INPUT_SIZE,
                             MARKER_STEPS, NOISE, SEQ_LEN, VALIDATION_OFFSET, accuracy,
                             build_model, held_out, make_dataset, save_checkpoint)

if TYPE_CHECKING:
    from lstm_bench.seed import SeedLSTM  # made on first use, with torch

# an epoch is 4096 sequences (about a second): the bounds are far beyond any useful run
MAX_EPOCHS, MAX_STEPS = 10_000, 10_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="seed_lstm.pt", metavar="CHECKPOINT",
                        help="checkpoint path ending in .pt; its config goes to the .json beside "
                             "it (default: seed_lstm.pt)")
    parser.add_argument("--epochs", type=int, default=8,
                        help="most epochs of 4096 sequences; stops early at 99%% validation "
                             "accuracy (default: 8)")
    options.add_seed(parser, help_="seed of data and initial weights (default 0)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="stop after N optimizer steps (a smoke test; the model will be poor)")
    options.add_threads(parser, many=False, default=1,
                        help_="torch intra-op threads (default: 1, the fastest for this small "
                              "model on a busy machine)")


def main(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix != ".pt":
        raise LSTMBenchError(f"{output}: the checkpoint path must end in .pt")
    # both files checked before training: neither is written unless both can be
    check_writable(output, "-o")
    check_writable(output.with_suffix(".json"), "-o (its .json config)")
    # bounded above too: a typo such as --epochs 80000000 would run for weeks, not fail
    if not 1 <= args.epochs <= MAX_EPOCHS:
        raise LSTMBenchError(f"--epochs must be 1 to {MAX_EPOCHS}, got {args.epochs}")
    if args.threads < 1:
        raise LSTMBenchError(f"--threads must be at least 1, got {args.threads}")
    if args.max_steps is not None and not 1 <= args.max_steps <= MAX_STEPS:
        raise LSTMBenchError(f"--max-steps must be 1 to {MAX_STEPS}, got {args.max_steps}")

    print(f"training LSTM({HIDDEN_SIZE}) on {SEQ_LEN}-step sequences: the label is the "
          f"sign of the first {MARKER_STEPS} steps, then {SEQ_LEN - MARKER_STEPS} "
          f"steps of noise", flush=True)
    model, config = train(Schedule(epochs=args.epochs, max_steps=args.max_steps),
                          seed=args.seed, threads=args.threads,
                          log=lambda line: print(line, flush=True))
    pt_path, json_path = save_checkpoint(model, config, output)
    print(f"held-out accuracy {config['held_out_accuracy']:.4f} on {config['held_out_size']} "
          f"sequences; trained in {config['train_seconds']:.1f} s "
          f"({config['torch_threads']} thread{'s' if config['torch_threads'] != 1 else ''})")
    print(f"wrote {pt_path} and {json_path}")
    return 0


@dataclass(frozen=True)
class Schedule:
    """How long and how fast the seed model trains: at most ``epochs`` passes over ``n_train``
    sequences in batches of ``batch_size``, Adam at ``lr``, stopping early once the validation
    accuracy reaches ``target_accuracy``; ``max_steps`` caps the optimizer steps (tests use a
    few)."""

    epochs: int = 8
    n_train: int = 4096
    batch_size: int = 128
    lr: float = 5e-3
    target_accuracy: float = 0.99
    max_steps: int | None = None


def train(schedule: Schedule = Schedule(), *, seed: int = 0, threads: int | None = 1,
          log=print) -> tuple[SeedLSTM, dict]:
    """Train the seed model with binary cross-entropy and Adam; returns (model, config).

    ``log`` receives one line per epoch. The returned config holds the held-out accuracy,
    measured on a set never used in training.

    ``threads`` defaults to 1: the model is small enough that a second thread gains little on
    an idle machine, while on a busy one two OpenMP threads spin-wait at every one of the
    thousands of small ops (measured: 2.5 s with 1 thread, 50 s with 2, beside another job).
    None keeps torch's setting. The process's thread count is restored afterwards.
    """
    import torch

    previous_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        return _train(schedule, seed, log)
    finally:
        torch.set_num_threads(previous_threads)


def _train(schedule: Schedule, seed: int, log) -> tuple[SeedLSTM, dict]:
    import torch
    from torch import nn

    epochs, n_train, batch_size = schedule.epochs, schedule.n_train, schedule.batch_size
    max_steps = schedule.max_steps
    if epochs < 1 or n_train < batch_size or batch_size < 1:
        raise LSTMBenchError(f"train needs epochs >= 1 and n_train >= batch_size >= 1, got "
                             f"epochs={epochs}, n_train={n_train}, batch_size={batch_size}")
    started = time.perf_counter()
    model = build_model(seed)
    X, y = (torch.from_numpy(a) for a in make_dataset(n_train, seed))
    X_val, y_val = make_dataset(1024, seed + VALIDATION_OFFSET)
    optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr)
    loss_fn = nn.BCEWithLogitsLoss()  # BCE on sigmoid outputs, computed stably from the logits
    order_rng = torch.Generator().manual_seed(seed)
    steps, epoch, val_accuracy = 0, 0, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=order_rng)
        total, seen = 0.0, 0
        for start in range(0, n_train - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            loss = loss_fn(model.logits(X[index])[:, 0], y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
            seen += len(index)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        val_accuracy = accuracy(model, X_val, y_val)
        log(f"epoch {epoch}/{epochs}  steps {steps}  loss {total / seen:.4f}  "
            f"val accuracy {val_accuracy:.4f}  {time.perf_counter() - started:.1f} s")
        if val_accuracy >= schedule.target_accuracy or (max_steps is not None
                                                         and steps >= max_steps):
            break
    train_seconds = time.perf_counter() - started
    model.eval()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE,
                         "seq_len": SEQ_LEN, "batch_first": True,
                         "head": "last hidden state -> Linear(hidden_size, 1) -> sigmoid"},
        "task": {"marker_steps": MARKER_STEPS, "noise": NOISE,
                 "data": "lstm_bench.seed.make_dataset"},
        "seed": seed,
        "epochs": epoch,
        "steps": steps,
        "batch_size": batch_size,
        "lr": schedule.lr,
        "validation_accuracy": val_accuracy,
        "held_out_accuracy": accuracy(model, *held_out({"seed": seed})),
        "held_out_size": HELD_OUT_SIZE,
        "train_seconds": round(train_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
    return model, config
