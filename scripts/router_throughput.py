"""How many chunks per second ``harstream router`` moves, against a direct PUSH/PULL, in one run.

    unshare --net -- .venv/bin/python tests/netns.py .venv/bin/python scripts/router_throughput.py \\
        [--chunks 200000] [--streams 1000] [--engines 3] [--repeats 3]

Each repeat runs, in turn: **direct** (a producer process PUSHes to a sink process's PULL);
**router** (the same producer PUSHes to a ``harstream router`` process, which routes to
``--engines`` fake engines in the sink process: DEALERs that say HELLO, answer PINGs and
count CHUNKs); and **router alone** (the router's loop in this process, the chunks already
queued on inproc sockets and the engines not reading: the router's own work, receive, look
up and send, on one core; its thread's CPU time per chunk is the figure a busy machine
disturbs least). The producer sends pre-encoded 64-sample chunks of ``--streams``
streams round-robin as fast as it can; the sink's rate (chunks over the time from the first
to the last) is reported, with the router's own ``route_us_per_chunk`` and ``cpu_percent``
from its ``$stats``. Prints one JSON line per variant and repeat; compare within one run (the
machine is shared). A benchmark, not a test; run it in a loopback-only namespace as above.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import signal
import subprocess
import sys
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import zmq

from harstream.loopback import free_endpoint
from harstream.protocol import StatsEvent, encode_chunk
from harstream.serve import cluster_wire as wire
from harstream.serve.client import Subscriber

TIMEOUT_MS = 60_000
"""The router's --timeout here: the fake engines answer a PING only once they have read the chunks
queued before it, and a sink further behind than the default 1 s would be dropped (a real engine
reads its socket every turn and sheds in its own queue: 80,000 chunks sent at once to one joined
engine did not get it dropped)."""
IDLE_S = 10.0
"""A sink that gets nothing for this long stops (chunks were lost: the report says how many came)."""


def produce(endpoint: str, chunks: int, streams: int, start: Any) -> None:
    """PUSH ``chunks`` pre-encoded chunks, streams round-robin, once ``start`` is set."""
    samples = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    per_stream = [encode_chunk(f"phone-{i}", 0, samples) for i in range(streams)]
    push: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100_000)
    push.connect(endpoint)
    start.wait()
    for n in range(chunks):
        frames = per_stream[n % streams]
        push.send_multipart(frames, copy=False)
    push.close(linger=-1)


def sink_direct(endpoint: str, chunks: int, out: Connection) -> None:
    """A PULL counting ``chunks`` messages; sends back (count, seconds from first to last)."""
    pull: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 100_000)
    pull.bind(endpoint)
    out.send("ready")
    pull.recv_multipart()
    first, n = time.perf_counter(), 1
    while n < chunks:
        pull.recv_multipart()
        n += 1
    out.send((n, time.perf_counter() - first))


def sink_engines(engines_endpoint: str, engines: int, chunks: int, out: Connection) -> None:
    """``engines`` fake engines (DEALERs) in one process, counting CHUNKs, answering PINGs."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    poller, dealers = zmq.Poller(), []
    for slot in range(engines):
        dealer = ctx.socket(zmq.DEALER)
        hello = wire.Hello(slot, uuid.uuid4().hex, 1, "bench")
        dealer.setsockopt(zmq.ROUTING_ID, wire.routing_id(hello))
        dealer.setsockopt(zmq.RCVHWM, 100_000)
        # as a joined engine does: its own ZMTP heartbeats keep the router's libzmq from dropping
        # the connection while this process is behind (a reconnection loses what was queued)
        dealer.setsockopt(zmq.HEARTBEAT_IVL, wire.DEFAULT_HEARTBEAT_MS)
        dealer.setsockopt(zmq.HEARTBEAT_TIMEOUT, wire.DEFAULT_TIMEOUT_MS)
        dealer.connect(engines_endpoint)
        dealer.send_multipart(wire.encode_hello(hello))
        poller.register(dealer, zmq.POLLIN)
        dealers.append(dealer)
    welcomed, n, first, last = 0, 0, 0.0, time.perf_counter()
    while n < chunks and time.perf_counter() - last < IDLE_S:  # lost chunks end the run (reported)
        for dealer, _ in poller.poll(1000):
            for _ in range(1000):  # a bounded drain each: the other engines' PINGs are answered in time
                if n >= chunks:
                    break
                try:
                    frames = dealer.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                kind = frames[0]
                if kind == wire.CHUNK:
                    last = time.perf_counter()
                    if n == 0:
                        first = last
                    n += 1
                elif kind == wire.PING:
                    dealer.send_multipart(wire.PONG_MESSAGE)
                elif kind == wire.WELCOME:
                    welcomed += 1
                    if welcomed == engines:
                        out.send("ready")
    out.send((n, last - first))


