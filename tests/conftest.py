"""Shared fixtures: where the real HAPT and MotionSense data live.

``$HARSTREAM_DATA`` if set, else ``../shared/data/hapt`` from the repository
root. Missing data fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from harstream.protocol import StatsEvent

REPO_ROOT = Path(__file__).resolve().parents[1]

# No per-example deadline: CI shares two cores, and a 200 ms stall is not a bug.
settings.register_profile("harstream", deadline=None)
settings.load_profile("harstream")


@pytest.fixture(scope="session")
def hapt_dir() -> Path:
    """The real HAPT dataset folder (the one holding ``RawData/``)."""
    env = os.environ.get("HARSTREAM_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "hapt"
    if not (path / "RawData").is_dir():
        source = "$HARSTREAM_DATA" if env else "the default ../shared/data/hapt"
        pytest.fail(
            f"HAPT data not found: {path} (from {source}) has no RawData/ folder; "
            f"set HARSTREAM_DATA to a HAPT dataset folder",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def motionsense_dir(hapt_dir: Path) -> Path:
    """The project's MotionSense copy (holding ``A_DeviceMotion_data/``).

    ``$HARSTREAM_MOTIONSENSE`` if set, else ``motionsense/`` beside the HAPT folder.
    """
    env = os.environ.get("HARSTREAM_MOTIONSENSE")
    path = Path(env) if env else hapt_dir.parent / "motionsense"
    if not (path / "A_DeviceMotion_data").is_dir():
        source = "$HARSTREAM_MOTIONSENSE" if env else "motionsense/ beside the HAPT folder"
        pytest.fail(
            f"MotionSense data not found: {path} (from {source}) has no A_DeviceMotion_data/ "
            f"folder; set HARSTREAM_MOTIONSENSE to the project's MotionSense folder",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def free_endpoint() -> Callable[[], str]:
    """Factory of loopback endpoints for engines started by a test (:func:`harstream.loopback.free_endpoint`)."""
    from harstream.loopback import free_endpoint

    return free_endpoint


@contextlib.contextmanager
def _serve_process(ingest: str, publish: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], StatsEvent]]:
    """A real ``harstream serve`` on ``ingest``/``publish`` (plus ``args``), yielded with its first
    ``$stats`` once it serves; SIGTERM (and a wait) when the block ends."""
    from harstream.protocol import StatsEvent
    from harstream.serve.client import Subscriber

    proc = subprocess.Popen(
        [sys.executable, "-m", "harstream", "serve", "--ingest", ingest, "--publish", publish, *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        with Subscriber(publish) as sub:
            deadline = time.monotonic() + 180
            while not isinstance(event := sub.receive(timeout_s=1.0), StatsEvent):
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "engine did not start"
        yield proc, event
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.fixture(scope="session")
def serve_process() -> Callable[..., Any]:
    """``with serve_process(ingest, publish, *args) as (proc, first_stats):`` a real ``harstream serve``."""
    return _serve_process


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def www(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL (download tests)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
