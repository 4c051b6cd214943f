"""Key presses for the dashboard: a terminal in cbreak mode, restored on exit.

Off a terminal (a pipe, a test, Windows) the reader is inactive and changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from types import TracebackType
from typing import Any, TextIO

if sys.platform != "win32":
    import termios
    import tty


class KeyReader:
    """Reads keys without waiting for Enter; Ctrl-C still raises KeyboardInterrupt."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    @property
    def active(self) -> bool:
        """Whether keys are being read (the stream is a terminal in cbreak mode)."""
        return self._saved is not None

    def start(self) -> None:
        """Switch the terminal to cbreak mode (idempotent; no-op off a terminal)."""
        if self._saved is not None or sys.platform == "win32":
            return
        stream = self.stream if self.stream is not None else sys.stdin
        try:
            fd = stream.fileno()
            if not os.isatty(fd):
                return
            saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        except (OSError, ValueError, termios.error):
            return
        self._fd, self._saved = fd, saved

    def stop(self) -> None:
        """Restore the terminal settings (idempotent)."""
        if self._saved is None or self._fd is None or sys.platform == "win32":
            return
        with contextlib.suppress(OSError, termios.error):
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        self._fd = self._saved = None

    def read(self, timeout_s: float) -> str:
        """Keys pressed, waiting up to ``timeout_s`` for the first; "" if none or inactive."""
        fd = self._fd
        if fd is None:
            return ""
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
        if not ready:
            return ""
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the terminal went away: stop reading rather than spin
            self.stop()
        return data.decode("utf-8", "replace")

    def __enter__(self) -> KeyReader:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
