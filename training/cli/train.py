"""``harstream train``: train a model by the shipped recipe (or options), or fine-tune one (``--base``).

Every default is read from :mod:`training.recipe`: with no options this trains
:data:`training.recipe.SHIPPED` on :data:`training.recipe.SHIPPED_DATASETS`;
with ``--base``, :data:`training.recipe.FINETUNE`. Options that the two
recipes default differently (``--epochs``, ``--patience``, ``--turn-degrees``)
default to None here, which stands for the recipe's own value (``--epochs``:
the architecture's, :data:`training.recipe.EPOCHS`, unless the recipe names one).

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> train_config(parser.parse_args(["--out", "runs/new"])) == SHIPPED
True
>>> finetune_config(parser.parse_args(["--out", "o", "--base", "shipped", "--data", "d"])) == FINETUNE
True
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harstream import HOP
from harstream.cli.args import int_in, print_json
from harstream.errors import HarstreamError
from harstream.paths import ENV_VAR, MOTIONSENSE_ENV_VAR, resolve_data_dir, resolve_motionsense_dir
from training.recipe import (
    EPOCHS,
    FINETUNE,
    POCKET_TURNS,
    SHIPPED,
    SHIPPED_DATASETS,
    TEACHER_ARTIFACT,
    FinetuneConfig,
    TrainConfig,
)

NAME = "train"
HELP = "train a model (selection on validation subjects only), or fine-tune one (--base)"
DESCRIPTION = (
    "Train a model from scratch on HAPT and/or MotionSense, or with --base fine-tune a model on your own "
    "recordings folders (docs/own-data.md): new classes are added by name, a sample of the base model's "
    "training data is mixed in so it keeps what it knows, and the epoch is chosen on held-out recordings."
)
MAX_BASE_WINDOWS = 1_000_000
"""The most ``--base-windows`` takes."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream train``, their defaults from :mod:`training.recipe`."""
    parser.description = DESCRIPTION
    _add_data_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the artifact and report")
    parser.add_argument(
        "--arch", default=SHIPPED.arch, choices=list(EPOCHS),
        help=f"architecture (default: {SHIPPED.arch}, the shipped one; harnet: the CNN-LSTM alone; notebook: "
        "the notebook's model, for comparison)")
    parser.add_argument(
        "--epochs", type=int, default=None,
        help="epochs of the cosine learning-rate schedule; early stopping may end sooner (default: the "
        f"architecture's, {EPOCHS[SHIPPED.arch]} for {SHIPPED.arch}, the shipped recipe; with --base "
        f"{FINETUNE.epochs})")
    parser.add_argument("--seed", type=int, default=SHIPPED.seed, help=f"random seed (default: {SHIPPED.seed})")
    parser.add_argument("--patience", type=int, default=None,
                        help=f"early-stopping patience in epochs (default: {SHIPPED.patience}; with --base "
                        f"{FINETUNE.patience})")
    parser.add_argument("--train-hop", type=int, default=SHIPPED.train_hop,
                        help=f"hop between training windows inside a segment (default: {SHIPPED.train_hop}, "
                        f"{HOP // SHIPPED.train_hop}x the {HOP} the engine uses: augmentation)")
    parser.add_argument("--ema", action=argparse.BooleanOptionalAction, default=SHIPPED.ema,
                        help="select and ship the moving average of the weights "
                        f"(default: {'on' if SHIPPED.ema else 'off'})")
    _add_augmentation_arguments(parser)
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=SHIPPED.refit,
                        help="fit on training AND validation subjects, no early stopping: the epoch count comes "
                        "from cross-validation, scripts/cross_validate.py (default: "
                        f"{'on' if SHIPPED.refit else 'off'}; --no-refit selects the epoch on the validation "
                        "subjects instead)")
    parser.add_argument("--stop-epoch", type=int, default=None, metavar="N",
                        help="stop after epoch N of the --epochs-long cosine schedule (default: "
                        f"{SHIPPED.stop_epoch or 'the whole schedule'}, the epoch cross-validation chose for the "
                        "shipped recipe; the whole schedule when --epochs is given)")
    parser.add_argument("--distil", type=float, default=SHIPPED.distil, metavar="WEIGHT",
                        help="knowledge distillation: the served head learns WEIGHT of --teacher's class "
                        f"probabilities plus the rest of the labels (default: {SHIPPED.distil:g}"
                        f"{', the shipped recipe' if SHIPPED.distil else ''}; 0: the labels alone)")
    parser.add_argument("--teacher", type=Path, default=TEACHER_ARTIFACT, metavar="PATH",
                        help="with --distil: the teacher model, the teacher recipe fitted on the same people "
                        f"(default: {TEACHER_ARTIFACT.relative_to(TEACHER_ARTIFACT.parents[2])})")
    parser.add_argument("--keep-epochs", action="store_true",
                        help="also write each epoch's model, OUT/epochs/epoch-N.keras (what --stop-epoch N gives)")
    parser.add_argument("--max-windows", type=int, default=SHIPPED.max_windows,
                        help="use at most this many windows per split (quick smoke runs)")
    parser.add_argument("--json", action="store_true", help="print the training metrics as JSON")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, and the fine-tune's ``--base``, ``--base-data`` and ``--base-windows``."""
    parser.add_argument(
        "--data", type=Path, action="append", default=None, metavar="DIR",
        help="dataset folder, HAPT or MotionSense; repeat for both (one of each): training windows "
        "are the union of their train splits, early stopping watches the union of their validation "
        f"splits (default: both, as the shipped model was trained: HAPT from ${ENV_VAR} or the user "
        f"cache, MotionSense from ${MOTIONSENSE_ENV_VAR}, beside HAPT, or the cache). With --base: "
        "recordings folders (labels.csv + <name>.csv) and/or HAPT or MotionSense folders, repeatable",
    )
    parser.add_argument("--base", default=None, metavar="PATH|shipped",
                        help="fine-tune this model artifact (or 'shipped', the model shipped with harstream) "
                        "on --data instead of training from scratch; --arch is then the base model's")
    parser.add_argument("--base-data", type=Path, action="append", default=None, metavar="DIR",
                        help="with --base: folder of the base model's own training data, mixed in so the old "
                        f"classes are not forgotten (repeatable; default: HAPT at ${ENV_VAR}, else the user "
                        "cache, and MotionSense where `train` finds it)")
    parser.add_argument("--base-windows", type=int_in(0, MAX_BASE_WINDOWS), default=FINETUNE.base_windows,
                        help="with --base: windows of the base model's training data mixed in (default: "
                        f"{FINETUNE.base_windows}; 0: none)")


