"""``RouterConfig``: the endpoints, heartbeats and limits of ``harstream router``.

The one source of every ``router`` option's default (the command line reads them from
here; ``tests/test_cli_defaults.py`` checks it). Importable without numpy or ZeroMQ.

>>> config = RouterConfig()
>>> config.engines, config.results, config.heartbeat_ms, config.timeout_ms
('tcp://127.0.0.1:5557', 'tcp://127.0.0.1:5558', 200, 1000)
>>> RouterConfig(heartbeat_ms=500, timeout_ms=400)
Traceback (most recent call last):
...
ValueError: timeout_ms: expected more than heartbeat_ms (500), got 400
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harstream import DEFAULT_INGEST, DEFAULT_PUBLISH
from harstream.serve.cluster_wire import DEFAULT_HEARTBEAT_MS, DEFAULT_TIMEOUT_MS
from harstream.serve.config import MAX_INGEST_FRAME_BYTES

DEFAULT_ENGINES = "tcp://127.0.0.1:5557"
"""Where the router binds the ROUTER socket engines' DEALERs connect to."""
DEFAULT_RESULTS = "tcp://127.0.0.1:5558"
"""Where the router binds the XSUB socket engines' PUBs connect to."""


@dataclass(frozen=True)
class RouterConfig:
    """Endpoints, heartbeats and limits of a running router."""

    ingest: str = DEFAULT_INGEST
    """PULL endpoint producers (and ``harstream web``) connect to, as for one engine."""
    publish: str = DEFAULT_PUBLISH
    """XPUB endpoint subscribers connect to, as for one engine."""
    engines: str = DEFAULT_ENGINES
    """ROUTER endpoint engines (``serve --join``) connect their DEALER to. Loopback by default:
    an engine that joins receives streams, so bind it on a network only with keys on."""
    results: str = DEFAULT_RESULTS
    """XSUB endpoint engines connect their PUB to (named to them in WELCOME)."""
    advertise: str | None = None
    """Host name engines reach the results endpoint at (WELCOME); None: the bound address,
    or this machine's host name when it is bound on ``*``."""
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    """How often each engine is PINGed (also ``ZMQ_HEARTBEAT_IVL`` of the engines socket)."""
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    """An engine silent this long is dropped and its streams move (also ``ZMQ_HEARTBEAT_TIMEOUT``)."""
    stats_interval_s: float = 1.0
    """Seconds between the cluster's ``$stats`` messages."""
    idle_timeout_s: float = 60.0
    """A stream silent this long is forgotten by the router (as the engines forget it)."""
    max_streams: int = 200_000
    """Streams the router remembers at once; beyond it new streams are routed but not remembered
    (a move of theirs is not announced; with keys they are refused). A change of the live engines
    re-hashes the streams remembered in one go, routing nothing meanwhile: this bounds that pause
    (its length per stream: docs/scaling.md, "Routing")."""
    max_drain: int = 2048
    """Most ingest messages forwarded in one turn before the engines' and results' sockets are read."""
    ingest_hwm: int = 1000
    """Receive high-water mark of the PULL socket, messages per connected producer."""
    engine_hwm: int = 10_000
    """Send high-water mark per engine; a chunk for an engine this far behind is dropped and
    reported (``overloaded``), never waited for."""
    publish_hwm: int = 10_000
    """Send high-water mark of the XPUB socket, messages per subscriber."""
    results_hwm: int = 100_000
    """Receive high-water mark of the XSUB socket, messages per engine."""
    max_message_bytes: int = MAX_INGEST_FRAME_BYTES
    """``ZMQ_MAXMSGSIZE`` of the PULL socket (as the engine's)."""

    def __post_init__(self) -> None:
        if not 1 <= self.heartbeat_ms <= 60_000:
            raise ValueError(f"heartbeat_ms: expected an integer in [1, 60000], got {self.heartbeat_ms}")
        if self.timeout_ms <= self.heartbeat_ms:
            raise ValueError(f"timeout_ms: expected more than heartbeat_ms ({self.heartbeat_ms}), "
                             f"got {self.timeout_ms}")

    def limits(self) -> dict[str, int | float]:
        """The router's limits, as published in its ``$stats``."""
        keys = ("heartbeat_ms", "timeout_ms", "idle_timeout_s", "max_streams", "max_drain", "ingest_hwm",
                "engine_hwm", "publish_hwm", "results_hwm", "max_message_bytes")
        values = asdict(self)
        return {key: values[key] for key in keys}


__all__ = ["DEFAULT_ENGINES", "DEFAULT_RESULTS", "RouterConfig"]
