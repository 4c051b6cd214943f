"""End-to-end load test of ``harstream serve``: N real-time HAPT streams over loopback.

One concept: what a subscriber sees when N devices stream at once. Three
processes besides this one, so that none of them steals time from the
measurement inside another's loop:

* the **engine**: ``python -m harstream serve`` with its default options,
  on free loopback ports (:class:`EngineProcess`);
* a **load generator** (:func:`_generate`, a ``spawn``-ed process): N
  concurrent streams, each a real HAPT recording of a test subject looped
  with its ``seq`` continuing (so no stream ever restarts and every window
  is expected), at 50 Hz in 25-sample chunks, real time; stream *i* sends at
  ``i / N`` of a chunk period (starts staggered over one period, as real
  devices are not phase-locked) and starts at a random ``seq`` in [0, 64), so
  that the streams' windows complete at spread-out moments as independent
  devices' do (``aligned``: all at 0, windows in bursts; :func:`seq_offsets`).
  It records the send time of every chunk (monotonic clock, the same clock in
  every process on Linux);
* a **subscriber** (:func:`_subscribe`, also ``spawn``-ed): a SUB socket with
  no receive high-water mark that stamps each prediction's arrival and reads
  only ``seq_end`` out of its JSON (a byte search; a full ``json.loads``
  on every 64th, for the engine's ``t_emit``), plus every ``$stats`` and
  ``$error``.

Latency of a window = its prediction's arrival at the subscriber minus the
send time of the chunk that completed it (the chunk holding sample
``seq_end``). Windows lost = windows expected from the samples sent minus
distinct windows received. The engine's CPU (``/proc/PID/stat`` utime +
stime) and RSS, with those of its model process, are read over the measurement, and so are the generator's
and the subscriber's CPU, so a saturated client shows in the report.

>>> expected_windows(127), expected_windows(128), expected_windows(1000)
(0, 1, 14)
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harstream import HOP, SAMPLE_RATE_HZ, WINDOW
from harstream.signal.windows import window_ends

CHUNK = 25
"""Samples per message (0.5 s at 50 Hz), as a phone would batch them."""
PREFIX = "lt"
"""Stream ids are ``lt00000``, ``lt00001``, ...: the subscriber reads the index from the topic."""
TEST_SUBJECTS: tuple[int, ...] = (2, 4, 9, 10, 12, 13, 18, 20, 24)
"""UCI HAR's test subjects: their recordings are the streams (the model never saw them)."""
SEND_TICK_S = 0.001
"""The generator sleeps at least this long between sends and then sends every chunk that came due:
at 4,000 streams one wake-up per chunk (every 125 us) cost it 40 % of a core, 1 ms ticks 15 %."""
QUIET_S = 2.0
"""After the generator stops, the subscriber waits until no prediction came for this long."""


def expected_windows(samples: int, first: int = 0) -> int:
    """Windows of a stream that sent ``samples`` contiguous samples from ``seq`` ``first``.

    The engine's window grid is the stream's index grid (windows end at 127,
    191, ...), whatever the first ``seq``.

    >>> expected_windows(200, first=10), expected_windows(200, first=64)
    (1, 2)
    """
    return len(window_ends(first, first + samples))


def seq_offsets(streams: int, aligned: bool = False, seed: int = 0) -> npt.NDArray[np.int64]:
    """Each stream's first ``seq``: random in [0, 64) (one hop), or all 0 with ``aligned``.

    Independent devices cut their windows at unrelated moments; streams that
    all start at ``seq`` 0 within one chunk period complete their windows in
    the same chunk round, a burst every 1.28 s that the engine must absorb.

    >>> seq_offsets(3, aligned=True).tolist()
    [0, 0, 0]
    """
    if aligned:
        return np.zeros(streams, dtype=np.int64)
    return np.random.default_rng(seed + 1).integers(0, HOP, streams).astype(np.int64)


