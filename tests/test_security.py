"""Access control: key files, CURVE on real loopback sockets, command-line options, `keys` verb.

Every socket test runs its own ZeroMQ context (one ZAP handler per context)
and waits with bounded polls, never on wall-clock performance.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pytest
import zmq

from harstream.cli import keys as keys_command
from harstream.cli.security_args import (
    add_client_key_arguments,
    add_demo_key_arguments,
    add_server_key_arguments,
    client_security_from_args,
    demo_security_from_args,
    server_security_from_args,
)
from harstream.errors import HarstreamError, SecurityError
from harstream.protocol import ErrorEvent, decode_chunk, encode_chunk, encode_error
from harstream.serve.client import Subscriber
from harstream.serve.security import (
    ClientSecurity,
    ServerSecurity,
    client_key_argv,
    load_allow_list,
    load_key_pair,
    load_public_key,
    make_key_pair,
    public_key_file_of,
    public_key_in,
    secure_client,
    secure_server,
    sender_key,
    server_key_argv,
)
from harstream.tools import demo
from replay.player import play
from replay.sources import ReplayStream, RowTruth

WAIT_MS = 5000
"""Longest wait for a message that must arrive."""
SILENCE_MS = 500
"""How long a message that must not arrive is waited for (after one that must has arrived)."""


@dataclass
class Keys:
    """A key folder: the engine's pair, allowed and unknown clients, and the two allow-lists."""

    folder: Path
    engine: Path
    producers: Path
    subscribers: Path

    def secret(self, name: str) -> Path:
        return self.folder / f"{name}.key_secret"

    def public(self, name: str) -> str:
        return public_key_in(self.folder / f"{name}.key")

    def client(self, name: str) -> ClientSecurity:
        return ClientSecurity(self.secret(name), self.folder / "engine.key")

    def server(self) -> ServerSecurity:
        return ServerSecurity(self.engine, self.producers, self.subscribers)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("engine", "phone", "viewer", "both", "stranger"):
        make_key_pair(folder, name)
    producers, subscribers = folder / "producers", folder / "subscribers"
    producers.mkdir()
    subscribers.mkdir()
    for name, allow in (("phone", producers), ("viewer", subscribers), ("both", producers),
                        ("both", subscribers)):
        (allow / f"{name}.key").write_bytes((folder / f"{name}.key").read_bytes())
    return Keys(folder, folder / "engine.key_secret", producers, subscribers)


@dataclass
class Engine:
    """A secured PULL + PUB pair, as the engine binds them."""

    context: zmq.Context[zmq.Socket[bytes]]
    pull: zmq.Socket[bytes]
    pub: zmq.Socket[bytes]
    ingest: str
    publish: str


@pytest.fixture
def engine(keys: Keys, free_endpoint: Callable[[], str]) -> Iterator[Engine]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull, pub = context.socket(zmq.PULL), context.socket(zmq.PUB)
    authenticator = secure_server(context, pull, pub, keys.server())
    ingest, publish = free_endpoint(), free_endpoint()
    pull.bind(ingest)
    pub.bind(publish)
    try:
        yield Engine(context, pull, pub, ingest, publish)
    finally:
        pull.close(linger=0)
        pub.close(linger=0)
        authenticator.stop()
        context.term()


def _push(context: zmq.Context[zmq.Socket[bytes]], endpoint: str,
          security: ClientSecurity | None) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    if security is not None:
        secure_client(sock, security)
    sock.connect(endpoint)
    return sock


def _chunk(stream: str) -> list[bytes]:
    return encode_chunk(stream, 0, np.zeros((5, 6), np.float32))


def _published() -> list[bytes]:
    return encode_error("phone-1", "seq_gap", "expected seq 25, got 50")


# -- CURVE on real sockets ---------------------------------------------------------------------


