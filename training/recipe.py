"""The training recipes as data: :class:`TrainConfig`, the shipped one (:data:`SHIPPED`), the fine-tune's.

One place for every default ``harstream train`` and ``scripts/cross_validate.py``
use. This module imports neither NumPy nor TensorFlow: the command line reads
its defaults while it builds its parser, and ``harstream --help`` stays instant.
Why the shipped recipe is what it is, with the measurements: docs/model.md.

>>> SHIPPED.arch, SHIPPED.pocket_turns, SHIPPED.warp_time
('harnet-fusion', 'other-leg', 0.1)
>>> TrainConfig().turn_degrees  # the bare recipe: no augmentation
0.0
>>> resolve(SHIPPED).epochs, resolve(SHIPPED).stop_epoch, resolve(SHIPPED).batch_size
(16, 6, 64)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

PocketTurns = Literal[
    "none", "screen", "roll", "roll-upend", "roll-still", "roll-still-upend", "other-leg", "other-leg-upend",
]
POCKET_TURNS: tuple[PocketTurns, ...] = (
    "none", "screen", "roll", "roll-upend", "roll-still", "roll-still-upend", "other-leg", "other-leg-upend",
)
"""How pocket windows are turned (:func:`training.augment.pocket_turns`): not at all; the screen-side
half-turn about y at random; a uniform roll about y (which includes that half-turn); that roll and, for
walking windows, upside down half the time; still windows rolled and walking windows given the
screen-side half-turn at random; or still windows rolled and walking windows turned by one of the four
half-turns (screen in or out, upright or upside down); or ``other-leg``: half the still windows turned
about y by twice their own roll the other way (the same pocket on the other leg: gravity's x flips, its
angle from z is kept), and every pocket window screen-flipped at random; ``other-leg-upend`` also turns
half the walking windows upside down."""

_STUDENTS = ("harnet-fusion-lite", "harnet-fusion-lite32", "harnet-fusion-lite32-s8")
"""The cheaper students of issue 23: harnet-fusion's schedule, batch size and learning rate."""

EPOCHS: dict[str, int] = {
    "harnet-fusion": 16, "harnet": 25, "harnet-fusion-frame": 12, "harnet-gravity": 25, "notebook": 30,
    **dict.fromkeys(_STUDENTS, 16),
}
"""Default length of each architecture's cosine schedule, by the names ``harstream train --arch`` takes
(the builders: :data:`training.architectures.ARCHITECTURES`; why 16 for harnet-fusion: docs/model.md)."""
BATCH_SIZES: dict[str, int] = {
    "harnet-fusion": 64, "harnet": 64, "harnet-fusion-frame": 64, "harnet-gravity": 64, "notebook": 512,
    **dict.fromkeys(_STUDENTS, 64),
}
"""Default batch size of each architecture."""
LEARNING_RATES: dict[str, float] = {
    "harnet-fusion": 1e-3, "harnet": 1e-3, "harnet-fusion-frame": 1e-3, "harnet-gravity": 1e-3,
    "notebook": 5.5e-4, **dict.fromkeys(_STUDENTS, 1e-3),
}
"""Default peak learning rate (cosine decay) of each architecture."""


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. ``TrainConfig()`` is the bare recipe: no augmentation of any kind
    (no turns, no motion scaling, no time warp, pocket windows as recorded); :data:`SHIPPED`
    is the recipe of the shipped model."""

    arch: str = "harnet-fusion"
    """Architecture name (a key of :data:`EPOCHS` and :data:`training.architectures.ARCHITECTURES`)."""
    epochs: int | None = None
    """Epochs of the cosine schedule (early stopping may end sooner); None takes the
    architecture's default (:data:`EPOCHS`)."""
    seed: int = 0
    """Seed for Python, NumPy and the backend."""
    patience: int = 10
    """Epochs without a better validation macro-F1 before stopping."""
    batch_size: int | None = None
    """Batch size; None takes the architecture's default (:data:`BATCH_SIZES`)."""
    learning_rate: float | None = None
    """Peak learning rate (cosine decay); None takes the architecture's default (:data:`LEARNING_RATES`)."""
    train_hop: int = 16
    """Hop between training windows within a segment (< 64 augments; validation keeps 64)."""
    ema: bool = False
    """Evaluate, select and ship the exponential moving average of the weights (Polyak)."""
    max_windows: int | None = None
    """Keep at most this many training and validation windows (smoke tests)."""
    turn_degrees: float = 0.0
    """Turn each training window by a random rotation, angle ~ Normal(0, this) degrees
    (:mod:`training.augment`); 0 turns nothing."""
    scale_motion: float = 0.0
    """Scale each training window's motion by ``exp(Normal(0, this))`` (gravity kept;
    :func:`training.augment.scale_motion`); 0 scales nothing."""
    warp_time: float = 0.0
    """Replay each training window at a random speed ``exp(Normal(0, this))``
    (:func:`training.augment.warp_time`); 0 warps nothing."""
    pocket_turns: PocketTurns = "none"
    """How pocket-dataset (MotionSense) training windows are turned in the pocket (:data:`POCKET_TURNS`)."""
    refit: bool = False
    """Fit on the training AND validation subjects (no early stopping). The epoch count must then
    come from cross-validation (:mod:`training.crossval`), which is where people did the selecting."""
    stop_epoch: int | None = None
    """Stop after this epoch of the ``epochs``-long cosine schedule and keep its weights (a refit's
    epoch, chosen by cross-validation); None runs the whole schedule."""
    distil: float = 0.0
    """Knowledge distillation: the served head's target is this weight of a teacher's class
    probabilities plus the rest of the one-hot label (0: the labels alone). The teacher is
    :data:`TEACHER` fitted on the same people: per fold in cross-validation, a ``--teacher``
    artifact in training."""


