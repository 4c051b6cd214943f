"""harstream.model.artifact: what loads, and every refusal as one ArtifactError line.

Models here are tiny Keras models built in the test (no training, no data),
saved with :func:`harstream.model.artifact.save` so their metadata is stamped.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from harstream.errors import ArtifactError
from harstream.model import artifact
from harstream.model.artifact import ModelMeta
from harstream.model.layers import GravityDirection

MEAN = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.1, 0.8]
STD = [0.2, 0.2, 0.2, 1.0, 1.0, 1.0, 0.4, 0.4, 0.4]


def tiny_model(
    channels: int = 9, classes: int = 6, *, std: list[float] = STD, extra: Any = None
) -> keras.Model:
    """Pooling and harstream's GravityDirection layer into a softmax; ``extra`` goes before it."""
    inputs = keras.Input((128, channels))
    x = keras.layers.GlobalAveragePooling1D()(inputs)
    if channels == 9:
        x = keras.layers.Concatenate()([x, GravityDirection(mean=MEAN, std=std)(inputs)])
    if extra is not None:
        x = extra(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def tiny_meta(**changes: Any) -> ModelMeta:
    base: dict[str, Any] = {
        "architecture": "tiny",
        "norm_mean": list(MEAN),
        "norm_std": list(STD),
        "subjects": {"train": [1, 3], "validation": [5], "test": [2]},
        "training_data_sha256": "ab" * 32,
    }
    return ModelMeta(**{**base, **changes})


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid artifact: ``tiny.keras`` and ``tiny.json``."""
    path = tmp_path_factory.mktemp("artifact") / "tiny.keras"
    artifact.save(tiny_model(), tiny_meta(), path)
    return path


def copy_artifact(source: Path, folder: Path, name: str = "m.keras") -> Path:
    target = folder / name
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def edit_meta(keras_file: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    meta_file = keras_file.with_suffix(".json")
    raw = json.loads(meta_file.read_text())
    edit(raw)
    meta_file.write_text(json.dumps(raw))


def restamp(keras_file: Path) -> None:
    """Make the metadata's checksum match the (replaced) ``.keras`` file."""
    digest = artifact.sha256_file(keras_file)
    edit_meta(keras_file, lambda raw: raw.update(weights_sha256=digest))


def refusal(path: Path | str | None) -> str:
    """The ArtifactError message of loading ``path``; it must be one line."""
    with pytest.raises(ArtifactError) as info:
        artifact.load(path)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_round_trip(saved: Path) -> None:
    loaded = artifact.load(saved)
    assert loaded.path == saved and loaded.meta == artifact.read_meta(saved.with_suffix(".json"))
    assert loaded.meta.weights_sha256 == artifact.sha256_file(saved)
    probs = np.asarray(loaded.model.predict_on_batch(np.zeros((2, 128, 9), np.float32)))
    assert probs.shape == (2, 6)
    assert artifact.load(saved.parent).path == saved  # a folder with one .keras file


def test_shipped_model_loads() -> None:
    loaded = artifact.load()
    assert loaded.meta.labels[0] == "WALKING" and len(loaded.meta.norm_std) == 9


def test_tampered_model_is_refused_by_its_checksum(saved: Path, tmp_path: Path) -> None:
    copy = copy_artifact(saved, tmp_path)
    with copy.open("ab") as handle:
        handle.write(b"\0")
    message = refusal(copy)
    assert "does not match the metadata's weights_sha256" in message
    assert artifact.sha256_file(copy) in message


def test_another_models_file_under_this_metadata_is_refused(saved: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.keras"
    artifact.save(tiny_model(classes=6), tiny_meta(), other)
    copy = copy_artifact(saved, tmp_path)
    shutil.copy(other, copy)  # same metadata, different weights
    assert "does not match the metadata's weights_sha256" in refusal(copy)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (lambda: tiny_model(channels=6), r"input(s) of shape (128, 6), expected one input of shape (128, 9)"),
        (lambda: tiny_model(classes=5), r"output(s) of shape (5,), expected one output of shape (6,)"),
        (lambda: tiny_model(std=[1.0] * 9), "was built with norm_std [1.0, 1.0"),
        (lambda: tiny_model(extra=keras.layers.Lambda(keras.activations.relu)),
         "is a Lambda layer, expected none"),
    ],
    ids=["channels", "classes", "statistics", "named-function-lambda"],
)
def test_foreign_model_is_refused(
    model: Callable[[], keras.Model], expected: str, tmp_path: Path
) -> None:
    """A .keras file with stamped metadata that does not describe it."""
    path = tmp_path / "foreign.keras"
    artifact.save(model(), tiny_meta(), path)
    message = refusal(path)
    assert message.startswith(f"{path}: ") and expected in message


def test_python_lambda_is_refused_by_safe_mode_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lambda.keras"
    artifact.save(tiny_model(extra=keras.layers.Lambda(lambda t: t * 2.0)), tiny_meta(), path)
    message = refusal(path)
    assert message.startswith(f"{path}: refused by Keras safe mode (")
    assert "Lambda" in message and "expected a model of Keras and harstream layers only" in message


def test_h5_files_are_refused(saved: Path, tmp_path: Path) -> None:
    h5 = tmp_path / "m.h5"
    tiny_model(channels=6).save(h5)  # a real legacy-format model, with metadata beside it
    shutil.copy(saved.with_suffix(".json"), h5.with_suffix(".json"))
    restamp(h5)
    message = refusal(h5)
    assert message == (
        f"{h5}: expected a .keras model file, got a .h5 file; only .keras files load "
        f"(other formats, such as .h5, bypass Keras safe mode)"
    )
    assert "got a .hdf5 file" in refusal(tmp_path / "m.hdf5")
    assert "found 0" in refusal(tmp_path)  # a folder with only the .h5 file
    assert "no such model file or folder" in refusal(tmp_path / "missing")
    assert "model file not found" in refusal(tmp_path / "missing.keras")


