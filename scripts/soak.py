"""Soak benchmark of the engine: N real-time HAPT streams plus a trickle of garbage, RSS over time.

    .venv/bin/python scripts/soak.py [--streams 500] [--duration 600] [--warmup 60]
                                     [--garbage-per-s 3] [--json] [--out soak.json] [--plot soak.png]

Starts `python -m harstream serve` on free loopback ports as a child
process (its own session, so a Ctrl-C here reaches it only as the SIGTERM this
script sends). Once the engine publishes its first `$stats`, a load generator
in a second process streams N real HAPT recordings (``--data``, else
``$HARSTREAM_DATA``, else ``../shared/data/hapt`` beside the checkout) as N
concurrent real-time streams: 50 Hz, 25-sample chunks, starts staggered
evenly over one chunk period (0.5 s), each stream beginning at its own offset
in its recording and wrapping around at the end with ``seq`` simply
continuing (so no stream ever restarts and every window is expected).
Alongside, a trickle of malformed or hostile messages (``--garbage-per-s``)
cycles through every kind of fault the protocol rejects, plus one-shot
streams (valid chunks under fresh ids, held until the idle timeout) and
oversized frames (the engine disconnects their sender).

This process samples the engine's memory (``/proc/PID/status`` VmRSS) every
``--rss-interval`` seconds and reads every message the engine publishes:
`$stats` (latency p50/p99, windows/s, rejected, shed, internal errors,
streams), `$error` by code, and each prediction (counted per stream, checked
for gaps and repeats). ``--duration`` is the whole streaming time, warm-up
included. At the end the generator stops, the engine gets a few seconds to
drain, then SIGTERM; its exit code and last stderr line (the stop summary:
flushed / dropped windows) are recorded, and windows are reconciled: expected
from the samples sent, classified by the engine, received here.

The criterion: RSS at the end (last sample under load) is at most 5 % above
RSS right after warm-up. The max after warm-up and the medians of the last
and first minute after warm-up are reported as well. Exits 0 whatever the
result ("criterion met: yes/no"); non-zero only when the run itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import numpy as np
import zmq

REPO = Path(__file__).resolve().parent.parent
RATE = 50
CHUNK = 25
WINDOW, HOP = 128, 64
CRITERION_PCT = 5.0
JUNK = "junk"
"""Prefix of every stream id the garbage trickle uses (real streams start with ``s``)."""


# --- helpers ------------------------------------------------------------------------------------


def _endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("HARSTREAM_DATA"):
        return Path(os.environ["HARSTREAM_DATA"])
    beside = REPO.parent / "shared" / "data" / "hapt"
    if beside.is_dir():
        return beside
    from harstream.paths import default_data_dir

    return default_data_dir()


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon (kB) and Threads of ``pid``; empty when it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return {}
    return out


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def _git() -> dict[str, Any]:
    """The checkout the engine ran from: commit, and whether harstream/ had uncommitted edits."""
    def git(*argv: str) -> str | None:
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--", "harstream")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "harstream_dirty": None if status is None else bool(status)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _expected_windows(samples: int) -> int:
    """Windows of a stream that sent ``samples`` contiguous samples from seq 0."""
    return 0 if samples < WINDOW else (samples - WINDOW) // HOP + 1


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _set_pdeathsig() -> None:  # runs in the engine child before exec (Linux only)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --- the garbage trickle ------------------------------------------------------------------------


def _garbage_kinds() -> list[tuple[str, str | None]]:
    """``(kind, code the engine should reply with)``; None: not rejected."""
    return [
        ("bad_json", "header"), ("wrong_rate", "rate"), ("nan_samples", "samples"),
        ("oversized_seq", "seq"), ("bad_stream_id", "stream_id"), ("non_utf8_id", "stream_id"),
        ("long_stream_id", "stream_id"), ("nan_in_header", "header"), ("duplicate_key", "header"),
        ("wrong_version", "version"), ("float_seq", "seq"), ("ragged_samples", "samples"),
        ("empty_samples", "samples"), ("two_frames", "frames"), ("big_header", "header"),
        ("bad_restart", "restart"), ("bad_t0", "t0"), ("oneshot_stream", None),
        ("seq_replay", "seq_replay"), ("oversized_frame", None),
    ]


def _garbage_frames(kind: str, n: int, rng: np.random.Generator) -> list[bytes]:
    ok = rng.normal(0, 0.1, (CHUNK, 6)).astype("<f4")
    ok[:, 2] += 1.0  # gravity on z
    good = ok.tobytes()
    sid = f"{JUNK}-{kind}".encode()

    def head(**fields: Any) -> bytes:
        return json.dumps({"v": 1, "seq": 0, "rate": RATE, **fields}).encode()

    if kind == "bad_json":
        return [sid, b'{"v":1,"seq":0,"rate":50', good]
    if kind == "wrong_rate":
        return [sid, head(rate=100), good]
    if kind == "nan_samples":
        bad = ok.copy()
        bad[int(rng.integers(CHUNK)), int(rng.integers(6))] = np.nan
        return [sid, head(), bad.tobytes()]
    if kind == "oversized_seq":
        return [sid, head(seq=2**53), good]
    if kind == "bad_stream_id":
        return [f"{JUNK} bad/id ${n}!".encode(), head(), good]
    if kind == "non_utf8_id":
        return [b"\xff\xfe" + JUNK.encode(), head(), good]
    if kind == "long_stream_id":
        return [(f"{JUNK}-{n}-" + "x" * 80).encode(), head(), good]
    if kind == "nan_in_header":
        return [sid, b'{"v":1,"seq":0,"rate":50,"t0":NaN}', good]
    if kind == "duplicate_key":
        return [sid, b'{"v":1,"seq":0,"seq":1,"rate":50}', good]
    if kind == "wrong_version":
        return [sid, head(v=2), good]
    if kind == "float_seq":
        return [sid, b'{"v":1,"seq":1.0,"rate":50}', good]
    if kind == "ragged_samples":
        return [sid, head(), good[:-5]]
    if kind == "empty_samples":
        return [sid, head(), b""]
    if kind == "two_frames":
        return [sid, head()]
    if kind == "big_header":
        return [sid, head(pad="p" * 2000), good]
    if kind == "bad_restart":
        return [sid, head(restart=1), good]
    if kind == "bad_t0":
        return [sid, head(t0="now"), good]
    if kind == "oneshot_stream":  # valid; a fresh id each time, held until the idle timeout
        return [f"{JUNK}-oneshot-{n}".encode(), head(), good]
    if kind == "seq_replay":  # repeats seq 0 of the one-shot stream opened by the message before
        return [f"{JUNK}-oneshot-{n - 1}".encode(), head(), good]
    if kind == "oversized_frame":  # over ZMQ_MAXMSGSIZE: the engine disconnects the sender
        return [sid, head(), b"\0" * 80_016]
    raise ValueError(kind)


# --- the load generator (a separate process) ----------------------------------------------------


def _generator(ingest: str, data: str, n_streams: int, duration: float, garbage_per_s: float,
               seed: int, stop: EventType, results: Any) -> None:
    """Stream ``n_streams`` recordings in real time, plus garbage; put a report on ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent sets ``stop`` on Ctrl-C
    from harstream.data.hapt import list_experiments, read_recording
    from harstream.protocol import encode_chunk

    parent = os.getppid()
    rng = np.random.default_rng(seed)
    recordings = []
    for experiment, user in list_experiments(data):
        rec = read_recording(data, experiment, user)
        samples = rec.samples
        # wrap: a chunk starting near the end continues at the recording's start
        recordings.append((rec.stream_id, np.concatenate([samples, samples[:CHUNK]])))
    ids, arrays, positions = [], [], []
    for i in range(n_streams):
        name, array = recordings[i % len(recordings)]
        ids.append(f"s{i:04d}-{name}")
        arrays.append(array)
        positions.append(int(rng.integers(0, len(array) - CHUNK)))  # each copy its own offset
    sent = [0] * n_streams  # samples sent per stream == its next seq

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 100_000)
    push.setsockopt(zmq.LINGER, 10_000)
    push.connect(ingest)
    junk = ctx.socket(zmq.PUSH)
    junk.setsockopt(zmq.SNDHWM, 10_000)
    junk.setsockopt(zmq.LINGER, 2_000)
    junk.connect(ingest)
    kinds = _garbage_kinds()
    garbage: Counter[str] = Counter()
    garbage_n = 0
    period = CHUNK / RATE
    phases = [i * period / n_streams for i in range(n_streams)]
    lateness: list[float] = []
    max_late = 0.0
    late_over_100ms = 0
    messages = 0

    results.put({"event": "ready", "recordings": len(recordings)})
    start = time.monotonic() + 0.2
    results.put({"event": "start", "t_start": start})
    next_garbage = start + (1.0 / garbage_per_s if garbage_per_s > 0 else math.inf)

    def send_garbage(now: float) -> None:
        nonlocal next_garbage, garbage_n
        while next_garbage <= now:
            kind, _ = kinds[garbage_n % len(kinds)]
            frames = _garbage_frames(kind, garbage_n, rng)
            if kind == "oversized_frame":  # its own connection: the disconnect hits only it
                sock = ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 1_000)
                sock.connect(ingest)
                sock.send_multipart(frames)
                sock.close()
            else:
                junk.send_multipart(frames)
            garbage[kind] += 1
            garbage_n += 1
            next_garbage += 1.0 / garbage_per_s

    def wait_until(t: float) -> None:
        while True:
            now = time.monotonic()
            send_garbage(now)
            if now >= t:
                return
            time.sleep(min(t, next_garbage) - now)

    interrupted = False
    rounds = 0
    end = start + duration
    try:
        while start + rounds * period < end and not interrupted:
            base = start + rounds * period
            for i in range(n_streams):
                t = base + phases[i]
                wait_until(t)
                late = time.monotonic() - t
                max_late = max(max_late, late)
                late_over_100ms += late > 0.1
                if i % 50 == 0:
                    lateness.append(late)
                p = positions[i]
                push.send_multipart(encode_chunk(ids[i], sent[i], arrays[i][p : p + CHUNK],
                                                 t0=time.time() - (CHUNK - 1) / RATE))
                sent[i] += CHUNK
                messages += 1
                positions[i] = (p + CHUNK) % (len(arrays[i]) - CHUNK)
            rounds += 1
            if stop.is_set() or os.getppid() != parent:
                interrupted = True
    finally:
        t_stop = time.monotonic()
        push.close()  # lingers until every queued chunk has left (up to 10 s)
        junk.close()
        ctx.term()
    results.put({
        "event": "done", "t_stop": t_stop, "interrupted": interrupted, "rounds": rounds,
        "messages": messages, "samples_sent": sent, "stream_ids": ids,
        "garbage": dict(garbage),
        "lateness_ms": {
            "p50": round(1000 * float(np.percentile(lateness, 50)), 2) if lateness else None,
            "p99": round(1000 * float(np.percentile(lateness, 99)), 2) if lateness else None,
            "max": round(1000 * max_late, 2), "sends_later_than_100ms": late_over_100ms,
        },
    })


