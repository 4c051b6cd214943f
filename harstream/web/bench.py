"""``harstream bench --web``: many simulated phones through one ``harstream web``; its CPU and added latency.

A ``harstream serve`` child and a ``harstream web`` child (plain http on
loopback) run as in production; this process simulates the phones: each a
WebSocket sending ``rate`` Hz samples in ``batches_per_s`` batches, in real
time, with random phases. For every prediction a phone receives:

* end to end = phone receive time - send time of the batch that held the
  window's last sample;
* engine = the prediction's ``latency_ms`` (engine receipt to publication);
* **added** = end to end - engine: what the gateway adds, both ways
  (browser -> gateway -> engine, and engine -> gateway -> browser), plus
  this process's own scheduling; split into **inbound** (the engine's
  receipt, ``t_arrival``, - send time) and **outbound** (receive time -
  ``t_arrival`` - engine).

Lost = windows the engine should have emitted for a phone during the
measured span that the phone had not received 3 s after its last
prediction (at most 60 s after it stopped sending); the gateway's drop
counters are reported beside. CPU is read from ``/proc`` (Linux,
:mod:`harstream.procstat`): the gateway's, the engine's (with its model
process), this process's (the phones), the whole machine's (100 % = one
core) and the others' (the machine less ours).

>>> phone = Phone("p", sends=[98.2 + 0.2 * k for k in range(15)],  # batch k: samples 10k..10k+9
...               received=[(100.85, '{"body": {"seq_end": 127, "t_arrival": 100.65, "latency_ms": 20.0}}')])
>>> latencies, expected, received = _phone_numbers(phone, 50.0, 10, measure_from=100.0, first_t=98.0,
...                                                end_t=101.0)
>>> {name: [round(v, 3) for v in values] for name, values in latencies.items()}, expected, received
({'end_to_end': [250.0], 'engine': [20.0], 'added': [230.0], 'inbound': [50.0], 'outbound': [180.0]}, 1, 1)
>>> latencies["added"][0] == latencies["inbound"][0] + latencies["outbound"][0]
True
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from harstream import HOP, WINDOW
from harstream.loopback import free_endpoint, free_port
from harstream.procstat import CpuMeter
from harstream.serve.stats import percentiles


@dataclass
class Phone:
    """One simulated phone's record."""

    stream: str = ""
    sends: list[float] = field(default_factory=list)
    """Send times (unix s) of its batches, in order."""
    received: list[tuple[float, str]] = field(default_factory=list)
    """Receive time (unix s) and text of each message on the phone's own topic."""
    samples_sent: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """The engine's ``$error`` codes about this phone's stream."""


async def _phone(session: Any, url: str, phone: Phone, rate: float, per_batch: int, start: float,
                 stop: float) -> None:
    """Connect, say hello, then send ``per_batch`` samples every ``per_batch / rate`` s until ``stop``."""
    async with session.ws_connect(url, heartbeat=None) as ws:
        await ws.send_str('{"type":"hello","stream":null}')
        hello = json.loads((await ws.receive(timeout=60)).data)
        phone.stream = hello["body"]["stream"]

        prefix = f'{{"topic":"{phone.stream}",'

        async def receive() -> None:
            async for msg in ws:
                if msg.data.startswith(prefix):  # parsed later: only predictions, and off the clock
                    phone.received.append((time.time(), msg.data))
                elif msg.data.startswith('{"topic":"$error"'):
                    phone.errors[json.loads(msg.data)["body"]["code"]] += 1

        reader = asyncio.create_task(receive())
        period = per_batch / rate
        k, t_batch = 0, start
        rng = random.Random(hash(phone.stream))
        # the values are made once (this process simulates every phone: its own CPU would blur the numbers)
        values = [",".join(f"{v:.4f}" for v in (rng.gauss(0, 0.5), 9.81 + rng.gauss(0, 0.5), rng.gauss(0, 0.5),
                                                rng.gauss(0, 5), rng.gauss(0, 5), rng.gauss(0, 5)))
                  for _ in range(per_batch)]
        try:
            while t_batch < stop:
                await asyncio.sleep(max(0.0, t_batch + period - time.time()))  # the batch's last sample is due
                rows = ",".join(f"[{(t_batch + i / rate) * 1000.0:.3f},{v}]" for i, v in enumerate(values))
                await ws.send_str(f'{{"type":"batch","samples":[{rows}]}}')
                phone.sends.append(time.time())
                phone.samples_sent += per_batch
                k += 1
                t_batch = start + k * period
            deadline = time.time() + 60.0  # the last windows' predictions, however far behind the engine is
            while time.time() < deadline and (not phone.received or time.time() - phone.received[-1][0] < 3.0):
                await asyncio.sleep(0.5)
        finally:
            reader.cancel()


