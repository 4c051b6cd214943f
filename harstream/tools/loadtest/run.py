"""One load test put together: an engine child, then each level's generator and subscriber against it.

:func:`run_level` runs one stream count (spawns the generator and the
subscriber, streams for the warm-up and the measured span while reading the
engine's CPU and RSS, then lets the predictions drain); :func:`run_load`
starts one engine and runs every level against it. The module docstring of
:mod:`harstream.tools.loadtest` says what is measured and how.
"""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harstream import SAMPLE_RATE_HZ
from harstream.data.splits import TEST_SUBJECTS
from harstream.procstat import CpuMeter, tree_rss_bytes
from harstream.tools.loadtest.engine_child import EngineProcess
from harstream.tools.loadtest.generator import CHUNK, SEND_TICK_S, generate, seq_offsets
from harstream.tools.loadtest.measure import LevelResult, client_usage, engine_usage, measure
from harstream.tools.loadtest.subscriber import QUIET_S, subscribe


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
    """Subjects whose recordings are streamed (default: the test subjects, whom the model never saw)."""
    serve_args: tuple[str, ...] = ()
    """Extra ``harstream serve`` arguments (none: its defaults)."""
    checkout: Path | None = None
    """Run ``serve`` from this checkout of another version (None: the installed code)."""
    startup_timeout_s: float = 300.0
    """Longest wait for the engine's first ``$stats`` (model loading and warm-up)."""
    drain_timeout_s: float = 30.0
    """Longest wait for predictions after the generator stopped."""
    aligned: bool = False
    """Every stream starts at ``seq`` 0 (windows complete in bursts) instead of a random
    ``seq`` in [0, 64) (:func:`~harstream.tools.loadtest.generator.seq_offsets`)."""
    seed: int = 0
    """Each stream's start offset in its recording and first ``seq``."""
    send_tick_s: float = SEND_TICK_S
    """Shortest sleep of the generator between sends (0: wake for every chunk's own moment)."""


class LoadTarget(Protocol):
    """What a level streams into: a ``serve`` child (:class:`EngineProcess`), or a router in front of
    engines (``bench --cluster``), whose ``process`` and ``log_lines`` are those of the one that exited."""

    ingest: str
    publish: str

    @property
    def pid(self) -> int:
        """The process whose CPU and RSS (with its children's) are the level's ``engine`` figures."""

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The child whose exit code an error names."""

    def alive(self) -> bool:
        """Every process of the target is still running."""

    def log_lines(self) -> list[str]:
        """Its stderr so far, non-empty lines."""


def _wait(conn: Connection, process: Any, timeout_s: float, what: str,
          engine: LoadTarget | None = None) -> Any:
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


@dataclass
class _Clients:
    """One level's generator and subscriber processes, their pipes, stop events and record files."""

    generator: BaseProcess
    subscriber: BaseProcess
    gen_conn: Connection
    sub_conn: Connection
    stop_gen: EventType
    stop_sub: EventType
    sent_path: Path
    received_path: Path

    def stop(self) -> None:
        """Tell both to stop; join them, terminating one that does not exit."""
        self.stop_gen.set()
        self.stop_sub.set()
        for process in (self.generator, self.subscriber):
            if process.pid is not None:
                process.join(timeout=15)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=5)


@dataclass
class _Observed:
    """What the parent saw while a level streamed (the rest is in the clients' record files)."""

    meter: CpuMeter
    t_start: float
    t_measure: float
    t_end: float
    rss: list[int]
    rss_end: int | None
    rounds: int
    stats: list[dict[str, Any]]
    errors: dict[str, int]
    counts: dict[str, int]


