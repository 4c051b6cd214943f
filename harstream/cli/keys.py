"""``harstream keys``: make and show CurveZMQ key pairs for access control (docs/security.md).

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["new", "phone-1", "--dir", "keys"])
>>> args.keys_verb, args.name, str(args.dir)
('new', 'phone-1', 'keys')
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harstream.serve.security import PUBLIC_SUFFIX, SECRET_SUFFIX

NAME = "keys"
HELP = "make and show CurveZMQ key pairs for access control (docs/security.md)"

_EPILOG = """\
set-up, in short (details: docs/security.md):
  harstream keys new engine --dir keys              # the engine's pair
  harstream keys new phone-1 --dir keys             # one pair per producer / subscriber
  mkdir producers subscribers && cp keys/phone-1.key producers/
  harstream serve --server-key keys/engine.key_secret \\
      --allow-producers producers --allow-subscribers subscribers
  harstream replay --key keys/phone-1.key_secret --server-key keys/engine.key
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions and options of ``harstream keys``."""
    parser.description = (
        "Make and show CurveZMQ key pairs (zmq.auth certificate files) for\n"
        "`harstream serve --server-key/--allow-producers/--allow-subscribers`\n"
        "and the clients' --key/--server-key (replay, dashboard, demo)."
    )
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    actions = parser.add_subparsers(dest="keys_verb", required=True, metavar="ACTION")
    p = actions.add_parser(
        "new", help=f"write a new key pair NAME{PUBLIC_SUFFIX} (public) and NAME{SECRET_SUFFIX} "
        "(secret, mode 0600)",
        description=f"Write a new key pair: DIR/NAME{PUBLIC_SUFFIX} holds the public key (give it "
        f"to the engine's operator or the clients), DIR/NAME{SECRET_SUFFIX} the secret key (mode "
        "0600; keep it on the machine that uses it). Existing files are never overwritten.",
    )
    p.add_argument("name", metavar="NAME",
                   help="name of the pair, e.g. engine or phone-1 (letters, digits, '.', '_', '-')")
    p.add_argument("--dir", type=Path, default=Path("."),
                   help="folder to write the two files into, created if missing (default: .)")
    p = actions.add_parser(
        "show", help="print the public key (Z85) of key files",
        description=f"Print the public key (40 Z85 characters) of each FILE, a NAME{PUBLIC_SUFFIX} "
        f"or NAME{SECRET_SUFFIX} file: the key the engine reports as a message's sender.",
    )
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="key files")


def run(args: argparse.Namespace) -> int:
    """Execute ``harstream keys``; 0 on success (a bad key file raises SecurityError)."""
    from harstream.tools.keys import new_pair, show

    if args.keys_verb == "new":
        new_pair(args.dir, args.name)
    else:
        show(args.files)
    return 0