LATENCIES = ("end_to_end", "engine", "added", "inbound", "outbound")
"""The latencies the report gives percentiles of (ms; see the module's docstring)."""
TARGET_PHONES = 500
TARGET_ADDED_P99_MS = 20.0
"""The gateway's target (docs/phones.md): at :data:`TARGET_PHONES` phones, p99 of the added latency at most
this, nothing lost."""


def _phone_numbers(phone: Phone, rate: float, per_batch: int, measure_from: float, first_t: float,
                   end_t: float) -> tuple[dict[str, list[float]], int, int]:
    """The :data:`LATENCIES` (ms) of one phone's predictions, and the windows expected and received in the
    measured span. Each prediction's latencies count from the send of the batch that held its window's
    last sample (batch ``seq_end // per_batch``: the phone's samples are numbered from 0, ``per_batch``
    a batch)."""
    latencies: dict[str, list[float]] = {name: [] for name in LATENCIES}
    got = set()
    for t_recv, text in phone.received:
        body = json.loads(text)["body"]
        window_end_t = first_t + body["seq_end"] / 50.0
        if window_end_t < measure_from:
            continue
        got.add(body["seq_end"])
        i = body["seq_end"] // per_batch
        if i >= len(phone.sends):
            continue
        total = (t_recv - phone.sends[i]) * 1000.0
        engine = body["latency_ms"]
        inbound = (body["t_arrival"] - phone.sends[i]) * 1000.0
        added = total - engine
        for name, value in zip(LATENCIES, (total, engine, added, inbound, added - inbound), strict=True):
            latencies[name].append(value)
    last = int((end_t - first_t) * 50.0) - 1  # the last 50 Hz index sent
    first = int(np.ceil((measure_from - first_t) * 50.0))
    expected = [e for e in range(WINDOW - 1, last + 1, HOP) if e >= first]
    return latencies, len(expected), len(got & set(expected))


