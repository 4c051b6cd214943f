"""Run the gateway: bind, print the URL (with a terminal QR code) and serve until SIGINT or SIGTERM.

>>> phone_url("https", "0.0.0.0", 8443, "abc", ["192.168.1.20", "127.0.0.1", "localhost"])
'https://192.168.1.20:8443/?token=abc'
>>> phone_url("http", "127.0.0.1", 8080, "abc", [])
'http://localhost:8080/?token=abc'
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import Callable
from typing import TextIO

import segno
from aiohttp import web

from harstream.web.app import make_app
from harstream.web.gateway import WebConfig

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def phone_url(scheme: str, host: str, port: int, token: str, addresses: list[str]) -> str:
    """The address a phone opens: a routable one when listening on every interface."""
    if host in ("0.0.0.0", "::", ""):
        host = next((a for a in addresses if a not in LOOPBACK), "localhost")
    elif host in LOOPBACK:
        host = "localhost"  # a secure context in browsers even over plain http
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/?token={token}"


def print_qr(url: str, out: TextIO) -> None:
    """``url`` as a QR code drawn with text (scan it with the phone's camera)."""
    segno.make(url, error="m").terminal(out=out, compact=True)


async def serve(config: WebConfig, host: str, port: int, context: ssl.SSLContext | None,
                ready: Callable[[int], None], stop: asyncio.Event) -> None:
    """Serve ``config`` on ``host:port`` until ``stop`` is set; ``ready(port)`` once bound."""
    runner = web.AppRunner(make_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        ready(sockets[0].getsockname()[1] if sockets else port)
        await stop.wait()
    finally:
        await runner.cleanup()


def run_gateway(config: WebConfig, host: str, port: int, context: ssl.SSLContext | None,
                ready: Callable[[int], None]) -> int:
    """Serve until SIGINT or SIGTERM; 0 when stopped."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve(config, host, port, context, ready, stop)

    asyncio.run(main())
    return 0
