"""Training-time augmentation: random turns of the phone in its holder.

People wear the phone at slightly different tilts; a model that learns each
training subject's tilt generalises worse to new people. Turning every
training window by a small random rotation (the same rotation for body_acc,
gyro and total_acc, as if the phone had been mounted turned) teaches the
model that tilt differences of that size are not activity differences.
The signal chain's filters act per axis and linearly, so turning its output
equals turning its input (up to the 3-sample median).

>>> import numpy as np
>>> x = np.zeros((2, 128, 9), np.float32); x[..., 8] = 1.0  # gravity along z
>>> turned = turn_windows(x, degrees=10.0, seed=0)
>>> np.allclose(np.linalg.norm(turned[..., 6:9], axis=-1), 1.0, atol=1e-6)  # lengths kept
True

A phone in a trouser pocket sits with its screen towards the thigh or away
from it, at any roll about the thigh (a front or a side pocket, the left or the
right leg), and now and then upside down: :func:`pocket_turns` turns pocket
windows about the phone's long axis (y) and, for walking only, upside down.
Turns about y keep where "up" lies along the thigh (the posture). Upside-down
windows of still postures are not made: an upside-down pocket phone of a
standing person reads gravity along +y, as HAPT's waist phone does for a
person lying down, so with such windows in training HAPT's LAYING windows
read as STANDING (docs/model.md has the count); walking upside down looks
like no waist posture.

>>> x[..., 6] = 0.5  # gravity partly along x
>>> flipped = pocket_flips(x, np.array([True, True]), seed=1)
>>> sorted({float(v) for v in flipped[:, 0, 6]}) <= [-0.5, 0.5]
True
>>> rolled = pocket_turns(x, np.array([True, True]), np.array([False, True]), "roll", seed=1)
>>> np.allclose(rolled[..., 7], x[..., 7]) and not np.allclose(rolled[..., 6], x[..., 6])  # y kept
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from training.recipe import POCKET_TURNS, PocketTurns


def random_rotations(n: int, degrees: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``n`` rotation matrices about uniformly random axes, angles ~ Normal(0, ``degrees``)."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.normal(scale=degrees, size=n))
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    rotation: npt.NDArray[np.float64] = np.eye(3)[None] + sin * k + (1 - cos) * (k @ k)  # Rodrigues
    return rotation


def turn_windows(x: npt.NDArray[np.float32], degrees: float, seed: int) -> npt.NDArray[np.float32]:
    """Windows (n, time, 9) in the chain's channel order, each turned by its own random rotation."""
    if degrees <= 0:
        return x
    return rotate(x, random_rotations(len(x), degrees, np.random.default_rng(seed)).astype(np.float32))


HALF_TURNS: npt.NDArray[np.float32] = np.array([np.diag(d) for d in ((1, 1, 1), (-1, 1, -1))], dtype=np.float32)
"""The identity and the half-turn about y: screen towards the thigh or away (rotations, so
acceleration and angular rate turn alike)."""


def pocket_flips(
    x: npt.NDArray[np.float32], which: npt.NDArray[np.bool_], seed: int
) -> npt.NDArray[np.float32]:
    """Windows (n, time, 9) where each ``which`` window is turned by one of :data:`HALF_TURNS` at random.

    Applied to pocket recordings only: a waist phone sits one way in its holder.
    """
    if not which.any():
        return x
    rng = np.random.default_rng(seed)
    choice = np.where(which, rng.integers(0, len(HALF_TURNS), len(x)), 0)
    signs = np.diagonal(HALF_TURNS, axis1=1, axis2=2)[choice]  # (n, 3)
    out = x.copy()
    for begin in (0, 3, 6):  # body_acc, gyro, total_acc
        out[..., begin : begin + 3] *= signs[:, None, :]
    return out


