"""The access-control options: the engine's keys (``serve``, ``demo``) and a client's (``replay``, ``dashboard``).

Each ``add_*`` adds an option group; each ``*_from_args`` reads it back:
None when no key option is given, a :class:`SecurityError` naming the
missing options when only some are, and otherwise the keys, with their files
checked now (before anything binds or connects). What the keys do is in
:mod:`harstream.serve.security`; the set-up in ``docs/security.md``.

>>> parser = argparse.ArgumentParser()
>>> add_client_key_arguments(parser)
>>> client_security_from_args(parser.parse_args([])) is None
True
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harstream.errors import SecurityError
from harstream.serve.security import PUBLIC_SUFFIX, SECRET_SUFFIX, ClientSecurity, ServerSecurity

if TYPE_CHECKING:
    from harstream.tools.demo import DemoSecurity

__all__ = ["add_client_key_arguments", "add_demo_key_arguments", "add_server_key_arguments",
           "client_security_from_args", "demo_security_from_args", "server_security_from_args"]


def add_server_key_arguments(parser: argparse.ArgumentParser, owner: str = "the engine's",
                             sockets: str = "both sockets; off unless all three options are given") -> None:
    """``--server-key FILE``, ``--allow-producers PATH``, ``--allow-subscribers PATH``.

    ``owner`` names whose key ``--server-key`` is and ``sockets`` what the keys cover and need, in
    the help (``harstream router`` has four sockets and a fourth option).
    """
    group = parser.add_argument_group(
        "access control", f"CurveZMQ encryption and key allow-lists on {sockets} (make keys with "
        "`harstream keys new NAME`; see docs/security.md)",
    )
    group.add_argument(
        "--server-key", type=Path, default=None, metavar="FILE",
        help=f"{owner} secret key file (NAME{SECRET_SUFFIX}); clients need its NAME{PUBLIC_SUFFIX}",
    )
    group.add_argument(
        "--allow-producers", type=Path, action="append", default=None, metavar="PATH",
        help=f"public keys allowed to send samples: a folder of *{PUBLIC_SUFFIX} files, or one such "
        "file (repeatable); read at start: restart to apply changes",
    )
    group.add_argument(
        "--allow-subscribers", type=Path, action="append", default=None, metavar="PATH",
        help=f"public keys allowed to receive predictions: a folder of *{PUBLIC_SUFFIX} files, or one "
        "such file (repeatable); read at start: restart to apply changes",
    )


def server_security_from_args(args: argparse.Namespace) -> ServerSecurity | None:
    """The options of :func:`add_server_key_arguments`; None without them. Key files are checked now."""
    options = {"--server-key": "server_key", "--allow-producers": "allow_producers",
               "--allow-subscribers": "allow_subscribers"}
    if not _together(args, options):
        return None
    security = ServerSecurity(args.server_key, tuple(args.allow_producers),
                              tuple(args.allow_subscribers))
    security.load()
    return security


def add_client_key_arguments(parser: argparse.ArgumentParser) -> None:
    """``--key FILE`` (own secret key) and ``--server-key FILE`` (the engine's public key)."""
    group = parser.add_argument_group(
        "access control", "for an engine started with --server-key (CurveZMQ); both options "
        "together, or neither (see docs/security.md)",
    )
    group.add_argument(
        "--key", type=Path, default=None, metavar="FILE",
        help=f"this client's secret key file (NAME{SECRET_SUFFIX} from `harstream keys new NAME`); "
        f"the engine must allow its NAME{PUBLIC_SUFFIX}",
    )
    group.add_argument(
        "--server-key", type=Path, default=None, metavar="FILE",
        help=f"the engine's public key file (NAME{PUBLIC_SUFFIX})",
    )


def client_security_from_args(args: argparse.Namespace) -> ClientSecurity | None:
    """The options of :func:`add_client_key_arguments`; None without them. Key files are checked now."""
    if not _together(args, {"--key": "key", "--server-key": "server_key"}):
        return None
    security = ClientSecurity(args.key, args.server_key)
    security.load()
    return security


def add_demo_key_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's key options: the engine's (as ``serve``), and ``--key`` for replay and dashboard."""
    add_server_key_arguments(parser)
    parser.add_argument(
        "--key", type=Path, default=None, metavar="FILE",
        help=f"with the access-control options: the secret key file (NAME{SECRET_SUFFIX}) of the "
        f"replay and the dashboard; its NAME{PUBLIC_SUFFIX} must be in both allow-lists, and the "
        f"engine's NAME{PUBLIC_SUFFIX} beside its --server-key",
    )


def demo_security_from_args(args: argparse.Namespace) -> DemoSecurity | None:
    """The options of :func:`add_demo_key_arguments`: None without them; key files are checked now."""
    from harstream.tools.demo import demo_security

    server = server_security_from_args(args)
    if server is None and args.key is None:
        return None
    if server is None:
        raise SecurityError("--key needs --server-key, --allow-producers and --allow-subscribers "
                            "as well: the engine's keys")
    if args.key is None:
        raise SecurityError("--server-key needs --key as well: the key of the replay and the "
                            "dashboard (make one with `harstream keys new demo`)")
    return demo_security(server, args.key)


def _together(args: argparse.Namespace, options: dict[str, str]) -> bool:
    """True when every option is given, False when none is; otherwise a :class:`SecurityError`."""
    given = {flag: getattr(args, dest, None) for flag, dest in options.items()}
    missing = [flag for flag, value in given.items() if not value]
    if len(missing) == len(given):
        return False
    if missing:
        raise SecurityError(f"{' and '.join(missing)} missing: access control needs "
                            f"{', '.join(given)} together")
    return True
