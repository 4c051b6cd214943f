"""harstream export: the ONNX and TFLite files agree with the Keras model on the test subjects' windows.

The files are written by ``harstream export`` (the CLI, ``--json``) from the
shipped model, then run here with onnxruntime and ``tf.lite.Interpreter``
directly — not through :mod:`harstream.tools.export` — on every engine-grid window
of the 9 test subjects' recordings (5,053 windows, labelled or not: what the
engine would classify), and compared with the served Keras path
(:meth:`Classifier.predict_proba`, standardisation outside the model).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from harstream.cli import main as cli
from harstream.errors import ExportError
from harstream.tools import export as export_module

pytestmark = pytest.mark.slow

Array = npt.NDArray[np.float32]
Exports = dict[str, tuple[Path, dict[str, Any]]]
"""format -> (exported file, its --json report)"""
TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)


@pytest.fixture(scope="module")
def windows(hapt_dir: Path) -> Array:
    """Every window the engine emits for the test subjects' recordings (chain output, physical units)."""
    from harstream.data.hapt import read_dataset
    from harstream.data.labelled_windows import concat, recording_windows

    dataset = read_dataset(hapt_dir, set(TEST_SUBJECTS))
    parts = [recording_windows(r, dataset.segments_of(r), align="stream", labelled_only=False)
             for r in dataset.recordings]
    x: Array = concat(parts).x
    return x


@pytest.fixture(scope="module")
def keras_probs(windows: Array) -> Array:
    from harstream.model.classifier import Classifier

    probs: Array = Classifier.load(runtime="keras").predict_proba(windows)
    return probs


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``harstream ARGV``: exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, hapt_dir: Path) -> Exports:
    """Both exports of the shipped model, by the CLI: format -> (file, --json report)."""
    folder = tmp_path_factory.mktemp("export")
    result = {}
    for fmt in ("onnx", "tflite"):
        path = folder / f"harnet.{fmt}"
        status, stdout = run_cli(
            ["export", "--format", fmt, "--out", str(path), "--data", str(hapt_dir), "--json"]
        )
        assert status == 0
        result[fmt] = (path, json.loads(stdout))
    return result


def run_onnx(path: Path, x: Array) -> Array:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["windows"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    return np.asarray(session.run(["probabilities"], {"windows": x})[0], dtype=np.float32)


def run_tflite(path: Path, x: Array) -> Array:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    batch = int(interpreter.get_input_details()[0]["shape"][0])
    out = []
    for begin in range(0, len(x), batch):
        part = x[begin : begin + batch]
        padded = np.zeros((batch, *x.shape[1:]), np.float32)
        padded[: len(part)] = part
        out.append(runner(windows=padded)["probabilities"][: len(part)])
    return np.concatenate(out).astype(np.float32)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_agrees_with_keras_on_every_test_window(
    fmt: str, exported: Exports, windows: Array, keras_probs: Array
) -> None:
    path, _ = exported[fmt]
    probs = (run_onnx if fmt == "onnx" else run_tflite)(path, windows)
    assert len(windows) > 5000  # all test subjects' windows, not a sample
    assert probs.shape == keras_probs.shape
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # probabilities, not logits
    agreement = float((probs.argmax(axis=1) == keras_probs.argmax(axis=1)).mean())
    assert agreement >= 0.999
    assert float(np.abs(probs - keras_probs).max()) <= 1e-3




def test_tflite_file_has_builtin_ops_only_and_a_fixed_batch(exported: Exports) -> None:
    from tensorflow.lite.python import schema_py_generated as schema

    path, report = exported["tflite"]
    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    custom = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    assert custom and all(code is None for code in custom)  # no Flex/Select TF or custom op
    assert {"ATAN2", "WHILE"} <= set(report["ops"]) and "CUSTOM" not in " ".join(report["ops"])
    assert report["input"]["shape"] == [1, 128, 9]
    assert (report["output"]["name"], report["output"]["shape"]) == ("probabilities", [1, 6])


def test_json_report(exported: Exports, windows: Array) -> None:
    from scipy import signal

    from harstream import ACTIVITIES
    from harstream.signal.chain import CHANNELS

    for fmt, (path, report) in exported.items():
        assert report["format"] == fmt and report["file"] == str(path)
        assert report["bytes"] == path.stat().st_size > 100_000
        assert report["input"] == {"name": "windows", "shape": [None if fmt == "onnx" else 1, 128, 9],
                                   "dtype": "float32", "channels": list(CHANNELS),
                                   "units": {"body_acc": "g", "gyro": "rad/s", "total_acc": "g"}}
        assert report["output"]["labels"] == list(ACTIVITIES)
        agreement = report["agreement"]
        assert agreement["windows"] == len(windows) and agreement["subjects"] == list(TEST_SUBJECTS)
        assert agreement["label_agreement"] >= 0.999 and 0 <= agreement["max_abs_diff"] <= 1e-3
        assert agreement["labels_differing"] == round((1 - agreement["label_agreement"]) * len(windows))
        assert set(report["windows_per_s"]) == ({"1", "64"} if fmt == "onnx" else {"1"})
        assert all(rate > 0 for rate in report["windows_per_s"].values())
        chain = report["chain"]
        assert (chain["window"], chain["hop"], chain["median_taps"]) == (128, 64, 3)
        assert (chain["noise_cutoff_hz"], chain["gravity_cutoff_hz"]) == (20.0, 0.3)
        for name in ("noise", "gravity"):
            sos = signal.butter(chain[f"{name}_order"], chain[f"{name}_cutoff_hz"], fs=50.0, output="sos")
            np.testing.assert_allclose(chain[f"{name}_sos"], sos)
            np.testing.assert_allclose(chain[f"{name}_zi_per_unit"], signal.sosfilt_zi(sos))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a private temporary one
    assert not list(path.parent.glob(".*"))  # no temporary file left beside --out


def test_export_leaves_the_served_layers_untouched(exported: Exports) -> None:
    import keras

    from harstream.model import layers

    assert exported and layers.ops is keras.ops


def test_arccos_via_atan2_matches_arccos() -> None:
    from harstream.model import layers

    x = np.linspace(-1.0, 1.0, 20001, dtype=np.float32)
    with export_module.arccos_via_atan2():
        angles = np.asarray(layers.ops.arccos(x))
    assert float(np.abs(angles - np.arccos(x.astype(np.float64))).max()) < 1e-6


def test_a_disagreeing_file_is_not_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hapt_dir: Path,
    exported: Exports,
) -> None:
    onnx_bytes = exported["onnx"][0].read_bytes()
    monkeypatch.setattr(export_module, "convert", lambda *_: onnx_bytes)  # skip the conversion
    monkeypatch.setattr(export_module, "MAX_ABS_DIFF", 0.0)  # the real file differs by ~1e-6
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"disagrees with Keras.*not written"):
        export_module.export("onnx", out, data_dir=hapt_dir)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--format", "onnx", "--out", "{tmp}/model.tflite"], "expected a file name ending in .onnx"),
    (["--format", "tflite", "--out", "{tmp}/missing/model.tflite"], "does not exist"),
    (["--format", "onnx", "--batch", "8", "--out", "{tmp}/model.onnx"], "--batch is for tflite only"),
])
def test_errors_are_one_line_and_write_nothing(
    argv: list[str], message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["export", *(a.format(tmp=tmp_path) for a in argv)])
    err = capfd.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and err.count("error:") == 1 and message in " ".join(err.split())
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_format_is_refused(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--format", "coreml", "--out", "model.mlmodel"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'coreml'" in capfd.readouterr().err