@dataclass(frozen=True)
class LoadConfig:
    """What one load test runs."""

    data_dir: Path
    """HAPT dataset folder (holding ``RawData/``)."""
    duration_s: float = 30.0
    """Seconds measured, after the warm-up."""
    warmup_s: float = 10.0
    """Seconds of streaming before the measurement starts."""
    chunk: int = CHUNK
    """Samples per message."""
    subjects: tuple[int, ...] = TEST_SUBJECTS
    """Subjects whose recordings are streamed."""
    serve_args: tuple[str, ...] = ()
    """Extra ``harstream serve`` arguments (none: its defaults)."""
    startup_timeout_s: float = 300.0
    """Longest wait for the engine's first ``$stats`` (model loading and warm-up)."""
    drain_timeout_s: float = 30.0
    """Longest wait for predictions after the generator stopped."""
    aligned: bool = False
    """Every stream starts at ``seq`` 0 (windows complete in bursts) instead of a random
    ``seq`` in [0, 64) (:func:`seq_offsets`)."""
    seed: int = 0
    """Each stream's start offset in its recording and first ``seq``."""
    send_tick_s: float = SEND_TICK_S
    """Shortest sleep of the generator between sends (0: wake for every chunk's own moment)."""


# --- /proc readings ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``serve`` and its model process), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds of ``pid`` and its descendants; None when ``pid`` is gone."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in process_tree(pid)[1:])


