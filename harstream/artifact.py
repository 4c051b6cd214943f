"""The model artifact: a ``.keras`` file and a metadata JSON beside it.

The metadata carries everything needed to use the model live with exactly
the preprocessing it was trained with: label order, sample rate, window,
hop, channel order, signal-chain parameters, normalisation statistics, the
subjects of each split, metrics, the training data checksum, the package
version and the SHA-256 of the ``.keras`` file. Loading verifies the
checksum, refuses an artifact built for another signal chain, and loads the
Keras file in safe mode.

The default model ships in :mod:`harstream.models`:

>>> default_model_path().name
'harnet.keras'
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ACTIVITIES, HOP, SAMPLE_RATE_HZ, WINDOW, __version__
from .chain import CHANNELS, DEFAULT_PARAMS
from .errors import ArtifactError

if TYPE_CHECKING:
    import keras

FORMAT = 1
"""Version of the metadata layout."""


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
    return Path(str(resources.files("harstream.models").joinpath("harnet.keras")))


def resolve(path: Path | str | None) -> tuple[Path, Path]:
    """``(keras_file, metadata_file)`` for a ``.keras`` path, a folder holding one, or None."""
    if path is None:
        keras_file = default_model_path()
    else:
        keras_file = Path(path)
        if keras_file.is_dir():
            found = sorted(keras_file.glob("*.keras"))
            if len(found) != 1:
                raise ArtifactError(
                    f"--model {keras_file}: expected a folder with exactly one .keras file, "
                    f"found {len(found)}"
                )
            keras_file = found[0]
    return keras_file, keras_file.with_suffix(".json")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(model: keras.Model, meta: ModelMeta, path: Path | str) -> Path:
    """Write ``path`` (``.keras``) and its metadata JSON; returns the JSON path."""
    keras_file = Path(path)
    if keras_file.suffix != ".keras":
        raise ArtifactError(f"path: expected a file name ending in .keras, got {keras_file}")
    keras_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(keras_file)
    stamped = ModelMeta(**{**asdict(meta), "weights_sha256": sha256_file(keras_file)})
    meta_file = keras_file.with_suffix(".json")
    meta_file.write_text(stamped.to_json() + "\n")
    return meta_file


def read_meta(meta_file: Path) -> ModelMeta:
    """Parse a metadata JSON file."""
    try:
        raw = json.loads(meta_file.read_text())
        return ModelMeta(**raw)
    except FileNotFoundError:
        raise ArtifactError(f"{meta_file}: metadata file not found (expected beside the .keras file)") from None
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{meta_file}: not valid model metadata ({exc})") from None


def check_compatible(meta: ModelMeta, where: Path) -> None:
    """Refuse metadata whose signal chain or windowing differs from this code's."""
    expected: dict[str, Any] = {
        "chain": DEFAULT_PARAMS.as_dict(),
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "window": WINDOW,
        "hop": HOP,
        "channels": list(CHANNELS),
        "labels": list(ACTIVITIES),
    }
    for name, want in expected.items():
        got = getattr(meta, name)
        if got != want:
            raise ArtifactError(
                f"{where}: the model was trained with {name}={got!r}, but this harstream "
                f"runs {name}={want!r}; retrain it with `harstream train`"
            )
    if meta.format != FORMAT:
        raise ArtifactError(f"{where}: metadata format {meta.format}, expected {FORMAT}")


def load(path: Path | str | None = None) -> Artifact:
    """Load and verify an artifact (the shipped model when ``path`` is None)."""
    keras_file, meta_file = resolve(path)
    if not keras_file.is_file():
        raise ArtifactError(f"{keras_file}: model file not found")
    meta = read_meta(meta_file)
    actual = sha256_file(keras_file)
    if actual != meta.weights_sha256:
        raise ArtifactError(
            f"{keras_file}: SHA-256 {actual} does not match the metadata's "
            f"weights_sha256 {meta.weights_sha256}; the file was changed or corrupted"
        )
    check_compatible(meta, meta_file)
    import keras

    from . import layers  # noqa: F401  registers harstream's custom layers for safe mode

    model = keras.models.load_model(keras_file, compile=False, safe_mode=True)
    return Artifact(model, meta, keras_file)
