"""The dashboard: state from events, what a person sees, and receiving from a real PUB socket."""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import zmq
from rich.console import Console

from harstream import ACTIVITIES, DEFAULT_PUBLISH
from harstream.cli.dashboard import add_arguments
from harstream.errors import HarstreamError
from harstream.protocol import (
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_event,
    encode_error,
    encode_prediction,
    encode_stats,
)
from harstream.tools.dashboard.app import DEFAULT_CONNECT, run_dashboard
from harstream.tools.dashboard.receiver import Receiver
from harstream.tools.dashboard.state import DashboardState
from harstream.tools.dashboard.view import (
    ACTIVITY_COLORS,
    pick_rows,
    render,
    rows_for_height,
    short_name,
    timeline,
)
from harstream.tools.keypress import KeyReader

EP = "tcp://127.0.0.1:5556"
STATS = {
    "streams": 1234,
    "windows": 98765,
    "windows_per_s": 937.5,
    "latency_ms": {"p50": 7.8, "p99": 21.4, "max": 40.0},
    "rejected": 3,
    "uptime_s": 3723.0,
    "t": 1_700_000_000.0,
}


def pred(
    stream: str,
    smoothed: str,
    seq_end: int = 127,
    top: float = 0.9,
    smoothed_top: float | None = None,
    latency_ms: float = 8.0,
) -> Prediction:
    """A prediction whose probabilities peak at ``smoothed`` (``top``, ``smoothed_top``)."""

    def peaked(value: float) -> tuple[float, ...]:
        rest = (1.0 - value) / (len(ACTIVITIES) - 1)
        return tuple(value if a == smoothed else rest for a in ACTIVITIES)

    smoothed_probs = None if smoothed_top is None else peaked(smoothed_top)
    return Prediction(
        stream, seq_end, smoothed, peaked(top), smoothed, 1000.0, 1000.0 + latency_ms / 1000,
        smoothed_probs,
    )


