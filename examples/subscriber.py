"""Subscribe to harstream's predictions with nothing but pyzmq and json.

    python examples/subscriber.py [tcp://127.0.0.1:5556] [stream-id-prefix]
    python examples/subscriber.py ... --key viewer.key_secret --server-key engine.key

Prints one line per classified window; engine topics ("$stats", "$error")
are printed too. With --key and --server-key (an engine started with keys,
see docs/security.md) the connection is CurveZMQ-encrypted and
authenticated. No harstream import: any program can do this.
"""

from __future__ import annotations

import argparse
import json

import zmq
import zmq.auth


def main() -> None:
    parser = argparse.ArgumentParser(description="Print harstream's predictions.")
    parser.add_argument("endpoint", nargs="?", default="tcp://127.0.0.1:5556",
                        help="the engine's output endpoint (default: tcp://127.0.0.1:5556)")
    parser.add_argument("prefix", nargs="?", default="",
                        help="only streams whose id starts with this (default: all)")
    parser.add_argument("--key", help="this subscriber's secret key file (NAME.key_secret)")
    parser.add_argument("--server-key", help="the engine's public key file (NAME.key)")
    args = parser.parse_args()
    if (args.key is None) != (args.server_key is None):
        parser.error("--key and --server-key go together")
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    if args.key is not None:  # CurveZMQ: set before connecting
        public, secret = zmq.auth.load_certificate(args.key)
        if secret is None:
            parser.error(f"--key {args.key}: no secret key in it; expected NAME.key_secret")
        sub.curve_publickey, sub.curve_secretkey = public, secret
        sub.curve_serverkey, _ = zmq.auth.load_certificate(args.server_key)
    sub.setsockopt(zmq.SUBSCRIBE, args.prefix.encode())  # topic = stream id; "" = everything
    sub.connect(args.endpoint)
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