def test_allowed_producer_gets_in_and_its_key_is_known(keys: Keys, engine: Engine) -> None:
    push = _push(engine.context, engine.ingest, keys.client("phone"))
    try:
        push.send_multipart(_chunk("phone-1"))
        assert engine.pull.poll(WAIT_MS)
        frames = engine.pull.recv_multipart(copy=False)
        assert decode_chunk([f.bytes for f in frames]).stream == "phone-1"
        assert sender_key(frames[0]) == keys.public("phone")
        assert sender_key(frames[2]) == keys.public("phone")  # every frame carries it
    finally:
        push.close()


def test_unknown_or_keyless_producer_gets_nothing_in(
    keys: Keys, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "harstream.serve.security")
    stranger = _push(engine.context, engine.ingest, keys.client("stranger"))
    viewer = _push(engine.context, engine.ingest, keys.client("viewer"))  # a subscriber key only
    plain = _push(engine.context, engine.ingest, None)  # no CURVE at all
    phone = _push(engine.context, engine.ingest, keys.client("phone"))
    try:
        for sock, stream in ((stranger, "stranger"), (viewer, "viewer"), (plain, "plain")):
            sock.send_multipart(_chunk(stream), zmq.NOBLOCK)  # queued: no handshake completes
        phone.send_multipart(_chunk("phone-1"))
        received: list[tuple[bytes, str | None]] = []
        while engine.pull.poll(WAIT_MS if not received else SILENCE_MS):
            frames = engine.pull.recv_multipart(copy=False)
            received.append((frames[0].bytes, sender_key(frames[0])))
        assert received == [(b"phone-1", keys.public("phone"))]
        deadline = time.monotonic() + WAIT_MS / 1000  # the refusal is logged by the ZAP thread
        while time.monotonic() < deadline and len(caplog.records) < 2:
            time.sleep(0.01)
        refused = sorted(r.getMessage() for r in caplog.records)  # once per key, though retried
        assert refused == sorted(
            f"refused a connection to the ingest socket: key {keys.public(name)} is not on its "
            "allow-list (logged once per key)" for name in ("stranger", "viewer"))
    finally:
        for sock in (stranger, viewer, plain, phone):
            sock.close()


def test_unknown_subscriber_gets_nothing_out(keys: Keys, engine: Engine) -> None:
    allowed = Subscriber(engine.publish, context=engine.context, security=keys.client("viewer"))
    stranger = Subscriber(engine.publish, context=engine.context, security=keys.client("stranger"))
    producer_only = Subscriber(engine.publish, context=engine.context,
                               security=keys.client("phone"))
    with allowed, stranger, producer_only:
        deadline = time.monotonic() + WAIT_MS / 1000
        event = None
        while event is None:  # publish until the allowed subscriber's subscription has arrived
            assert time.monotonic() < deadline, "the allowed subscriber received nothing"
            engine.pub.send_multipart(_published())
            event = allowed.receive(timeout_s=0.05)
        assert isinstance(event, ErrorEvent) and event.stream == "phone-1"
        for _ in range(5):
            engine.pub.send_multipart(_published())
        assert stranger.receive(timeout_s=SILENCE_MS / 1000) is None
        assert producer_only.receive(timeout_s=0.0) is None  # domains are separate allow-lists


def test_client_with_the_wrong_engine_key_gets_nothing_in(keys: Keys, engine: Engine) -> None:
    wrong_engine = ClientSecurity(keys.secret("phone"), keys.folder / "stranger.key")
    impostor = _push(engine.context, engine.ingest, wrong_engine)
    phone = _push(engine.context, engine.ingest, keys.client("phone"))
    try:
        impostor.send_multipart(_chunk("impostor"), zmq.NOBLOCK)
        phone.send_multipart(_chunk("phone-1"))
        assert engine.pull.poll(WAIT_MS)
        assert engine.pull.recv_multipart()[0] == b"phone-1"
        assert not engine.pull.poll(SILENCE_MS)
    finally:
        impostor.close()
        phone.close()


