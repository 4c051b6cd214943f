"""``harstream evaluate``: score a model on a split, or on a recordings folder, as the engine serves it.

The scoring itself: :mod:`training.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harstream.paths import ENV_VAR, resolve_data_dir

NAME = "evaluate"
HELP = "score a model on a split (or a recordings folder), raw and smoothed"
DESCRIPTION = (
    "Score a model exactly as the engine serves it: every engine-grid window lying wholly inside one labelled "
    "span of a class the model has. HAPT and MotionSense are scored on a split, a recordings folder "
    "(docs/own-data.md) whole, per recording."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream evaluate``."""
    parser.description = DESCRIPTION
    parser.add_argument(
        "--model", type=Path, default=None,
        help="model artifact (.keras file with its .json beside it, or their folder); "
        "default: the model shipped with harstream",
    )
    parser.add_argument(
        "--data", type=Path, default=None,
        help="dataset folder: HAPT (holding RawData/) or MotionSense (holding A_DeviceMotion_data/), told "
        f"apart by its layout; default: ${ENV_VAR}, else the user cache where `harstream data download` "
        "puts HAPT",
    )
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"],
                        help="subjects to score, the dataset's own split (default: test; MotionSense's "
                        "test subjects are kept out of the project: use validation there)")
    parser.add_argument("--report", type=Path, default=None,
                        help="also write confusion and per-subject plots and metrics JSON here")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")


def run(args: argparse.Namespace) -> int:
    """Score the model; print a table (or JSON), write the report if asked."""
    from rich.console import Console

    from harstream.model.classifier import Classifier
    from training.evaluate import evaluate, print_evaluation, write_report

    err = Console(stderr=True)
    with err.status("loading model..."):
        classifier = Classifier.load(args.model)
    with err.status(f"classifying the {args.split} subjects' streams..."):
        result = evaluate(classifier, resolve_data_dir(args.data), args.split)
    if args.report:
        write_report(result, args.report)
        err.print(f"wrote the {args.split} report to {args.report}")
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_evaluation(result, Console())
    return 0
