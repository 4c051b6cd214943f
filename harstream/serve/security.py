"""Opt-in access control for the engine's two sockets: CurveZMQ through ``zmq.auth``.

Without keys nothing changes: the engine binds loopback endpoints and
anyone who can reach them may send and subscribe. With keys, both sockets
become CURVE servers: every connection is encrypted, and a ZAP handler (a
:class:`zmq.auth.thread.ThreadAuthenticator`) admits only the public keys
of an allow-list — one for producers (ZAP domain ``ingest``, the PULL
socket), one for subscribers (domain ``publish``, the PUB socket). A
connection with an unknown key fails its handshake: nothing it sends is
received, nothing is published to it.

Keys are zmq.auth certificate files, as ``harstream keys new NAME`` (or
:func:`make_key_pair`) writes them: ``NAME.key`` holds the public key (share
it, copy it into an allow-list folder), ``NAME.key_secret`` the key pair
(mode 0600; it never leaves the machine that uses it).

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> public, secret = make_key_pair(folder, "phone-1")
>>> public.name, secret.name, oct(secret.stat().st_mode & 0o777)
('phone-1.key', 'phone-1.key_secret', '0o600')
>>> len(load_public_key(public)) == 40 and load_key_pair(secret)[0] == load_public_key(public)
True

The engine side: :func:`secure_server` on the PULL and PUB sockets before
they bind; :func:`sender_key` tells which key sent a received message. A
client: :func:`secure_client` before it connects. The command-line options
that build :class:`ServerSecurity` and :class:`ClientSecurity` are in
:mod:`harstream.cli.security_args`; :func:`server_key_argv` and
:func:`client_key_argv` give them back to a child ``harstream`` process.

Importing this module is cheap (ZeroMQ loads on first use), so the command
line can import it while it builds its parser. The threat model is in
``docs/security.md``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harstream.errors import SecurityError

if TYPE_CHECKING:
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

__all__ = [
    "INGEST_DOMAIN",
    "PUBLISH_DOMAIN",
    "AllowList",
    "ClientSecurity",
    "ServerSecurity",
    "client_key_argv",
    "load_allow_list",
    "load_key_pair",
    "load_public_key",
    "make_key_pair",
    "public_key_file_of",
    "public_key_in",
    "secure_client",
    "secure_server",
    "sender_key",
    "server_key_argv",
]

INGEST_DOMAIN = b"ingest"
"""ZAP domain of the PULL socket: the producers' allow-list applies."""
PUBLISH_DOMAIN = b"publish"
"""ZAP domain of the PUB socket: the subscribers' allow-list applies."""

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Names of key pairs: a file name without folders or a leading dot."""
_Z85 = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
_KEY_CHARS = 40
"""A 32-byte CurveZMQ key in Z85 text."""
_MADE_BY = "as `harstream keys new NAME` writes it"
_MAX_LOGGED_REFUSALS = 1024

AllowList = Path | str | Sequence[Path | str]
"""Public keys allowed in: a folder of ``*.key`` files, one ``.key`` file, or a sequence of both."""


# -- key files -------------------------------------------------------------------------------


def make_key_pair(folder: Path | str, name: str) -> tuple[Path, Path]:
    """Write a new key pair ``folder/NAME.key`` (public) and ``NAME.key_secret`` (mode 0600).

    Returns ``(public_file, secret_file)``. Never overwrites: an existing
    file of either name is a :class:`SecurityError` (a new key would lock
    out everyone who trusts the old one).
    """
    import zmq.auth

    if not KEY_NAME.fullmatch(name):
        raise SecurityError(
            f"key name {name!r}: expected 1-64 letters, digits, '.', '_' or '-', "
            f"not starting with '.' or '-' (it becomes the file name NAME.key)"
        )
    folder = Path(folder)
    public, secret = folder / f"{name}{PUBLIC_SUFFIX}", folder / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if path.exists():
            raise SecurityError(f"{path} already exists: pick another name or delete the old key "
                                "pair first (every allow-list holding its public key must change too)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written in a private (0700) folder, locked down, then moved: the secret is never
        # readable by others, not even for a moment.
        scratch = tempfile.mkdtemp(prefix=".harstream-keys-", dir=folder)
    except OSError as exc:
        raise SecurityError(f"cannot write key files into {folder}: {exc.strerror or exc}") from None
    try:
        made_public, made_secret = zmq.auth.create_certificates(scratch, name)
        os.chmod(made_secret, 0o600)
        os.replace(made_secret, secret)
        os.replace(made_public, public)
    except OSError as exc:
        raise SecurityError(f"cannot write key files into {folder}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return public, secret


def public_key_file_of(secret_file: Path | str) -> Path:
    """``NAME.key`` beside ``NAME.key_secret`` (the public half :func:`make_key_pair` wrote)."""
    secret_file = Path(secret_file)
    if not secret_file.name.endswith(SECRET_SUFFIX):
        raise SecurityError(f"{secret_file}: expected a secret key file named NAME{SECRET_SUFFIX}")
    return secret_file.with_name(secret_file.name[: -len(SECRET_SUFFIX)] + PUBLIC_SUFFIX)


def _read_certificate(path: Path, expected: str) -> tuple[bytes, bytes | None]:
    """``(public, secret or None)`` of a zmq.auth certificate file, both checked as Z85 keys."""
    import zmq.auth

    if path.is_dir():
        raise SecurityError(f"{path} is a folder; expected {expected}")
    if not path.is_file():
        raise SecurityError(f"{path}: no such file; expected {expected}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except ValueError:
        raise SecurityError(
            f"{path}: no public-key line; expected {expected} in zmq certificate format ({_MADE_BY})"
        ) from None
    except OSError as exc:
        raise SecurityError(f"{path}: cannot read it ({exc.strerror or exc}); expected {expected}") from None
    _check_key(path, "public-key", public)
    if secret is not None:
        _check_key(path, "secret-key", secret)
    return public, secret


def _check_key(path: Path, field: str, key: bytes) -> None:
    if len(key) != _KEY_CHARS or not set(key) <= _Z85:
        raise SecurityError(
            f"{path}: {field} is not a CurveZMQ key: expected {_KEY_CHARS} Z85 characters, "
            f"got {len(key)} bytes ({_MADE_BY})"
        )


def load_public_key(path: Path | str) -> bytes:
    """The Z85 public key (40 bytes) in a public key file ``NAME.key``.

    A file that also holds a secret key is refused: public key files are
    the ones that travel (to clients, into allow-lists); secrets never do.
    """
    path = Path(path)
    public, secret = _read_certificate(path, f"a public key file (NAME{PUBLIC_SUFFIX})")
    if secret is not None:
        raise SecurityError(
            f"{path} holds a secret key; expected a public key file (NAME{PUBLIC_SUFFIX}): "
            f"hand out and allow-list only public keys, never NAME{SECRET_SUFFIX}"
        )
    return public


def public_key_in(path: Path | str) -> str:
    """The Z85 public key in a public or a secret key file (what ``harstream keys show`` prints)."""
    path = Path(path)
    public, _ = _read_certificate(path, f"a key file (NAME{PUBLIC_SUFFIX} or NAME{SECRET_SUFFIX})")
    return public.decode("ascii")


def load_key_pair(path: Path | str) -> tuple[bytes, bytes]:
    """``(public, secret)`` Z85 keys of a secret key file ``NAME.key_secret``.

    Refused: a file without a secret key (a ``NAME.key`` given by mistake),
    one other users may read (POSIX; fix with ``chmod 600``), and one whose
    two keys do not belong together.
    """
    import zmq

    path = Path(path)
    expected = f"a secret key file (NAME{SECRET_SUFFIX})"
    public, secret = _read_certificate(path, expected)
    if secret is None:
        raise SecurityError(f"{path} holds only a public key; expected {expected}, {_MADE_BY}")
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecurityError(f"{path} can be read by other users (mode {mode:04o}); expected "
                                f"mode 0600 for a secret key: run `chmod 600 {path}`")
    if zmq.curve_public(secret) != public:
        raise SecurityError(f"{path}: its public-key does not belong to its secret-key; expected "
                            f"the key pair {_MADE_BY}")
    return public, secret


def _paths(allow: AllowList) -> list[Path]:
    if isinstance(allow, str | os.PathLike):
        return [Path(allow)]
    return [Path(item) for item in allow]


def load_allow_list(allow: AllowList, what: str = "allow-list") -> frozenset[bytes]:
    """The Z85 public keys of every ``*.key`` file in the given folders and files.

    Empty is an error (it would shut everyone out), as is a missing path or
    a bad key file (named in the message).
    """
    paths = _paths(allow)
    keys: set[bytes] = set()
    for path in paths:
        if path.is_dir():
            keys.update(load_public_key(file) for file in sorted(path.glob(f"*{PUBLIC_SUFFIX}")))
        elif path.exists():
            keys.add(load_public_key(path))
        else:
            raise SecurityError(f"{what}: {path}: no such file or folder; expected a folder of "
                                f"public key files (*{PUBLIC_SUFFIX}) or one such file")
    if not keys:
        shown = ", ".join(str(p) for p in paths) or "(nothing given)"
        raise SecurityError(f"{what}: no public key file (*{PUBLIC_SUFFIX}) in {shown}; an empty "
                            "allow-list would shut everyone out")
    return frozenset(keys)


# -- the engine's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSecurity:
    """The engine's key pair and who may connect to each of its sockets."""

    secret_key_file: Path
    """The engine's secret key file (``NAME.key_secret``)."""
    producers: AllowList
    """Public keys allowed to send samples (PULL socket, ZAP domain ``ingest``)."""
    subscribers: AllowList
    """Public keys allowed to receive predictions (PUB socket, ZAP domain ``publish``)."""

    def load(self) -> tuple[bytes, bytes, frozenset[bytes], frozenset[bytes]]:
        """``(public, secret, producer keys, subscriber keys)``; :class:`SecurityError` if unusable."""
        public, secret = load_key_pair(self.secret_key_file)
        producers = load_allow_list(self.producers, "producers' allow-list")
        subscribers = load_allow_list(self.subscribers, "subscribers' allow-list")
        return public, secret, producers, subscribers