def test_replay_player_sends_with_its_key(keys: Keys, engine: Engine) -> None:
    stream = ReplayStream("exp01", np.zeros((30, 6), np.float32), 1, RowTruth(np.zeros(0, int)))
    summary = play([stream], engine.ingest, speed=0, chunk=10, security=keys.client("both"))
    assert summary.messages == 3
    got: list[tuple[int, str | None]] = []
    while len(got) < 3 and engine.pull.poll(WAIT_MS):  # play() returning: sent, not yet all here
        frames = engine.pull.recv_multipart(copy=False)
        got.append((decode_chunk([f.bytes for f in frames]).seq, sender_key(frames[0])))
    assert got == [(0, keys.public("both")), (10, keys.public("both")), (20, keys.public("both"))]


def test_sender_key_is_none_without_curve(free_endpoint: Callable[[], str]) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    try:
        endpoint = free_endpoint()
        pull.bind(endpoint)
        push.connect(endpoint)
        push.send(b"x")
        assert pull.poll(WAIT_MS)
        assert sender_key(pull.recv(copy=False)) is None
    finally:
        pull.close(linger=0)
        push.close(linger=0)
        context.term()


def test_sockets_must_be_secured_before_they_bind(keys: Keys, free_endpoint: Callable[[], str]) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull, pub = context.socket(zmq.PULL), context.socket(zmq.PUB)
    try:
        pull.bind(free_endpoint())
        with pytest.raises(ValueError, match="not yet bound"):
            secure_server(context, pull, pub, keys.server())
        with pytest.raises(ValueError, match="not yet bound"):
            secure_client(pull, keys.client("phone"))
    finally:
        pull.close(linger=0)
        pub.close(linger=0)
        context.term()


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_example_producer_sends_with_its_key(keys: Keys, engine: Engine) -> None:
    producer = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "producer.py"), engine.ingest, "walker-1",
         "--key", str(keys.secret("phone")), "--server-key", str(keys.folder / "engine.key")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        assert engine.pull.poll(4 * WAIT_MS), "nothing arrived from examples/producer.py"
        frames = engine.pull.recv_multipart(copy=False)
        assert decode_chunk([f.bytes for f in frames]).stream == "walker-1"
        assert sender_key(frames[0]) == keys.public("phone")
    finally:
        producer.kill()
        producer.wait()


