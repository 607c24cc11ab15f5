"""``lstm-bench train``: train the seed's LSTM classifier and write a checkpoint (.pt + .json)."""

from __future__ import annotations

import argparse

from lstm_bench.cli import options


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
    from pathlib import Path

    from lstm_bench.errors import LSTMBenchError
    from lstm_bench.files import check_writable

    output = Path(args.output)
    if output.suffix != ".pt":
        raise LSTMBenchError(f"{output}: the checkpoint path must end in .pt")
    # both files checked before training: neither is written unless both can be
    check_writable(output, "-o")
    check_writable(output.with_suffix(".json"), "-o (its .json config)")
    if args.epochs < 1:
        raise LSTMBenchError(f"--epochs must be at least 1, got {args.epochs}")
    if args.threads < 1:
        raise LSTMBenchError(f"--threads must be at least 1, got {args.threads}")
    if args.max_steps is not None and args.max_steps < 1:
        raise LSTMBenchError(f"--max-steps must be at least 1, got {args.max_steps}")

    from lstm_bench import seed

    print(f"training LSTM({seed.HIDDEN_SIZE}) on {seed.SEQ_LEN}-step sequences: the label is the "
          f"sign of the first {seed.MARKER_STEPS} steps, then {seed.SEQ_LEN - seed.MARKER_STEPS} "
          f"steps of noise", flush=True)
    model, config = seed.train(epochs=args.epochs, seed=args.seed, threads=args.threads,
                               max_steps=args.max_steps,
                               log=lambda line: print(line, flush=True))
    pt_path, json_path = seed.save_checkpoint(model, config, output)
    print(f"held-out accuracy {config['held_out_accuracy']:.4f} on {config['held_out_size']} "
          f"sequences; trained in {config['train_seconds']:.1f} s "
          f"({config['torch_threads']} thread{'s' if config['torch_threads'] != 1 else ''})")
    print(f"wrote {pt_path} and {json_path}")
    return 0
