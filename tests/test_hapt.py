"""The HAPT reader on tiny hand-written folders, and on the real data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harstream.data.hapt import (
    list_experiments,
    raw_dir,
    read_dataset,
    read_matrix,
    read_recording,
    read_segments,
)
from harstream.data.types import Segment, window_activity
from harstream.errors import DatasetError

ROWS = "0.1 0.2 0.3\n0.4 0.5 0.6\n0.7 0.8 0.9\n1.0 1.1 1.2\n"


def make_dataset(
    root: Path,
    acc: str = ROWS,
    gyro: str = ROWS,
    labels: str = "1 1 5 1 4\n",
) -> Path:
    """A one-recording HAPT folder (experiment 1, user 1) under ``root``."""
    raw = root / "RawData"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "acc_exp01_user01.txt").write_text(acc)
    (raw / "gyro_exp01_user01.txt").write_text(gyro)
    (raw / "labels.txt").write_text(labels)
    return root


def error_of(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(DatasetError) as info:
        call(*args)
    return str(info.value)


def test_reads_a_small_folder(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, labels="1 1 5 1 2\n1 1 7 3 4\n")
    dataset = read_dataset(data)
    (rec,) = dataset.recordings
    assert (rec.experiment, rec.user, len(rec), rec.stream_id) == (1, 1, 4, "exp01_user01")
    assert rec.samples.shape == (4, 6) and rec.samples.dtype == np.float32
    assert [(s.activity, s.start, s.stop) for s in dataset.segments_of(rec)] == [
        (5, 0, 2),
        (7, 2, 4),
    ]
    assert raw_dir(data / "RawData") == data / "RawData"


def test_not_a_dataset_folder(tmp_path: Path) -> None:
    message = error_of(raw_dir, tmp_path)
    assert str(tmp_path) in message and "RawData/" in message


def test_no_recordings(tmp_path: Path) -> None:
    (tmp_path / "RawData").mkdir()
    message = error_of(list_experiments, tmp_path)
    assert "RawData" in message and "acc_expNN_userMM.txt" in message


def test_missing_file(tmp_path: Path) -> None:
    data = make_dataset(tmp_path)
    (data / "RawData" / "gyro_exp01_user01.txt").unlink()
    message = error_of(read_recording, data, 1, 1)
    assert message.startswith(f"{data / 'RawData' / 'gyro_exp01_user01.txt'}: ")
    assert "not found" in message


def test_ragged_row(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, acc="1 2 3\n4 5 6\n7 8\n1 2 3\n")
    message = error_of(read_recording, data, 1, 1)
    assert message.startswith(f"{data / 'RawData' / 'acc_exp01_user01.txt'}:3: ")
    assert "expected 3 columns, got 2" in message


def test_wrong_column_count_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "two.txt"
    path.write_text("1 2\n3 4\n")
    assert error_of(read_matrix, path, 3).startswith(f"{path}:1: expected 3 columns, got 2")


@pytest.mark.filterwarnings("ignore:loadtxt. input contained no data")
def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    path.write_text("")
    message = error_of(read_matrix, path, 3)
    assert message.startswith(f"{path}: ") and "empty" in message


def test_non_numeric_value(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, gyro="1 2 3\n4 5 6\n7 8 9\n1 abc 3\n")
    message = error_of(read_recording, data, 1, 1)
    assert message.startswith(f"{data / 'RawData' / 'gyro_exp01_user01.txt'}:4: ")
    assert "expected a number, got 'abc'" in message


def test_non_integer_label(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, labels="1 1 5 1 2\n1 1 5 2.5 4\n")
    message = error_of(read_segments, data)
    assert message.startswith(f"{data / 'RawData' / 'labels.txt'}:2: ")
    assert "'2.5'" in message


def test_acc_gyro_length_mismatch(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, gyro="1 2 3\n4 5 6\n7 8 9\n")
    message = error_of(read_recording, data, 1, 1)
    # The reader names the gyro file and both row counts (no single bad line here).
    assert message.startswith(f"{data / 'RawData' / 'gyro_exp01_user01.txt'}: ")
    assert "expected 4 rows like acc_exp01_user01.txt, got 3" in message


def test_label_outside_its_recording(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, labels="1 1 5 1 2\n1 1 4 3 5\n")
    message = error_of(read_dataset, data)
    assert message.startswith(f"{data / 'RawData' / 'labels.txt'}:2: ")
    assert "3..5 lies outside" in message and "of 4 samples" in message


def test_label_of_a_missing_recording(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, labels="1 1 5 1 2\n2 1 5 1 2\n")
    message = error_of(read_dataset, data)
    assert message.startswith(f"{data / 'RawData' / 'labels.txt'}:2: ")
    assert "acc_exp02_user01.txt" in message


@pytest.mark.parametrize("activity", [0, 13])
def test_label_activity_out_of_range(tmp_path: Path, activity: int) -> None:
    data = make_dataset(tmp_path, labels=f"1 1 5 1 2\n1 1 4 1 2\n1 1 {activity} 3 4\n")
    message = error_of(read_dataset, data)
    assert message.startswith(f"{data / 'RawData' / 'labels.txt'}:3: ")
    assert f"expected an activity id in 1..12, got {activity}" in message


def test_label_first_after_last(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, labels="1 1 5 3 2\n")
    message = error_of(read_dataset, data)
    assert message.startswith(f"{data / 'RawData' / 'labels.txt'}:1: ")
    assert "3..2" in message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_nan_values(tmp_path: Path, value: str) -> None:
    data = make_dataset(tmp_path, acc=f"1 2 3\n4 5 6\n7 {value} 9\n1 2 3\n")
    message = error_of(read_recording, data, 1, 1)
    assert message.startswith(f"{data / 'RawData' / 'acc_exp01_user01.txt'}:3: ")
    assert "expected finite numbers" in message


def test_nan_line_number_counts_blank_lines(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, acc="1 2 3\n\n4 5 6\n7 8 9\nnan 1 2\n")
    message = error_of(read_recording, data, 1, 1)
    assert message.startswith(f"{data / 'RawData' / 'acc_exp01_user01.txt'}:5: ")


def test_users_filter(tmp_path: Path) -> None:
    data = make_dataset(tmp_path, labels="1 1 5 1 4\n2 2 13 1 1\n")
    # The bad row belongs to user 2, whom the filter leaves out.
    assert len(read_dataset(data, users={1}).segments) == 1


def test_window_activity_needs_the_whole_window() -> None:
    segs = [Segment(1, 1, 1, start=0, stop=10), Segment(1, 1, 8, start=10, stop=20)]
    assert window_activity(segs, [3, 9, 10, 15], window=4).tolist() == [1, 1, 0, 0]


def test_real_dataset(hapt_dir: Path) -> None:
    dataset = read_dataset(hapt_dir)
    assert len(dataset.recordings) == 61
    assert [r.experiment for r in dataset.recordings] == list(range(1, 62))
    assert {r.user for r in dataset.recordings} == set(range(1, 31))
    assert len(dataset.segments) == 1214
    assert sum(len(r) for r in dataset.recordings) == 1_122_772
    assert all(len(r.acc) == len(r.gyro) for r in dataset.recordings)
    assert all(re.fullmatch(r"exp\d\d_user\d\d", r.stream_id) for r in dataset.recordings)
