"""Recordings folders (docs/own-data.md): reading real data back, the 50 Hz grid, and every format error."""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harstream import ACTIVITIES
from harstream.data.device import Device
from harstream.data.hapt import read_dataset as read_hapt
from harstream.data.labelled_windows import build_windows
from harstream.data.layouts import detect, read_any
from harstream.data.recordings import (
    MAX_T_S,
    NEW_CLASS_ID,
    Span,
    read_dataset,
    read_labels,
    read_samples,
    write_labels,
    write_recording,
)
from harstream.errors import DatasetError
from harstream.signal.resample import delay_s

TRANSITIONS = {7: "STAND_TO_SIT", 8: "SIT_TO_STAND", 9: "SIT_TO_LIE", 10: "LIE_TO_SIT", 11: "STAND_TO_LIE",
               12: "LIE_TO_STAND"}
"""HAPT's postural transitions (activity_labels.txt), written as new class names."""


def hapt_as_recordings(hapt_dir: Path, folder: Path, device: Device | None = None, origin: float = 0.0) -> None:
    """Write HAPT user 1's experiments as a recordings folder: t = origin + sample / 50 (or a device's
    times), every labelled segment a span named by its class."""
    dataset = read_hapt(hapt_dir, {1})
    spans = []
    names = {**dict(enumerate(ACTIVITIES, start=1)), **TRANSITIONS}
    for rec in dataset.recordings:
        if device is None:
            values, t = rec.samples, np.arange(len(rec)) / 50.0
        else:
            values, times = device.render(rec.samples)
            t = times if times is not None else np.arange(len(values)) / device.rate_hz
        write_recording(folder / f"{rec.stream_id}.csv", origin + t, values)
        spans += [Span(rec.stream_id, origin + s.start / 50.0, origin + s.stop / 50.0, names[s.activity])
                  for s in dataset.segments_of(rec)]
    write_labels(folder, spans)


def test_a_50hz_folder_reads_back_exactly_as_hapt(hapt_dir: Path, tmp_path: Path) -> None:
    hapt_as_recordings(hapt_dir, tmp_path)
    assert detect(tmp_path) == "recordings"
    ours, theirs = read_any(tmp_path), read_hapt(hapt_dir, {1})
    assert [r.stream_id for r in ours.recordings] == [r.stream_id for r in theirs.recordings]
    for mine, real in zip(ours.recordings, theirs.recordings, strict=True):
        np.testing.assert_array_equal(mine.samples, real.samples)  # 50 Hz, t = k / 50: the identity
        got = [(s.start, s.stop, ours.activity_names[s.activity]) for s in ours.segments_of(mine)]
        want = [(s.start, s.stop, ACTIVITIES[s.activity - 1] if s.activity <= 6 else TRANSITIONS[s.activity])
                for s in theirs.segments_of(real)]
        assert got == want
    assert ours.activity_names[NEW_CLASS_ID] == "LIE_TO_SIT"  # new names, alphabetically from 101
    mine_windows, real_windows = build_windows(ours), build_windows(theirs)  # the six classes only
    np.testing.assert_array_equal(mine_windows.y, real_windows.y)
    np.testing.assert_array_equal(mine_windows.x, real_windows.x)


def test_a_jittery_100hz_phone_lands_on_the_same_grid(hapt_dir: Path, tmp_path: Path) -> None:
    hapt_as_recordings(hapt_dir, tmp_path, device=Device(100.0, jitter_ms=6.0, seed=3), origin=1.7e9)
    ours, theirs = read_dataset(tmp_path), read_hapt(hapt_dir, {1})
    for mine, real in zip(ours.recordings, theirs.recordings, strict=True):
        assert abs(len(mine) - len(real)) <= 1
        n = min(len(mine), len(real))
        # rendered band-limited at 100 Hz, then the resampler's anti-alias low-pass delays it 18 ms
        assert delay_s(100.0) == pytest.approx(0.018, abs=0.001)
        error = np.abs(mine.samples[1:n] - real.samples[: n - 1])  # one 20 ms grid step later
        assert np.median(error[:, :3]) < 0.005  # g
    got, want = np.array([(s.start, s.stop) for s in ours.segments]), [(s.start, s.stop) for s in theirs.segments]
    assert np.abs(got - np.array(want)).max() <= 1  # the phone's first sample is up to 3 ms late


def test_a_dropout_starts_a_new_part_and_spans_follow(tmp_path: Path) -> None:
    t = np.concatenate([np.arange(500) / 50.0, 20.0 + np.arange(500) / 50.0])
    write_recording(tmp_path / "walk.csv", t, np.tile([0, 0, 1.0, 0, 0, 0], (1000, 1)))
    write_labels(tmp_path, [Span("walk", -5.0, 25.0, "WALKING"), Span("walk", 25.0, 99.0, "SKIPPING")])
    data = read_dataset(tmp_path)
    assert [(r.stream_id, len(r)) for r in data.recordings] == [("walk", 500), ("walk:2", 500)]
    spans = [(s.experiment, s.start, s.stop, data.activity_names[s.activity]) for s in data.segments]
    # cut at the recording's ends; the second part starts at t = 20 s
    assert spans == [(1, 0, 500, "WALKING"), (2, 0, 250, "WALKING"), (2, 250, 500, "SKIPPING")]


