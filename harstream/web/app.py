"""The gateway's aiohttp application: routes, the pairing-token check, the labels feed.

| route | what |
| --- | --- |
| ``GET /`` | the phone page (package data, no CDN) |
| ``GET /phone`` | a phone's WebSocket (:mod:`harstream.web.phones`) |
| ``POST /push`` | Sensor Logger HTTP Push (``?frame=android`` or ``ios``) |
| ``GET /labels?stream=ID&stream=ID`` | WebSocket feed of those streams' predictions, ``$error``, ``$stats`` |
| ``GET /stats`` | the gateway's counters and limits, JSON |

Every request carries the pairing token (``?token=...`` or the
``X-Harstream-Token`` header); without it the answer is 403 and nothing
reaches the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files

from aiohttp import WSCloseCode, web

from harstream.protocol import STREAM_ID
from harstream.web.gateway import TOKEN_HEADER, TOKEN_PARAM, Gateway, WebConfig
from harstream.web.phones import GATEWAY, QUEUE_SIZE, phone_socket, push, writer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLOSE_WAIT_S = 5.0
"""Seconds a WebSocket client gets to take the gateway's close when it stops, before it is cut off."""


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403, before anything is read, unless the request carries the pairing token."""
    gateway = request.app[GATEWAY]
    given = request.query.get(TOKEN_PARAM) or request.headers.get(TOKEN_HEADER)
    if not gateway.config.token_ok(given):
        gateway.counters.refused["token"] += 1
        return web.json_response(
            {"error": "token", "detail": "the pairing token is missing or wrong: open the URL `harstream web` "
             f"printed (it ends in ?{TOKEN_PARAM}=...), or send the {TOKEN_HEADER} header"}, status=403)
    return await handler(request)


async def page(request: web.Request) -> web.Response:
    """``GET /``: the phone page."""
    html = files("harstream.web").joinpath("page/index.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


async def stats(request: web.Request) -> web.Response:
    """``GET /stats``: counters, limits and occupancy."""
    return web.json_response(request.app[GATEWAY].stats())


async def labels(request: web.Request) -> web.StreamResponse:
    """``GET /labels?stream=ID...``: the named streams' events over a WebSocket."""
    gateway = request.app[GATEWAY]
    streams = request.query.getall("stream", [])
    bad = [s for s in streams if not STREAM_ID.fullmatch(s)]
    problem = None
    if not streams or bad or len(streams) > gateway.limits.max_streams_per_feed:
        problem = (f"expected 1-{gateway.limits.max_streams_per_feed} ?stream=ID parameters, each 1-64 "
                   f"characters of [A-Za-z0-9._:-]; got {len(streams)}")
        problem += f", bad: {bad[0][:70]!r}" if bad else ""
    elif gateway.label_clients >= gateway.limits.max_label_clients:
        gateway.counters.refused["too_many_label_clients"] += 1
        return web.json_response({"error": "too_many_label_clients", "detail": "this gateway serves "
                                  f"{gateway.limits.max_label_clients} labels feeds, its limit"}, status=503)
    if problem is not None:
        gateway.counters.refused["streams"] += 1
        return web.json_response({"error": "streams", "detail": problem}, status=400)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=gateway.limits.max_message_bytes)
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE * len(streams))
    link = gateway.open()
    gateway.label_clients += 1
    gateway.sockets[ws] = request.transport
    for stream in streams:
        link.listen(stream, queue)
    task = asyncio.create_task(writer(ws, queue))
    try:
        async for _ in ws:
            pass  # the feed is one-way; the client's messages are read (and ignored) to see it close
    finally:
        task.cancel()
        for stream in streams:
            link.unlisten(stream, queue)
        gateway.label_clients -= 1
        gateway.sockets.pop(ws, None)
    return ws


async def _close_sockets(app: web.Application) -> None:
    """On shutdown: close every WebSocket (1001, going away), so their handlers end and phones reconnect.

    All at once, each given :data:`CLOSE_WAIT_S`: a client that stopped reading (its socket full) would
    otherwise hold the close, and the gateway's shutdown, for ever; its connection is cut instead.
    """
    async def close(ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        try:
            await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping"),
                                   CLOSE_WAIT_S)
        except Exception:  # TimeoutError (a client not reading) or a connection already gone
            if transport is not None:
                transport.abort()

    await asyncio.gather(*(close(ws, transport) for ws, transport in list(app[GATEWAY].sockets.items())))


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The engine link's event pump and the idle-session sweep, for the app's lifetime."""
    gateway = app[GATEWAY]
    link = gateway.open()

    async def sweep() -> None:
        while True:
            await asyncio.sleep(max(1.0, gateway.limits.idle_timeout_s / 4))
            gateway.forget_idle(time.monotonic())

    tasks = [asyncio.create_task(link.pump()), asyncio.create_task(sweep())]
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    link.close()


def make_app(config: WebConfig) -> web.Application:
    """The gateway for ``config`` (start it with aiohttp's runner, or its test client)."""
    app = web.Application(middlewares=[require_token], client_max_size=config.limits.max_body_bytes)
    app[GATEWAY] = Gateway(config)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/", page)
    app.router.add_get("/phone", phone_socket)
    app.router.add_post("/push", push)
    app.router.add_get("/labels", labels)
    app.router.add_get("/stats", stats)
    return app
