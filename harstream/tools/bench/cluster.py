"""``harstream bench --cluster``: the live path through a router with 1, 2, 3... engines, summed up and projected.

:func:`run_cluster_bench` runs the rounds
(:func:`harstream.tools.loadtest.cluster.run_cluster_load`: each engine count,
and one engine bound directly as the reference, in turn), then reduces them
to one row per configuration (:func:`summarize`: medians over the rounds, and
ratios to the direct engine of the same round) and to the figures that size a
cluster (:func:`projection`). :func:`print_cluster` renders the report.

CPU per chunk is a process's CPU seconds over the measured span divided by
the chunks sent in it (every chunk, all-in: reading, routing, forwarding the
predictions, heartbeats, ``$stats``):

>>> us_per_chunk(cpu_pct=25.0, chunks=20_000, seconds=10.0)
125.0
>>> projection([{"engines": 2, "streams": 900, "router_busy_us_per_chunk": 20.0}],
...            chunks_per_stream_s=2.0)["router_core_streams"]
25000
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harstream import SAMPLE_RATE_HZ

Log = Callable[[str], None]

EXAMPLE_STREAMS_PER_ENGINE = (1000, 3000, 6000)
"""Streams one engine machine serves (``bench --streams`` gives it), for the projection's examples."""


def us_per_chunk(cpu_pct: float | None, chunks: int | None, seconds: float) -> float | None:
    """Microseconds of CPU per chunk of a process that used ``cpu_pct`` of a core while ``chunks`` were
    sent over ``seconds``; None when a figure is missing."""
    if cpu_pct is None or not chunks or seconds <= 0:
        return None
    return round(cpu_pct / 100.0 * seconds / chunks * 1e6, 2)


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def _engines_cpu(level: dict[str, Any], direct: bool) -> float | None:
    """The engines' CPU % summed (the direct engine's own, with its model process)."""
    engine = level.get("engine") or {}
    if direct:
        return engine.get("cpu_pct")
    of = engine.get("cpu_pct_of") or {}
    values = list(of.values())
    return round(sum(values), 1) if values and None not in values else None


