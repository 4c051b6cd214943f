"""Run a test, or any command, in a network namespace whose only interface is loopback.

Ray's processes (and several engines behind a router) talk over the machine's own
address unless that address is 127.0.0.1; in a fresh network namespace with only
``lo`` up, every connection stays on loopback (issue 22). Needs root (CI and the
development machines run as root) and ``unshare`` (util-linux); ``lo`` is brought up
by this module itself (an ioctl), so no ``ip`` command is needed.

Two ways to use it:

- ``@loopback_only`` on a test function. Outside a namespace, the test's body is not
  run here: the test runs itself again (``pytest NODEID``) in a fresh loopback-only
  namespace and passes or fails with that run, showing its output. Inside, it is the
  plain test, fixtures and all (the choice is made when the module is imported, so the
  outer run sets up none of its fixtures).
- ``loopback_command(argv)``: the argv that runs ``argv`` in a fresh namespace, for
  ``subprocess`` (a server, a benchmark).

>>> loopback_command(["echo", "hi"])[:2]
['unshare', '--net']
>>> only_loopback() in (True, False)
True
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

INSIDE = "HARSTREAM_TEST_NETNS"
"""Set to 1 in the environment of a test run again inside a namespace by :func:`loopback_only`."""

TIMEOUT_S = 1800.0
"""Longest a test run again inside a namespace may take (a cap, not a wait)."""

_REPO = Path(__file__).resolve().parents[1]
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sh22x"  # struct ifreq on Linux: the name, then ifr_flags in a 24-byte union

F = TypeVar("F", bound=Callable[..., Any])


def only_loopback() -> bool:
    """True when this process's network namespace has no interface but ``lo``.

    (``/sys/class/net`` would show the namespace sysfs was mounted in, not this one.)
    """
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def loopback_up() -> None:
    """Bring ``lo`` up in this process's network namespace (what ``ip link set lo up`` does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        name = b"lo"
        _, flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack(_IFREQ, name, 0)))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, name, flags | _IFF_UP))


def loopback_command(argv: Sequence[str]) -> list[str]:
    """The command that runs ``argv`` in a new network namespace with ``lo`` up and nothing else."""
    return ["unshare", "--net", "--", sys.executable, str(Path(__file__).resolve()), *argv]


def loopback_only(test: F) -> F:
    """Decorate a test so that its body runs in a fresh loopback-only network namespace (see above)."""
    if os.environ.get(INSIDE) == "1":
        return test

    @functools.wraps(test, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
    def again_inside() -> None:
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
        env = {**os.environ, INSIDE: "1"}
        argv = [sys.executable, "-m", "pytest", "-q", "-x", "-rP", "-p", "no:cacheprovider", node]
        try:
            done = subprocess.run(loopback_command(argv), cwd=_REPO, env=env, capture_output=True,
                                  text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{node} in a loopback-only namespace: still running after {TIMEOUT_S:g} s\n"
                        f"{_text(exc.stdout)}{_text(exc.stderr)}", pytrace=False)
        output = done.stdout + done.stderr
        if done.returncode != 0 or not re.search(r"^=* ?1 passed\b", done.stdout, re.MULTILINE):
            pytest.fail(f"{node} in a loopback-only namespace: exit {done.returncode}\n{output}", pytrace=False)
        sys.stdout.write(output)  # shown with -s or -rP, like the test's own output

    del again_inside.__wrapped__  # pytest would ask for the test's fixtures
    marks = getattr(test, "pytestmark", None)
    if marks is not None:
        again_inside.pytestmark = marks  # type: ignore[attr-defined]
    return again_inside  # type: ignore[return-value]


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _main(argv: list[str]) -> None:
    """Inside the new namespace: bring ``lo`` up, check it is alone, and become ``argv``."""
    loopback_up()
    if not only_loopback():
        raise SystemExit(f"netns: expected only 'lo' in the new namespace, found "
                         f"{[name for _, name in socket.if_nameindex()]}")
    if not argv:
        raise SystemExit("netns: expected a command to run, e.g. `python tests/netns.py pytest -q ...`")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
