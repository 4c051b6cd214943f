"""Fuzz a real ``harstream serve`` process with over 10,000 generated ingest messages.

One engine process (the shipped model, loopback endpoints) serves the whole
module. :func:`test_fuzz_ingest` is a Hypothesis test: each example is a
batch of generated messages, most of them broken in one way (frame counts,
stream ids, JSON headers, field types and ranges, sample frames, random byte
mutations of valid messages), the rest valid edge cases (``seq`` 0 and next
to 2**53-1, one-sample and maximal chunks, extreme finite values, extreme
``t0``), and on streams of their own, valid chunks with a timestamps frame:
huge, tiny and stepping timestamps (around the 0.1 s dropout limit, far past
the 50 Hz grid's limit, before the stream's time origin) at any rate. Between
them a clean canary stream, one real HAPT test recording, goes in on its own
socket in 25-sample chunks. A background thread collects
everything the engine publishes. :func:`test_engine_survived_and_accounted`
then checks, with bounded polling and no timing assertion:

* the engine never exited and is the same engine run (``$stats`` ``engine``);
* every message :func:`harstream.protocol.decode_chunk` rejects here got
  exactly one ``$error`` with the same code (and the same ``stream``), in
  send order, and nothing else did; frames over the engine's
  ``ZMQ_MAXMSGSIZE`` are refused by the transport, never decoded;
* a timed chunk got at most two ``$error`` (``seq_gap``, ``seq_replay``,
  ``times``), on its own stream, and nothing ``internal``;
* the engine's counters (``chunks``, ``rejected``, ``windows``, ``shed``,
  ``internal_errors``) account for every message and every prediction;
* the canary's predictions equal a clean offline run: every window exactly
  once, probabilities within 1e-4 of the Keras path on
  :func:`harstream.signal.chain.process_recording`'s windows, and the smoothed
  labels of :class:`harstream.signal.smoothing.ForwardFilter` as ``serve`` builds it.

The generated load is bounded so the engine can never shed a chunk (all
the valid samples sent, as the engine counts them, fit its ingest queue at
once), and the 3000-sample chunks that cost model time are at most one per
example.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harstream import MAX_SAMPLES_PER_CHUNK
from harstream.data.hapt import read_dataset
from harstream.engine.admission import chunk_cost
from harstream.errors import ProtocolError
from harstream.model.classifier import Classifier
from harstream.protocol import (
    ERROR_CODES,
    MAX_HEADER_BYTES,
    MAX_SEQ,
    STREAM_ID,
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_chunk,
    encode_chunk,
)
from harstream.serve.client import Subscriber
from harstream.serve.config import MAX_INGEST_FRAME_BYTES, ServerConfig
from harstream.serve.loop import MIN_CHUNK_COST
from harstream.signal.chain import process_recording
from harstream.signal.smoothing import ForwardFilter
from harstream.signal.windows import window_ends

pytestmark = pytest.mark.slow

EXAMPLES = 100
"""Hypothesis examples (batches)."""
BATCH = 105
"""Generated messages per batch, plus at most one maximal chunk and one oversize message."""
MIN_MESSAGES = 10_000
"""Generated messages the module must have sent (checked at its end)."""
CANARY_USER, CANARY_EXPERIMENT = 2, 3
"""The canary: the first recording of test subject 2."""
CANARY_CHUNK = 25
CANARY_EVERY = 13
"""One canary chunk after every this many generated messages."""
DECODE_CODES = frozenset({"frames", "stream_id", "header", "version", "seq", "rate", "t0", "restart", "units",
                          "samples", "times"})
"""Codes :func:`decode_chunk` raises: the engine reports them as it receives a message."""
REJECTING_CODES = frozenset({"seq_replay", "too_many_streams", "not_owner"})
"""Engine codes that drop a decoded chunk (counted in ``rejected``; ``seq_gap`` uses the chunk)."""
WAIT_S = 180.0
"""Bound of every wait for the engine (start, catching up, quiescence); never a performance bound."""
STALL_S = 30.0
"""A wait also ends (and fails) when the engine published nothing but ``$stats`` for this long."""
MAX_QUEUED_SAMPLES = 4 * 1024 * 1024
"""The engine's ingest queue (``--max-queued-samples``): room for everything sent at once."""
LIMITS = ServerConfig(max_queued_samples=MAX_QUEUED_SAMPLES)
"""The limits ``serve`` runs with (this module starts it with that one limit option)."""

# -- generated messages ------------------------------------------------------------------------

