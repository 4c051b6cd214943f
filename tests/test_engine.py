"""The engine core without sockets: batching across streams equals one stream at a time."""

from __future__ import annotations

import numpy as np

from harstream import ACTIVITIES
from harstream.engine.core import Engine
from harstream.protocol import Chunk, Prediction
from harstream.signal.chain import process_recording
from harstream.signal.windows import RingBuffer


def fake_proba(windows: np.ndarray) -> np.ndarray:
    """A deterministic stand-in for the model: softmax of per-channel window means."""
    logits = windows.mean(axis=1)[:, :6] * 10.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _signal(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.standard_normal((n, 6)), axis=0) * 0.01).astype(np.float32)


def _chunk(stream: str, seq: int, samples: np.ndarray) -> Chunk:
    return Chunk(stream, seq, 50, None, samples)


def classify_all(engine: Engine) -> list[Prediction]:
    """The queued windows classified as ``serve`` does: taken, classified, failed streams forgotten."""
    predictions = engine.classify_pending(engine.take_pending())
    engine.reset_failed()
    return predictions


def test_interleaved_streams_match_offline_windows() -> None:
    rng = np.random.default_rng(0)
    signals = {f"s{i}": _signal(700 + 37 * i, i) for i in range(4)}
    engine = Engine(fake_proba, ACTIVITIES)
    cursors = dict.fromkeys(signals, 0)
    predictions = []
    while any(cursors[s] < len(x) for s, x in signals.items()):
        batch = []
        for sid, x in signals.items():
            for _ in range(int(rng.integers(0, 3))):  # 0-2 chunks of a stream per batch
                start = cursors[sid]
                if start >= len(x):
                    break
                size = int(rng.choice([1, 7, 25, 64, 130]))
                batch.append(_chunk(sid, start, x[start : start + size]))
                cursors[sid] = min(len(x), start + size)
        assert engine.ingest(batch, t_arrival=0.0) == []
        predictions += classify_all(engine)
    for sid, x in signals.items():
        ring = RingBuffer()
        offline = ring.push(process_recording(x))
        live = [p for p in predictions if p.stream == sid]
        assert [p.seq_end for p in live] == offline.seq_ends.tolist()
        np.testing.assert_allclose(
            [p.probs for p in live], fake_proba(offline.windows), atol=1e-5
        )


def test_seq_gap_restarts_and_replay_is_dropped() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    x = _signal(400, 1)
    assert engine.ingest([_chunk("a", 0, x[:100])]) == []
    errors = engine.ingest([_chunk("a", 50, x[50:60])])
    assert [e.code for e in errors] == ["seq_replay"]
    assert engine.counters.rejected == 1
    errors = engine.ingest([_chunk("a", 200, x[200:400])])
    assert [e.code for e in errors] == ["seq_gap"] and "100 samples missing" in errors[0].detail
    ends = [p.seq_end for p in classify_all(engine)]
    assert ends == [383]  # the restarted stream needs 128 new samples, on the same grid


def test_smoothed_label_holds_through_a_single_outlier() -> None:
    probs = iter([0.9, 0.9, 0.9, 0.2, 0.9])

    def proba(windows: np.ndarray) -> np.ndarray:
        out = []
        for _ in windows:
            p = next(probs)
            out.append([p, 1 - p, 0, 0, 0, 0])
        return np.asarray(out, np.float32)

    engine = Engine(proba, ACTIVITIES)
    engine.ingest([_chunk("a", 0, _signal(128 + 64 * 4, 2))])
    result = classify_all(engine)
    assert [p.label for p in result][3] == "WALKING_UPSTAIRS"
    assert {p.smoothed for p in result} == {"WALKING"}


def test_idle_streams_are_dropped_and_rows_reused() -> None:
    now = [0.0]
    engine = Engine(fake_proba, ACTIVITIES, idle_timeout_s=10, clock=lambda: now[0])
    engine.ingest([_chunk(f"s{i}", 0, _signal(10, i)) for i in range(20)])
    assert engine.n_streams == 20
    now[0] = 11.0
    engine.ingest([_chunk("s0", 10, _signal(10, 0))])
    assert sorted(engine.drop_idle()) == sorted(f"s{i}" for i in range(1, 20))
    engine.ingest([_chunk("new", 0, _signal(10, 5))])
    assert engine.n_streams == 2
