"""The model artifact: a ``.keras`` file and a metadata JSON beside it.

The metadata carries everything needed to use the model live with exactly
the preprocessing it was trained with: label order, sample rate, window,
hop, channel order, signal-chain parameters, normalisation statistics, the
subjects of each split, metrics, the training data checksum, the package
version and the SHA-256 of the ``.keras`` file. Loading accepts only
``.keras`` files, validates every metadata value, verifies the checksum,
refuses an artifact built for another signal chain, loads the Keras file in
safe mode and checks that the model matches its metadata (input and output
shapes, standardisation statistics, no Lambda layers). Every failure is one
:class:`~harstream.errors.ArtifactError` line naming the file, the bad value
and what was expected.

The default model ships in :mod:`harstream.model.shipped`:

>>> default_model_path().name
'harnet.keras'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harstream import ACTIVITIES, HOP, SAMPLE_RATE_HZ, WINDOW, __version__
from harstream.errors import ArtifactError
from harstream.signal.chain import CHANNELS, DEFAULT_PARAMS

if TYPE_CHECKING:
    import keras

FORMAT = 1
"""Version of the metadata layout."""
SUFFIX = ".keras"
"""The only model file type loaded (the legacy ``.h5`` format ignores Keras safe mode)."""
MAX_UNPACKED_BYTES = 256 * 2**20
"""Most bytes a ``.keras`` archive may declare unpacked (the shipped model: under 1 MB)."""

_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_CHANNEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_MESSAGE = 240


@dataclass(frozen=True)
class ModelMeta:
    """What a model was trained on and how to feed it (the metadata JSON)."""

    architecture: str
    """Name of the architecture (``harstream train --arch``)."""
    norm_mean: list[float]
    """Per-channel mean of the training windows (standardisation)."""
    norm_std: list[float]
    """Per-channel standard deviation of the training windows."""
    subjects: dict[str, list[int]]
    """Subjects of the ``train``, ``validation`` and ``test`` splits."""
    training_data_sha256: str
    """SHA-256 of the training windows and labels."""
    labels: list[str] = field(default_factory=lambda: list(ACTIVITIES))
    """Class names in the model's output order."""
    sample_rate_hz: float = SAMPLE_RATE_HZ
    """Sample rate of the input streams."""
    window: int = WINDOW
    """Samples per window."""
    hop: int = HOP
    """Samples between consecutive windows."""
    channels: list[str] = field(default_factory=lambda: list(CHANNELS))
    """Input channel order."""
    chain: dict[str, Any] = field(default_factory=DEFAULT_PARAMS.as_dict)
    """Signal-chain parameters the windows were filtered with."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Measured numbers (validation, and test once reported)."""
    package_version: str = __version__
    """harstream version that trained the model."""
    weights_sha256: str = ""
    """SHA-256 of the ``.keras`` file, filled in by :func:`save`."""
    format: int = FORMAT
    """Metadata layout version."""

    def to_json(self) -> str:
        """The metadata as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass(frozen=True)
class Artifact:
    """A loaded model and its metadata."""

    model: keras.Model
    """The Keras model (input: standardised windows; output: class probabilities)."""
    meta: ModelMeta
    """Its metadata."""
    path: Path
    """The ``.keras`` file it was loaded from."""


def default_model_path() -> Path:
    """The shipped model inside the package."""
    return Path(str(resources.files("harstream.model.shipped").joinpath("harnet.keras")))


def resolve(path: Path | str | None) -> tuple[Path, Path]:
    """``(keras_file, metadata_file)`` for a ``.keras`` path, a folder holding one, or None.

    Any other file type is refused: ``.h5`` and other legacy formats load
    outside Keras safe mode.
    """
    if path is None:
        keras_file = default_model_path()
    else:
        keras_file = Path(path)
        if keras_file.is_dir():
            found = sorted(keras_file.glob(f"*{SUFFIX}"))
            if len(found) != 1:
                raise ArtifactError(
                    f"--model {keras_file}: expected a folder with exactly one {SUFFIX} file, "
                    f"found {len(found)}"
                )
            keras_file = found[0]
        elif not keras_file.exists() and not keras_file.suffix:
            raise ArtifactError(f"--model {keras_file}: no such model file or folder")
        elif keras_file.suffix != SUFFIX:
            raise ArtifactError(
                f"{keras_file}: expected a {SUFFIX} model file, got "
                + (f"a {keras_file.suffix} file" if keras_file.suffix else "a name without suffix")
                + f"; only {SUFFIX} files load (other formats, such as .h5, bypass Keras safe mode)"
            )
    return keras_file, keras_file.with_suffix(".json")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(model: keras.Model, meta: ModelMeta, path: Path | str) -> Path:
    """Write ``path`` (``.keras``) and its metadata JSON; returns the JSON path.

    The metadata is validated first (:func:`validate_meta`), so a model that
    could not be loaded is never written.
    """
    keras_file = Path(path)
    if keras_file.suffix != SUFFIX:
        raise ArtifactError(f"path: expected a file name ending in {SUFFIX}, got {keras_file}")
    validate_meta(meta, keras_file.with_suffix(".json"), check_weights_sha256=False)
    keras_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(keras_file)
    stamped = ModelMeta(**{**asdict(meta), "weights_sha256": sha256_file(keras_file)})
    meta_file = keras_file.with_suffix(".json")
    meta_file.write_text(stamped.to_json() + "\n")
    return meta_file


def _short(value: Any) -> str:
    """``repr(value)``, cut to fit in an error line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, cut to :data:`_MAX_MESSAGE` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def read_meta(meta_file: Path) -> ModelMeta:
    """Parse and validate a metadata JSON file (:func:`validate_meta`)."""
    try:
        raw = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{meta_file}: metadata file not found (expected beside the .keras file)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{meta_file}: not valid model metadata JSON ({_one_line(exc)})") from None
    if not isinstance(raw, dict):
        raise ArtifactError(
            f"{meta_file}: expected a JSON object of model metadata, got {type(raw).__name__}"
        )
    known = {f.name for f in fields(ModelMeta)}
    required = {f.name for f in fields(ModelMeta) if f.default is MISSING and f.default_factory is MISSING}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ArtifactError(
            f"{meta_file}: unknown metadata key {unknown[0]!r}; expected only {sorted(known)}"
        )
    absent = sorted(required - set(raw))
    if absent:
        raise ArtifactError(f"{meta_file}: metadata key {absent[0]!r} missing; required: {sorted(required)}")
    meta = ModelMeta(**raw)
    validate_meta(meta, meta_file)
    return meta


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_meta(meta: ModelMeta, where: Path, *, check_weights_sha256: bool = True) -> None:
    """Refuse metadata with a value of the wrong type or out of range.

    Checks the layout version, the names (channels, labels: non-empty,
    unique, identifiers), window and hop (positive, hop <= window), the
    sample rate, the normalisation statistics (one finite value per channel,
    standard deviations > 0) and the checksums' form.
    """

    def bad(name: str, value: Any, expected: str) -> ArtifactError:
        return ArtifactError(f"{where}: {name} = {_short(value)}, expected {expected}")

    if not _is_int(meta.format) or meta.format != FORMAT:
        raise bad("format", meta.format, f"metadata format {FORMAT}")
    if not isinstance(meta.architecture, str) or not meta.architecture.strip():
        raise bad("architecture", meta.architecture, "a non-empty architecture name")
    for name, pattern in (("channels", _CHANNEL), ("labels", _LABEL)):
        names = getattr(meta, name)
        if not isinstance(names, list) or not names:
            raise bad(name, names, "a non-empty list of names")
        for index, item in enumerate(names):
            if not isinstance(item, str) or not pattern.match(item):
                raise bad(f"{name}[{index}]", item, "a name of letters, digits and _ (starting with a letter)")
            if item in names[:index]:
                first = names.index(item)
                raise bad(f"{name}[{index}]", item, f"unique {name} ({item!r} is already {name}[{first}])")
    for name in ("window", "hop"):
        value = getattr(meta, name)
        if not _is_int(value) or value <= 0:
            raise bad(name, value, "a positive whole number of samples")
    if meta.hop > meta.window:
        raise bad("hop", meta.hop, f"at most the window ({meta.window} samples)")
    rate = meta.sample_rate_hz
    if not _is_number(rate) or not math.isfinite(rate) or rate <= 0:
        raise bad("sample_rate_hz", meta.sample_rate_hz, "a finite number of Hz > 0")
    channels = len(meta.channels)
    for name, positive in (("norm_mean", False), ("norm_std", True)):
        values = getattr(meta, name)
        if not isinstance(values, list) or len(values) != channels:
            got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
            raise ArtifactError(
                f"{where}: {name} has {got}, expected {channels} (one per channel of channels)"
            )
        for index, value in enumerate(values):
            if not _is_number(value) or not math.isfinite(value) or (positive and value <= 0):
                raise bad(
                    f"{name}[{index}]", value,
                    "a finite number > 0 (a channel's standard deviation)" if positive
                    else "a finite number (a channel's mean)",
                )
    if not isinstance(meta.subjects, dict) or not all(
        isinstance(key, str) and isinstance(ids, list) and all(_is_int(i) for i in ids)
        for key, ids in meta.subjects.items()
    ):
        raise bad("subjects", meta.subjects, "an object of split name -> list of subject ids")
    for name in ("chain", "metrics"):
        if not isinstance(getattr(meta, name), dict):
            raise bad(name, getattr(meta, name), "a JSON object")
    if not isinstance(meta.package_version, str):
        raise bad("package_version", meta.package_version, "a version string")
    hashes = ("training_data_sha256", "weights_sha256") if check_weights_sha256 else ("training_data_sha256",)
    for name in hashes:
        value = getattr(meta, name)
        if not isinstance(value, str) or not _SHA256.match(value):
            raise bad(name, value, "64 lowercase hex digits (a SHA-256)")


