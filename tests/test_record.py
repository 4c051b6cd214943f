"""``harstream record``: the labels' timeline and files, and end to end in front of a live engine."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zmq

from harstream.data.device import Device
from harstream.data.hapt import read_dataset as read_hapt
from harstream.data.recordings import read_dataset, read_labels, read_samples
from harstream.errors import DatasetError
from harstream.protocol import Prediction, StatsEvent, encode_chunk
from harstream.serve.client import Subscriber
from harstream.signal.windows import window_ends
from harstream.tools.record import Recorder


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_keys_switch_spans_in_each_streams_own_t(tmp_path: Path) -> None:
    clock = Clock(5000.0)
    recorder = Recorder(tmp_path, clock=clock)
    x = np.tile(np.float32([0, 0, 1, 0, 0, 0]), (50, 1))
    for second in range(10):  # a 50 Hz untimed stream with t0, and a timed one with its own clock
        clock.now = 5000.0 + second + 1.0
        if second == 2:
            recorder.switch("WALKING")
        if second == 6:
            recorder.switch("JOGGING")
        recorder.take(encode_chunk("phone:1", 50 * second, x, t0=5000.0 + second))
        recorder.take(encode_chunk("watch", 50 * second, x, times=7.0 + second + np.arange(50) / 50.0))
    summary = recorder.close()  # unlabelled from the end on
    spans = {(s.recording, s.activity): (round(s.start_s, 2), round(s.end_s, 2)) for s in read_labels(tmp_path)}
    # wall W -> t = W + (t_last - w_last): each chunk's last sample (t0 + 0.98 s) arrives at t0 + 1 s
    assert spans == {("phone_1", "WALKING"): (5002.98, 5006.98), ("phone_1", "JOGGING"): (5006.98, 5009.98),
                     ("watch", "WALKING"): (9.98, 13.98), ("watch", "JOGGING"): (13.98, 16.98)}
    assert [r["samples"] for r in summary["recordings"]] == [500, 500]
    t, samples = read_samples(tmp_path / "watch.csv")
    np.testing.assert_allclose(t, 7.0 + np.arange(500) / 50.0, atol=1e-6)
    np.testing.assert_array_equal(samples, np.tile([0, 0, 1, 0, 0, 0], (500, 1)))


def test_a_restarted_stream_continues_in_a_new_file_and_old_sessions_stay(tmp_path: Path) -> None:
    x = np.zeros((100, 6), np.float32)
    first = Recorder(tmp_path, label="SITTING")
    first.take(encode_chunk("p", 0, x))
    first.take(encode_chunk("p", 100, x))
    first.take(encode_chunk("p", 0, x, restart=True))  # t goes back to 0
    assert first.take([b"p", b"not json", b""]) is None
    assert first.close()["rejected"] == 1
    second = Recorder(tmp_path, label="STANDING")
    second.take(encode_chunk("p", 0, x))
    second.close()
    spans = [(s.recording, s.activity) for s in read_labels(tmp_path)]
    assert spans == [("p", "SITTING"), ("p-2", "SITTING"), ("p-3", "STANDING")]
    assert {r.stream_id: len(r) for r in read_dataset(tmp_path).recordings} == {"p": 200, "p-2": 100, "p-3": 100}


def test_a_bad_label_or_folder_is_refused_before_recording(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="got 'walking' \\(did you mean 'WALKING'\\?\\)"):
        Recorder(tmp_path, label="walking")
    (tmp_path / "labels.csv").write_text("recording,start_s,end_s,activity\ngone,0,1,WALKING\n")
    with pytest.raises(DatasetError, match=r"labels\.csv:2: expected the name of a recording"):
        Recorder(tmp_path)


def _wait_for(proc: subprocess.Popen[str], text: str, timeout_s: float = 120.0) -> str:
    """Lines of ``proc``'s stderr up to one containing ``text``."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} not seen; stderr so far: {''.join(seen)}")


