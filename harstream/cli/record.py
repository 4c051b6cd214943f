"""``harstream record``: a pass-through in front of the engine that writes a recordings folder.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--out", "rec", "--engine", "none"])
>>> args.engine, args.listen, args.label
('none', 'tcp://127.0.0.1:5565', None)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harstream.cli.args import endpoint, endpoint_or_none, float_in, print_json
from harstream.serve.config import ServerConfig

NAME = "record"
HELP = "record live streams into a recordings folder, passing them on to the engine"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream record``."""
    from harstream.tools.record import DEFAULT_LISTEN  # numpy: only when recording

    parser.description = (
        "A pass-through in front of the engine's ingest: point the producer at --listen; every "
        "message goes on unchanged to --engine, and a copy is written to <out>/<stream>.csv "
        "(t,acc_x,...,gyro_z) with the activity spans in <out>/labels.csv, from --label or from keys "
        "pressed while recording (1-9, a, b, ...: an activity; 0 or space: unlabelled; q: stop). "
        "Fine-tune on the folder with `harstream train --base shipped --data <out>` (docs/own-data.md)."
    )
    parser.add_argument("--out", type=Path, required=True,
                        help="recordings folder to write (created if needed; earlier sessions' files and "
                        "labels are kept)")
    parser.add_argument("--label", default=None, metavar="ACTIVITY",
                        help="the activity of the whole session: one of the six classes or a new class "
                        "name (A-Z, 0-9, _); default: none until a key picks one")
    parser.add_argument("--activity", action="append", default=[], metavar="NAME",
                        help="a new class name to offer on a key, after the six classes (repeatable)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, type=endpoint,
                        help="endpoint to bind for producers (PULL; default %(default)s)")
    parser.add_argument("--engine", default=ServerConfig().ingest, type=endpoint_or_none,
                        help="the engine's ingest endpoint to forward to, or 'none' to record only "
                        "(default %(default)s)")
    parser.add_argument("--duration", type=float_in(0.1, 86400.0), default=None, metavar="S",
                        help="stop after S seconds (default: at Ctrl-C or q)")
    parser.add_argument("--no-progress", action="store_true", help="no live view on stderr")
    parser.add_argument("--json", action="store_true", help="print the session's summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Record until the duration, Ctrl-C, SIGTERM or ``q``; 0 after the summary."""
    import signal
    import threading

    from harstream.tools.record import check_folder, describe, record

    err = Console(stderr=True)
    check_folder(args.out)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready(listening: str) -> None:
        target = "nowhere (--engine none)" if args.engine == "none" else f"the engine at {args.engine}"
        err.print(f"harstream record: listening on {listening}, forwarding to {target}, writing "
                  f"{args.out}; point the producer at {listening}", highlight=False, markup=False)

    summary = record(
        args.out, listen=args.listen, engine=None if args.engine == "none" else args.engine,
        label=args.label, activities=args.activity, duration_s=args.duration, stop=stop,
        progress=not args.no_progress, on_ready=ready,
    )
    if not args.no_progress and not err.is_terminal:
        err.print()  # after the live view's last frame
    if args.json:
        print_json(summary)
    else:
        err.print(describe(summary), highlight=False, markup=False, end="")
    return 0
