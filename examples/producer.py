"""Send samples to harstream the way a phone or wearable would.

    python examples/producer.py [tcp://127.0.0.1:5555] [stream-id]
    python examples/producer.py ... --key phone-1.key_secret --server-key engine.key

Reads (here: synthesises) 50 Hz accelerometer (g) and gyroscope (rad/s)
samples and sends them in chunks of 25 (0.5 s) as protocol v1 messages:
frame 0 the stream id, frame 1 a JSON header, frame 2 n x 6 little-endian
float32. With --key and --server-key (an engine started with keys, see
docs/security.md) the connection is CurveZMQ-encrypted and authenticated.
Uses only pyzmq, json and numpy.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import zmq
import zmq.auth

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
    parser = argparse.ArgumentParser(description="Send synthetic walking samples to harstream.")
    parser.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5555",
                        help="the engine's ingest endpoint (default: tcp://127.0.0.1:5555)")
    parser.add_argument("stream", nargs="?", default="phone-1", help="stream id (default: phone-1)")
    parser.add_argument("--key", help="this producer's secret key file (NAME.key_secret)")
    parser.add_argument("--server-key", help="the engine's public key file (NAME.key)")
    args = parser.parse_args()
    if (args.key is None) != (args.server_key is None):
        parser.error("--key and --server-key go together")
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    if args.key is not None:  # CurveZMQ: set before connecting
        public, secret = zmq.auth.load_certificate(args.key)
        if secret is None:
            parser.error(f"--key {args.key}: no secret key in it; expected NAME.key_secret")
        push.curve_publickey, push.curve_secretkey = public, secret
        push.curve_serverkey, _ = zmq.auth.load_certificate(args.server_key)
    push.connect(args.endpoint)
    stream = args.stream
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
