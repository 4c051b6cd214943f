"""MotionSense: the reader (sign, units, columns by name, .csv and .csv.gz, errors), layout
detection, splits, data check/stats, the download, evaluate and a live replay."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from harstream import ACTIVITIES, HOP, WINDOW
from harstream.cli.main import main
from harstream.data import motionsense as ms
from harstream.data import motionsense_download as msd
from harstream.data.labelled_windows import build_windows
from harstream.data.layouts import detect, find_layout, read_any, subject_key
from harstream.data.splits import (
    MOTIONSENSE_SPLITS,
    MOTIONSENSE_TEST_SUBJECTS,
    MOTIONSENSE_TRAIN_SUBJECTS,
    MOTIONSENSE_VALIDATION_SUBJECTS,
    split_subjects,
)
from harstream.errors import ChecksumError, DatasetError, DownloadError
from harstream.signal.windows import window_ends

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_HEADER = (
    ",attitude.roll,attitude.pitch,attitude.yaw,gravity.x,gravity.y,gravity.z,rotationRate.x,"
    "rotationRate.y,rotationRate.z,userAcceleration.x,userAcceleration.y,userAcceleration.z"
)


@pytest.fixture(scope="module")
def dataset(motionsense_dir: Path) -> Any:
    return ms.read_dataset(motionsense_dir)


def error_of(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(DatasetError) as info:
        call(*args)
    return str(info.value)


def raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a MotionSense file, read with the csv module (an independent reader)."""
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def link_tree(source: Path, dest: Path, files: list[str]) -> Path:
    """A MotionSense folder in ``dest`` holding links to some files of the real copy."""
    for name in files:
        target = dest / ms.DATA_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source / ms.DATA_DIR / name)
    return dest


# -- the reader on the real data -------------------------------------------------------------------


def test_real_copy_has_16_subjects_15_trials_one_segment_each(dataset: Any) -> None:
    recordings = dataset.recordings
    assert len(recordings) == 240 and dataset.name == "motionsense"
    assert sorted({r.user for r in recordings}) == list(ms.SHARED_SUBJECTS)
    assert {r.experiment for r in recordings} == set(ms.TRIALS)
    assert sum(len(r) for r in recordings) == 940_367
    ids = [r.stream_id for r in recordings]
    assert len(set(ids)) == 240 and "ms_dws_1_sub01" in ids and "ms_jog_16_sub23" in ids
    for rec in recordings:
        (segment,) = dataset.segments_of(rec)
        code = rec.stream_id.split("_")[1]
        assert (segment.start, segment.stop) == (0, len(rec))
        assert segment.activity == ms.ACTIVITY_OF[code] and ms.TRIALS[rec.experiment] == code
        assert rec.dataset == "motionsense" and rec.samples.shape == (len(rec), 6)
    assert sum(s.activity == ms.JOGGING for s in dataset.segments) == 32


def test_acc_is_minus_gravity_plus_user_acceleration_and_gyro_the_rotation_rate(
    motionsense_dir: Path,
) -> None:
    path = motionsense_dir / ms.DATA_DIR / "dws_1" / "sub_1.csv.gz"
    header, rows = raw_rows(path)
    table = np.array(rows, dtype=np.float64)
    col = {name: i for i, name in enumerate(header)}
    acc, gyro = ms.read_csv(path)
    for axis, name in enumerate("xyz"):
        np.testing.assert_array_equal(
            acc[:, axis], -(table[:, col[f"gravity.{name}"]] + table[:, col[f"userAcceleration.{name}"]])
        )
        np.testing.assert_array_equal(gyro[:, axis], table[:, col[f"rotationRate.{name}"]])


