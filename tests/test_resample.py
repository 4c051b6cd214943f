"""Online resampling onto the 50 Hz grid: chunk invariance, identity at 50 Hz, accuracy,
anti-aliasing, dropouts, and rejected chunks leaving the state as it was."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from harstream.errors import HarstreamError
from harstream.signal.resample import (
    MAX_ABS_VALUE,
    Gap,
    Resampled,
    ResampleError,
    ResampleState,
    anti_alias_sos,
    delay_s,
    resample,
    start,
)

RATES = (25.0, 30.0, 50.0, 60.0, 100.0, 120.5, 200.0, 500.0)


def _signal(t: np.ndarray, seed: int) -> np.ndarray:
    """A phone-like 6-axis signal at times ``t`` (s), with some noise."""
    rng = np.random.default_rng(seed)
    acc = np.c_[0.3 * np.sin(2 * np.pi * 1.7 * t), 0.2 * np.cos(2 * np.pi * 0.9 * t), 1.0 + 0.1 * np.sin(5 * t)]
    gyro = 0.5 * np.sin(2 * np.pi * np.r_[0.7, 2.3, 4.1][None, :] * t[:, None])
    return (np.c_[acc, gyro] + 0.05 * rng.standard_normal((len(t), 6))).astype(np.float32)


def _jittered_times(n: int, rate: float, jitter: float, seed: int, t_first: float = 0.0) -> np.ndarray:
    """Nominal times plus uniform jitter in ±``jitter`` s, sorted (the true sampling times)."""
    rng = np.random.default_rng(seed)
    t = np.sort(t_first + np.arange(n) / rate + rng.uniform(-jitter, jitter, n))
    for i in np.flatnonzero(np.diff(t) <= 0) + 1:  # two jittered times rounded to one double (t_first ~ 1e9)
        t[i] = np.nextafter(t[i - 1], np.inf)
    assert (np.diff(t) > 0).all()
    return t


class _Run:
    """Everything a sequence of :func:`resample` calls produced, in absolute output indices."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.indices: list[np.ndarray] = []
        self.gaps: list[tuple[int, int, int, float]] = []  # stop, resume, rows before, seconds
        self.count = 0

    def add(self, r: Resampled) -> None:
        for g in r.gaps:
            self.gaps.append((g.stop, g.resume, self.count + g.offset, g.seconds))
        for first, rows in r.runs():
            self.rows.append(rows)
            self.indices.append(first + np.arange(len(rows)))
        self.count += len(r.out)

    @property
    def out(self) -> np.ndarray:
        return np.concatenate(self.rows) if self.rows else np.zeros((0, 6), np.float32)

    @property
    def index(self) -> np.ndarray:
        return np.concatenate(self.indices) if self.indices else np.zeros(0, np.int64)


def _feed(
    state: ResampleState, x: np.ndarray, times: np.ndarray | None, cuts: list[int]
) -> tuple[_Run, ResampleState]:
    run, begin = _Run(), 0
    expected_first = state.next_index
    for stop in [*sorted({c for c in cuts if 0 < c < len(x)}), len(x)]:
        r = resample(state, x[begin:stop], None if times is None else times[begin:stop])
        if expected_first is not None:  # consecutive across chunks
            assert r.first_index == expected_first
        expected_first = r.state.next_index
        run.add(r)
        state, begin = r.state, stop
    return run, state


# ---------------------------------------------------------------- chunk invariance