def show(state: DashboardState, now: float, max_rows: int = 20, width: int = 120) -> str:
    """The dashboard as plain text, as a 120-column terminal would show it."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(render(state.snapshot(now), max_rows=max_rows, width=width))
    return console.export_text()


# -- state -------------------------------------------------------------------------------------


def test_stream_state_follows_its_predictions() -> None:
    state = DashboardState(EP, history=30)
    for i in range(40):
        label = "WALKING" if i < 35 else "SITTING"
        state.update(pred("phone-1", label, seq_end=127 + 64 * i, latency_ms=i), now=float(i))
    (view,) = state.snapshot(now=40.0).streams
    assert view.activity == "SITTING"
    assert view.history == ("WALKING",) * 25 + ("SITTING",) * 5
    assert view.windows == 40
    assert view.latency_ms == pytest.approx(39.0)
    assert view.updated == 39.0


def test_confidence_prefers_smoothed_probs() -> None:
    state = DashboardState(EP)
    state.update(pred("a", "LAYING", top=0.6, smoothed_top=0.95), now=0.0)
    state.update(pred("b", "LAYING", top=0.6), now=0.0)
    views = {v.stream: v for v in state.snapshot(now=0.0).streams}
    assert views["a"].confidence == pytest.approx(0.95)
    assert views["b"].confidence == pytest.approx(0.6)


def test_stats_errors_and_counts() -> None:
    state = DashboardState(EP, max_errors=3)
    state.update(StatsEvent({**STATS, "latency_ms": {"p50": None, "p99": None, "max": None}}), 0.0)
    for i in range(5):
        state.update(ErrorEvent(f"s{i}", "seq_gap", f"gap {i}"), now=1.0)
    for i, label in enumerate(["WALKING", "WALKING", "SITTING", "OTHER"]):
        state.update(pred(f"p{i}", label), now=1.0)
    snap = state.snapshot(now=1.5)
    assert snap.stats is not None and snap.stats.p50_ms is None and snap.stats.rejected == 3
    assert [line.event.detail for line in snap.errors] == ["gap 2", "gap 3", "gap 4"]
    assert snap.errors_total == 5
    counts = dict(snap.counts)
    assert list(counts)[:6] == list(ACTIVITIES)
    assert counts == {**dict.fromkeys(ACTIVITIES, 0), "WALKING": 2, "SITTING": 1, "OTHER": 1}


def test_connection_status_and_forgetting() -> None:
    state = DashboardState(EP, silence_s=3.0, forget_s=60.0)
    assert state.snapshot(now=10.0).status == "waiting"
    state.update(pred("a", "WALKING"), now=12.0)
    assert state.snapshot(now=14.0).status == "connected"
    silent = state.snapshot(now=20.0)
    assert (silent.status, silent.silent_s) == ("silent", 8.0)
    assert state.snapshot(now=100.0).streams == ()  # not seen for over forget_s
    state.update(StatsEvent(STATS), now=100.5)  # the engine is back
    assert state.snapshot(now=101.0).status == "connected"


# -- rendering ---------------------------------------------------------------------------------


def test_rows_header_and_errors_as_seen() -> None:
    state = DashboardState(EP)
    state.update(StatsEvent(STATS), now=0.0)
    labels = {"phone-1": "WALKING", "phone-2": "WALKING_UPSTAIRS", "phone-10": "LAYING"}
    for stream, label in labels.items():
        state.update(pred(stream, label, top=0.5, smoothed_top=0.82, latency_ms=7.5), now=1.0)
    state.update(ErrorEvent("phone-3", "seq_gap", "expected seq 640, got 704"), now=1.0)
    text = show(state, now=1.5)
    assert f"connected to {EP}" in text
    for item in ["streams 1,234", "windows/s 937.5", "p50 7.8 ms", "p99 21.4 ms",
                 "rejected 3", "uptime 1h 02m", "seen here 3"]:
        assert item in text
    rows = [line.split() for line in text.splitlines() if line.startswith("phone-")]
    assert [r[:2] for r in rows] == [
        ["phone-1", "WALKING"], ["phone-2", "UPSTAIRS"], ["phone-10", "LAYING"]
    ]
    assert all("82%" in r and "7.5" in r and "1" in r for r in rows)
    assert "WALKING 1 33%" in text and "DOWNSTAIRS 0" in text
    assert "$error reports: 1" in text
    assert "phone-3 seq_gap: expected seq 640, got 704" in text


def test_many_streams_show_recent_rows_and_summarise_the_rest() -> None:
    state = DashboardState(EP)
    state.update(StatsEvent(STATS), now=0.0)
    labels = {f"s{i:04d}": ACTIVITIES[i % 6] for i in range(1200)}
    for i, (stream, label) in enumerate(labels.items()):
        state.update(pred(stream, label), now=1.0 + i / 1000)
    text = show(state, now=2.5, max_rows=20)
    rows = [line.split()[0] for line in text.splitlines() if re.match(r"s\d{4} ", line)]
    assert rows == [f"s{i:04d}" for i in range(1180, 1200)]  # the 20 most recent, in order
    hidden = Counter(list(labels.values())[:1180])
    (summary,) = [line for line in text.splitlines() if "more streams" in line]
    assert summary.startswith("… and 1,180 more streams: ")
    for label, n in hidden.items():
        assert f"{n:,} {short_name(label)}" in summary
    assert "WALKING 200 17%" in text  # every stream in the per-activity counts


def test_pick_rows_keeps_fresh_rows_shown_last_time() -> None:
    state = DashboardState(EP)
    for i in range(100):
        state.update(pred(f"s{i}", "SITTING"), now=10.0 + i / 100)
    snap = state.snapshot(now=11.0)
    assert [v.stream for v in pick_rows(snap, 3)] == ["s97", "s98", "s99"]
    assert [v.stream for v in pick_rows(snap, 3, keep=["s5", "gone"])] == ["s5", "s98", "s99"]
    stale = state.snapshot(now=16.0)  # s5 is now more than 5 s old, s99 is not
    assert [v.stream for v in pick_rows(stale, 3, keep=["s5"])] == ["s97", "s98", "s99"]
    assert len(pick_rows(snap, 500)) == 100


def test_waiting_for_engine_is_shown() -> None:
    state = DashboardState(EP)
    assert f"waiting for engine at {EP} (silent 0 s)" in show(state, now=0.0)
    assert "no $stats yet" in show(state, now=0.0)
    state.update(pred("a", "STANDING"), now=1.0)
    text = show(state, now=13.0)
    assert f"waiting for engine at {EP} (silent 12 s) — reconnecting" in text
    assert "connected" not in text


def test_timeline_has_one_block_per_window_in_its_colour() -> None:
    strip = timeline(["WALKING", "SITTING", "LAYING"], span=5)
    assert strip.plain == "  ███"
    styles = [str(span.style) for span in strip.spans]  # one span per run of a label
    assert styles == [ACTIVITY_COLORS[a] for a in ("WALKING", "SITTING", "LAYING")]
    assert timeline(["WALKING"] * 40, span=30).plain == "█" * 30
    runs = timeline(["WALKING", "WALKING", "SITTING"], span=3).spans
    expected = [(0, 2, "green"), (2, 3, "bright_blue")]
    assert [(r.start, r.end, str(r.style)) for r in runs] == expected


@pytest.mark.parametrize("width", [80, 120])
def test_dashboard_fits_the_terminal_height(width: int) -> None:
    state = DashboardState(EP)
    state.update(StatsEvent(STATS), now=0.0)
    for i in range(1200):
        state.update(pred(f"stream-{i}", ACTIVITIES[i % 6]), now=1.0)
    for _ in range(3):
        state.update(ErrorEvent(None, "stream_id", "expected the stream id to be … " * 4), 1.0)
    text = show(state, now=1.5, max_rows=rows_for_height(40), width=width)
    assert len(text.splitlines()) <= 40
    assert max(len(line) for line in text.splitlines()) <= width


# -- receiving ---------------------------------------------------------------------------------


@pytest.fixture
def pub() -> Iterator[tuple[zmq.Socket[bytes], str]]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    yield sock, endpoint
    sock.close(linger=0)


def publish_until(sock: zmq.Socket[bytes], frames: list[list[bytes]], done: threading.Event,
                  limit_s: float = 30.0) -> None:
    """Publish ``frames`` repeatedly (SUB joins late) until ``done`` or ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not done.is_set() and time.monotonic() < deadline:
        for message in frames:
            sock.send_multipart(message)
        done.wait(0.05)


