"""Cross-validate a training recipe over the 21 non-test subjects (a benchmark-length job).

    .venv/bin/python scripts/cross_validate.py --arch harnet-fusion --folds 7 --json > cv.json

Prints one line per fold and epoch (held-out accuracy on the engine grid) and,
at the end, the mean curve; with --json the whole result as JSON on stdout.
About 3 minutes per fold for harnet-fusion on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from harstream.paths import resolve_data_dir
from training.crossval import cross_validate
from training.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="HAPT folder (default: $HARSTREAM_DATA)")
    parser.add_argument("--arch", default=TrainConfig().arch, help="architecture (default: the shipped one)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the architecture's)")
    parser.add_argument("--folds", type=int, default=7, help="folds of whole subjects (default: 7)")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="run only these fold indices")
    parser.add_argument("--turn-degrees", type=float, default=0.0,
                        help="augment: turn training windows by random rotations of this std (default: 0)")
    parser.add_argument("--train-subjects", type=int, default=None,
                        help="fit each fold on this many of its training subjects (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and shuffling (default: 0)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed that draws the folds (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    config = TrainConfig(arch=args.arch, epochs=args.epochs, seed=args.seed, turn_degrees=args.turn_degrees)
    result = cross_validate(
        resolve_data_dir(args.data), config, args.folds, args.only, args.train_subjects, args.fold_seed
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("mean held-out accuracy per epoch:", result["mean_accuracy_per_epoch"])


if __name__ == "__main__":
    main()
