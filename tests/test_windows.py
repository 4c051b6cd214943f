"""The ring buffer: grid windows, chunk invariance, seq_end bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harstream.signal.windows import RingBuffer, window_ends


def _push_all(x: np.ndarray, cuts: list[int], first_index: int = 0) -> tuple[list[int], np.ndarray]:
    ring = RingBuffer(channels=x.shape[1], first_index=first_index)
    ends, windows, start = [], [], 0
    for stop in [*sorted(set(cuts)), len(x)]:
        if stop <= start:
            continue
        ready = ring.push(x[start:stop])
        ends += ready.seq_ends.tolist()
        windows.append(ready.windows)
        start = stop
    return ends, np.concatenate(windows) if windows else np.zeros((0, 128, x.shape[1]))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 700), cuts=st.lists(st.integers(1, 699), max_size=15))
def test_any_chunking_emits_the_same_windows(n: int, cuts: list[int]) -> None:
    x = np.arange(n, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], np.float32)
    whole_ends, whole = _push_all(x, [])
    ends, windows = _push_all(x, [c for c in cuts if c < n])
    assert ends == whole_ends == list(range(127, n, 64))
    np.testing.assert_array_equal(windows, whole)
    for end, window in zip(ends, windows, strict=True):  # each window is samples end-127..end
        np.testing.assert_array_equal(window[:, 0], np.arange(end - 127, end + 1))


def test_first_window_completes_at_the_128th_sample() -> None:
    ring = RingBuffer(channels=1)
    assert ring.push(np.zeros((127, 1))).seq_ends.tolist() == []
    assert ring.push(np.zeros((1, 1))).seq_ends.tolist() == [127]
    assert ring.push(np.zeros((63, 1))).seq_ends.tolist() == []
    assert ring.push(np.zeros((1, 1))).seq_ends.tolist() == [191]


def test_restarted_stream_keeps_the_grid() -> None:
    ends, _ = _push_all(np.zeros((300, 1), np.float32), [], first_index=100)
    assert ends == [255, 319, 383]
    assert window_ends(100, 400).tolist() == [255, 319, 383]


def test_bad_chunk_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"chunk: expected shape \(n, 9\)"):
        RingBuffer().push(np.zeros((4, 6)))


@settings(max_examples=80, deadline=None)
@given(first=st.integers(0, 500), n=st.integers(1, 900), cuts=st.lists(st.integers(1, 899), max_size=40))
def test_a_restarted_stream_in_any_chunks_cuts_its_grid_windows_and_they_stay_put(
    first: int, n: int, cuts: list[int]
) -> None:
    x = (first + np.arange(n, dtype=np.float32))[:, None]  # each sample holds its stream index
    ring = RingBuffer(channels=1, first_index=first)
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []
    start = 0
    for stop in [*sorted({c for c in cuts if c < n}), n]:  # chunks small and large (beyond the slack)
        ready = ring.push(x[start:stop])
        seen += [(int(e), w, w.copy()) for e, w in zip(ready.seq_ends, ready.windows, strict=True)]
        start = stop
    assert [e for e, _, _ in seen] == window_ends(first, first + n).tolist()
    for end, window, copy in seen:
        np.testing.assert_array_equal(window[:, 0], np.arange(end - 127, end + 1))
        np.testing.assert_array_equal(window, copy)  # later pushes never change a returned window
    assert ring.next_index == first + n
