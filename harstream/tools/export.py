"""Exporting the classifier for on-device use: one ONNX or TFLite file an app runs after the chain.

The exported model takes what the signal chain emits — windows of shape
``(n, 128, 9)``, float32, in physical units (g, rad/s) and the chain's
channel order — and returns the class probabilities ``(n, 6)`` in the
artifact's label order. The standardisation the Keras model expects outside
(:func:`harstream.model.classifier.standardise`) is inside the file
(:func:`physical_model`), so an app needs the chain and the file, nothing
else.

* **ONNX** (:func:`to_onnx`): the conversion of :mod:`harstream.model.onnx_runtime`
  (tf2onnx, opset 17, with its ``Log1p`` rule) applied to
  :func:`physical_model`; any batch size.
* **TFLite** (:func:`to_tflite`): builtin ops only (no Flex/Select TF ops),
  from a frozen concrete function of a **fixed batch** (TensorFlow Lite
  cannot lower the LSTM's tensor lists with an unknown batch); ``arccos``
  (no TFLite builtin) is traced as ``atan2(sqrt((1 - x)(1 + x)), x)`` for the
  export only (:func:`arccos_via_atan2`), the served model is untouched.
  Signature ``serving_default``: input ``windows``, output ``probabilities``.

:func:`export` converts, writes the file, runs it from disk with ONNX
Runtime or the TFLite interpreter on every engine-grid window of the
artifact's test subjects, refuses a file that disagrees with Keras
(:data:`MIN_LABEL_AGREEMENT`, :data:`MAX_ABS_DIFF`), and reports agreement,
size and windows/s on this machine (``harstream export --json``).

>>> suffix("tflite")
'.tflite'
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from unittest import mock

import numpy as np
import numpy.typing as npt

from harstream.errors import ArtifactError, ExportError
from harstream.model import onnx_runtime
from harstream.model.classifier import Classifier
from harstream.tools.fixed_batch import in_fixed_batches

if TYPE_CHECKING:
    import keras
    from rich.console import Console

    from harstream.model.artifact import Artifact

Format = Literal["onnx", "tflite"]
FORMATS: tuple[Format, ...] = ("onnx", "tflite")
"""Values of ``harstream export --format``."""
INPUT_NAME = "windows"
"""Name of the exported model's input (physical-unit chain windows)."""
OUTPUT_NAME = "probabilities"
"""Name of the exported model's output (class probabilities)."""
MIN_LABEL_AGREEMENT = 0.999
"""Least fraction of test windows whose most probable label must equal the Keras model's."""
MAX_ABS_DIFF = 1e-3
"""Largest absolute difference in any class probability allowed between the file and Keras."""
DEFAULT_TFLITE_BATCH = 1
"""Batch of a TFLite export unless told otherwise: a phone classifies one window every 1.28 s."""
RATE_BATCHES: dict[Format, tuple[int, ...]] = {"onnx": (1, 64), "tflite": ()}
"""Batch sizes timed for windows/s (a TFLite file is timed at its own fixed batch)."""
NAMES: dict[Format, str] = {"onnx": "ONNX", "tflite": "TFLite"}
"""Display names of the formats."""
UNITS = {"body_acc": "g", "gyro": "rad/s", "total_acc": "g"}
"""Units of the input channels."""

Array = npt.NDArray[np.float32]
Log = Callable[[str], None]


