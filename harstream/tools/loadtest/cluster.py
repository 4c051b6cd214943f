"""The load test through a router (``bench --cluster``): K ``serve --join`` engines behind ``harstream router``.

For each engine count K (and, as the reference, one engine bound directly
with no router), in interleaved rounds: start ``harstream router`` and K
``harstream serve --join`` children (slots 0..K-1) on free loopback ports,
wait until the router's ``$stats`` lists every engine with its own report,
read the router's and the engines' CPU while idle, then run one load level
(:func:`~harstream.tools.loadtest.run.run_level`: the same generator,
subscriber and measurement as ``bench --streams``) into the router's public
ingest, with the subscriber on its publish endpoint, and the CPU of the
router and of each engine read over the measured span. Every process is
stopped after its level, whatever happened (Ctrl-C included); the children
also get SIGTERM if this process dies (``PR_SET_PDEATHSIG``).

>>> plan([1, 2], [100], rounds=2, direct=True)
[(0, 100, 0), (0, 100, 1), (0, 100, 2), (1, 100, 0), (1, 100, 1), (1, 100, 2)]
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harstream import SAMPLE_RATE_HZ
from harstream.loopback import free_endpoint
from harstream.procstat import CpuMeter, tree_rss_bytes
from harstream.tools.loadtest.engine_child import EngineProcess
from harstream.tools.loadtest.run import LoadConfig, LoadTarget, run_level

DIRECT = 0
"""The engine count that stands for one engine bound directly (``serve``, no router): the reference."""

Log = Callable[[str], None]


@dataclass(frozen=True)
class ClusterLoad:
    """What ``bench --cluster`` runs (the one source of its defaults)."""

    load: LoadConfig
    """The level's streams, warm-up, measured span and engine (``serve_args``) options."""
    engines: tuple[int, ...] = (1, 2, 3)
    """Engine counts behind the router, each measured in every round."""
    streams: tuple[int, ...] = (1000,)
    """Streams of each level (the same for every engine count, so that the counts compare)."""
    rounds: int = 3
    """Rounds; each runs every configuration once, in turn, so that a shared machine's drift hits all."""
    direct: bool = True
    """Also measure one engine bound directly in each round (the router's added latency and CPU)."""
    idle_s: float = 3.0
    """Seconds the router's and engines' CPU is read while every engine has joined and nothing streams."""
    router_args: tuple[str, ...] = ()
    """Extra ``harstream router`` arguments."""


def plan(engines: Sequence[int], streams: Sequence[int], rounds: int, direct: bool) -> list[tuple[int, int, int]]:
    """``(round, streams, engines)`` in the order they run; engines ``0`` is the direct reference."""
    counts = ([DIRECT] if direct else []) + list(engines)
    return [(r, s, k) for r in range(rounds) for s in streams for k in counts]