def test_sign_and_units_standing_reads_one_g_up_along_minus_y(dataset: Any) -> None:
    """README: standing upright, "up" is about -y (the phone sits upside down in the pocket);
    protocol v1 reads +1 g along "up", so the mean acc points along -y (the iOS sign: +y)."""
    standing = [r for r in dataset.recordings if ms.TRIALS[r.experiment] == "std"]
    sitting = [r for r in dataset.recordings if ms.TRIALS[r.experiment] == "sit"]
    assert len(standing) == len(sitting) == 32
    for rec in standing + sitting:  # units: g (a m/s2 file would read 9.8)
        assert 0.97 < np.linalg.norm(rec.acc, axis=1).mean() < 1.03, rec.stream_id
    mean_y = np.array([r.acc[:, 1].mean() for r in standing])
    assert (mean_y < -0.8).sum() >= 30, mean_y  # one phone sat the other way up: std_14 of subject 5
    assert np.median(mean_y) < -0.85
    walking = [r for r in dataset.recordings if ms.TRIALS[r.experiment] == "wlk"]
    rate = np.array([np.linalg.norm(r.gyro, axis=1).mean() for r in walking])
    assert (rate > 0.3).all() and (rate < 5.0).all(), rate  # rad/s: deg/s would read ~57x more


# -- columns by name, .csv and .csv.gz -------------------------------------------------------------


def test_columns_are_found_by_name_in_csv_and_csv_gz(motionsense_dir: Path, tmp_path: Path) -> None:
    real = motionsense_dir / ms.DATA_DIR / "std_14" / "sub_2.csv.gz"
    header, rows = raw_rows(real)
    extra = ["", "attitude.roll", "attitude.pitch", "attitude.yaw"]
    names = extra + header
    order = list(np.random.default_rng(3).permutation(len(names)))
    text = ",".join(names[i] for i in order) + "\n" + "".join(
        ",".join([str(k), "0.5", "-0.25", "3.0", *row][i] for i in order) + "\n"
        for k, row in enumerate(rows)
    )
    plain = tmp_path / "plain.csv"
    plain.write_text(text)
    packed = tmp_path / "packed.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    want = ms.read_csv(real)
    for path in (plain, packed):
        got = ms.read_csv(path)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_official_layout_of_csv_files_reads_like_the_copy(motionsense_dir: Path, tmp_path: Path) -> None:
    header, rows = raw_rows(motionsense_dir / ms.DATA_DIR / "sit_13" / "sub_4.csv.gz")
    col = {name: i for i, name in enumerate(header)}
    folder = tmp_path / "official" / ms.DATA_DIR / "sit_13"
    folder.mkdir(parents=True)
    with (folder / "sub_4.csv").open("w") as out:
        out.write(OFFICIAL_HEADER + "\n")
        for k, row in enumerate(rows):
            fields = [str(k), "0.1", "0.2", "0.3"] + [row[col[n]] for n in OFFICIAL_HEADER.split(",")[4:]]
            out.write(",".join(fields) + "\n")
    official = read_any(tmp_path / "official")
    copy = read_any(link_tree(motionsense_dir, tmp_path / "copy", ["sit_13/sub_4.csv.gz"]))
    assert [r.stream_id for r in official.recordings] == ["ms_sit_13_sub04"]
    np.testing.assert_array_equal(official.recordings[0].samples, copy.recordings[0].samples)


# -- bad files ------------------------------------------------------------------------------------


GOOD_HEADER = ",".join(ms.COLUMNS)
GOOD_ROW = ",".join(["0.1"] * len(ms.COLUMNS))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", r"bad\.csv:1: expected a header naming the columns"),
        (GOOD_HEADER.replace("userAcceleration.z", "userAcc.z") + "\n" + GOOD_ROW + "\n",
         r"bad\.csv:1: expected a column named 'userAcceleration\.z' in the header"),
        (GOOD_HEADER + ",gravity.x\n" + GOOD_ROW + ",0\n", r"bad\.csv:1: expected the column 'gravity\.x' once"),
        (GOOD_HEADER + "\n", r"bad\.csv:2: expected rows of 9 numbers after the header, there are none"),
        (GOOD_HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace("0.1", "x", 1) + "\n",
         r"bad\.csv:3: expected a number in column 'gravity\.x', got 'x'"),
        (GOOD_HEADER + "\n" + GOOD_ROW + "\n\n" + GOOD_ROW + ",0.2\n",
         r"bad\.csv:4: expected 9 comma-separated fields like the header, got 10"),
        (GOOD_HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.rsplit(",", 1)[0] + "\n",
         r"bad\.csv:3: expected 9 comma-separated fields like the header, got 8"),
        (GOOD_HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace("0.1", "nan", 1) + "\n",
         r"bad\.csv:3: expected finite numbers, got NaN or inf"),
    ],
    ids=["empty", "missing-column", "repeated-column", "no-rows", "not-a-number", "extra-field",
         "missing-field", "nan"],
)
def test_bad_files_name_file_line_and_what_was_expected(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=expected):
        ms.read_csv(path)