def tree_rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` and its descendants; None when ``pid`` is gone."""
    own = rss_bytes(pid)
    if own is None:
        return None
    return own + sum(rss_bytes(child) or 0 for child in process_tree(pid)[1:])


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (``VmRSS``); None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine was busy since boot, all cores (``/proc/stat``)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


class _CpuMeter:
    """CPU % of some processes, and of the whole machine, between :meth:`start` and :meth:`stop`.

    100 % is one core; ``machine`` counts every process (other people's
    work on a shared machine shows as the difference).
    """

    def __init__(self, pids: dict[str, int], trees: tuple[str, ...] = ("engine",)) -> None:
        self.pids = pids
        self.trees = trees
        """Names whose CPU includes their child processes."""
        self.begin: dict[str, float | None] = {}
        self.end: dict[str, float | None] = {}
        self.t_begin = self.t_end = math.nan

    def _read(self) -> dict[str, float | None]:
        return {"machine": machine_cpu_seconds(),
                **{name: (tree_cpu_seconds if name in self.trees else cpu_seconds)(pid)
                   for name, pid in self.pids.items()}}

    def start(self) -> None:
        self.t_begin = time.monotonic()
        self.begin = self._read()

    def stop(self) -> None:
        self.t_end = time.monotonic()
        self.end = self._read()

    def percent(self, name: str) -> float | None:
        a, b = self.begin.get(name), self.end.get(name)
        span = self.t_end - self.t_begin
        if a is None or b is None or not span > 0:
            return None
        return round(100.0 * (b - a) / span, 1)


# --- the engine ----------------------------------------------------------------------------------


def free_endpoint() -> str:
    """A loopback endpoint whose port was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _die_with_parent() -> None:
    """In the engine child before exec (Linux): SIGTERM when this process dies, however it dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EngineProcess:
    """``harstream serve`` as a child process on free loopback ports; stderr goes to a log file."""

    def __init__(self, serve_args: Sequence[str] = ()) -> None:
        self.ingest, self.publish = free_endpoint(), free_endpoint()
        self.log_path = Path(tempfile.mkdtemp(prefix="harstream-load-")) / "serve.stderr"
        self.command = [sys.executable, "-m", "harstream", "serve", "--ingest", self.ingest,
                        "--publish", self.publish, *serve_args]
        with open(self.log_path, "wb") as err:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                env={**os.environ, "COLUMNS": "1000"},  # one log line per message
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        """The engine's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """The engine is still running."""
        return self.process.poll() is None

    def log_lines(self) -> list[str]:
        """The engine's stderr so far, non-empty lines."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def ready_line(self) -> str | None:
        """The engine's "ready" line (endpoints, model, runtime routes), once printed."""
        return next((line for line in self.log_lines() if " ready: " in line), None)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        return self.process.returncode


# --- the load generator (its own process) ------------------------------------------------------


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


def _generate(ingest: str, data_dir: str, subjects: tuple[int, ...], offsets: list[int], seconds: float,
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


# --- the subscriber (its own process) ----------------------------------------------------------


_STATS_KEYS = ("windows", "windows_per_s", "streams", "latency_ms", "rejected", "shed",
               "internal_errors", "queued_samples", "chunks", "engine", "gc_pauses")
_SEQ_END = b'"seq_end":'


def _subscribe(publish: str, received_path: str, conn: Connection, stop: EventType,
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


# --- one load level ------------------------------------------------------------------------------


@dataclass
class LevelResult:
    """What one load level measured (``as_dict`` is the JSON)."""

    streams: int
    windows_per_s: float | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    problem: str | None = None
    """Set when the level could not be measured (the engine died, a process hung, ...)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "streams": self.streams, "windows_per_s": self.windows_per_s, "latency_ms": self.latency_ms,
            "windows": self.windows, "engine": self.engine, "clients": self.clients,
            "errors": self.errors, "problem": self.problem,
        }


def _percentiles(values: npt.NDArray[np.float64]) -> dict[str, float | None]:
    if not len(values):
        return {"p50": None, "p99": None, "max": None, "count": 0}
    return {"p50": round(float(np.percentile(values, 50)), 2),
            "p99": round(float(np.percentile(values, 99)), 2),
            "max": round(float(values.max()), 2), "count": len(values)}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _wait(conn: Connection, process: Any, timeout_s: float, what: str,
          engine: EngineProcess | None = None) -> Any:
    end = time.monotonic() + timeout_s
    while not conn.poll(0.2):
        if not process.is_alive():
            raise RuntimeError(f"the {what} exited with code {process.exitcode}")
        if engine is not None and not engine.alive():
            tail = " | ".join(engine.log_lines()[-3:])
            raise RuntimeError(f"the engine exited with code {engine.process.returncode}: {tail}")
        if time.monotonic() > end:
            raise RuntimeError(f"the {what} did not answer within {timeout_s:g} s")
    return conn.recv()


def run_level(engine: EngineProcess, streams: int, config: LoadConfig,
              log: Callable[[str], None] | None = None) -> LevelResult:
    """Stream ``streams`` recordings through ``engine`` and measure what the subscriber sees."""
    say = log or (lambda _text: None)
    result = LevelResult(streams)
    spawn = mp.get_context("spawn")
    folder = Path(tempfile.mkdtemp(prefix="harstream-level-"))
    sent_path, received_path = folder / "sent.npy", folder / "received.npz"
    stop_gen, stop_sub = spawn.Event(), spawn.Event()
    sub_parent, sub_child = spawn.Pipe()
    gen_parent, gen_child = spawn.Pipe()
    subscriber = spawn.Process(target=_subscribe, name="harstream-load-subscriber", daemon=True, args=(
        engine.publish, str(received_path), sub_child, stop_sub, QUIET_S, config.drain_timeout_s))
    seconds = config.warmup_s + config.duration_s
    offsets = seq_offsets(streams, config.aligned, config.seed)
    generator = spawn.Process(target=_generate, name="harstream-load-generator", daemon=True, args=(
        engine.ingest, str(config.data_dir), config.subjects, offsets.tolist(), seconds, config.chunk,
        config.seed, str(sent_path), gen_child, stop_gen, config.send_tick_s))
    subscriber.start()
    try:
        _wait(sub_parent, subscriber, config.startup_timeout_s, "subscriber", engine)
        generator.start()
        _, recordings = _wait(gen_parent, generator, 120.0, "load generator", engine)
        say(f"{streams} streams from {recordings} recordings: {config.warmup_s:g} s warm-up, "
            f"{config.duration_s:g} s measured")
        assert generator.pid is not None and subscriber.pid is not None
        meter = _CpuMeter({"engine": engine.pid, "generator": generator.pid, "subscriber": subscriber.pid})
        t_start = time.monotonic() + 0.5
        gen_parent.send(t_start)
        t_measure, t_end = t_start + config.warmup_s, t_start + seconds
        rss: list[int] = []
        while time.monotonic() < t_end:
            now = time.monotonic()
            if not engine.alive():
                raise RuntimeError(f"the engine exited with code {engine.process.returncode} under load")
            if now >= t_measure and not meter.begin:
                meter.start()
            if meter.begin:
                value = tree_rss_bytes(engine.pid)
                if value is not None:
                    rss.append(value)
            time.sleep(min(1.0, max(0.01, (t_measure if not meter.begin else t_end) - now)))
        meter.stop()
        rss_end = tree_rss_bytes(engine.pid)
        _, rounds = _wait(gen_parent, generator, 60.0, "load generator")
        stop_sub.set()
        _, stats, errors, counts = _wait(sub_parent, subscriber, config.drain_timeout_s + 30.0, "subscriber")
    except RuntimeError as exc:
        result.problem = str(exc)
        return result
    finally:
        stop_gen.set()
        stop_sub.set()
        for process in (generator, subscriber):
            if process.pid is not None:
                process.join(timeout=15)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=5)
    sent = np.load(sent_path)
    received = np.load(received_path)
    _measure(result, config, offsets, sent, received, t_measure, t_end, stats, errors)
    result.engine.update({
        "cpu_pct": meter.percent("engine"),
        "rss_mb": round(rss_end / 2**20, 1) if rss_end else None,
        "rss_max_mb": round(max(rss) / 2**20, 1) if rss else None,
    })
    late = (sent - (t_start + np.arange(len(sent))[:, None] * (config.chunk / SAMPLE_RATE_HZ)
                    + np.arange(streams)[None, :] * (config.chunk / SAMPLE_RATE_HZ / streams))) * 1000
    late = late[(sent >= t_measure) & (sent <= t_end)]
    result.clients = {
        "generator_cpu_pct": meter.percent("generator"),
        "subscriber_cpu_pct": meter.percent("subscriber"),
        "machine_cpu_pct": meter.percent("machine"),
        "other_processes_cpu_pct": _others(meter),
        "send_lateness_ms": _percentiles(late),
        "publish_to_subscriber_ms": _percentiles(1000 * received["delay"]),
        "rounds": int(rounds), **counts,
    }
    return result


def _others(meter: _CpuMeter) -> float | None:
    """CPU % of everything on the machine but the engine, the generator and the subscriber."""
    parts = [meter.percent(name) for name in ("machine", "engine", "generator", "subscriber")]
    if any(p is None for p in parts):
        return None
    machine, *ours = (p for p in parts if p is not None)
    return round(max(0.0, machine - sum(ours)), 1)


def _measure(result: LevelResult, config: LoadConfig, offsets: npt.NDArray[np.int64],
             sent: npt.NDArray[np.float64],
             received: Any, t_measure: float, t_end: float,
             stats: list[dict[str, Any]], errors: dict[str, int]) -> None:
    """Fill ``result`` from the send times and the subscriber's record."""
    streams = result.streams
    chunks_sent = np.isfinite(sent).sum(axis=0) if len(sent) else np.zeros(streams, dtype=np.int64)
    expected = sum(expected_windows(int(c) * config.chunk, int(first))
                   for c, first in zip(chunks_sent, offsets, strict=True))
    stream, seq_end, t = received["stream"], received["seq_end"], received["t"]
    valid = (stream >= 0) & (stream < streams) & ((seq_end - (WINDOW - 1)) % HOP == 0)
    first = offsets[np.where(valid, stream, 0)]
    valid &= seq_end >= first + WINDOW - 1
    k = np.where(valid, (seq_end - first) // config.chunk, 0)  # the chunk holding sample seq_end
    valid &= k < chunks_sent[np.where(valid, stream, 0)]
    unique = len(np.unique(stream[valid].astype(np.int64) * 2**40 + seq_end[valid]))
    t_sent = np.full(len(t), np.nan)
    t_sent[valid] = sent[k[valid], stream[valid]]
    window = valid & (t_sent >= t_measure) & (t_sent <= t_end)
    latency = (t[window] - t_sent[window]) * 1000.0
    result.latency_ms = _percentiles(latency)
    arrived = (t >= t_measure) & (t <= t_end) & valid
    result.windows_per_s = round(float(arrived.sum()) / (t_end - t_measure), 1)
    measured = [s for s in stats if t_measure <= s["t"] <= t_end]
    classified = stats[-1]["windows"] - stats[0]["windows"] if len(stats) > 1 else None
    result.windows = {
        "expected": int(expected), "received": int(unique), "lost": int(expected - unique),
        "duplicates": int(valid.sum() - unique), "unexpected": int((~valid).sum()),
        "classified_by_engine": int(classified) if classified is not None else -1,
    }
    lat = [s["latency_ms"] or {} for s in measured]
    result.engine = {
        "stats_reports": len(measured),
        "stats_latency_p50_ms_median": _median([x["p50"] for x in lat if x.get("p50") is not None]),
        "stats_latency_p99_ms_median": _median([x["p99"] for x in lat if x.get("p99") is not None]),
        "stats_latency_p99_ms_worst": max((x["p99"] for x in lat if x.get("p99") is not None), default=None),
        "stats_windows_per_s_median": _median([s["windows_per_s"] for s in measured
                                               if s.get("windows_per_s") is not None]),
        "queued_samples_max": max((s.get("queued_samples") or 0 for s in measured), default=None),
        "shed": (stats[-1]["shed"] - stats[0]["shed"]) if len(stats) > 1 else None,
        "rejected": (stats[-1]["rejected"] - stats[0]["rejected"]) if len(stats) > 1 else None,
        "internal_errors": (stats[-1]["internal_errors"] - stats[0]["internal_errors"])
        if len(stats) > 1 else None,
        **_gc_summary(measured),
    }
    result.errors = errors


def _gc_summary(measured: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """The serving process's garbage-collector pauses over the measured ``$stats`` reports."""
    pauses = [s["gc_pauses"] for s in measured if isinstance(s.get("gc_pauses"), dict)]
    if not pauses:  # an engine from before gc_pauses
        return {"gc_collections": None, "gc_pause_max_ms": None, "gc_pause_total_ms": None}
    return {"gc_collections": sum(int(p.get("count", 0)) for p in pauses),
            "gc_pause_max_ms": max(float(p.get("max_ms", 0.0)) for p in pauses),
            "gc_pause_total_ms": round(sum(float(p.get("total_ms", 0.0)) for p in pauses), 3)}


def run_load(levels: Sequence[int], config: LoadConfig,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Start one engine, run every load level against it in turn, stop it; the JSON report.

    Levels share the engine (its model routes and warm-up are the same for
    all); each level's streams restart at ``seq`` 0, and the next level
    starts once the previous one's predictions stopped coming.
    """
    say = log or (lambda _text: None)
    if not (Path(config.data_dir) / "RawData").is_dir() and Path(config.data_dir).name != "RawData":
        from harstream.data.hapt import raw_dir

        raw_dir(config.data_dir)  # raises the DatasetError that says what to do
    engine = EngineProcess(config.serve_args)
    say(f"engine: {' '.join(engine.command[1:])} (pid {engine.pid}, log {engine.log_path})")
    results: list[LevelResult] = []
    try:
        for n in levels:
            if not engine.alive():
                results.append(LevelResult(n, problem="the engine is not running"))
                continue
            level = run_level(engine, n, config, say)
            results.append(level)
            if level.problem:
                say(f"{n} streams: {level.problem}")
            else:
                say(f"{n} streams: {level.windows_per_s} windows/s, latency p50 {level.latency_ms['p50']} "
                    f"p99 {level.latency_ms['p99']} max {level.latency_ms['max']} ms, lost "
                    f"{level.windows['lost']}, engine CPU {level.engine['cpu_pct']} %")
    finally:
        ready = engine.ready_line()
        code = engine.stop()
    return {
        "config": {"duration_s": config.duration_s, "warmup_s": config.warmup_s, "chunk": config.chunk,
                   "rate_hz": SAMPLE_RATE_HZ, "subjects": list(config.subjects),
                   "first_seq": "0 for every stream (aligned windows)" if config.aligned
                   else "random in [0, 64) per stream",
                   "send_tick_ms": config.send_tick_s * 1000,
                   "serve": " ".join(engine.command[1:])},
        "engine_ready": ready, "engine_exit_code": code,
        "levels": [r.as_dict() for r in results],
    }


__all__ = ["CHUNK", "EngineProcess", "LevelResult", "LoadConfig", "cpu_seconds", "expected_windows",
           "free_endpoint", "rss_bytes", "run_level", "run_load"]
