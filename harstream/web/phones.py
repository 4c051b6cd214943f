"""The two ways a phone sends motion: the page's WebSocket (``/phone``) and Sensor Logger's ``POST /push``.

The phone WebSocket speaks JSON text messages. The phone first sends
``{"type": "hello", "stream": ID or null}`` (its id from an earlier visit,
kept in localStorage), the gateway answers ``$web`` ``hello`` with the
stream id it uses; then the phone sends ``{"type": "batch", "samples":
[[t_ms, ax, ay, az, alpha, beta, gamma], ...]}`` (see
:mod:`harstream.web.convert`) and receives its stream's predictions,
``$error`` and ``$stats`` as ``{"topic", "body"}`` with the engine's body
unchanged. A bad message gets a ``$web`` ``error`` naming the problem and
is dropped (counted); the connection stays.

``{"type": "frame", "acc_sign": -1}`` says the browser reports acceleration
with the opposite sign to the W3C one (the page finds it by comparing the
gravity it reads with the direction its ``deviceorientation`` angles give);
the gateway then negates acc x, y and z from the next batch on (restarting
the stream) and confirms with a ``$web`` ``frame`` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any

from aiohttp import WSMsgType, web

from harstream.web.convert import GRAVITY_RANGE_MS2, Batch, browser_batch, sensor_logger_batch
from harstream.web.errors import WebInputError
from harstream.web.gateway import Gateway, PushSession, push_stream_id, web_message
from harstream.web.limits import SampleBudget
from harstream.web.streams import PhoneStream, new_phone_id

PHONE_ID = re.compile(r"web-[0-9a-f]{12}")
"""Stream ids the gateway gives browser phones (and accepts back from them)."""
HELLO_TIMEOUT_S = 10.0
QUEUE_SIZE = 256
"""Engine events waiting for one client; beyond it they are dropped (counted)."""

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


async def writer(ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
    """Send queued messages to ``ws`` until cancelled or it closes."""
    while not ws.closed:
        text = await queue.get()
        try:
            await ws.send_str(text)
        except (ConnectionResetError, RuntimeError):
            return


def forward(gateway: Gateway, stream: PhoneStream, batch: Batch, budget: SampleBudget) -> dict[str, int]:
    """Send ``batch`` to the engine under ``budget``; the samples sent and those dropped, by reason
    (``engine_busy`` drops happen later, when the turn's chunks go out: counted in :class:`Counters`)."""
    counters = gateway.counters
    counters.samples_in += len(batch) + batch.dropped
    dropped: dict[str, int] = {}
    if batch.dropped:
        dropped["times"] = batch.dropped
    if not budget.take(len(batch), time.monotonic()):
        dropped["rate_limit"] = len(batch)
    else:
        frames, late = stream.chunks(batch)
        if late:
            dropped["times"] = dropped.get("times", 0) + late
        link = gateway.open()
        for chunk in frames:
            link.send(chunk)
    for reason, n in dropped.items():
        counters.dropped_samples[reason] += n
    return {"sent": len(batch) + batch.dropped - sum(dropped.values()), **dropped}


async def phone_socket(request: web.Request) -> web.WebSocketResponse:
    """``GET /phone``: one browser phone over a WebSocket."""
    gateway = request.app[GATEWAY]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=gateway.limits.max_message_bytes)
    await ws.prepare(request)
    gateway.sockets[ws] = request.transport
    try:
        await _phone_session(ws, gateway)
    finally:
        gateway.sockets.pop(ws, None)
    return ws


async def _phone_session(ws: web.WebSocketResponse, gateway: Gateway) -> None:
    """A phone's hello, then its batches until the socket closes."""
    stream_id = await _hello(ws, gateway)
    if stream_id is None:
        return
    stream = PhoneStream(stream_id)  # a new connection restarts the stream (its first chunk says so)
    gateway.connected[stream_id] = gateway.connected.get(stream_id, 0) + 1
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
    link = gateway.open()
    link.listen(stream_id, queue)
    task = asyncio.create_task(writer(ws, queue))
    budget = gateway.budget()
    try:
        await ws.send_str(web_message("hello", stream=stream_id, limits=gateway.limits.as_dict()))
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                gateway.counters.refused["type"] += 1
                await ws.send_str(web_message("error", code="type", detail=f"expected text (JSON) messages, "
                                              f"got a {msg.type.name.lower()} one"))
                continue
            try:
                kind, content = _phone_message(msg.data)
                if kind == "frame":
                    stream.set_acc_sign(content)
                    await ws.send_str(web_message("frame", acc_sign=content))
                    continue
                batch = browser_batch(content)
            except WebInputError as exc:
                gateway.counters.refused[exc.code] += 1
                await ws.send_str(web_message("error", code=exc.code, detail=exc.detail))
                continue
            result = forward(gateway, stream, batch, budget)
            if len(result) > 1:
                await ws.send_str(web_message("dropped", **result))
        if ws.close_code == 1009:
            gateway.counters.refused["message_size"] += 1
    except ConnectionResetError:
        pass  # the phone went away while being answered (a dropped connection): nothing left to tell it
    finally:
        task.cancel()
        link.unlisten(stream_id, queue)
        gateway.connected[stream_id] -= 1
        if not gateway.connected[stream_id]:
            del gateway.connected[stream_id]