def test_example_subscriber_receives_with_its_key(keys: Keys, engine: Engine) -> None:
    subscriber = subprocess.Popen(
        [sys.executable, "-u", str(EXAMPLES / "subscriber.py"), engine.publish,
         "--key", str(keys.secret("viewer")), "--server-key", str(keys.folder / "engine.key")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert subscriber.stdout is not None
        deadline = time.monotonic() + 4 * WAIT_MS / 1000
        line = ""
        while not line:  # publish until the subscription has reached the PUB socket
            assert subscriber.poll() is None, subscriber.communicate()[1]
            assert time.monotonic() < deadline, "examples/subscriber.py printed nothing"
            engine.pub.send_multipart(_published())
            if _readable(subscriber.stdout, 0.05):
                line = subscriber.stdout.readline()
        assert line.startswith("[error] phone-1: seq_gap")
    finally:
        subscriber.kill()
        subscriber.wait()


def _readable(stream: IO[str], timeout_s: float) -> bool:
    return bool(select.select([stream], [], [], timeout_s)[0])


# -- key files ---------------------------------------------------------------------------------


def test_make_key_pair_writes_a_private_secret_and_never_overwrites(tmp_path: Path) -> None:
    public, secret = make_key_pair(tmp_path / "new", "phone-1")
    assert (public.name, secret.name) == ("phone-1.key", "phone-1.key_secret")
    assert secret.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["phone-1.key", "phone-1.key_secret"]
    pub_key, sec_key = load_key_pair(secret)
    assert load_public_key(public) == pub_key and len(sec_key) == 40
    assert zmq.curve_public(sec_key) == pub_key
    assert public_key_file_of(secret) == public
    with pytest.raises(SecurityError, match="already exists"):
        make_key_pair(tmp_path / "new", "phone-1")
    for bad in ("", "../x", ".hidden", "a/b", "-x"):
        with pytest.raises(SecurityError, match="key name"):
            make_key_pair(tmp_path, bad)


def test_key_file_errors_name_the_file_and_what_was_expected(keys: Keys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.key_secret"
    with pytest.raises(SecurityError, match=r"nope\.key_secret: no such file; expected a secret key"):
        load_key_pair(missing)
    with pytest.raises(SecurityError, match=r"phone\.key holds only a public key; expected a secret"):
        load_key_pair(keys.folder / "phone.key")
    with pytest.raises(SecurityError, match=r"phone\.key_secret holds a secret key; expected a public"):
        load_public_key(keys.secret("phone"))
    with pytest.raises(SecurityError, match="is a folder"):
        load_public_key(keys.folder)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"\x00\xffnot a certificate\n")
    with pytest.raises(SecurityError, match=r"garbage\.key: no public-key line; expected a public key"):
        load_public_key(garbage)
    short = tmp_path / "short.key"
    short.write_text('curve\n    public-key = "abc"\n')
    with pytest.raises(SecurityError, match=r"short\.key: public-key is not a CurveZMQ key: expected 40"):
        load_public_key(short)
    readable = tmp_path / "readable.key_secret"
    readable.write_bytes(keys.secret("phone").read_bytes())
    os.chmod(readable, 0o644)
    with pytest.raises(SecurityError, match=r"can be read by other users \(mode 0644\).*chmod 600"):
        load_key_pair(readable)
    mixed = tmp_path / "mixed.key_secret"
    public_line = next(line for line in (keys.folder / "stranger.key").read_text().splitlines()
                       if "public-key" in line)
    mixed.write_text("\n".join(public_line if "public-key" in line else line
                               for line in keys.secret("phone").read_text().splitlines()))
    os.chmod(mixed, 0o600)
    with pytest.raises(SecurityError, match="does not belong"):
        load_key_pair(mixed)
    with pytest.raises(SecurityError, match=r"expected a secret key file named NAME\.key_secret"):
        public_key_file_of(keys.folder / "phone.key")


def test_allow_lists(keys: Keys, tmp_path: Path) -> None:
    assert load_allow_list(keys.producers) == {keys.public("phone").encode(),
                                               keys.public("both").encode()}
    files: list[Path | str] = [keys.folder / "viewer.key", str(keys.folder / "phone.key")]
    assert load_allow_list(files) == {keys.public("viewer").encode(), keys.public("phone").encode()}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SecurityError, match=r"no public key file.*shut everyone out"):
        load_allow_list(empty, "producers' allow-list")
    with pytest.raises(SecurityError, match="no such file or folder"):
        load_allow_list(tmp_path / "absent")
    with pytest.raises(SecurityError, match="holds a secret key"):
        load_allow_list([keys.secret("phone")])


def test_a_bad_key_fails_before_any_socket_is_touched(keys: Keys, tmp_path: Path) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pull, pub = context.socket(zmq.PULL), context.socket(zmq.PUB)
    try:
        bad = ServerSecurity(keys.folder / "engine.key", keys.producers, keys.subscribers)
        with pytest.raises(SecurityError, match="holds only a public key"):
            secure_server(context, pull, pub, bad)
        assert not pull.get(zmq.CURVE_SERVER)
    finally:
        pull.close(linger=0)
        pub.close(linger=0)
        context.term()


# -- command-line options ----------------------------------------------------------------------


def _server_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_key_arguments(parser)
    return parser.parse_args(list(argv))


def _client_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_client_key_arguments(parser)
    return parser.parse_args(list(argv))


def test_server_options(keys: Keys) -> None:
    assert server_security_from_args(_server_args()) is None
    args = _server_args("--server-key", str(keys.engine), "--allow-producers", str(keys.producers),
                        "--allow-subscribers", str(keys.subscribers),
                        "--allow-subscribers", str(keys.folder / "phone.key"))
    security = server_security_from_args(args)
    assert security == ServerSecurity(keys.engine, (keys.producers,),
                                      (keys.subscribers, keys.folder / "phone.key"))
    assert _server_args(*server_key_argv(security)) == args
    with pytest.raises(SecurityError, match="--allow-producers and --allow-subscribers missing"):
        server_security_from_args(_server_args("--server-key", str(keys.engine)))
    with pytest.raises(SecurityError, match="no such file"):
        server_security_from_args(_server_args(
            "--server-key", str(keys.folder / "absent.key_secret"),
            "--allow-producers", str(keys.producers), "--allow-subscribers", str(keys.subscribers)))


def test_client_options(keys: Keys) -> None:
    assert client_security_from_args(_client_args()) is None
    args = _client_args("--key", str(keys.secret("phone")), "--server-key", str(keys.folder / "engine.key"))
    security = client_security_from_args(args)
    assert security == keys.client("phone")
    assert _client_args(*client_key_argv(security)) == args
    with pytest.raises(SecurityError, match="--server-key missing"):
        client_security_from_args(_client_args("--key", str(keys.secret("phone"))))
    with pytest.raises(SecurityError, match="holds a secret key"):  # the engine's secret, by mistake
        client_security_from_args(_client_args("--key", str(keys.secret("phone")),
                                                "--server-key", str(keys.engine)))


def test_replay_and_dashboard_take_the_client_options(keys: Keys) -> None:
    from harstream.cli.dashboard import add_arguments as dashboard_arguments
    from replay.cli import add_arguments as replay_arguments

    for add in (replay_arguments, dashboard_arguments):
        parser = argparse.ArgumentParser()
        add(parser)
        args = parser.parse_args(client_key_argv(keys.client("both")))
        assert client_security_from_args(args) == keys.client("both")


def _demo_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_demo_key_arguments(parser)
    return parser.parse_args(list(argv))


def test_demo_passes_the_keys_to_its_children(keys: Keys, tmp_path: Path) -> None:
    assert demo_security_from_args(_demo_args()) is None
    engine_options = ["--server-key", str(keys.engine), "--allow-producers", str(keys.producers),
                      "--allow-subscribers", str(keys.subscribers)]
    security = demo_security_from_args(_demo_args(*engine_options, "--key", str(keys.secret("both"))))
    assert security is not None
    assert security.client == keys.client("both")  # the engine's public key from beside its secret
    serve = demo._serve_argv("tcp://a:1", "tcp://a:2", None, security)
    assert serve[serve.index("--server-key"):] == engine_options
    replay = demo._replay_argv(tmp_path, "2", 1.0, "tcp://a:1", security)
    assert replay[replay.index("--key"):] == client_key_argv(keys.client("both"))
    assert "--key" not in demo._replay_argv(tmp_path, "2", 1.0, "tcp://a:1", None)
    with pytest.raises(SecurityError, match="not in --allow-subscribers"):
        demo_security_from_args(_demo_args(*engine_options, "--key", str(keys.secret("phone"))))
    with pytest.raises(SecurityError, match="needs --key as well"):
        demo_security_from_args(_demo_args(*engine_options))
    with pytest.raises(SecurityError, match="--key needs --server-key"):
        demo_security_from_args(_demo_args("--key", str(keys.secret("both"))))


# -- the `keys` verb ---------------------------------------------------------------------------


def _keys_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="harstream keys")
    keys_command.add_arguments(parser)
    return keys_command.run(parser.parse_args(list(argv)))


