"""Recorded datasets as live streams: replay them into the engine and score its output.

:mod:`replay.sources` reads HAPT recordings or UCI HAR windows (stitched back
into continuous runs) as :class:`~replay.sources.ReplayStream` objects;
:mod:`replay.player` sends them over ZeroMQ, paced like live devices;
:mod:`replay.scoring` matches the engine's predictions to the truth;
:mod:`replay.session` runs both at once; :mod:`replay.plot` draws the
timeline; :mod:`replay.cli` is the ``harstream replay`` verb.
"""

from __future__ import annotations