def suffix(fmt: str) -> str:
    """The file suffix of a format (``.onnx``, ``.tflite``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    return f".{fmt}"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- the model that takes physical units ---------------------------------------------------------


def physical_model(loaded: Artifact) -> keras.Model:
    """The artifact's classifier with the standardisation inside: physical-unit windows in.

    Input ``windows`` (n, window, channels) float32 as the chain emits them;
    output ``probabilities`` (n, classes).
    """
    import keras
    from keras import ops

    meta = loaded.meta
    mean = np.asarray(meta.norm_mean, dtype=np.float32)
    std = np.asarray(meta.norm_std, dtype=np.float32)
    windows = keras.Input((meta.window, len(meta.channels)), name=INPUT_NAME, dtype="float32")
    standardised = ops.divide(ops.subtract(windows, mean), std)
    probabilities = keras.layers.Identity(name=OUTPUT_NAME)(loaded.model(standardised))
    return keras.Model(windows, probabilities, name="harstream_export")


class _AtanOps:
    """``keras.ops`` with ``arccos`` written via ``arctan2`` (TFLite has ATAN2 but no ACOS)."""

    def __getattr__(self, name: str) -> Any:
        from keras import ops

        return getattr(ops, name)

    @staticmethod
    def arccos(x: Any) -> Any:
        from keras import ops

        return ops.arctan2(ops.sqrt((1.0 - x) * (1.0 + x)), x)


@contextmanager
def arccos_via_atan2() -> Iterator[None]:
    """While active, harstream's layers trace ``arccos(x)`` as ``atan2(sqrt((1-x)(1+x)), x)``.

    Only tracing inside the block sees it (the export's); the same angle for
    x in [-1, 1], so the file agrees with Keras.

    >>> import numpy as np
    >>> from harstream.model import layers
    >>> with arccos_via_atan2():
    ...     angles = np.asarray(layers.ops.arccos(np.array([1.0, 0.0, -1.0], "float32")))
    >>> np.allclose(angles, [0.0, np.pi / 2, np.pi])
    True
    """
    from harstream.model import layers

    with mock.patch.object(layers, "ops", _AtanOps()):
        yield


# --- conversions ---------------------------------------------------------------------------------


def to_onnx(loaded: Artifact) -> bytes:
    """The ONNX file of the artifact's classifier taking physical-unit windows (any batch)."""
    meta = loaded.meta
    try:
        return onnx_runtime.to_onnx(physical_model(loaded), meta.window, len(meta.channels))
    except ArtifactError as exc:
        raise ExportError(_one_line(str(exc))) from None


def to_tflite(loaded: Artifact, batch: int = DEFAULT_TFLITE_BATCH) -> bytes:
    """The TFLite file (builtin ops only, fixed ``batch``) of the classifier taking physical-unit windows."""
    if batch < 1:
        raise ValueError(f"batch: expected an integer >= 1, got {batch}")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    meta = loaded.meta
    model = physical_model(loaded)
    spec = tf.TensorSpec((batch, meta.window, len(meta.channels)), tf.float32, name=INPUT_NAME)
    with arccos_via_atan2():
        traced = tf.function(lambda w: model(w, training=False), input_signature=[spec]).get_concrete_function()
    frozen = convert_variables_to_constants_v2(traced)  # TFLite reads no Keras variables: weights as constants

    named = tf.function(lambda w: {OUTPUT_NAME: frozen(w)[0]}, input_signature=[spec])  # the signature's name
    converter = tf.lite.TFLiteConverter.from_concrete_functions([named.get_concrete_function()], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    captured: list[str] = []
    try:
        with _native_stderr(captured):
            data: bytes = converter.convert()
    except Exception as exc:  # the converter raises many kinds, with pages of MLIR diagnostics
        text = str(exc) + "\n" + "".join(captured)
        errors = [line.split("error:", 1)[1] for line in text.splitlines() if "error:" in line]
        reason = errors[0] if errors else text
        raise ExportError(f"cannot convert the model to TFLite with builtin ops (batch {batch}): "
                          f"{type(exc).__name__}: {_one_line(reason, 240)}") from None
    return data


@contextmanager
def _native_stderr(captured: list[str]) -> Iterator[None]:
    """Collect what native code writes to file descriptor 2 (converter and interpreter chatter)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def _check_batch(fmt: Format, batch: int | None) -> None:
    if fmt == "onnx" and batch is not None:
        raise ExportError(f"--batch {batch}: an ONNX export takes any batch size; --batch is for tflite only")
    if batch is not None and batch < 1:
        raise ExportError(f"--batch {batch}: expected an integer >= 1")


def convert(loaded: Artifact, fmt: Format, batch: int | None = None) -> bytes:
    """The exported file's bytes; ``batch`` only for TFLite (default :data:`DEFAULT_TFLITE_BATCH`)."""
    _check_batch(fmt, batch)
    if fmt == "onnx":
        return to_onnx(loaded)
    if fmt == "tflite":
        return to_tflite(loaded, DEFAULT_TFLITE_BATCH if batch is None else batch)
    raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")


# --- running an exported file --------------------------------------------------------------------


def tflite_ops(data: bytes) -> list[str]:
    """Every operator a TFLite file uses, in all its subgraphs (``CUSTOM:name`` for a non-builtin one)."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(data, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # the schema keeps both fields
        custom = code.CustomCode()
        found.add(f"CUSTOM:{custom.decode()}" if custom else names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(found)


class ExportedModel:
    """An exported file loaded for inference here: ONNX Runtime or the TFLite interpreter, ``threads`` threads.

    Calling it classifies any number of windows; a fixed-batch TFLite file is
    fed in chunks of its batch, the last one zero-padded.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self.format: Format = "tflite" if path.suffix == ".tflite" else "onnx"
        if self.format == "onnx":
            self._init_onnx(path, threads)
        else:
            self._init_tflite(path, threads)

    def _init_onnx(self, path: Path, threads: int) -> None:
        import onnx

        data = path.read_bytes()
        proto = onnx.load_from_string(data)

        def shape(value: Any) -> list[int | None]:
            return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]

        self.input_name, self.output_name = proto.graph.input[0].name, proto.graph.output[0].name
        self.input_shape, self.output_shape = shape(proto.graph.input[0]), shape(proto.graph.output[0])
        self.ops = sorted({node.op_type for node in proto.graph.node})
        self.batch: int | None = self.input_shape[0]
        self._run = onnx_runtime.OnnxSession(data, threads).run

    def _init_tflite(self, path: Path, threads: int) -> None:
        import tensorflow as tf

        captured: list[str] = []
        with warnings.catch_warnings(), _native_stderr(captured):
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        signature = interpreter.get_signature_list().get("serving_default", {})
        self.input_name = (signature.get("inputs") or ["?"])[0]
        self.output_name = (signature.get("outputs") or ["?"])[0]
        given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        self.input_shape = [int(d) for d in given["shape"]]
        self.output_shape = [int(d) for d in taken["shape"]]
        self.ops = tflite_ops(path.read_bytes())
        self.batch = self.input_shape[0]
        index_in, index_out = int(given["index"]), int(taken["index"])

        def run(x: Array) -> Array:
            interpreter.set_tensor(index_in, x)
            interpreter.invoke()
            return np.array(interpreter.get_tensor(index_out), dtype=np.float32)

        self._run = run

    def __call__(self, windows: npt.ArrayLike) -> Array:
        """Class probabilities (n, classes) of physical-unit windows (n, window, channels)."""
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if self.batch is None:
            return self._run(x)
        return in_fixed_batches(self._run, x, self.batch, int(self.output_shape[-1] or 0))


# --- the check -----------------------------------------------------------------------------------


def subject_windows(data_dir: Path, subjects: Sequence[int]) -> Array:
    """Every window the engine emits for the recordings of ``subjects`` (labelled or not), physical units.

    Each recording is filtered by the streaming chain and cut by the ring
    buffer, as ``harstream evaluate`` and the engine do.
    """
    from harstream.data.hapt import read_dataset
    from harstream.data.labelled_windows import recording_windows

    dataset = read_dataset(data_dir, set(subjects))
    parts = [
        recording_windows(recording, dataset.segments_of(recording), align="stream", labelled_only=False).x
        for recording in dataset.recordings
    ]
    if not parts:
        raise ExportError(f"{data_dir}: no recording of subjects {list(subjects)} to check the export on")
    return np.concatenate(parts)


def agreement(probs: Array, reference: Array) -> dict[str, Any]:
    """How far ``probs`` is from ``reference`` (both (n, classes)).

    >>> a = np.array([[0.9, 0.1], [0.4, 0.6]], np.float32)
    >>> agreement(a, np.array([[0.8, 0.2], [0.6, 0.4]], np.float32))["labels_differing"]
    1
    """
    same = probs.argmax(axis=1) == reference.argmax(axis=1)
    return {
        "windows": len(probs),
        "label_agreement": round(float(same.mean()), 6) if len(probs) else 1.0,
        "labels_differing": int((~same).sum()),
        "max_abs_diff": float(np.abs(probs - reference).max()) if len(probs) else 0.0,
    }


def windows_per_s(model: ExportedModel, windows: Array, batch: int, repeats: int = 5,
                  min_seconds: float = 0.3) -> float:
    """Median windows/s of ``model`` called on ``batch`` windows at a time (``repeats`` runs)."""
    x = np.resize(windows, (batch, *windows.shape[1:])).astype(np.float32)
    model(x)  # allocate / warm
    rates = []
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            model(x)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rates.append(calls * batch / elapsed)
    return statistics.median(rates)


def _check_out(out: Path, fmt: Format) -> None:
    if out.suffix != suffix(fmt):
        raise ExportError(f"--out {out}: expected a file name ending in {suffix(fmt)} for --format {fmt}")
    if out.is_dir():
        raise ExportError(f"--out {out}: is a folder, expected a file name ending in {suffix(fmt)}")
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: folder {out.parent} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ExportError(f"--out {out}: cannot write in {out.parent} ({exc.strerror or exc})") from None


def _chain_report(loaded: Artifact) -> dict[str, Any]:
    """The artifact's chain parameters, with the filters' second-order sections and unit steady states."""
    from scipy import signal

    from harstream.signal.chain import ChainParams, filters

    meta = loaded.meta
    noise, gravity = filters(ChainParams(**meta.chain))
    return {
        **meta.chain, "window": meta.window, "hop": meta.hop, "channels": list(meta.channels),
        "noise_sos": noise.tolist(), "gravity_sos": gravity.tolist(),
        "noise_zi_per_unit": signal.sosfilt_zi(noise).tolist(),
        "gravity_zi_per_unit": signal.sosfilt_zi(gravity).tolist(),
    }


def _silent(_: str) -> None:
    pass


def export(fmt: Format, out: Path | str, model: Path | str | None = None, data_dir: Path | str | None = None,
           batch: int | None = None, log: Log = _silent) -> dict[str, Any]:
    """Write the classifier to ``out`` as ``fmt``, verified on the test subjects' windows; returns the report.

    ``model``: the artifact (default: the shipped one); ``data_dir``: the
    HAPT folder the test windows come from (``--data``); ``batch``: the
    fixed batch of a TFLite file (default 1). Nothing is written at ``out``
    unless the file loads and agrees with Keras (:data:`MIN_LABEL_AGREEMENT`,
    :data:`MAX_ABS_DIFF`); any failure is one :class:`ExportError` (or
    :class:`~harstream.errors.ArtifactError`, :class:`~harstream.errors.DatasetError`) line.
    """
    from harstream.model import artifact
    from harstream.paths import resolve_data_dir

    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    target = Path(out)
    _check_out(target, fmt)
    _check_batch(fmt, batch)
    keras_file, meta_file = artifact.resolve(model)
    subjects = sorted(artifact.read_meta(meta_file).subjects.get("test") or ()) or list(_default_test_subjects())
    folder = resolve_data_dir(data_dir)
    log(f"filtering the recordings of test subjects {', '.join(map(str, subjects))} ({folder})")
    windows = subject_windows(folder, subjects)
    log(f"loading the model {keras_file.name}")
    loaded = artifact.load(keras_file)
    reference = Classifier(loaded, runtime="keras").predict_proba(windows)
    log(f"converting to {NAMES[fmt]}" + (" (builtin ops only, fixed batch "
        f"{batch or DEFAULT_TFLITE_BATCH})" if fmt == "tflite" else " (tf2onnx, any batch)"))
    started = time.perf_counter()
    data = convert(loaded, fmt, batch)
    convert_s = time.perf_counter() - started
    checked = _write_checked(target, fmt, data, windows, reference, log)
    return {
        **_report(fmt, target, data, loaded, checked),
        "agreement": {**checked.agreed, "subjects": subjects, "data": str(folder),
                      "required": {"label_agreement": MIN_LABEL_AGREEMENT, "max_abs_diff": MAX_ABS_DIFF}},
        "windows_per_s": checked.rates,
        "threads": 1,
        "seconds": {"convert": round(convert_s, 2), "check": round(checked.check_s, 2)},
        "chain": _chain_report(loaded),
    }


@dataclass(frozen=True)
class _Checked:
    """An exported file that agreed with Keras: the loaded file, its agreement, windows/s by batch."""

    exported: ExportedModel
    agreed: dict[str, Any]
    rates: dict[str, float]
    check_s: float
    """Seconds the check took (loading the file and classifying every test window)."""


def _write_checked(target: Path, fmt: Format, data: bytes, windows: Array, reference: Array,
                   log: Log) -> _Checked:
    """Write ``data`` hidden beside ``target``, check and time it there, then move it to ``target``."""
    # hidden beside --out until it passes the check; open() (not mkstemp) so the file gets the umask's mode
    part = target.parent / f".{target.stem}.{os.getpid()}.{secrets.token_hex(4)}{suffix(fmt)}"
    try:
        try:
            with part.open("xb") as handle:
                handle.write(data)
        except OSError as exc:
            raise ExportError(f"--out {target}: cannot write {part} ({exc.strerror or exc})") from None
        checked = _check(part, fmt, windows, reference, log)
        try:
            os.replace(part, target)
        except OSError as exc:
            raise ExportError(f"--out {target}: cannot replace it ({exc.strerror or exc})") from None
    finally:
        part.unlink(missing_ok=True)
    return checked


def _check(part: Path, fmt: Format, windows: Array, reference: Array, log: Log) -> _Checked:
    """Run the file at ``part`` on every test window; refuse it unless it agrees with Keras; time it."""
    log(f"checking the {NAMES[fmt]} file against Keras on {len(windows):,} windows")
    started = time.perf_counter()
    try:
        exported = ExportedModel(part)
        probs = exported(windows)
    except Exception as exc:  # a file the runtime cannot load is a failed export
        raise ExportError(f"the {NAMES[fmt]} file does not load or run here: "
                          f"{type(exc).__name__}: {_one_line(str(exc), 240)}") from None
    check_s = time.perf_counter() - started
    agreed = agreement(probs, reference)
    if agreed["label_agreement"] < MIN_LABEL_AGREEMENT or not agreed["max_abs_diff"] <= MAX_ABS_DIFF:
        raise ExportError(
            f"the {NAMES[fmt]} export disagrees with Keras on the test windows: label agreement "
            f"{agreed['label_agreement']:.4%} (at least {MIN_LABEL_AGREEMENT:.1%} required), largest "
            f"probability difference {agreed['max_abs_diff']:.2e} (at most {MAX_ABS_DIFF:g}); not written"
        )
    log("timing the exported model (1 thread)")
    rates = {str(b): round(windows_per_s(exported, windows, b), 1)
             for b in (RATE_BATCHES[fmt] or (exported.batch or 1,))}
    return _Checked(exported, agreed, rates, check_s)


def _report(fmt: Format, target: Path, data: bytes, loaded: Artifact, checked: _Checked) -> dict[str, Any]:
    """The report's description of the file: where, how big, which model, its input, output and ops."""
    meta, exported = loaded.meta, checked.exported
    return {
        "format": fmt,
        "file": str(target),
        "bytes": len(data),
        "model": str(loaded.path),
        "architecture": meta.architecture,
        "weights_sha256": meta.weights_sha256,
        "input": {"name": exported.input_name, "shape": exported.input_shape, "dtype": "float32",
                  "channels": list(meta.channels), "units": UNITS},
        "output": {"name": exported.output_name, "shape": exported.output_shape, "labels": list(meta.labels)},
        "ops": exported.ops,
    }


def _default_test_subjects() -> tuple[int, ...]:
    from harstream.data.splits import TEST_SUBJECTS

    return TEST_SUBJECTS


def print_report(report: dict[str, Any], console: Console) -> None:
    """The export report as a short table."""
    from rich.table import Table

    agreed = report["agreement"]
    table = Table(title=f"{NAMES[report['format']]} export of {Path(report['model']).name}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    shape = ", ".join("n" if d is None else str(d) for d in report["input"]["shape"])
    rows = [
        ("file", f"{report['file']} ({report['bytes'] / 1024:,.0f} KiB)"),
        ("input", f"{report['input']['name']}: ({shape}) float32, physical units (g, rad/s), chain channel order"),
        ("output", f"{report['output']['name']}: ({report['output']['shape'][-1]} class probabilities)"),
        ("labels agree", f"{agreed['label_agreement']:.2%} of {agreed['windows']:,} test windows "
                         f"({agreed['labels_differing']} differ)"),
        ("max |p - keras|", f"{agreed['max_abs_diff']:.1e}"),
        ("windows/s", ", ".join(f"{rate:,.0f} at batch {b}" for b, rate in report["windows_per_s"].items())
         + f" ({report['threads']} thread)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