def test_keys_verb_new_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _keys_cli("new", "phone-1", "--dir", str(tmp_path)) == 0
    out, err = capsys.readouterr()
    key = public_key_in(tmp_path / "phone-1.key")
    assert out == f"{key}\n"
    assert "phone-1.key_secret" in err and "0600" in err
    assert _keys_cli("show", str(tmp_path / "phone-1.key_secret")) == 0
    assert capsys.readouterr().out == f"{key}\n"
    assert _keys_cli("new", "other", "--dir", str(tmp_path)) == 0
    other = capsys.readouterr().out.strip()
    assert _keys_cli("show", str(tmp_path / "phone-1.key"), str(tmp_path / "other.key")) == 0
    assert capsys.readouterr().out.splitlines() == [f"{key}  {tmp_path / 'phone-1.key'}",
                                                    f"{other}  {tmp_path / 'other.key'}"]
    with pytest.raises(HarstreamError, match="already exists"):
        _keys_cli("new", "phone-1", "--dir", str(tmp_path))
    with pytest.raises(HarstreamError, match="no such file"):
        _keys_cli("show", str(tmp_path / "absent.key"))


def test_keys_verb_help_explains_the_set_up() -> None:
    parser = argparse.ArgumentParser(prog="harstream keys")
    keys_command.add_arguments(parser)
    text = parser.format_help()
    assert "new" in text and "show" in text and "--allow-producers" in text


