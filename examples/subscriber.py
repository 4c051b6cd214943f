"""Subscribe to harstream's predictions with nothing but pyzmq and json.

    python examples/subscriber.py [tcp://127.0.0.1:5556] [stream-id-prefix]

Prints one line per classified window; engine topics ("$stats", "$error")
are printed too. No harstream import: any program can do this.
"""

from __future__ import annotations

import json
import sys

import zmq


def main() -> None:
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5556"
    prefix = sys.argv[2] if len(sys.argv) > 2 else ""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())  # topic = stream id; "" = everything
    sub.connect(endpoint)
    try:
        while True:
            topic, body = sub.recv_multipart()
            msg = json.loads(body)
            if topic == b"$stats":
                print(f"[stats] streams={msg['streams']} windows/s={msg['windows_per_s']} "
                      f"latency p99={msg['latency_ms']['p99']} ms rejected={msg['rejected']}")
            elif topic == b"$error":
                print(f"[error] {msg['stream']}: {msg['code']}: {msg['detail']}")
            else:
                print(f"{msg['stream']:>16} window ending at sample {msg['seq_end']:>6}: "
                      f"{msg['label']:<20} smoothed {msg['smoothed']:<20} "
                      f"p={max(msg['probs']):.2f} latency {msg['latency_ms']:.1f} ms")
    except KeyboardInterrupt:
        pass
    finally:
        sub.close(linger=0)
        ctx.term()


if __name__ == "__main__":
    main()
