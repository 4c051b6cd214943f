"""The engine's two sockets, bound with the configured limits: PULL for ingest, PUB for output.

>>> sockets = bind(ServerConfig(ingest="inproc://doc-ingest", publish="inproc://doc-publish"))
>>> sockets.ingest_endpoint, sockets.secure
('inproc://doc-ingest', False)
>>> sockets.close()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from harstream.errors import ServeError
from harstream.serve.config import ServerConfig


@dataclass
class Sockets:
    """The engine's two bound sockets (and the authenticator when keys are on)."""

    pull: zmq.Socket[bytes]
    pub: zmq.Socket[bytes]
    secure: bool = False
    """Keys are on: each chunk's sender key is read (``User-Id``) and owns its streams."""
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def ingest_endpoint(self) -> str:
        """The endpoint the PULL socket is bound to (the port chosen, for ``tcp://*:*``)."""
        return _last_endpoint(self.pull)

    @property
    def publish_endpoint(self) -> str:
        """The endpoint the PUB socket is bound to."""
        return _last_endpoint(self.pub)

    def describe(self) -> str:
        """Where the engine listens, for its ready line."""
        return f"ingest (PULL) {self.ingest_endpoint}, publish (PUB) {self.publish_endpoint}"

    def close(self, pub: bool = True) -> None:
        """Close both sockets (the PULL one only, with ``pub=False``) and stop what was started with them."""
        self.pull.close(linger=0)
        if pub:
            self.pub.close()
        for closer in self.closers:
            closer()


def _last_endpoint(sock: zmq.Socket[bytes]) -> str:
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    return endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)


def bind(
    config: ServerConfig,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
    secure: Callable[[zmq.Socket[bytes], zmq.Socket[bytes]], Callable[[], None]] | None = None,
) -> Sockets:
    """Create and bind the engine's sockets with the configured limits.

    ``secure`` (keys on) configures both sockets before they bind and returns
    what stops its authenticator. Raises :class:`ServeError` with one line
    naming the endpoint when a socket cannot bind.
    """
    ctx = context or zmq.Context.instance()
    pull, pub = ctx.socket(zmq.PULL), ctx.socket(zmq.PUB)
    sockets = Sockets(pull, pub, secure=secure is not None)
    try:
        for sock in (pull, pub):
            sock.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:PORT binds; IPv4 works as before
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVHWM, config.ingest_hwm)
        pull.setsockopt(zmq.MAXMSGSIZE, config.max_message_bytes)
        pub.setsockopt(zmq.LINGER, int(config.flush_s * 1000))
        pub.setsockopt(zmq.SNDHWM, config.publish_hwm)
        if secure is not None:
            sockets.closers.append(secure(pull, pub))
        for sock, endpoint, role in ((pull, config.ingest, "ingest"), (pub, config.publish, "publish")):
            try:
                sock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise ServeError(f"cannot bind the {role} endpoint {endpoint!r}: {exc}") from None
    except BaseException:
        sockets.close()
        raise
    return sockets


__all__ = ["Sockets", "bind"]
