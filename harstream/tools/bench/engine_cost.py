"""What the engine itself costs, the model left out: its state per stream and its Python time per chunk and window.

Both use a stand-in model (uniform probabilities), so only the engine's own
memory and time are measured.
"""

from __future__ import annotations

import gc
import math
import time
import tracemalloc
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream import ACTIVITIES, HOP, SAMPLE_RATE_HZ, WINDOW

STATE_TARGET_BYTES = 16 * 1024
"""The project's target for the engine's state per stream."""


def _uniform_proba(w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A stand-in model for measuring the engine alone: uniform probabilities."""
    return np.full((len(w), len(ACTIVITIES)), 1.0 / len(ACTIVITIES), np.float32)


def state_bytes_per_stream(streams: int = 2000, chunk: int = 25, chunks: int = 6) -> dict[str, Any]:
    """Bytes of engine state per stream, by tracemalloc around an :class:`~harstream.engine.core.Engine`.

    ``streams`` streams each send one ``chunk``-sample chunk (``after_one_chunk``),
    then more until at least 128 samples went in (``steady``: the ring buffer
    holds its full 127-sample tail; the windows cut are taken away first). The
    model is a stand-in (uniform probabilities): only the engine's own state
    is measured.
    """
    from harstream.engine.core import Engine
    from harstream.protocol import Chunk

    rng = np.random.default_rng(0)
    rounds = max(chunks, math.ceil(WINDOW / chunk))
    batches = [
        [Chunk(f"s{i:05d}", k * chunk, 50, None, rng.standard_normal((chunk, 6)).astype(np.float32))
         for i in range(streams)]
        for k in range(rounds)
    ]
    engine = Engine(_uniform_proba, ACTIVITIES, max_streams=streams)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        engine.ingest(batches[0])
        one = tracemalloc.get_traced_memory()[0] - base
        for batch in batches[1:]:
            engine.ingest(batch)
            engine.take_pending()
        gc.collect()
        steady = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return {
        "streams": streams, "chunk": chunk,
        "after_one_chunk": round(one / streams, 1),
        "steady": round(steady / streams, 1),
        "steady_after_samples": rounds * chunk,
        "target_bytes": STATE_TARGET_BYTES,
        "met": steady / streams <= STATE_TARGET_BYTES,
    }


def engine_costs(streams: int = 1000, chunk: int = 25, rounds: int = 11) -> dict[str, Any]:
    """Python time of the engine's hot path per chunk and per window, the model left out.

    Everything here holds the GIL, so the two serving threads share one
    core's worth of it: ``decode`` (:func:`~harstream.protocol.decode_chunk`),
    ``ingest`` (:meth:`Engine.ingest` of one chunk from each of ``streams``
    streams per call, as a serving turn batches them), ``classify`` (the
    bookkeeping and smoothing of :meth:`Engine.classify_pending` around a
    stand-in model), ``encode`` (:func:`~harstream.protocol.encode_prediction`)
    and ``publish`` (``send_multipart`` of the encoded frames on a PUB socket
    with one subscriber, over ``inproc``: the socket call without the network).
    ``gil_us_per_stream_s`` is what one real-time stream costs per second
    (2 chunks, 50/64 windows); ``streams_per_gil_core`` the streams one core
    of it would carry.
    """
    from harstream.engine.core import Engine
    from harstream.protocol import decode_chunk, encode_chunk, encode_prediction

    rng = np.random.default_rng(0)
    frames = [
        [encode_chunk(f"s{i:05d}", k * chunk, rng.standard_normal((chunk, 6)), t0=1.7e9 + k * 0.5)
         for i in range(streams)]
        for k in range(rounds)
    ]
    engine = Engine(_uniform_proba, ACTIVITIES, max_streams=streams)
    decode = ingest = classify = encode = publish = 0.0
    windows = 0
    pub, sub = _pub_sub(streams * rounds)
    try:
        for batch in frames:
            started = time.perf_counter()
            chunks = [decode_chunk(f) for f in batch]
            decode += time.perf_counter() - started
            started = time.perf_counter()
            engine.ingest(chunks)
            ingest += time.perf_counter() - started
            pending = engine.take_pending()
            if pending:
                started = time.perf_counter()
                predictions = engine.classify_pending(pending)
                classify += time.perf_counter() - started
                started = time.perf_counter()
                encoded = [encode_prediction(p) for p in predictions]
                encode += time.perf_counter() - started
                started = time.perf_counter()
                for message in encoded:
                    pub.send_multipart(message)
                publish += time.perf_counter() - started
                windows += len(predictions)
    finally:
        pub.close(linger=0)
        sub.close(linger=0)
    n_chunks = streams * rounds
    per = {
        "decode_us_per_chunk": round(1e6 * decode / n_chunks, 2),
        "ingest_us_per_chunk": round(1e6 * ingest / n_chunks, 2),
        "classify_us_per_window": round(1e6 * classify / max(windows, 1), 2),
        "encode_us_per_window": round(1e6 * encode / max(windows, 1), 2),
        "publish_us_per_window": round(1e6 * publish / max(windows, 1), 2),
    }
    chunks_per_s = SAMPLE_RATE_HZ / chunk
    windows_per_s = SAMPLE_RATE_HZ / HOP
    gil = (chunks_per_s * (per["decode_us_per_chunk"] + per["ingest_us_per_chunk"])
           + windows_per_s * (per["classify_us_per_window"] + per["encode_us_per_window"]
                              + per["publish_us_per_window"]))
    return {"streams": streams, "chunk": chunk, "windows": windows, **per,
            "gil_us_per_stream_s": round(gil, 1), "streams_per_gil_core": int(1e6 / gil) if gil else None}


def _pub_sub(hwm: int) -> tuple[Any, Any]:
    """A PUB socket with one SUB subscribed to everything, over ``inproc`` (queues of ``hwm`` messages)."""
    import zmq

    context: zmq.Context[Any] = zmq.Context.instance()
    pub, sub = context.socket(zmq.PUB), context.socket(zmq.SUB)
    for socket in (pub, sub):
        socket.set_hwm(hwm)
    endpoint = f"inproc://bench-publish-{id(pub)}"
    pub.bind(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    time.sleep(0.05)  # the subscription reaches the PUB before the first send
    return pub, sub


def model_cost(windows_per_s: float) -> dict[str, Any]:
    """What the model costs one real-time stream (us per second of stream) at ``windows_per_s``,
    and the streams one core of it carries."""
    model_us = 1e6 * SAMPLE_RATE_HZ / HOP / windows_per_s
    return {"model_us_per_stream_s": round(model_us, 1), "streams_per_model_core": int(1e6 / model_us)}