def _add_augmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """The augmentation options (:mod:`training.augment`)."""
    parser.add_argument("--turn-degrees", type=float, default=None,
                        help="augmentation: turn each training window by a random rotation with this "
                        "standard deviation in degrees, as if the phone sat tilted (default: "
                        f"{SHIPPED.turn_degrees:g}, the shipped recipe)")
    parser.add_argument("--scale-motion", type=float, default=SHIPPED.scale_motion, metavar="SIGMA",
                        help="augmentation: scale each training window's motion (not gravity) by "
                        "exp(Normal(0, SIGMA)), for people who move with more or less vigour (default: "
                        f"{SHIPPED.scale_motion:g}, the shipped recipe; 0: off)")
    parser.add_argument("--warp-time", type=float, default=SHIPPED.warp_time, metavar="SIGMA",
                        help="augmentation: replay each training window at a random speed exp(Normal(0, "
                        f"SIGMA)), for faster or slower cadences (default: {SHIPPED.warp_time:g}, the shipped "
                        "recipe; 0: off; not used with --base)")
    parser.add_argument(
        "--pocket-turns", choices=POCKET_TURNS, default=SHIPPED.pocket_turns,
        help="augmentation: how pocket (MotionSense) training windows are turned in the pocket. screen: half "
        "of them about the phone's long axis, as if the screen faced the other way; other-leg: that, and "
        "half the still ones as if in the other leg's pocket (gravity's x mirrored); roll: each by a random "
        "angle about the long axis; roll-still: still ones rolled, walking ones as by screen; *-upend: also "
        f"half the walking ones upside down (default: {SHIPPED.pocket_turns}, the shipped recipe; "
        "docs/model.md has what each measured; with --base, anything but none flips your windows' screen "
        "side)")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The recipe the options ask for (with none: :data:`training.recipe.SHIPPED`)."""
    return replace(
        SHIPPED, arch=args.arch, epochs=SHIPPED.epochs if args.epochs is None else args.epochs, seed=args.seed,
        patience=SHIPPED.patience if args.patience is None else args.patience,
        max_windows=args.max_windows, train_hop=args.train_hop, ema=args.ema, refit=args.refit,
        stop_epoch=_stop_epoch(args),
        turn_degrees=SHIPPED.turn_degrees if args.turn_degrees is None else args.turn_degrees,
        pocket_turns=args.pocket_turns, scale_motion=args.scale_motion, warp_time=args.warp_time,
        distil=args.distil,
    )


def _stop_epoch(args: argparse.Namespace) -> int | None:
    """``--stop-epoch``; without it the shipped recipe's, unless ``--epochs`` names another schedule."""
    if args.stop_epoch is not None:
        return int(args.stop_epoch)
    return SHIPPED.stop_epoch if args.epochs is None else None


