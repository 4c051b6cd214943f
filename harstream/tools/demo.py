"""``harstream demo``: the engine, a real-time replay of the test subjects, and the dashboard.

The engine and the replay run as child processes in their own process
groups; the dashboard runs in this process. However the demo ends — Ctrl-C,
``q``, an error — every child is terminated (SIGTERM, then SIGKILL after a
grace period), so nothing is left running: Ctrl-C pressed again while the
children stop does not interrupt the shutdown, it cuts the grace period short.

With keys (``--server-key``, ``--allow-producers``, ``--allow-subscribers``
for the engine, ``--key`` for the replay and the dashboard) the engine
runs with CurveZMQ access control; see ``docs/security.md``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from harstream.data.download import download
from harstream.data.hapt import raw_dir
from harstream.errors import DatasetError, DownloadError, HarstreamError, SecurityError
from harstream.paths import resolve_data_dir
from harstream.serve.security import (
    ClientSecurity,
    ServerSecurity,
    client_key_argv,
    public_key_file_of,
    server_key_argv,
)

if TYPE_CHECKING:
    from rich.console import Console


class DemoSecurity(NamedTuple):
    """Keys of a demo with access control: the engine's, and the replay's and dashboard's."""

    server: ServerSecurity
    client: ClientSecurity


def demo_security(server: ServerSecurity, key: Path) -> DemoSecurity:
    """The demo's keys: the engine's ``server``, and ``key`` (a secret key file) for the replay and the
    dashboard, which both allow-lists must hold; key files are checked now (:class:`SecurityError`)."""
    client = ClientSecurity(key, public_key_file_of(server.secret_key_file))
    public, _, _ = client.load()
    _, _, producers, subscribers = server.load()
    for flag, allowed in (("--allow-producers", producers), ("--allow-subscribers", subscribers)):
        if public not in allowed:
            raise SecurityError(f"--key {key}: its public key is not in {flag}; copy "
                                f"{public_key_file_of(key)} into that folder")
    return DemoSecurity(server, client)


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
    with log.open("wb") as handle:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "harstream", *args],
            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C in the terminal goes to us only
        )


class _DeferredInterrupts:
    """While active, SIGINT (Ctrl-C) is counted in ``count`` instead of raising KeyboardInterrupt.

    Only the main thread can set signal handlers; elsewhere this does nothing.
    The previous handler is restored on exit.
    """

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1

    def __enter__(self) -> _DeferredInterrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGINT, previous)
            self._installed = False


def _running(child: subprocess.Popen[bytes]) -> bool:
    """True while ``child`` runs; an exited child stays unreaped (its process group id stays ours)."""
    if child.returncode is not None:
        return False
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    except ChildProcessError:  # reaped elsewhere
        return False


def _signal_group(child: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if child.returncode is None:  # not reaped: the group id cannot belong to anyone else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)


def stop_children(children: list[subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    """Stop every child and everything in its process group, surely.

    SIGTERM each child's group, wait up to ``grace_s`` for the children to
    exit, then SIGKILL each group (a child that did not exit in time, and
    whatever it left behind) and reap the children. Ctrl-C while this runs
    does not interrupt it: it ends the grace period at once.
    """
    with _DeferredInterrupts() as interrupts:
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while (
            any(_running(child) for child in children)
            and not interrupts.count
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        for child in children:
            _signal_group(child, signal.SIGKILL)
            child.wait()


def _stop_for_sure(children: list[subprocess.Popen[bytes]]) -> None:
    """:func:`stop_children`, started again at once if a Ctrl-C lands before it defers them."""
    grace_s = 5.0
    while True:
        try:
            stop_children(children, grace_s)
            return
        except KeyboardInterrupt:
            grace_s = 0.0  # Ctrl-C during shutdown: no more patience


def _serve_argv(
    ingest: str, publish: str, model: Path | None, security: DemoSecurity | None
) -> list[str]:
    argv = ["serve", "--ingest", ingest, "--publish", publish]
    if model is not None:
        argv += ["--model", str(model)]
    if security is not None:
        argv += server_key_argv(security.server)
    return argv


def _replay_argv(
    folder: Path, subjects: str, speed: float, ingest: str, security: DemoSecurity | None
) -> list[str]:
    argv = ["replay", "--data", str(folder), "--subjects", subjects, "--speed", str(speed),
            "--endpoint", ingest, "--no-progress"]
    if security is not None:
        argv += client_key_argv(security.client)
    return argv


def _web_argv(listen: str, ingest: str, publish: str, security: DemoSecurity | None) -> list[str]:
    argv = ["web", "--listen", listen, "--ingest", ingest, "--publish", publish]
    if security is not None:
        argv += ["--client-key", str(security.client.key_file),
                 "--server-key", str(security.client.server_key_file)]
    return argv


def _show_web_address(child: subprocess.Popen[bytes], log: Path, console: Console,
                      wait_s: float = 60.0) -> None:
    """Print what ``harstream web`` printed (its URL and QR code) once it has, and wait for Enter."""
    deadline = time.monotonic() + wait_s
    while "token=" not in (text := log.read_text(errors="replace")):
        if child.poll() is not None or time.monotonic() > deadline:
            raise HarstreamError(f"harstream web did not start; its log {log}:\n{text[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.5)  # the QR code follows the URL
    console.print(log.read_text(errors="replace"), highlight=False, markup=False, soft_wrap=True)
    if sys.stdin.isatty():
        console.input("scan the code with the phone, tap Start, then press Enter for the dashboard ")


def run_demo(
    data: Path | None,
    ingest: str,
    publish: str,
    subjects: str,
    speed: float,
    log_dir: Path,
    console: Console,
    model: Path | None = None,
    security: DemoSecurity | None = None,
    web: str | None = None,
) -> int:
    """Start engine and replay, run the dashboard until Ctrl-C or q, then stop both.

    ``security`` (:func:`demo_security`) runs the engine with access
    control, and the replay and the dashboard with the demo's key. ``web``
    (``HOST:PORT``): a ``harstream web`` gateway for phones instead of the
    replay; its URL and QR code are shown before the dashboard.
    """
    from harstream.tools.dashboard.app import run_dashboard

    folder = ensure_dataset(data, console) if web is None else None
    log_dir.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen[bytes]] = []
    try:
        with _DeferredInterrupts() as interrupts:  # no child may start unrecorded
            children.append(_spawn(_serve_argv(ingest, publish, model, security),
                                   log_dir / "engine.log"))
            if folder is not None:
                children.append(_spawn(_replay_argv(folder, subjects, speed, ingest, security),
                                       log_dir / "replay.log"))
            else:
                children.append(_spawn(_web_argv(web or "", ingest, publish, security), log_dir / "web.log"))
        if interrupts.count:
            return 0
        if folder is None:
            _show_web_address(children[-1], log_dir / "web.log", console)
        console.print(f"engine and {'replay' if folder else 'gateway'} started (logs in {log_dir}); "
                      "opening the dashboard")
        return run_dashboard(publish, console=console,
                             security=security.client if security is not None else None)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_for_sure(children)