def run_direct(args: argparse.Namespace) -> dict[str, Any]:
    endpoint = free_endpoint()
    ctx = mp.get_context("spawn")
    start, (mine, theirs) = ctx.Event(), ctx.Pipe()
    sink = ctx.Process(target=sink_direct, args=(endpoint, args.chunks, theirs))
    sink.start()
    assert mine.recv() == "ready"
    producer = ctx.Process(target=produce, args=(endpoint, args.chunks, args.streams, start))
    producer.start()
    start.set()
    n, seconds = mine.recv()
    producer.join()
    sink.join()
    return {"variant": "direct", "chunks": n, "chunks_per_s": round(n / seconds)}


def run_router(args: argparse.Namespace) -> dict[str, Any]:
    ingest, publish, engines, results = (free_endpoint() for _ in range(4))
    router = subprocess.Popen([sys.executable, "-m", "harstream", "router", "--ingest", ingest, "--publish",
                               publish, "--engines", engines, "--results", results, "--engine-hwm", "100000",
                               "--ingest-hwm", "100000", "--timeout", str(TIMEOUT_MS)], stderr=subprocess.DEVNULL)
    ctx = mp.get_context("spawn")
    start, (mine, theirs) = ctx.Event(), ctx.Pipe()
    try:
        sink = ctx.Process(target=sink_engines, args=(engines, args.engines, args.chunks, theirs))
        sink.start()
        assert mine.poll(60) and mine.recv() == "ready", "the fake engines were not welcomed"
        stats: list[dict[str, Any]] = []
        with Subscriber(publish) as sub:
            producer = ctx.Process(target=produce, args=(ingest, args.chunks, args.streams, start))
            producer.start()
            start.set()
            while not mine.poll(0):
                event = sub.receive(timeout_s=0.2)
                if isinstance(event, StatsEvent):
                    stats.append(event.fields["router"])
            n, seconds = mine.recv()
        producer.join()
        sink.join()
    finally:
        router.send_signal(signal.SIGTERM)
        router.wait(timeout=30)
    busy = [s for s in stats if s["chunks_per_s"] > 0.5 * n / seconds]
    end = stats[-1] if stats else {}
    return {"variant": "router", "engines": args.engines, "chunks": n, "chunks_per_s": round(n / seconds),
            "route_us_per_chunk": [s["route_us_per_chunk"] for s in busy],
            "router_cpu_percent": [s["cpu_percent"] for s in busy],
            **{key: end.get(key) for key in ("losses", "moved", "no_engine", "overloaded")}}


def run_isolated(args: argparse.Namespace) -> dict[str, Any]:
    """The router's loop alone, in this process: chunks already queued (inproc), engines not reading."""
    import threading

    from harstream.cluster.config import RouterConfig
    from harstream.cluster.router import Router, bind

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    name = uuid.uuid4().hex[:8]
    config = RouterConfig(ingest=f"inproc://in-{name}", publish=f"inproc://out-{name}",
                          engines=f"inproc://engines-{name}", results=f"inproc://results-{name}",
                          ingest_hwm=0, engine_hwm=0, max_drain=args.chunks)
    router = Router(config, bind(config, ctx))
    dealers = []
    for slot in range(args.engines):
        dealer = ctx.socket(zmq.DEALER)
        hello = wire.Hello(slot, uuid.uuid4().hex, 1, "bench")
        dealer.setsockopt(zmq.ROUTING_ID, wire.routing_id(hello))
        dealer.setsockopt(zmq.RCVHWM, 0)
        dealer.connect(config.engines)
        dealer.send_multipart(wire.encode_hello(hello))
        dealers.append(dealer)
    while len(router.live) < args.engines:
        router.turn(0.1)
    samples = np.zeros((64, 6), np.float32)
    per_stream = [encode_chunk(f"phone-{i}", 0, samples) for i in range(args.streams)]
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect(config.ingest)
    for n in range(args.streams):  # every stream known: the steady state
        push.send_multipart(per_stream[n])
    forward = router.forward_owned if args.owned else router.forward  # owned: the path taken with keys
    while forward():
        pass
    sender = threading.Thread(target=lambda: [push.send_multipart(per_stream[n % args.streams])
                                              for n in range(args.chunks)])
    sender.start()
    sender.join()
    start, cpu = time.perf_counter(), time.thread_time()
    done = forward()
    seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu
    for sock in (push, *dealers):
        sock.close(linger=0)
    router.sockets.close()
    ctx.term()
    variant = "router alone (inproc, one thread)" + (", keys' path" if args.owned else "")
    return {"variant": variant, "chunks": done, "chunks_per_s": round(done / seconds),
            "us_per_chunk": round(seconds / done * 1e6, 2), "cpu_us_per_chunk": round(cpu / done * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--engines", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--owned", action="store_true",
                        help="router alone: time the path keys take (each chunk's sender key read, its stream's "
                        "owner checked), without CURVE itself (inproc has none)")
    parser.add_argument("--only", choices=["direct", "router", "alone"], action="append",
                        help="run only these variants (repeatable; default: all three)")
    args = parser.parse_args()
    variants = {"direct": run_direct, "router": run_router, "alone": run_isolated}
    for repeat in range(args.repeats):
        for name, variant in variants.items():
            if args.only and name not in args.only:
                continue
            print(json.dumps({"repeat": repeat, **variant(args)}), flush=True)


if __name__ == "__main__":
    main()