def test_importing_security_is_cheap() -> None:
    code = "import sys, harstream.serve.security; print('zmq' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the engine with keys on ---------------------------------------------------------------------


def test_a_stream_belongs_to_the_key_that_opened_it(keys: Keys, free_endpoint: Callable[[], str]) -> None:
    """`serve` with keys: another allowed producer writing to a stream gets not_owner."""
    import threading

    from harstream import ACTIVITIES
    from harstream.engine.core import Engine as HarEngine
    from harstream.protocol import ErrorEvent, Prediction, StatsEvent
    from harstream.serve.client import Subscriber
    from harstream.serve.config import ServerConfig
    from harstream.serve.server import serve
    from harstream.serve.sockets import bind

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    config = ServerConfig(ingest=free_endpoint(), publish=free_endpoint(), stats_interval_s=0.2)
    sockets = bind(config, context, secure=lambda pull, pub: secure_server(
        context, pull, pub, keys.server()).stop)
    engine = HarEngine(lambda w: np.full((len(w), 6), 1 / 6, np.float32), ACTIVITIES)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(engine, config, stop), kwargs={"sockets": sockets})
    thread.start()
    try:
        with Subscriber(config.publish, security=keys.client("viewer"), context=context) as sub:
            while not isinstance(sub.receive(timeout_s=5.0), StatsEvent):
                pass
            owner = _push(context, config.ingest, keys.client("phone"))
            thief = _push(context, config.ingest, keys.client("both"))
            x = np.zeros((64, 6), np.float32)
            owner.send_multipart(encode_chunk("phone-1", 0, x))
            seen: list[object] = []
            while not any(isinstance(e, StatsEvent) and e.fields["chunks"] == 1 for e in seen):
                seen.append(sub.receive(timeout_s=5.0))
            thief.send_multipart(encode_chunk("phone-1", 10**15, x))  # the hijack of the issue
            thief.send_multipart(encode_chunk("phone-1", 64, x, restart=True))
            owner.send_multipart(encode_chunk("phone-1", 64, x))  # the owner goes on unharmed
            owner.send_multipart(encode_chunk("phone-1", 128, x))
            # Two connections: the PULL socket may take the owner's chunks before the thief's.
            events: list[object] = []
            deadline = time.monotonic() + 30  # only a failure waits this long

            def seen_all() -> bool:
                return (sum(isinstance(e, ErrorEvent) for e in events) >= 2
                        and sum(isinstance(e, Prediction) for e in events) >= 2)

            while not seen_all():
                assert time.monotonic() < deadline, events
                events.append(sub.receive(timeout_s=0.5))
            errors = [(e.stream, e.code) for e in events if isinstance(e, ErrorEvent)]
            assert errors == [("phone-1", "not_owner"), ("phone-1", "not_owner")]
            assert [(p.stream, p.seq_end) for p in events if isinstance(p, Prediction)] == [
                ("phone-1", 127), ("phone-1", 191)
            ]
    finally:
        stop.set()
        thread.join(timeout=30)
        context.destroy(linger=0)  # closes every socket, a failed test's too: term() would hang