def check_compatible(meta: ModelMeta, where: Path) -> None:
    """Refuse metadata whose signal chain or windowing differs from this code's.

    The labels are the model's own (the six classes, or a fine-tuned set such as the six plus
    JOGGING: ``harstream train --base``); :func:`validate_meta` checks their form.
    """
    if meta.format != FORMAT:
        raise ArtifactError(f"{where}: metadata format {meta.format}, expected {FORMAT}")
    expected: dict[str, Any] = {
        "chain": DEFAULT_PARAMS.as_dict(),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "window": WINDOW,
        "hop": HOP,
        "channels": list(CHANNELS),
    }
    for name, want in expected.items():
        got = getattr(meta, name)
        if got != want:
            raise ArtifactError(
                f"{where}: the model was trained with {name}={got!r}, but this harstream "
                f"runs {name}={want!r}; retrain it with `harstream train`"
            )


def _check_archive(keras_file: Path) -> None:
    """Refuse a ``.keras`` file that is no zip archive or declares too much content."""
    try:
        with zipfile.ZipFile(keras_file) as archive:
            declared = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ArtifactError(
            f"{keras_file}: not a readable .keras archive (expected a zip file: {_one_line(exc)})"
        ) from None
    if declared > MAX_UNPACKED_BYTES:
        raise ArtifactError(
            f"{keras_file}: the archive declares {declared:,} bytes unpacked, expected at most "
            f"{MAX_UNPACKED_BYTES:,} for a harstream model"
        )