def finetune_config(args: argparse.Namespace) -> FinetuneConfig:
    """The fine-tuning recipe the options ask for (with none: :data:`training.recipe.FINETUNE`)."""
    return replace(
        FINETUNE,
        epochs=FINETUNE.epochs if args.epochs is None else args.epochs,
        patience=FINETUNE.patience if args.patience is None else args.patience,
        train_hop=args.train_hop, seed=args.seed, max_windows=args.max_windows,
        base_windows=args.base_windows, flips=args.pocket_turns != "none",
        turn_degrees=FINETUNE.turn_degrees if args.turn_degrees is None else args.turn_degrees,
    )


_DEFAULT_FOLDER = {"hapt": resolve_data_dir, "motionsense": resolve_motionsense_dir}
"""Where each dataset of :data:`training.recipe.SHIPPED_DATASETS` is found when ``--data`` is not given."""
_HINT = {
    "hapt": f"set ${ENV_VAR}, run `harstream data download`",
    "motionsense": f"set ${MOTIONSENSE_ENV_VAR}, run `harstream data download --dataset motionsense`",
}


def data_folders(data: Sequence[Path] | None) -> list[Path]:
    """The ``--data`` folders, or with none the folder of each dataset the shipped model is trained on."""
    from harstream.data.layouts import TITLES

    if data:
        return [resolve_data_dir(d) for d in data]
    folders = [_DEFAULT_FOLDER[layout]() for layout in SHIPPED_DATASETS]
    for layout, folder in zip(SHIPPED_DATASETS, folders, strict=True):
        if not folder.exists():
            raise HarstreamError(
                f"the default recipe trains on {' and '.join(TITLES[d] for d in SHIPPED_DATASETS)}, and "
                f"{TITLES[layout]} was not found at {folder} ({_HINT[layout]}, or give --data for each "
                "dataset to train on)")
    return folders


def _base_data(args: argparse.Namespace, config: FinetuneConfig) -> list[Path]:
    """The folders of the base model's training data to mix in (``--base-data``, else where they are found)."""
    from harstream.data.layouts import find_layout

    if args.base_data:
        return list(args.base_data)
    base_data = [resolve_data_dir(None)]
    if config.base_windows:
        if find_layout(resolve_motionsense_dir()) == "motionsense":  # the shipped model's second dataset
            base_data.append(resolve_motionsense_dir())
        if find_layout(base_data[0]) is None:
            raise HarstreamError(
                f"--base-data: the base model's training data is mixed in to keep what it knows, but the default "
                f"{base_data[0]} holds no dataset; run `harstream data download`, pass --base-data DIR, or "
                f"--base-windows 0 to fine-tune on your data alone"
            )
    return base_data


def run(args: argparse.Namespace) -> int:
    """Train (or with ``--base`` fine-tune) and write the artifact; with ``--json`` print the metrics."""
    from rich.console import Console

    err = Console(stderr=True)
    if args.base is None:
        folders = data_folders(args.data)  # before TensorFlow loads: a missing dataset is said at once
        from training.train import train

        recipe = train_config(args)
        metrics = train(folders, args.out, recipe, console=err, keep_epochs=args.keep_epochs,
                        teacher=args.teacher if recipe.distil > 0 else None)
    else:
        if args.refit or args.ema:
            raise HarstreamError("--base: expected no --refit or --ema (a fine-tune keeps the base model's "
                                 "architecture and runs its own short schedule, docs/own-data.md)")
        if not args.data:
            raise HarstreamError("--base: expected --data DIR with your recordings (docs/own-data.md)")
        from training.finetune import finetune

        config = finetune_config(args)
        metrics = finetune(args.base, args.data, args.out, config, base_data=_base_data(args, config),
                           console=err)
    if args.json:
        print_json(metrics)
    return 0
