"""``harstream web``: the phones' front door, an HTTP and WebSocket gateway beside ``serve`` (docs/phones.md).

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--listen", "0.0.0.0:8443", "--max-phones", "5"])
>>> args.listen, args.max_phones
(('0.0.0.0', 8443), 5)
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from harstream import DEFAULT_INGEST, DEFAULT_PUBLISH
from harstream.cli.args import endpoint, float_in, int_in
from harstream.errors import HarstreamError

NAME = "web"
HELP = "HTTP + WebSocket gateway for phones (a page, Sensor Logger push) and web apps (docs/phones.md)"

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::]:8443`` for IPv6) -> ``(host, port)``; ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 0.0.0.0:8443, got {text!r}")
    return host, int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream web``."""
    from harstream.web.limits import Limits

    limits = Limits()
    parser.description = (
        "Let phones in: a page (GET /) that streams the browser's motion sensors over a WebSocket, "
        "Sensor Logger's HTTP Push (POST /push), and a labels feed for web apps (/labels). Every "
        "request needs the pairing token printed in the URL. Start `harstream serve` first."
    )
    parser.add_argument("--listen", default="127.0.0.1:8443", type=listen_address, metavar="HOST:PORT",
                        help="address to listen on; 0.0.0.0:8443 lets phones on the LAN in (default: "
                        "127.0.0.1:8443, this machine only)")
    parser.add_argument("--ingest", default=DEFAULT_INGEST, type=endpoint,
                        help=f"the engine's ingest endpoint (default {DEFAULT_INGEST})")
    parser.add_argument("--publish", default=DEFAULT_PUBLISH, type=endpoint,
                        help=f"the engine's publish endpoint (default {DEFAULT_PUBLISH})")
    tls = parser.add_argument_group("HTTPS", "phones give motion only to https pages (or http://localhost)")
    tls.add_argument("--cert", type=Path, default=None, metavar="FILE", help="PEM certificate (with --key); "
                     "default: a self-signed one for this machine's addresses, made on first run")
    tls.add_argument("--key", type=Path, default=None, metavar="FILE", help="the certificate's PEM private key")
    tls.add_argument("--plain-http", action="store_true",
                     help="serve plain http (only with a loopback --listen: http://localhost is a secure context)")
    parser.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                        help="read the pairing token from FILE (made, mode 0600, if missing); default: a new "
                        "token every run")
    parser.add_argument("--no-qr", action="store_true", help="print the URL without its QR code")
    keys = parser.add_argument_group("engine access control", "for an engine started with --server-key "
                                     "(CurveZMQ; docs/security.md): both or neither")
    keys.add_argument("--client-key", type=Path, default=None, metavar="FILE",
                      help="this gateway's secret key file (NAME.key_secret); the engine must allow its "
                      "NAME.key as producer and subscriber")
    keys.add_argument("--server-key", type=Path, default=None, metavar="FILE",
                      help="the engine's public key file (NAME.key)")
    group = parser.add_argument_group("limits")
    group.add_argument("--max-body-bytes", type=int_in(1024), default=limits.max_body_bytes,
                       help="largest POST /push body; larger: 413 (default: %(default)s)")
    group.add_argument("--max-message-bytes", type=int_in(1024), default=limits.max_message_bytes,
                       help="largest WebSocket message; larger: the socket is closed (1009) "
                       "(default: %(default)s)")
    group.add_argument("--max-samples-per-s", type=float_in(1.0, 1e9), default=limits.max_samples_per_s,
                       help="samples per second per phone (a %(default)g/s budget of "
                       f"{limits.burst_s:g} s); beyond it batches are dropped and counted (default: %(default)g)")
    group.add_argument("--max-phones", type=int_in(1), default=limits.max_phones,
                       help="phones held at once; more are refused (default: %(default)s)")
    group.add_argument("--max-label-clients", type=int_in(1), default=limits.max_label_clients,
                       help="labels feeds open at once (default: %(default)s)")


def _token(path: Path | None) -> str:
    if path is None:
        return secrets.token_urlsafe(16)
    try:
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if len(token) < 16 or not token.replace("-", "").replace("_", "").isalnum():
                raise HarstreamError(f"--token-file {path}: expected at least 16 letters, digits, '-' or '_'")
            return token
        token = secrets.token_urlsafe(16)
        path.touch(mode=0o600)
        path.write_text(token + "\n", encoding="utf-8")
        return token
    except OSError as exc:
        raise HarstreamError(f"--token-file {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Execute ``harstream web``."""
    import sys

    from rich.console import Console

    from harstream.serve.security import ClientSecurity
    from harstream.web import tls
    from harstream.web.gateway import WebConfig
    from harstream.web.limits import Limits
    from harstream.web.run import phone_url, print_qr, run_gateway

    host, port = args.listen
    if (args.cert is None) != (args.key is None):
        raise HarstreamError("--cert and --key go together: give both, or neither for a self-signed certificate")
    if (args.client_key is None) != (args.server_key is None):
        raise HarstreamError("--client-key and --server-key go together: give both, or neither")
    if args.plain_http and host not in _LOOPBACK:
        raise HarstreamError(f"--plain-http with --listen {host}: phones give motion only to https pages; "
                             "use a loopback address, or drop --plain-http")
    security = None
    if args.client_key is not None:
        security = ClientSecurity(args.client_key, args.server_key)
        security.load()
    limits = Limits(max_body_bytes=args.max_body_bytes, max_message_bytes=args.max_message_bytes,
                    max_samples_per_s=args.max_samples_per_s, max_phones=args.max_phones,
                    max_label_clients=args.max_label_clients)
    config = WebConfig(_token(args.token_file), args.ingest, args.publish, security, limits)
    err = Console(stderr=True)
    addresses = tls.machine_addresses()
    context, fingerprint = None, None
    if not args.plain_http:
        if args.cert is not None:
            cert, key = args.cert, args.key
            fingerprint = tls.fingerprint(cert)
        else:
            cert, key, fingerprint = tls.self_signed(tls.default_folder(), addresses)
        context = tls.server_context(cert, key)

    def ready(bound: int) -> None:
        url = phone_url("http" if context is None else "https", host, bound, config.token, addresses)
        err.print(f"harstream web: engine {args.ingest} -> {args.publish}; open on the phone:",
                  highlight=False, soft_wrap=True)
        print(url, flush=True)
        if fingerprint:
            err.print(f"certificate SHA-256 {fingerprint}", highlight=False, soft_wrap=True)
        if not args.no_qr:
            print_qr(url, sys.stdout)
        sys.stdout.flush()

    return run_gateway(config, host, port, context, ready)
