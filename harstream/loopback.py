"""Free loopback addresses for the processes a benchmark starts on this machine.

Stdlib only, so that every program that starts a ``serve`` or ``web`` child
(``bench --streams``, ``bench --web``) picks its ports one way. A port is
free when asked for; another process may take it before the child binds it.

>>> free_endpoint().startswith("tcp://127.0.0.1:")
True
>>> 0 < free_port() < 65536
True
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_endpoint() -> str:
    """A ZeroMQ endpoint on a loopback port that was free a moment ago."""
    return f"tcp://127.0.0.1:{free_port()}"
