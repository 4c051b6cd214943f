"""Keys on the router: CurveZMQ on its four sockets, and stream ownership in place of the engines'.

With keys, the router is a CURVE server on every socket, with the one key pair
(``--server-key``): its public side admits the producers' and subscribers' allow-lists
exactly as a bound engine does (:func:`harstream.serve.security.secure_server`, ZAP
domains ``ingest`` and ``publish``), and its engines and results sockets admit the
engines' allow-list (ZAP domain ``engines``): only those keys can join, receive streams
and publish to the subscribers. Engines connect with ``serve --join --server-key
ENGINE.key_secret --router-key ROUTER.key``.

Behind a router an engine no longer sees the producers' keys, so the router enforces
what a bound engine does: a stream belongs to the key that opened it, and a chunk of it
sent with another key is dropped and reported (``not_owner``).

>>> import tempfile
>>> from pathlib import Path
>>> from harstream.serve.security import make_key_pair
>>> folder = Path(tempfile.mkdtemp())
>>> _, secret = make_key_pair(folder, "router")
>>> engine, _ = make_key_pair(folder, "engine-0")
>>> security = RouterSecurity(ServerSecurity(secret, folder, folder), engines=engine)
>>> len(security.engine_keys())
1
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from harstream.serve.security import (
    AllowList,
    ServerSecurity,
    load_allow_list,
    load_key_pair,
    secure_server,
)

__all__ = ["ENGINES_DOMAIN", "RouterSecurity", "secure_router"]

ENGINES_DOMAIN = b"engines"
"""ZAP domain of the engines and results sockets."""

log = logging.getLogger("harstream.cluster.security")


@dataclass(frozen=True)
class RouterSecurity:
    """The router's key pair, who may produce and subscribe (as an engine's), and which engines may join."""

    server: ServerSecurity
    """The router's secret key file and the producers' and subscribers' allow-lists."""
    engines: AllowList
    """Public keys of the engines allowed to join (engines socket) and publish (results socket)."""

    def engine_keys(self) -> frozenset[bytes]:
        """The engines' public keys; :class:`SecurityError` if the allow-list is unusable."""
        return load_allow_list(self.engines, "engines' allow-list")


class _Admit:
    """A ``zmq.auth`` credentials provider admitting exactly ``keys`` (refusals logged once per key)."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys
        self.refused: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        if key not in self.refused and len(self.refused) < 100:
            self.refused.add(key)
            log.warning("refused an engine connection: key %s is not on the engines' allow-list (logged once "
                        "per key)", key.decode("ascii", "replace"))
        return False


def secure_router(context: zmq.Context[zmq.Socket[bytes]], pull: zmq.Socket[bytes], xpub: zmq.Socket[bytes],
                  engines: zmq.Socket[bytes], xsub: zmq.Socket[bytes],
                  security: RouterSecurity) -> Callable[[], None]:
    """Make the four sockets CURVE servers (call before they bind); what stops the ZAP handler."""
    engine_keys = security.engine_keys()
    public, secret = load_key_pair(security.server.secret_key_file)
    authenticator = secure_server(context, pull, xpub, security.server)
    try:
        authenticator.configure_curve_callback(ENGINES_DOMAIN.decode(), _Admit(engine_keys))
        for sock in (engines, xsub):
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.ZAP_DOMAIN, ENGINES_DOMAIN)
    except BaseException:
        authenticator.stop()
        raise
    stop: Callable[[], None] = authenticator.stop
    return stop
