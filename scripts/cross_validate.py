"""Cross-validate a training recipe over the people of both datasets (a benchmark-length job).

    .venv/bin/python scripts/cross_validate.py --out runs/cv-shipped   # the shipped recipe, 3 folds at once
    .venv/bin/python scripts/cross_validate.py --scale-motion 0.4 --out runs/cv-vigour

HAPT's 21 non-test subjects and MotionSense's 16, in folds of whole people
(training.crossval). The datasets are found as `harstream train` finds them
(--data for each, else $HARSTREAM_DATA and MotionSense beside it).

The recipe is the shipped one (training.recipe.SHIPPED) unless told
otherwise: each recipe option overrides that field, and --bare starts from the
bare recipe (TrainConfig(): no augmentation) instead. Prints one line per fold
and epoch (each dataset's held-out accuracy on the engine grid) and, at the
end, the CV table at the epoch the pick rule chooses (docs/model.md); with
--json the whole result as JSON on stdout. Timings per fold: docs/model.md.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.recipe import EPOCHS, POCKET_TURNS, SHIPPED, TrainConfig

OVERRIDES = ("arch", "epochs", "seed", "train_hop", "turn_degrees", "scale_motion", "warp_time", "pocket_turns",
             "distil")
"""The recipe fields an option may set (None: the base recipe's)."""


def build_parser() -> argparse.ArgumentParser:
    """The script's options; every recipe option defaults to None (the base recipe's value)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=None, metavar="DIR",
                        help="dataset folder, HAPT or MotionSense; repeat for both (default: both, found as "
                        "`harstream train` finds them)")
    parser.add_argument("--bare", action="store_true",
                        help="start from the bare recipe (no augmentation) instead of the shipped one")
    parser.add_argument("--arch", default=None, choices=list(EPOCHS), help="architecture")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the architecture's)")
    parser.add_argument("--seed", type=int, default=None, help="seed for weights and shuffling")
    parser.add_argument("--train-hop", type=int, default=None, help="hop between training windows")
    parser.add_argument("--turn-degrees", type=float, default=None,
                        help="augment: turn training windows by random rotations of this std")
    parser.add_argument("--scale-motion", type=float, default=None, metavar="SIGMA",
                        help="augment: scale each window's motion by exp(Normal(0, SIGMA))")
    parser.add_argument("--warp-time", type=float, default=None, metavar="SIGMA",
                        help="augment: replay each window at a speed exp(Normal(0, SIGMA))")
    parser.add_argument("--pocket-turns", choices=POCKET_TURNS, default=None,
                        help="augment: how pocket windows are turned (none act on HAPT's folds)")
    parser.add_argument("--distil", type=float, default=None, metavar="WEIGHT",
                        help="distil: each fold first fits the teacher recipe (training.recipe.TEACHER) on its "
                        "people; the student's served head learns WEIGHT of its probabilities + the rest of "
                        "the labels")
    parser.add_argument("--folds", type=int, default=3, help="folds of whole subjects (default: 3)")
    parser.add_argument("--jobs", type=int, default=3, help="folds trained at once (default: 3)")
    parser.add_argument("--out", type=Path, default=None, help="folder for fold-<i>.json and cv.json")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="run only these fold indices")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed that draws the folds (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def recipe(args: argparse.Namespace) -> TrainConfig:
    """The shipped recipe (the bare one with ``--bare``) with the fields the options set."""
    base = TrainConfig() if args.bare else SHIPPED
    given = {field: getattr(args, field) for field in OVERRIDES if getattr(args, field) is not None}
    return replace(base, **given)


def main() -> None:
    from training.cli.train import data_folders
    from training.crossval import cross_validate

    args = build_parser().parse_args()
    result = cross_validate(
        data_folders(args.data), recipe(args), args.folds, args.jobs, args.only, args.fold_seed, args.out
    )
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("score per epoch (mean of the datasets' CV accuracies):", result["score_per_epoch"])
    print(f"pick rule: epoch {result['epoch']}, score {result['score']}")
    for layout, row in result["at_epoch"].items():
        if isinstance(row, dict):
            print(f"  {layout}: accuracy {row['accuracy']}, subjects mean {row['subject_mean']} "
                  f"(std {row['subject_std']}), worst subject {row['worst_subject']}: {row['worst_accuracy']}")


if __name__ == "__main__":
    main()
