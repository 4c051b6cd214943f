"""``harstream router``: one ingest and one publish address in front of engines that join it.

Every default is read from :class:`~harstream.cluster.config.RouterConfig`, never written
here (``tests/test_cli_defaults.py`` checks it). What the router does: docs/scaling.md.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> config = router_config(parser.parse_args(["--timeout", "2000"]))
>>> config.timeout_ms, config.heartbeat_ms == RouterConfig().heartbeat_ms
(2000, True)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harstream.cli.args import add_bind_endpoints, endpoint, float_in, int_in
from harstream.cli.security_args import add_server_key_arguments, server_security_from_args
from harstream.cluster.config import RouterConfig
from harstream.errors import HarstreamError, SecurityError

if TYPE_CHECKING:
    from harstream.cluster.security import RouterSecurity

NAME = "router"
HELP = "route producers' streams to the engines that join it (serve --join); one address for all"

_CONFIG = RouterConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream router``."""
    parser.description = (
        "Bind the public ingest (PULL) and publish (XPUB) endpoints producers and subscribers use with one "
        "engine, and route each stream to one of the engines that join (`harstream serve --join`), by "
        "rendezvous hashing of its stream id over their slots. A stream that moves (engine lost, hung, "
        "added) is reported on $error (moved); one $stats covers the cluster (docs/scaling.md)."
    )
    add_bind_endpoints(parser, _CONFIG.ingest, _CONFIG.publish, "XPUB")
    parser.add_argument("--engines", default=_CONFIG.engines, type=endpoint,
                        help="endpoint to bind for the engines' DEALERs (ROUTER; `serve --join` connects to it; "
                        f"default {_CONFIG.engines}: bind another interface only on a trusted network, or "
                        "with keys)")
    parser.add_argument("--results", default=_CONFIG.results, type=endpoint,
                        help=f"endpoint to bind for the engines' PUBs (XSUB; default {_CONFIG.results})")
    parser.add_argument("--advertise", default=_CONFIG.advertise, metavar="HOST",
                        help="host name engines reach the results endpoint at (default: its bound address, "
                        "or this machine's host name when bound on *)")
    parser.add_argument("--heartbeat", type=int_in(10, 60_000), default=_CONFIG.heartbeat_ms, metavar="MS",
                        help="PING every engine this often, ms (default: %(default)s)")
    parser.add_argument("--timeout", type=int_in(20, 600_000), default=_CONFIG.timeout_ms, metavar="MS",
                        help="drop an engine silent this long, ms, and move its streams; more than --heartbeat "
                        "(default: %(default)s)")
    parser.add_argument("--idle-timeout", type=float_in(5.0, 86400.0), default=_CONFIG.idle_timeout_s,
                        help="forget streams silent for this many seconds (default: %(default)g)")
    limits = parser.add_argument_group("resource limits")
    limits.add_argument("--max-streams", type=int_in(1, 100_000_000), default=_CONFIG.max_streams,
                        help="streams remembered at once; later ones are routed but their moves not "
                        "announced (with keys they are refused: too_many_streams) (default: %(default)s)")
    limits.add_argument("--ingest-hwm", type=int_in(1, 1_000_000), default=_CONFIG.ingest_hwm,
                        help="receive high-water mark, messages per producer (default: %(default)s)")
    limits.add_argument("--engine-hwm", type=int_in(1, 10_000_000), default=_CONFIG.engine_hwm,
                        help="chunks waiting per engine; beyond it a chunk is dropped and reported "
                        "(overloaded), never waited for (default: %(default)s)")
    limits.add_argument("--publish-hwm", type=int_in(1, 10_000_000), default=_CONFIG.publish_hwm,
                        help="send high-water mark, messages per subscriber (default: %(default)s)")
    limits.add_argument("--results-hwm", type=int_in(1, 10_000_000), default=_CONFIG.results_hwm,
                        help="receive high-water mark, messages per engine (default: %(default)s)")
    add_server_key_arguments(parser, owner="the router's", sockets="all four sockets; off unless these three "
                             "options and --allow-engines are all given")
    engines = parser.add_argument_group("engines' keys", "with the access-control options above")
    engines.add_argument("--allow-engines", type=Path, action="append", default=None, metavar="PATH",
                         help="public keys of the engines allowed to join and publish (a folder of *.key files, "
                         "or one such file; repeatable); engines join with `serve --join --server-key "
                         "ENGINE.key_secret --router-key ROUTER.key`")


def router_security(args: argparse.Namespace) -> RouterSecurity | None:
    """The key options: None without them; key files are checked now."""
    from harstream.cluster.security import RouterSecurity

    server = server_security_from_args(args)
    if server is None and args.allow_engines is None:
        return None
    if server is None or args.allow_engines is None:
        raise SecurityError("router keys: --server-key, --allow-producers, --allow-subscribers and "
                            "--allow-engines go together (the engines need keys as well)")
    security = RouterSecurity(server, tuple(args.allow_engines))
    security.engine_keys()
    return security


def router_config(args: argparse.Namespace) -> RouterConfig:
    """The :class:`RouterConfig` of parsed ``router`` options (a bad combination is one error line)."""
    try:
        return RouterConfig(
            ingest=args.ingest, publish=args.publish, engines=args.engines, results=args.results,
            advertise=args.advertise, heartbeat_ms=args.heartbeat, timeout_ms=args.timeout,
            idle_timeout_s=args.idle_timeout, max_streams=args.max_streams, ingest_hwm=args.ingest_hwm,
            engine_hwm=args.engine_hwm, publish_hwm=args.publish_hwm, results_hwm=args.results_hwm,
        )
    except ValueError as exc:
        raise HarstreamError(f"router options: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Route until Ctrl-C or SIGTERM; 0 once stopped."""
    import logging
    import signal
    import threading

    from harstream.cluster.router import run_router

    config = router_config(args)
    security = router_security(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    err = Console(stderr=True)
    run_router(config, security, stop=stop, say=lambda text: err.print(text, highlight=False, markup=False))
    return 0
