"""``harstream export``: write the classifier as ONNX or TFLite for on-device use (docs/on-device.md).

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--format", "tflite", "--out", "m.tflite", "--batch", "8"])
>>> args.format, args.batch, args.model
('tflite', 8, None)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harstream.cli.args import add_data_arg, add_model_arg, int_in, print_json

NAME = "export"
HELP = "write the classifier as ONNX or TFLite for on-device use (docs/on-device.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream export``."""
    parser.description = (
        "Write the classifier as one ONNX or TFLite file that takes the chain's windows "
        "(n, 128, 9) float32 in physical units and returns the class probabilities (standardisation "
        "inside). The file is run here on every engine-grid window of the model's test subjects and "
        "written only if it agrees with Keras (>= 99.9% of labels, probabilities within 1e-3)."
    )
    parser.add_argument("--format", required=True, choices=["onnx", "tflite"],
                        help="onnx: any batch size (tf2onnx, opset 17); tflite: builtin ops only, fixed batch")
    add_model_arg(parser)
    parser.add_argument("--out", type=Path, required=True,
                        help="file to write, ending in .onnx or .tflite (replaced only once the check passes)")
    parser.add_argument("--batch", type=int_in(1, 4096), default=None,
                        help="tflite only: the file's fixed batch size (default: 1, one window per call)")
    add_data_arg(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON: agreement with Keras, file size, windows/s, chain")


def run(args: argparse.Namespace) -> int:
    """Export, check and write the file; 0 once written (a failed check raises ExportError)."""
    from harstream.tools.export import export, print_report

    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(f"[dim]export:[/] {escape(text)}...", highlight=False)

    result = export(args.format, args.out, model=args.model, data_dir=args.data, batch=args.batch, log=say)
    if args.json:
        print_json(result)
    else:
        print_report(result, Console())
    return 0
