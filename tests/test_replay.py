"""replay: sources (HAPT, stitched UCI HAR), player, scorer, scored session, CLI verb.

No engine is started: the player talks to a local PULL socket, and the scored
session to a small fake engine (PULL in, PUB out) that answers every grid window.
"""

from __future__ import annotations

import argparse
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import zmq

from harstream.data.hapt import read_dataset
from harstream.data.splits import TEST_SUBJECTS
from harstream.data.types import Segment, window_activity
from harstream.errors import DatasetError, HarstreamError, ProtocolError
from harstream.protocol import (
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_chunk,
    encode_prediction,
    encode_stats,
)
from harstream.signal.windows import window_ends
from replay import cli
from replay.player import play, schedule
from replay.plot import plot_timeline
from replay.scoring import Scorer, expected_windows
from replay.session import score_replay
from replay.sources import (
    UCI_SIGNALS,
    ReplayStream,
    RowTruth,
    detect_layout,
    expand,
    hapt_streams,
    load_streams,
    uci_har_streams,
)

SHARED_UCI = Path(__file__).resolve().parents[2] / "shared" / "data" / "uci-har"
Signal = npt.NDArray[np.float32]


# -- synthetic UCI HAR folder ------------------------------------------------------------------


def _windows(signal: Signal) -> Signal:
    """50%-overlapping 128-sample rows of a continuous signal, as UCI HAR cut them."""
    rows = (len(signal) - 64) // 64
    return np.stack([signal[64 * k : 64 * k + 128] for k in range(rows)])


def make_uci(root: Path) -> dict[str, tuple[Signal, list[int]]]:
    """A tiny ``UCI HAR Dataset`` folder; returns the expected runs by stream id."""
    rng = np.random.default_rng(7)

    def signal(rows: int) -> Signal:
        return rng.normal(0.0, 1.0, (64 * (rows + 1), 6)).astype(np.float32)

    s3a, s3b, s5 = signal(5), signal(3), signal(4)
    s7 = signal(2)
    s7[:64] = s3b[-64:]  # continues s3b exactly, but it is another subject
    runs = {
        "train": [("uci_s03_r01", 3, s3a, [1, 1, 2, 2, 3]), ("uci_s03_r02", 3, s3b, [4, 4, 4]),
                  ("uci_s07_r01", 7, s7, [6, 6])],
        "test": [("uci_s05_r01", 5, s5, [5, 5, 5, 5])],
    }
    top = root / "UCI HAR Dataset"
    for split, parts in runs.items():
        folder = top / split / "Inertial Signals"
        folder.mkdir(parents=True)
        rows = np.concatenate([_windows(sig) for _, _, sig, _ in parts])
        subjects = [s for _, s, sig, _ in parts for _ in range(len(_windows(sig)))]
        labels = [y for _, _, _, ys in parts for y in ys]
        np.savetxt(top / split / f"subject_{split}.txt", subjects, fmt="%d")
        np.savetxt(top / split / f"y_{split}.txt", labels, fmt="%d")
        for column, name in enumerate(UCI_SIGNALS):
            np.savetxt(folder / f"{name}_{split}.txt", rows[:, :, column], fmt="%.8e")
    return {sid: (sig, ys) for parts in runs.values() for sid, _, sig, ys in parts}


@pytest.fixture
def uci_dir(tmp_path: Path) -> Path:
    make_uci(tmp_path)
    return tmp_path


def test_uci_windows_are_stitched_back_into_the_original_signals(tmp_path: Path) -> None:
    runs = make_uci(tmp_path)
    streams = uci_har_streams(tmp_path / "UCI HAR Dataset")
    assert [s.stream_id for s in streams] == ["uci_s03_r01", "uci_s03_r02", "uci_s07_r01",
                                              "uci_s05_r01"]
    for stream in streams:
        signal, labels = runs[stream.stream_id]
        assert stream.samples.dtype == np.float32
        np.testing.assert_array_equal(stream.samples, signal)
        assert stream.subject == int(stream.stream_id[5:7])
        # the engine's grid windows are exactly the original rows
        assert expected_windows(stream) == {127 + 64 * k: y - 1 for k, y in enumerate(labels)}


def test_uci_subject_filter_and_missing_subject(uci_dir: Path) -> None:
    assert [s.stream_id for s in uci_har_streams(uci_dir, {5})] == ["uci_s05_r01"]
    with pytest.raises(DatasetError, match=r"subject\(s\) 9.*found subjects 3, 5, 7"):
        uci_har_streams(uci_dir, {5, 9})


