"""Deterministic training: the same command gives the same weights on any x86-64 machine with AVX2.

Two things made two runs of one recipe differ (measured: docs/model.md, "Deterministic training"):

* **the instruction set**: oneDNN, which TensorFlow's matrix products and
  convolutions use even with ``TF_ENABLE_ONEDNN_OPTS=0``, picks its kernels
  by the CPU (AVX-512 here, AVX2 elsewhere), and the kernels sum in different
  orders. :data:`ONEDNN_ISA` caps it at AVX2, which every machine of this kind has;
* **the thread count** and ops without a deterministic kernel: with
  TensorFlow's op determinism on, one thread and two give the same weights
  (measured), and an op with no deterministic kernel is an error instead of a
  silent difference.

The cap must be in the environment before TensorFlow loads: every training
module that imports Keras sets ``ONEDNN_MAX_CPU_ISA`` to :data:`ONEDNN_ISA`
first (unless the user set it). Op determinism is turned on by
:func:`configure` before the first op runs.

>>> ONEDNN_ISA
'AVX2'
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import numpy as np

ONEDNN_ISA = "AVX2"
"""The newest instruction set oneDNN may use while training (``ONEDNN_MAX_CPU_ISA``)."""


def configure(threads: int | None = None) -> dict[str, Any]:
    """Turn on op determinism (and with ``threads``, size TensorFlow's op pool), before the first op.

    ``threads`` shares the cores between processes (cross-validation's
    folds); the weights do not depend on it. Returns the settings in force,
    with ``deterministic`` False (and why) when this process cannot give the
    pinned result: ``ONEDNN_MAX_CPU_ISA`` is not :data:`ONEDNN_ISA` (set
    otherwise by the user, or TensorFlow loaded first). Training then still runs.
    """
    import tensorflow as tf

    problems: list[str] = []
    if os.environ.get("ONEDNN_MAX_CPU_ISA") != ONEDNN_ISA:
        problems.append(f"ONEDNN_MAX_CPU_ISA is {os.environ.get('ONEDNN_MAX_CPU_ISA')!r}, not {ONEDNN_ISA!r}")
    if threads is not None:
        with contextlib.suppress(RuntimeError):  # the pools exist already: a matter of speed only
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    return {
        "deterministic": not problems,
        **({"why_not": "; ".join(problems)} if problems else {}),
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "versions": versions(),
    }


def weight_values_sha256(model: Any) -> str:
    """SHA-256 of a Keras model's weight values, in order (not of a file, whose bytes differ between saves):
    two runs gave the same model when these match."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.asarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """The versions a training result depends on (another version may sum in another order)."""
    import keras
    import numpy as np
    import tensorflow as tf

    return {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__}