class _KeySet:
    """A ``zmq.auth`` credentials provider: admits exactly the Z85 keys it was given.

    A refused key is logged (warning, logger ``harstream.serve.security``) once per
    key and domain — a refused client reconnects every 100 ms — and at most
    :data:`_MAX_LOGGED_REFUSALS` keys are remembered.
    """

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys
        self.refused: set[tuple[str, bytes]] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        if (domain, key) not in self.refused and len(self.refused) < _MAX_LOGGED_REFUSALS:
            self.refused.add((domain, key))
            logging.getLogger(__name__).warning(
                "refused a connection to the %s socket: key %s is not on its allow-list "
                "(logged once per key)", domain, key.decode("ascii", "replace"))
        return False


def _require_curve() -> None:
    import zmq

    if not zmq.has("curve"):
        raise SecurityError(f"this libzmq ({zmq.zmq_version()}) was built without CURVE support")


def _unused(socket: zmq.Socket[bytes], what: str) -> None:
    import zmq

    if socket.get(zmq.LAST_ENDPOINT):
        raise ValueError(f"{what}: expected a socket not yet bound or connected "
                         "(ZeroMQ applies security options when it binds or connects)")


def secure_server(
    context: zmq.Context[zmq.Socket[bytes]],
    pull_socket: zmq.Socket[bytes],
    pub_socket: zmq.Socket[bytes],
    security: ServerSecurity,
) -> ThreadAuthenticator:
    """Make both engine sockets CURVE servers that admit only their allow-lists.

    Call before the sockets bind. Starts a ZAP handler thread in ``context``
    (one per context; the sockets must belong to it) and returns it: call its
    ``stop()`` at shutdown, after closing the sockets. The PULL socket gets
    ZAP domain ``ingest`` (producer keys), the PUB socket ``publish``
    (subscriber keys). A peer with any other key, or without CURVE, fails
    its handshake: nothing it sends is received, nothing is sent to it.
    Messages received with ``copy=False`` carry the sender's public key:
    :func:`sender_key`.
    """
    import zmq
    from zmq.auth.thread import ThreadAuthenticator

    _require_curve()
    public, secret, producers, subscribers = security.load()
    _unused(pull_socket, "pull_socket")
    _unused(pub_socket, "pub_socket")
    authenticator = ThreadAuthenticator(context)
    try:
        authenticator.start()
    except zmq.ZMQError as exc:
        authenticator.stop()
        raise SecurityError(f"cannot start the ZAP authenticator ({exc}); only one may run per "
                            "ZeroMQ context") from None
    authenticator.configure_curve_callback(INGEST_DOMAIN.decode(), _KeySet(producers))
    authenticator.configure_curve_callback(PUBLISH_DOMAIN.decode(), _KeySet(subscribers))
    for socket, domain in ((pull_socket, INGEST_DOMAIN), (pub_socket, PUBLISH_DOMAIN)):
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        socket.setsockopt(zmq.CURVE_SERVER, 1)
        socket.setsockopt(zmq.ZAP_DOMAIN, domain)
    return authenticator


