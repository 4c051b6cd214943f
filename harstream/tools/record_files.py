"""The files ``harstream record`` appends to, at most ``max_open`` of them open at once.

Appending to a file that is not open opens it, closing the least recently
written one first, so any number of streams stays within the process's
limit on open files (``ulimit -n``), which the sockets share. Writes are
unbuffered, one per chunk: a closed file holds everything written to it,
and a failed write is cut back off, so a file never ends in half a row.

>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory(); folder = Path(tmp.name)
>>> files = OpenFiles(max_open=2)
>>> for name in "abca":
...     files.append(folder / f"{name}.csv", name.encode())
>>> len(files), (folder / "a.csv").read_text()
(2, 'aa')
>>> files.close_all(); tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import OrderedDict
from io import FileIO
from pathlib import Path

DEFAULT_MAX_OPEN = 256
"""Files open at once where the process's limit cannot be read."""


def default_max_open() -> int:
    """Half the process's soft limit on open files (the other half for sockets and the rest), 16 to 1024.

    >>> 16 <= default_max_open() <= 1024
    True
    """
    try:
        import resource
    except ImportError:  # not on Windows
        return DEFAULT_MAX_OPEN
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 2))


class OpenFiles:
    """Files appended to by path, at most ``max_open`` open at once (default :func:`default_max_open`)."""

    def __init__(self, max_open: int | None = None) -> None:
        self.max_open = default_max_open() if max_open is None else max_open
        if self.max_open < 1:
            raise ValueError(f"max_open: expected at least 1 file open at once, got {self.max_open}")
        self._handles: OrderedDict[Path, FileIO] = OrderedDict()

    def __len__(self) -> int:
        return len(self._handles)

    def create(self, path: Path) -> None:
        """Create ``path``, empty (``FileExistsError`` if it exists, in any letter case where the file system
        ignores case: a file is never overwritten)."""
        self._handles[path] = self._open(path, "x")

    def append(self, path: Path, data: bytes) -> None:
        """Append ``data`` to ``path``; on an ``OSError`` the file is cut back to its size before and the
        error raised."""
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = self._open(path, "a")
        self._handles.move_to_end(path)
        size = handle.seek(0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                written = handle.write(view)
                if not written:
                    raise OSError(errno.EIO, f"wrote nothing of {len(view)} bytes")
                view = view[written:]
        except OSError:
            self.close(path)
            with contextlib.suppress(OSError):
                os.truncate(path, size)
            raise

    def close(self, path: Path) -> None:
        """Close ``path`` if it is open."""
        handle = self._handles.pop(path, None)
        if handle is not None:
            handle.close()

    def close_all(self) -> None:
        """Close every file."""
        while self._handles:
            self._handles.popitem(last=False)[1].close()

    def _open(self, path: Path, mode: str) -> FileIO:
        while len(self._handles) >= self.max_open:
            self._handles.popitem(last=False)[1].close()
        try:
            return FileIO(path, mode)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE) or not self._handles:
                raise
        self.close_all()  # sockets hold the other descriptors: give ours back and try once more
        return FileIO(path, mode)

