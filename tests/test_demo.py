"""`harstream demo` starts engine and replay as children; Ctrl-C leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harstream.protocol import Prediction
from harstream.serve.client import Subscriber


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
        [sys.executable, "-m", "harstream", "demo", "--data", str(hapt_dir),
         "--subjects", "2,4", "--ingest", ingest, "--publish", publish, "--logs", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "demo.err").open("wb"),
        # A shell starting this suite in the background (`pytest &`) hands its children SIGINT
        # ignored, and Python then never turns Ctrl-C into KeyboardInterrupt: give the demo the
        # default disposition a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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
        try:
            code = demo.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a hang: have the demo print its threads' stacks
            demo.send_signal(signal.SIGUSR1)
            time.sleep(2)
            raise AssertionError("demo still running 60 s after Ctrl-C; its stacks:\n"
                                 + (tmp_path / "demo.err").read_text(errors="replace")[-6000:]) from None
        assert code == 0
        deadline = time.monotonic() + 10  # a child killed after its grace period may still be exiting
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if demo.poll() is None:
            os.kill(demo.pid, signal.SIGKILL)


# A stand-in for the engine: ignores SIGTERM (so stop_children must escalate), starts a
# grandchild in its process group that ignores SIGTERM too, then says so in a file.
_STUBBORN_CHILD = r"""
import os, pathlib, signal, subprocess, sys, time
folder = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (folder / f"term-{os.getpid()}").touch())
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
(folder / f"ready-{os.getpid()}").write_text(str(grandchild.pid))
while True:
    time.sleep(0.1)
"""

# The demo's side: two children in their own sessions (as demo._spawn makes them), then
# stop_children with a grace period far longer than the test waits.
_DEMO_SIDE = r"""
import pathlib, subprocess, sys, time
from harstream.tools.demo import stop_children
folder, child_code = pathlib.Path(sys.argv[1]), sys.argv[2]
children = [subprocess.Popen([sys.executable, "-c", child_code, str(folder)],
                             start_new_session=True) for _ in range(2)]
while len(list(folder.glob("ready-*"))) < 2:
    time.sleep(0.02)
print("stopping", flush=True)
stop_children(children, grace_s=600)
print("stopped", flush=True)
"""


def test_ctrl_c_during_shutdown_still_stops_every_child(tmp_path: Path) -> None:
    demo = subprocess.Popen([sys.executable, "-c", _DEMO_SIDE, str(tmp_path), _STUBBORN_CHILD],
                            stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert demo.stdout is not None
        assert demo.stdout.readline().strip() == "stopping"
        ready = sorted(tmp_path.glob("ready-*"))
        pids = [int(p.name.split("-")[1]) for p in ready] + [int(p.read_text()) for p in ready]
        assert any(_alive(pid) for pid in pids)  # a tree to stop (the precondition, not the point)
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("term-*"))) < 2:  # SIGTERM sent: stop_children is running
            assert time.monotonic() < deadline, "stop_children sent no SIGTERM"
            time.sleep(0.02)
        for _ in range(3):  # Ctrl-C, Ctrl-C again, and once more, while stop_children runs
            demo.send_signal(signal.SIGINT)  # back to back: with pauses, a late one would land
            # after stop_children returned, when the demo is exiting anyway
        out, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0
        assert out.strip() == "stopped"
        deadline = time.monotonic() + 10  # grandchildren are reaped by init after SIGKILL
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in pids if _alive(pid)] == []
    finally:
        if demo.poll() is None:
            demo.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