def test_detect_layout(uci_dir: Path, hapt_dir: Path, tmp_path: Path) -> None:
    assert detect_layout(uci_dir) == "uci-har"
    assert detect_layout(uci_dir / "UCI HAR Dataset") == "uci-har"
    assert detect_layout(hapt_dir) == "hapt"
    assert [s.stream_id for s in load_streams(uci_dir, {7})] == ["uci_s07_r01"]
    with pytest.raises(DatasetError, match="Inertial Signals"):
        detect_layout(SHARED_UCI)  # labels only: nothing to replay
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"MotionSense folder .* found none of them"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no such folder"):
        detect_layout(tmp_path / "missing")


def test_hapt_streams_keep_recordings_and_segments(hapt_dir: Path) -> None:
    streams = hapt_streams(hapt_dir, {2})
    dataset = read_dataset(hapt_dir, {2})
    assert [s.stream_id for s in streams] == [r.stream_id for r in dataset.recordings]
    assert all(s.stream_id.endswith("_user02") and s.subject == 2 for s in streams)
    for stream, rec in zip(streams, dataset.recordings, strict=True):
        np.testing.assert_array_equal(stream.samples, rec.samples)
        ends = window_ends(0, len(rec))
        truth = window_activity(dataset.segments_of(rec), ends) - 1
        assert expected_windows(stream) == dict(zip(ends.tolist(), truth.tolist(), strict=True))
    with pytest.raises(DatasetError, match="subject"):
        hapt_streams(hapt_dir, {2, 31})


def test_expand_names_copies_and_rejects_long_ids() -> None:
    stream = _stream("exp01_user01", 10)
    assert [s.stream_id for s in expand([stream], 3)] == ["exp01_user01", "exp01_user01.c2",
                                                          "exp01_user01.c3"]
    with pytest.raises(ProtocolError, match="1-64 characters"):
        expand([_stream("x" * 63, 10)], 2)
    with pytest.raises(ValueError, match="copies"):
        expand([stream], 0)


# -- expected windows and the scorer -------------------------------------------------------------


def _stream(sid: str, n: int, truth: Callable[..., npt.NDArray[np.int64]] | None = None,
            subject: int = 1) -> ReplayStream:
    samples = np.arange(6 * n, dtype=np.float32).reshape(n, 6)
    return ReplayStream(sid, samples, subject, truth or RowTruth(np.zeros(0, np.int64)))


def test_expected_windows_cover_the_engine_grid() -> None:
    assert expected_windows(_stream("a", 127)) == {}
    assert list(expected_windows(_stream("a", 128))) == [127]
    assert list(expected_windows(_stream("a", 300))) == [127, 191, 255]
    segments = [Segment(1, 1, 1, 0, 256), Segment(1, 1, 4, 256, 448), Segment(1, 1, 7, 0, 1)]
    stream = _stream("a", 448, functools.partial(window_activity, segments))
    assert expected_windows(stream) == {127: 0, 191: 0, 255: 0, 319: -1, 383: 3, 447: 3}


def _prediction(sid: str, end: int, label: str, smoothed: str | None = None,
                latency_ms: float = 10.0) -> Prediction:
    return Prediction(sid, end, label, (1.0,), smoothed or label, 100.0,
                      100.0 + latency_ms / 1000)


def test_scorer_matches_counts_and_scores() -> None:
    segments = [Segment(1, 1, 1, 0, 256), Segment(1, 1, 4, 256, 448)]
    stream = _stream("a", 448, functools.partial(window_activity, segments), subject=9)
    scorer = Scorer([stream])
    events: list[Prediction | ErrorEvent | StatsEvent] = [
        _prediction("a", 127, "WALKING"),
        _prediction("a", 191, "SITTING", smoothed="WALKING", latency_ms=30.0),
        _prediction("a", 255, "WALKING"),
        _prediction("a", 255, "SITTING"),  # duplicate: the first one counts
        _prediction("a", 319, "LAYING"),  # straddles two segments: received, not scored
        _prediction("a", 383, "SITTING"),
        _prediction("a", 200, "SITTING"),  # not a grid window
        _prediction("other", 127, "SITTING"),  # not our stream
        ErrorEvent("a", "seq_gap", "expected seq 25, got 50"),
        ErrorEvent("other", "seq_gap", "not ours"),
        StatsEvent({"streams": 1}),
    ]
    for event in events:
        scorer.update(event)
    assert not scorer.done
    report = scorer.report()
    assert {k: report[k] for k in ("windows_expected", "windows_received", "windows_missing",
                                   "duplicates", "unexpected", "foreign", "errors", "n_scored")} \
        == {"windows_expected": 6, "windows_received": 5, "windows_missing": 1, "duplicates": 1,
            "unexpected": 1, "foreign": 1, "errors": {"seq_gap": 1}, "n_scored": 4}
    assert report["accuracy"] == 0.75
    assert report["smoothed_accuracy"] == 1.0
    assert report["per_subject"] == {"9": 0.75}
    assert report["latency_ms"]["max"] == pytest.approx(30.0)
    assert report["latency_ms"]["p50"] == pytest.approx(10.0)
    json.dumps(report)  # JSON-ready
    scorer.update(_prediction("a", 447, "SITTING"))
    assert scorer.done