def _walk(layer: Any) -> list[Any]:
    """Every layer nested inside ``layer``."""
    found = []
    for sub in getattr(layer, "layers", None) or []:
        found += [sub, *_walk(sub)]
    return found


def check_model(model: keras.Model, meta: ModelMeta, where: Path) -> None:
    """Refuse a model that does not fit its metadata (a foreign or mismatched ``.keras`` file).

    One input of shape ``(window, channels)``, one output of ``len(labels)``
    classes, no ``Lambda`` layers, and the standardisation statistics inside
    harstream's layers equal to ``norm_mean``/``norm_std``.
    """
    import keras

    from harstream.model.layers import _PhysicalUnitsLayer

    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{where}: the model has no defined inputs and outputs ({_one_line(exc)})") from None
    want_in = (meta.window, len(meta.channels))
    want_out = (len(meta.labels),)
    if len(inputs) != 1 or tuple(inputs[0].shape)[1:] != want_in:
        shapes = [tuple(t.shape)[1:] for t in inputs]
        raise ArtifactError(
            f"{where}: the model takes input(s) of shape {', '.join(map(str, shapes)) or 'none'}, "
            f"expected one input of shape {want_in} (window, channels of the metadata)"
        )
    if len(outputs) != 1 or tuple(outputs[0].shape)[1:] != want_out:
        shapes = [tuple(t.shape)[1:] for t in outputs]
        raise ArtifactError(
            f"{where}: the model gives output(s) of shape {', '.join(map(str, shapes)) or 'none'}, "
            f"expected one output of shape {want_out} (one probability per label of the metadata)"
        )
    for layer in _walk(model):
        if isinstance(layer, keras.layers.Lambda):
            raise ArtifactError(
                f"{where}: layer {layer.name!r} is a Lambda layer, expected none (Lambda layers hold code)"
            )
        if isinstance(layer, _PhysicalUnitsLayer):
            for name, inside, outside in (
                ("norm_mean", layer.mean, meta.norm_mean),
                ("norm_std", layer.std, meta.norm_std),
            ):
                if len(inside) != len(outside) or not all(
                    math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(inside, outside, strict=True)
                ):
                    raise ArtifactError(
                        f"{where}: layer {layer.name!r} was built with {name} {_short(inside)}, "
                        f"but the metadata says {_short(outside)}; expected the same statistics"
                    )


