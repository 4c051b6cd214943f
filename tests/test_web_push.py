"""`harstream web` end to end: Sensor Logger pushes of HAPT test recordings through `serve`, scored.

The gateway runs in the test's event loop on loopback (aiohttp's test server);
the engine is a real `harstream serve`. Both platform conventions (Android,
iOS without "Standardise Units & Frames"), 100 Hz, 1 s batches, ns
timestamps with ±2 ms jitter; the score must be within 1 point of
`replay --score` on the same recordings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the web extra is not installed: pip install -e '.[web]'")

from aiohttp import ClientSession, WSMsgType
from aiohttp.test_utils import TestServer
from web_signals import sensor_logger_messages

from harstream.protocol import Prediction, decode_event
from harstream.web.app import make_app
from harstream.web.gateway import WebConfig, push_stream_id
from harstream.web.limits import Limits
from replay.scoring import Scorer
from replay.session import score_replay
from replay.sources import ReplayStream, load_streams, tagged

TOKEN = "test-token-123"
FAST = Limits(max_samples_per_s=1e7)
"""The tests send recordings far faster than real time."""


@pytest.fixture(scope="module")
def engine(free_endpoint: Callable[[], str], serve_process: Callable[..., Any]) -> Iterator[tuple[str, str]]:
    ingest, publish = free_endpoint(), free_endpoint()
    with serve_process(ingest, publish):
        yield ingest, publish


@pytest.fixture(scope="module")
def recordings(hapt_dir: Path) -> list[ReplayStream]:
    streams = [s for s in load_streams(hapt_dir, {2, 4}) if s.stream_id.startswith(("exp03_", "exp07_"))]
    assert len(streams) == 2
    return streams


async def feed_and_score(base: str, streams: list[ReplayStream], frame: str, tag: str,
                         timeout_s: float = 60.0) -> dict[str, Any]:
    """POST every stream's Sensor Logger messages and score the labels feed's predictions."""
    renamed = [dataclasses.replace(s, stream_id=push_stream_id(s.stream_id, tag)) for s in streams]
    scorer = Scorer(renamed)
    async with ClientSession() as http:
        query = "&".join(f"stream={s.stream_id}" for s in renamed)
        async with http.ws_connect(f"{base}/labels?token={TOKEN}&{query}") as feed:
            while json.loads((await feed.receive(timeout=30)).data)["topic"] != "$stats":
                pass  # a $stats: the feed's subscription is in place before any window
            for stream in streams:
                for body in sensor_logger_messages(stream.samples, frame, device=stream.stream_id, session=tag):
                    async with http.post(f"{base}/push?token={TOKEN}&frame={frame}", json=body) as reply:
                        assert reply.status == 200, await reply.text()
            while not scorer.done:
                msg = await feed.receive(timeout=timeout_s)
                assert msg.type == WSMsgType.TEXT, msg
                envelope = json.loads(msg.data)
                event = decode_event([envelope["topic"].encode(), json.dumps(envelope["body"]).encode()])
                if isinstance(event, Prediction):
                    scorer.update(event)
                else:
                    assert envelope["topic"] in ("$stats", "$web"), envelope
    return scorer.report()


async def _run_push(ingest: str, publish: str, streams: list[ReplayStream], frame: str) -> dict[str, Any]:
    server = TestServer(make_app(WebConfig(TOKEN, ingest, publish, limits=FAST)), host="127.0.0.1")
    await server.start_server()
    try:
        return await feed_and_score(str(server.make_url("")).rstrip("/"), streams, frame, f"push-{frame}")
    finally:
        await server.close()


@pytest.mark.slow
def test_sensor_logger_push_scores_like_replay(engine: tuple[str, str], recordings: list[ReplayStream]) -> None:
    ingest, publish = engine
    plain = score_replay(tagged(recordings, "plain-web"), ingest, publish, speed=0).report()
    assert plain["windows_missing"] == 0
    for frame in ("android", "ios"):
        report = asyncio.run(_run_push(ingest, publish, recordings, frame))
        print(f"Sensor Logger {frame}: accuracy {report['accuracy']:.4f} over {report['n_scored']} windows; "
              f"replay {plain['accuracy']:.4f}")
        assert report["windows_missing"] == 0 and report["errors"] == {}, report
        assert abs(report["accuracy"] - plain["accuracy"]) <= 0.01, (frame, report["accuracy"], plain["accuracy"])
