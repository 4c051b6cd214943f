"""Shared fixtures: where the real HAPT and MotionSense data live.

``$HARSTREAM_DATA`` if set, else ``../shared/data/hapt`` from the repository
root. Missing data fails the tests that need it; it never skips them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def hapt_dir() -> Path:
    """The real HAPT dataset folder (the one holding ``RawData/``)."""
    env = os.environ.get("HARSTREAM_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "hapt"
    if not (path / "RawData").is_dir():
        source = "$HARSTREAM_DATA" if env else "the default ../shared/data/hapt"
        pytest.fail(
            f"HAPT data not found: {path} (from {source}) has no RawData/ folder; "
            f"set HARSTREAM_DATA to a HAPT dataset folder",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def motionsense_dir(hapt_dir: Path) -> Path:
    """The project's MotionSense copy (holding ``A_DeviceMotion_data/``).

    ``$HARSTREAM_MOTIONSENSE`` if set, else ``motionsense/`` beside the HAPT folder.
    """
    env = os.environ.get("HARSTREAM_MOTIONSENSE")
    path = Path(env) if env else hapt_dir.parent / "motionsense"
    if not (path / "A_DeviceMotion_data").is_dir():
        source = "$HARSTREAM_MOTIONSENSE" if env else "motionsense/ beside the HAPT folder"
        pytest.fail(
            f"MotionSense data not found: {path} (from {source}) has no A_DeviceMotion_data/ "
            f"folder; set HARSTREAM_MOTIONSENSE to the project's MotionSense folder",
            pytrace=False,
        )
    return path


def _free_endpoint() -> str:
    """A ``tcp://127.0.0.1:PORT`` endpoint whose port was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="session")
def free_endpoint() -> Callable[[], str]:
    """Factory of loopback endpoints for engines started by a test."""
    return _free_endpoint