# --- the monitor (this process) -----------------------------------------------------------------


class Monitor:
    """Reads everything the engine publishes; counts predictions per stream."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], publish: str) -> None:
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 1_000_000)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(publish)
        self.stats: list[dict[str, Any]] = []
        self.errors: Counter[str] = Counter()
        self.errors_real: Counter[str] = Counter()
        self.last_seq: dict[str, int] = {}
        self.received: Counter[str] = Counter()
        self.gaps = 0
        self.repeats = 0
        self.junk_predictions = 0
        self.t0: float | None = None

    def pump(self, until: float) -> None:
        """Read messages until monotonic time ``until``."""
        while True:
            wait = until - time.monotonic()
            if wait <= 0 or not self.sub.poll(max(1, int(wait * 1000))):
                if time.monotonic() >= until:
                    return
                continue
            for _ in range(10_000):
                try:
                    topic, body = self.sub.recv_multipart(zmq.NOBLOCK)[:2]
                except zmq.Again:
                    break
                except ValueError:
                    continue
                self._handle(topic, body)

    def _handle(self, topic: bytes, body: bytes) -> None:
        if topic == b"$stats":
            fields = json.loads(body)
            fields["t_rel"] = time.monotonic() - self.t0 if self.t0 is not None else None
            self.stats.append(fields)
        elif topic == b"$error":
            event = json.loads(body)
            self.errors[event["code"]] += 1
            stream = event.get("stream")
            if stream is not None and not stream.startswith(JUNK):
                self.errors_real[event["code"]] += 1
        else:
            stream = topic.decode()
            if stream.startswith(JUNK):
                self.junk_predictions += 1
                return
            seq_end = json.loads(body)["seq_end"]
            last = self.last_seq.get(stream)
            if last is None:
                if seq_end != WINDOW - 1:
                    self.gaps += 1
            elif seq_end <= last:
                self.repeats += 1
            elif seq_end != last + HOP:
                self.gaps += 1
            self.last_seq[stream] = max(seq_end, last or 0)
            self.received[stream] += 1


def _rss_summary(samples: list[dict[str, Any]], warmup: float, duration: float) -> dict[str, Any]:
    after = [s for s in samples if warmup <= s["t"] <= duration and s.get("rss_kb")]
    if len(after) < 2:
        return {"error": "fewer than 2 RSS samples after warm-up"}
    ref, end = after[0], after[-1]
    span = min(60.0, (after[-1]["t"] - ref["t"]) / 2)
    first = [s["rss_kb"] for s in after if s["t"] <= ref["t"] + span]
    last = [s["rss_kb"] for s in after if s["t"] >= end["t"] - span]
    peak = max(after, key=lambda s: s["rss_kb"])
    med_first, med_last = statistics.median(first), statistics.median(last)
    growth = 100.0 * (end["rss_kb"] - ref["rss_kb"]) / ref["rss_kb"]
    return {
        "after_warmup_mb": round(ref["rss_kb"] / 1024, 1), "after_warmup_t_s": round(ref["t"], 1),
        "end_mb": round(end["rss_kb"] / 1024, 1), "end_t_s": round(end["t"], 1),
        "growth_pct": round(growth, 2),
        "max_after_warmup_mb": round(peak["rss_kb"] / 1024, 1), "max_t_s": round(peak["t"], 1),
        "max_growth_pct": round(100.0 * (peak["rss_kb"] - ref["rss_kb"]) / ref["rss_kb"], 2),
        "median_window_s": round(span, 1),
        "median_first_mb": round(med_first / 1024, 1), "median_last_mb": round(med_last / 1024, 1),
        "median_growth_pct": round(100.0 * (med_last - med_first) / med_first, 2),
        "vmhwm_end_mb": round(end.get("hwm_kb", 0) / 1024, 1),
        "criterion_pct": CRITERION_PCT, "criterion_met": growth <= CRITERION_PCT,
    }


def _stats_summary(reports: list[dict[str, Any]], warmup: float, duration: float) -> dict[str, Any]:
    after = [r for r in reports if r.get("t_rel") is not None and warmup <= r["t_rel"] <= duration]
    p50 = [r["latency_ms"]["p50"] for r in after if r["latency_ms"]["p50"] is not None]
    p99 = [r["latency_ms"]["p99"] for r in after if r["latency_ms"]["p99"] is not None]
    mx = [r["latency_ms"]["max"] for r in after if r["latency_ms"]["max"] is not None]
    age = [r["age_ms"]["p50"] for r in after if r.get("age_ms", {}).get("p50") is not None]
    out: dict[str, Any] = {
        "reports_after_warmup": len(after),
        "streams_median": _median([r["streams"] for r in after]),
        "windows_per_s_median": _median([r["windows_per_s"] for r in after]),
        "latency_p50_ms_median": _median(p50), "latency_p99_ms_median": _median(p99),
        "latency_p99_ms_worst": max(p99) if p99 else None,
        "latency_max_ms_worst": max(mx) if mx else None,
        "age_p50_ms_median": _median(age),
        "queued_samples_max": max((r.get("queued_samples", 0) for r in after), default=None),
    }
    if reports:
        last = reports[-1]
        for key in ("windows", "rejected", "shed", "internal_errors", "chunks"):
            out[f"{key}_final"] = last.get(key)
        if len(after) > 1:
            out["rejected_during_measure"] = after[-1]["rejected"] - after[0]["rejected"]
            # the 5 s average of $stats swings with window bursts; this is the whole span's
            out["windows_per_s_overall"] = round(
                (after[-1]["windows"] - after[0]["windows"]) / (after[-1]["t"] - after[0]["t"]), 2)
        gaps = [b["t_rel"] - a["t_rel"] for a, b in itertools.pairwise(after)]
        out["stats_interval_s_max"] = round(max(gaps), 2) if gaps else None
    return out


def _plot(path: Path, rss: list[dict[str, Any]], reports: list[dict[str, Any]], warmup: float,
          title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 4.6), sharex=True, dpi=80)
    t = [s["t"] for s in rss if s.get("rss_kb")]
    ax1.plot(t, [s["rss_kb"] / 1024 for s in rss if s.get("rss_kb")], lw=1.2, color="tab:blue")
    after = [s["rss_kb"] / 1024 for s in rss if s.get("rss_kb") and s["t"] >= warmup]
    if after:
        ax1.axhline(after[0] * (1 + CRITERION_PCT / 100), color="tab:red", lw=0.8, ls="--",
                    label=f"+{CRITERION_PCT:g} % of RSS after warm-up")
        ax1.legend(loc="lower right", fontsize=8)
    ax1.set_ylabel("engine RSS (MB)")
    ax1.set_title(title, fontsize=9)
    rs = [r for r in reports if r.get("t_rel") is not None and r["latency_ms"]["p99"] is not None]
    ax2.plot([r["t_rel"] for r in rs], [r["latency_ms"]["p99"] for r in rs], lw=0.8,
             color="tab:orange", label="p99")
    ax2.plot([r["t_rel"] for r in rs], [r["latency_ms"]["p50"] for r in rs], lw=0.8,
             color="tab:green", label="p50")
    ax2.set_ylabel("latency per $stats (ms)")
    loads = [s for s in rss if s.get("load1") is not None]
    if loads:
        ax3 = ax2.twinx()
        ax3.plot([s["t"] for s in loads], [s["load1"] for s in loads], lw=0.8, color="0.5", ls=":")
        ax3.set_ylabel("load average, 1 min (dotted)", fontsize=8, color="0.4")
        ax3.set_ylim(bottom=0)
    ax2.set_xlabel("seconds since the streams started")
    ax2.legend(loc="upper right", fontsize=8)
    for ax in (ax1, ax2):
        ax.axvspan(0, warmup, color="0.9", lw=0)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _last_line(path: Path) -> str | None:
    """The engine's last stderr line (its stop summary, re-joined should the console wrap it)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("engine ") and " stopped: " in lines[i]:
            return " ".join(lines[i:])
    return lines[-1] if lines else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = _data_dir(args.data)
    ingest, publish = _endpoint(), _endpoint()
    log_dir = Path(tempfile.mkdtemp(prefix="harstream-soak-"))
    engine_log = log_dir / "serve.stderr"
    cmd = [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish,
           *args.serve_arg]
    env = {**os.environ, "COLUMNS": "1000"}  # one line per message in the log
    with open(engine_log, "wb") as err:
        engine = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO, env=env,
                                  start_new_session=True, preexec_fn=_set_pdeathsig)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    monitor = Monitor(ctx, publish)
    mpctx = mp.get_context("spawn")
    stop = mpctx.Event()
    results: Any = mpctx.Queue()
    gen = None
    rss: list[dict[str, Any]] = []
    generator_report: dict[str, Any] = {}
    interrupted = False
    engine_rc: int | None = None
    killed = False
    t_start = math.nan
    load: list[float] = []
    cpu_start: tuple[float, float | None] | None = None
    cpu_end: tuple[float, float | None] | None = None

    def sample(t: float) -> None:
        st = _proc_status(engine.pid)
        rss.append({"t": round(t, 2), "rss_kb": st.get("VmRSS"), "hwm_kb": st.get("VmHWM"),
                    "anon_kb": st.get("RssAnon"), "threads": st.get("Threads"),
                    "cpu_s": _cpu_seconds(engine.pid), "load1": os.getloadavg()[0]})

    try:
        try:
            log(args, f"engine: {' '.join(cmd[1:])} (pid {engine.pid}, stderr {engine_log})")
            deadline = time.monotonic() + args.startup_timeout
            while not monitor.stats:
                if engine.poll() is not None:
                    raise RuntimeError(f"the engine exited with {engine.returncode} before its first "
                                       f"$stats: {_last_line(engine_log)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no $stats from the engine within {args.startup_timeout} s")
                monitor.pump(time.monotonic() + 0.5)
            idle = _proc_status(engine.pid).get("VmRSS")
            log(args, f"engine ready, RSS {idle and idle / 1024:.0f} MB; generator: "
                      f"{args.streams} streams from {data}, {args.garbage_per_s:g} garbage/s")
            gen = mpctx.Process(target=_generator, name="soak-generator", args=(
                ingest, str(data), args.streams, args.duration, args.garbage_per_s, args.seed,
                stop, results))
            gen.start()
            while True:
                msg = _get(results, gen, 120.0)
                if msg["event"] == "start":
                    t_start = msg["t_start"]
                    break
            monitor.t0 = t_start
            warm = False
            next_sample = t_start
            next_log = t_start + args.log_every
            while True:
                now = time.monotonic()
                if now - t_start >= args.duration:
                    break
                if engine.poll() is not None:
                    log(args, f"the engine exited early with {engine.returncode}")
                    break
                monitor.pump(min(next_sample, t_start + args.duration))
                now = time.monotonic()
                if now >= next_sample:
                    sample(now - t_start)
                    load.append(os.getloadavg()[0])
                    next_sample += args.rss_interval
                    if not warm and now - t_start >= args.warmup:
                        warm = True
                        cpu_start = (now, _cpu_seconds(engine.pid))
                if now >= next_log:
                    next_log += args.log_every
                    last = monitor.stats[-1] if monitor.stats else {}
                    lat = last.get("latency_ms", {})
                    log(args, f"t={now - t_start:5.0f}s RSS {rss[-1]['rss_kb'] / 1024:7.1f} MB  "
                              f"streams {last.get('streams')}  {last.get('windows_per_s')} win/s  "
                              f"p50/p99 {lat.get('p50')}/{lat.get('p99')} ms  rejected "
                              f"{last.get('rejected')}  shed {last.get('shed')}  internal "
                              f"{last.get('internal_errors')}  load {os.getloadavg()[0]:.2f}")
            sample(time.monotonic() - t_start)  # the end sample, still under load
            cpu_end = (time.monotonic(), _cpu_seconds(engine.pid))
        except KeyboardInterrupt:
            interrupted = True
            log(args, "interrupted: stopping the generator and the engine")
        if cpu_start is not None and cpu_end is None:
            cpu_end = (time.monotonic(), _cpu_seconds(engine.pid))
        # stop: the generator first, then let the engine drain, then SIGTERM it
        stop.set()
        if gen is not None:
            with contextlib.suppress(Exception):
                while True:
                    msg = _get(results, gen, 30.0)
                    if msg["event"] == "done":
                        generator_report = msg
                        break
            gen.join(timeout=15)
        monitor.pump(time.monotonic() + args.drain)
        if engine.poll() is None:
            engine.send_signal(signal.SIGTERM)
            end = time.monotonic() + 60
            while engine.poll() is None and time.monotonic() < end:
                monitor.pump(time.monotonic() + 0.2)
            if engine.poll() is None:
                engine.kill()
                killed = True
        engine_rc = engine.wait(timeout=30)
        monitor.pump(time.monotonic() + 0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop.set()
        if gen is not None and gen.is_alive():
            gen.join(timeout=5)
            if gen.is_alive():
                gen.terminate()
                gen.join(timeout=5)
        if engine.poll() is None:
            engine.send_signal(signal.SIGTERM)
            try:
                engine.wait(timeout=20)
            except subprocess.TimeoutExpired:
                engine.kill()
                engine.wait()
                killed = True
        monitor.sub.close(linger=0)
        ctx.term()
    return _report(args, data, cmd, engine_log, engine_rc, killed, interrupted, monitor, rss,
                   generator_report, load, cpu_start, cpu_end)


def _get(results: Any, gen: Any, timeout: float) -> dict[str, Any]:
    import queue

    end = time.monotonic() + timeout
    while True:
        try:
            msg: dict[str, Any] = results.get(timeout=0.5)
            return msg
        except queue.Empty:
            if not gen.is_alive():
                raise RuntimeError(f"the load generator exited with {gen.exitcode}") from None
            if time.monotonic() > end:
                raise RuntimeError("the load generator did not answer") from None


def _report(args: argparse.Namespace, data: Path, cmd: list[str], engine_log: Path,
            engine_rc: int | None, killed: bool, interrupted: bool, monitor: Monitor,
            rss: list[dict[str, Any]], gen: dict[str, Any], load: list[float],
            cpu_start: tuple[float, float | None] | None,
            cpu_end: tuple[float, float | None] | None) -> dict[str, Any]:
    sent = gen.get("samples_sent") or []
    expected = sum(_expected_windows(s) for s in sent)
    received = sum(monitor.received.values())
    stats = _stats_summary(monitor.stats, args.warmup, args.duration)
    garbage = gen.get("garbage", {})
    codes = dict(_garbage_kinds())
    rejected_expected = sum(n for k, n in garbage.items() if codes.get(k) is not None)
    cpu_pct = None
    if cpu_start and cpu_end and cpu_start[1] is not None and cpu_end[1] is not None \
            and cpu_end[0] > cpu_start[0]:
        cpu_pct = round(100 * (cpu_end[1] - cpu_start[1]) / (cpu_end[0] - cpu_start[0]), 1)
    windows_engine = stats.get("windows_final")
    return {
        "command": " ".join(["scripts/soak.py", *sys.argv[1:]]),
        "machine": {"nproc": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(),
                    "load1_median_during_run": _median(load), "load1_max_during_run": max(load or [0])},
        "checkout": _git(),
        "config": {"streams": args.streams, "duration_s": args.duration, "warmup_s": args.warmup,
                   "garbage_per_s": args.garbage_per_s, "rss_interval_s": args.rss_interval,
                   "data": str(data), "serve": " ".join(cmd[1:])},
        "interrupted": interrupted or bool(gen.get("interrupted")),
        "rss": _rss_summary(rss, args.warmup, args.duration),
        "engine_cpu_pct_after_warmup": cpu_pct,
        "stats": stats,
        "windows": {
            "expected_from_samples_sent": expected,
            "classified_by_engine": windows_engine,
            "received_by_monitor": received,
            "lost": expected - windows_engine if windows_engine is not None and sent else None,
            "gaps_seen": monitor.gaps, "repeats_seen": monitor.repeats,
            "streams_with_predictions": len(monitor.received),
            "junk_predictions": monitor.junk_predictions,
        },
        "errors_by_code": dict(monitor.errors),
        "errors_on_real_streams": dict(monitor.errors_real),
        "garbage_sent": garbage,
        "garbage_rejections_expected": rejected_expected,
        "generator": {k: gen.get(k) for k in ("rounds", "messages", "lateness_ms", "interrupted")}
                     | {"samples_sent": sum(sent)},
        "engine": {"exit_code": engine_rc, "killed": killed, "stderr_last_line": _last_line(engine_log),
                   "stderr_log": str(engine_log)},
        "rss_samples": rss,
        "stats_reports": [{k: r.get(k) for k in ("t_rel", "streams", "windows", "windows_per_s",
                                                  "latency_ms", "rejected", "shed", "internal_errors",
                                                  "queued_samples")} for r in monitor.stats],
    }


def log(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(f"[soak {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _summary(r: dict[str, Any]) -> str:
    m, rs, st, w, e, g = r["machine"], r["rss"], r["stats"], r["windows"], r["engine"], r["generator"]
    c = r["config"]
    lines = [
        f"soak: {c['streams']} real-time streams + {c['garbage_per_s']:g} garbage msg/s, "
        f"{c['duration_s']:g} s ({c['warmup_s']:g} s warm-up){'  [INTERRUPTED]' if r['interrupted'] else ''}",
        f"machine: {m['nproc']} cores, {m['cpu']}; load average (1 min) median "
        f"{m['load1_median_during_run']}, max {m['load1_max_during_run']}",
    ]
    if "error" in rs:
        lines.append(f"RSS: {rs['error']}")
    else:
        lines += [
            f"RSS after warm-up (t={rs['after_warmup_t_s']} s): {rs['after_warmup_mb']} MB; at end "
            f"(t={rs['end_t_s']} s): {rs['end_mb']} MB; growth {rs['growth_pct']:+.2f} %",
            f"RSS max after warm-up: {rs['max_after_warmup_mb']} MB at t={rs['max_t_s']} s "
            f"({rs['max_growth_pct']:+.2f} %); median last {rs['median_window_s']:g} s "
            f"{rs['median_last_mb']} MB vs first {rs['median_first_mb']} MB "
            f"({rs['median_growth_pct']:+.2f} %)",
            f"criterion (end <= +{rs['criterion_pct']:g} % of after-warm-up): "
            f"criterion met: {'yes' if rs['criterion_met'] else 'no'}",
        ]
    lines += [
        f"$stats after warm-up ({st['reports_after_warmup']} reports): streams {st['streams_median']}, "
        f"windows/s {st['windows_per_s_median']} (overall {st.get('windows_per_s_overall')}), "
        f"latency p50 {st['latency_p50_ms_median']} ms, "
        f"p99 {st['latency_p99_ms_median']} ms (medians; worst p99 {st['latency_p99_ms_worst']}, "
        f"worst max {st['latency_max_ms_worst']}); longest gap between $stats "
        f"{st.get('stats_interval_s_max')} s",
        f"engine counters at stop: windows {st.get('windows_final')}, rejected {st.get('rejected_final')} "
        f"(garbage that should be: {r['garbage_rejections_expected']}), shed {st.get('shed_final')}, "
        f"internal errors {st.get('internal_errors_final')}; engine CPU after warm-up "
        f"{r['engine_cpu_pct_after_warmup']} %",
        f"windows: expected {w['expected_from_samples_sent']}, classified {w['classified_by_engine']}, "
        f"received here {w['received_by_monitor']}, lost {w['lost']}; gaps {w['gaps_seen']}, "
        f"repeats {w['repeats_seen']}",
        f"$error by code: {r['errors_by_code']}; on real streams: {r['errors_on_real_streams'] or 'none'}",
        f"generator: {g['messages']} chunks, {g['samples_sent']} samples; send lateness "
        f"{g['lateness_ms']}",
        f"engine exit code {e['exit_code']}{' (killed)' if e['killed'] else ''}; last stderr line: "
        f"{e['stderr_last_line']}",
    ]
    return "\n".join(lines)


def main() -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[4:]))
    parser.add_argument("--streams", type=int, default=500, help="real-time streams (default 500)")
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of streaming, warm-up included (default 600)")
    parser.add_argument("--warmup", type=float, default=60.0, help="warm-up seconds (default 60)")
    parser.add_argument("--garbage-per-s", type=float, default=3.0,
                        help="malformed/hostile messages per second (default 3; 0: none)")
    parser.add_argument("--rss-interval", type=float, default=2.0,
                        help="seconds between RSS samples (default 2)")
    parser.add_argument("--drain", type=float, default=3.0,
                        help="seconds the engine gets after the last chunk before SIGTERM (default 3; "
                             "0: SIGTERM at once, which exercises the stop's flush)")
    parser.add_argument("--data", default=None, help="HAPT dataset folder")
    parser.add_argument("--seed", type=int, default=0, help="offsets into the recordings (default 0)")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra argument for `harstream serve` (repeat; e.g. --serve-arg=--model=M)")
    parser.add_argument("--startup-timeout", type=float, default=300.0,
                        help="seconds to wait for the engine's first $stats (default 300)")
    parser.add_argument("--log-every", type=float, default=30.0,
                        help="seconds between progress lines on stderr (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (no series)")
    parser.add_argument("--out", type=Path, default=None, help="write the full report (with series) here")
    parser.add_argument("--plot", type=Path, default=None, help="PNG: RSS and latency over time")
    args = parser.parse_args()
    if args.streams < 1 or args.duration <= 0 or not 0 <= args.warmup < args.duration:
        parser.error("expected --streams >= 1 and 0 <= --warmup < --duration")
    if args.garbage_per_s < 0 or args.rss_interval <= 0:
        parser.error("expected --garbage-per-s >= 0 and --rss-interval > 0")
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # also when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, interrupt)  # a plain `kill` stops as cleanly as Ctrl-C
    try:
        report = run(args)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        rs = report["rss"]
        growth = f", RSS {rs['growth_pct']:+.1f} % after warm-up" if "growth_pct" in rs else ""
        _plot(args.plot, report["rss_samples"], report["stats_reports"], args.warmup,
              f"soak: {args.streams} streams at 50 Hz + {args.garbage_per_s:g} garbage/s{growth} "
              "(grey: warm-up)")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k not in ("rss_samples", "stats_reports")},
                         indent=2))
    else:
        print(_summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