def test_receiver_feeds_the_state_from_a_real_pub_socket(
    pub: tuple[zmq.Socket[bytes], str],
) -> None:
    sock, endpoint = pub
    frames = [
        encode_stats(STATS),
        encode_prediction(pred("phone-1", "WALKING")),
        encode_prediction(pred("other-1", "SITTING")),
        encode_error("phone-1", "seq_replay", "expected seq 640, got 576"),
        [b"phone-2", b"not json"],
    ]
    state, lock = DashboardState(endpoint), threading.Lock()
    done = threading.Event()

    def everything_seen() -> bool:
        with lock:
            snap = state.snapshot(time.monotonic())
        return bool(snap.stats and snap.errors and snap.streams and snap.invalid)

    with Receiver(state, lock, endpoint, streams=["phone-"], poll_s=0.02):
        sender = threading.Thread(target=publish_until, args=(sock, frames, done))
        sender.start()
        try:
            deadline = time.monotonic() + 30.0  # only a failure waits this long
            while not everything_seen() and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            done.set()
            sender.join()
    snap = state.snapshot(time.monotonic())
    assert snap.status == "connected"
    assert snap.stats is not None and snap.stats.streams == 1234
    assert [v.stream for v in snap.streams] == ["phone-1"]  # other-1 filtered by prefix
    assert snap.errors[-1].event == decode_event(frames[3])
    assert snap.invalid >= 1


def test_run_dashboard_draws_what_it_receives(pub: tuple[zmq.Socket[bytes], str]) -> None:
    sock, endpoint = pub
    out = io.StringIO()
    console = Console(file=out, width=120, height=40, force_terminal=True, color_system=None)
    frames = [encode_stats(STATS), encode_prediction(pred("phone-7", "WALKING_DOWNSTAIRS"))]
    stop, done = threading.Event(), threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 30.0  # only a failure waits this long
        while time.monotonic() < deadline and not ("phone-7" in out.getvalue()
                                                   and "connected to" in out.getvalue()):
            time.sleep(0.02)
        stop.set()
        done.set()

    sender = threading.Thread(target=publish_until, args=(sock, frames, done))
    watcher = threading.Thread(target=watch)
    sender.start()
    watcher.start()
    try:
        assert run_dashboard(endpoint, refresh_hz=20, console=console, stop=stop) == 0
    finally:
        stop.set()
        done.set()
        watcher.join()
        sender.join()
    text = out.getvalue()
    assert "phone-7" in text and "DOWNSTAIRS" in text and f"connected to {endpoint}" in text


def test_bad_endpoint_is_a_harstream_error() -> None:
    with pytest.raises(HarstreamError, match="cannot subscribe to 'nowhere'"):
        run_dashboard("nowhere", console=Console(file=io.StringIO()))


# -- keys and command line ---------------------------------------------------------------------


def test_key_reader_reads_q_in_cbreak_mode_and_restores_the_terminal() -> None:
    master, slave = os.openpty()
    with os.fdopen(slave, "r") as tty_in:
        before = termios.tcgetattr(slave)
        with KeyReader(tty_in) as keys:
            assert keys.active
            assert not termios.tcgetattr(slave)[3] & termios.ICANON
            os.write(master, b"q")
            assert keys.read(5.0) == "q"
            assert keys.read(0.0) == ""
        assert termios.tcgetattr(slave) == before
    os.close(master)


def test_key_reader_is_a_no_op_off_a_terminal() -> None:
    with KeyReader(io.StringIO()) as keys:
        assert not keys.active
        assert keys.read(0.0) == ""


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.connect, args.rows, args.refresh, args.streams) == (EP, None, 4.0, None)
    args = parser.parse_args(["--connect", "tcp://h:1", "--rows", "5", "--refresh", "2.5",
                              "--streams", "a", "--streams", "b"])
    expected = ("tcp://h:1", 5, 2.5, ["a", "b"])
    assert (args.connect, args.rows, args.refresh, args.streams) == expected
    for bad in (["--rows", "0"], ["--refresh", "-1"], ["--rows", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_the_command_line_can_import_the_hooks_cheaply() -> None:
    code = "import sys, harstream.cli.dashboard; print(sorted({'zmq', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert DEFAULT_CONNECT == DEFAULT_PUBLISH