@pytest.mark.slow
def test_record_end_to_end_in_front_of_a_live_engine(
    hapt_dir: Path, tmp_path: Path, free_endpoint: Callable[[], str]
) -> None:
    ingest, publish, listen = free_endpoint(), free_endpoint(), free_endpoint()
    out = tmp_path / "mine"
    engine = subprocess.Popen(
        [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    recorder = subprocess.Popen(
        [sys.executable, "-m", "harstream", "record", "--out", str(out), "--listen", listen, "--engine",
         ingest, "--label", "WALKING", "--no-progress", "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for(engine, "ready")
        _wait_for(recorder, "listening on")
        rec = read_hapt(hapt_dir, {1}).recordings[0]
        plain = rec.samples[:1600]
        phone, times = Device(100.0, jitter_ms=4.0, seed=2).render(plain)
        assert times is not None
        t0 = 1_764_000_000.0
        expected = {("plain", int(e)) for e in window_ends(0, len(plain))}
        received: dict[tuple[str, int], Prediction] = {}
        ctx = zmq.Context.instance()
        with Subscriber(publish) as sub, ctx.socket(zmq.PUSH) as push:
            push.connect(listen)
            while not isinstance(sub.receive(timeout_s=2.0), StatsEvent):
                pass
            for k in range(0, len(plain), 25):  # the producer talks to the recorder as it would to the engine
                push.send_multipart(encode_chunk("plain", k, plain[k:k + 25], t0=t0 + k / 50.0))
            for k in range(0, len(phone), 50):
                push.send_multipart(encode_chunk("phone", k, phone[k:k + 50], rate=100, times=times[k:k + 50]))
            deadline = time.monotonic() + 300  # $stats never falls silent: a missing window must fail
            for event in sub.events(timeout_s=15.0):
                assert time.monotonic() < deadline, f"{len(expected - set(received))} windows never came"
                if isinstance(event, Prediction):
                    received[(event.stream, event.seq_end)] = event
                    phone_windows = sum(s == "phone" for s, _ in received)
                    if set(received) >= expected and phone_windows >= len(expected) - 1:
                        break
        assert {k for k in received if k[0] == "plain"} == expected  # every window reached the engine
        assert sum(s == "phone" for s, _ in received) >= len(expected) - 1  # resampled from 100 Hz
        time.sleep(1.0)
        recorder.send_signal(signal.SIGINT)
        stdout, stderr = recorder.communicate(timeout=30)
        assert recorder.returncode == 0, stderr
    finally:
        for proc in (recorder, engine):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    summary = json.loads(stdout)
    messages = len(range(0, len(plain), 25)) + len(range(0, len(phone), 50))
    assert summary["forwarded"] == summary["messages"] == messages and summary["not_forwarded"] == 0
    assert [(r["name"], r["samples"]) for r in summary["recordings"]] == [("plain", 1600), ("phone", len(phone))]
    t, samples = read_samples(out / "plain.csv")
    np.testing.assert_allclose(t, t0 + np.arange(1600) / 50.0, rtol=0, atol=2e-6)  # t0 - seq/rate based
    np.testing.assert_array_equal(samples.astype(np.float32), plain)  # float32 written exactly
    t, samples = read_samples(out / "phone.csv")
    np.testing.assert_allclose(t, times, rtol=0, atol=1e-6)  # the timestamps frame
    spans = read_labels(out)
    assert [(s.recording, s.activity) for s in spans] == [("plain", "WALKING"), ("phone", "WALKING")]
    assert spans[0].start_s == pytest.approx(t0) and spans[0].end_s == pytest.approx(t0 + 1599.5 / 50.0)
    data = read_dataset(out)
    back = {r.stream_id: r for r in data.recordings}
    assert abs(len(back["plain"]) - 1600) <= 1 and abs(len(back["phone"]) - 1600) <= 1
    np.testing.assert_allclose(back["plain"].samples, plain[: len(back["plain"])], atol=1e-4)
    assert all(data.activity_names[s.activity] == "WALKING" for s in data.segments)
