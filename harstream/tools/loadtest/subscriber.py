"""The load test's subscriber (a ``spawn``-ed process): each prediction's arrival, every ``$stats``, ``$error``.

It reads only ``seq_end`` out of a prediction's JSON (a byte search), so
that it keeps up with thousands of streams on one core; a full
``json.loads`` on every 64th, for the engine's ``t_emit``.
"""

from __future__ import annotations

import json
import signal
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

import numpy as np

from harstream.tools.loadtest.generator import PREFIX

QUIET_S = 2.0
"""After the generator stops, the subscriber waits until no prediction came for this long."""
_STATS_KEYS = ("windows", "windows_per_s", "streams", "latency_ms", "rejected", "shed",
               "internal_errors", "queued_samples", "chunks", "engine", "gc_pauses")
_SEQ_END = b'"seq_end":'


def subscribe(publish: str, received_path: str, conn: Connection, stop: EventType,
               quiet_s: float, drain_timeout_s: float) -> None:
    """Receive everything the engine publishes until ``stop`` and then ``quiet_s`` without predictions.

    Sends ``("ready",)`` once the first ``$stats`` arrived (the subscription
    is live), then ``("done", stats, errors, counts)``; the predictions go to
    ``received_path`` (``.npz``: stream index, seq_end, arrival time, and the
    publish-to-here delays of every 64th prediction).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import zmq

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)  # no limit: this process must never drop what the engine sent
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(publish)
    streams, seq_ends, arrivals, delays = array("l"), array("q"), array("d"), array("d")
    stats: list[dict[str, Any]] = []
    errors: Counter[str] = Counter()
    foreign = 0
    ready = False
    last_prediction = time.monotonic()
    stop_seen: float | None = None
    prefix = PREFIX.encode()
    cut = len(prefix)
    try:
        while True:
            now = time.monotonic()
            if stop.is_set():
                stop_seen = stop_seen or now
                if now - last_prediction >= quiet_s or now - stop_seen >= drain_timeout_s:
                    break
            if not sub.poll(100):
                continue
            for _ in range(4096):
                try:
                    topic, body = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except ValueError:  # not two frames: not ours to judge here
                    continue
                t = time.monotonic()
                if topic[:1] == b"$":
                    message = json.loads(body)
                    if topic == b"$stats":
                        stats.append({"t": t, **{k: message.get(k) for k in _STATS_KEYS}})
                        if not ready:
                            ready = True
                            conn.send(("ready",))
                    elif topic == b"$error":
                        errors[str(message.get("code"))] += 1
                    continue
                if not topic.startswith(prefix):
                    foreign += 1
                    continue
                at = body.find(_SEQ_END) + len(_SEQ_END)
                streams.append(int(topic[cut:]))
                seq_ends.append(int(body[at : body.index(b",", at)]))
                arrivals.append(t)
                last_prediction = t
                if len(arrivals) % 64 == 0:
                    delays.append(time.time() - float(json.loads(body)["t_emit"]))
    finally:
        sub.close(linger=0)
        ctx.term()
        np.savez(received_path, stream=np.array(streams.tolist(), dtype=np.int64),
                 seq_end=np.array(seq_ends.tolist(), dtype=np.int64),
                 t=np.array(arrivals.tolist(), dtype=np.float64),
                 delay=np.array(delays.tolist(), dtype=np.float64))
    conn.send(("done", stats, dict(errors), {"foreign_predictions": foreign}))