class StatsWatch:
    """Every ``$stats`` a publish endpoint sends (only that topic), kept with its arrival, on a thread."""

    def __init__(self, publish: str) -> None:
        self.reports: list[tuple[float, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(publish,), name="harstream-stats", daemon=True)
        self._thread.start()

    def _run(self, publish: str) -> None:
        from harstream.protocol import StatsEvent
        from harstream.serve.client import Subscriber

        with Subscriber(publish, streams=["$stats"], engine_topics=False) as sub:
            while not self._stop.is_set():
                event = sub.receive(timeout_s=0.2)
                if isinstance(event, StatsEvent):
                    self.reports.append((time.monotonic(), event.fields))

    def latest(self) -> dict[str, Any] | None:
        """The last report, or None."""
        return self.reports[-1][1] if self.reports else None

    def wait(self, ready: Callable[[dict[str, Any]], bool], target: LoadTarget, timeout_s: float,
             what: str) -> dict[str, Any]:
        """The first report after now for which ``ready`` holds; RuntimeError when ``target`` dies or
        ``timeout_s`` passes first."""
        seen, end = len(self.reports), time.monotonic() + timeout_s
        while True:
            for _, fields in self.reports[seen:]:
                if ready(fields):
                    return fields
            seen = len(self.reports)
            if not target.alive():
                tail = " | ".join(target.log_lines()[-3:])
                raise RuntimeError(f"{what}: a process exited with code {target.process.returncode}: {tail}")
            if time.monotonic() > end:
                raise RuntimeError(f"{what}: not within {timeout_s:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the thread (its socket closes)."""
        self._stop.set()
        self._thread.join(timeout=5)


class RouterCluster:
    """``harstream router`` and ``engines`` ``serve --join`` children on free loopback ports.

    A :class:`~harstream.tools.loadtest.run.LoadTarget`: producers and the
    subscriber use the router's endpoints; its ``pid`` is the router's, so a
    level's ``engine`` CPU and RSS are the router's, and the engines' are
    read by name (:meth:`engine_pids`).
    """

    def __init__(self, engines: int, serve_args: Sequence[str] = (), router_args: Sequence[str] = ()) -> None:
        self.engines_endpoint, self.results = free_endpoint(), free_endpoint()
        self.router = EngineProcess(("--engines", self.engines_endpoint, "--results", self.results, *router_args),
                                    verb="router")
        self.ingest, self.publish = self.router.ingest, self.router.publish
        self.engines: list[EngineProcess] = []
        try:
            for slot in range(engines):
                self.engines.append(EngineProcess(("--join", self.engines_endpoint, "--slot", str(slot),
                                                   *serve_args)))
        except BaseException:
            self.stop()
            raise

    def _children(self) -> list[EngineProcess]:
        return [*self.engines, self.router]

    def _first_dead(self) -> EngineProcess | None:
        return next((child for child in self._children() if not child.alive()), None)

    @property
    def pid(self) -> int:
        """The router's process id."""
        return self.router.pid

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The first child that exited, else the router."""
        return (self._first_dead() or self.router).process

    def alive(self) -> bool:
        """The router and every engine are running."""
        return self._first_dead() is None

    def log_lines(self) -> list[str]:
        """The stderr of the first child that exited (else the router's), its command first."""
        child = self._first_dead() or self.router
        return [f"{child.command[3]} (pid {child.pid}, log {child.log_path})", *child.log_lines()]

    def engine_pids(self) -> dict[str, int]:
        """``engine<slot>``: each engine's process id."""
        return {f"engine{slot}": engine.pid for slot, engine in enumerate(self.engines)}

    def stop(self) -> list[int | None]:
        """SIGTERM to every child at once (engines flush and say BYE), then wait for each; their exit codes,
        engines by slot, the router last."""
        for child in self._children():
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        return [child.stop(signal_first=False) for child in self._children()]


def all_joined(engines: int) -> Callable[[dict[str, Any]], bool]:
    """A ``$stats`` test: the router lists slots 0..engines-1, each with its engine's own report.

    >>> all_joined(1)({"engines": [{"slot": 0, "engine": "e1"}]}), all_joined(2)({"engines": []})
    (True, False)
    """
    def ready(fields: dict[str, Any]) -> bool:
        rows = fields.get("engines")
        if not isinstance(rows, list):
            return False
        return ({row.get("slot") for row in rows} == set(range(engines))
                and all(row.get("engine") for row in rows))

    return ready


@dataclass
class Run:
    """One configuration in one round (``as_dict`` is its JSON)."""

    round: int
    streams: int
    engines: int
    """0: one engine bound directly (the reference)."""
    startup_s: float | None = None
    """From starting the processes to every engine serving (joined, for the router)."""
    idle_cpu_pct: dict[str, float | None] = field(default_factory=dict)
    level: dict[str, Any] = field(default_factory=dict)
    """The load level's JSON (:class:`~harstream.tools.loadtest.measure.LevelResult`); its ``engine``
    CPU and RSS are the router's when there is one, ``engine.cpu_pct_of`` each engine's."""
    router: dict[str, Any] = field(default_factory=dict)
    """The router's own counters and per-engine rows from its last ``$stats``, and the median of its
    ``route_us_per_chunk`` over the reports at full rate."""
    rss_mb: dict[str, float | None] = field(default_factory=dict)
    exit_codes: list[int | None] = field(default_factory=list)
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"round": self.round, "streams": self.streams, "engines": self.engines,
                "mode": "direct" if self.engines == DIRECT else "router", "startup_s": self.startup_s,
                "idle_cpu_pct": self.idle_cpu_pct, "level": self.level, "router": self.router,
                "rss_mb": self.rss_mb, "exit_codes": self.exit_codes, "problem": self.problem}


def _idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float | None]:
    """CPU % of each process (with its children) and of the machine over ``seconds`` of no load."""
    meter = CpuMeter(pids, trees=tuple(pids))
    meter.start()
    time.sleep(seconds)
    meter.stop()
    return {name: meter.percent(name) for name in ("machine", *pids)}


def _router_view(watch: StatsWatch, chunks_per_s: float) -> dict[str, Any]:
    """The router's counters and engine rows from its last ``$stats``, with the median of the hot path's
    ``route_us_per_chunk`` over the reports at half the offered chunk rate or more."""
    import statistics

    routers = [r["router"] for _, r in watch.reports if isinstance(r.get("router"), dict)]
    costs = [r["route_us_per_chunk"] for r in routers if isinstance(r.get("route_us_per_chunk"), int | float)
             and (r.get("chunks_per_s") or 0) >= chunks_per_s / 2]
    last, router = watch.latest() or {}, routers[-1] if routers else {}
    keys = ("chunks_in", "chunks_routed", "moved", "no_engine", "overloaded", "results", "strangers",
            "live_engines", "joins", "losses")
    rows = [{k: row.get(k) for k in ("slot", "routed_streams", "chunks_routed", "windows")}
            for row in last.get("engines") or [] if isinstance(row, dict)]
    return {**{k: router.get(k) for k in keys}, "engines": rows,
            "route_us_per_chunk_median": round(statistics.median(costs), 3) if costs else None,
            "route_us_per_chunk_reports": len(costs)}


def _level(target: LoadTarget, watch: StatsWatch, run: Run, load: LoadConfig, idle_s: float,
           also: dict[str, int], say: Log) -> None:
    """With ``target`` serving: idle CPU, then the level, then what the router counted."""
    run.idle_cpu_pct = _idle_cpu({"router" if also else "engine": target.pid, **also}, idle_s)
    level = run_level(target, run.streams, load, say, also=also)
    run.level = level.as_dict()
    run.problem = level.problem
    pids = {"router" if also else "engine": target.pid, **also}
    run.rss_mb = {name: round(rss / 2**20, 1) if (rss := tree_rss_bytes(pid)) else None
                  for name, pid in pids.items()}
    if also:
        time.sleep(1.2)  # one more $stats: the router's counters after the drain
        run.router = _router_view(watch, run.streams * SAMPLE_RATE_HZ / load.chunk)


def run_one(round_: int, streams: int, engines: int, config: ClusterLoad, say: Log) -> Run:
    """One configuration: start its processes, wait until they serve, measure, stop them."""
    run = Run(round_, streams, engines)
    load = config.load
    t0 = time.monotonic()
    target: EngineProcess | RouterCluster = (
        EngineProcess(load.serve_args) if engines == DIRECT
        else RouterCluster(engines, load.serve_args, config.router_args))
    watch: StatsWatch | None = None
    try:
        watch = StatsWatch(target.publish)
        what = "the engine serving" if engines == DIRECT else f"{engines} engines joined"
        ready = (lambda _fields: True) if engines == DIRECT else all_joined(engines)
        watch.wait(ready, target, load.startup_timeout_s, what)
        run.startup_s = round(time.monotonic() - t0, 1)
        say(f"{_name(engines)}: serving after {run.startup_s:g} s; {config.idle_s:g} s idle, then the level")
        also = target.engine_pids() if isinstance(target, RouterCluster) else {}
        _level(target, watch, run, load, config.idle_s, also, say)
    except RuntimeError as exc:
        run.problem = str(exc)
    finally:
        if watch is not None:
            watch.stop()
        run.exit_codes = target.stop() if isinstance(target, RouterCluster) else [target.stop()]
    return run


def _name(engines: int) -> str:
    return "direct (1 engine, no router)" if engines == DIRECT else f"router + {engines} engine(s)"


def _say_result(run: Run, say: Log) -> None:
    if run.problem:
        say(f"{_name(run.engines)}, {run.streams} streams: {run.problem}")
        return
    level = run.level
    latency, windows = level["latency_ms"], level["windows"]
    cpu_of = level["engine"].get("cpu_pct_of") or {}
    engines_cpu = round(sum(v or 0.0 for v in cpu_of.values()), 1) if cpu_of else level["engine"]["cpu_pct"]
    router = f", router CPU {level['engine']['cpu_pct']} %" if run.engines != DIRECT else ""
    say(f"{_name(run.engines)}, {run.streams} streams: {level['windows_per_s']} windows/s, latency p50 "
        f"{latency['p50']} p99 {latency['p99']} ms, lost {windows['lost']}, duplicates {windows['duplicates']}, "
        f"engines CPU {engines_cpu} %{router}")


def run_cluster_load(config: ClusterLoad, log: Log | None = None) -> list[dict[str, Any]]:
    """Every configuration of every round, in turn; each run's JSON (:class:`Run`)."""
    say = log or (lambda _text: None)
    steps = plan(config.engines, config.streams, config.rounds, config.direct)
    runs: list[dict[str, Any]] = []
    for i, (round_, streams, engines) in enumerate(steps, 1):
        say(f"[{i}/{len(steps)}] round {round_ + 1}/{config.rounds}: {_name(engines)}, {streams} streams")
        run = run_one(round_, streams, engines, config, say)
        _say_result(run, say)
        runs.append(run.as_dict())
    return runs