def test_scorer_with_nothing_received_reports_nulls() -> None:
    report = Scorer([_stream("a", 300)]).report()
    assert report["windows_received"] == 0 and report["accuracy"] is None
    assert report["latency_ms"] == {"p50": None, "p99": None, "max": None}


def test_plot_timeline_writes_a_png(tmp_path: Path) -> None:
    segments = [Segment(1, 1, 5, 0, 400)]
    streams = [_stream(f"s{i}", 400, functools.partial(window_activity, segments))
               for i in range(3)]
    scorer = Scorer(streams)
    for end in (127, 191, 255):
        scorer.update(_prediction("s0", end, "STANDING", smoothed="SITTING"))
    path = plot_timeline(scorer, tmp_path / "timeline.png", max_streams=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the player ---------------------------------------------------------------------------------


@pytest.fixture
def pull() -> Iterator[tuple[zmq.Socket[bytes], str]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.PULL)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sock.close(linger=0)
    context.term()


def _drain(sock: zmq.Socket[bytes], count: int) -> list[list[bytes]]:
    messages: list[list[bytes]] = []
    while len(messages) < count and sock.poll(5000):
        messages.append(sock.recv_multipart())
    return messages


def test_player_sends_every_chunk_in_order_with_copy_ids(
    pull: tuple[zmq.Socket[bytes], str],
) -> None:
    sock, endpoint = pull
    streams = [_stream("a", 130), _stream("b", 60)]
    summary = play(streams, endpoint, speed=0, chunk=25, copies=2)
    assert (summary.streams, summary.messages, summary.samples) == (4, 18, 380)
    assert not summary.interrupted
    chunks = [decode_chunk(frames) for frames in _drain(sock, 18)]
    assert [(c.stream, c.seq, len(c.samples)) for c in chunks] \
        == list(schedule(expand(streams, 2), 25))
    assert [c.stream for c in chunks[:4]] == ["a", "a.c2", "b", "b.c2"]  # round-robin
    assert all(c.t0 is not None for c in chunks)
    for stream in streams:
        for sid in (stream.stream_id, f"{stream.stream_id}.c2"):
            mine = [c for c in chunks if c.stream == sid]
            assert [c.seq for c in mine] == list(range(0, len(stream), 25))
            np.testing.assert_array_equal(np.concatenate([c.samples for c in mine]),
                                          stream.samples)
    assert not sock.poll(50)  # nothing more


def test_player_paced_and_stopped(pull: tuple[zmq.Socket[bytes], str]) -> None:
    sock, endpoint = pull
    summary = play([_stream("a", 100)], endpoint, speed=200.0, chunk=10)
    assert summary.messages == 10 and len(_drain(sock, 10)) == 10
    stop = threading.Event()
    stop.set()
    summary = play([_stream("a", 100)], endpoint, speed=0, chunk=10, stop=stop)
    assert summary.interrupted and summary.messages == 0
    with pytest.raises(ValueError, match="speed"):
        play([_stream("a", 100)], endpoint, speed=-1)
    with pytest.raises(ValueError, match="chunk"):
        play([_stream("a", 100)], endpoint, chunk=0)


# -- a scored session against a fake engine --------------------------------------------------------


class FakeEngine:
    """PULL in, PUB out: one prediction per grid window, labelled SITTING; $stats every 0.1 s."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.ingest = self.publish = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeEngine:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        pull, pub = context.socket(zmq.PULL), context.socket(zmq.PUB)
        self.ingest = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
        self.publish = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
        self._ready.set()
        stats = {"streams": 0, "windows": 0, "windows_per_s": 0.0, "rejected": 0,
                 "latency_ms": {"p50": None, "p99": None, "max": None}, "uptime_s": 0.0}
        next_stats = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_stats:
                pub.send_multipart(encode_stats({**stats, "t": time.time()}))
                next_stats = time.monotonic() + 0.1
            if not pull.poll(20):
                continue
            chunk = decode_chunk(pull.recv_multipart())
            stop = chunk.seq + len(chunk.samples)
            for end in window_ends(0, stop).tolist():
                if end >= chunk.seq:
                    now = time.time()
                    pub.send_multipart(encode_prediction(Prediction(
                        chunk.stream, end, "SITTING", (0.0, 1.0), "STANDING", now, now + 0.001)))
        pull.close(linger=0)
        pub.close(linger=0)
        context.term()


def test_score_replay_collects_every_window() -> None:
    segments = [Segment(1, 1, 4, 0, 1000)]  # SITTING for the first 1000 samples
    streams = [_stream(sid, 1200, functools.partial(window_activity, segments))
               for sid in ("exp01_user01", "exp02_user01")]
    with FakeEngine() as engine:
        scorer = score_replay(streams, engine.ingest, engine.publish, speed=0, chunk=50,
                              copies=2, timeout_s=3.0)
    report = scorer.report()
    assert scorer.done and not scorer.interrupted
    assert report["windows_expected"] == report["windows_received"] == 4 * 17
    assert report["n_scored"] == 4 * 14
    assert report["accuracy"] == 1.0 and report["smoothed_accuracy"] == 0.0
    assert report["duplicates"] == report["unexpected"] == 0
    assert report["replay"]["messages"] == 4 * 24


# -- the CLI verb ----------------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_arguments() -> None:
    args = _parse()
    assert args.subjects == "default"  # resolved once the layout is known
    assert cli.resolve_subjects(args.subjects, "hapt") == set(TEST_SUBJECTS)
    assert cli.resolve_subjects(args.subjects, "uci-har") == set(TEST_SUBJECTS)
    assert cli.resolve_subjects(args.subjects, "motionsense") == {1, 7, 13, 19}
    assert cli.resolve_subjects(_parse("--subjects", "test").subjects, "hapt") == set(TEST_SUBJECTS)
    assert (args.speed, args.chunk, args.copies, args.score, args.json) == (1.0, 25, 1, False,
                                                                            False)
    assert _parse("--subjects", "all").subjects is None
    assert _parse("--subjects", "2, 4").subjects == {2, 4}
    for bad in (["--subjects", "0"], ["--subjects", "x"], ["--speed", "-1"], ["--chunk", "0"],
                ["--chunk", "3001"], ["--copies", "0"]):
        with pytest.raises(SystemExit):
            _parse(*bad)


def test_command_plays_and_prints_json(
    uci_dir: Path, pull: tuple[zmq.Socket[bytes], str], capsys: pytest.CaptureFixture[str]
) -> None:
    sock, endpoint = pull
    args = _parse("--data", str(uci_dir), "--subjects", "5", "--speed", "0", "--endpoint",
                  endpoint, "--json", "--no-progress", "--chunk", "100")
    assert cli.run(args) == 0
    sent = json.loads(capsys.readouterr().out)
    assert (sent["streams"], sent["messages"], sent["samples"]) == (1, 4, 320)
    assert len(_drain(sock, 4)) == 4
    with pytest.raises(HarstreamError, match="--score"):
        cli.run(_parse("--data", str(uci_dir), "--plot", "x.png"))


def test_command_scores_and_plots(
    uci_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeEngine() as engine:
        args = _parse("--data", str(uci_dir), "--subjects", "3,5", "--speed", "0", "--endpoint",
                      engine.ingest, "--score", "--connect", engine.publish, "--json",
                      "--plot", str(tmp_path / "t.png"), "--no-progress", "--timeout", "3")
        assert cli.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["windows_expected"] == report["windows_received"] == 5 + 3 + 4
    assert report["n_scored"] == 12
    assert report["accuracy"] == pytest.approx(3 / 12)  # only run 2 of subject 3 sits
    assert (tmp_path / "t.png").stat().st_size > 0


def test_windows_lost_to_an_engine_restart_are_reported_as_such() -> None:
    from harstream.protocol import Prediction, StatsEvent
    from replay.scoring import Scorer
    from replay.sources import ReplayStream, RowTruth

    stream = ReplayStream("a", np.zeros((128 + 64 * 9, 6), np.float32), 1, RowTruth(np.full(10, 1)))
    scorer = Scorer([stream])

    def window(end: int, engine: str) -> Prediction:
        return Prediction("a", end, "WALKING", (1.0,), "WALKING", 0.0, 0.0, engine=engine)

    scorer.update(StatsEvent({"engine": "first"}))
    for end in (127, 191, 255):
        scorer.update(window(end, "first"))
    scorer.update(StatsEvent({"engine": "second"}))  # restart: 319 and 383 never come
    for end in (447, 511, 575, 639):
        scorer.update(window(end, "second"))
    report = scorer.report()
    assert report["windows_missing"] == 3  # 319, 383 lost to the restart; 703 still to come
    assert report["engine_restarts"] == 1 and report["windows_lost_to_restarts"] == 2
