"""`harstream web` against a stand-in engine (a PULL and a PUB socket in the test): what reaches the
engine, what is refused and why, what the phones and the labels feed receive. Loopback only."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="the web extra is not installed: pip install -e '.[web]'")

import zmq
from aiohttp import ClientSession, WSMsgType
from aiohttp.test_utils import TestServer

from harstream.protocol import Prediction as P
from harstream.protocol import decode_chunk, encode_error, encode_prediction
from harstream.serve.security import ClientSecurity, ServerSecurity, make_key_pair, secure_server
from harstream.web.app import make_app
from harstream.web.gateway import WebConfig, push_stream_id
from harstream.web.limits import Limits
from harstream.web.phones import GATEWAY

TOKEN = "gateway-test-token"


def sensor_logger(message_id: int, n: int = 10, t0_ns: int = 1_700_000_000 * 10**9, g: float = 9.80665,
                  device: str = "dev", gyro: bool = True) -> dict[str, Any]:
    items = []
    for i in range(n):
        t = t0_ns + (message_id * n + i) * 10_000_000
        items += [{"name": "accelerometer", "time": t, "x": 0.1, "y": 0.0, "z": 0.0},
                  {"name": "gravity", "time": t, "x": 0.0, "y": g, "z": 0.0}]
        if gyro:
            items.append({"name": "gyroscope", "time": t, "x": 0.0, "y": 0.0, "z": 0.5})
    return {"messageId": message_id, "sessionId": "s", "deviceId": device, "payload": items}


class FakeEngine:
    """PULL and PUB bound on loopback: what the gateway sends, and events to send it."""

    def __init__(self, endpoint: Callable[[], str], security: ServerSecurity | None = None) -> None:
        self.ingest, self.publish = endpoint(), endpoint()
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pull = self.context.socket(zmq.PULL)
        self.pub = self.context.socket(zmq.PUB)
        self.authenticator = None
        if security is not None:
            self.authenticator = secure_server(self.context, self.pull, self.pub, security)
        self.pull.bind(self.ingest)
        self.pub.bind(self.publish)

    async def received(self, expect: int = 0, wait_s: float = 0.3) -> list[list[bytes]]:
        """What the gateway has sent: once ``expect`` messages are in (at most 30 s), plus ``wait_s`` more.

        The gateway sends on one PUSH socket, in order: once a good message sent after bad ones has
        arrived, anything the bad ones had sent would have arrived before it.
        """
        out: list[list[bytes]] = []
        deadline = time.monotonic() + 30.0
        while len(out) < expect and time.monotonic() < deadline:
            if self.pull.poll(0):
                out.append(self.pull.recv_multipart())
            else:
                await asyncio.sleep(0.01)
        await asyncio.sleep(wait_s)
        while self.pull.poll(0):
            out.append(self.pull.recv_multipart())
        return out

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.destroy(linger=0)


@asynccontextmanager
async def gateway(engine: FakeEngine, limits: Limits | None = None) -> AsyncIterator[tuple[str, ClientSession]]:
    config = WebConfig(TOKEN, engine.ingest, engine.publish, limits=limits or Limits())
    server = TestServer(make_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as http:
            yield str(server.make_url("")).rstrip("/"), http
    finally:
        await server.close()


@pytest.fixture
def engine(free_endpoint: Callable[[], str]) -> Any:
    fake = FakeEngine(free_endpoint)
    yield fake
    fake.close()


def test_without_the_token_nothing_reaches_the_engine(engine: FakeEngine) -> None:
    async def check() -> None:
        async with gateway(engine) as (base, http):
            for url in (f"{base}/push", f"{base}/push?token=wrong"):
                async with http.post(url, json=sensor_logger(0)) as reply:
                    assert reply.status == 403 and (await reply.json())["error"] == "token"
            for path in ("/", "/phone", "/labels?stream=a", "/stats"):
                async with http.get(base + path) as reply:
                    assert reply.status == 403
                    assert "pairing token is missing or wrong" in (await reply.json())["detail"]
            async with http.post(f"{base}/push", json=sensor_logger(0), headers={"X-Harstream-Token": TOKEN}) as r:
                assert r.status == 200
            assert len(await engine.received(expect=1)) == 1  # the good push alone
            async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                assert (await reply.json())["refused"]["token"] == 6

    asyncio.run(check())


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    (b"{not json", 400, "json", "expected a JSON body"),
    (b"[" * 100_000, 400, "json", "expected a JSON body"),
    (json.dumps(sensor_logger(0, gyro=False)).encode(), 400, "payload", "'gyroscope'"),
    (json.dumps(sensor_logger(0, g=1.0)).encode(), 400, "gravity", "in g"),
    (json.dumps({**sensor_logger(0), "deviceId": 7}).encode(), 400, "deviceId", "got 7"),
    (json.dumps(sensor_logger(0)).replace("0.1", "NaN").encode(), 400, "payload", "finite"),
    (json.dumps(sensor_logger(0, n=4000)).encode(), 413, "body_size", "at most 200000 bytes"),
])
def test_a_bad_push_says_why_and_nothing_reaches_the_engine(engine: FakeEngine, body: bytes, status: int,
                                                            code: str, words: str) -> None:
    async def check() -> None:
        async with gateway(engine, Limits(max_body_bytes=200_000)) as (base, http):
            async with http.post(f"{base}/push?token={TOKEN}", data=body) as reply:
                answer = await reply.json()
                assert (reply.status, answer["error"]) == (status, code) and words in answer["detail"], answer
            async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(0, device="good")) as reply:
                assert reply.status == 200
            (only,) = await engine.received(expect=1)  # the good push alone
            assert decode_chunk(only).stream == push_stream_id("good", "s")

    asyncio.run(check())


def test_push_chunks_gaps_and_repeats(engine: FakeEngine) -> None:
    async def check() -> None:
        async with gateway(engine) as (base, http):
            stream = push_stream_id("dev", "s")
            async with http.ws_connect(f"{base}/labels?token={TOKEN}&stream={stream}") as feed:
                replies = []
                for message_id in (0, 1, 4, 4):
                    url = f"{base}/push?token={TOKEN}&frame=ios"
                    async with http.post(url, json=sensor_logger(message_id)) as r:
                        replies.append((r.status, await r.json()))
                assert [status for status, _ in replies] == [200, 200, 200, 409]
                assert replies[2][1]["gap"] == 2 and replies[3][1]["error"] == "messageId"
                notice = json.loads((await feed.receive(timeout=10)).data)
                assert notice["topic"] == "$web" and notice["body"]["code"] == "message_gap"
            chunks = [decode_chunk(frames) for frames in await engine.received(expect=3)]
            assert [(c.stream, c.seq, c.restart, len(c.samples)) for c in chunks] == [
                (stream, 0, True, 10), (stream, 10, False, 10), (stream, 20, False, 10)]
            first = chunks[0]
            assert first.rate == 100.0 and first.times is not None and first.times[0] == 1_700_000_000.0
            # iOS frame negated back; m/s2 converted by the engine's decoder to g
            assert np.allclose(first.samples[0], [-0.1 / 9.80665, -1.0, 0.0, 0.0, 0.0, 0.5], atol=1e-6)

    asyncio.run(check())


def test_limits_refuse_and_count(engine: FakeEngine) -> None:
    async def check() -> None:
        limits = Limits(max_samples_per_s=10.0, burst_s=1.0, max_phones=1)
        async with gateway(engine, limits) as (base, http):
            async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(0, n=20)) as reply:
                assert reply.status == 429 and (await reply.json())["rate_limit"] == 20
            async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(0, device="other")) as reply:
                assert reply.status == 429 and (await reply.json())["error"] == "too_many_phones"
            async with http.ws_connect(f"{base}/phone?token={TOKEN}") as ws:
                await ws.send_json({"type": "hello", "stream": None})
                refusal = json.loads((await ws.receive(timeout=10)).data)["body"]
                assert refusal["code"] == "too_many_phones"
            async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                stats = await reply.json()
            assert stats["dropped_samples"] == {"rate_limit": 20}
            assert stats["refused"] == {"too_many_phones": 2}
            async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(1, n=10)) as reply:
                assert reply.status == 200  # within the budget again
            (only,) = await engine.received(expect=1)  # nothing of the refused ones before it
            assert decode_chunk(only).seq == 0

    asyncio.run(check())


def test_a_phone_socket_end_to_end(engine: FakeEngine) -> None:
    async def check() -> None:
        async with gateway(engine, Limits(max_message_bytes=4096)) as (base, http):
            async with http.ws_connect(f"{base}/phone?token={TOKEN}") as ws:
                await ws.send_json({"type": "hello", "stream": "not-mine"})
                hello = json.loads((await ws.receive(timeout=10)).data)["body"]
                stream = hello["stream"]
                assert hello["type"] == "hello" and stream.startswith("web-") and stream != "not-mine"
                await ws.send_bytes(b"\x00\x01")
                error = json.loads((await ws.receive(timeout=10)).data)["body"]
                assert error["code"] == "type" and "got a binary one" in error["detail"]
                await ws.send_json({"type": "batch", "samples": [[1.0, 0, 0, 9.8, None, 0, 0]]})
                error = json.loads((await ws.receive(timeout=10)).data)["body"]
                assert error["type"] == "error" and "no gyroscope" in error["detail"]
                rows = [[1_700_000_000_000.0 + 20 * i, 0.0, 9.80665, 0.0, 90.0, 0.0, 0.0] for i in range(5)]
                await ws.send_json({"type": "batch", "samples": rows})
                (frames,) = await engine.received(expect=1)
                chunk = decode_chunk(frames)
                assert (chunk.stream, chunk.seq, chunk.restart, chunk.rate) == (stream, 0, True, 50.0)
                assert np.allclose(chunk.samples[0], [0, 1, 0, 0, 0, np.pi / 2], atol=1e-6)
                # the engine's events for this stream come back with their bodies unchanged
                prediction = encode_prediction(P(stream, 127, "WALKING", (1.0,), "WALKING", 1.0, 1.1))
                other = encode_prediction(P("web-000000000000", 127, "SITTING", (1.0,), "SITTING", 1.0, 1.1))
                error_frames = encode_error(stream, "seq_gap", "a pause of 0.2 s")
                got = None
                for _ in range(100):  # PUB/SUB: repeat until the subscription has reached the publisher
                    for frames in (other, prediction):
                        engine.pub.send_multipart(frames)
                    try:
                        got = await ws.receive(timeout=0.1)
                        break
                    except TimeoutError:
                        continue
                assert got is not None and got.type == WSMsgType.TEXT
                assert got.data == f'{{"topic":"{stream}","body":{prediction[1].decode()}}}'

                engine.pub.send_multipart(error_frames)
                while (msg := json.loads((await ws.receive(timeout=10)).data))["topic"] == stream:
                    pass
                assert msg == {"topic": "$error", "body": json.loads(error_frames[1])}
                await ws.send_str("x" * 5000)  # over max_message_bytes: the socket is closed
                closed = (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
                assert (await ws.receive(timeout=10)).type in closed
            async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                stats = await reply.json()
            assert stats["refused"]["batch"] == 1 and stats["chunks_out"] == 1

    asyncio.run(check())


def test_with_engine_keys_the_gateway_is_a_curve_client(tmp_path: Path, free_endpoint: Callable[[], str]) -> None:
    """An engine with access control: the gateway's allowed key gets chunks in and events out; a key the
    engine does not allow gets nothing through."""
    for name in ("engine", "gateway", "stranger"):
        make_key_pair(tmp_path, name)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "gateway.key").write_bytes((tmp_path / "gateway.key").read_bytes())
    engine = FakeEngine(free_endpoint, ServerSecurity(tmp_path / "engine.key_secret", (allowed,), (allowed,)))
    try:
        async def check(key: str) -> tuple[int, bool]:
            security = ClientSecurity(tmp_path / f"{key}.key_secret", tmp_path / "engine.key")
            config = WebConfig(TOKEN, engine.ingest, engine.publish, security)
            server = TestServer(make_app(config), host="127.0.0.1")
            await server.start_server()
            base = str(server.make_url("")).rstrip("/")
            stream = push_stream_id(key, "s")
            try:
                async with ClientSession() as http, http.ws_connect(
                        f"{base}/labels?token={TOKEN}&stream={stream}") as feed:
                    async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(0, device=key)) as r:
                        assert r.status == 200
                    received = len(await engine.received(expect=1 if key == "gateway" else 0, wait_s=1.0))
                    frames = encode_prediction(P(stream, 127, "WALKING", (1.0,), "WALKING", 1.0, 1.1))
                    for _ in range(10):
                        engine.pub.send_multipart(frames)
                        try:
                            return received, bool(await feed.receive(timeout=0.2))
                        except TimeoutError:
                            continue
                    return received, False
            finally:
                await server.close()

        assert asyncio.run(check("gateway")) == (1, True)
        assert asyncio.run(check("stranger")) == (0, False)
    finally:
        engine.close()


def test_a_phone_with_the_opposite_sign_is_corrected(engine: FakeEngine) -> None:
    async def check() -> None:
        async with gateway(engine) as (base, http), http.ws_connect(f"{base}/phone?token={TOKEN}") as ws:
            await ws.send_json({"type": "hello", "stream": None})
            await ws.receive(timeout=10)
            await ws.send_json({"type": "frame", "acc_sign": 2})
            error = json.loads((await ws.receive(timeout=10)).data)["body"]
            assert (error["type"], error["code"]) == ("error", "frame") and "got 2" in error["detail"]
            await ws.send_json({"type": "frame", "acc_sign": -1})
            assert json.loads((await ws.receive(timeout=10)).data)["body"] == {"v": 1, "type": "frame",
                                                                               "acc_sign": -1}
            rows = [[1_700_000_000_000.0 + 20 * i, 0.0, -9.80665, 0.0, 90.0, 0.0, 0.0] for i in range(5)]
            await ws.send_json({"type": "batch", "samples": rows})
            (frames,) = await engine.received(expect=1)
            chunk = decode_chunk(frames)
            assert chunk.restart and np.allclose(chunk.samples[0], [0, 1, 0, 0, 0, np.pi / 2], atol=1e-6)

    asyncio.run(check())


def test_total_acceleration_and_gyroscope_at_their_own_times() -> None:
    """``totalacceleration`` is used as it is; the gyroscope, sampled at other instants, is interpolated."""
    from harstream.web.convert import sensor_logger_batch

    t0 = 1_700_000_000 * 10**9
    payload = [{"name": "totalacceleration", "time": t0 + k * 10_000_000, "x": 0.0, "y": 9.8, "z": float(k)}
               for k in range(3)]
    payload += [{"name": "gyroscope", "time": t0 + k * 10_000_000 + 5_000_000, "x": float(k), "y": 0, "z": 0}
                for k in range(3)]
    payload.append({"name": "location", "time": t0, "latitude": 1.0})  # other sensors are ignored
    push = sensor_logger_batch({"deviceId": "d", "sessionId": "s", "payload": payload})
    assert push.message_id is None and push.gravity_ms2 is None
    assert push.batch.values[:, 2].tolist() == [0.0, 1.0, 2.0]
    assert push.batch.values[:, 3].tolist() == [0.0, 0.5, 1.5]  # held before the first reading
    assert push.batch.times.tolist() == [1.7e9, 1.7e9 + 0.01, 1.7e9 + 0.02]


def test_numbers_too_large_for_a_double_are_refused_by_name(engine: FakeEngine) -> None:
    """A JSON integer of hundreds of digits (no float holds it) is bad input, not a crash: the phone's socket
    gets an error frame and stays open, a push gets a 400; a hello nested too deep for the parser is refused."""
    huge = "1" + "0" * 400

    async def check() -> None:
        async with gateway(engine) as (base, http):
            async with http.ws_connect(f"{base}/phone?token={TOKEN}") as ws:
                await ws.send_json({"type": "hello", "stream": None})
                await ws.receive(timeout=10)
                await ws.send_str(f'{{"type": "batch", "samples": [[{huge}, 0, 0, 9.8, 0, 0, 0]]}}')
                error = json.loads((await ws.receive(timeout=10)).data)["body"]
                assert (error["type"], error["code"]) == ("error", "values") and "too large" in error["detail"]
                rows = [[1_700_000_000_000.0 + 20 * i, 0.0, 9.80665, 0.0, 0.0, 0.0, 0.0] for i in range(5)]
                await ws.send_json({"type": "batch", "samples": rows})  # the socket is still open
                (frames,) = await engine.received(expect=1)
                assert decode_chunk(frames).seq == 0
            body = json.dumps(sensor_logger(0)).replace('"x": 0.1', f'"x": {huge}')
            async with http.post(f"{base}/push?token={TOKEN}", data=body) as reply:
                answer = await reply.json()
                assert (reply.status, answer["error"]) == (400, "payload") and "too large" in answer["detail"]
            async with http.ws_connect(f"{base}/phone?token={TOKEN}") as ws:
                await ws.send_str("[" * 100_000)
                refusal = json.loads((await ws.receive(timeout=10)).data)["body"]
                assert refusal["code"] == "hello"
            async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                assert (await reply.json())["refused"] == {"values": 1, "payload": 1, "hello": 1}
            assert await engine.received() == []

    asyncio.run(check())


async def _stalled_websocket(base: str, path: str) -> socket.socket:
    """A WebSocket client that has stopped reading (a tiny receive buffer, never read): the gateway's
    writes to it back up."""
    loop = asyncio.get_running_loop()
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert (await loop.sock_recv(sock, 12)) == b"HTTP/1.1 101"
    return sock


def test_a_client_that_stopped_reading_does_not_hold_up_shutdown(engine: FakeEngine) -> None:
    """The gateway stops (closing every WebSocket) even when a labels client's socket is full: it is cut
    off after a while rather than waited for forever."""
    async def check() -> None:
        config = WebConfig(TOKEN, engine.ingest, engine.publish)
        server = TestServer(make_app(config), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        stalled = await _stalled_websocket(base, f"/labels?token={TOKEN}&stream=s1")
        try:
            big = encode_error("s1", "values", "x" * 60_000)
            async with ClientSession() as http:
                for _ in range(2000):  # until its queue is full: the gateway's writes to it are stuck
                    for _ in range(20):
                        engine.pub.send_multipart(big)
                    await asyncio.sleep(0.05)
                    async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                        if (await reply.json())["events_dropped"]:
                            break
                else:
                    raise AssertionError("the stalled client's queue never filled")
            await asyncio.wait_for(server.close(), timeout=120)  # hung for ever before
        finally:
            stalled.close()

    asyncio.run(check())


def test_max_phones_bounds_sockets_naming_a_held_stream(engine: FakeEngine) -> None:
    """Sockets that name a stream already connected count too: reusing one id does not open the gateway to
    any number of sockets past --max-phones."""
    async def check() -> None:
        async with gateway(engine, Limits(max_phones=1)) as (base, http):
            async with http.ws_connect(f"{base}/phone?token={TOKEN}") as first:
                await first.send_json({"type": "hello", "stream": None})
                stream = json.loads((await first.receive(timeout=10)).data)["body"]["stream"]
                async with http.ws_connect(f"{base}/phone?token={TOKEN}") as second:
                    await second.send_json({"type": "hello", "stream": stream})
                    refusal = json.loads((await second.receive(timeout=10)).data)["body"]
                    assert (refusal["type"], refusal["code"]) == ("error", "too_many_phones")
            async with http.ws_connect(f"{base}/phone?token={TOKEN}") as again:  # its slot is free again
                await again.send_json({"type": "hello", "stream": stream})
                assert json.loads((await again.receive(timeout=10)).data)["body"]["stream"] == stream

    asyncio.run(check())


def test_a_token_header_that_is_not_utf8_is_refused_with_403(engine: FakeEngine) -> None:
    async def check() -> None:
        async with gateway(engine) as (base, http):
            host, port = base.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nX-Harstream-Token: \xff\xfe\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            assert (await reader.read()).startswith(b"HTTP/1.1 403")
            writer.close()
            async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                assert (await reply.json())["refused"] == {"token": 1}

    asyncio.run(check())


def test_a_session_forgotten_while_idle_still_counts_its_missing_messages(engine: FakeEngine) -> None:
    """Sensor Logger silent past the idle timeout (out of Wi-Fi, say) and back: the messages it lost meanwhile
    are a gap, as they would be had the session been kept."""
    async def check() -> None:
        app = make_app(WebConfig(TOKEN, engine.ingest, engine.publish))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")
        try:
            async with ClientSession() as http:
                async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(3)) as reply:
                    assert reply.status == 200
                assert app[GATEWAY].forget_idle(time.monotonic() + 3600.0) == 1
                async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(9)) as reply:
                    assert (reply.status, (await reply.json())["gap"]) == (200, 5)
                async with http.post(f"{base}/push?token={TOKEN}", json=sensor_logger(10)) as reply:
                    assert (await reply.json())["gap"] == 0
                async with http.get(f"{base}/stats?token={TOKEN}") as reply:
                    assert (await reply.json())["message_gaps"] == 5
        finally:
            await server.close()

    asyncio.run(check())


def test_a_phone_gone_while_answered_is_no_error(engine: FakeEngine, caplog: pytest.LogCaptureFixture) -> None:
    """A phone whose connection drops (reset) while the gateway answers its messages ends its session quietly:
    no 'Error handling request' traceback for every phone that walks out of Wi-Fi range."""
    def frame(text: str) -> bytes:  # a masked text frame, as a client sends it
        data, mask = text.encode(), os.urandom(4)
        size = bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
        return b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    async def check() -> None:
        async with gateway(engine) as (base, http):
            host, port = base.removeprefix("http://").split(":")
            for _ in range(3):
                reader, writer = await asyncio.open_connection(host, int(port))
                key = base64.b64encode(os.urandom(16)).decode()
                writer.write((f"GET /phone?token={TOKEN} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n").encode())
                await reader.readuntil(b"\r\n\r\n")
                writer.write(frame(json.dumps({"type": "hello", "stream": None})))
                await reader.read(1)  # the hello's first byte: the session is under way
                writer.write(frame(json.dumps({"type": "batch", "samples": "bad"})) * 50)
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                           (1).to_bytes(4, "little") + bytes(4))
                writer.transport.abort()  # a reset, not a close
            async with http.get(f"{base}/stats?token={TOKEN}") as reply:  # the gateway is still there
                assert reply.status == 200

    with caplog.at_level(logging.ERROR, logger="aiohttp"):
        asyncio.run(check())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