def run_web_bench(phones: int = 500, rate: float = 50.0, batches_per_s: float = 5.0, duration_s: float = 30.0,
                  warmup_s: float = 10.0, log: Callable[[str], None] = print, serve_args: Sequence[str] = (),
                  web_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run the benchmark (``serve_args`` and ``web_args``: more options for the two children); the report
    as a JSON-ready dict."""
    ingest, publish = free_endpoint(), free_endpoint()
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="harstream-webbench-"))
    token = "bench-" + os.urandom(12).hex()
    (folder / "token").write_text(token)
    engine = subprocess.Popen(
        [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish, *serve_args],
        stdout=subprocess.DEVNULL, stderr=(folder / "serve.log").open("w"))
    gateway = subprocess.Popen(
        [sys.executable, "-m", "harstream", "web", "--ingest", ingest, "--publish", publish, "--listen",
         f"127.0.0.1:{port}", "--plain-http", "--no-qr", "--token-file", str(folder / "token"),
         "--max-phones", str(phones + 10), *web_args],
        stdout=subprocess.DEVNULL, stderr=(folder / "web.log").open("w"))
    try:
        _wait_for_engine(publish, engine)
        log(f"engine and gateway up; {phones} phones, {rate:g} Hz, {batches_per_s:g} batches/s, "
            f"{warmup_s:g} s warm-up + {duration_s:g} s measured")
        return asyncio.run(_measure(port, token, (gateway.pid, engine.pid), phones, rate, batches_per_s,
                                    duration_s, warmup_s))
    finally:
        for proc in (gateway, engine):
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
        for proc in (gateway, engine):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_for_engine(publish: str, engine: subprocess.Popen[bytes]) -> None:
    from harstream.protocol import StatsEvent
    from harstream.serve.client import Subscriber

    with Subscriber(publish) as sub:
        deadline = time.monotonic() + 180
        while not isinstance(sub.receive(timeout_s=1.0), StatsEvent):
            if engine.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("harstream serve did not start")


async def _measure(port: int, token: str, pids: tuple[int, int], phones: int, rate: float,
                   batches_per_s: float, duration_s: float, warmup_s: float) -> dict[str, Any]:
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/stats?token={token}") as reply:
                    if reply.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("harstream web did not start")
            await asyncio.sleep(0.2)
        per_batch = max(1, round(rate / batches_per_s))
        now = time.time() + 2.0
        stop = now + warmup_s + duration_s
        records = [Phone() for _ in range(phones)]
        starts = [now + random.random() * per_batch / rate for _ in range(phones)]
        url = f"{base.replace('http', 'ws')}/phone?token={token}"
        tasks = [asyncio.create_task(_phone(session, url, p, rate, per_batch, s, stop))
                 for p, s in zip(records, starts, strict=True)]
        await asyncio.sleep(max(0.0, now + warmup_s - time.time()))
        meter = CpuMeter({"gateway": pids[0], "engine": pids[1], "phones": os.getpid()}, trees=("engine",))
        meter.start()
        await asyncio.sleep(max(0.0, stop - time.time()))
        meter.stop()
        await asyncio.gather(*tasks)
        sent = sum(phone.samples_sent for phone in records)
        deadline = time.monotonic() + 30.0
        while True:  # the gateway's counters once it has read everything the phones sent
            async with session.get(f"{base}/stats?token={token}") as reply:
                stats = await reply.json()
            if stats["samples_in"] >= sent or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    cpu = {name: meter.percent(name) for name in ("gateway", "engine", "phones", "machine")}
    cpu["others"] = meter.others()
    return _report(records, starts, now + warmup_s, stop, rate, per_batch, stats, cpu)


def _report(records: list[Phone], starts: list[float], measure_from: float, stop: float, rate: float,
            per_batch: int, stats: dict[str, Any], cpu_percent: dict[str, float | None]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {name: [] for name in LATENCIES}
    expected = received = 0
    errors: Counter[str] = Counter()
    for phone, start in zip(records, starts, strict=True):
        errors.update(phone.errors)
        end_t = start + phone.samples_sent / rate
        mine, n_expected, n_got = _phone_numbers(phone, rate, per_batch, measure_from, start, end_t)
        for name, values in mine.items():
            latencies[name] += values
        expected += n_expected
        received += n_got
    return {
        "phones": len(records), "rate_hz": rate, "batch_samples": per_batch,
        "measured_s": round(stop - measure_from, 3), "cpu_percent": cpu_percent, "cores": os.cpu_count(),
        "windows_expected": expected, "windows_received": received, "windows_lost": expected - received,
        "engine_errors": dict(errors), "samples_sent": sum(phone.samples_sent for phone in records),
        "latency_ms": {name: percentiles(values, digits=None) for name, values in latencies.items()},
        "gateway": {key: stats[key] for key in ("samples_in", "chunks_out", "events_out", "dropped_samples",
                                                "refused", "events_dropped")},
    }


def print_web_report(report: dict[str, Any], console: Console) -> None:
    """``report`` (of :func:`run_web_bench`) for people: CPU, the latencies, what was lost, the target.

    >>> from rich.console import Console
    >>> latency = {name: {"p50": 1.0, "p99": 2.0, "max": 3.0} for name in LATENCIES}
    >>> report = {"phones": 500, "rate_hz": 50.0, "batch_samples": 10, "measured_s": 3.0, "cores": 2,
    ...           "cpu_percent": {"gateway": 5.0, "engine": 9.0, "phones": 2.0, "machine": 16.0, "others": 0.0},
    ...           "windows_expected": 10, "windows_received": 10, "windows_lost": 0, "engine_errors": {},
    ...           "latency_ms": latency, "gateway": {"dropped_samples": {}, "events_dropped": 0}}
    >>> print_web_report(report, Console(width=100, color_system=None))  # doctest: +ELLIPSIS
    500 phones, 50 Hz in batches of 10 samples, 3 s measured on 2 cores
    ...
    target: added p99 2.0 ms <= 20 ms, nothing lost: met
    """
    from rich.table import Table

    console.print(f"{report['phones']} phones, {report['rate_hz']:g} Hz in batches of {report['batch_samples']} "
                  f"samples, {report['measured_s']:g} s measured on {report['cores']} cores", highlight=False)
    cpu = report["cpu_percent"]
    console.print("CPU (% of one core): " + ", ".join(
        f"{name} {value:.0f}" if value is not None else f"{name} -" for name, value in cpu.items()),
        highlight=False)
    table = Table(title="latency, ms (added = inbound + outbound)")
    for column in ("", "p50", "p99", "max"):
        table.add_column(column, justify="right" if column else "left")
    for name in LATENCIES:
        row = report["latency_ms"][name]
        table.add_row(name.replace("_", " "), *(f"{row[q]:.1f}" if row[q] is not None else "-"
                                                for q in ("p50", "p99", "max")))
    console.print(table)
    gateway = report["gateway"]
    dropped = sum(gateway["dropped_samples"].values())
    console.print(f"windows: {report['windows_received']:,} of {report['windows_expected']:,} received "
                  f"({report['windows_lost']:,} lost); gateway dropped {dropped:,} samples, "
                  f"{gateway['events_dropped']:,} events; engine errors {report['engine_errors'] or 'none'}",
                  highlight=False)
    p99 = report["latency_ms"]["added"]["p99"]
    met = p99 is not None and p99 <= TARGET_ADDED_P99_MS and report["windows_lost"] == 0 and not dropped
    shown = "-" if p99 is None else f"{p99:.1f} ms"
    verdict = ("met" if met else "not met") if report["phones"] >= TARGET_PHONES else \
        f"set for {TARGET_PHONES} phones"
    console.print(f"target: added p99 {shown} <= {TARGET_ADDED_P99_MS:g} ms, nothing lost: {verdict}",
                  highlight=False)