@settings(max_examples=1500, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    n=st.integers(1, 700),
    seq=st.integers(0, 10**6),
    seed=st.integers(0, 1000),
    cuts=st.lists(st.integers(1, 699), max_size=12),
)
def test_regular_stream_any_chunking_equals_whole(
    rate: float, n: int, seq: int, seed: int, cuts: list[int]
) -> None:
    x = _signal((seq + np.arange(n)) / rate, seed)
    whole, whole_state = _feed(start(rate, seq=seq), x, None, [])
    parts, parts_state = _feed(start(rate, seq=seq), x, None, cuts)
    np.testing.assert_allclose(parts.out, whole.out, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(parts.index, whole.index)
    assert parts_state.next_index == whole_state.next_index and parts_state.next_seq == seq + n
    # consecutive output indices, starting at the first grid point at or after seq / rate
    index = whole.index
    assert (np.diff(index) == 1).all()
    if len(index):
        assert index[0] / 50 >= seq / rate - 1e-12 and (index[0] - 1) / 50 < seq / rate
        # the last produced grid point lies at or before the last input sample
        assert index[-1] / 50 <= (seq + n - 1) / rate + 1e-12 < (index[-1] + 1) / 50
    assert not np.isnan(whole.out).any()


@settings(max_examples=1500, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    n=st.integers(1, 700),
    jitter_ms=st.floats(0.0, 10.0),
    t_first=st.floats(-1e3, 2e9),
    lead=st.floats(0.0, 1.0),
    dropouts=st.lists(st.tuples(st.integers(1, 699), st.floats(0.0, 0.5)), max_size=4),
    seed=st.integers(0, 1000),
    cuts=st.lists(st.integers(1, 699), max_size=12),
)
def test_timed_stream_any_chunking_equals_whole(
    rate: float,
    n: int,
    jitter_ms: float,
    t_first: float,
    lead: float,
    dropouts: list[tuple[int, float]],
    seed: int,
    cuts: list[int],
) -> None:
    times = _jittered_times(n, rate, jitter_ms / 1000, seed, t_first)
    for at, extra in dropouts:  # some dropouts shorter, some longer than max_gap_s
        if at < n:
            times[at:] += extra
    x = _signal(times - t_first, seed)
    origin = t_first - lead
    whole, _ = _feed(start(rate, origin=origin), x, times, [])
    parts, _ = _feed(start(rate, origin=origin), x, times, cuts)
    np.testing.assert_allclose(parts.out, whole.out, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(parts.index, whole.index)
    assert [g[:3] for g in parts.gaps] == [g[:3] for g in whole.gaps]
    np.testing.assert_allclose([g[3] for g in parts.gaps], [g[3] for g in whole.gaps])
    steps = np.diff(times)
    assert len(whole.gaps) == int((steps > 0.1).sum())
    # indices strictly increase; they jump exactly at the gaps
    assert (np.diff(whole.index) >= 1).all()
    assert int((np.diff(whole.index) > 1).sum()) <= len(whole.gaps)
    assert np.isfinite(whole.out).all()


@settings(max_examples=1500, deadline=None)
@given(
    n=st.integers(1, 500),
    seq=st.integers(0, 2**53 - 1000),
    seed=st.integers(0, 1000),
    cuts=st.lists(st.integers(1, 499), max_size=10),
)
def test_untimed_50hz_is_the_identity_bit_for_bit(n: int, seq: int, seed: int, cuts: list[int]) -> None:
    x = np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32) * 3
    state = start(50, seq=seq)
    assert state.next_index == seq
    bounds = [0, *sorted({c for c in cuts if c < n}), n]
    for begin, stop in itertools.pairwise(bounds):
        r = resample(state, x[begin:stop])
        assert r.first_index == seq + begin and r.gaps == ()
        np.testing.assert_array_equal(r.out, x[begin:stop])
        state = r.state
    assert state.next_index == seq + n


def test_untimed_index_convention() -> None:
    # 25 Hz, first chunk at input index 5 (t = 0.2 s): output index 10 is exactly that sample,
    # index 11 (t = 0.22 s) lies half-way to the next.
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    r = resample(start(25.0, seq=5), x)
    assert r.first_index == 10
    np.testing.assert_array_equal(r.out[0], x[0])
    np.testing.assert_allclose(r.out[1], (x[0] + x[1]) / 2)
    assert len(r.out) == 7 and r.state.next_index == 17  # 0.2 .. 0.32 s
    # 100 Hz from index 3 (0.03 s): the first grid point at or after it is 0.04 s, index 2
    assert start(100.0, seq=3).next_index == 2
    assert start(120.5, seq=241).next_index == 100  # 241 / 120.5 = 2 s exactly
    assert start(30.0, seq=1).next_index == 2  # 1/30 s -> 0.04 s


def test_timed_convention_matches_untimed_for_regular_times() -> None:
    # Below 50 Hz there is no filter: a timed stream with exact nominal times and origin at input
    # index 0 gives the untimed stream's indices and (to rounding) values.
    for rate in (20.0, 25.0, 30.0, 50.0):
        seq, n = 17, 300
        x = _signal((seq + np.arange(n)) / rate, 1)
        untimed = resample(start(rate, seq=seq), x)
        timed = resample(start(rate, origin=0.0), x, (seq + np.arange(n)) / rate)
        assert timed.first_index == untimed.first_index
        assert abs(len(timed.out) - len(untimed.out)) <= 1
        m = min(len(timed.out), len(untimed.out))
        np.testing.assert_allclose(timed.out[:m], untimed.out[:m], atol=1e-5)


def test_constant_input_gives_constant_output_at_every_rate() -> None:
    value = np.array([0.1, -0.2, 0.98, 0.01, 0.02, -0.03], np.float32)
    for rate in RATES:
        n = int(3 * rate)
        x = np.tile(value, (n, 1))
        untimed = resample(start(rate, seq=11), x).out
        timed = resample(start(rate, origin=0.0), x, _jittered_times(n, rate, 0.004, 2)).out
        for out in (untimed, timed):
            assert len(out) >= 140
            np.testing.assert_allclose(out, np.tile(value, (len(out), 1)), atol=1e-6)


def _reference(rate: float, x: np.ndarray, times: np.ndarray, origin: float, timed: bool) -> np.ndarray:
    """Offline resampling of a whole recording with scipy's sosfilt and numpy's interp."""
    xs = x.astype(np.float64)
    if timed and rate > 50:  # onto the nominal-rate grid anchored at the first sample
        uniform = times[0] + np.arange(int((times[-1] - times[0]) * rate) + 2) / rate
        uniform = uniform[uniform <= times[-1]]
        xs = np.stack([np.interp(uniform, times, xs[:, c]) for c in range(6)], axis=1)
        times = uniform
    sos = anti_alias_sos(rate)
    if sos is not None:
        xs, _ = signal.sosfilt(sos, xs, axis=0, zi=signal.sosfilt_zi(sos)[:, :, None] * xs[0])
    k = np.arange(int((times[0] - origin) * 50) - 2, int((times[-1] - origin) * 50) + 3)
    k = k[(k / 50 >= times[0] - origin) & (k / 50 <= times[-1] - origin)]
    return np.stack([np.interp(origin + k / 50, times, xs[:, c]) for c in range(6)], axis=1)


@settings(max_examples=1500, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    timed=st.booleans(),
    n=st.integers(2, 600),
    seq=st.integers(0, 1000),
    jitter_ms=st.floats(0.0, 10.0),
    seed=st.integers(0, 1000),
)
def test_matches_an_offline_scipy_reference(
    rate: float, timed: bool, n: int, seq: int, jitter_ms: float, seed: int
) -> None:
    if timed:
        times = _jittered_times(n, rate, jitter_ms / 1000, seed, t_first=seq / rate)
        r = resample(start(rate, origin=0.0, max_gap_s=1.0), _signal(times, seed), times)
    else:
        times = (seq + np.arange(n)) / rate
        r = resample(start(rate, seq=seq), _signal(times, seed))
    expected = _reference(rate, _signal(times, seed), times, 0.0, timed)
    assert r.out.shape == expected.shape
    np.testing.assert_allclose(r.out, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- accuracy


def _accuracy_bound(rate: float, freq: float, times: np.ndarray) -> float:
    """A bound on |output - sin(2π f (t_k - delay))| for a unit sine after the filter's start-up.

    - Linear interpolation between samples h apart errs by at most h² max|x''| / 8 = h² ω² / 8.
    - At or below 50 Hz that is all (h = the largest interval between input samples).
    - Above 50 Hz: stage 1 (timed streams: onto the uniform nominal grid) errs by h² ω² / 8;
      the filter passes that error with gain at most sum|impulse response|; the filter itself
      differs from a pure delay of ``delay_s`` by |H(f) - exp(-iω delay)| on a sinusoid; the
      final interpolation from the nominal grid errs by ω² / (8 rate²) on the filtered sine.
    Plus float32 rounding.
    """
    omega = 2 * np.pi * freq
    h = float(np.diff(times).max())
    interp = h**2 * omega**2 / 8
    sos = anti_alias_sos(rate)
    if sos is None:
        return interp + 1e-6
    impulse = signal.sosfilt(sos, np.r_[1.0, np.zeros(int(2 * rate))])
    _, resp = signal.sosfreqz(sos, worN=[freq], fs=rate)
    not_a_delay = abs(resp[0] - np.exp(-1j * omega * delay_s(rate)))
    return float(np.abs(impulse).sum()) * interp + not_a_delay + omega**2 / (8 * rate**2) + 1e-6


@pytest.mark.parametrize("rate", [25.0, 50.0, 100.0, 200.0])
@pytest.mark.parametrize("freq", [1.0, 3.0])
@pytest.mark.parametrize("jitter", [0.0, 0.010])
def test_sine_matches_the_delayed_sine_on_the_grid(rate: float, freq: float, jitter: float) -> None:
    n = int(20 * rate)
    times = _jittered_times(n, rate, jitter, seed=int(rate * freq), t_first=1_700_000_000.0)
    origin = 1_700_000_000.0 - 0.05
    x = np.zeros((n, 6))
    x[:, 0] = np.sin(2 * np.pi * freq * (times - origin))
    x[:, 4] = -x[:, 0]
    r = resample(start(rate, origin=origin), x, times)
    assert r.gaps == ()
    t_k = (r.first_index + np.arange(len(r.out))) / 50
    expected = np.sin(2 * np.pi * freq * (t_k - delay_s(rate)))
    settled = t_k > 0.5  # the filter starts in steady state for a constant, not for a sine
    error = np.abs(r.out[settled, 0] - expected[settled])
    bound = _accuracy_bound(rate, freq, np.r_[times] - origin)
    assert error.max() <= bound, (error.max(), bound)
    np.testing.assert_allclose(r.out[:, 4], -r.out[:, 0], atol=1e-6)
    # Above 50 Hz the samples are dense, so the bound's interpolation terms are small: in
    # practice the error is at most ~0.02 (3 Hz, 100 Hz, ±10 ms). At or below 50 Hz it is
    # what joining samples up to 60 ms apart by straight lines costs (up to ~0.14 at 3 Hz).
    if rate > 50:
        assert error.max() <= 0.03
    print(f"{rate:g} Hz, {freq:g} Hz sine, ±{jitter * 1000:g} ms: max error {error.max():.4f} (bound {bound:.4f})")


def test_exact_times_at_50hz_are_reproduced() -> None:
    x = _signal(np.arange(500) / 50, 4)
    r = resample(start(50, origin=0.0), x, np.arange(500) / 50)
    assert r.first_index == 0
    np.testing.assert_array_equal(r.out, x)
    # unix times are resolved to 2.4e-7 s (float64 near 1.7e9), 1.2e-5 of a period
    times = 1_700_000_000.0 + np.arange(500) / 50
    r = resample(start(50, origin=times[0]), x, times)
    assert r.first_index == 0
    np.testing.assert_allclose(r.out, x, atol=1e-5)


def test_delay_matches_the_filter_group_delay() -> None:
    assert delay_s(50.0) == 0.0 and delay_s(20.0) == 0.0
    for rate in (60.0, 100.0, 200.0, 500.0):
        assert 0.010 < delay_s(rate) < 0.022
        # a slow ramp comes out delayed by exactly delay_s
        n = int(5 * rate)
        x = np.tile(np.arange(n)[:, None] / rate, (1, 6))
        r = resample(start(rate), x)
        t_k = (r.first_index + np.arange(len(r.out))) / 50
        late = t_k > 1.0
        np.testing.assert_allclose(r.out[late, 0], t_k[late] - delay_s(rate), atol=1e-5)


@pytest.mark.parametrize(
    ("rate", "tone", "min_db"), [(200.0, 40.0, 20.0), (500.0, 40.0, 20.0), (100.0, 40.0, 40.0)]
)
def test_tones_above_the_output_nyquist_are_suppressed(rate: float, tone: float, min_db: float) -> None:
    n = int(10 * rate)
    t = np.arange(n) / rate
    x = np.zeros((n, 6))
    x[:, 0] = np.sin(2 * np.pi * tone * t)
    out = resample(start(rate), x).out[50:, 0]  # after the start-up
    attenuation = 20 * np.log10(np.sqrt(0.5) / np.sqrt(np.mean(out.astype(np.float64) ** 2)))
    assert attenuation >= min_db, attenuation  # measured: 28.0 dB at 200 Hz, 24.7 at 500, 50.2 at 100
    # without the anti-alias filter the tone would alias to 10 Hz at full strength
    plain = x[:: int(rate // 50), 0]
    assert np.sqrt(np.mean(plain**2)) > 0.6


def test_no_filter_at_or_below_50hz() -> None:
    assert anti_alias_sos(50.0) is None and anti_alias_sos(20.0) is None
    sos = anti_alias_sos(100.0)
    assert sos is not None and sos.shape == (2, 6)  # order 4 = 2 sections
    _, h = signal.sosfreqz(sos, worN=[20.0], fs=100.0)
    assert abs(abs(h[0]) - 1 / np.sqrt(2)) < 1e-3  # -3 dB at 20 Hz


# ---------------------------------------------------------------- dropouts


def test_short_dropout_is_interpolated_long_one_is_a_gap() -> None:
    times = np.r_[np.arange(10) / 50, 0.18 + 0.08 + np.arange(10) / 50]  # 0.08 s from 0.18 to 0.26
    x = np.tile(np.arange(20, dtype=np.float64)[:, None], (1, 6))
    r = resample(start(50, origin=0.0), x, times)
    assert r.gaps == ()
    assert r.first_index == 0 and len(r.out) == 23  # 0 .. 0.44 s, across the dropout
    np.testing.assert_allclose(r.out[9:14, 0], [9.0, 9.25, 9.5, 9.75, 10.0], atol=1e-5)

    times[10:] += 0.07  # now 0.15 s
    r = resample(start(50, origin=0.0), x, times)
    (gap,) = r.gaps
    assert gap == Gap(stop=10, resume=17, offset=10, seconds=pytest.approx(0.15))
    runs = r.runs()
    assert [(k, len(rows)) for k, rows in runs] == [(0, 10), (17, 9)]  # 0 .. 0.18 s, 0.34 .. 0.50 s
    np.testing.assert_array_equal(runs[0][1][:, 0], np.arange(10))
    np.testing.assert_allclose(runs[1][1][:, 0], 10.5 + np.arange(9), atol=1e-5)  # samples at 0.33 .. 0.51 s
    assert r.state.next_index == 26


@pytest.mark.parametrize("rate", [30.0, 100.0, 200.0])
def test_after_a_gap_the_stream_restarts_afresh(rate: float) -> None:
    before = _jittered_times(int(2 * rate), rate, 0.002, 1, t_first=1000.0)
    after = _jittered_times(int(3 * rate), rate, 0.002, 2, t_first=before[-1] + 0.4)
    x = _signal(np.r_[before, after] - 1000.0, 3)
    origin = 999.99
    state = start(rate, origin=origin)
    r1 = resample(state, x[: len(before)], before)
    r2 = resample(r1.state, x[len(before) :], after)
    (gap,) = r2.gaps
    assert gap.stop == r1.state.next_index and gap.offset == 0
    assert gap.resume == int(np.ceil((after[0] - origin) * 50 - 1e-9))
    assert gap.seconds == pytest.approx(after[0] - before[-1])
    fresh = resample(start(rate, origin=origin), x[len(before) :], after)
    assert fresh.first_index == gap.resume
    np.testing.assert_array_equal(r2.out, fresh.out)
    # a gap between two chunks and the same gap inside one chunk agree
    whole = resample(state, x, np.r_[before, after])
    np.testing.assert_array_equal(whole.out, np.r_[r1.out, r2.out])
    assert whole.gaps == (gap._replace(offset=len(r1.out)),)


def test_several_gaps_in_one_chunk() -> None:
    times = np.r_[0.0, 0.02, 0.04, 0.5, 0.52, 1.3, 1.32, 1.34]
    x = np.tile(np.arange(8, dtype=np.float64)[:, None], (1, 6))
    r = resample(start(25.0, origin=0.0, max_gap_s=0.2), x, times)
    assert [(g.stop, g.resume, g.offset) for g in r.gaps] == [(3, 25, 3), (27, 65, 5)]
    assert [(k, rows[:, 0].tolist()) for k, rows in r.runs()] == [
        (0, [0.0, 1.0, 2.0]), (25, [3.0, 4.0]), (65, [5.0, 6.0, 7.0])
    ]  # fmt: skip


def test_untimed_streams_have_no_gaps() -> None:
    r = resample(start(20.0), np.zeros((100, 6)))
    assert r.gaps == () and len(r.out) == 248  # 0 .. 4.95 s at 20 Hz -> 0 .. 4.94 s at 50 Hz


# ---------------------------------------------------------------- rejected chunks


def test_times_not_increasing_are_rejected_and_the_state_is_unchanged() -> None:
    rate = 100.0
    times = _jittered_times(300, rate, 0.003, 5)
    x = _signal(times, 5)
    state = resample(start(rate, origin=0.0), x[:100], times[:100]).state
    snapshot = (state.next_index, state.last_time, state.zi.copy() if state.zi is not None else None)

    bad = times[100:200].copy()
    bad[40] = bad[39]
    with pytest.raises(ResampleError, match=r"at index 39 then .* at index 40") as info:
        resample(state, x[100:200], bad)
    assert repr(float(bad[39])) in str(info.value)
    with pytest.raises(ResampleError, match="the previous chunk's last"):
        resample(state, x[100:200], times[100:200] - 0.5)
    with pytest.raises(ResampleError, match="index 0 after"):
        resample(state, x[99:200], times[99:200])  # repeats the last time
    assert isinstance(info.value, HarstreamError) and isinstance(info.value, ValueError)

    assert state.next_index == snapshot[0] and state.last_time == snapshot[1]
    assert state.zi is not None and snapshot[2] is not None
    np.testing.assert_array_equal(state.zi, snapshot[2])
    # the caller rejects the chunks and goes on as if they never came
    went_on = resample(state, x[100:], times[100:])
    straight = resample(start(rate, origin=0.0), x, times)
    np.testing.assert_array_equal(np.r_[resample(start(rate, origin=0.0), x[:100], times[:100]).out, went_on.out],
                                  straight.out)  # fmt: skip


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ResampleError, match="rate_hz"):
        start(19.9)
    with pytest.raises(ResampleError, match="rate_hz"):
        start(float("nan"))
    with pytest.raises(ResampleError, match="rate_hz"):
        start(501)
    with pytest.raises(ResampleError, match="seq"):
        start(50, seq=-1)
    with pytest.raises(ResampleError, match="max_gap_s"):
        start(50, origin=0.0, max_gap_s=0.0)
    with pytest.raises(ResampleError, match="origin"):
        start(50, origin=float("inf"))
    untimed, timed = start(60), start(60, origin=0.0)
    with pytest.raises(ResampleError, match=r"samples: expected shape \(n, 6\)"):
        resample(untimed, np.zeros((5, 3)))
    with pytest.raises(ResampleError, match="times: this stream was started without"):
        resample(untimed, np.zeros((2, 6)), np.r_[0.0, 1.0])
    with pytest.raises(ResampleError, match="times: this stream was started with"):
        resample(timed, np.zeros((2, 6)))
    with pytest.raises(ResampleError, match=r"times: expected shape \(2,\)"):
        resample(timed, np.zeros((2, 6)), np.r_[0.0, 1.0, 2.0])
    with pytest.raises(ResampleError, match="expected finite timestamps, got nan at index 1"):
        resample(timed, np.zeros((2, 6)), np.r_[0.0, np.nan])
    bad = np.zeros((3, 6))
    bad[2, 4] = np.inf
    with pytest.raises(ResampleError, match="at row 2, column 4"):
        resample(untimed, bad)
    bad[2, 4] = np.nan
    with pytest.raises(ResampleError, match="at row 2, column 4"):
        resample(timed, bad, np.r_[0.0, 0.1, 0.2])


def test_empty_chunk_changes_nothing() -> None:
    state = start(100.0, seq=10)
    r = resample(state, np.zeros((0, 6)))
    assert r.out.shape == (0, 6) and r.first_index == 5 and r.state is state and r.gaps == ()
    timed = start(100.0, origin=0.0)
    r = resample(timed, np.zeros((0, 6)), np.zeros(0))
    assert r.out.shape == (0, 6) and r.state is timed


@settings(max_examples=1500, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    values=st.lists(
        st.lists(st.floats(-0.99 * MAX_ABS_VALUE, 0.99 * MAX_ABS_VALUE), min_size=6, max_size=6),
        min_size=1, max_size=60,
    ),
    steps=st.lists(st.floats(1e-6, 0.3), min_size=60, max_size=60),
    t_first=st.floats(-1e9, 1e9),
)  # fmt: skip
def test_finite_input_never_gives_nan_or_inf(
    rate: float, values: list[list[float]], steps: list[float], t_first: float
) -> None:
    x = np.array(values)
    times = t_first + np.cumsum(steps[: len(x)])
    for r in (
        resample(start(rate), x),
        resample(start(rate, origin=t_first), x, times),
        resample(start(rate, origin=t_first), x.astype(np.float32), times),
    ):
        assert r.out.dtype == np.float32 and np.isfinite(r.out).all()
    with pytest.raises(ResampleError, match="within"):
        resample(start(rate), np.full((2, 6), MAX_ABS_VALUE * 1.5))
