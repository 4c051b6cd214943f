"""examples/producer.py streaming real sensor logs: parsing, conversion, alignment, frames, errors.

The logs are synthesised from a real HAPT recording (experiment 10, subject
5, a training subject) rendered as phones log it (harstream/data/device.py: another
rate, jittered instants, m/s²), written in the layouts logger apps use. Every
frame the producer would send is decoded with harstream.protocol's decoder.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import zmq

from harstream.data.device import Device
from harstream.data.hapt import read_dataset
from harstream.data.types import Dataset, Recording, window_activity
from harstream.protocol import (
    STANDARD_GRAVITY,
    Chunk,
    ErrorEvent,
    Prediction,
    StatsEvent,
    decode_chunk,
    encode_chunk,
)
from harstream.serve.client import Subscriber
from harstream.signal import resample
from harstream.signal.windows import window_ends

PRODUCER = Path(__file__).resolve().parents[1] / "examples" / "producer.py"
EPOCH_NS = 1_700_000_000_000_000_000
EXPERIMENT, USER = 10, 5
SLICE = 2000  # 40 s of the recording for the fast tests


def _load_producer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harstream_example_producer", PRODUCER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


producer = _load_producer()


@pytest.fixture(scope="module")
def dataset(hapt_dir: Path) -> Dataset:
    return read_dataset(hapt_dir, {USER})


@pytest.fixture(scope="module")
def recording(dataset: Dataset) -> Recording:
    (rec,) = [r for r in dataset.recordings if r.experiment == EXPERIMENT]
    return rec


@pytest.fixture(scope="module")
def part(recording: Recording) -> npt.NDArray[np.float64]:
    """40 s of the recording, (n, 6), acc in g and gyro in rad/s."""
    return recording.samples[5000:5000 + SLICE].astype(np.float64)


def _cell(value: Any) -> str:
    return str(int(value)) if isinstance(value, int | np.integer) else repr(float(value))


def write_csv(path: Path, header: Sequence[str], columns: Sequence[npt.ArrayLike], sep: str = ",") -> Path:
    """A CSV file with ``header`` and one column per array (ints written as ints, floats exactly)."""
    cols = [np.asarray(c) for c in columns]
    lines = [sep.join(header)] + [sep.join(_cell(c[i]) for c in cols) for i in range(len(cols[0]))]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def render(x: npt.NDArray[np.float64], device: Device) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The device's samples (float32 values as float64) and their times in s (nominal when not jittered)."""
    samples, times = device.render(x)
    if times is None:
        times = np.arange(len(samples)) / device.rate_hz
    return samples.astype(np.float64), times


