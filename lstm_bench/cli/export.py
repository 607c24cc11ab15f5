"""``lstm-bench export``: a checkpoint, .keras, .pt2 or .npz to ONNX, proven in onnxruntime."""

from __future__ import annotations

import argparse
import sys

from lstm_bench.exporters.source import ExportParityError, export_source
from lstm_bench.outputs import check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE",
                        help="a checkpoint from `lstm-bench train` (NAME.pt with NAME.json "
                             "beside it), a Keras 3 .keras archive, a torch.export program saved "
                             "with torch.export.save (.pt2), or an .npz of raw weights")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.onnx",
                        help="the ONNX file to write (only once it is proven)")
    parser.add_argument("--opset", type=int, default=None,
                        help="ONNX opset (default: the exporter's own; 22 for .npz and .keras)")
    parser.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                        help="torch exporter for checkpoints (default: auto = dynamo, "
                             "TorchScript where dynamo cannot)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="load a .pt2 whose members need torch's full unpickler (custom "
                             "objects, pickled tensors, compiled code): runs code from the "
                             "file; only for files you made yourself")


def main(args: argparse.Namespace) -> int:
    check_writable(args.output, "-o")  # before the export's seconds of work, not after
    try:
        result = export_source(args.source, args.output, opset=args.opset,
                               exporter=args.exporter, trust_pickle=args.trust_pickle)
    except ExportParityError as exc:
        print(exc.result.describe(), file=sys.stderr)
        print(f"lstm-bench export: parity failure: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0
