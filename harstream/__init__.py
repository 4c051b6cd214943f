"""harstream: streaming real-time human activity recognition.

Six-axis inertial samples (acc in g, gyro in rad/s, 50 Hz) stream in over
ZeroMQ; every stream runs through one online signal chain
(:mod:`harstream.signal.chain`), is cut into 128-sample windows with a 64-sample hop
(:mod:`harstream.signal.windows`), and the windows of all streams are classified in
batches by a Keras CNN-LSTM (:mod:`harstream.model.classifier`).

>>> from harstream import ACTIVITIES
>>> ACTIVITIES[0], len(ACTIVITIES)
('WALKING', 6)
"""

from __future__ import annotations

__version__ = "0.1.0"

ACTIVITIES: tuple[str, ...] = (
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
)
"""The six activity classes in UCI HAR's order (activity id = index + 1)."""

SAMPLE_RATE_HZ = 50
"""Sample rate every stream must have, in Hz."""

WINDOW = 128
"""Samples per classified window (2.56 s at 50 Hz)."""

HOP = 64
"""Samples between the ends of consecutive windows (50% overlap)."""

DEFAULT_INGEST = "tcp://127.0.0.1:5555"
"""Where the engine binds its PULL socket; producers connect PUSH."""

DEFAULT_PUBLISH = "tcp://127.0.0.1:5556"
"""Where the engine binds its PUB socket; subscribers connect SUB."""

MAX_SAMPLES_PER_CHUNK = 50 * 60
"""At most one minute at 50 Hz per chunk (72,000 bytes); producers send ~0.1-1 s."""

# The three protocol facts above live here, not in harstream.protocol, so that modules read
# while the command line is parsed (harstream.serve.config) need not import numpy.

__all__ = [
    "ACTIVITIES", "DEFAULT_INGEST", "DEFAULT_PUBLISH", "HOP", "MAX_SAMPLES_PER_CHUNK", "SAMPLE_RATE_HZ",
    "WINDOW", "__version__",
]
