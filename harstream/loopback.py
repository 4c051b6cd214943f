"""Free loopback addresses for the processes a benchmark starts on this machine.

Stdlib only, so that every program that starts a ``serve`` or ``web`` child
(``bench --streams``, ``bench --web``) picks its ports one way. A port is
free when asked for; another process may take it before the child binds it.
Ports come from below the kernel's ephemeral range: the clients that connect
while a child is still starting (ZeroMQ retries every 100 ms, a new local
port each time) draw their local ports from that range, and once took the
port a router was about to bind.

>>> free_endpoint().startswith("tcp://127.0.0.1:")
True
>>> 0 < free_port() < 65536
True
"""

from __future__ import annotations

import random
import socket

_BELOW_EPHEMERAL = 12_000
"""Ports drawn from this many below the start of the ephemeral range."""
_given: set[int] = set()
"""Ports this process handed out already (not handed out twice)."""


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A loopback TCP port that was free a moment ago, below the ephemeral range when it can be."""
    start = _ephemeral_start()
    low = max(1024, start - _BELOW_EPHEMERAL)
    for port in random.sample(range(low, start), min(64, start - low)):
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket() as s:  # all taken: any free port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_endpoint() -> str:
    """A ZeroMQ endpoint on a loopback port that was free a moment ago."""
    return f"tcp://127.0.0.1:{free_port()}"
