"""``lstm-bench export``: a checkpoint, .keras or .npz to ONNX, proven in onnxruntime."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a checkpoint from `lstm-bench train` (NAME.pt with NAME.json "
                             "beside it), a Keras 3 .keras archive, or an .npz of raw weights")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.onnx",
                        help="the ONNX file to write (only once it is proven)")
    parser.add_argument("--opset", type=int, default=None,
                        help="ONNX opset (default: the exporter's own; 22 for .npz and .keras)")
    parser.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                        help="torch exporter for checkpoints (default: auto = dynamo, "
                             "TorchScript where dynamo cannot)")


def main(args: argparse.Namespace) -> int:
    from lstm_bench.exporters.source import ExportParityError, export_source

    try:
        result = export_source(args.source, args.output, opset=args.opset,
                               exporter=args.exporter)
    except ExportParityError as exc:
        print(exc.result.describe(), file=sys.stderr)
        print(f"lstm-bench export: parity failure: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0
