"""The online signal chain: one implementation for training and serving.

Per stream, at 50 Hz: a causal median of the last 3 samples, a 3rd-order
Butterworth low-pass at 20 Hz (noise), then a 3rd-order Butterworth low-pass
at 0.3 Hz on the de-noised acc (gravity); ``body_acc = acc - gravity``. Filter
state starts in steady state at the stream's first sample, so a new stream has
no step transient. The output has 9 channels in UCI HAR's order:
body_acc xyz, gyro xyz, total_acc xyz.

Everything is a pure function of ``(samples, state) -> (channels, state)``,
vectorised over many streams: ``samples`` has shape ``(streams, n, 6)``.
Filtering a recording in chunks of any size equals filtering it whole.

>>> import numpy as np
>>> x = np.zeros((2, 10, 6), dtype=np.float32); x[:, :, 2] = 1.0  # phones lying flat
>>> state = initial_state(x[:, 0])
>>> y, state = process(x, state)
>>> y.shape, float(abs(y[..., 0:3]).max()) < 1e-6, float(y[0, -1, 8])
((2, 10, 9), True, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import signal

from harstream import SAMPLE_RATE_HZ

CHANNELS: tuple[str, ...] = (
    "body_acc_x", "body_acc_y", "body_acc_z",
    "gyro_x", "gyro_y", "gyro_z",
    "total_acc_x", "total_acc_y", "total_acc_z",
)
"""Output channels, UCI HAR's order (the model's input order)."""

INPUT_COLUMNS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
"""Input columns: acc in g (gravity included), gyro in rad/s."""

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ChainParams:
    """Parameters of the chain; stored in every model artifact and checked on load."""

    sample_rate_hz: float = SAMPLE_RATE_HZ
    """Input sample rate."""
    median_taps: int = 3
    """Length of the causal median filter."""
    noise_order: int = 3
    """Order of the Butterworth noise low-pass."""
    noise_cutoff_hz: float = 20.0
    """Cut-off of the noise low-pass."""
    gravity_order: int = 3
    """Order of the Butterworth gravity low-pass."""
    gravity_cutoff_hz: float = 0.3
    """Cut-off of the gravity low-pass."""

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return asdict(self)


DEFAULT_PARAMS = ChainParams()


class ChainState(NamedTuple):
    """Carried filter state of a batch of streams (row ``s`` = stream ``s``)."""

    history: Array
    """Last ``median_taps - 1`` raw samples, shape (streams, taps - 1, 6)."""
    noise_zi: Array
    """Noise low-pass state, shape (sections, streams, 2, 6)."""
    gravity_zi: Array
    """Gravity low-pass state, shape (sections, streams, 2, 3)."""

    def take(self, rows: npt.ArrayLike) -> ChainState:
        """The state of the streams at ``rows``, as a new batch."""
        idx = np.asarray(rows)
        return ChainState(self.history[idx], self.noise_zi[:, idx], self.gravity_zi[:, idx])

    def put(self, rows: npt.ArrayLike, part: ChainState) -> None:
        """Write the state of a batch back into the rows it was taken from."""
        idx = np.asarray(rows)
        self.history[idx] = part.history
        self.noise_zi[:, idx] = part.noise_zi
        self.gravity_zi[:, idx] = part.gravity_zi


@lru_cache(maxsize=8)
def filters(params: ChainParams = DEFAULT_PARAMS) -> tuple[Array, Array]:
    """Second-order sections of the noise and gravity low-passes."""
    noise = signal.butter(
        params.noise_order, params.noise_cutoff_hz, fs=params.sample_rate_hz, output="sos"
    )
    gravity = signal.butter(
        params.gravity_order, params.gravity_cutoff_hz, fs=params.sample_rate_hz, output="sos"
    )
    return np.asarray(noise, dtype=np.float64), np.asarray(gravity, dtype=np.float64)


@lru_cache(maxsize=8)
def _unit_step_states(params: ChainParams = DEFAULT_PARAMS) -> tuple[Array, Array]:
    """Steady-state filter states for a unit step input (``sosfilt_zi``), computed once per design.

    A stream start costs a multiply by its first sample, not a linear solve per filter section
    (which took a third of the serving loop while thousands of streams started).
    """
    noise_sos, gravity_sos = filters(params)
    noise, gravity = signal.sosfilt_zi(noise_sos), signal.sosfilt_zi(gravity_sos)
    noise.setflags(write=False)
    gravity.setflags(write=False)
    return noise, gravity


def initial_state(first: npt.ArrayLike, params: ChainParams = DEFAULT_PARAMS) -> ChainState:
    """Steady-state filter state for streams whose first sample is ``first`` (streams, 6)."""
    x0 = np.asarray(first, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] != len(INPUT_COLUMNS):
        raise ValueError(f"first: expected shape (streams, 6), got {x0.shape}")
    noise_step, gravity_step = _unit_step_states(params)
    history = np.repeat(x0[:, None, :], params.median_taps - 1, axis=1)
    noise_zi = noise_step[:, None, :, None] * x0[None, :, None, :]
    gravity_zi = gravity_step[:, None, :, None] * x0[None, :, None, :3]
    return ChainState(history, noise_zi, gravity_zi)


def _causal_median3(x: Array, history: Array) -> tuple[Array, Array]:
    ext = np.concatenate([history, x], axis=1)
    a, b, c = ext[:, :-2], ext[:, 1:-1], ext[:, 2:]
    median = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return median, ext[:, -2:]


def process(
    samples: npt.ArrayLike, state: ChainState, params: ChainParams = DEFAULT_PARAMS
) -> tuple[npt.NDArray[np.float32], ChainState]:
    """Filter a chunk of every stream; returns the 9 channels and the new state.

    ``samples`` has shape (streams, n, 6) with n >= 1; the result has shape
    (streams, n, 9), float32.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != len(INPUT_COLUMNS) or x.shape[1] == 0:
        raise ValueError(f"samples: expected shape (streams, n >= 1, 6), got {x.shape}")
    if params.median_taps != 3:
        raise ValueError(f"median_taps: only 3 is implemented, got {params.median_taps}")
    noise_sos, gravity_sos = filters(params)
    median, history = _causal_median3(x, state.history)
    clean, noise_zi = signal.sosfilt(noise_sos, median, axis=1, zi=state.noise_zi)
    gravity, gravity_zi = signal.sosfilt(gravity_sos, clean[..., :3], axis=1, zi=state.gravity_zi)
    out = np.concatenate([clean[..., :3] - gravity, clean[..., 3:], clean[..., :3]], axis=2)
    return out.astype(np.float32), ChainState(history, noise_zi, gravity_zi)


def process_recording(
    samples: npt.ArrayLike, chunk: int = 64, params: ChainParams = DEFAULT_PARAMS
) -> npt.NDArray[np.float32]:
    """Run one whole recording (n, 6) through the chain in chunks, as the engine does."""
    x = np.asarray(samples, dtype=np.float32)
    state = initial_state(x[:1], params)
    parts = []
    for begin in range(0, len(x), chunk):
        out, state = process(x[None, begin : begin + chunk], state, params)
        parts.append(out[0])
    return np.concatenate(parts) if parts else np.zeros((0, len(CHANNELS)), np.float32)
