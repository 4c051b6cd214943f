"""``harstream demo``: the engine, a real-time replay of the test subjects, and the dashboard.

The engine and the replay run as child processes in their own process
group; the dashboard runs in this process. However the demo ends — Ctrl-C,
``q``, an error — every child is terminated (SIGTERM, then SIGKILL after a
grace period), so nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from .download import download
from .errors import DatasetError, DownloadError
from .hapt import raw_dir
from .paths import resolve_data_dir


def ensure_dataset(data: Path | None, console: Console) -> Path:
    """The dataset folder, downloading it into the cache when it is missing."""
    folder = resolve_data_dir(data)
    try:
        raw_dir(folder)
        return folder
    except DatasetError:
        if data is not None:
            raise
    console.print(f"no dataset at {folder}: downloading the public HAPT archive...")
    try:
        return download(folder, console=console)
    except DownloadError as exc:
        raise DownloadError(
            f"{exc}\nThe demo needs the HAPT recordings; pass --data DIR or set $HARSTREAM_DATA."
        ) from None


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "harstream.cli", *args],
        stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: Ctrl-C in the terminal goes to us only
    )


def stop_children(children: list[subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    """SIGTERM every child's process group, then SIGKILL whatever is left after ``grace_s``."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def run_demo(
    data: Path | None,
    ingest: str,
    publish: str,
    subjects: str,
    speed: float,
    log_dir: Path,
    console: Console,
    model: Path | None = None,
) -> int:
    """Start engine and replay, run the dashboard until Ctrl-C or q, then stop both."""
    from .dashboard import run_dashboard

    folder = ensure_dataset(data, console)
    log_dir.mkdir(parents=True, exist_ok=True)
    serve_args = ["serve", "--ingest", ingest, "--publish", publish]
    if model is not None:
        serve_args += ["--model", str(model)]
    children = [_spawn(serve_args, log_dir / "engine.log")]
    try:
        children.append(_spawn(
            ["replay", "--data", str(folder), "--subjects", subjects, "--speed", str(speed),
             "--endpoint", ingest, "--no-progress"],
            log_dir / "replay.log",
        ))
        console.print(f"engine and replay started (logs in {log_dir}); opening the dashboard")
        return run_dashboard(publish, console=console)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_children(children)
