"""Send samples to harstream the way a phone or wearable would.

    python examples/producer.py [tcp://127.0.0.1:5555] [stream-id]

Reads (here: synthesises) 50 Hz accelerometer (g) and gyroscope (rad/s)
samples and sends them in chunks of 25 (0.5 s) as protocol v1 messages:
frame 0 the stream id, frame 1 a JSON header, frame 2 n x 6 little-endian
float32. Uses only pyzmq, json and numpy.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import zmq

RATE = 50
CHUNK = 25


def read_sensor(n: int, t0: float) -> np.ndarray:
    """Stand-in for the device's sensor API: a person walking, phone upright."""
    t = t0 + np.arange(n) / RATE
    acc = np.c_[0.25 * np.sin(2 * np.pi * 1.8 * t), 1.0 + 0.3 * np.sin(2 * np.pi * 1.8 * t + 1),
                0.1 * np.cos(2 * np.pi * 0.9 * t)]
    gyro = 0.6 * np.c_[np.sin(2 * np.pi * 0.9 * t), np.cos(2 * np.pi * 1.8 * t), 0 * t]
    return np.hstack([acc, gyro]).astype("<f4")


def main() -> None:
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"
    stream = sys.argv[2] if len(sys.argv) > 2 else "phone-1"
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoint)
    seq, start = 0, time.time()
    try:
        while True:
            samples = read_sensor(CHUNK, seq / RATE)
            header = {"v": 1, "seq": seq, "rate": RATE, "t0": start + seq / RATE}
            push.send_multipart([stream.encode(), json.dumps(header).encode(), samples.tobytes()])
            seq += CHUNK
            time.sleep(max(0.0, start + seq / RATE - time.time()))  # real-time pace
    except KeyboardInterrupt:
        pass
    finally:
        push.close(linger=1000)
        ctx.term()


if __name__ == "__main__":
    main()
