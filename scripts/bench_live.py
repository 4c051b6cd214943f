"""Load benchmark of the live path: K copies of the test recordings at real-time pace.

    .venv/bin/python scripts/bench_live.py --copies 50 --seconds 60 [--data DIR]

Starts `harstream serve` and `harstream replay --copies K --speed 1` as child
processes on free loopback ports, reads the engine's $stats for --seconds
after a warm-up, prints the medians (windows/s, latency p50/p99 per 1 s
report) as JSON, and stops both children. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time

from harstream.protocol import StatsEvent
from harstream.serve.client import Subscriber


def _endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    ingest, publish = _endpoint(), _endpoint()
    cli = [sys.executable, "-m", "harstream"]
    serve = subprocess.Popen([*cli, "serve", "--ingest", ingest, "--publish", publish],
                             stderr=subprocess.DEVNULL)
    replay = None
    reports = []
    try:
        with Subscriber(publish, streams=[], engine_topics=True) as sub:
            while not isinstance(sub.receive(timeout_s=1.0), StatsEvent):
                pass
            data = ["--data", args.data] if args.data else []
            replay = subprocess.Popen(
                [*cli, "replay", *data, "--copies", str(args.copies), "--speed", "1",
                 "--endpoint", ingest, "--no-progress"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            start = time.monotonic()
            while time.monotonic() - start < args.warmup + args.seconds:
                event = sub.receive(timeout_s=2.0)
                if isinstance(event, StatsEvent) and time.monotonic() - start >= args.warmup:
                    reports.append(event.fields)
    finally:
        for proc in (replay, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    p50 = [r["latency_ms"]["p50"] for r in reports if r["latency_ms"]["p50"] is not None]
    p99 = [r["latency_ms"]["p99"] for r in reports if r["latency_ms"]["p99"] is not None]
    print(json.dumps({
        "copies": args.copies,
        "streams": statistics.median(r["streams"] for r in reports),
        "reports": len(reports),
        "windows_per_s_median": statistics.median(r["windows_per_s"] for r in reports),
        "latency_p50_ms_median": statistics.median(p50) if p50 else None,
        "latency_p99_ms_median": statistics.median(p99) if p99 else None,
        "latency_p99_ms_worst": max(p99) if p99 else None,
        "rejected": reports[-1]["rejected"] if reports else None,
    }, indent=2))


if __name__ == "__main__":
    main()
