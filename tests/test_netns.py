"""The loopback-only namespace helper (tests/netns.py) that the cluster tests run in."""

from __future__ import annotations

import socket
import subprocess

from netns import loopback_command, loopback_only, only_loopback


@loopback_only
def test_a_decorated_test_runs_with_loopback_alone() -> None:
    assert only_loopback()
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname(), timeout=5) as client:
        client.sendall(b"ok")
        peer, _ = server.accept()
        with peer:
            assert peer.recv(2) == b"ok"


def test_a_command_runs_with_loopback_alone() -> None:
    out = subprocess.run(loopback_command(["cat", "/proc/net/dev"]), capture_output=True, text=True,
                         check=True, timeout=60).stdout
    interfaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
    assert interfaces == ["lo"]