GOOD = "t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n" + "".join(f"{k / 50},0,0,1,0,0,0\n" for k in range(200))
LABELS = "recording,start_s,end_s,activity\nwalk,0,3,WALKING\n"


def with_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("csv", "labels", "where", "expected"),
    [
        ("", LABELS, "walk.csv:1", "expected the header t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z, the file"),
        (GOOD.replace("gyro_z", "gyro_q", 1), LABELS, "walk.csv:1",
         "(a column named 'gyro_z' once; it is missing)"),
        (with_line(GOOD, 7, "0.1,0,zero,1,0,0,0"), LABELS, "walk.csv:7", "expected a number in column 'acc_y'"),
        (with_line(GOOD, 9, "0.14,0,0,1,0,0"), LABELS, "walk.csv:9", "expected 7 comma-separated fields"),
        (with_line(GOOD, 12, "0.2,0,0,nan,0,0,0"), LABELS, "walk.csv:12", "expected finite numbers, got NaN"),
        (with_line(GOOD, 12, "0.2,0,0,1e9,0,0,0"), LABELS, "walk.csv:12", "expected acc_z within ±1e+06"),
        (with_line(GOOD, 40, "0.5,0,0,1,0,0,0"), LABELS, "walk.csv:40",
         "expected t to increase (seconds, one row per sample), got 0.5 after 0.74 on line 39"),
        (GOOD.split("\n", 2)[0] + "\n", LABELS, "walk.csv:2", "expected at least 2 rows of samples"),
        ("t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n" + "".join(f"{20 * k},0,0,1,0,0,0\n" for k in range(99)),
         "recording,start_s,end_s,activity\n", "walk.csv",
         "expected a sample rate of 20-500 Hz, but t's median step is 20 s (0.05 Hz); expected t in seconds"),
        (GOOD, "recording,start,end,activity\n", "labels.csv:1", "expected the header recording,start_s,end_s"),
        (GOOD, LABELS + "run,0,3,WALKING\n", "labels.csv:3",
         "expected the name of a recording of this folder (walk.csv), got 'run' (there is no run.csv)"),
        (GOOD, LABELS + "walk,3,3,SITTING\n", "labels.csv:3", "expected start_s < end_s, got 3 .. 3"),
        (GOOD, LABELS + "walk,3,four,SITTING\n", "labels.csv:3", "expected end_s to be a finite number"),
        (GOOD, LABELS + "walk,3,4\n", "labels.csv:3", "expected 4 comma-separated fields"),
        (GOOD, LABELS + "walk,3,4,jogging\n", "labels.csv:3", "got 'jogging' (did you mean 'JOGGING'?)"),
        (GOOD, LABELS + "walk,2.5,4,JOGGING\n", "labels.csv:3",
         "expected spans of recording walk not to overlap, 2.5 .. 4 s overlaps 0 .. 3 s on line 2"),
        (GOOD, LABELS + "walk,30,40,JOGGING\n", "labels.csv:3",
         "the span 30 .. 40 s lies outside recording walk, whose t runs 0 .. 3.98 s"),
        (with_line(GOOD, 201, "1e300,0,0,1,0,0,0"), LABELS, "walk.csv:201",
         "expected t within ±9.007e+13 s (so the 50 Hz grid index of any t stays within 2**53-1), got 1e+300"),
        (with_line(GOOD, 2, "-1e22,0,0,1,0,0,0"), LABELS, "walk.csv:2", "expected t within ±9.007e+13 s"),
        (GOOD, "recording,start_s,end_s,activity\nwalk,0,1e308,LAYING\n", "labels.csv:2",
         "expected end_s within ±9.007e+13 s (the bound of t), got '1e308'"),
        (GOOD, LABELS + "walk,-1e15,-1e14,LAYING\n", "labels.csv:3", "expected start_s within ±9.007e+13 s"),
    ],
    ids=["empty", "column", "number", "fields", "nan", "huge", "t-back", "no-rows", "ms",
         "labels-header", "unknown-recording", "empty-span", "bad-end", "label-fields", "activity-case",
         "overlap", "outside", "t-huge", "t-huge-first", "label-huge", "label-huge-start"],
)
def test_bad_files_name_file_line_and_what_was_expected(
    csv: str, labels: str, where: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "walk.csv").write_text(csv)
    (tmp_path / "labels.csv").write_text(labels)
    with pytest.raises(DatasetError) as caught:
        read_dataset(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / where.split(':')[0]}{where[len(where.split(':')[0]):]}"), message
    assert expected in message, message


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: (d / "my walk.csv").write_text(GOOD), "expected a recording file name of 1-60 letters"),
        (lambda d: (d / "labels.csv").write_text(""), "labels.csv:1: expected the header recording,start_s"),
    ],
    ids=["file-name", "empty-labels"],
)
def test_folder_level_errors(make: Callable[[Path], object], expected: str, tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("recording,start_s,end_s,activity\n")
    make(tmp_path)
    with pytest.raises(DatasetError, match="expected") as caught:
        read_dataset(tmp_path)
    assert expected in str(caught.value)


def test_labels_may_be_empty_and_touching_spans_do_not_overlap(tmp_path: Path) -> None:
    (tmp_path / "walk.csv").write_text(GOOD)
    write_labels(tmp_path, [])
    assert read_dataset(tmp_path).segments == []
    write_labels(tmp_path, [Span("walk", 0, 2, "WALKING"), Span("walk", 2, 4, "SITTING")])
    assert [s.line for s in read_labels(tmp_path)] == [2, 3]
    assert [(s.start, s.stop) for s in read_dataset(tmp_path).segments] == [(0, 100), (100, 200)]


@pytest.mark.parametrize("last", [1e300, 1e22, 9.1e13])
def test_a_time_past_the_grid_bound_is_refused_where_it_is_read(last: float, tmp_path: Path) -> None:
    # the resampler's 50 Hz indices must stay within 2**53-1: 1e300 made evaluate spin forever
    (tmp_path / "walk.csv").write_text(with_line(GOOD, 201, f"{last!r},0,0,1,0,0,0"))
    with pytest.raises(DatasetError, match=r"walk\.csv:201: expected t within ±9\.007e\+13 s"):
        read_samples(tmp_path / "walk.csv")
    ok = with_line(GOOD, 201, f"{MAX_T_S!r},0,0,1,0,0,0")  # at the bound: read, a new part after the dropout
    (tmp_path / "walk.csv").write_text(ok)
    (tmp_path / "labels.csv").write_text(f"recording,start_s,end_s,activity\nwalk,0,{MAX_T_S!r},WALKING\n")
    data = read_dataset(tmp_path)
    assert [(r.stream_id, len(r)) for r in data.recordings] == [("walk", 199), ("walk:2", 1)]


def test_reading_holds_about_the_samples_not_the_text(tmp_path: Path) -> None:
    # the whole text used to be held several times over (11x the file); now one chunk of lines at a time
    rows = 150_000
    t = 1.7e9 + np.arange(rows) / 100.0
    write_recording(tmp_path / "long.csv", t, np.random.default_rng(1).normal(size=(rows, 6)))
    size = (tmp_path / "long.csv").stat().st_size
    tracemalloc.start()
    try:
        got_t, samples = read_samples(tmp_path / "long.csv")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(got_t) == len(samples) == rows
    assert peak < 3 * size, (peak, size)  # the columns read are 56 bytes a row; a row of text about 90


def test_a_linked_recording_is_read_and_a_header_error_quotes_at_most_120_characters(tmp_path: Path) -> None:
    # docs/security.md: a recordings folder is read with the user's own rights; links are followed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "walk.csv").write_text(GOOD)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "walk.csv").symlink_to(elsewhere / "walk.csv")
    (folder / "labels.csv").write_text(LABELS)
    assert [len(r) for r in read_dataset(folder).recordings] == [200]
    (elsewhere / "walk.csv").write_text("secret," + "x" * 500 + "\n")
    with pytest.raises(DatasetError) as caught:
        read_dataset(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder / 'walk.csv'}:1: expected the header"), message
    assert "'secret," + "x" * 113 + "'" in message and "x" * 114 not in message


TIMES = st.sampled_from([0.0, 0.02, -3.0, 1.7e9, 9e13, -9e13, 1e14, 1e22, 1e300, -1e300, 1.7e308])
STEPS = st.sampled_from([0.01, 0.02, 0.0199, 1e-9, 0.3, 7.0, 1e6, 1e13, 1e300])


@given(first=TIMES, steps=st.lists(STEPS, min_size=1, max_size=40), spans=st.lists(
    st.tuples(TIMES | st.floats(-1e3, 1e3), TIMES | st.floats(-1e3, 1e3)), max_size=3))
@settings(max_examples=150)
def test_any_t_column_and_spans_read_or_raise_a_dataset_error(
    first: float, steps: list[float], spans: list[tuple[float, float]]
) -> None:
    """Huge, tiny and stepping times, and spans of any size: a Dataset or one DatasetError, never a hang,
    an OverflowError or a traceback of another kind."""
    with np.errstate(over="ignore"):
        t = first + np.concatenate([[0.0], np.cumsum(steps)])
    rows = "".join(f"{v!r},0,0,1,0,0,0\n" for v in t.tolist())
    labels = "".join(f"walk,{a!r},{b!r},WALKING\n" for a, b in spans)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "walk.csv").write_text("t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z\n" + rows)
        (folder / "labels.csv").write_text("recording,start_s,end_s,activity\n" + labels)
        try:
            data = read_dataset(folder)
        except DatasetError as exc:
            assert "\n" not in str(exc)
            return
        assert all(len(r) >= 1 for r in data.recordings)
