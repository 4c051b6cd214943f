"""HAPT recordings as a phone would send them to ``harstream web``: Sensor Logger pushes and browser batches.

HAPT's signals are 50 Hz, acc in g (gravity included, Android's sign: the
axis pointing up reads +1 g), gyro in rad/s. They are interpolated at the
phone's own (jittered) sample times, then put in the phone's units and frame.

>>> import numpy as np
>>> samples = np.tile(np.array([[0, 0, 1, 0.1, 0.2, 0.3]], np.float32), (200, 1))
>>> rows = browser_rows(samples, rate=60.0, t0_s=1000.0)
>>> [round(v, 3) for v in rows[0]]
[1000000.0, 0.0, 0.0, 9.807, 17.189, 5.73, 11.459]
>>> body = sensor_logger_messages(samples, "ios", t0_s=1000.0)[0]
>>> body["payload"][1]["name"], round(body["payload"][1]["values"]["z"], 3)   # iOS: gravity negated
('gravity', -9.807)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

G = 9.80665
HAPT_RATE = 50.0


def phone_times(n_hapt: int, rate: float, jitter_ms: float, seed: int) -> npt.NDArray[np.float64]:
    """Seconds from the recording's first sample: ``rate`` Hz with uniform jitter, the first one exact."""
    duration = (n_hapt - 1) / HAPT_RATE
    times = np.arange(0.0, duration, 1.0 / rate)
    jitter = np.random.default_rng(seed).uniform(-jitter_ms, jitter_ms, len(times)) / 1000.0
    jitter[0] = 0.0
    times = np.clip(times + jitter, 0.0, duration)
    return np.maximum.accumulate(times)


def at_times(samples: npt.NDArray[np.float32], times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The 50 Hz ``samples`` interpolated at ``times`` (seconds from sample 0)."""
    grid = np.arange(len(samples)) / HAPT_RATE
    return np.stack([np.interp(times, grid, samples[:, k].astype(np.float64)) for k in range(6)], axis=1)


def browser_rows(samples: npt.NDArray[np.float32], rate: float = 60.0, t0_s: float = 1.7e9,
                 jitter_ms: float = 1.0, seed: int = 0) -> list[list[float]]:
    """devicemotion samples ``[t_ms, ax, ay, az, alpha, beta, gamma]``: m/s², deg/s (alpha about z)."""
    times = phone_times(len(samples), rate, jitter_ms, seed)
    values = at_times(samples, times)
    acc = values[:, :3] * G
    gyro = np.degrees(values[:, 3:])
    table = np.column_stack([(t0_s + times) * 1000.0, acc, gyro[:, 2], gyro[:, 0], gyro[:, 1]])
    return table.tolist()  # type: ignore[no-any-return]


def sensor_logger_messages(samples: npt.NDArray[np.float32], frame: str, t0_s: float = 1.7e9,
                           rate: float = 100.0, batch_s: float = 1.0, jitter_ms: float = 2.0,
                           seed: int = 0, device: str = "phone-a", session: str = "s1") -> list[dict[str, Any]]:
    """Sensor Logger HTTP Push bodies: accelerometer (without gravity) and gravity m/s², gyroscope rad/s.

    ``frame`` ``android`` (flat keys ``x``, ``y``, ``z``) or ``ios`` (every acceleration negated,
    values nested in ``"values"`` as newer app versions send them).
    """
    times = phone_times(len(samples), rate, jitter_ms, seed)
    values = at_times(samples, times)
    total = values[:, :3] * G
    width = int(rate)  # gravity: a 1 s moving mean (any split works: the gateway adds the two back)
    padded = np.pad(total, ((width // 2, width - 1 - width // 2), (0, 0)), mode="edge")
    gravity = np.stack([np.convolve(padded[:, k], np.ones(width) / width, mode="valid") for k in range(3)], axis=1)
    sign = -1.0 if frame == "ios" else 1.0
    sensors = {"accelerometer": sign * (total - gravity), "gravity": sign * gravity, "gyroscope": values[:, 3:]}
    ns = np.round((t0_s + times) * 1e9).astype(np.int64)
    per_batch = round(rate * batch_s)
    bodies = []
    for message_id, start in enumerate(range(0, len(times), per_batch)):
        payload: list[dict[str, Any]] = []
        for j in range(start, min(start + per_batch, len(times))):
            for name, xyz in sensors.items():
                x, y, z = (float(v) for v in xyz[j])
                item: dict[str, Any] = {"name": name, "time": int(ns[j])}
                item.update({"values": {"x": x, "y": y, "z": z}} if frame == "ios" else {"x": x, "y": y, "z": z})
                payload.append(item)
        bodies.append({"messageId": message_id, "sessionId": session, "deviceId": device, "payload": payload})
    return bodies