def sender_key(frame: zmq.Frame) -> str | None:
    """The Z85 public key that sent ``frame``, or None on a connection without CURVE.

    ``frame`` is any frame of a message received with ``copy=False`` (e.g.
    ``pull.recv_multipart(copy=False)[0]``) on a socket set up by
    :func:`secure_server`: its ZAP handler sets the connection's User-Id to
    the client's public key in Z85 (``zmq.auth.Authenticator.curve_user_id``),
    the same 40 characters as ``harstream keys show NAME.key`` prints.
    """
    import zmq

    try:
        user = frame.get("User-Id")
    except zmq.ZMQError:  # no ZAP on this connection: the property does not exist
        return None
    if isinstance(user, bytes):
        user = user.decode("ascii", "replace")
    if not isinstance(user, str) or len(user) != _KEY_CHARS or not set(user.encode()) <= _Z85:
        return None  # e.g. "anonymous": authenticated without a key
    return user


# -- a client's side -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSecurity:
    """A producer's or subscriber's key pair and the engine's public key."""

    key_file: Path
    """This client's secret key file (``NAME.key_secret``)."""
    server_key_file: Path
    """The engine's public key file (``NAME.key``)."""

    def load(self) -> tuple[bytes, bytes, bytes]:
        """``(public, secret, server public)``; :class:`SecurityError` if unusable."""
        public, secret = load_key_pair(self.key_file)
        return public, secret, load_public_key(self.server_key_file)


def secure_client(socket: zmq.Socket[bytes], security: ClientSecurity) -> None:
    """Make ``socket`` (PUSH or SUB) a CURVE client of the engine; call before it connects.

    If the engine does not allow this key (or has another key than
    ``server_key_file``), the handshake fails and ZeroMQ keeps retrying:
    sends queue, nothing arrives — no error is raised.
    """
    import zmq

    _require_curve()
    public, secret, server = security.load()
    _unused(socket, "socket")
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
    socket.setsockopt(zmq.CURVE_SERVERKEY, server)


# -- the options of a child harstream process ---------------------------------------------------


def server_key_argv(security: ServerSecurity) -> list[str]:
    """Command-line options that give ``harstream serve`` this ``security``."""
    argv = ["--server-key", str(security.secret_key_file)]
    for flag, allow in (("--allow-producers", security.producers),
                        ("--allow-subscribers", security.subscribers)):
        for path in _paths(allow):
            argv += [flag, str(path)]
    return argv


def client_key_argv(security: ClientSecurity) -> list[str]:
    """Command-line options that give a client verb (``replay``, ``dashboard``) this ``security``."""
    return ["--key", str(security.key_file), "--server-key", str(security.server_key_file)]
