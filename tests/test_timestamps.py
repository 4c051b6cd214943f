"""Hostile and careless timestamps, and seq near its limit, through the engine (issue 19, items 1-5),
and the loop-stall figure of ``$stats`` that shows the time such input kept the serving loop away.

Work is counted, never timed: the resampler's grid searches (calls of ``Grid.time``), the filter
calls and the rows filtered. A counter past its budget raises :class:`WorkExceeded`, a
``BaseException`` the engine's containment does not catch, so a hang fails fast instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harstream import ACTIVITIES, MAX_SAMPLES_PER_CHUNK
from harstream.engine.admission import chunk_cost
from harstream.engine.core import Engine
from harstream.errors import ProtocolError
from harstream.protocol import (
    MAX_SEQ,
    STATS_EXTRA_FIELDS,
    STATS_FIELDS,
    Chunk,
    ErrorEvent,
    decode_chunk,
    encode_chunk,
    encode_prediction,
    encode_stats,
)
from harstream.serve.stats import Stats
from harstream.signal import chain, resample
from harstream.signal.windows import window_ends

Floats = npt.NDArray[np.float64]


def fake_proba(windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    logits = windows.mean(axis=1)[:, :6] * 10.0
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: npt.NDArray[np.float32] = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


class WorkExceeded(BaseException):
    """A work counter passed its budget (a BaseException: the engine's containment must not hide it)."""


@dataclass
class Work:
    """The engine's work since the last :meth:`reset`, by kind."""

    budget: int = 1_000_000
    grid_steps: int = 0
    """Calls of ``resample.Grid.time``: every step of every grid search."""
    filter_calls: dict[str, int] = field(default_factory=dict)
    """Calls of ``chain.process`` (key ``"*"``)."""
    filtered_rows: dict[str, int] = field(default_factory=dict)
    """Rows filtered, summed over the streams of each call (key ``"*"``)."""

    def reset(self) -> None:
        self.grid_steps = 0
        self.filter_calls.clear()
        self.filtered_rows.clear()

    def step(self) -> None:
        self.grid_steps += 1
        if self.grid_steps > self.budget:
            raise WorkExceeded(f"more than {self.budget} grid steps")


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    counted = Work()
    time = resample.Grid.time
    process = chain.process

    def counting_time(self: resample.Grid, k: int) -> float:
        counted.step()
        return time(self, k)

    def counting_process(samples: Any, state: chain.ChainState, *args: Any, **kwargs: Any) -> Any:
        shape = np.shape(samples)
        counted.filter_calls["*"] = counted.filter_calls.get("*", 0) + 1
        counted.filtered_rows["*"] = counted.filtered_rows.get("*", 0) + shape[0] * shape[1]
        return process(samples, state, *args, **kwargs)

    monkeypatch.setattr(resample.Grid, "time", counting_time)
    monkeypatch.setattr(chain, "process", counting_process)
    yield counted


def timed(stream: str, seq: int, times: npt.ArrayLike, rate: float = 100, seed: int = 0) -> Chunk:
    """A decoded timed chunk of a phone-like signal at ``times`` (seconds)."""
    t = np.asarray(times, dtype=np.float64)
    return decode_chunk(encode_chunk(stream, seq, _phone(len(t), seed), rate=rate, times=t))


def _phone(n: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.2, (n, 6))
    x[:, 2] += 1.0  # gravity on z
    return x.astype(np.float32)


def innocent(stream: str, seq: int = 0, n: int = 300, seed: int = 1) -> Chunk:
    """A clean 50 Hz chunk of another stream."""
    return Chunk(stream, seq, 50, None, _phone(n, seed))


def ends_of(engine: Engine, stream: str | None = None) -> list[int]:
    """``seq_end`` of the windows waiting, of ``stream`` (or all), taken off the queue."""
    return [p.seq_end for p in engine.take_pending() if stream is None or p.stream == stream]


def codes(errors: list[ErrorEvent]) -> list[tuple[str | None, str]]:
    return [(e.stream, e.code) for e in errors]


# -- item 1: timestamps whose 50 Hz index would pass 2**53-1 ------------------------------------


@pytest.mark.parametrize("last", [1e300, 1e22, 1.7e308, 1e20, 2.0**53 / 50 + 10])
def test_a_timestamp_far_beyond_the_grid_is_rejected_with_times(work: Work, last: float) -> None:
    work.budget = 1_000
    engine = Engine(fake_proba, ACTIVITIES)
    errors = engine.ingest([timed("far", 0, [0.0, last])])
    assert codes(errors) == [("far", "times")]
    assert "2**53-1" in errors[0].detail and repr(last) in errors[0].detail
    assert engine.counters.rejected == 1 and engine.n_pending == 0
    assert engine.ingest([innocent("other")]) == [] and ends_of(engine) == [127, 191, 255]


def test_a_far_timestamp_on_a_running_stream_leaves_it_as_it_was(work: Work) -> None:
    work.budget = 10_000
    engine = Engine(fake_proba, ACTIVITIES)
    t = 1000.0 + np.arange(400) / 100
    assert engine.ingest([timed("s", 0, t[:200])]) == []
    errors = engine.ingest([timed("s", 200, [t[200], 1e300])])
    assert codes(errors) == [("s", "times")]
    assert engine.ingest([timed("s", 200, t[200:])]) == []  # goes on as if it never came
    assert ends_of(engine) == window_ends(0, 200).tolist()


def test_grid_searches_are_arithmetic(work: Work) -> None:
    grid = resample.Grid(0.0, 0, 50.0)
    for t in (0.0, 0.03, -0.03, 1e12 + 0.01, 2.0**53 / 50, 1e300, -1e300, 5e-324):
        work.reset()
        k = grid.first_at_or_after(t)
        assert grid.time(k) >= t and grid.time(k - 1) < t
        k = grid.first_after(t)
        assert grid.time(k) > t and grid.time(k - 1) <= t
        # Steps grow with the logarithm of the guess's error: a few within the resampler's range;
        # where doubles are far sparser than the grid (1e300), still about 2 x 1,075 per search.
        assert work.grid_steps <= (20 if abs(t) <= resample.MAX_TIME_S else 4 * 1100)


@settings(max_examples=300)
@given(
    base=st.floats(-1e6, 1e6), k_base=st.integers(-(10**6), 10**6),
    per_unit=st.sampled_from([20.0, 25.0, 50.0, 100.0, 120.5, 500.0, 50.0 / 120.5]),
    t=st.floats(-1e7, 1e7),
)  # fmt: skip
def test_grid_searches_agree_with_the_definition(base: float, k_base: int, per_unit: float, t: float) -> None:
    grid = resample.Grid(base, k_base, per_unit)
    k = grid.first_at_or_after(t)
    assert grid.time(k) >= t > grid.time(k - 1)
    k = grid.first_after(t)
    assert grid.time(k) > t >= grid.time(k - 1)


# -- item 2: an overflow in one chunk of a burst -------------------------------------------------


@pytest.mark.parametrize("last", [1.7e308, 1e20])
def test_an_overflowing_chunk_in_a_burst_touches_no_other_stream(work: Work, last: float) -> None:
    work.budget = 100_000
    alone = Engine(fake_proba, ACTIVITIES)
    alone.ingest([innocent(f"i{k}", seed=k) for k in range(8)])
    expected = [(p.stream, p.seq_end) for p in alone.take_pending()]

    engine = Engine(fake_proba, ACTIVITIES)
    burst: list[Chunk] = [innocent(f"i{k}", seed=k) for k in range(4)]
    burst.append(timed("bad", 0, [0.0, last]))
    burst += [innocent(f"i{k}", seed=k) for k in range(4, 8)]
    errors = engine.ingest(burst)
    assert codes(errors) == [("bad", "times")]
    assert [(p.stream, p.seq_end) for p in engine.take_pending()] == expected
    assert engine.counters.internal_errors == 0


# -- item 3: a chunk full of dropouts --------------------------------------------------------------


def _stepping(messages: int, n: int, step: float, rate: float) -> list[Chunk]:
    out = []
    for m in range(messages):
        t = 1000.0 + (m * n + np.arange(n)) * step
        flat = np.tile(np.array([0, 0, 1, 0, 0, 0], np.float32), (n, 1))  # a phone lying flat
        out.append(decode_chunk(encode_chunk("steps", m * n, flat,
                                             rate=rate, times=t)))
    return out


def test_a_chunk_full_of_dropouts_gets_one_report_and_bounded_work(work: Work) -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    n = MAX_SAMPLES_PER_CHUNK
    chunks = _stepping(40, n, 0.11, 20.0)  # every step just over the 0.1 s dropout limit
    reports = []
    for chunk in chunks:
        work.reset()
        work.budget = 40 * n
        errors = engine.ingest([chunk])
        reports.append(codes(errors))
        assert work.filter_calls.get("*", 0) <= 2  # no call per dropout: runs too short for a window are skipped
        assert chunk_cost(chunk) >= n + 64 * (n - 1)  # the serving loop's budget counts every dropout
    assert reports == [[("steps", "seq_gap")]] * 40
    assert engine.n_pending == 0


def test_the_dropout_report_summarises_them() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    (error,) = engine.ingest(_stepping(1, 300, 0.11, 20.0))
    assert error.code == "seq_gap"
    assert "299 pauses" in error.detail and "0.110 s" in error.detail


def test_what_a_chunk_costs_covers_what_the_resampler_produces(work: Work) -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    chunk = _stepping(1, MAX_SAMPLES_PER_CHUNK, 0.099, 500.0)[0]  # 297 s, never a dropout
    assert engine.ingest([chunk]) == []
    produced = work.filtered_rows["*"]
    assert produced > 14_000 and chunk_cost(chunk) >= produced
    assert len(ends_of(engine)) == len(window_ends(0, produced))


# -- item 4: timestamps stepping back before the stream's origin after a seq gap ----------------


def test_timestamps_before_the_origin_after_a_seq_gap_are_never_lost_silently() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    assert engine.ingest([timed("s", 0, 1000.0 + np.arange(300) / 100)]) == []
    ends_of(engine)
    errors = engine.ingest([timed("s", 10_000, 500.0 + np.arange(600) / 100)])  # 6 s, before the origin
    assert codes(errors) == [("s", "seq_gap")] and "origin" in errors[0].detail
    ends = ends_of(engine, "s")
    assert ends and min(ends) >= 0
    assert len(ends) == len(window_ends(5000, 5000 + 300))  # restarted with a new origin at its seq


def test_timestamps_spanning_the_doubles_are_decoded_without_a_warning() -> None:
    """-1.7e308 then 1.7e308 is finite and increasing, so it decodes; the step between them overflows,
    which must not print a RuntimeWarning into the engine's log (nor raise, under ``-W error``)."""
    import warnings

    frames = [b"s", b'{"v":1,"seq":0,"rate":100}', bytes(48), np.array([-1.7e308, 1.7e308], "<f8").tobytes()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunk = decode_chunk(frames)
        errors = Engine(fake_proba, ACTIVITIES).ingest([chunk])
    assert codes(errors) == [("s", "times")]


def test_increasing_timestamps_too_close_for_the_origin_are_refused_as_such() -> None:
    """A timed 500 Hz stream opened at seq 2**53-3000 has its time origin 1.8e13 s before its first sample,
    where doubles are 0.004 s apart: its 2 ms steps cannot be told apart. The chunk is refused (times), and
    the error says why, instead of calling its strictly increasing timestamps not increasing."""
    engine = Engine(fake_proba, ACTIVITIES)
    times = (np.arange(3000) * 0.002).astype(np.float64)
    chunk = Chunk("s", MAX_SEQ - 2999, 500, None, _phone(3000, 0), times=times)
    errors = engine.ingest([chunk])
    assert codes(errors) == [("s", "times")] and engine.counters.internal_errors == 0
    assert "strictly increasing" not in errors[0].detail and "time origin" in errors[0].detail


# -- item 5: seq near 2**53 at a rate below 50 Hz ------------------------------------------------


def test_a_seq_whose_50hz_index_passes_the_limit_is_refused_with_seq() -> None:
    x = np.zeros((300, 6), np.float32)
    with pytest.raises(ProtocolError) as caught:
        decode_chunk([b"s", b'{"v":1,"seq":9007199254740591,"rate":20}', x.tobytes()])
    assert caught.value.code == "seq" and "50 Hz index" in caught.value.detail
    last_ok = (2**53 * 20 - 1) // 50  # the largest last sample with (seq + n - 1) * 50 / 20 < 2**53
    decode_chunk([b"s", f'{{"v":1,"seq":{last_ok - 299},"rate":20}}'.encode(), x.tobytes()])
    with pytest.raises(ProtocolError):
        decode_chunk([b"s", f'{{"v":1,"seq":{last_ok - 298},"rate":20}}'.encode(), x.tobytes()])
    decode_chunk([b"s", f'{{"v":1,"seq":{MAX_SEQ - 299},"rate":50}}'.encode(), x.tobytes()])


def test_the_engine_refuses_such_a_chunk_built_without_the_decoder() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    errors = engine.ingest([Chunk("s", 2**53 - 400, 20, None, np.zeros((300, 6), np.float32))])
    assert codes(errors) == [("s", "seq")] and engine.n_pending == 0 and engine.counters.internal_errors == 0


def test_every_window_near_the_limit_encodes() -> None:
    engine = Engine(fake_proba, ACTIVITIES)
    seq = (2**53 * 20) // 50 - 300
    assert engine.ingest([decode_chunk(encode_chunk("s", seq, _phone(300, 0), rate=20))]) == []
    predictions = engine.classify_pending(engine.take_pending())
    assert predictions and max(p.seq_end for p in predictions) <= MAX_SEQ
    for p in predictions:
        encode_prediction(p)


# -- the property: any timed chunk ------------------------------------------------------------------

HUGE = (1e300, -1e300, 1e22, -1e22, 1.7e308, -1.7e308, 2.0**53 / 50, 1e15, 1e9)
STEPS = (1e-300, 5e-324, 1e-9, 0.001, 0.0099, 0.01, 0.02, 0.099, 0.1, 0.1000001, 0.11, 0.5, 3.0, 1e6, 1e300)


def _increasing(values: Floats) -> Floats:
    """``values`` made strictly increasing at float64 precision (each at least the next double up)."""
    out = values.copy()
    for i in range(1, len(out)):
        if not out[i] > out[i - 1]:
            out[i] = np.nextafter(out[i - 1], np.inf)
    return out


@st.composite
def timestamps(draw: st.DrawFn, n: int) -> Floats:
    """``n`` finite, strictly increasing timestamps: huge, tiny, stepping or ordinary."""
    base = draw(st.one_of(st.sampled_from(HUGE), st.floats(-1e12, 1e12)))
    style = draw(st.sampled_from(["steps", "one_step", "mixed", "jump"]))
    if style == "steps":
        steps = np.full(n, draw(st.sampled_from(STEPS)))
    elif style == "one_step":
        steps = np.full(n, 0.01)
        steps[draw(st.integers(0, n - 1))] = draw(st.sampled_from(STEPS))
    elif style == "mixed":
        steps = np.array(draw(st.lists(st.sampled_from(STEPS), min_size=n, max_size=n)))
    else:  # ordinary steps, then one huge jump
        steps = np.full(n, 0.01)
        steps[draw(st.integers(0, n - 1))] = draw(st.sampled_from(HUGE))
    with np.errstate(over="ignore", invalid="ignore"):
        times = base + np.concatenate([[0.0], np.cumsum(steps[1:])])
    times = np.where(np.isfinite(times), times, np.sign(times) * 1.7e308)
    times = _increasing(np.clip(times, -1.7e308, 1.7e308))
    if not np.isfinite(times).all() or not (np.diff(times) > 0).all():  # ran out of doubles at the top
        times = _increasing(np.clip(times - 1e300, -1.7e308, 1.7e308))
    return times


@st.composite
def hostile(draw: st.DrawFn) -> tuple[list[Chunk], Chunk]:
    """An optional clean history of a timed stream, then one chunk with any timestamps."""
    rate = draw(st.sampled_from([20, 25, 50, 100, 120.5, 500]))
    n = draw(st.one_of(st.integers(1, 300), st.just(MAX_SAMPLES_PER_CHUNK)))
    history: list[Chunk] = []
    seq = draw(st.one_of(st.integers(0, 10**6), st.sampled_from([MAX_SEQ // 3, (2**53 * 20) // 50 - 4000])))
    if draw(st.booleans()):
        start = draw(st.floats(-1e9, 1e9))
        history.append(timed("h", seq, start + np.arange(200) / rate, rate=rate))
        how = draw(st.sampled_from(["follow", "gap", "restart"]))
        seq = seq + 200 + (draw(st.integers(1, 10**6)) if how == "gap" else 0)
    times = draw(timestamps(n))
    restart = bool(history) and draw(st.booleans())
    if seq > MAX_SEQ - n + 1 or (rate < 50 and (seq + n - 1) * 50 >= 2**53 * rate):
        seq, restart = 0, bool(history)  # back to 0 after a history: a restart (else a seq_replay)
    frames = encode_chunk("h", seq, _phone(n, 3), rate=rate, times=times, restart=restart)
    return history, decode_chunk(frames)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                   HealthCheck.function_scoped_fixture])
@given(case=hostile())
def test_any_timed_chunk_gives_windows_or_its_own_error_with_bounded_work(
    work: Work, case: tuple[list[Chunk], Chunk]
) -> None:
    history, chunk = case
    engine = Engine(fake_proba, ACTIVITIES)
    for past in history:
        engine.ingest([past])
    engine.take_pending()
    rejected_before = engine.counters.rejected
    work.reset()
    n = len(chunk.samples)
    work.budget = 64 * (n + 8)
    others = [innocent(f"i{k}", seed=k) for k in range(3)]
    errors = engine.ingest([others[0], chunk, *others[1:]])

    assert {e.stream for e in errors} <= {"h"} and len(errors) <= 2  # bounded fan-out, its stream alone
    assert engine.counters.internal_errors == 0
    pending = engine.take_pending()
    assert [(p.stream, p.seq_end) for p in pending if p.stream != "h"] == [
        (f"i{k}", e) for k in range(3) for e in (127, 191, 255)]
    mine = [p.seq_end for p in pending if p.stream == "h"]
    assert all(0 <= e <= MAX_SEQ for e in mine)
    # what the loop's budget counted, within the rounding of timestamps where doubles are sparse
    assert work.filtered_rows["*"] <= chunk_cost(chunk) + 3 * 300 + 8
    assert work.filter_calls["*"] <= 3 + chunk_cost(chunk) // 128
    refused = engine.counters.rejected > rejected_before
    if refused:
        assert [e.code for e in errors][-1] in ("times", "seq") and not mine
    else:  # accepted: its samples lie on the grid where windows are cut, so none is lost unsaid
        stream = engine.streams.streams["h"]
        assert 0 <= stream.ring.first_index <= stream.ring.next_index <= MAX_SEQ + 1
    for p in engine.classify_pending(pending):
        encode_prediction(p)


def test_costs_need_no_engine() -> None:
    chunk = innocent("a", n=25)
    assert chunk_cost(chunk) == 25
    assert chunk_cost(Chunk("b", 0, 20, None, np.zeros((100, 6), np.float32))) == 250  # 100 at 20 Hz: 5 s


def test_stats_carry_the_loop_stall_figure() -> None:
    now = [100.0]
    stats = Stats(Engine(fake_proba, ACTIVITIES), clock=lambda: now[0])
    stats.stalls.looking()
    stats.stalls.looked()
    now[0] = 112.5  # a turn that never looked at the socket for 12.5 s
    stats.stalls.looking()
    report = stats.report(now[0])
    assert set(report) == {*STATS_FIELDS, *STATS_EXTRA_FIELDS}
    assert report["loop_stall_ms"] == 12_500.0
    encode_stats(report)