def test_unread_columns_need_not_be_numbers(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("note," + GOOD_HEADER + "\nhello," + GOOD_ROW + "\n," + GOOD_ROW + "\n")
    acc, gyro = ms.read_csv(path)
    assert acc.shape == gyro.shape == (2, 3)
    np.testing.assert_allclose(acc, -0.2)


def test_a_header_error_quotes_at_most_120_characters_of_the_first_line(tmp_path: Path) -> None:
    # docs/security.md: a linked file that is no recording shows no more of itself than this
    path = tmp_path / "sub_1.csv"
    path.write_text("secret," + "x" * 500 + "\n" + GOOD_ROW + "\n")
    message = error_of(ms.read_csv, path)
    assert "got 'secret," + "x" * 113 + "'" in message and "x" * 114 not in message


def test_broken_gzip_and_folder_errors(tmp_path: Path) -> None:
    folder = tmp_path / "ms" / ms.DATA_DIR / "wlk_7"
    folder.mkdir(parents=True)
    good = gzip.compress((GOOD_HEADER + "\n" + GOOD_ROW + "\n").encode())
    (folder / "sub_1.csv.gz").write_bytes(good[: len(good) // 2])
    assert "sub_1.csv.gz: expected a readable gzip-compressed CSV file" in error_of(
        ms.read_dataset, tmp_path / "ms")
    (folder / "sub_1.csv.gz").write_bytes(good)
    (folder / "sub_1.csv").write_text(GOOD_HEADER + "\n" + GOOD_ROW + "\n")
    assert "expected one file per subject, sub_1.csv holds subject 1 too" in error_of(
        ms.read_dataset, tmp_path / "ms")
    (folder / "sub_1.csv").unlink()
    (tmp_path / "ms" / ms.DATA_DIR / "dws_7").mkdir()
    assert "expected each trial number once, trial 7 is also dws_7/" in error_of(
        ms.read_dataset, tmp_path / "ms")
    (tmp_path / "ms" / ms.DATA_DIR / "dws_7").rmdir()
    assert len(ms.read_dataset(tmp_path / "ms").recordings) == 1
    message = error_of(ms.read_dataset, tmp_path / "ms", {1, 3})
    assert "expected recordings of subject(s) 3, found none" in message
    assert "MotionSense's outside test, kept out" in message
    (tmp_path / "empty").mkdir()
    assert "expected a MotionSense folder holding A_DeviceMotion_data/" in error_of(
        ms.read_dataset, tmp_path / "empty")


# -- layout detection and splits ------------------------------------------------------------------


def test_layout_is_detected_from_the_folder(motionsense_dir: Path, hapt_dir: Path, tmp_path: Path) -> None:
    from replay.sources import detect_layout

    assert detect(motionsense_dir) == detect(motionsense_dir / ms.DATA_DIR) == "motionsense"
    assert detect(hapt_dir) == "hapt" and detect_layout(motionsense_dir) == "motionsense"
    (tmp_path / "empty").mkdir()
    assert find_layout(tmp_path / "empty") is None and find_layout(tmp_path / "missing") is None
    assert "expected a HAPT folder (holding RawData/), a MotionSense folder" in error_of(
        detect, tmp_path / "empty")
    assert "MotionSense folder (holding A_DeviceMotion_data/)" in error_of(detect_layout, tmp_path / "empty")
    assert subject_key("motionsense", 1) != subject_key("hapt", 1)


def test_motionsense_validation_rule_and_splits(motionsense_dir: Path) -> None:
    ordered = sorted(ms.SHARED_SUBJECTS)
    assert MOTIONSENSE_VALIDATION_SUBJECTS == tuple(ordered[i] for i in (0, 4, 8, 12)) == (1, 7, 13, 19)
    assert set(MOTIONSENSE_TRAIN_SUBJECTS) == set(ordered) - {1, 7, 13, 19}
    assert len(MOTIONSENSE_TRAIN_SUBJECTS) == 12
    assert MOTIONSENSE_TEST_SUBJECTS == (3, 6, 9, 12, 15, 18, 21, 24)
    present = {int(p.name[4:].split(".")[0]) for p in (motionsense_dir / ms.DATA_DIR).glob("*/sub_*")}
    assert present == set(ms.SHARED_SUBJECTS) and not present & set(MOTIONSENSE_TEST_SUBJECTS)
    assert split_subjects("motionsense", "validation") == MOTIONSENSE_SPLITS["validation"]
    doc = (REPO_ROOT / "docs" / "model.md").read_text()
    rule = doc[doc.index("## MotionSense validation rule"):]
    assert "fixed before any MotionSense training" in rule and "1, 7, 13, 19" in rule


def test_windows_leave_jogging_out_and_key_subjects_apart(motionsense_dir: Path, tmp_path: Path) -> None:
    folder = link_tree(motionsense_dir, tmp_path, ["jog_16/sub_2.csv.gz", "std_14/sub_2.csv.gz"])
    windows = build_windows(folder)
    n = len(ms.read_csv(motionsense_dir / ms.DATA_DIR / "std_14" / "sub_2.csv.gz")[0])
    assert len(windows) == len(range(WINDOW - 1, n, HOP))  # the standing recording's, none of jogging
    assert set(windows.y.tolist()) == {ACTIVITIES.index("STANDING")}
    assert set(windows.subject.tolist()) == {subject_key("motionsense", 2)} == {102}


# -- data check, data stats -----------------------------------------------------------------------


def test_data_check_verifies_the_copy_against_the_shipped_manifest(motionsense_dir: Path) -> None:
    manifest = msd.load_manifest()
    shared = (motionsense_dir.parent / "SHA256SUMS").read_text().splitlines()
    assert {f"{d}  motionsense/{n}" for n, d in manifest.items()} == {
        line for line in shared if "  motionsense/" in line}
    report = msd.check(motionsense_dir)
    assert report.ok, report.problems
    assert report.files_checked == 242 and report.recordings == 240 and report.trials == 15
    assert report.subjects == list(ms.SHARED_SUBJECTS) and report.jogging_recordings == 32
    msd.print_check(report, Console(file=io.StringIO()))


def test_data_check_reports_a_changed_file_and_a_missing_subject(motionsense_dir: Path, tmp_path: Path) -> None:
    names = [f"{code}_{trial}/sub_{s}.csv.gz" for trial, code in ms.TRIALS.items() for s in (1, 2)]
    folder = link_tree(motionsense_dir, tmp_path, names[:-1])  # subject 2 of the last trial missing
    changed = folder / ms.DATA_DIR / "dws_1" / "sub_1.csv.gz"
    data = changed.read_bytes()
    changed.unlink()
    changed.write_bytes(data[:-8] + gzip.compress(b"")[-8:])  # breaks the crc: differs and fails to read
    manifest = {n: d for n, d in msd.load_manifest().items() if n.endswith(("sub_1.csv.gz", "sub_2.csv.gz"))}
    report = msd.check(folder, manifest=manifest)
    text = "\n".join(report.problems)
    assert f"{changed}: expected SHA-256 {manifest['A_DeviceMotion_data/dws_1/sub_1.csv.gz']}" in text
    assert "std_14: expected sub_<n>.csv or .csv.gz of subject(s) 2, not there" in text
    assert "sub_1.csv.gz: expected a readable gzip-compressed CSV file" in text
    assert not report.ok and report.recordings == 0


def test_data_check_of_official_csv_files_checks_structure_only(tmp_path: Path) -> None:
    root = tmp_path / ms.DATA_DIR
    for trial, code in ms.TRIALS.items():
        (root / f"{code}_{trial}").mkdir(parents=True)
        (root / f"{code}_{trial}" / "sub_3.csv").write_text(OFFICIAL_HEADER + "\n" + "0," * 12 + "1\n")
    report = msd.check(tmp_path)
    assert report.ok and report.files_checked == 0 and report.subjects == [3]
    assert report.checksum_note.startswith("none known")


def test_data_stats_counts_jogging_apart(
    motionsense_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "stats", "--data", str(motionsense_dir), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["dataset"] == "motionsense"
    assert {c["subject"] for c in stats["counts"]} == set(ms.SHARED_SUBJECTS)
    per = {a: sum(c["windows"] for c in stats["counts"] if c["activity"] == a) for a in ACTIVITIES}
    assert per["LAYING"] == 0 and all(per[a] > 1000 for a in ACTIVITIES[:5])
    expected = {"train": 0, "validation": 0, "test": 0}
    jog = dict(expected)
    dataset = ms.read_dataset(motionsense_dir)
    for rec in dataset.recordings:
        n = len(range(WINDOW - 1, len(rec), HOP))
        split = next(k for k, v in MOTIONSENSE_SPLITS.items() if rec.user in v)
        if ms.TRIALS[rec.experiment] == "jog":
            jog[split] += n
        else:
            expected[split] += n
    assert stats["splits"] == expected and stats["excluded"]["JOGGING"] == jog
    assert stats["missing_subjects"] == {"test": list(MOTIONSENSE_TEST_SUBJECTS)}


# -- download from a local server -----------------------------------------------------------------


@pytest.fixture
def www(www: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """conftest's served folder, with the user cache in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return www


def official_zip(skip: str | None = None) -> bytes:
    """A small archive laid out like the official one: 15 trials x 24 subjects of 3 rows, a decoy."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for trial, code in ms.TRIALS.items():
            for subject in ms.ALL_SUBJECTS:
                name = f"{ms.DATA_DIR}/{code}_{trial}/sub_{subject}.csv"
                if name == skip:
                    continue
                rows = "".join(f"{k},0,0,0,0,-1,0,0.1,0.2,0.3,0,0,{subject / 100}\n" for k in range(3))
                bundle.writestr(name, OFFICIAL_HEADER + "\n" + rows)
        bundle.writestr(f"__MACOSX/{ms.DATA_DIR}/dws_1/._sub_1.csv", b"\0resource fork")
    return buffer.getvalue()


def test_download_verifies_the_structure_and_installs(tmp_path: Path, www: tuple[Path, str]) -> None:
    root, base = www
    data = official_zip()
    (root / "A_DeviceMotion_data.zip").write_bytes(data)
    console = Console(file=io.StringIO(), width=300)
    dest = msd.download(tmp_path / "ms", url=f"{base}/A_DeviceMotion_data.zip", progress=False,
                        console=console)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"archive SHA-256 {hashlib.sha256(data).hexdigest()} (not pinned" in text
    assert "Verified the structure of 360 recordings" in text
    dataset = read_any(dest)
    assert len(dataset.recordings) == 360 and not (dest / "__MACOSX").exists()
    rec = next(r for r in dataset.recordings if r.stream_id == "ms_wlk_7_sub24")
    np.testing.assert_allclose(rec.acc, [[0.0, 1.0, -0.24]] * 3)  # -(gravity + userAcceleration)
    np.testing.assert_allclose(rec.gyro, [[0.1, 0.2, 0.3]] * 3)
    assert msd.check(dest).ok
    # already there: nothing is fetched (the URL does not even exist)
    assert msd.download(dest, url=f"{base}/gone.zip", progress=False, console=console) == dest
    assert list((tmp_path / "cache" / "harstream").iterdir()) == []  # no partial archive left


def test_download_refuses_a_wrong_checksum_or_an_incomplete_archive(
    tmp_path: Path, www: tuple[Path, str]
) -> None:
    root, base = www
    (root / "good.zip").write_bytes(official_zip())
    dest = tmp_path / "ms"
    with pytest.raises(ChecksumError, match=r"expected the archive's SHA-256 0{64}, got"):
        msd.download(dest, url=f"{base}/good.zip", progress=False, console=Console(file=io.StringIO()),
                     sha256="0" * 64)
    assert not dest.exists()
    (root / "short.zip").write_bytes(official_zip(skip=f"{ms.DATA_DIR}/ups_12/sub_17.csv"))
    with pytest.raises(DownloadError, match=r"ups_12: expected sub_<n>\.csv or \.csv\.gz of subject\(s\) 17"):
        msd.download(dest, url=f"{base}/short.zip", progress=False, console=Console(file=io.StringIO()))
    (root / "other.zip").write_bytes(zipfile.ZipFile(io.BytesIO(official_zip())).read(
        f"{ms.DATA_DIR}/dws_1/sub_1.csv"))  # not a zip
    with pytest.raises(DownloadError, match="could not unpack as a zip archive"):
        msd.download(dest, url=f"{base}/other.zip", progress=False, console=Console(file=io.StringIO()))
    assert not dest.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".ms")] == []
    code = main(["data", "download", "--dataset", "motionsense", "--dest", str(dest), "--url",
                 "http://127.0.0.1:1/x.zip"])
    assert code == 2 and not dest.exists()


def test_download_of_a_zip_with_corrupt_deflate_data_exits_2(
    tmp_path: Path, www: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 19 item 14: a zlib.error traceback and exit 1 before
    root, base = www
    data = bytearray(official_zip())
    local = data.index(b"PK\x03\x04")
    name_length, extra_length = struct.unpack("<HH", data[local + 26 : local + 30])
    data[local + 30 + name_length + extra_length] = 0xFF  # a reserved deflate block type
    (root / "corrupt.zip").write_bytes(bytes(data))
    dest = tmp_path / "ms"
    code = main(["data", "download", "--dataset", "motionsense", "--dest", str(dest), "--url",
                 f"{base}/corrupt.zip"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and not dest.exists(), err
    assert "could not unpack as a zip archive (Error -3 while decompressing data" in err
    assert "Traceback" not in err


# -- evaluate, and the engine on MotionSense recordings ------------------------------------------


VALIDATION_FILES = ["sit_13/sub_1.csv.gz", "dws_11/sub_7.csv.gz", "ups_12/sub_13.csv.gz",
                    "jog_16/sub_19.csv.gz", "std_14/sub_19.csv.gz"]
"""One short recording of each validation subject (a jogging one too), by rule: the shortest trials."""


def test_evaluate_on_motionsense_validation_recordings(
    motionsense_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = link_tree(motionsense_dir, tmp_path, VALIDATION_FILES)
    report = tmp_path / "report"
    assert main(["evaluate", "--data", str(folder), "--split", "validation", "--json", "--report",
                 str(report)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads((report / "metrics_motionsense_validation.json").read_text()) == result
    assert (report / "confusion_motionsense_validation.png").is_file()
    grid = sum(
        len(window_ends(0, len(ms.read_csv(folder / ms.DATA_DIR / name)[0])))
        for name in VALIDATION_FILES if not name.startswith("jog")
    )
    assert result["dataset"] == "motionsense" and result["split"] == "validation"
    assert result["subjects"] == [1, 7, 13, 19] and result["n_windows"] == grid  # jogging not scored
    assert set(result["per_class"]) == set(ACTIVITIES) and result["per_class"]["LAYING"]["support"] == 0
    assert result["macro_f1_classes"] == ["WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING"]
    assert set(result["per_subject"]) == {"1", "7", "13", "19"}
    assert 0.0 <= result["macro_f1"] <= 1.0 and len(result["confusion"]) == 6
    assert set(result["smoothed"]) >= {"accuracy", "macro_f1", "macro_f1_classes", "per_class", "confusion"}


def test_evaluate_test_split_on_motionsense_says_the_subjects_are_kept_out(
    motionsense_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--data", str(motionsense_dir), "--split", "test"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "expected recordings of subject(s) 3, 6, 9, 12, 15, 18, 21, 24" in err
    assert "outside test, kept out of the project's copy" in err


@pytest.mark.slow
def test_replay_of_two_motionsense_recordings_against_a_real_engine(
    motionsense_dir: Path, tmp_path: Path, free_endpoint: Callable[[], str], serve_process: Callable[..., Any]
) -> None:
    from replay.session import score_replay
    from replay.sources import load_streams

    folder = link_tree(motionsense_dir, tmp_path, ["std_14/sub_19.csv.gz", "jog_16/sub_19.csv.gz"])
    streams = load_streams(folder, {19})
    assert sorted(s.stream_id for s in streams) == ["ms_jog_16_sub19", "ms_std_14_sub19"]
    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish):
        report = score_replay(streams, ingest, publish, speed=0).report()
    grids = {s.stream_id: len(window_ends(0, len(s))) for s in streams}
    assert report["windows_expected"] == report["windows_received"] == sum(grids.values())
    assert report["windows_missing"] == report["duplicates"] == 0 and report["errors"] == {}
    assert report["n_scored"] == grids["ms_std_14_sub19"]  # the jogging stream is streamed, not scored
    assert report["macro_f1_classes"] == ["STANDING"]


# -- train on several datasets --------------------------------------------------------------------


def test_train_takes_at_most_one_folder_per_dataset(hapt_dir: Path, motionsense_dir: Path) -> None:
    from training.train import data_sources

    assert data_sources([hapt_dir, motionsense_dir]) == [(hapt_dir, "hapt"), (motionsense_dir, "motionsense")]
    assert data_sources(motionsense_dir) == [(motionsense_dir, "motionsense")]
    assert f"expected at most one MotionSense folder, {motionsense_dir} is one too" in error_of(
        data_sources, [motionsense_dir, motionsense_dir / ms.DATA_DIR])
    from harstream.cli.main import build_parser

    args = build_parser().parse_args(["train", "--data", "a", "--data", "b", "--out", "o"])
    assert args.data == [Path("a"), Path("b")]


@pytest.mark.slow
def test_tiny_training_on_hapt_and_motionsense(hapt_dir: Path, motionsense_dir: Path, tmp_path: Path) -> None:
    from harstream.data.splits import TRAIN_SUBJECTS, VALIDATION_SUBJECTS
    from harstream.model.classifier import Classifier
    from training.recipe import TrainConfig
    from training.train import train

    metrics = train([hapt_dir, motionsense_dir], tmp_path, TrainConfig(epochs=1, max_windows=512, train_hop=64))
    hapt_part, ms_part = metrics["data"]
    assert (hapt_part["dataset"], ms_part["dataset"]) == ("hapt", "motionsense")
    # every non-jogging segment window of the MotionSense train and validation subjects
    dataset = ms.read_dataset(motionsense_dir)
    def windows_of(subjects: tuple[int, ...]) -> int:
        return sum(len(range(WINDOW - 1, len(r), HOP)) for r in dataset.recordings
                   if r.user in subjects and ms.TRIALS[r.experiment] != "jog")
    assert ms_part["train_windows"] == windows_of(MOTIONSENSE_TRAIN_SUBJECTS) == 9563
    assert ms_part["validation_windows"] == windows_of(MOTIONSENSE_VALIDATION_SUBJECTS) == 3413
    assert set(metrics["validation_by_dataset"]) == {"hapt", "motionsense"}
    assert set(metrics["validation_by_dataset"]["motionsense"]["per_subject"]) <= {"1", "7", "13", "19"}
    assert sum(s["n_windows"] for s in metrics["validation_by_dataset"].values()) == metrics["validation"][
        "n_windows"] == 512
    meta = Classifier.load(tmp_path / "harnet-fusion.keras").artifact.meta
    assert meta.subjects["train"] == sorted(TRAIN_SUBJECTS) and meta.subjects["validation"] == list(
        VALIDATION_SUBJECTS)
    assert meta.subjects["motionsense_train"] == list(MOTIONSENSE_TRAIN_SUBJECTS)
    assert meta.subjects["motionsense_validation"] == [1, 7, 13, 19]
    assert meta.subjects["motionsense_test"] == list(MOTIONSENSE_TEST_SUBJECTS)
