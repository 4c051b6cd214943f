"""Online resampling of one stream onto the model's 50 Hz grid, chunk by chunk.

A phone may stream at any nominal rate in [:data:`MIN_RATE_HZ`,
:data:`MAX_RATE_HZ`] Hz, with or without per-sample timestamps. The
resampler puts it on the grid the model was trained on: output index ``k``
lies at time ``origin + k / 50``.

- **Untimed streams** (no timestamps): input index ``j`` lies at ``j / rate``
  and output index ``k`` at ``k / 50``, so output indices are "seconds since
  input index 0, times 50". At exactly 50 Hz this is the identity: the output
  equals the input and output index = input index, bit for bit.
- **Timed streams**: the caller gives each sample's time (float64 seconds, any
  clock, e.g. unix time) and ``origin``, the time of output index 0.

At or below 50 Hz the output is the linear interpolation between consecutive
input samples at the grid times (timestamp jitter is absorbed by using the
true times). Above 50 Hz the samples first go through a causal anti-alias
low-pass (Butterworth order 4, cut-off 20 Hz, below the output's 25 Hz
Nyquist) at the nominal rate, which delays the signal by :func:`delay_s`
(12-21 ms); the output interpolates the filtered samples. A timed stream above
50 Hz is first interpolated onto a uniform grid at its nominal rate (anchored
at its first sample), so the filter sees evenly spaced samples whatever the
jitter. A grid point is emitted as soon as the (filtered) sample at or after it
exists, i.e. when an input sample at or after it has arrived (timed streams
above 50 Hz: after it by up to one nominal period).

A dropout longer than ``max_gap_s`` between two samples of a timed stream is
not interpolated across: it is reported as a :class:`Gap`, the filter is
re-seeded at the sample after it, and output resumes at the first grid point
at or after that sample.

Output indices stay within ±:data:`MAX_INDEX` (exact in a double): a chunk
whose timestamps lie further than :data:`MAX_TIME_S` from the origin, or
whose last input index lies past index :data:`MAX_INDEX` on the grid, is
rejected. Every grid search is arithmetic (a guess, then a bisection bounded
by the guess's error), so no timestamp can make it take long.

Everything is a pure function ``(state, chunk) -> (output, new state)``;
resampling a stream in chunks of any sizes equals resampling it whole, and a
rejected chunk (:class:`ResampleError`) leaves the state as it was.

>>> import numpy as np
>>> x = np.zeros((100, 6), np.float32); x[:, 2] = 1.0   # 1 s of a phone lying flat, 100 Hz
>>> state = start(100.0)
>>> r = resample(state, x)
>>> r.out.shape, r.first_index, r.gaps, float(r.out[-1, 2])
((50, 6), 0, (), 1.0)
>>> r2 = resample(r.state, x)                           # the next second: indices go on
>>> r2.first_index, len(r2.out)
(50, 50)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import signal

from harstream.errors import HarstreamError

OUTPUT_RATE_HZ: Final = 50
"""Rate of the output grid, Hz (the model's rate)."""
MIN_RATE_HZ: Final = 20
"""Lowest nominal input rate accepted, Hz."""
MAX_RATE_HZ: Final = 500
"""Highest nominal input rate accepted, Hz."""
ANTI_ALIAS_ORDER: Final = 4
"""Order of the Butterworth anti-alias low-pass used above 50 Hz."""
ANTI_ALIAS_CUTOFF_HZ: Final = 20.0
"""Cut-off of the anti-alias low-pass, Hz (below the output's 25 Hz Nyquist)."""
DEFAULT_MAX_GAP_S: Final = 0.1
"""Longest dropout between two input samples that is interpolated across, s."""
MAX_ABS_VALUE: Final = 1e30
"""Largest magnitude of an input value: any sensor is far below, float32 overflow far above."""
CHANNELS: Final = 6
"""Input and output columns: acc xyz (g), gyro xyz (rad/s)."""
MAX_INDEX: Final = 2**53 - 1
"""Largest output index (in magnitude): exact in a double, the protocol's largest ``seq_end``."""
MAX_TIME_S: Final = (MAX_INDEX - 1) / OUTPUT_RATE_HZ
"""Largest distance of a timestamp from the origin, s (about 5.7 million years): within it the
output index stays within ±:data:`MAX_INDEX`."""
_SAFE_INPUT_INDEX: Final = (MAX_INDEX + 1) * MIN_RATE_HZ // OUTPUT_RATE_HZ
"""Untimed input indices below this lie at output indices within :data:`MAX_INDEX` at any rate."""

Array = npt.NDArray[np.float64]


class ResampleError(HarstreamError, ValueError):
    """A chunk the resampler cannot take (bad shape, values or timestamps); the state is unchanged.

    ``field`` names what was wrong (``samples``, ``times``, ``seq``, or an argument of
    :func:`start`); ``detail`` says what was expected and what came.
    """

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


class Gap(NamedTuple):
    """A dropout longer than ``max_gap_s``: output stops at ``stop`` and resumes at ``resume``."""

    stop: int
    """First output index not produced before the dropout."""
    resume: int
    """Output index of the first grid point at or after the sample following the dropout."""
    offset: int
    """Rows of the call's ``out`` that lie before the dropout (``out[offset]`` has index ``resume``)."""
    seconds: float
    """Length of the dropout: time between the samples either side of it."""


@dataclass(frozen=True, slots=True)
class Grid:
    """A uniform grid: index ``k`` lies at time ``base + (k - k_base) / per_unit``."""

    base: float
    k_base: int
    per_unit: float
    """Grid points per unit of time."""

    def times(self, k: npt.NDArray[np.int64]) -> Array:
        """Times of indices ``k``."""
        return self.base + (k - self.k_base).astype(np.float64) / self.per_unit

    def time(self, k: int) -> float:
        """Time of index ``k``: the same IEEE operations, hence the same value, as :meth:`times`."""
        return self.base + float(k - self.k_base) / self.per_unit

    def first_at_or_after(self, t: float) -> int:
        """Smallest index whose time is >= ``t`` (finite).

        >>> Grid(0.0, 0, 50.0).first_at_or_after(0.03), Grid(0.0, 0, 50.0).first_at_or_after(1e300) > 0
        (2, True)
        """
        guess = self.k_base + math.ceil((t - self.base) * self.per_unit)
        if self.time(guess) >= t > self.time(guess - 1):  # the guess is almost always right
            return guess
        return self._first(guess, lambda k: self.time(k) >= t)

    def first_after(self, t: float) -> int:
        """Smallest index whose time is > ``t`` (finite)."""
        guess = self.k_base + math.floor((t - self.base) * self.per_unit) + 1
        if self.time(guess) > t >= self.time(guess - 1):
            return guess
        return self._first(guess, lambda k: self.time(k) > t)

    @staticmethod
    def _first(guess: int, reached: Callable[[int], bool]) -> int:
        """Smallest ``k`` with ``reached(k)`` (false below it, true from it on), found from ``guess``.

        Times are rounded, so the guess can be a few indices off (more where doubles are sparser
        than the grid); steps double away from it until they bracket the answer, then bisect:
        steps grow with the logarithm of the guess's error, never with the index.
        """
        step = 1
        if reached(guess):
            high, low = guess, guess - 1
            while reached(low):
                high, low, step = low, low - step, 2 * step
        else:
            low, high = guess, guess + 1
            while not reached(high):
                low, high, step = high, high + step, 2 * step
        while high - low > 1:
            middle = (low + high) // 2
            if reached(middle):
                high = middle
            else:
                low = middle
        return high


@dataclass(frozen=True, slots=True)
class _Carry:
    """Last sample fed to one interpolation stage, and the stage's next grid index."""

    time: float
    value: Array
    next: int


@dataclass(frozen=True, slots=True)
class ResampleState:
    """Carried state of one stream; create it with :func:`start`, never mutate it.

    Times are internal: seconds since ``origin`` (timed streams) or input
    samples since input index ``seq_base`` (untimed streams).
    """

    rate_hz: float
    """Nominal input rate, Hz."""
    origin: float | None
    """Time of output index 0 for a timed stream; ``None`` for an untimed one."""
    max_gap_s: float
    """Longest dropout interpolated across, s (timed streams)."""
    grid: Grid
    """The 50 Hz output grid in internal time."""
    seq_base: int
    """Untimed streams: input index at internal time 0."""
    next_seq: int
    """Input index the next input sample will have."""
    next_index: int | None
    """Output index the next output row will have (``None``: a timed stream before its first sample)."""
    last_raw: float | None = None
    """The caller's timestamp of the last input sample (timed streams)."""
    last_time: float | None = None
    """Internal time of the last input sample (``None`` before the first)."""
    uniform: Grid | None = None
    """Timed streams above 50 Hz: the nominal-rate grid of the current segment."""
    raw: _Carry | None = None
    """Timed streams above 50 Hz: last input sample; ``next`` indexes ``uniform``."""
    filtered: _Carry | None = None
    """Last (filtered) sample on the way to the output; ``next`` is the next output index."""
    zi: Array | None = None
    """Anti-alias filter state (``lfilter``), shape (4, 6); ``None`` at or below 50 Hz."""

    @property
    def timed(self) -> bool:
        """Whether chunks carry timestamps."""
        return self.origin is not None


class Resampled(NamedTuple):
    """What one :func:`resample` call produced."""

    out: npt.NDArray[np.float32]
    """Output rows on the 50 Hz grid, shape (m, 6), float32; consecutive except across ``gaps``."""
    first_index: int
    """Output index of ``out[0]`` (if no gap comes first); with m == 0, the next index."""
    state: ResampleState
    """The stream's state after the chunk."""
    gaps: tuple[Gap, ...]
    """Dropouts in this chunk, in order (always empty for untimed streams)."""

    def runs(self) -> list[tuple[int, npt.NDArray[np.float32]]]:
        """``out`` split at the gaps into ``(first index, rows)`` runs of consecutive indices.

        Every run after the first follows a dropout (it may be empty when no
        grid point has been reached since).

        >>> import numpy as np
        >>> s = start(50.0, origin=0.0)
        >>> r = resample(s, np.ones((4, 6)), np.array([0.0, 0.02, 0.5, 0.52]))
        >>> [(i, len(rows)) for i, rows in r.runs()], r.gaps[0].stop, r.gaps[0].resume
        ([(0, 2), (25, 2)], 2, 25)
        """
        bounds = [0, *(g.offset for g in self.gaps), len(self.out)]
        starts = [self.first_index, *(g.resume for g in self.gaps)]
        return [(k, self.out[a:b]) for k, (a, b) in zip(starts, itertools.pairwise(bounds), strict=True)]


class _Filter(NamedTuple):
    sos: Array
    b: Array
    a: Array
    zi: Array
    """Steady-state ``lfilter`` state for a constant input of 1, shape (order,)."""


@lru_cache(maxsize=64)
def _filter(rate_hz: float) -> _Filter | None:
    """The anti-alias low-pass at ``rate_hz`` (cached; never handed out).

    It runs as one 4th-order transfer function (``lfilter``): several times
    less overhead per call than ``sosfilt`` on small chunks, and with the
    poles no closer to 1 than 0.91 (500 Hz) it matches the second-order
    sections to ~1e-13 relative (tests/test_resample.py checks it).
    """
    if rate_hz <= OUTPUT_RATE_HZ:
        return None
    sos = np.asarray(
        signal.butter(ANTI_ALIAS_ORDER, ANTI_ALIAS_CUTOFF_HZ, fs=rate_hz, output="sos"), dtype=np.float64
    )
    b, a = (np.asarray(v, dtype=np.float64) for v in signal.sos2tf(sos))
    return _Filter(sos, b, a, np.asarray(signal.lfilter_zi(b, a), dtype=np.float64))


def anti_alias_sos(rate_hz: float) -> Array | None:
    """Second-order sections of the anti-alias low-pass at ``rate_hz``; ``None`` at or below 50 Hz.

    >>> anti_alias_sos(50.0) is None, anti_alias_sos(100.0).shape
    (True, (2, 6))
    """
    pair = _filter(float(rate_hz))
    return None if pair is None else pair.sos.copy()


def delay_s(rate_hz: float) -> float:
    """Low-frequency group delay the anti-alias filter adds at ``rate_hz``, s (0 at or below 50 Hz).

    >>> delay_s(50.0), round(delay_s(100.0) * 1000, 1), round(delay_s(200.0) * 1000, 1)
    (0.0, 18.0, 20.1)
    """
    pair = _filter(float(rate_hz))
    if pair is None:
        return 0.0
    _, gd = signal.group_delay((pair.b, pair.a), w=[1e-4])
    return float(gd[0]) / float(rate_hz)


def start(
    rate_hz: float, *, seq: int = 0, origin: float | None = None, max_gap_s: float = DEFAULT_MAX_GAP_S
) -> ResampleState:
    """The state of a new stream at nominal ``rate_hz`` whose next input index is ``seq``.

    Untimed stream (``origin=None``): sample ``i`` of the first chunk lies at
    ``(seq + i) / rate_hz`` and output index ``k`` at ``k / 50``. Timed stream:
    chunks carry timestamps and output index ``k`` lies at ``origin + k / 50``
    (choose ``origin`` at or before the first sample's time for indices >= 0,
    e.g. ``t_first - seq / rate_hz`` for the untimed convention).

    >>> start(100.0, seq=3).next_index            # first grid point at or after 3/100 s
    2
    >>> start(50.0, seq=7).next_index
    7
    """
    rate = float(rate_hz)
    if not (math.isfinite(rate) and MIN_RATE_HZ <= rate <= MAX_RATE_HZ):
        raise ResampleError("rate_hz",
                            f"expected a number of Hz in [{MIN_RATE_HZ}, {MAX_RATE_HZ}], got {rate_hz!r}")
    if not isinstance(seq, int | np.integer) or isinstance(seq, bool) or seq < 0:
        raise ResampleError("seq", f"expected an integer >= 0, got {seq!r}")
    seq = int(seq)
    gap = float(max_gap_s)
    if not (math.isfinite(gap) and gap > 0):
        raise ResampleError("max_gap_s", f"expected a finite number > 0, got {max_gap_s!r}")
    if origin is not None:
        o = float(origin)
        if not math.isfinite(o):
            raise ResampleError("origin", f"expected a finite number of seconds, got {origin!r}")
        return ResampleState(rate, o, gap, Grid(0.0, 0, float(OUTPUT_RATE_HZ)), seq, seq, None)
    # Untimed: internal time = input index - seq. The grid's anchor is computed exactly (as
    # rationals), so a stream starting at a huge seq keeps full precision.
    k0 = math.ceil(Fraction(seq) * OUTPUT_RATE_HZ / Fraction(rate))
    base = float(Fraction(k0) * Fraction(rate) / OUTPUT_RATE_HZ - seq)
    return ResampleState(rate, None, gap, Grid(base, k0, OUTPUT_RATE_HZ / rate), seq, seq, k0)


def _check(state: ResampleState, samples: npt.ArrayLike, times: npt.ArrayLike | None) -> tuple[Array, Array]:
    """Validated samples (n, 6) and internal times (n,), both float64."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != CHANNELS:
        raise ResampleError("samples", f"expected shape (n, {CHANNELS}), got {x.shape}")
    bad = ~(np.abs(x) <= MAX_ABS_VALUE)  # NaN fails too
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ResampleError(
            "samples", f"expected finite values within ±{MAX_ABS_VALUE:g}, got {float(x[row, col])!r} at row "
            f"{row}, column {col}"
        )
    n = len(x)
    if state.origin is None:
        if times is not None:
            raise ResampleError("times", "this stream was started without timestamps (origin=None)")
        _check_last_input(state, n)
        first = state.next_seq - state.seq_base
        return x, np.arange(first, first + n, dtype=np.float64)
    if times is None:
        raise ResampleError("times", "this stream was started with timestamps (an origin); every chunk needs them")
    raw = np.asarray(times, dtype=np.float64)
    if raw.shape != (n,):
        raise ResampleError("times", f"expected shape ({n},), one per sample, got {raw.shape}")
    if not np.isfinite(raw).all():
        i = int(np.argmax(~np.isfinite(raw)))
        raise ResampleError("times", f"expected finite timestamps, got {float(raw[i])!r} at index {i}")
    t = seconds_since(state.origin, raw)
    if n and state.last_time is not None and not t[0] > state.last_time:
        raise ResampleError(
            "times", f"expected strictly increasing timestamps, got {float(raw[0])!r} at index 0 after "
            f"{state.last_raw!r}, the previous chunk's last"
        )
    steps = np.diff(t)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        if raw[i + 1] > raw[i]:  # increasing, but not in seconds since the origin: doubles are sparser there
            raise ResampleError(
                "times", f"expected timestamps that differ in seconds since the stream's time origin "
                f"{state.origin!r}, got {float(raw[i])!r} at index {i} then {float(raw[i + 1])!r}: the same "
                f"{float(t[i])!r} s after it (a timed stream's origin is its first time minus seq / rate: "
                "restart it at a smaller seq)"
            )
        raise ResampleError(
            "times", f"expected strictly increasing timestamps, got {float(raw[i])!r} at index {i} then "
            f"{float(raw[i + 1])!r} at index {i + 1}"
        )
    return x, t


def seconds_since(origin: float, times: Array) -> Array:
    """Finite ``times`` as seconds since ``origin``, each within :data:`MAX_TIME_S` of it, where the
    output index stays within ±:data:`MAX_INDEX`; else :class:`ResampleError` (``times``).

    >>> seconds_since(10.0, np.array([10.5, 11.0])).tolist()
    [0.5, 1.0]
    >>> try:
    ...     seconds_since(0.0, np.array([0.0, 1e300]))
    ... except ResampleError as exc:
    ...     print(exc.field, "|", exc.detail[:60], "|", exc.detail[-21:])
    times | expected timestamps within 1.80144e+14 s of the stream's tim | got 1e+300 at index 1
    """
    with np.errstate(over="ignore", invalid="ignore"):
        t = times - origin
    if not np.abs(t).max(initial=0.0) <= MAX_TIME_S:  # an overflow to inf fails too
        i = int(np.argmax(~(np.abs(t) <= MAX_TIME_S)))
        raise ResampleError(
            "times", f"expected timestamps within {MAX_TIME_S:.6g} s of the stream's time origin {origin!r} (so "
            f"that its 50 Hz index stays within 2**53-1), got {float(times[i])!r} at index {i}"
        )
    return t


def _check_last_input(state: ResampleState, n: int) -> None:
    """An untimed chunk of ``n`` samples ends at an output index within :data:`MAX_INDEX`; else
    :class:`ResampleError` (``seq``)."""
    last = state.next_seq + n - 1
    if last < _SAFE_INPUT_INDEX:
        return
    index = math.floor(Fraction(last) * OUTPUT_RATE_HZ / Fraction(state.rate_hz))
    if index > MAX_INDEX:
        raise ResampleError(
            "seq", f"expected the chunk's last sample to lie at a 50 Hz index within 2**53-1, got input "
            f"index {last} at {state.rate_hz:g} Hz, 50 Hz index {index}"
        )


def _interpolate(
    carry: _Carry | None, t: Array, x: Array, grid: Grid, start_index: int
) -> tuple[Array, Array, _Carry | None]:
    """Linear interpolation of the samples ``(t, x)`` (after ``carry``) at the grid points they reach.

    Returns the grid times and values produced (from ``carry.next`` or
    ``start_index``, up to the last sample's time) and the new carry.
    """
    if len(t) == 0:
        return np.zeros(0), np.zeros((0, CHANNELS)), carry
    if carry is not None:
        ext_t = np.concatenate([[carry.time], t])
        ext_x = np.concatenate([carry.value[None, :], x])
        begin = carry.next
    else:
        ext_t, ext_x, begin = t, x, start_index
    stop = grid.first_after(float(ext_t[-1]))
    g = grid.times(np.arange(begin, max(begin, stop), dtype=np.int64))
    j = np.searchsorted(ext_t, g, side="right") - 1  # ext_t[j] <= g < ext_t[j + 1]
    j1 = np.minimum(j + 1, len(ext_t) - 1)  # j1 == j only where g == the last sample's time
    t0 = ext_t[j]
    f = (g - t0) / np.where(j1 > j, ext_t[j1] - t0, 1.0)  # where j1 == j, g - t0 == 0
    x0 = ext_x[j]
    values = x0 + f[:, None] * (ext_x[j1] - x0)
    last = ext_x[-1].copy()
    last.flags.writeable = False
    return g, values, _Carry(float(ext_t[-1]), last, max(begin, stop))


def resample(state: ResampleState, samples: npt.ArrayLike, times: npt.ArrayLike | None = None) -> Resampled:
    """Resample one chunk of one stream onto the 50 Hz grid.

    ``samples`` has shape (n, 6) (n may be 0); ``times`` holds the samples'
    times (n,) in seconds for a timed stream and must be ``None`` for an
    untimed one. Raises :class:`ResampleError` (the given state stays valid)
    for a bad shape, a value that is not finite or beyond ±1e30, or timestamps
    not strictly increasing within the chunk or after the previous chunk.

    >>> import numpy as np
    >>> x = np.arange(12, dtype=np.float32).reshape(2, 6)
    >>> r = resample(start(50.0, seq=40), x)      # 50 Hz untimed: the identity
    >>> bool((r.out == x).all()), r.first_index, r.state.next_index
    (True, 40, 42)
    """
    x, t = _check(state, samples, times)
    n = len(x)
    if n == 0:
        first = state.next_index if state.next_index is not None else 0
        return Resampled(np.zeros((0, CHANNELS), np.float32), first, state, ())

    pair = _filter(state.rate_hz)
    two_stage = state.timed and pair is not None
    # A dropout (timed streams) splits the chunk into segments; each after a dropout, like the
    # stream's first, re-seeds everything at its first sample.
    breaks: list[int] = []
    if state.timed:
        prev = np.concatenate([[t[0] if state.last_time is None else state.last_time], t[:-1]])
        breaks = np.flatnonzero(t - prev > state.max_gap_s).tolist()
    fresh = {*breaks, *([0] if state.last_time is None else [])}
    bounds = sorted({0, *breaks, n})

    uniform, raw, filtered, zi = state.uniform, state.raw, state.filtered, state.zi
    next_index, first_index = state.next_index, state.next_index
    last_time = state.last_time
    parts: list[Array] = []
    gaps: list[Gap] = []
    produced = 0
    for a, b in itertools.pairwise(bounds):
        seg_t, seg_x = t[a:b], x[a:b]
        if a in fresh:
            resume = state.grid.first_at_or_after(float(seg_t[0]))
            if last_time is not None and next_index is not None:
                gaps.append(Gap(next_index, resume, produced, float(seg_t[0] - last_time)))
            next_index = resume
            first_index = resume if first_index is None else first_index
            raw = filtered = None
            uniform = Grid(float(seg_t[0]), 0, state.rate_hz) if two_stage else None
            zi = None if pair is None else pair.zi[:, None] * seg_x[0][None, :]
        last_time = float(seg_t[-1])
        if uniform is not None:  # timed, above 50 Hz: onto the nominal-rate grid first
            seg_t, seg_x, raw = _interpolate(raw, seg_t, seg_x, uniform, 0)
        if pair is not None and len(seg_x):
            seg_x, zi = signal.lfilter(pair.b, pair.a, seg_x, axis=0, zi=zi)
        assert next_index is not None
        _, values, filtered = _interpolate(filtered, seg_t, seg_x, state.grid, next_index)
        if filtered is not None:
            next_index = filtered.next
        parts.append(values)
        produced += len(values)

    assert first_index is not None and next_index is not None
    if zi is not None:
        zi = np.asarray(zi)
        zi.flags.writeable = False
    out = np.concatenate(parts).astype(np.float32)
    last_raw = float(np.asarray(times, dtype=np.float64)[-1]) if state.timed else None
    new_state = ResampleState(
        state.rate_hz, state.origin, state.max_gap_s, state.grid, state.seq_base, state.next_seq + n,
        next_index, last_raw, last_time, uniform, raw, filtered, zi,
    )  # fmt: skip
    return Resampled(out, first_index, new_state, tuple(gaps))
