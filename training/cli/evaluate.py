"""``harstream evaluate``: score a model on a split, or on a recordings folder, as the engine serves it.

The scoring itself: :mod:`training.evaluate`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harstream.cli.args import add_data_arg, add_model_arg, data_dir, print_json

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
    add_model_arg(parser)
    add_data_arg(parser, any_layout=True)
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
        result = evaluate(classifier, data_dir(args), args.split)
    if args.report:
        write_report(result, args.report)
        err.print(f"wrote the {args.split} report to {args.report}")
    if args.json:
        print_json(result)
    else:
        print_evaluation(result, Console())
    return 0
