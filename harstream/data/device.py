"""Replaying a 50 Hz recording as another phone would send it: its rate, clock jitter and units.

A :class:`Device` turns a recording (n, 6) at 50 Hz, acc in g and gyro in
rad/s, into the samples a phone would deliver: sampled at ``rate_hz`` (the
signal is first upsampled 8x with a band-limited polyphase filter, then read
at each sample's time), optionally at jittered instants (each sample's time
moves by up to ±``jitter_ms``/2, and the value is the signal *at that
instant*, as a real sensor reads it), and optionally in other units. The
engine resamples such a stream back onto its 50 Hz grid, so the windows and
their truth are those of the recording.

>>> import numpy as np
>>> x = np.zeros((100, 6), np.float32); x[:, 2] = 1.0
>>> samples, times = Device(100.0).render(x)
>>> samples.shape, round(float(samples[50, 2]), 2), times is None
((199, 6), 1.0, True)
>>> samples, times = Device(50.0, jitter_ms=10, acc_unit="m/s2", seed=1).render(x)
>>> round(float(samples[50, 2]), 2), bool(np.all(np.diff(times) > 0))
(9.81, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import signal

from harstream import SAMPLE_RATE_HZ
from harstream.protocol import ACC_UNITS, GYRO_UNITS, MAX_RATE_HZ, MIN_RATE_HZ

UPSAMPLE = 8
"""Band-limited upsampling factor before reading the signal at arbitrary instants."""


@dataclass(frozen=True)
class Device:
    """How a simulated phone samples and sends: rate, timestamp jitter, units."""

    rate_hz: float = SAMPLE_RATE_HZ
    """Sample rate, Hz."""
    jitter_ms: float = 0.0
    """Each sample is taken up to ±jitter_ms/2 off its nominal instant (uniform); 0: regular,
    and no timestamps are sent."""
    acc_unit: str = "g"
    """Unit of the acceleration sent (``g`` or ``m/s2``)."""
    gyro_unit: str = "rad/s"
    """Unit of the angular rate sent (``rad/s`` or ``deg/s``)."""
    seed: int = 0
    """Seed of the jitter."""

    def __post_init__(self) -> None:
        if not MIN_RATE_HZ <= self.rate_hz <= MAX_RATE_HZ:
            raise ValueError(f"rate: expected {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz, got {self.rate_hz}")
        if not 0.0 <= self.jitter_ms < 1000.0 / self.rate_hz:
            raise ValueError(f"jitter: expected 0 <= ms < one sample period ({1000.0 / self.rate_hz:g} ms), "
                             f"got {self.jitter_ms}")
        if self.acc_unit not in ACC_UNITS or self.gyro_unit not in GYRO_UNITS:
            raise ValueError(f"units: expected acc in {sorted(ACC_UNITS)} and gyro in {sorted(GYRO_UNITS)}, "
                             f"got {self.acc_unit!r}, {self.gyro_unit!r}")

    @property
    def native(self) -> bool:
        """Sends exactly what the recording holds (50 Hz, no jitter, g and rad/s)."""
        return (self.rate_hz == SAMPLE_RATE_HZ and self.jitter_ms == 0
                and self.acc_unit == "g" and self.gyro_unit == "rad/s")

    @property
    def units(self) -> dict[str, str] | None:
        """The chunk header's ``units``, or None for g and rad/s."""
        if self.acc_unit == "g" and self.gyro_unit == "rad/s":
            return None
        return {"acc": self.acc_unit, "gyro": self.gyro_unit}

    def render(
        self, recording: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64] | None]:
        """The device's samples (m, 6) and, with jitter, their times in seconds from the start.

        The samples cover the recording's span: the last one is at or after
        the recording's last instant, so the engine's 50 Hz grid gets every
        sample back.
        """
        x = np.asarray(recording, dtype=np.float64)
        if self.native:
            return x.astype(np.float32), None
        n = len(x)
        duration = (n - 1) / SAMPLE_RATE_HZ
        m = math.ceil(duration * self.rate_hz - 1e-9) + 1
        times = np.arange(m) / self.rate_hz
        if self.jitter_ms:
            rng = np.random.default_rng(self.seed)
            times = times + rng.uniform(-0.5, 0.5, m) * self.jitter_ms / 1000.0
            times[0] = max(times[0], 0.0)
        fine = signal.resample_poly(x, UPSAMPLE, 1, axis=0, padtype="line")  # band-limited, 400 Hz
        fine_t = np.arange(len(fine)) / (SAMPLE_RATE_HZ * UPSAMPLE)
        clipped = np.clip(times, 0.0, fine_t[-1])
        values = np.stack([np.interp(clipped, fine_t, fine[:, c]) for c in range(x.shape[1])], axis=1)
        factors = np.array([1 / ACC_UNITS[self.acc_unit]] * 3 + [1 / GYRO_UNITS[self.gyro_unit]] * 3)
        return (values * factors).astype(np.float32), (times if self.jitter_ms else None)
