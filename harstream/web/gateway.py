"""The gateway's state: configuration, the engine link, the phones it holds, its counters.

>>> config = WebConfig(token="t0ken")
>>> config.token_ok("t0ken"), config.token_ok("other"), config.token_ok(None)
(True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from harstream import DEFAULT_INGEST, DEFAULT_PUBLISH
from harstream.serve.security import ClientSecurity
from harstream.web.limits import Counters, Limits, SampleBudget
from harstream.web.link import EngineLink, envelope
from harstream.web.streams import PhoneStream

TOKEN_PARAM = "token"
"""The query parameter holding the pairing token (``?token=...``)."""
TOKEN_HEADER = "X-Harstream-Token"
"""Or this request header."""


@dataclass(frozen=True)
class WebConfig:
    """What ``harstream web`` is given."""

    token: str
    """The per-run pairing token every request must carry."""
    ingest: str = DEFAULT_INGEST
    publish: str = DEFAULT_PUBLISH
    security: ClientSecurity | None = None
    limits: Limits = field(default_factory=Limits)

    def token_ok(self, given: str | None) -> bool:
        """Constant-time comparison with the pairing token (a header's undecodable bytes come as surrogates).

        >>> WebConfig(token="t0ken").token_ok("\\udcff")
        False
        """
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                                         self.token.encode())


@dataclass
class PushSession:
    """A Sensor Logger recording: ``(deviceId, sessionId)``, its stream and last ``messageId``."""

    stream: PhoneStream
    budget: SampleBudget
    last_message_id: int | None = None
    last_seen: float = 0.0


def push_stream_id(device_id: str, session_id: str) -> str:
    """The stream id of a Sensor Logger session: ``sl-`` and 12 hex digits of a hash of both ids.

    >>> push_stream_id("phone", "2024-01-01_10-00-00")
    'sl-52a410c0d9b4'
    """
    digest = hashlib.sha256(json.dumps([device_id, session_id]).encode()).hexdigest()
    return f"sl-{digest[:12]}"


class Gateway:
    """Everything the request handlers share."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.counters = Counters()
        self.link: EngineLink | None = None
        self.connected: dict[str, int] = {}
        """Browser phone streams with a live WebSocket, and how many (each counts toward ``max_phones``)."""
        self.sessions: dict[tuple[str, str], PushSession] = {}
        self.forgotten: dict[tuple[str, str], int] = {}
        """The last ``messageId`` of the newest ``max_phones`` Sensor Logger sessions forgotten while idle:
        one that comes back has the messages it lost meanwhile counted as a gap."""
        self.label_clients = 0
        self.started = time.time()
        self.sockets: dict[Any, Any] = {}
        """Open WebSockets (phones and labels feeds) and their transports, closed when the gateway stops."""

    def open(self) -> EngineLink:
        """Connect to the engine (once, inside the running event loop)."""
        if self.link is None:
            self.link = EngineLink(self.config.ingest, self.config.publish, self.counters,
                                   self.config.security)
        return self.link

    @property
    def phones_held(self) -> int:
        """Phone WebSockets plus Sensor Logger sessions."""
        return sum(self.connected.values()) + len(self.sessions)

    def room_for(self, stream: str) -> bool:
        """Whether ``stream`` may be held now: a Sensor Logger session held already, or under ``max_phones``
        (a WebSocket takes a place even for a stream already connected: sockets stay bounded)."""
        held = any(s.stream.stream_id == stream for s in self.sessions.values())
        return held or self.phones_held < self.limits.max_phones

    def budget(self) -> SampleBudget:
        return SampleBudget(self.limits.max_samples_per_s, self.limits.burst_s, time.monotonic())

    def forget_idle(self, now: float) -> int:
        """Drop Sensor Logger sessions silent for ``idle_timeout_s`` (their last ``messageId`` kept); how many."""
        idle = [key for key, s in self.sessions.items() if now - s.last_seen > self.limits.idle_timeout_s]
        for key in idle:
            last = self.sessions.pop(key).last_message_id
            if last is not None:
                self.forgotten.pop(key, None)
                self.forgotten[key] = last
        while len(self.forgotten) > self.limits.max_phones:
            del self.forgotten[next(iter(self.forgotten))]
        return len(idle)

    def notice(self, stream: str, code: str, detail: str) -> None:
        """Tell ``stream``'s listeners something the gateway did (topic ``$web``)."""
        if self.link is not None:
            body = json.dumps({"v": 1, "type": "notice", "stream": stream, "code": code, "detail": detail})
            self.link.deliver(stream, envelope("$web", body))

    def stats(self) -> dict[str, Any]:
        """The counters, limits and occupancy (``GET /stats``)."""
        return {"v": 1, "uptime_s": round(time.time() - self.started, 3), "phones": len(self.connected),
                "push_sessions": len(self.sessions), "label_clients": self.label_clients,
                "invalid_engine_events": self.link.invalid_events if self.link else 0,
                **self.counters.as_dict(), "limits": self.limits.as_dict()}


def web_message(kind: str, **fields: Any) -> str:
    """A gateway message to a WebSocket client (topic ``$web``).

    >>> web_message("error", code="batch", detail="bad")
    '{"topic":"$web","body":{"v":1,"type":"error","code":"batch","detail":"bad"}}'
    """
    return envelope("$web", json.dumps({"v": 1, "type": kind, **fields}, separators=(",", ":")))
