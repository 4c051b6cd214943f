"""The load generator (a ``spawn``-ed process): N real-time HAPT streams pushed into ``harstream serve``.

>>> seq_offsets(3, aligned=True).tolist()
[0, 0, 0]
"""

from __future__ import annotations

import math
import os
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType

import numpy as np
import numpy.typing as npt

from harstream import HOP, SAMPLE_RATE_HZ

CHUNK = 25
"""Samples per message (0.5 s at 50 Hz), as a phone would batch them."""
PREFIX = "lt"
"""Stream ids are ``lt00000``, ``lt00001``, ...: the subscriber reads the index from the topic."""
SEND_TICK_S = 0.001
"""The generator sleeps at least this long between sends and then sends every chunk that came due:
one wake-up per chunk cost the generator a large share of a core at thousands of streams
(docs/benchmarks.md, "The load generator's own CPU")."""


def seq_offsets(streams: int, aligned: bool = False, seed: int = 0) -> npt.NDArray[np.int64]:
    """Each stream's first ``seq``: random in [0, 64) (one hop), or all 0 with ``aligned``.

    Independent devices cut their windows at unrelated moments; streams that
    all start at ``seq`` 0 within one chunk period complete their windows in
    the same chunk round, a burst every 1.28 s that the engine must absorb.
    """
    if aligned:
        return np.zeros(streams, dtype=np.int64)
    return np.random.default_rng(seed + 1).integers(0, HOP, streams).astype(np.int64)


def _recordings(data_dir: str, subjects: tuple[int, ...], chunk: int) -> list[npt.NDArray[np.float32]]:
    """The subjects' recordings, each (n + chunk, 6) little-endian float32, wrapped by one chunk."""
    from harstream.data.hapt import list_experiments, read_recording

    out = []
    for experiment, user in list_experiments(data_dir):
        if user in subjects:
            samples = read_recording(data_dir, experiment, user).samples.astype("<f4")
            out.append(np.ascontiguousarray(np.concatenate([samples, samples[:chunk]])))
    if not out:
        raise ValueError(f"no recording of subjects {subjects} in {data_dir}")
    return out


def generate(ingest: str, data_dir: str, subjects: tuple[int, ...], offsets: list[int], seconds: float,
              chunk: int, seed: int, sent_path: str, conn: Connection, stop: EventType,
              tick_s: float = SEND_TICK_S) -> None:
    """Stream ``len(offsets)`` recordings in real time for ``seconds``; save every chunk's send time.

    Stream ``i`` starts at ``seq`` ``offsets[i]`` (with ``"restart": true``).
    The generator sleeps at least ``tick_s`` between sends, then sends every
    chunk due by then: a chunk leaves up to ``tick_s`` after its moment, and
    its latency counts from when it left.

    Protocol with the parent on ``conn``: sends ``("ready", recordings)``,
    receives the monotonic start time, sends ``("done", rounds)``. The send
    times go to ``sent_path`` (``.npy``, shape (rounds, streams)).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import zmq

    recordings = _recordings(data_dir, subjects, chunk)
    rng = np.random.default_rng(seed)
    streams = len(offsets)
    arrays = [recordings[i % len(recordings)] for i in range(streams)]
    lengths = [len(a) - chunk for a in arrays]
    positions = [int(rng.integers(0, n)) for n in lengths]
    ids = [f"{PREFIX}{i:05d}".encode() for i in range(streams)]
    period = chunk / SAMPLE_RATE_HZ
    step = period / streams
    rounds = max(1, math.ceil(seconds / period))
    sent_at = np.full((rounds, streams), np.nan)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1_000_000)
    push.setsockopt(zmq.LINGER, 10_000)
    push.connect(ingest)
    parent = os.getppid()
    conn.send(("ready", len(recordings)))
    t_start = float(conn.recv())
    done = 0
    try:
        for k in range(rounds):
            if stop.is_set() or os.getppid() != parent:
                break
            base = t_start + k * period
            first = b',"restart":true' if k == 0 else b""  # a fresh run of the stream at seq 0
            seq = k * chunk
            row = sent_at[k]
            i = 0
            while i < streams:
                now = time.monotonic()
                due = min(streams, math.floor((now - base) / step) + 1)
                if due <= i:
                    time.sleep(max(tick_s, base + i * step - now))
                    continue
                for j in range(i, due):
                    p = positions[j]
                    header = b'{"v":1,"seq":%d,"rate":50,"t0":%.3f%s}' % (
                        offsets[j] + seq, time.time() - (chunk - 1) / SAMPLE_RATE_HZ, first)
                    payload = arrays[j][p : p + chunk].tobytes()
                    row[j] = time.monotonic()
                    push.send_multipart((ids[j], header, payload))
                    positions[j] = (p + chunk) % lengths[j]
                i = due
            done = k + 1
    finally:
        push.close()  # lingers until every queued chunk has left
        ctx.term()
        np.save(sent_path, sent_at[:done])
    conn.send(("done", done))
