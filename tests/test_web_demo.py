"""`harstream demo --web`: engine + gateway + dashboard; the URL (with its token) shown, the page served,
and Ctrl-C stops every child."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the web extra is not installed: pip install -e '.[web]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_demo_web_shows_the_address_and_stops_cleanly(tmp_path: Path) -> None:
    port, ingest, publish = _free_port(), _free_port(), _free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "harstream", "demo", "--web", f"127.0.0.1:{port}", "--ingest",
         f"tcp://127.0.0.1:{ingest}", "--publish", f"tcp://127.0.0.1:{publish}", "--logs", str(tmp_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        while not any("token=" in line for line in lines):
            line = demo.stdout.readline()
            assert line, "demo exited before showing the URL:\n" + "".join(lines)
            lines.append(line)
        url = next(line.strip() for line in lines if "token=" in line)
        assert url.startswith(f"https://localhost:{port}/?token=")
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # the demo's self-signed cert
        with urllib.request.urlopen(url, context=insecure, timeout=30) as reply:
            assert b"DeviceMotionEvent" in reply.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url.split("?")[0], context=insecure, timeout=30)
        assert refused.value.code == 403
        children = _children(demo.pid)
        assert len(children) >= 2  # engine and gateway
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    finally:
        if demo.poll() is None:
            os.kill(demo.pid, signal.SIGKILL)
