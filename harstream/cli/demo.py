"""``harstream demo``: the engine, a real-time replay of the test subjects, and the dashboard.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--speed", "2"])
>>> args.speed, args.ingest, args.subjects
(2.0, 'tcp://127.0.0.1:5555', '2,4,9,10,12,13,18,20,24')
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harstream.cli.args import add_data_arg, add_model_arg, endpoint, speed
from harstream.cli.security_args import add_demo_key_arguments, demo_security_from_args
from harstream.serve.config import ServerConfig

NAME = "demo"
HELP = "engine + real-time replay of the test subjects + dashboard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream demo``."""
    from harstream.data.splits import TEST_SUBJECTS

    config = ServerConfig()
    add_data_arg(parser)
    add_model_arg(parser)
    parser.add_argument("--subjects", default=",".join(map(str, TEST_SUBJECTS)),
                        help=f"subjects to replay (default: the {len(TEST_SUBJECTS)} test subjects)")
    parser.add_argument("--speed", type=speed, default=1.0,
                        help="replay speed, 1 = real time (default: %(default)g)")
    parser.add_argument("--ingest", default=config.ingest, type=endpoint, help="engine ingest endpoint")
    parser.add_argument("--publish", default=config.publish, type=endpoint, help="engine publish endpoint")
    parser.add_argument("--logs", type=Path, default=Path("/tmp/harstream-demo"),
                        help="folder for the engine and replay logs (default: %(default)s)")
    parser.add_argument("--web", nargs="?", const="0.0.0.0:8443", default=None, metavar="HOST:PORT",
                        help="phones instead of the replay: also run `harstream web` (default address "
                        "0.0.0.0:8443) and show its URL and QR code before the dashboard (docs/phones.md)")
    add_demo_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or ``q``, then stop every child; 0."""
    from rich.console import Console

    from harstream.tools.demo import run_demo

    return run_demo(
        args.data, args.ingest, args.publish, args.subjects, args.speed, args.logs, Console(),
        model=args.model, security=demo_security_from_args(args), web=args.web,
    )