async def _hello(ws: web.WebSocketResponse, gateway: Gateway) -> str | None:
    """The stream id for this phone from its hello; None (socket closed, reason sent) when refused."""
    try:
        msg = await ws.receive(timeout=HELLO_TIMEOUT_S)
        hello = json.loads(msg.data) if msg.type == WSMsgType.TEXT else None
    except (TimeoutError, ValueError, RecursionError):  # RecursionError: nested too deep
        hello = None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await _refuse(ws, gateway, "hello", "expected a first message {\"type\": \"hello\", \"stream\": "
                      f"ID or null}} within {HELLO_TIMEOUT_S:g} s")
        return None
    given = hello.get("stream")
    stream_id = given if isinstance(given, str) and PHONE_ID.fullmatch(given) else new_phone_id()
    if not gateway.room_for(stream_id):
        await _refuse(ws, gateway, "too_many_phones",
                      f"this gateway holds {gateway.limits.max_phones} phones, its limit (--max-phones)")
        return None
    return stream_id


async def _refuse(ws: web.WebSocketResponse, gateway: Gateway, code: str, detail: str) -> None:
    gateway.counters.refused[code] += 1
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await ws.send_str(web_message("error", code=code, detail=detail))
        await ws.close(code=1008, message=code.encode())


def _phone_message(text: str) -> tuple[str, Any]:
    """``("batch", samples)`` or ``("frame", acc_sign)`` from a phone's message."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep for Python's parser
        raise WebInputError("json", f"expected a JSON message: {exc}") from None
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "batch":
        return kind, message.get("samples")
    if kind == "frame":
        sign = message.get("acc_sign")
        if type(sign) is not int or sign not in (1, -1):
            raise WebInputError("frame", f"expected 'acc_sign' to be 1 or -1, got {sign!r:.40}")
        return kind, sign
    raise WebInputError("type", "expected {\"type\": \"batch\", \"samples\": [...]} or "
                        "{\"type\": \"frame\", \"acc_sign\": 1 or -1}")


async def push(request: web.Request) -> web.Response:
    """``POST /push``: one Sensor Logger HTTP Push message (``?frame=android|ios``)."""
    gateway = request.app[GATEWAY]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _bad(gateway, 413, "body_size", f"expected a body of at most {gateway.limits.max_body_bytes} "
                    "bytes (--max-body-bytes); send shorter batches")
    frame = request.query.get("frame", "android")
    try:
        message = sensor_logger_batch(json.loads(body), frame)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep for Python's parser
        return _bad(gateway, 400, "json", f"expected a JSON body: {exc}")
    except WebInputError as exc:
        return _bad(gateway, 400, exc.code, exc.detail)
    low, high = GRAVITY_RANGE_MS2
    if message.gravity_ms2 is not None and not low <= message.gravity_ms2 <= high:
        return _bad(gateway, 400, "gravity", f"gravity reads {message.gravity_ms2:.3g} m/s² on average: "
                    f"expected {low:g}-{high:g} (Earth's 9.81 m/s²); a reading near 1 is in g: turn on "
                    "'Standardise Units & Frames' in Sensor Logger")
    key = (message.device_id, message.session_id)
    session = gateway.sessions.get(key)
    if session is None:
        stream_id = push_stream_id(*key)
        if not gateway.room_for(stream_id):
            return _bad(gateway, 429, "too_many_phones",
                        f"this gateway holds {gateway.limits.max_phones} phones, its limit (--max-phones)")
        session = gateway.sessions[key] = PushSession(PhoneStream(stream_id), gateway.budget(),
                                                      gateway.forgotten.pop(key, None))
    stream_id = session.stream.stream_id
    gap = _message_gap(session, message.message_id)
    if gap is not None and gap < 0:
        return _bad(gateway, 409, "messageId", f"messageId {message.message_id} of stream {stream_id} "
                    f"already received (the last was {session.last_message_id}): dropped")
    session.last_seen = time.monotonic()
    if gap:
        gateway.counters.message_gaps += gap
        gateway.notice(stream_id, "message_gap", f"{gap} Sensor Logger message(s) missing before messageId "
                       f"{message.message_id}")
    result = forward(gateway, session.stream, message.batch, session.budget)
    status = 429 if "rate_limit" in result else 200
    return web.json_response({"stream": stream_id, "frame": frame, "gap": gap or 0, **result},
                             status=status)


def _message_gap(session: PushSession, message_id: int | None) -> int | None:
    """Messages missing before ``message_id`` (negative: a repeat); None without ids."""
    if message_id is None:
        return None
    last, session.last_message_id = session.last_message_id, message_id
    if last is None:
        return 0
    if message_id <= last:
        session.last_message_id = last
        return -1
    return message_id - last - 1


def _bad(gateway: Gateway, status: int, code: str, detail: str) -> web.Response:
    gateway.counters.refused[code] += 1
    return web.json_response({"error": code, "detail": detail}, status=status)
