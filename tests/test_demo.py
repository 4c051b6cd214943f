"""`harstream demo` starts engine and replay as children; Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harstream.client import Subscriber
from harstream.protocol import Prediction


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_every_child(
    hapt_dir: Path, tmp_path: Path, free_endpoint: Callable[[], str]
) -> None:
    ingest, publish = free_endpoint(), free_endpoint()
    demo = subprocess.Popen(
        [sys.executable, "-m", "harstream.cli", "demo", "--data", str(hapt_dir),
         "--subjects", "2,4", "--ingest", ingest, "--publish", publish, "--logs", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with Subscriber(publish) as sub:  # live predictions prove engine and replay both run
            deadline = time.monotonic() + 180
            while not isinstance(sub.receive(timeout_s=1.0), Prediction):
                assert demo.poll() is None, "demo exited early"
                assert time.monotonic() < deadline, "no prediction from the demo"
        children = _descendants(demo.pid)
        assert len(children) >= 2  # engine and replay
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        time.sleep(0.5)
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if demo.poll() is None:
            os.kill(demo.pid, signal.SIGKILL)