def _turn_about_y(angle: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Rotation matrices (n, 3, 3) by ``angle`` radians about the phone's y axis."""
    cos, sin = np.cos(angle), np.sin(angle)
    r = np.zeros((len(angle), 3, 3))
    r[:, 0, 0], r[:, 0, 2], r[:, 1, 1], r[:, 2, 0], r[:, 2, 2] = cos, sin, 1.0, -sin, cos
    return r.astype(np.float32)


def rotate(x: npt.NDArray[np.float32], rotation: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Windows (n, time, 9) each turned by its rotation (n, 3, 3): body_acc, gyro and total_acc alike."""
    out = np.empty_like(x)
    for begin in (0, 3, 6):  # body_acc, gyro, total_acc
        out[..., begin : begin + 3] = np.einsum("ntj,nij->nti", x[..., begin : begin + 3], rotation)
    return out


def pocket_turns(
    x: npt.NDArray[np.float32], which: npt.NDArray[np.bool_], moving: npt.NDArray[np.bool_],
    mode: PocketTurns, seed: int,
) -> npt.NDArray[np.float32]:
    """Windows (n, time, 9) with each ``which`` (pocket) window turned as ``mode`` says
    (:data:`training.recipe.POCKET_TURNS`); ``moving`` marks the walking windows, the only ones turned upside down.

    >>> w = np.zeros((4, 2, 9), np.float32); w[..., 7] = -1.0  # upright: gravity along -y
    >>> up = pocket_turns(w, np.ones(4, bool), np.array([1, 1, 0, 0], bool), "roll-upend", seed=3)
    >>> sorted(set(np.round(up[:, 0, 7], 3).tolist()))  # still windows are never turned over
    [-1.0, 1.0]
    >>> bool((up[2:, 0, 7] == -1.0).all())
    True
    """
    if mode not in POCKET_TURNS:
        raise ValueError(f"pocket turns: expected one of {POCKET_TURNS}, got {mode!r}")
    if mode == "none" or not which.any():
        return x
    if mode == "screen":
        return pocket_flips(x, which, seed)
    rng = np.random.default_rng(seed)
    if mode in ("other-leg", "other-leg-upend"):
        gravity = (x[..., 6:9] - x[..., 0:3]).mean(axis=1)  # (n, 3): total minus body acceleration
        roll = np.arctan2(gravity[:, 0], gravity[:, 2])  # the window's roll about y, from +z
        mirror = which & ~moving & (rng.random(len(x)) < 0.5)
        flip = which & (rng.random(len(x)) < 0.5)
        angle = np.where(mirror, -2.0 * roll, 0.0) + np.where(flip, np.pi, 0.0)
    else:
        angle = np.where(which, rng.uniform(-np.pi, np.pi, len(x)), 0.0)
        if mode in ("roll-still", "roll-still-upend"):  # walking windows: the screen-side half-turn (0 or pi)
            angle = np.where(which & moving, np.pi * (rng.random(len(x)) < 0.5), angle)
    rotation = _turn_about_y(angle)
    if mode.endswith("-upend"):
        upend = which & moving & (rng.random(len(x)) < 0.5)
        rotation[upend] = rotation[upend] @ np.diag([-1.0, -1.0, 1.0]).astype(np.float32)  # half-turn about z
    return rotate(x, rotation)


def scale_motion(x: npt.NDArray[np.float32], sigma: float, seed: int) -> npt.NDArray[np.float32]:
    """Windows (n, time, 9) whose motion (body_acc, gyro, and the body part of total_acc) is scaled by a
    random factor ``exp(Normal(0, sigma))`` per window: people move with more or less vigour.

    Gravity (``total_acc - body_acc``) is kept.

    >>> w = np.ones((3, 4, 9), np.float32)
    >>> out = scale_motion(w, 0.2, seed=0)
    >>> np.allclose(out[..., 6:9] - out[..., 0:3], 0.0)  # gravity kept (here 0)
    True
    >>> scale_motion(w, 0.0, seed=0) is w
    True
    """
    if sigma <= 0:
        return x
    factor = np.exp(np.random.default_rng(seed).normal(0.0, sigma, len(x))).astype(np.float32)[:, None, None]
    out = x.copy()
    body = x[..., 0:3]
    out[..., 0:6] = x[..., 0:6] * factor
    out[..., 6:9] = x[..., 6:9] + (factor - 1) * body
    return out


def warp_time(x: npt.NDArray[np.float32], sigma: float, seed: int) -> npt.NDArray[np.float32]:
    """Windows (n, time, 9) replayed at a random speed ``exp(Normal(0, sigma))`` per window: a person's
    cadence, faster or slower (linear interpolation from the window's start; the last sample is held
    where a faster window would run past its end).

    >>> w = np.tile(np.arange(8, dtype=np.float32)[None, :, None], (2, 1, 9))
    >>> warp_time(w, 0.0, seed=0) is w
    True
    >>> out = warp_time(w, 0.2, seed=0)
    >>> bool((out[:, 0] == 0).all()) and bool((np.diff(out[..., 0], axis=1) >= 0).all())
    True
    """
    if sigma <= 0:
        return x
    n, steps = x.shape[:2]
    speed = np.exp(np.random.default_rng(seed).normal(0.0, sigma, n))
    where = np.minimum(np.arange(steps)[None, :] * speed[:, None], steps - 1)  # (n, steps)
    lo = np.floor(where).astype(np.int64)
    hi = np.minimum(lo + 1, steps - 1)
    frac = (where - lo).astype(np.float32)[..., None]
    rows = np.arange(n)[:, None]
    out: npt.NDArray[np.float32] = x[rows, lo] * (1 - frac) + x[rows, hi] * frac
    return out.astype(np.float32)