POOL = (
    "fz-0", "fz-1", "fz-2", "fz.3:x_y", "0" * 64,
    # near misses of the canary's id: distinct streams (and topic prefixes of or by it)
    "exp03_user02x", "exp03_user0", "exp03_user02.b", "EXP03_USER02", "exp03_user2",
)
BAD_IDS = (
    b"", b"x" * 65, b"$", b"$stats", b"$error", b"$fz-0", b"fz 0", b"fz-0\n", b"\nfz-0", b"fz/0",
    b"fz-0\x00", b"\xff", b"fz-\xc3", b"caf\xc3\xa9", b"\xed\xa0\x80", b"\xc0\xaf", b"\xef\xbb\xbffz-0",
    "фз-0".encode(), b"*", b"fz-0 ",
)
T0_OK = (
    "1700000000.25", "1700000000", "0", "-0.0", "-1", "5e-324", "1e300", "-1e300", "1.7976931348623157e308",
    "-1.7976931348623157e308", str(10**300), "null", "1e305", "-1e305",
)
"""Valid ``t0`` texts (``1e305`` and ``-1e305`` in one ``$stats`` period once overflowed the age
percentiles and failed that ``$stats``)."""
BAD_VALUES: dict[str, tuple[str, ...]] = {
    "v": ("0", "2", "-1", "1.0", "1e0", "true", "false", "null", '"1"', "[1]", "{}", str(2**64)),
    "seq": ("-1", str(MAX_SEQ + 1), str(2**63), str(2**64), "-9223372036854775809", "1.0", "0.0", "1e3",
            "true", "false", "null", '"0"', "[0]", "{}"),
    "rate": ("19.99", "500.01", "0", "-50", "1e3", "true", "false", '"50"', "null", "[50]", str(50 + 2**64)),
    "t0": ('"1700000000"', "true", "false", "[]", "{}", '""', str(10**400), str(-(10**400))),
    "restart": ("1", "0", '"true"', '"false"', "null", "[]", "{}", "1.0"),
    "units": ('"g"', "[]", "null", "1", '{"acc":"G"}', '{"acc":"m/s^2"}', '{"gyro":"dps"}', '{"acc":1}',
              '{"gyro":null}'),
}
NON_STANDARD = ("NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1E400", "nan", "inf", "Inf")
RAW_HEADERS = (
    b"", b" ", b"{", b"}", b"[]", b"null", b"1", b'"x"', b"{}", b"\xff", b"\xef\xbb\xbf{}",
    b'{"v":1,"seq":0,"rate":50,}', b"{'v':1,'seq':0,'rate':50}", b'{"v":1,"seq":0,"rate":50}x',
    b'\xef\xbb\xbf{"v":1,"seq":0,"rate":50}', b'{"v":1,"seq":0,"rate":50,"x":"\xff"}',
    b'{"v":1,"seq":0,"rate":50,"x":"\xed\xa0\x80"}', b'{"v":1,"seq":0,"rate":50,"x":"\\ud800"}',
    b'{"v":1,"\\u0076":1,"seq":0,"rate":50}', b'{"\\u0076":1,"seq":0,"rate":50}',
    b' \n{ "v" : 1 ,\t"seq" : 0 , "rate" : 50 }\r\n', b'{"v":1,"seq":0,"rate":50}\x00',
    b'{"v":1,"seq":0,"rate":50,"x":' + b"[" * 480 + b"]" * 480 + b"}",
    b'{"v":1,"seq":0,"rate":50,"x":' + b"[" * 600 + b"]" * 600 + b"}",
    b'[{"v":1,"seq":0,"rate":50}]', b'{"v":1,"seq":0,"rate":50}{"v":1}', b'{"v":1,"seq":0x10,"rate":50}',
    b'{"v":1,"seq":00,"rate":50}', b'{"v":1,"seq":+1,"rate":50}', b'{"v":1,"seq":0,"rate":50,"t0":.5}',
)
ROW = 24
"""Bytes per sample row on the wire."""
SMALL = 64
"""Most samples of a generated chunk but the one maximal chunk a batch may hold: so everything valid
sent, (BATCH * SMALL + 3000) * EXAMPLES plus the canary, fits the engine's ingest queue at once and
it can never shed a chunk, however far behind it falls."""


def _header(pairs: list[tuple[str, str]]) -> bytes:
    """A JSON object from raw ``(key, value text)`` pairs: duplicates and non-standard tokens allowed."""
    return ("{" + ",".join(f'"{key}":{value}' for key, value in pairs) + "}").encode("utf-8")


def _samples(n: int, seed: int, style: int) -> npt.NDArray[np.float32]:
    """``n`` finite float32 rows of one of a few styles (the values come from ``seed``, not Hypothesis)."""
    rng = np.random.default_rng(seed)
    if style == 0:  # like a phone: gravity on z, a little motion
        x = rng.normal(0.0, 0.3, (n, 6)) + np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    elif style == 1:
        x = np.zeros((n, 6))
    elif style == 2:  # extreme finite values, denormals and signed zeros
        extremes = np.array([3.4028235e38, -3.4028235e38, 1e38, -1e30, 1e-45, -1e-45, 1.1754944e-38, -0.0, 0.0])
        x = rng.choice(extremes, (n, 6))
    else:  # any finite float32 bit pattern
        x = rng.integers(0, 2**32, (n, 6), dtype=np.uint32).view(np.float32)
        x = np.where(np.isfinite(x), x, np.float32(0.0))
    return np.ascontiguousarray(x, dtype="<f4")