TEACHER = TrainConfig(
    turn_degrees=10.0, scale_motion=0.25, warp_time=0.1, pocket_turns="other-leg", refit=True, stop_epoch=6,
)
"""The teacher of a distilled recipe (``distil`` > 0): the harnet-fusion recipe cross-validation chose
in issue 21. Cross-validation fits it on each fold's people before the student. It keeps its values
when :data:`SHIPPED` moves on."""

SHIPPED = TEACHER
"""The recipe of the shipped model: what ``harstream train`` runs with no options (on
:data:`SHIPPED_DATASETS`): fitted on every non-test person of both datasets, stopped at the
epoch cross-validation chose (docs/model.md, "Fifth round"). Every other field is the bare recipe's.
Today it is the teacher recipe itself: no student has passed cross-validation (docs/model.md, "Sixth round")."""

TEACHER_ARTIFACT = Path(__file__).resolve().parent / "teacher" / "harnet-fusion.keras"
""":data:`TEACHER` fitted on every non-test person: a copy of the served model (the same bytes), kept
here for when the served model is a student; ``harstream train --out DIR`` reproduces it today."""

SHIPPED_DATASETS: tuple[str, ...] = ("hapt", "motionsense")
"""The dataset layouts the shipped model is trained on, one folder each (waist and trouser pocket)."""


def resolve(config: TrainConfig) -> TrainConfig:
    """``config`` with the architecture's defaults filled in; an unknown architecture is an error.

    >>> resolve(TrainConfig(arch="wavenet"))
    Traceback (most recent call last):
    ...
    ValueError: arch: expected one of ['harnet', 'harnet-fusion', 'harnet-fusion-frame', 'harnet-fusion-lite', \
'harnet-fusion-lite32', 'harnet-fusion-lite32-s8', 'harnet-gravity', 'notebook'], got 'wavenet'
    """
    if config.arch not in EPOCHS:
        raise ValueError(f"arch: expected one of {sorted(EPOCHS)}, got {config.arch!r}")
    epochs = EPOCHS[config.arch] if config.epochs is None else config.epochs
    if config.stop_epoch is not None and not 1 <= config.stop_epoch <= epochs:
        raise ValueError(f"stop_epoch: expected 1..{epochs} (the schedule's epochs), got {config.stop_epoch}")
    return replace(
        config,
        epochs=epochs,
        batch_size=BATCH_SIZES[config.arch] if config.batch_size is None else config.batch_size,
        learning_rate=(
            LEARNING_RATES[config.arch] if config.learning_rate is None else config.learning_rate
        ),
    )


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning recipe (``harstream train --base``); the defaults are the documented one
    (docs/own-data.md)."""

    epochs: int = 12
    """Epochs of the cosine schedule (early stopping may end sooner)."""
    patience: int = 4
    """Epochs without a better held-out macro-F1 before stopping."""
    batch_size: int = 64
    """Batch size."""
    learning_rate: float = 5e-4
    """Peak learning rate (half the shipped model's: the weights start trained)."""
    train_hop: int = 16
    """Hop between training windows inside a span."""
    base_windows: int = 6000
    """Windows of the base model's own training data mixed in (0: none; old classes may then be
    forgotten)."""
    turn_degrees: float = 10.0
    """Turn each training window by a random rotation, angle ~ Normal(0, this) degrees."""
    flips: bool = True
    """Turn your training windows as :func:`training.augment.pocket_flips` turns pocket windows (as if the
    screen faced the other way, at random): the same phone goes into a pocket differently from one
    session to the next."""
    seed: int = 0
    """Seed of the sampling, the new rows and the backend."""
    max_windows: int | None = None
    """Keep at most this many of your training windows (smoke tests)."""
    refit: bool = True
    """After choosing the epoch on the held-out recordings, train afresh from the base on every
    recording (held-out ones too) for that many epochs: the model then knows every session given."""


FINETUNE = FinetuneConfig()
"""The documented fine-tuning recipe: what ``harstream train --base`` runs with no other options."""