def _spawn(engine: LoadTarget, offsets: list[int], config: LoadConfig) -> _Clients:
    """The generator and the subscriber of one level, created (not started)."""
    spawn = mp.get_context("spawn")
    folder = Path(tempfile.mkdtemp(prefix="harstream-level-"))
    sent_path, received_path = folder / "sent.npy", folder / "received.npz"
    stop_gen, stop_sub = spawn.Event(), spawn.Event()
    sub_parent, sub_child = spawn.Pipe()
    gen_parent, gen_child = spawn.Pipe()
    subscriber = spawn.Process(target=subscribe, name="harstream-load-subscriber", daemon=True, args=(
        engine.publish, str(received_path), sub_child, stop_sub, QUIET_S, config.drain_timeout_s))
    generator = spawn.Process(target=generate, name="harstream-load-generator", daemon=True, args=(
        engine.ingest, str(config.data_dir), config.subjects, offsets, config.warmup_s + config.duration_s,
        config.chunk, config.seed, str(sent_path), gen_child, stop_gen, config.send_tick_s))
    return _Clients(generator, subscriber, gen_parent, sub_parent, stop_gen, stop_sub, sent_path, received_path)


def _sample_rss(engine: LoadTarget, meter: CpuMeter, t_measure: float, t_end: float) -> list[int]:
    """Wait until ``t_end``, starting ``meter`` at ``t_measure`` and reading the engine's RSS from then on."""
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
    return rss


def _stream(engine: LoadTarget, clients: _Clients, streams: int, config: LoadConfig,
            say: Callable[[str], None], also: Mapping[str, int]) -> _Observed:
    """Start the generator once the subscriber is live, stream the level, let the predictions drain."""
    _wait(clients.sub_conn, clients.subscriber, config.startup_timeout_s, "subscriber", engine)
    clients.generator.start()
    _, recordings = _wait(clients.gen_conn, clients.generator, 120.0, "load generator", engine)
    say(f"{streams} streams from {recordings} recordings: {config.warmup_s:g} s warm-up, "
        f"{config.duration_s:g} s measured")
    assert clients.generator.pid is not None and clients.subscriber.pid is not None
    meter = CpuMeter({"engine": engine.pid, "generator": clients.generator.pid,
                      "subscriber": clients.subscriber.pid, **also}, trees=("engine", *also))
    t_start = time.monotonic() + 0.5
    clients.gen_conn.send(t_start)
    t_measure, t_end = t_start + config.warmup_s, t_start + (config.warmup_s + config.duration_s)
    rss = _sample_rss(engine, meter, t_measure, t_end)
    meter.stop()
    rss_end = tree_rss_bytes(engine.pid)
    _, rounds = _wait(clients.gen_conn, clients.generator, 60.0, "load generator")
    clients.stop_sub.set()
    _, stats, errors, counts = _wait(clients.sub_conn, clients.subscriber, config.drain_timeout_s + 30.0,
                                     "subscriber")
    return _Observed(meter, t_start, t_measure, t_end, rss, rss_end, int(rounds), stats, errors, counts)


def run_level(engine: LoadTarget, streams: int, config: LoadConfig,
              log: Callable[[str], None] | None = None, also: Mapping[str, int] | None = None) -> LevelResult:
    """Stream ``streams`` recordings through ``engine`` and measure what the subscriber sees.

    ``also`` names more processes (pids) whose CPU % with their children's over the measured
    span goes to ``engine["cpu_pct_of"]`` (the engines behind a router).
    """
    also = dict(also or {})
    say = log or (lambda _text: None)
    result = LevelResult(streams)
    offsets = seq_offsets(streams, config.aligned, config.seed)
    clients = _spawn(engine, offsets.tolist(), config)
    clients.subscriber.start()
    try:
        seen = _stream(engine, clients, streams, config, say, also)
    except RuntimeError as exc:
        result.problem = str(exc)
        return result
    finally:
        clients.stop()
    sent = np.load(clients.sent_path)
    received = np.load(clients.received_path)
    measure(result, config.chunk, offsets, sent, received, seen.t_measure, seen.t_end, seen.stats, seen.errors)
    result.engine.update(engine_usage(seen.meter, seen.rss, seen.rss_end))
    if also:
        result.engine["cpu_pct_of"] = {name: seen.meter.percent(name) for name in also}
    result.clients = {
        **client_usage(seen.meter, sent, received["delay"], config.chunk, seen.t_start, seen.t_measure,
                       seen.t_end),
        "rounds": seen.rounds, **seen.counts,
        "chunks_measured": int(((sent >= seen.t_measure) & (sent <= seen.t_end)).sum()),
    }
    return result


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
    engine = EngineProcess(config.serve_args, config.checkout)
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
