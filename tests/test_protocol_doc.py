"""docs/protocol.md and harstream.protocol stay in step: every worked example is checked here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from harstream.errors import ProtocolError
from harstream.protocol import (
    ERROR_CODES,
    STATS_EXTRA_FIELDS,
    STATS_FIELDS,
    StatsEvent,
    decode_chunk,
    decode_event,
    decode_prediction,
)
from harstream.signal import resample
from harstream.signal.windows import window_ends

DOC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()


def section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end >= 0 else len(DOC)]


def example(name: str) -> str:
    """The block after ``<!-- example: name -->``: up to the next blank line after its start."""
    start = DOC.index(f"<!-- example: {name} -->") + len(f"<!-- example: {name} -->")
    body = DOC[start:].lstrip("\n")
    return body[: body.find("\n\n")]


def table_codes(text: str) -> list[str]:
    return re.findall(r"^\| `([a-z_0-9.]+)` \|", text, flags=re.MULTILINE)


def test_every_error_code_is_documented_and_no_other() -> None:
    assert table_codes(section("## Output: `$error`").split("**Examples**")[0]) == list(ERROR_CODES)


def test_every_stats_field_is_documented() -> None:
    fields = re.findall(r'^\| `"([a-z_0-9]+)"` \|', section("## Output: `$stats`"), flags=re.MULTILINE)
    assert fields == [*STATS_FIELDS, *STATS_EXTRA_FIELDS]


def test_the_stats_example_decodes_with_every_field() -> None:
    body = json.loads(example("stats"))
    event = decode_event([b"$stats", json.dumps(body).encode()])
    assert isinstance(event, StatsEvent)
    assert set(event.fields) == {*STATS_FIELDS, *STATS_EXTRA_FIELDS}
    limits = re.findall(r"^\| `([a-z_]+)` \| (?:`--|—)", section("## Limits"), flags=re.MULTILINE)
    assert limits == list(body["limits"])


def test_the_prediction_example_decodes() -> None:
    body = json.loads(example("prediction"))
    prediction = decode_prediction([b"phone-1", json.dumps(body).encode()])
    assert (prediction.seq_end, prediction.smoothed, prediction.engine) == (767, "SITTING", "3f9a1c27b0d4")
    assert prediction.latency_ms == 7.8 and prediction.age_ms == 32.8


def test_the_chunk_example_decodes_to_its_table() -> None:
    block = example("chunk")
    text = DOC[DOC.index(block) :]
    header = re.search(r"^    (\{.*\})$", text, flags=re.MULTILINE)
    assert header is not None
    rows = re.findall(r"^    row \d: ([0-9a-f ]+)$", text, flags=re.MULTILINE)
    samples = bytes.fromhex("".join(r.replace(" ", "") for r in rows[:2]))
    chunk = decode_chunk([b"phone-1", header.group(1).encode(), samples])
    assert (chunk.seq, chunk.t0) == (640, 1700000000.25)
    np.testing.assert_array_equal(
        chunk.samples, [[0.0, 0.0, 1.0, 0.5, -0.25, 0.0], [0.125, -1.0, 1.0, 0.0, 2.0, -0.5]]
    )
    assert '"seq": 642' in text[:3000]


def rejection_rows() -> list[tuple[str, int, str]]:
    rows = re.findall(r"^\| `(\{.*\})` \| (\d+) \| (.+) \|$", example("rejections"), flags=re.MULTILINE)
    assert len(rows) >= 15
    return [(head, int(n), code.strip()) for head, n, code in rows]


@pytest.mark.parametrize(("head", "n", "code"), rejection_rows())
def test_each_rejection_example(head: str, n: int, code: str) -> None:
    frames = [b"phone-1", head.encode(), bytes(24 * n)]
    if code.startswith("accepted"):
        decode_chunk(frames)
        return
    with pytest.raises(ProtocolError) as caught:
        decode_chunk(frames)
    assert f"`{caught.value.code}`" == code


def test_the_window_grid_example() -> None:
    assert "first window at `seq_end` 1151" in DOC
    assert window_ends(1000, 1300).tolist()[:2] == [1151, 1215]
    assert window_ends(0, 300).tolist() == [127, 191, 255]


def test_the_timed_chunk_example() -> None:
    """Rate, units and the timestamps frame, as the worked example reads them."""
    block = example("timed-chunk")
    header = re.search(r"frame 1: (\{.*\})$", block, flags=re.MULTILINE)
    row = re.search(r"frame 2: 3 rows × 6 float32: ([-0-9. ]+) \|", block)
    times_text = re.search(r"frame 3: 3 float64: ([0-9. ]+)$", block, flags=re.MULTILINE)
    assert header is not None and row is not None and times_text is not None
    first = np.array([float(v) for v in row.group(1).split()], dtype="<f4")
    times = np.array([float(v) for v in times_text.group(1).split()], dtype="<f8")
    chunk = decode_chunk([b"phone-1", header.group(1).encode(), np.tile(first, (3, 1)).tobytes(),
                          times.tobytes()])
    assert (chunk.seq, chunk.rate, chunk.t0) == (500, 100, 1700000005.0)
    np.testing.assert_allclose(chunk.samples[0], [0, 0, 1, 0, 0, np.pi / 2], rtol=1e-6)
    assert chunk.times is not None and list(chunk.times) == [12.0, 12.011, 12.019]
    origin = 12.0 - 500 / 100  # the doc's "12.0 - 500/100 + k/50"
    assert f"{origin + 250 / 50:.3f}" == "12.000" and "index 250" in DOC[DOC.index(block):][:900]
    result = resample.resample(resample.start(chunk.rate, seq=chunk.seq, origin=origin), chunk.samples,
                               chunk.times)
    assert result.first_index == 250
