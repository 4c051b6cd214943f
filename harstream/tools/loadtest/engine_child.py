"""The engine under load: ``python -m harstream serve`` as a child process on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harstream.loopback import free_endpoint


def _die_with_parent() -> None:
    """In the engine child before exec (Linux): SIGTERM when this process dies, however it dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _cli_module(checkout: Path | None) -> str:
    """The module that runs the command line: ``harstream``, or in a checkout from before
    ``python -m harstream`` existed, ``harstream.cli``."""
    if checkout is not None and not (checkout / "harstream" / "__main__.py").exists():
        return "harstream.cli"
    return "harstream"


class EngineProcess:
    """``harstream serve`` as a child process on free loopback ports; stderr goes to a log file.

    ``verb``: another verb that binds ``--ingest`` and ``--publish`` (``router``, for ``bench --cluster``).
    """

    def __init__(self, serve_args: Sequence[str] = (), checkout: Path | None = None, verb: str = "serve") -> None:
        self.ingest, self.publish = free_endpoint(), free_endpoint()
        self.log_path = Path(tempfile.mkdtemp(prefix="harstream-load-")) / f"{verb}.stderr"
        env = {**os.environ, "COLUMNS": "1000"}  # one log line per message
        if checkout is not None:  # another version's code, found first on sys.path (A/B of two commits)
            env["PYTHONPATH"] = str(checkout)
        self.command = [sys.executable, "-m", _cli_module(checkout), verb, "--ingest", self.ingest,
                        "--publish", self.publish, *serve_args]
        with open(self.log_path, "wb") as err:
            self.process = subprocess.Popen(
                self.command, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                env=env, cwd=checkout, preexec_fn=_die_with_parent,
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

    def stop(self, timeout_s: float = 30.0, signal_first: bool = True) -> int | None:
        """SIGTERM (unless ``signal_first`` is False: it was sent already), then SIGKILL after ``timeout_s``;
        the exit code. A second SIGTERM must not follow the first: one that lands while Python shuts down
        (its handlers reset to the default) kills the engine with -15."""
        if signal_first and self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        return self.process.returncode
