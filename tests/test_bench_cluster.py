"""`harstream bench --cluster`: the report's shape on a tiny run (the direct engine, then a router with 1 and
2 engines), every window arrived once, and every process it started gone after it, Ctrl-C included.

The runs start a router and several engines, so they run in a loopback-only network namespace
(tests/netns.py). No figure is judged against a wall-clock threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from netns import loopback_only

from harstream.cli import bench
from harstream.tools.bench.cluster import projection, summarize, us_per_chunk
from harstream.tools.loadtest.cluster import ClusterLoad, plan
from harstream.tools.loadtest.run import LoadConfig

ENGINE_ARGS = ("--serve-arg=--runtime=onnx", "--serve-arg=--no-model-process")
"""The lightest engine: one process each, ONNX Runtime."""
TAG = "HARSTREAM_TEST_BENCH_CLUSTER"
"""An environment variable every child of the bench inherits: how the test finds them afterwards."""


def _command(*extra: str, engines: str = "2") -> list[str]:
    return [sys.executable, "-m", "harstream", "bench", "--cluster", engines, "--streams", "8", "--warmup", "2",
            "--duration", "3", "--repeats", "1", *ENGINE_ARGS, *extra]


def _tagged(tag: str) -> list[int]:
    """Processes whose environment holds ``TAG=tag`` (the bench and everything it started)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"{TAG}={tag}".encode() in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _wait_gone(tag: str, cap_s: float = 60.0) -> list[int]:
    end = time.monotonic() + cap_s
    while (left := _tagged(tag)) and time.monotonic() < end:
        time.sleep(0.2)
    return left


def test_options_and_defaults() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--cluster", "1,2,3"])
    assert args.cluster == [1, 2, 3] and args.streams is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--cluster", "0"])
    config = ClusterLoad(LoadConfig(Path(".")))
    text = parser.format_help()
    # the help names ClusterLoad's defaults
    assert f"(default: {config.streams[0]})" in " ".join(text.split())
    assert f"(default: {config.rounds}, --quick 1)" in " ".join(text.split())
    assert plan([2], [10], rounds=2, direct=True) == [(0, 10, 0), (0, 10, 2), (1, 10, 0), (1, 10, 2)]


def _run(round_: int, engines: int, p99: float, router_cpu: float | None, engines_cpu: float) -> dict[str, Any]:
    return {"round": round_, "streams": 100, "engines": engines, "mode": "router" if engines else "direct",
            "problem": None, "startup_s": 5.0, "idle_cpu_pct": {"router": 1.0} if engines else {},
            "router": {"engines": [{"slot": 0, "routed_streams": 100}]} if engines else {},
            "level": {"windows_per_s": 80.0, "latency_ms": {"p50": 5.0, "p99": p99},
                      "windows": {"expected": 10, "received": 10, "lost": 0, "duplicates": 0, "unexpected": 0,
                                  "classified_by_engine": 10},
                      "errors": {}, "clients": {"chunks_measured": 20_000, "machine_cpu_pct": 150.0,
                                                "other_processes_cpu_pct": 100.0},
                      "engine": {"cpu_pct": router_cpu if engines else engines_cpu,
                                 **({"cpu_pct_of": {"engine0": engines_cpu}} if engines else {})}}}


def test_summary_pairs_each_round_with_its_direct_engine() -> None:
    runs = [_run(0, 0, 10.0, None, 20.0), _run(0, 1, 20.0, 5.0, 22.0),
            _run(1, 0, 40.0, None, 20.0), _run(1, 1, 40.0, 3.0, 22.0)]
    direct, routed = summarize(runs, duration_s=10.0)
    assert (direct["mode"], routed["mode"], routed["rounds"]) == ("direct", "router", 2)
    assert routed["vs_direct"]["p99_ratio"] == 1.5  # the median of 2.0 and 1.0, each against its own round
    assert routed["router_cpu_us_per_chunk"] == us_per_chunk(4.0, 20_000, 10.0) == 20.0
    assert routed["router_busy_us_per_chunk"] == 15.0  # (4 - 1) % of a core over 20,000 chunks in 10 s
    assert routed["windows"]["lost"] == 0 and routed["routed_streams"] == [100]
    out = projection([direct, routed], chunks_per_stream_s=2.0)
    assert out["router_core_chunks_per_s"] == round(1e6 / 15.0)
    assert out["engines_per_router_core"]["1000"] == round(1e6 / 15.0 / 2.0 / 1000, 1)


@pytest.mark.slow
@loopback_only
def test_tiny_run_every_window_once(hapt_dir: Path) -> None:
    tag = uuid.uuid4().hex
    done = subprocess.run([*_command("--json")], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HARSTREAM_DATA": str(hapt_dir), TAG: tag})
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["config"]["engines"] == [2] and report["config"]["streams"] == [8]
    runs = report["runs"]
    assert [(r["engines"], r["mode"]) for r in runs] == [(0, "direct"), (2, "router")]
    for run in runs:
        assert run["problem"] is None, run["problem"]
        assert all(code == 0 for code in run["exit_codes"]), run["exit_codes"]
        windows = run["level"]["windows"]
        assert windows["expected"] > 0
        assert windows["duplicates"] == 0 and windows["unexpected"] == 0, windows
        assert windows["lost"] == 0 and windows["received"] == windows["expected"], windows
        assert run["level"]["errors"] == {}, run["level"]["errors"]
        assert run["level"]["clients"]["chunks_measured"] > 0
    for run in runs[1:]:
        router = run["router"]
        assert router["chunks_in"] == router["chunks_routed"] > 0
        assert (router["moved"], router["no_engine"], router["overloaded"], router["losses"]) == (0, 0, 0, {})
        assert sorted(row["slot"] for row in router["engines"]) == list(range(run["engines"]))
        assert sum(row["routed_streams"] for row in router["engines"]) == 8
        assert set(run["level"]["engine"]["cpu_pct_of"]) == {f"engine{k}" for k in range(run["engines"])}
        assert set(run["idle_cpu_pct"]) == {"machine", "router", *run["level"]["engine"]["cpu_pct_of"]}
    rows = {row["engines"]: row for row in report["summary"]}
    assert set(rows) == {0, 2}
    for row in rows.values():
        assert row["rounds"] == 1 and row["problems"] == [] and row["windows"]["duplicates"] == 0
    assert rows[0]["vs_direct"] is None and rows[2]["vs_direct"]["p99_ratio"] is not None
    assert set(report["projection"]["router_by_streams_and_engines"]["8"]) == {"2"}
    assert _wait_gone(tag) == []


@pytest.mark.slow
@loopback_only
def test_ctrl_c_stops_every_process(hapt_dir: Path) -> None:
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(_command(engines="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HARSTREAM_DATA": str(hapt_dir), TAG: tag, "COLUMNS": "1000"})
    killer = threading.Timer(600, proc.kill)  # a cap, not a wait
    killer.start()
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        serving = False
        for line in proc.stderr:
            lines.append(line)
            serving = serving or "router + 1 engine(s): serving" in line
            if serving and "streams from" in line:
                break  # the router, its engine, the generator and the subscriber all run now
        else:
            pytest.fail("".join(lines[-20:]))
        assert len(_tagged(tag)) >= 5
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        code = proc.wait(timeout=120)
    finally:
        killer.cancel()
    assert code == 130, "".join(lines) + rest
    assert "interrupted" in rest
    assert _wait_gone(tag) == []
