"""``harstream dashboard``: a live terminal view of the engine's streams.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--streams", "phone-", "--rows", "10"])
>>> args.connect, args.streams, args.rows, args.refresh
('tcp://127.0.0.1:5556', ['phone-'], 10, 4.0)
"""

from __future__ import annotations

import argparse
import math

from harstream.cli.args import float_in, int_in
from harstream.cli.security_args import add_client_key_arguments, client_security_from_args
from harstream.tools.dashboard.app import DEFAULT_CONNECT, DEFAULT_REFRESH_HZ

NAME = "dashboard"
HELP = "live terminal view of the engine's streams"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream dashboard``."""
    parser.add_argument(
        "--connect", metavar="EP", default=DEFAULT_CONNECT,
        help="the engine's PUB endpoint (default: %(default)s)",
    )
    parser.add_argument(
        "--rows", metavar="N", type=int_in(1), default=None,
        help="stream rows to show (default: as many as the terminal height allows)",
    )
    parser.add_argument(
        "--refresh", metavar="HZ", type=float_in(0.0, math.inf, open_ends=True), default=DEFAULT_REFRESH_HZ,
        help="redraws per second (default: %(default)g)",
    )
    parser.add_argument(
        "--streams", metavar="PREFIX", action="append", default=None,
        help="only streams whose id starts with PREFIX (repeatable; default: all)",
    )
    add_client_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Show the dashboard until Ctrl-C or ``q``; 0."""
    from harstream.tools.dashboard.app import run_dashboard

    return run_dashboard(
        args.connect, refresh_hz=args.refresh, max_rows=args.rows, streams=args.streams,
        security=client_security_from_args(args),
    )
