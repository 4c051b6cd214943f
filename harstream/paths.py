"""Where the dataset lives: ``--data``, else ``$HARSTREAM_DATA``, else the user cache.

>>> from pathlib import Path
>>> resolve_data_dir(Path("/tmp/hapt"))
PosixPath('/tmp/hapt')
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "HARSTREAM_DATA"
MOTIONSENSE_ENV_VAR = "HARSTREAM_MOTIONSENSE"


def cache_dir() -> Path:
    """The user cache folder of harstream (``$XDG_CACHE_HOME/harstream``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harstream"


def default_data_dir() -> Path:
    """Where ``harstream data download`` puts the HAPT dataset."""
    return cache_dir() / "hapt"


def resolve_data_dir(data: Path | str | None = None) -> Path:
    """The dataset folder to use: the argument, else ``$HARSTREAM_DATA``, else the cache."""
    if data is not None:
        return Path(data)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return default_data_dir()


def resolve_motionsense_dir() -> Path:
    """The MotionSense folder: ``$HARSTREAM_MOTIONSENSE``, else ``motionsense/`` beside the HAPT
    folder (:func:`resolve_data_dir`) when it exists, else the cache (``data download --dataset
    motionsense``)."""
    env = os.environ.get(MOTIONSENSE_ENV_VAR)
    if env:
        return Path(env)
    beside = resolve_data_dir().parent / "motionsense"
    if beside.is_dir():
        return beside
    return cache_dir() / "motionsense"