def ns(times: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    return EPOCH_NS + np.round(times * 1e9).astype(np.int64)


def sensor_logger(path: Path, times_ns: npt.NDArray[np.int64], xyz: npt.NDArray[np.float64]) -> Path:
    """A Sensor Logger file: ``time`` (ns since epoch), ``seconds_elapsed``, then z, y, x."""
    elapsed = (times_ns - times_ns[0]) / 1e9
    return write_csv(path, ["time", "seconds_elapsed", "z", "y", "x"],
                     [times_ns, elapsed, xyz[:, 2], xyz[:, 1], xyz[:, 0]])


def joined(path: Path, times: npt.ArrayLike, samples: npt.NDArray[np.float64], sep: str = ",") -> Path:
    """The joined layout: ``t,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z``."""
    return write_csv(path, ["t", "acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"],
                     [times, *samples.T], sep)


def load(**options: Any) -> Any:
    return producer.load_log(producer.Options(**options))


Messages = list[tuple[float, Chunk, dict[str, Any]]]


def decoded(log: Any, chunk: int = 25, speed: float = 1.0, start: float | None = 1.7e9
            ) -> tuple[Messages, npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Every message the producer would send for ``log``, decoded: (due, chunk, header), all samples, all times."""
    messages = []
    for due, frames in producer.log_messages(log, "phone-1", chunk, speed, start):
        messages.append((due, decode_chunk(frames), json.loads(frames[1])))
    samples = np.concatenate([c.samples for _, c, _ in messages])
    times = np.concatenate([c.times if c.times is not None else [] for _, c, _ in messages])
    return messages, samples, times


def test_sensor_logger_android_files_are_aligned_converted_and_framed(tmp_path: Path,
                                                                     part: npt.NDArray[np.float64]) -> None:
    """TotalAcceleration.csv (100 Hz, 4 ms jitter, m/s²) + Gyroscope.csv (200 Hz, its own instants)."""
    acc, acc_t = render(part, Device(100.0, jitter_ms=4, acc_unit="m/s2", seed=1))
    gyro, gyro_t = render(part, Device(200.0, jitter_ms=2, seed=2))
    acc_ns, gyro_ns = ns(acc_t), ns(gyro_t)
    sensor_logger(tmp_path / "TotalAcceleration.csv", acc_ns, acc[:, :3])
    sensor_logger(tmp_path / "Gyroscope.csv", gyro_ns, gyro[:, 3:])

    log = load(acc=str(tmp_path / "TotalAcceleration.csv"), gyro=str(tmp_path / "Gyroscope.csv"),
               acc_unit="m/s2")
    inside = (acc_ns >= gyro_ns[0]) & (acc_ns <= gyro_ns[-1])  # no extrapolation of the gyro
    assert len(log.times) == inside.sum() < len(acc_ns)
    assert log.rate == 100 and log.units == {"acc": "m/s2"}

    messages, samples, times = decoded(log, chunk=25, speed=2.0, start=1.7e9)
    assert [c.seq for _, c, _ in messages] == list(range(0, len(log.times), 25))
    assert [c.restart for _, c, _ in messages] == [True] + [False] * (len(messages) - 1)
    assert {c.rate for _, c, _ in messages} == {100}
    assert {json.dumps(h.get("units")) for _, _, h in messages} == {'{"acc": "m/s2"}'}
    kept_ns = acc_ns[inside]
    np.testing.assert_allclose(times, (kept_ns - kept_ns[0]) / 1e9, rtol=0, atol=1e-12)
    assert np.all(np.diff(times) > 0)
    for due, c, _ in messages:  # paced at each chunk's last sample, t0 at its first, at 2x
        assert c.times is not None and c.t0 is not None
        assert due == pytest.approx(float(c.times[-1]) / 2.0)
        assert c.t0 == pytest.approx(1.7e9 + float(c.times[0]) / 2.0)
    # The engine reads g: the logged m/s² (float32) divided by standard gravity.
    np.testing.assert_allclose(samples[:, :3], acc[inside, :3] / STANDARD_GRAVITY, rtol=1e-6, atol=1e-7)
    # Gyro: linear interpolation of the gyro file at the accelerometer's instants ...
    gyro_s = (gyro_ns - kept_ns[0]) / 1e9
    expected = np.column_stack([np.interp(times, gyro_s, gyro[:, c]) for c in (3, 4, 5)])
    np.testing.assert_allclose(samples[:, 3:], expected, rtol=0, atol=1e-6)
    # ... which is the true signal there (rendered at the accelerometer's instants), not one shifted.
    error = np.abs(samples[:, 3:] - acc[inside, 3:]).max()
    shifted = np.abs(samples[1:, 3:] - acc[inside][:-1, 3:]).max()
    assert error < 0.05 and shifted > 10 * error  # measured: 0.019 and 0.94 rad/s


def test_joined_file_at_50_hz_streams_the_recording_exactly(tmp_path: Path,
                                                             part: npt.NDArray[np.float64]) -> None:
    """The project's own layout, t in s, g and rad/s: what arrives is the recording, bit for bit."""
    t = 1234.5 + np.arange(len(part)) / 50
    log = load(csv=str(joined(tmp_path / "rec.csv", t, part)))
    assert log.rate == 50 and log.units is None and log.notes == ()
    messages, samples, times = decoded(log, chunk=50)
    assert len(messages) == SLICE // 50
    assert all("units" not in h for _, _, h in messages)
    np.testing.assert_array_equal(samples, part.astype(np.float32))
    np.testing.assert_allclose(times, t - t[0], rtol=0, atol=1e-9)


def test_ios_log_with_gravity_apart_needs_the_sign_flipped(tmp_path: Path, part: npt.NDArray[np.float64]) -> None:
    """iOS-style: user acceleration and gravity in separate files, m/s², face up = -z."""
    acc, t = render(part, Device(100.0, jitter_ms=3, acc_unit="m/s2", seed=3))
    total = -acc[:, :3]  # iOS's sign
    gravity = np.column_stack([np.convolve(total[:, c], np.ones(51) / 51, mode="same") for c in range(3)])
    times = ns(t)
    sensor_logger(tmp_path / "Accelerometer.csv", times, total - gravity)  # gravity removed
    sensor_logger(tmp_path / "Gravity.csv", times, gravity)
    sensor_logger(tmp_path / "Gyroscope.csv", times, acc[:, 3:])
    files = {"acc": str(tmp_path / "Accelerometer.csv"), "gyro": str(tmp_path / "Gyroscope.csv"),
             "acc_unit": "m/s2"}

    with pytest.raises(producer.LogError, match=r"gravity \(median \|acceleration averaged over 1 s\|\) is "
                                                r"0\.0\d+ g.*gravity removed"):
        load(**files)
    flipped = load(**files, gravity=str(tmp_path / "Gravity.csv"), acc_sign=-1)
    _, samples, _ = decoded(flipped)
    np.testing.assert_allclose(samples[:, :3], acc[:, :3] / STANDARD_GRAVITY, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(samples[:, 3:], acc[:, 3:], rtol=0, atol=1e-6)
    as_logged = load(**files, gravity=str(tmp_path / "Gravity.csv"))  # nothing guessed: -1 g face up stays
    _, samples, _ = decoded(as_logged)
    np.testing.assert_allclose(samples[:, :3], -acc[:, :3] / STANDARD_GRAVITY, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("unit", "scale", "as_int"),
    [("s", 1.0, False), ("ms", 1e3, False), ("us", 1e6, True), ("ns", 1e9, True)],
)
def test_time_unit_auto_rule(tmp_path: Path, part: npt.NDArray[np.float64], unit: str, scale: float,
                             as_int: bool) -> None:
    _, t = render(part, Device(50.0, jitter_ms=5, seed=4))
    raw = np.round(t * scale).astype(np.int64) + 10**6 if as_int else t * scale + 17.0
    log = load(csv=str(joined(tmp_path / "log.csv", raw, part)))
    expected = (raw - raw[0]) / scale
    np.testing.assert_allclose(log.times, expected, rtol=0, atol=1e-9)
    assert log.rate == 50
    assert producer.time_unit(producer.read_series(tmp_path / "log.csv", None, [("acc", None, False)])[0]) == unit


def test_time_unit_explicit_or_stated(tmp_path: Path, part: npt.NDArray[np.float64]) -> None:
    t_ms = np.arange(len(part)) * 20.0
    path = joined(tmp_path / "log.csv", t_ms, part)
    with pytest.raises(producer.LogError, match=r"0\.02 ms \(5e\+04 Hz\): expected a rate within 20-500 Hz"):
        load(csv=str(path), time_unit="us")
    assert load(csv=str(path), time_unit="ms").rate == 50
    # A unit in the header wins over the automatic rule, and contradicting it is an error.
    stated = write_csv(tmp_path / "stated.csv", ["Time (ms)", "acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y",
                                                 "gyro_z"], [t_ms, *part.T])
    assert load(csv=str(stated)).rate == 50
    with pytest.raises(producer.LogError, match=r"'Time \(ms\)' says ms, but --time-unit s"):
        load(csv=str(stated), time_unit="s")


def test_header_names_and_units_of_other_apps(tmp_path: Path, part: npt.NDArray[np.float64]) -> None:
    """phyphox-style names with units; SensorLog-style names given with options."""
    x = part[:500]
    t = np.arange(len(x)) / 100
    phyphox = write_csv(tmp_path / "phyphox.csv",
                        ['"Time (s)"', '"Acceleration x (m/s^2)"', '"Acceleration y (m/s^2)"',
                         '"Acceleration z (m/s^2)"', '"Gyroscope x (rad/s)"', '"Gyroscope y (rad/s)"',
                         '"Gyroscope z (rad/s)"'], [t, *(x[:, :3] * STANDARD_GRAVITY).T, *x[:, 3:].T], sep="\t")
    log = load(csv=str(phyphox))
    assert (log.acc_unit, log.gyro_unit, log.rate) == ("m/s2", "rad/s", 100)
    np.testing.assert_allclose(log.in_g_and_rad_s(), x, rtol=1e-12, atol=1e-12)
    with pytest.raises(producer.LogError, match=r"column 'Acceleration x \(m/s\^2\)' says m/s2, but --acc-unit g"):
        load(csv=str(phyphox), acc_unit="g")

    names = ["loggingSample(N)", "accelerometerTimestamp_sinceReboot(s)", "accelerometerAccelerationX(G)",
             "accelerometerAccelerationY(G)", "accelerometerAccelerationZ(G)", "gyroRotationX(rad/s)",
             "gyroRotationY(rad/s)", "gyroRotationZ(rad/s)"]
    sensorlog = write_csv(tmp_path / "sensorlog.csv", names,
                          [np.arange(len(x)), 5000.25 + t, *(-x[:, :3]).T, *x[:, 3:].T], sep=";")
    with pytest.raises(producer.LogError, match=r"sensorlog\.csv:1: no time column: expected one named t or "
                                                r"time or timestamp .*--time-col.*'loggingSample\(N\)'"):
        load(csv=str(sensorlog))
    log = load(csv=str(sensorlog), time_col="accelerometerTimestamp_sinceReboot(s)",
               acc_cols="accelerometerAccelerationX(G),accelerometerAccelerationY(G),accelerometerAccelerationZ(G)",
               gyro_cols="gyrorotationx,gyrorotationy,gyrorotationz", acc_sign=-1)
    assert (log.acc_unit, log.rate) == ("g", 100)
    np.testing.assert_allclose(log.in_g_and_rad_s(), x, rtol=0, atol=1e-15)


def test_motionsense_ios_file_without_times(motionsense_dir: Path) -> None:
    """A real iOS Core Motion CSV (MotionSense, walking, subject 1): no time column, gravity and user
    acceleration apart, iOS's sign (its README: protocol-v1 acc is -(gravity + userAcceleration))."""
    path = motionsense_dir / "A_DeviceMotion_data" / "wlk_7" / "sub_1.csv.gz"
    with pytest.raises(producer.LogError, match=r"sub_1\.csv\.gz:1: no time column: .*give its rate with --rate"):
        load(csv=str(path))
    with pytest.raises(producer.LogError, match=r"no accelerometer x column: .*--acc-cols.*'userAcceleration\.x'"):
        load(csv=str(path), rate=50)
    user_acc = "userAcceleration.x,userAcceleration.y,userAcceleration.z"
    log = load(csv=str(path), rate=50, acc_cols=user_acc, gravity_cols="gravity.x,gravity.y,gravity.z",
               acc_sign=-1)
    with gzip.open(path, "rt") as f:
        columns = f.readline().strip().split(",")
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    col = {name: i for i, name in enumerate(columns)}
    gravity = raw[:, [col[f"gravity.{a}"] for a in "xyz"]]
    user = raw[:, [col[f"userAcceleration.{a}"] for a in "xyz"]]
    gyro = raw[:, [col[f"rotationRate.{a}"] for a in "xyz"]]  # found by name: rotation_rate + axis
    assert log.rate == 50 and not log.timed and log.units is None
    np.testing.assert_allclose(log.samples, np.hstack([-(gravity + user), gyro]), rtol=0, atol=1e-15)
    messages, samples, _ = decoded(log)
    assert all(c.times is None and c.native for _, c, _ in messages)  # 50 Hz, no timestamps: no resampling
    assert 0.95 < float(np.median(np.linalg.norm(samples[:, :3], axis=1))) < 1.15  # walking: 1.07 g
    assert float(samples[:, 1].mean()) < -0.7  # upside down in the pocket: "up" is -y (MotionSense README)
    assert log.notes == (f"{path}: no time column: rows taken as evenly spaced at 50 Hz (--rate), sent without "
                         f"timestamps",)


def test_duplicates_pauses_and_gz(tmp_path: Path, part: npt.NDArray[np.float64]) -> None:
    t = np.arange(len(part)) / 50
    t[1000:] += 0.5  # the phone paused for half a second
    rows = np.r_[np.arange(len(part)), [10, 10, 700]]  # three rows logged twice
    rows.sort()
    path = joined(tmp_path / "log.csv.gz", t[rows], part[rows])
    log = load(csv=str(path))
    assert len(log.times) == len(part)
    np.testing.assert_array_equal(log.samples, part)
    assert log.notes == (f"{path}: dropped 3 rows repeating the previous row's time",
                         f"{path}: 1 pauses over 0.1 s (longest 0.520 s): the engine reports each as seq_gap "
                         f"and starts the stream's windows again after it")


def _errors_cases(tmp_path: Path, part: npt.NDArray[np.float64]) -> list[tuple[dict[str, Any], str]]:
    x = part[:300]
    t = np.arange(len(x)) / 50
    good = joined(tmp_path / "good.csv", t, x)
    lines = good.read_text().splitlines()

    def edited(name: str, index: int, *new: str) -> Path:
        """``good.csv`` with line ``index + 1`` replaced by ``new`` (or removed when none)."""
        path = tmp_path / name
        path.write_text("\n".join([*lines[:index], *new, *lines[index + 1:]]) + "\n")
        return path

    def cell(index: int, column: int, text: str) -> str:
        fields = lines[index].split(",")
        return ",".join([*fields[:column], text, *fields[column + 1:]])

    bad_number = edited("bad_number.csv", 5, cell(5, 3, "n/a"))
    fields = edited("fields.csv", 7, lines[7] + ",0")
    back = edited("back.csv", 9, lines[10], lines[9], "")  # rows 9 and 10 swapped (line 11 kept blank)
    nan = edited("nan.csv", 3, cell(3, 5, "nan"))
    headerless = edited("headerless.csv", 0)
    gyro = sensor_logger(tmp_path / "Gyroscope.csv", ns(t + 1000.0), x[:, 3:])
    acc = sensor_logger(tmp_path / "Acc.csv", ns(t), x[:, :3])
    slow = joined(tmp_path / "slow.csv", np.arange(len(x)) / 10, x)
    return [
        ({"csv": str(bad_number)}, r"bad_number\.csv:6: column 'acc_z': expected a number, got 'n/a'"),
        ({"csv": str(fields)}, r"fields\.csv:8: expected 7 fields like the header \(line 1\), got 8"),
        ({"csv": str(back)}, r"back\.csv:11: column 't': time 0\.16 is before the previous row's 0\.18 "
                             r"\(line 10\); expected times in increasing order"),
        ({"csv": str(nan)}, r"nan\.csv:4: column 'gyro_y': expected a finite number, got 'nan'"),
        ({"csv": str(headerless)}, r"headerless\.csv:1: expected a header row naming the columns"),
        ({"csv": str(tmp_path / "missing.csv")}, r"missing\.csv: file not found"),
        ({"csv": str(good), "gyro_cols": "gx,gy"}, r"--gyro-cols: expected three column names X,Y,Z"),
        ({"csv": str(good), "gyro_cols": "gx,gy,gz"}, r"good\.csv:1: no column 'gx' \(--gyro-cols\); the header "
                                                      r"has 't', 'acc_x'"),
        ({"acc": str(acc), "gyro": str(gyro)}, r"Gyroscope\.csv: its times \(1000\.000 to 1005\.980 s\) do not "
                                               r"overlap .*Acc\.csv's \(0\.000 to 5\.980 s"),
        ({"acc": str(acc), "gyro": str(gyro), "time_unit": "s"},
         r"Acc\.csv: the median interval between samples is 2e\+10 ms .*expected a rate within 20-500 Hz"),
        ({"csv": str(slow)}, r"slow\.csv:1: column 't': the median interval between rows is 0\.1 \(file units\): "
                             r"no unit of s, ms, us, ns makes it a rate within 20-500 Hz"),
        ({"csv": str(good), "acc_unit": "m/s2"},
         r"good\.csv: gravity \(median \|acceleration averaged over 1 s\|\) is 0\.10\d g with --acc-unit m/s2: "
         r"expected 0\.5-1\.5 g.*"
         r"look like g: pass --acc-unit g"),
        ({"csv": str(good), "gyro_unit": "rad/s", "acc_unit": "g", "rate": 700.0},
         r"--rate: expected 20-500 Hz, got 700"),
    ]


def test_errors_name_the_file_line_and_what_was_expected(tmp_path: Path, part: npt.NDArray[np.float64]) -> None:
    for options, message in _errors_cases(tmp_path, part):
        with pytest.raises(producer.LogError, match=message):
            load(**options)


def test_unit_checks_catch_m_s2_and_deg_s_read_as_g_and_rad_s(tmp_path: Path,
                                                              part: npt.NDArray[np.float64]) -> None:
    t = np.arange(len(part)) / 50
    in_m_s2 = part.copy()
    in_m_s2[:, :3] *= STANDARD_GRAVITY
    with pytest.raises(producer.LogError, match=r"averaged over 1 s\|\) is 9\.\d+ g .*look like m/s²: pass "
                                                r"--acc-unit m/s2 \(--no-check skips this\)"):
        load(csv=str(joined(tmp_path / "a.csv", t, in_m_s2)))
    assert load(csv=str(tmp_path / "a.csv"), acc_unit="m/s2").acc_unit == "m/s2"
    assert load(csv=str(tmp_path / "a.csv"), check=False).acc_unit == "g"
    in_deg = part.copy()
    in_deg[:, 3:] *= 180 / np.pi
    with pytest.raises(producer.LogError, match=r"99th percentile of \|angular rate\| is \d+ rad/s .*look like "
                                                r"deg/s: pass --gyro-unit deg/s"):
        load(csv=str(joined(tmp_path / "d.csv", t, in_deg)))
    log = load(csv=str(tmp_path / "d.csv"), gyro_unit="deg/s")
    assert log.units == {"gyro": "deg/s"}
    _, samples, _ = decoded(log)
    np.testing.assert_allclose(samples[:, 3:], part[:, 3:], rtol=1e-6, atol=1e-6)


def test_send_log_paces_each_chunk_at_its_last_sample(tmp_path: Path, part: npt.NDArray[np.float64],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    log = load(csv=str(joined(tmp_path / "log.csv", np.arange(100) / 50, part[:100])))
    now = [100.0]
    sent: list[tuple[float, list[bytes]]] = []

    class Push:
        def send_multipart(self, frames: list[bytes]) -> None:
            sent.append((now[0], frames))

    def sleep(seconds: float) -> None:
        assert seconds > 0
        now[0] += seconds

    monkeypatch.setattr(producer.time, "sleep", sleep)
    assert producer.send_log(Push(), log, "phone-1", chunk=30, speed=0.5, clock=lambda: now[0]) == 4
    assert [s for s, _ in sent] == pytest.approx([100 + 29 / 25, 100 + 59 / 25, 100 + 89 / 25, 100 + 99 / 25])
    assert [decode_chunk(f).seq for _, f in sent] == [0, 30, 60, 90]


def test_command_line_dry_run_and_one_line_errors(tmp_path: Path, part: npt.NDArray[np.float64],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = joined(tmp_path / "log.csv", np.arange(len(part)) / 50, part)
    producer.main(["tcp://127.0.0.1:1", "walker-2", "--csv", str(path), "--dry-run", "--chunk", "40"])
    err = capsys.readouterr().err
    assert err == (f"{path}: 2000 samples, 40.0 s, nominal 50 Hz (median interval 20.000 ms), acc in g, "
                   f"gyro in rad/s; 50 messages of up to 40 samples\n")
    for argv, message in [
        (["--csv", str(tmp_path / "nope.csv")], f"producer: {tmp_path / 'nope.csv'}: file not found\n"),
        (["--csv", str(path), "--chunk", "3001"], "producer: --chunk: expected 1-3000 samples, got 3001\n"),
        (["--acc", str(path)], "producer: expected a log: --csv FILE, or --acc FILE with --gyro FILE\n"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            producer.main(argv)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == message


# --- end to end: a real `harstream serve` ----------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(
    free_endpoint: Callable[[], str], serve_process: Callable[..., Any]
) -> Iterator[tuple[str, str, list[str]]]:
    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish) as (_, stats):
        yield ingest, publish, list(stats.fields["labels"])


def _android(tmp_path: Path, x: npt.NDArray[np.float64]) -> tuple[list[str], float]:
    acc, acc_t = render(x, Device(100.0, jitter_ms=4, acc_unit="m/s2", seed=5))
    gyro, gyro_t = render(x, Device(200.0, jitter_ms=2, seed=6))
    sensor_logger(tmp_path / "TotalAcceleration.csv", ns(acc_t), acc[:, :3])
    sensor_logger(tmp_path / "Gyroscope.csv", ns(gyro_t), gyro[:, 3:])
    first = float(acc_t[acc_t >= gyro_t[0]][0])  # the stream's first sample, in recording seconds
    return ["--acc", str(tmp_path / "TotalAcceleration.csv"), "--gyro", str(tmp_path / "Gyroscope.csv"),
            "--acc-unit", "m/s2"], first


def _joined(tmp_path: Path, x: npt.NDArray[np.float64]) -> tuple[list[str], float]:
    samples, t = render(x, Device(50.0, jitter_ms=8, seed=7))
    return ["--csv", str(joined(tmp_path / "rec.csv", t, samples))], float(t[0])


@pytest.mark.slow
@pytest.mark.parametrize("layout", [_android, _joined], ids=["android-2-files-100Hz-m/s2", "joined-50Hz-jitter"])
def test_live_engine_classifies_a_streamed_log_on_its_50_hz_grid(
    engine: tuple[str, str, list[str]], tmp_path: Path, recording: Recording, dataset: Dataset,
    layout: Callable[[Path, npt.NDArray[np.float64]], tuple[list[str], float]],
) -> None:
    """The whole recording (5 min) as a phone logged it, through the producer's command line."""
    ingest, publish, labels = engine
    args, first = layout(tmp_path, recording.samples.astype(np.float64))
    options = producer._parser().parse_args(args)
    log = producer.load_log(producer.Options(
        csv=options.csv, acc=options.acc, gyro=options.gyro, acc_unit=options.acc_unit))
    result = resample.resample(resample.start(log.rate, origin=0.0), log.in_g_and_rad_s(), log.times)
    assert result.gaps == () and result.first_index == 0
    expected = set(window_ends(0, len(result.out)).tolist())
    assert len(expected) == (len(recording) - 128) // 64 + 1  # as many as the recording has at 50 Hz

    stream, plain = f"log-{layout.__name__.strip('_')}", f"plain-{layout.__name__.strip('_')}"
    want = {stream: expected, plain: set(window_ends(0, len(recording)).tolist())}
    received: dict[str, dict[int, Prediction]] = {stream: {}, plain: {}}
    errors: list[ErrorEvent] = []
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    with Subscriber(publish) as sub, ctx.socket(zmq.PUSH) as push:
        push.connect(ingest)
        while not isinstance(sub.receive(timeout_s=2.0), StatsEvent):  # subscribed
            pass
        for start in range(0, len(recording), 25):  # the recording itself, as the baseline
            push.send_multipart(encode_chunk(plain, start, recording.samples[start:start + 25]))
        run = subprocess.run([sys.executable, str(PRODUCER), ingest, stream, *args, "--speed", "0"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        deadline = time.monotonic() + 30
        for event in sub.events(timeout_s=5.0):
            if isinstance(event, Prediction) and event.stream in received:
                assert event.seq_end not in received[event.stream]
                received[event.stream][event.seq_end] = event
            elif isinstance(event, ErrorEvent):
                errors.append(event)
            if all(set(received[k]) >= want[k] for k in want) or time.monotonic() > deadline:
                break
    assert errors == []
    assert set(received[stream]) == expected  # every window of the 50 Hz grid, exactly once
    assert list(received[stream]) == sorted(received[stream])
    assert set(received[plain]) == want[plain]
    # The conversions are right: the log's windows are classified as the recording's are.
    ends = np.array(sorted(expected))
    offset = round(first * 50)  # the log's grid starts this many 50 Hz samples into the recording
    truth = window_activity(dataset.segments_of(recording), ends + offset)
    scored = truth > 0
    log_label = np.array([labels.index(received[stream][e].label) + 1 for e in ends])
    plain_label = np.array([labels.index(received[plain][e + offset].label) + 1 for e in ends])
    log_accuracy = float(np.mean(log_label[scored] == truth[scored]))
    plain_accuracy = float(np.mean(plain_label[scored] == truth[scored]))
    agreement = float(np.mean(log_label == plain_label))
    assert scored.sum() > 100
    assert log_accuracy >= plain_accuracy - 0.02 and agreement >= 0.9, (log_accuracy, plain_accuracy, agreement)
