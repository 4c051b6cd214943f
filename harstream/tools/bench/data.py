"""The windows the bench runs the model on: real test-subject windows on the engine's grid, else synthetic."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harstream import WINDOW
from harstream.data.splits import TEST_SUBJECTS
from harstream.model.classifier import Classifier
from harstream.signal import chain


def find_data_dir(data: Path | str | None = None) -> Path | None:
    """The HAPT folder: ``data``, else ``$HARSTREAM_DATA``, else ``../shared/data/hapt`` beside
    the checkout, else the user cache; None when none of them holds ``RawData/``."""
    from harstream.paths import ENV_VAR, default_data_dir

    beside = Path(__file__).resolve().parents[4] / "shared" / "data" / "hapt"
    candidates = [Path(data)] if data is not None else [
        *([Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []), beside, default_data_dir()]
    for path in candidates:
        if (path / "RawData").is_dir() or (path.name == "RawData" and path.is_dir()):
            return path
    return None


def real_windows(data_dir: Path, recordings: int = 6, per_recording: int = 64,
                 subjects: Sequence[int] = TEST_SUBJECTS) -> npt.NDArray[np.float32]:
    """Chain-output windows (n, 128, 9) of test-subject recordings, on the engine's grid.

    ``recordings`` recordings spread over the subjects (never trained on),
    ``per_recording`` windows spread over each, filtered by
    :func:`chain.process_recording` exactly as the engine filters a stream.
    """
    from harstream.data.hapt import list_experiments, read_recording
    from harstream.signal.windows import window_ends

    pairs = [p for p in list_experiments(data_dir) if p[1] in set(subjects)]
    chosen = [pairs[i] for i in np.linspace(0, len(pairs) - 1, min(recordings, len(pairs))).astype(int)]
    out = []
    for experiment, user in dict.fromkeys(chosen):
        channels = chain.process_recording(read_recording(data_dir, experiment, user).samples, chunk=25)
        ends = window_ends(0, len(channels))
        pick = ends[np.linspace(0, len(ends) - 1, min(per_recording, len(ends))).astype(int)]
        out.append(channels[pick[:, None] - WINDOW + 1 + np.arange(WINDOW)[None, :]])
    return np.concatenate(out).astype(np.float32)


def bench_windows(classifier: Classifier, data_dir: Path | None,
                  quick: bool) -> tuple[npt.NDArray[np.float32], str]:
    """The windows (chain output) the runtimes are timed and compared on, and where they come from.

    Real test-subject windows when ``data_dir`` is given; else the model's
    verification random walks brought back to physical units.
    """
    if data_dir is not None:
        windows = real_windows(data_dir, recordings=3 if quick else 6, per_recording=32 if quick else 64)
        return windows, f"{len(windows)} windows of test-subject recordings (chain.process_recording, engine grid)"
    from harstream.model.onnx_runtime import verification_windows

    meta = classifier.artifact.meta
    standard = verification_windows(WINDOW, len(meta.channels), 256)
    windows = (standard * np.asarray(meta.norm_std, np.float32) + np.asarray(meta.norm_mean, np.float32))
    return windows, "synthetic random walks (no HAPT data found)"

