"""End to end: `harstream serve` as a separate process, fed over ZeroMQ, checked against offline.

The replayed recordings are, by rule rather than by result, the first
recording of each of the first four test subjects (2, 4, 9, 10: experiments
3, 7, 17, 19), which include two of the hardest subjects; the full test
split's numbers are in docs/model.md.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from harstream.data.device import Device
from harstream.data.hapt import read_dataset
from harstream.data.labelled_windows import recording_windows
from harstream.model.classifier import Classifier
from harstream.protocol import ErrorEvent, Prediction, StatsEvent, encode_chunk
from harstream.serve.client import Subscriber
from harstream.signal.windows import window_ends
from replay.session import score_replay
from replay.sources import load_streams, tagged

EXPERIMENTS = (3, 7, 17, 19)



@pytest.fixture(scope="module")
def engine(
    free_endpoint: Callable[[], str], serve_process: Callable[..., Any],
) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish) as (proc, _):
        yield ingest, publish, proc


def test_live_predictions_equal_offline(engine: tuple[str, str, subprocess.Popen[bytes]],
                                        hapt_dir: Path) -> None:
    ingest, publish, _ = engine
    dataset = read_dataset(hapt_dir, {2, 4, 9, 10})
    assert sorted(r.experiment for r in dataset.recordings if r.experiment in EXPERIMENTS) == list(EXPERIMENTS)
    recordings = [r for r in dataset.recordings if r.experiment in EXPERIMENTS]
    expected = {(r.stream_id, int(e)) for r in recordings for e in window_ends(0, len(r))}
    received: dict[tuple[str, int], Prediction] = {}
    errors: list[ErrorEvent] = []
    duplicates = 0
    ctx = zmq.Context.instance()
    with Subscriber(publish) as sub, ctx.socket(zmq.PUSH) as push, ctx.socket(zmq.PUSH) as bad:
        push.connect(ingest)
        bad.connect(ingest)
        while not isinstance(sub.receive(timeout_s=2.0), StatsEvent):  # subscribed
            pass
        garbage = [
            [b"no spaces allowed", b'{"v":1,"seq":0,"rate":50}', b"\0" * 24],
            [b"evil", b"not json", b"\0" * 24],
            [b"evil", b'{"v":1,"seq":0,"rate":50}', b"\0" * 23],
            [b"evil", b'{"v":2,"seq":0,"rate":50}', b"\0" * 24],
            [b"only one frame"],
        ]
        longest = max(len(r) for r in recordings)
        for start in range(0, longest, 25):  # interleaved, as fast as possible
            for rec in recordings:
                if start < len(rec):
                    push.send_multipart(encode_chunk(rec.stream_id, start, rec.samples[start:start + 25]))
            if start % 2500 == 0:
                for frames in garbage:
                    bad.send_multipart(frames)
        deadline = time.monotonic() + 900  # $stats never falls silent: a missing window must fail
        for event in sub.events(timeout_s=15.0):
            assert time.monotonic() < deadline, f"{len(expected - set(received))} windows never came"
            if isinstance(event, Prediction):
                key = (event.stream, event.seq_end)
                duplicates += key in received
                received[key] = event
                if set(received) >= expected and len(errors) >= len(garbage):
                    break
            elif isinstance(event, ErrorEvent):
                errors.append(event)
    assert duplicates == 0
    assert set(received) == expected  # every window exactly once, despite the garbage
    assert {e.code for e in errors} >= {"stream_id", "header", "samples", "version", "frames"}

    classifier = Classifier.load()
    same = total = 0
    truth, predicted = [], []
    for rec in recordings:
        windows = recording_windows(rec, dataset.segments_of(rec), "stream", labelled_only=False)
        offline = classifier.predict_proba(windows.x)
        live = np.array([received[(rec.stream_id, int(e))].probs for e in windows.seq_end])
        np.testing.assert_allclose(live, offline, atol=1e-4)
        same += int((live.argmax(1) == offline.argmax(1)).sum())
        total += len(offline)
        scored = windows.y >= 0
        truth += windows.y[scored].tolist()
        predicted += live.argmax(1)[scored].tolist()
    assert same / total >= 0.999
    assert np.mean(np.array(truth) == np.array(predicted)) >= 0.93


@pytest.mark.parametrize(
    ("device", "points"),
    [(Device(100.0), 2), (Device(200.0), 2), (Device(50.0, jitter_ms=10), 2),
     (Device(100.0, acc_unit="m/s2", gyro_unit="deg/s"), 2),
     (Device(25.0), 5)],  # 25 Hz loses the 12.5-20 Hz band: docs/model.md has the 9 subjects' figures
    ids=["100Hz", "200Hz", "jitter10ms", "100Hz-m/s2-deg/s", "25Hz"],
)
def test_other_phones_score_like_the_plain_replay(engine: tuple[str, str, subprocess.Popen[bytes]],
                                                 hapt_dir: Path, device: Device, points: float) -> None:
    """The first test recordings of subjects 2 and 4 (exp03, exp07) as another phone sends them, live."""
    ingest, publish, _ = engine
    streams = [s for s in load_streams(hapt_dir, {2, 4}) if s.stream_id.startswith(("exp03_", "exp07_"))]
    assert len(streams) == 2
    plain = score_replay(tagged(streams, f"plain{device.rate_hz:g}{device.jitter_ms:g}{device.acc_unit[0]}"),
                         ingest, publish, speed=0).report()
    other = score_replay(tagged(streams, f"dev{device.rate_hz:g}{device.jitter_ms:g}{device.acc_unit[0]}"),
                         ingest, publish, speed=0, device=device).report()
    assert other["windows_missing"] == plain["windows_missing"] == 0 and other["errors"] == {}
    assert other["accuracy"] >= plain["accuracy"] - points / 100  # all 9 subjects: docs/model.md


def test_sigterm_stops_the_engine_cleanly(engine: tuple[str, str, subprocess.Popen[bytes]]) -> None:
    _, _, proc = engine
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
