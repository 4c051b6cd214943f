"""The classifier as ONNX, run by ONNX Runtime: the same answers, faster at small batches.

The ``.keras`` artifact stays the source of truth. :func:`to_onnx` converts
its model with tf2onnx (one conversion rule added: TensorFlow's ``Log1p``,
used by the window statistics, becomes ``Log(1 + x)``); :func:`load_session`
caches the result in the user cache under the weights' SHA-256, and every
load verifies the session against the Keras model on a fixed set of windows
(:func:`verification_windows`): probabilities within :data:`TOLERANCE`, or
the ONNX path is refused with :class:`~harstream.errors.ArtifactError`.

Measured on the shipped model (docs/benchmarks.md): ONNX Runtime on one
thread is several times faster than Keras at batch 1 and slower at batch
256, so :class:`~harstream.model.classifier.Classifier` routes each batch size to the
faster of the two, as measured at warm-up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harstream.errors import ArtifactError
from harstream.paths import cache_dir

if TYPE_CHECKING:
    import keras

    from harstream.model.artifact import Artifact

log = logging.getLogger("harstream.onnx")

TOLERANCE = 1e-4
"""Largest absolute difference in any class probability allowed between ONNX and Keras."""
OPSET = 17
"""ONNX opset of the conversion."""
CONVERTER_VERSION = "1"
"""Bumped when the conversion changes, so older cached files are not reused."""


def available() -> bool:
    """True when onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def to_onnx(model: keras.Model, window: int, channels: int) -> bytes:
    """The serialized ONNX model of a Keras classifier taking (n, window, channels) float32.

    The input is named ``windows``, the output is the class probabilities.
    """
    import tensorflow as tf
    import tf2onnx

    _register_log1p()
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines are for its developers
    spec = (tf.TensorSpec((None, window, channels), tf.float32, name="windows"),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    except Exception as exc:  # tf2onnx raises many kinds
        raise ArtifactError(f"cannot convert the model to ONNX: {type(exc).__name__}: {exc}") from None
    data: bytes = proto.SerializeToString()
    return data


_registered = False


def _register_log1p() -> None:
    """Teach tf2onnx ``Log1p`` (not in its rule set): ``Log(Add(x, 1))``."""
    global _registered
    if _registered:
        return
    import tf2onnx
    from tf2onnx.handler import tf_op

    @tf_op("Log1p")
    class _Log1p:
        @classmethod
        def version_1(cls, ctx: Any, node: Any, **kwargs: Any) -> None:
            one = ctx.make_const(tf2onnx.utils.make_name("one"), np.array(1, dtype=np.float32))
            ctx.insert_new_node_on_input(node, "Add", [node.input[0], one.output[0]])
            node.type = "Log"

    _registered = True


def verification_windows(window: int, channels: int, n: int = 64) -> npt.NDArray[np.float32]:
    """Fixed, plausible standardised inputs: smooth random walks at several scales.

    >>> verification_windows(128, 9).shape
    (64, 128, 9)
    """
    rng = np.random.default_rng(20261129)
    walk = np.cumsum(rng.standard_normal((n, window, channels)), axis=1) / np.sqrt(window)
    scale = np.geomspace(0.05, 5.0, n)[:, None, None]
    windows: npt.NDArray[np.float32] = (walk * scale).astype(np.float32)
    return windows


class OnnxSession:
    """An ONNX Runtime session of a verified conversion; ``run`` takes standardised windows."""

    def __init__(self, data: bytes, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities of standardised windows (n, window, channels)."""
        return np.asarray(self._session.run(None, {self._input: x})[0], dtype=np.float32)


def load_session(loaded: Artifact, cache: Path | None = None, threads: int = 1) -> OnnxSession:
    """The artifact's model as a verified ONNX Runtime session (converted once, then cached).

    Raises :class:`ArtifactError` when the conversion fails or its output
    differs from Keras by more than :data:`TOLERANCE` on
    :func:`verification_windows`.
    """
    meta = loaded.meta
    window, channels = meta.window, len(meta.channels)
    folder = cache or cache_dir() / "onnx"
    key = hashlib.sha256(f"{meta.weights_sha256}:{OPSET}:{CONVERTER_VERSION}".encode()).hexdigest()[:32]
    cached = folder / f"{key}.onnx"
    data = cached.read_bytes() if cached.is_file() else None
    if data is None:
        data = to_onnx(loaded.model, window, channels)
        _write_atomically(cached, data)
        log.info("converted %s to ONNX, cached at %s", loaded.path.name, cached)
    try:
        session = OnnxSession(data, threads)
    except Exception as exc:
        cached.unlink(missing_ok=True)
        raise ArtifactError(f"ONNX Runtime cannot load the conversion of {loaded.path.name} "
                            f"({cached}): {type(exc).__name__}: {exc}") from None
    x = verification_windows(window, channels)
    expected = np.asarray(loaded.model.predict_on_batch(x))
    diff = float(np.abs(session.run(x) - expected).max())
    if not diff <= TOLERANCE:
        cached.unlink(missing_ok=True)
        raise ArtifactError(f"the ONNX conversion of {loaded.path.name} differs from Keras by {diff:.2e} "
                            f"(at most {TOLERANCE:g} allowed); serving with Keras")
    return session


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs the conversion next time
        log.warning("cannot cache the ONNX model at %s: %s", path, exc)