def _figures(run: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """One run's figures for the summary (None where it could not be measured)."""
    level = run["level"]
    direct = run["mode"] == "direct"
    chunks = (level.get("clients") or {}).get("chunks_measured")
    engines_cpu = _engines_cpu(level, direct)
    router_cpu = None if direct else (level.get("engine") or {}).get("cpu_pct")
    idle = run.get("idle_cpu_pct") or {}
    router_idle = idle.get("router")
    return {
        "windows_per_s": level.get("windows_per_s"),
        "p50": (level.get("latency_ms") or {}).get("p50"), "p99": (level.get("latency_ms") or {}).get("p99"),
        "engines_cpu_pct": engines_cpu,
        "engines_cpu_us_per_chunk": us_per_chunk(engines_cpu, chunks, duration_s),
        "router_cpu_pct": router_cpu,
        "router_idle_cpu_pct": router_idle,
        "router_cpu_us_per_chunk": us_per_chunk(router_cpu, chunks, duration_s),
        "router_busy_us_per_chunk": us_per_chunk(
            None if router_cpu is None or router_idle is None else max(router_cpu - router_idle, 0.0),
            chunks, duration_s),
        "router_route_us_per_chunk": (run.get("router") or {}).get("route_us_per_chunk_median"),
        "machine_cpu_pct": (level.get("clients") or {}).get("machine_cpu_pct"),
        "other_processes_cpu_pct": (level.get("clients") or {}).get("other_processes_cpu_pct"),
        "startup_s": run.get("startup_s"),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _vs_direct(refs: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> dict[str, float | None]:
    """Each figure against the direct engine's in the same round, then the median over the rounds."""
    def added(f: dict[str, Any], d: dict[str, Any] | None) -> float | None:
        return f["p50"] - d["p50"] if d and f["p50"] is not None and d["p50"] is not None else None

    return {
        "p50_added_ms": _median([added(f, d) for f, d in refs]),
        "p99_ratio": _median([_ratio(f["p99"], d["p99"]) if d else None for f, d in refs]),
        "engines_cpu_ratio": _median([_ratio(f["engines_cpu_pct"], d["engines_cpu_pct"]) if d else None
                                      for f, d in refs]),
    }


def _row(mine: list[dict[str, Any]], figs: list[dict[str, Any]],
         refs: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> dict[str, Any]:
    """The summary of one configuration's successful runs."""
    windows, errors = Counter[str](), Counter[str]()
    for r in mine:
        windows.update({k: v for k, v in r["level"]["windows"].items() if k != "classified_by_engine"})
        errors.update(r["level"].get("errors") or {})
    p99s = [f["p99"] for f in figs if f["p99"] is not None]
    last_rows = (mine[-1].get("router") or {}).get("engines", []) if mine else []
    return {
        **({key: _median([f[key] for f in figs]) for key in figs[0]} if figs else {}),
        "p99_range": [min(p99s), max(p99s)] if p99s else None,
        "windows": dict(windows), "errors": dict(errors),
        "routed_streams": [row.get("routed_streams") for row in last_rows],
        "vs_direct": _vs_direct(refs) if mine and mine[0]["mode"] == "router" else None,
    }


def summarize(runs: list[dict[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """One row per (streams, engines): medians over the rounds that ran, windows lost and duplicated
    summed, and each figure's ratio to the direct engine of the same round (then the median)."""
    ok = [r for r in runs if not r["problem"] and r["level"]]
    figures = {id(r): _figures(r, duration_s) for r in ok}
    direct = {(r["round"], r["streams"]): figures[id(r)] for r in ok if r["mode"] == "direct"}
    rows = []
    for streams, engines in sorted({(r["streams"], r["engines"]) for r in runs}):
        mine = [r for r in ok if (r["streams"], r["engines"]) == (streams, engines)]
        problems = [r["problem"] for r in runs
                    if (r["streams"], r["engines"]) == (streams, engines) and r["problem"]]
        refs = [(figures[id(r)], direct.get((r["round"], streams))) for r in mine]
        rows.append({"streams": streams, "engines": engines, "mode": "router" if engines else "direct",
                     "rounds": len(mine), "problems": problems,
                     **_row(mine, [figures[id(r)] for r in mine], refs)})
    return rows


def projection(summary: list[dict[str, Any]], chunks_per_stream_s: float) -> dict[str, Any]:
    """What sizes a cluster: the router's CPU per chunk beyond its idle cost at the highest stream count
    measured (the median over the engine counts; it falls as the rate rises, the router reading more chunks
    per wake-up), how many chunks and streams one router core carries at that cost, and engine machines per
    router core for a few engine sizes."""
    routed = [row for row in summary if row.get("engines")]
    top = max((row["streams"] for row in routed), default=None)
    busy = _median([row.get("router_busy_us_per_chunk") for row in routed if row["streams"] == top])
    by_streams: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in routed:
        by_streams.setdefault(str(row["streams"]), {})[str(row["engines"])] = {
            key: row.get(key) for key in ("router_cpu_us_per_chunk", "router_busy_us_per_chunk",
                                          "router_route_us_per_chunk", "router_cpu_pct")}
    out: dict[str, Any] = {
        "at_streams": top,
        "router_busy_us_per_chunk": busy,
        "router_idle_cpu_pct": _median([row.get("router_idle_cpu_pct") for row in routed]),
        "router_by_streams_and_engines": by_streams,
        "chunks_per_stream_s": chunks_per_stream_s,
        "engines_cpu_us_per_chunk_direct": _median([row.get("engines_cpu_us_per_chunk") for row in summary
                                                    if not row.get("engines") and row["streams"] == top]),
        "engines_cpu_us_per_chunk_joined": _median([row.get("engines_cpu_us_per_chunk") for row in routed
                                                    if row["streams"] == top]),
    }
    if busy:
        core_chunks = 1e6 / busy
        out["router_core_chunks_per_s"] = round(core_chunks)
        out["router_core_streams"] = round(core_chunks / chunks_per_stream_s)
        out["engines_per_router_core"] = {str(e): round(core_chunks / chunks_per_stream_s / e, 1)
                                          for e in EXAMPLE_STREAMS_PER_ENGINE}
    out["rule"] = ("N engine machines that each serve E streams (bench --streams on that machine) serve N*E "
                   "streams, N*E*chunks_per_stream_s chunks/s through the router, which needs that times "
                   "router_busy_us_per_chunk/1e6 cores plus its idle share: one router core carries "
                   "router_core_streams streams, i.e. router_core_streams/E engine machines")
    return out


def _machine() -> dict[str, Any]:
    import os
    import platform

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"nproc": os.cpu_count(), "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in load] if load else None}


def run_cluster_bench(engines: Sequence[int], data: Path | None = None, streams: Sequence[int] | None = None,
                      rounds: int | None = None, duration_s: float | None = None, warmup_s: float | None = None,
                      quick: bool = False, aligned: bool = False, serve_args: Sequence[str] = (),
                      send_tick_s: float | None = None, log: Log | None = None) -> dict[str, Any]:
    """Run ``bench --cluster`` (None: :class:`ClusterLoad`'s and ``bench --streams``' defaults; ``quick``:
    one round of 2 + 3 s); the JSON report."""
    from harstream.errors import DatasetError
    from harstream.tools.bench.data import find_data_dir
    from harstream.tools.loadtest.cluster import ClusterLoad, run_cluster_load
    from harstream.tools.loadtest.run import LoadConfig

    say = log or (lambda _text: None)
    data_dir = find_data_dir(data)
    if data_dir is None:
        raise DatasetError("--cluster needs the HAPT dataset: pass --data or set $HARSTREAM_DATA")
    defaults = LoadConfig(data_dir)
    load = LoadConfig(
        data_dir, duration_s=duration_s if duration_s is not None else (3.0 if quick else defaults.duration_s),
        warmup_s=warmup_s if warmup_s is not None else (2.0 if quick else defaults.warmup_s), aligned=aligned,
        serve_args=tuple(serve_args), send_tick_s=send_tick_s if send_tick_s is not None else defaults.send_tick_s)
    config = ClusterLoad(load, engines=tuple(engines), streams=tuple(streams or ClusterLoad(load).streams),
                         rounds=rounds if rounds is not None else (1 if quick else ClusterLoad(load).rounds))
    steps = config.rounds * len(config.streams) * (len(config.engines) + config.direct)
    counts, levels = ", ".join(map(str, config.engines)), ", ".join(map(str, config.streams))
    each = load.warmup_s + load.duration_s + config.idle_s + 20
    say(f"{steps} runs ({config.rounds} round(s) of: {'direct, ' if config.direct else ''}{counts} engine(s) "
        f"behind the router; {levels} streams); each about {each:g} s with the start")
    started = time.time()
    runs = run_cluster_load(config, say)
    summary = summarize(runs, load.duration_s)
    return {
        "machine": _machine(),
        "config": {"engines": list(config.engines), "streams": list(config.streams), "rounds": config.rounds,
                   "direct": config.direct, "duration_s": load.duration_s, "warmup_s": load.warmup_s,
                   "idle_s": config.idle_s, "chunk": load.chunk, "rate_hz": SAMPLE_RATE_HZ,
                   "aligned": load.aligned, "send_tick_ms": load.send_tick_s * 1000,
                   "serve_args": list(load.serve_args), "started": round(started, 1),
                   "wall_s": round(time.time() - started, 1)},
        "summary": summary,
        "projection": projection(summary, SAMPLE_RATE_HZ / load.chunk),
        "runs": runs,
    }


def _cell(value: Any, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _latency_table(report: dict[str, Any]) -> Table:
    config = report["config"]
    table = Table(title=f"{config['duration_s']:g} s measured after {config['warmup_s']:g} s, medians of "
                        f"{config['rounds']} round(s); latency: send of the completing chunk -> subscriber")
    for name in ("engines", "streams", "windows/s", "p50 ms", "p99 ms (range)", "p99/direct", "lost", "twice"):
        table.add_column(name, justify="left" if name == "engines" else "right")
    for row in report["summary"]:
        windows, vs, p99_range = row.get("windows") or {}, row.get("vs_direct") or {}, row.get("p99_range")
        table.add_row(
            "direct" if row["mode"] == "direct" else str(row["engines"]), f"{row['streams']:,}",
            _cell(row.get("windows_per_s")), _cell(row.get("p50"), "{:.1f}"),
            _cell(row.get("p99"), "{:.1f}") + (f" ({p99_range[0]:.0f}-{p99_range[1]:.0f})" if p99_range else ""),
            _cell(vs.get("p99_ratio"), "{:.2f}x") if vs else "-",
            f"{windows.get('lost', '-')}/{windows.get('expected', '-')}", str(windows.get("duplicates", "-")))
    return table


def _cpu_table(report: dict[str, Any]) -> Table:
    table = Table(title="CPU, % of one core and us per chunk sent (others: the rest of the machine)")
    for name in ("engines", "engines %", "us/chunk", "router %", "idle %", "us/chunk", "others %"):
        table.add_column(name, justify="left" if name == "engines" else "right")
    for row in report["summary"]:
        routed = row["mode"] == "router"
        table.add_row(
            "direct" if not routed else str(row["engines"]), _cell(row.get("engines_cpu_pct")),
            _cell(row.get("engines_cpu_us_per_chunk"), "{:,.0f}"),
            *((_cell(row.get("router_cpu_pct")), _cell(row.get("router_idle_cpu_pct")),
               _cell(row.get("router_cpu_us_per_chunk"))) if routed else ("-", "-", "-")),
            _cell(row.get("other_processes_cpu_pct"), "{:.0f}"))
    return table


def print_cluster(report: dict[str, Any], console: Console) -> None:
    """The report of :func:`run_cluster_bench` as two tables and the projection."""
    console.print(_latency_table(report))
    console.print(_cpu_table(report))
    for row in report["summary"]:
        for problem in row["problems"]:
            console.print(f"{row['engines'] or 'direct'} engines, {row['streams']} streams: {problem}",
                          style="red", highlight=False, markup=False)
    p = report["projection"]
    if p.get("router_core_chunks_per_s"):
        per = ", ".join(f"{n} at {int(e):,} streams each" for e, n in p["engines_per_router_core"].items())
        console.print(f"router at {p['at_streams']:,} streams: {p['router_busy_us_per_chunk']:.1f} us of CPU "
                      f"per chunk beyond its idle {p['router_idle_cpu_pct']:.1f} % -> one router core carries "
                      f"{p['router_core_chunks_per_s']:,} chunks/s = {p['router_core_streams']:,} streams at "
                      f"{p['chunks_per_stream_s']:g} chunks/s; engine machines per router core: {per} "
                      "(docs/scaling.md, Sizing)", highlight=False)
    console.print("figures taken while other jobs ran ('others %') compare only within one run, as ratios",
                  style="dim", highlight=False)