def garbage(_: Path) -> bytes:
    return b"this is not a zip archive at all"


def truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def broken_config(path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b'{"class_name": "Functional", ' if item.filename == "config.json" else data)
    return buffer.getvalue()


def missing_weights(path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            if item.filename != "model.weights.h5":
                target.writestr(item, source.read(item))
    return buffer.getvalue()


def unknown_layer(path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                data = data.replace(b"GravityDirection", b"NoSuchLayer")
            target.writestr(item, data)
    return buffer.getvalue()


def declared_huge(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", 3_000_000_000)
    return bytes(data)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (garbage, "not a readable .keras archive (expected a zip file"),
        (truncated, "not a readable .keras archive (expected a zip file"),
        (declared_huge, "bytes unpacked, expected at most 268,435,456 for a harstream model"),
        (broken_config, "Keras could not load the model ("),
        (missing_weights, "Keras could not load the model ("),
        (unknown_layer, "Keras could not load the model ("),
    ],
    ids=lambda v: getattr(v, "__name__", "message"),
)
def test_unloadable_archive_is_one_line(
    damage: Callable[[Path], bytes], expected: str, saved: Path, tmp_path: Path
) -> None:
    """Damaged files whose metadata was re-stamped, so they reach the archive and Keras checks."""
    copy = copy_artifact(saved, tmp_path)
    copy.write_bytes(damage(saved))
    restamp(copy)
    message = refusal(copy)
    assert message.startswith(f"{copy}: ") and expected in message


def set_value(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw.update({key: value})


def set_item(key: str, index: int, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw[key].__setitem__(index, value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (set_item("norm_std", 3, 0.0), "norm_std[3] = 0.0, expected a finite number > 0"),
        (set_item("norm_std", 0, -0.5), "norm_std[0] = -0.5, expected a finite number > 0"),
        (set_item("norm_std", 8, float("nan")), "norm_std[8] = nan, expected a finite number > 0"),
        (set_item("norm_mean", 2, float("inf")), "norm_mean[2] = inf, expected a finite number"),
        (set_item("norm_mean", 1, "0.1"), "norm_mean[1] = '0.1', expected a finite number"),
        (lambda raw: raw["norm_std"].pop(), "norm_std has 8 values, expected 9 (one per channel"),
        (set_value("norm_mean", [0.0] * 10), "norm_mean has 10 values, expected 9"),
        (set_item("labels", 4, "WALKING"),
         "labels[4] = 'WALKING', expected unique labels ('WALKING' is already labels[0])"),
        (set_value("labels", []), "labels = [], expected a non-empty list of names"),
        (set_item("labels", 1, "WALKING UP"), "labels[1] = 'WALKING UP', expected a name of letters"),
        (set_item("channels", 2, "gyro_x"),
         "channels[3] = 'gyro_x', expected unique channels ('gyro_x' is already channels[2])"),
        (set_value("window", 0), "window = 0, expected a positive whole number of samples"),
        (set_value("window", "128"), "window = '128', expected a positive whole number"),
        (set_value("hop", 200), "hop = 200, expected at most the window (128 samples)"),
        (set_value("sample_rate_hz", 0), "sample_rate_hz = 0, expected a finite number of Hz > 0"),
        (set_value("weights_sha256", "abc"), "weights_sha256 = 'abc', expected 64 lowercase hex digits"),
        (set_value("format", 2), "format = 2, expected metadata format 1"),
        (set_value("subjects", {"train": ["x"]}), "subjects = {'train': ['x']}, expected an object"),
        (set_value("shoe_size", 44), "unknown metadata key 'shoe_size'"),
        (lambda raw: raw.pop("norm_std"), "metadata key 'norm_std' missing"),
    ],
)
def test_bad_metadata_values_are_named(
    edit: Callable[[dict[str, Any]], None], expected: str, saved: Path, tmp_path: Path
) -> None:
    copy = copy_artifact(saved, tmp_path)
    edit_meta(copy, edit)
    message = refusal(copy)
    assert message.startswith(f"{copy.with_suffix('.json')}: ") and expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1, 2, 3]", "expected a JSON object of model metadata, got list"),
        ('{"architecture": "tiny",', "not valid model metadata JSON (Expecting"),
        ("", "not valid model metadata JSON"),
        (b"\xff\xfe".decode("latin-1"), "not valid model metadata JSON"),
    ],
    ids=["array", "truncated", "empty", "binary"],
)
def test_unreadable_metadata_is_named(text: str, expected: str, saved: Path, tmp_path: Path) -> None:
    copy = copy_artifact(saved, tmp_path)
    copy.with_suffix(".json").write_text(text, encoding="latin-1")
    assert expected in refusal(copy)


def test_missing_metadata_is_named(saved: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.keras"
    shutil.copy(saved, copy)
    assert "metadata file not found (expected beside the .keras file)" in refusal(copy)


def test_save_refuses_bad_metadata_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    with pytest.raises(ArtifactError, match=r"norm_std\[3\] = 0\.0, expected a finite number > 0"):
        artifact.save(tiny_model(), tiny_meta(norm_std=[1.0, 1.0, 1.0, 0.0, 1, 1, 1, 1, 1]), path)
    with pytest.raises(ArtifactError, match=r"expected a file name ending in \.keras"):
        artifact.save(tiny_model(), tiny_meta(), tmp_path / "m.h5")
    assert list(tmp_path.iterdir()) == []