@dataclass(frozen=True)
class Message:
    """One generated ingest message."""

    frames: list[bytes]
    follow: bool = False
    """``seq`` is the placeholder ``FOLLOW``: replaced at send time by the stream's next index."""
    timed: TimedPlan | None = None
    """A timed chunk, whose frames are made at send time (``frames`` is empty)."""


FOLLOW = b'"@follow@"'

ids = st.one_of(st.sampled_from(POOL), st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True))
bad_ids = st.one_of(
    st.sampled_from(BAD_IDS),
    st.binary(max_size=80),
    st.text(max_size=70).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@st.composite
def valid_message(draw: st.DrawFn, n: int | None = None, seqs: str = "any") -> Message:
    """A chunk ``decode_chunk`` accepts (unless ``seqs`` is ``"edge"``, which crosses the seq limit)."""
    stream = draw(ids)
    if n is None:
        n = draw(st.one_of(st.integers(1, SMALL), st.sampled_from([1, 2, 24, 25, 63, SMALL])))
    kinds = ["follow", "zero", "small", "last", "any"] if seqs == "any" else ["last", "past", "max", "zero"]
    kind = draw(st.sampled_from(kinds))
    seqs_by_kind: dict[str, int | bytes] = {
        "follow": FOLLOW,
        "zero": 0,
        "small": draw(st.integers(0, 5000)) if kind == "small" else 0,
        "last": MAX_SEQ - n + 1,  # the chunk's last sample is 2**53-1: valid
        "past": MAX_SEQ - n + 2,  # one past: seq error
        "max": MAX_SEQ,
        "any": draw(st.integers(0, MAX_SEQ)) if kind == "any" else 0,
    }
    seq = seqs_by_kind[kind]
    pairs = [("v", "1"), ("seq", seq.decode() if isinstance(seq, bytes) else str(seq)), ("rate", "50")]
    if draw(st.booleans()):
        pairs.append(("t0", draw(st.sampled_from(T0_OK))))
    restart = draw(st.sampled_from(["", "", "true", "false"]))
    if restart:
        pairs.append(("restart", restart))
    if draw(st.booleans()):
        pairs.append(("x-unknown", draw(st.sampled_from(['"ignored"', "[1,2]", "{}", "null", "1e300"]))))
    order = draw(st.permutations(pairs)) if draw(st.booleans()) else pairs
    style = draw(st.integers(0, 3))
    samples = _samples(n, draw(st.integers(0, 2**32 - 1)), style).tobytes()
    return Message([stream.encode(), _header(order), samples], follow=kind == "follow")


@st.composite
def bad_header_field(draw: st.DrawFn) -> Message:
    """A valid chunk but for one header field: missing, mistyped, out of range, non-standard JSON, twice."""
    base = draw(valid_message())
    pairs = [("v", "1"), ("seq", "0"), ("rate", "50")]
    key = draw(st.sampled_from(["v", "seq", "rate", "t0", "restart", "units", "x"]))
    how = draw(st.sampled_from(["value", "value", "constant", "missing", "twice"]))
    if how == "missing":
        pairs = [p for p in pairs if p[0] != key]
    elif how == "twice":
        pairs.append((key if key != "x" else "seq", draw(st.sampled_from(["1", "0", "50", "true"]))))
        if key in ("t0", "restart", "units", "x"):
            pairs.append((key, "true" if key == "restart" else "1"))
    else:
        values = BAD_VALUES.get(key, ('"x"',)) if how == "value" else NON_STANDARD
        value = draw(st.sampled_from(values))
        pairs = [p for p in pairs if p[0] != key] + [(key, value)]
    return Message([base.frames[0], _header(draw(st.permutations(pairs))), base.frames[2]])


@st.composite
def bad_header_raw(draw: st.DrawFn) -> Message:
    """A header frame that is not a (standard, UTF-8, single) JSON object, or is over its size limit."""
    base = draw(valid_message())
    if draw(st.booleans()):
        header = draw(st.sampled_from(RAW_HEADERS))
    else:  # padded to a size around and over the 1024-byte limit (up to far below the frame limit)
        size = draw(st.one_of(
            st.sampled_from([MAX_HEADER_BYTES - 1, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1]),
            st.integers(MAX_HEADER_BYTES + 1, 4 * MAX_HEADER_BYTES),
            st.integers(MAX_HEADER_BYTES + 1, MAX_INGEST_FRAME_BYTES),
        ))
        head = b'{"v":1,"seq":0,"rate":50,"pad":"'
        header = head + b"p" * max(0, size - len(head) - 2) + b'"}'
    return Message([base.frames[0], header, base.frames[2]])


@st.composite
def bad_stream(draw: st.DrawFn) -> Message:
    base = draw(valid_message())
    return Message([draw(bad_ids), *base.frames[1:]])


@st.composite
def bad_frames(draw: st.DrawFn) -> Message:
    """Too few or too many frames (empty frames included)."""
    frames = draw(valid_message()).frames
    count = draw(st.sampled_from([1, 2, 4, 5, 7]))
    if count < 3:
        kept = draw(st.permutations(range(3)))[:count]
        return Message([frames[i] for i in sorted(kept)])
    extra = draw(st.sampled_from([b"", b"\x00", frames[0], frames[1], frames[2][:ROW]]))
    return Message(frames + [extra] * (count - 3))


@st.composite
def bad_samples(draw: st.DrawFn) -> Message:
    """A samples frame that is empty, not whole rows, or holds a NaN or an infinity."""
    base = draw(valid_message())
    frame = base.frames[2]
    how = draw(st.sampled_from(["empty", "partial", "non_finite", "non_finite"]))
    if how == "empty":
        frame = b""
    elif how == "partial":
        cut = draw(st.sampled_from([1, 5, 23, 25, 47]))
        frame = frame[:cut] if cut < len(frame) else frame + b"\x00" * (cut % ROW)
    else:
        values = (np.float32("nan"), np.float32("-nan"), np.float32("inf"), np.float32("-inf"))
        bad = np.array([draw(st.sampled_from(values))], dtype="<f4").tobytes()
        if draw(st.booleans()):
            bad = bytes([0x01, 0x00, 0x80, 0x7F])  # a signalling NaN
        cell = draw(st.integers(0, len(frame) // 4 - 1))
        frame = frame[: 4 * cell] + bad + frame[4 * cell + 4 :]
    return Message([base.frames[0], base.frames[1], frame])


@st.composite
def bad_times(draw: st.DrawFn) -> Message:
    """A timestamps frame (frame 3) of the wrong size, not increasing, or holding a NaN or an infinity."""
    base = draw(valid_message())
    n = len(base.frames[2]) // ROW
    times = 1000.0 + np.arange(n, dtype="<f8") / 50
    how = draw(st.sampled_from(["size", "back", "equal", "non_finite"]))
    if how == "size":
        frame = times.tobytes()[: draw(st.sampled_from([0, 7, 8 * max(0, n - 1)]))] if n > 1 else b"\x00" * 9
    elif how in ("back", "equal") and n >= 2:
        i = draw(st.integers(1, n - 1))
        times[i] = times[i - 1] - (0.01 if how == "back" else 0.0)
        frame = times.tobytes()
    else:
        times[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        frame = times.tobytes()
    return Message([*base.frames[:3], frame], follow=base.follow)


@st.composite
def mutated(draw: st.DrawFn) -> Message:
    """A valid message with one to three random byte edits in one frame."""
    frames = list(draw(valid_message()).frames)
    index = draw(st.integers(0, 2))
    frame = bytearray(frames[index])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            frame.insert(pos, draw(st.integers(0, 255)))
        elif op == "delete" and frame:
            del frame[pos]
        elif op == "truncate":
            del frame[pos:]
    frames[index] = bytes(frame)
    return Message(frames)


@st.composite
def maximal(draw: st.DrawFn) -> Message:
    """A 3000-sample chunk (valid, or broken in its seq or last value): costs up to 45 windows."""
    message = draw(valid_message(n=MAX_SAMPLES_PER_CHUNK, seqs=draw(st.sampled_from(["any", "edge"]))))
    if draw(st.integers(0, 3)) == 0:  # a NaN as the very last value
        frames = message.frames
        return Message([frames[0], frames[1], frames[2][:-4] + np.float32("nan").tobytes()])
    return message


@st.composite
def oversize(draw: st.DrawFn) -> Message:
    """A message with a frame over the engine's ZMQ_MAXMSGSIZE: 3001 samples, or a 72 KB id or header."""
    base = draw(valid_message())
    what = draw(st.sampled_from(["samples", "samples", "header", "stream"]))
    big = MAX_INGEST_FRAME_BYTES + 1
    if what == "samples":
        return Message([base.frames[0], base.frames[1], _samples(MAX_SAMPLES_PER_CHUNK + 1, 0, 0).tobytes()])
    if what == "header":
        return Message([base.frames[0], b'{"v":1,"seq":0,"rate":50,"x":"' + b"p" * big + b'"}', base.frames[2]])
    return Message([b"s" * big, *base.frames[1:]])


TIMED_IDS = ("tz-0", "tz-1", "tz-2")
"""Streams of the timed chunks (generated messages of other kinds on these ids are not sent)."""
TIMED_PER_BATCH = 3
"""Timed chunks per batch, at most: each costs the engine up to about 7,300 samples (64 samples
at 500 Hz spanning 6.3 s, or 63 dropouts)."""
HUGE_TIMES = (1e300, -1e300, 1e22, 1.7976931348623157e308, -1.7976931348623157e308, 2.0**53 / 50, 1e15)
TIME_STEPS = (5e-324, 1e-300, 1e-9, 0.001, 0.01, 0.02, 0.099, 0.1, 0.1000001, 0.11, 0.5, 1e6, 1e300)


@dataclass(frozen=True)
class TimedPlan:
    """A timed chunk, made at send time from its stream's last seq and timestamp."""

    stream: str
    rate: float
    n: int
    seq: str
    """``follow`` (the next seq), ``ahead`` (a seq gap), ``restart`` (0 with ``restart``)."""
    start: float | None
    """First timestamp; None: one step after the stream's last."""
    steps: tuple[float, ...]
    """Steps between the timestamps (n - 1), then made strictly increasing and finite."""
    seed: int


@st.composite
def timed_plan(draw: st.DrawFn) -> TimedPlan:
    n = draw(st.integers(1, SMALL))
    style = draw(st.sampled_from(["steps", "mixed", "jump", "ordinary"]))
    if style == "steps":
        steps = [draw(st.sampled_from(TIME_STEPS))] * (n - 1)
    elif style == "ordinary":
        steps = [0.01] * (n - 1)
    elif style == "mixed":
        steps = draw(st.lists(st.sampled_from(TIME_STEPS), min_size=n - 1, max_size=n - 1))
    else:  # ordinary steps and one huge one
        steps = [0.01] * (n - 1)
        if steps:
            steps[draw(st.integers(0, n - 2))] = draw(st.sampled_from(HUGE_TIMES))
    start = draw(st.one_of(st.none(), st.none(), st.none(), st.sampled_from(HUGE_TIMES),
                           st.floats(-1e10, 1e10), st.sampled_from([0.0, -1.0, 5e-324])))
    return TimedPlan(draw(st.sampled_from(TIMED_IDS)), draw(st.sampled_from([20, 25, 50, 100, 120.5, 500])), n,
                     draw(st.sampled_from(["follow", "follow", "ahead", "restart"])), start, tuple(steps),
                     draw(st.integers(0, 2**32 - 1)))


def _timestamps(first: float, steps: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """``first`` then ``steps``, finite and strictly increasing at float64 precision."""
    with np.errstate(over="ignore", invalid="ignore"):
        times = first + np.concatenate([[0.0], np.cumsum(steps)])
    times = np.clip(np.nan_to_num(times, nan=0.0), -1.7e308, 1.7e308)
    for i in range(1, len(times)):
        if not times[i] > times[i - 1]:
            times[i] = np.nextafter(times[i - 1], np.inf)
    if not np.isfinite(times).all():  # ran out of doubles at the top: start lower
        return _timestamps(-1.7e308, steps)
    return times


message = st.one_of(
    valid_message(), valid_message(), valid_message(seqs="edge"), bad_header_field(), bad_header_field(),
    bad_header_raw(), bad_stream(), bad_frames(), bad_samples(), bad_times(), mutated(), mutated(),
)


@st.composite
def batches(draw: st.DrawFn) -> list[Message]:
    """``BATCH`` messages, plus at most one maximal chunk and one oversize message at random places."""
    batch = draw(st.lists(message, min_size=BATCH, max_size=BATCH))
    for extra, wanted in ((maximal(), st.booleans()), (oversize(), st.integers(0, 2).map(lambda k: k == 0))):
        if draw(wanted):
            batch.insert(draw(st.integers(0, len(batch))), draw(extra))
    for _ in range(draw(st.integers(0, TIMED_PER_BATCH))):
        batch.insert(draw(st.integers(0, len(batch))), Message([], timed=draw(timed_plan())))
    return batch


# -- the engine, the sockets and what comes back ----------------------------------------------


class Collector(threading.Thread):
    """Receives everything the engine publishes, in order, until stopped."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(name="fuzz-collector", daemon=True)
        self.endpoint = endpoint
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.events: list[Prediction | ErrorEvent | StatsEvent] = []
        self.invalid = 0
        self.output = 0
        """Events other than ``$stats`` received: progress."""
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with Subscriber(self.endpoint) as sub:
                while not self.stop.is_set():
                    event = sub.receive(timeout_s=0.05)
                    if event is not None:
                        with self.lock:
                            self.events.append(event)
                        self.output += not isinstance(event, StatsEvent)
                    self.invalid = sub.invalid
        except BaseException as exc:  # reported by the tests
            self.failure = exc

    def snapshot(self) -> list[Prediction | ErrorEvent | StatsEvent]:
        with self.lock:
            return list(self.events)


@dataclass
class Canary:
    stream: str
    samples: npt.NDArray[np.float32]
    seq_ends: list[int]
    probs: npt.NDArray[np.float32]
    """Offline Keras probabilities of each window (process_recording in 25-sample chunks)."""
    smoothed: list[str]
    """Offline ForwardFilter(len(labels), stay=0.9) labels."""
    smoothed_probs: npt.NDArray[np.float64]
    labels: list[str]
    sent: int = 0
    """Samples sent so far."""


@dataclass
class Harness:
    proc: subprocess.Popen[bytes]
    log_path: Path
    collector: Collector
    engine_id: str
    canary: Canary
    fuzz: zmq.Socket[bytes]
    big: zmq.Socket[bytes]
    canary_push: zmq.Socket[bytes]
    expected: list[tuple[str, str | None]] = field(default_factory=list)
    """(code, stream) of each generated message ``decode_chunk`` rejects, in send order."""
    messages: int = 0
    """Generated messages sent (oversize ones included)."""
    oversize: int = 0
    """Generated messages with a frame over ZMQ_MAXMSGSIZE (sent on their own socket)."""
    skipped: int = 0
    """Generated messages not sent because their stream id was the canary's."""
    valid_chunks: int = 0
    valid_cost: int = 0
    """Samples the valid chunks count as in the engine's ingest queue."""
    timed: int = 0
    """Timed chunks sent (all valid)."""
    canary_chunks: int = 0
    next_seq: dict[bytes, int] = field(default_factory=dict)
    last_time: dict[str, float] = field(default_factory=dict)
    """Last timestamp sent on each timed stream."""

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return f"engine log (last 3000 characters):\n{text[-3000:]}"

    def progress(self) -> str:
        events = self.collector.snapshot()
        errors = sum(isinstance(e, ErrorEvent) and e.code in DECODE_CODES for e in events)
        windows = sum(isinstance(e, Prediction) and e.stream == self.canary.stream for e in events)
        return (f"{errors} of {len(self.expected)} decode-level $errors and {windows} of "
                f"{len(self.canary.seq_ends)} canary windows received")

    def alive(self) -> None:
        assert self.collector.failure is None, f"collector failed: {self.collector.failure!r}"
        assert self.proc.poll() is None, f"the engine exited with {self.proc.returncode}\n{self.log()}"

    def send_canary(self, chunks: int) -> None:
        c = self.canary
        for _ in range(chunks):
            if c.sent >= len(c.samples):
                return
            part = c.samples[c.sent : c.sent + CANARY_CHUNK]
            self.canary_push.send_multipart(encode_chunk(c.stream, c.sent, part, t0=1.7e9 + c.sent / 50))
            c.sent += len(part)
            self.canary_chunks += 1

    def send_timed(self, plan: TimedPlan) -> None:
        key = plan.stream.encode()
        seq = self.next_seq.get(key, 0)
        if plan.seq == "ahead":
            seq += 1 + plan.seed % 10_000
        elif plan.seq == "restart":
            seq = 0
        last = self.last_time.get(plan.stream)
        start = plan.start if plan.start is not None or last is None else last + 0.01
        times = _timestamps(1000.0 if start is None else start, plan.steps)
        if seq > MAX_SEQ - plan.n + 1:
            seq = 0
        frames = encode_chunk(plan.stream, seq, _samples(plan.n, plan.seed, 0), rate=plan.rate, times=times,
                              restart=plan.seq == "restart")  # valid: encode_chunk decodes it
        self.next_seq[key] = seq + plan.n
        self.last_time[plan.stream] = float(times[-1])
        self.messages += 1
        self.timed += 1
        self.valid_chunks += 1
        self.valid_cost += max(chunk_cost(decode_chunk(frames)), MIN_CHUNK_COST)
        self.fuzz.send_multipart(frames)

    def send(self, m: Message) -> None:
        if m.timed is not None:
            self.send_timed(m.timed)
            return
        frames = list(m.frames)
        if frames[0] == self.canary.stream.encode() or frames[0].decode("latin-1") in TIMED_IDS:
            self.skipped += 1
            return
        if m.follow:
            frames[1] = frames[1].replace(FOLLOW, str(self.next_seq.get(frames[0], 0)).encode())
        self.messages += 1
        if max(len(f) for f in frames) > MAX_INGEST_FRAME_BYTES:
            self.oversize += 1  # the transport refuses it (and drops the connection): no $error
            self.big.send_multipart(frames)
            return
        try:
            chunk = decode_chunk(frames)
        except ProtocolError as exc:
            self.expected.append((exc.code, _stream_of(frames[0])))
        else:
            self.valid_chunks += 1
            self.valid_cost += max(chunk_cost(chunk), MIN_CHUNK_COST)
            expected = self.next_seq.get(frames[0])
            if expected is None or chunk.restart or chunk.seq >= expected:  # as the engine: no replay
                self.next_seq[frames[0]] = chunk.seq + len(chunk.samples)
        self.fuzz.send_multipart(frames)


def _stream_of(frame: bytes) -> str | None:
    """The ``stream`` of an ``$error`` about a message with this frame 0: None unless a valid id."""
    try:
        sid = frame.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return sid if STREAM_ID.fullmatch(sid) else None


def _offline_canary(hapt_dir: Path) -> Canary:
    dataset = read_dataset(hapt_dir, {CANARY_USER})
    recording = min(
        (r for r in dataset.recordings if r.user == CANARY_USER), key=lambda r: r.experiment
    )
    assert recording.experiment == CANARY_EXPERIMENT
    samples = recording.samples
    ends = window_ends(0, len(samples))
    channels = process_recording(samples, chunk=CANARY_CHUNK)
    windows = np.stack([channels[e - 127 : e + 1] for e in ends])
    classifier = Classifier.load()
    probs = classifier.predict_proba(windows)
    beliefs = ForwardFilter(len(classifier.labels), stay=0.9).run(probs)
    labels = list(classifier.labels)
    return Canary(recording.stream_id, samples, [int(e) for e in ends], probs,
                  [labels[int(i)] for i in beliefs.argmax(axis=1)], beliefs, labels)


def _wait(what: str, done: Callable[[], bool], harness: Harness) -> None:
    """Poll ``done``; fail once the engine published nothing but ``$stats`` for STALL_S s, or after WAIT_S."""
    start = last_change = time.monotonic()
    seen = -1
    while not done():
        harness.alive()
        now = time.monotonic()
        if harness.collector.output != seen:
            seen, last_change = harness.collector.output, now
        assert now - last_change < STALL_S and now - start < WAIT_S, (
            f"gave up waiting for {what} after {now - start:.0f} s: {harness.progress()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def harness(free_endpoint: Callable[[], str], hapt_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    ingest, publish = free_endpoint(), free_endpoint()
    log_path = tmp_path_factory.mktemp("fuzz") / "serve.log"
    with log_path.open("wb") as log:  # a file, not a pipe nobody reads: the engine never blocks on it
        proc = subprocess.Popen(
            [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish,
             "--max-queued-samples", str(MAX_QUEUED_SAMPLES)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    collector = Collector(publish)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sockets: list[zmq.Socket[bytes]] = []
    try:
        canary = _offline_canary(hapt_dir)  # while the engine loads its model
        collector.start()

        def first_stats() -> StatsEvent | None:
            return next((e for e in collector.snapshot() if isinstance(e, StatsEvent)), None)

        deadline = time.monotonic() + WAIT_S
        while (stats := first_stats()) is None:
            assert proc.poll() is None, f"the engine exited: {log_path.read_text(errors='replace')}"
            assert collector.failure is None, repr(collector.failure)
            assert time.monotonic() < deadline, "the engine did not start"
            time.sleep(0.05)
        for _ in range(3):
            sock = ctx.socket(zmq.PUSH)
            sockets.append(sock)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, int(WAIT_S * 1000))  # a stuck engine fails, never hangs
            sock.connect(ingest)
        fuzz, big, canary_push = sockets
        yield Harness(proc, log_path, collector, str(stats.fields["engine"]), canary, fuzz, big, canary_push)
    finally:
        collector.stop.set()
        if collector.is_alive():
            collector.join(timeout=10)
        for sock in sockets:
            sock.close(linger=0)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the tests -----------------------------------------------------------------------------------


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # no shrinking: the engine keeps its state between examples
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)
@given(batch=batches())
def test_fuzz_ingest(harness: Harness, batch: list[Message]) -> None:
    harness.alive()
    for i, m in enumerate(batch, 1):
        harness.send(m)
        if i % CANARY_EVERY == 0:
            harness.send_canary(1)
    harness.alive()


def test_engine_survived_and_accounted(harness: Harness) -> None:
    h, canary = harness, harness.canary
    assert set(ERROR_CODES) >= DECODE_CODES | REJECTING_CODES
    checked = len(h.expected) + h.valid_chunks  # generated messages the engine decodes (not oversize)
    assert checked >= MIN_MESSAGES, f"only {checked} generated messages were sent"
    assert h.skipped <= h.messages // 100
    assert h.oversize > 0 and len(h.expected) > 0 and h.valid_chunks > 0
    assert {code for code, _ in h.expected} == DECODE_CODES  # every kind of rejection was tried
    assert h.timed > EXAMPLES // 2
    # Shedding is impossible by construction (see SMALL and TIMED_PER_BATCH): the queue could hold
    # everything sent at once.
    timed_cost = SMALL * 0.1 * 500 + 64 * SMALL
    assert ((BATCH * SMALL + MAX_SAMPLES_PER_CHUNK + TIMED_PER_BATCH * timed_cost) * EXAMPLES
            + len(canary.samples) <= LIMITS.max_queued_samples)
    assert h.valid_cost + len(canary.samples) <= LIMITS.max_queued_samples
    h.send_canary(len(canary.samples))  # what the interleaving left
    assert canary.sent == len(canary.samples)
    last_end = canary.seq_ends[-1]

    def caught_up() -> bool:
        events = h.collector.snapshot()
        decode_errors = sum(isinstance(e, ErrorEvent) and e.code in DECODE_CODES for e in events)
        canary_done = any(isinstance(e, Prediction) and e.stream == canary.stream and e.seq_end == last_end
                          for e in events)
        return canary_done and decode_errors >= len(h.expected)

    _wait("the canary's last window and every $error", caught_up, h)
    start = len(h.collector.snapshot())

    # Quiescence: two $stats in a row with an empty queue and the same counters.
    def quiet_at() -> int | None:
        events = h.collector.snapshot()
        stats = [(i, e.fields) for i, e in enumerate(events) if i >= start and isinstance(e, StatsEvent)]
        keys = ("chunks", "rejected", "windows", "shed", "internal_errors", "queued_samples")
        for (_, a), (i, b) in itertools.pairwise(stats):
            if b["queued_samples"] == 0 and all(a[k] == b[k] for k in keys):
                return i
        return None

    _wait("two identical $stats after the fuzzing", lambda: quiet_at() is not None, h)
    h.alive()
    cut = quiet_at()
    assert cut is not None
    events = h.collector.snapshot()
    stats = events[cut]
    assert isinstance(stats, StatsEvent)
    before = events[:cut]
    errors = [e for e in before if isinstance(e, ErrorEvent)]
    predictions = [e for e in before if isinstance(e, Prediction)]

    # The same engine run all along, whose output always decoded.
    assert stats.fields["engine"] == h.engine_id
    assert {p.engine for p in predictions} == {h.engine_id}
    assert h.collector.invalid == 0

    # Every timed chunk: at most two $errors, on its own stream, of the engine's codes.
    timed_errors = [e for e in errors if e.stream in TIMED_IDS]
    assert {e.code for e in timed_errors} <= {"seq_gap", "seq_replay", "times"}
    assert len(timed_errors) <= 2 * h.timed
    timed_rejected = sum(e.code == "times" for e in timed_errors)

    # Every locally rejected message: exactly one $error with its code and stream, in send order.
    received = [(e.code, e.stream) for e in errors if e.code in DECODE_CODES and e.stream not in TIMED_IDS]
    assert Counter(code for code, _ in received) == Counter(code for code, _ in h.expected)
    for i, (got, want) in enumerate(zip(received, h.expected, strict=True)):
        assert got == want, f"generated rejection #{i}: engine said {got}, decode_chunk {want}"

    # Nothing else went wrong, and the counters account for every message and window.
    codes = Counter(e.code for e in errors)
    assert not {code for code in codes if code not in DECODE_CODES | REJECTING_CODES | {"seq_gap"}}, codes
    assert codes["too_many_streams"] == codes["not_owner"] == 0
    assert not [e for e in errors if e.stream == canary.stream]
    fields = stats.fields
    assert fields["shed"] == 0 and fields["internal_errors"] == 0 and fields["queued_samples"] == 0
    assert fields["rejected"] == len(received) + sum(codes[c] for c in REJECTING_CODES) + timed_rejected
    assert fields["chunks"] == h.valid_chunks + h.canary_chunks - codes["seq_replay"] - timed_rejected
    assert fields["windows"] == len(predictions)

    # The canary: a clean run's windows, each exactly once, with the offline probabilities and labels.
    mine = [p for p in predictions if p.stream == canary.stream]
    assert [p.seq_end for p in mine] == canary.seq_ends
    assert [p.label for p in mine] == [canary.labels[int(i)] for i in canary.probs.argmax(axis=1)]
    np.testing.assert_allclose(np.array([p.probs for p in mine]), canary.probs, atol=1e-4)
    assert [p.smoothed for p in mine] == canary.smoothed
    np.testing.assert_allclose(np.array([p.smoothed_probs for p in mine]), canary.smoothed_probs, atol=1e-3)

    # And it still stops cleanly.
    h.proc.send_signal(signal.SIGTERM)
    assert h.proc.wait(timeout=60) == 0, h.log()
    print(f"\nfuzz: {h.messages} generated messages ({len(h.expected)} rejected by decode_chunk, "
          f"{h.valid_chunks} valid of which {h.timed} timed ({timed_rejected} rejected by the engine), "
          f"{h.oversize} oversize, {h.skipped} skipped), "
          f"{h.canary_chunks} canary chunks, {len(predictions)} windows, codes {dict(codes)}")