def load(path: Path | str | None = None) -> Artifact:
    """Load and verify an artifact (the shipped model when ``path`` is None).

    Raises :class:`ArtifactError` (one line) for anything wrong: not a
    ``.keras`` file, missing or invalid metadata, a checksum mismatch, another
    signal chain, a file Keras cannot load or refuses in safe mode, a model
    that does not fit its metadata.
    """
    keras_file, meta_file = resolve(path)
    if not keras_file.is_file():
        raise ArtifactError(f"{keras_file}: model file not found")
    meta = read_meta(meta_file)
    check_compatible(meta, meta_file)
    try:
        actual = sha256_file(keras_file)
    except OSError as exc:
        raise ArtifactError(f"{keras_file}: could not read the model file ({_one_line(exc)})") from None
    if actual != meta.weights_sha256:
        raise ArtifactError(
            f"{keras_file}: SHA-256 {actual} does not match the metadata's "
            f"weights_sha256 {meta.weights_sha256}; the file was changed or corrupted"
        )
    _check_archive(keras_file)
    import keras

    from harstream.model import layers  # noqa: F401  registers harstream's custom layers for safe mode

    try:
        model = keras.models.load_model(keras_file, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; each becomes one ArtifactError line
        message = _one_line(exc)
        full = str(exc)
        if "safe_mode" in full or "safe mode" in full.lower():
            reason = " ".join(full.split()).split(". ")[0]
            raise ArtifactError(
                f"{keras_file}: refused by Keras safe mode ({reason}); expected a model of "
                f"Keras and harstream layers only, with no code (such as a Lambda layer) to run on load"
            ) from None
        raise ArtifactError(
            f"{keras_file}: Keras could not load the model ({type(exc).__name__}: {message})"
        ) from None
    check_model(model, meta, keras_file)
    return Artifact(model, meta, keras_file)
