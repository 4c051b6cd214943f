"""``harstream keys``: make and show CurveZMQ key pairs.

:func:`new_pair` writes ``DIR/NAME.key`` (public) and ``DIR/NAME.key_secret``
(secret, mode 0600) and prints the public key; :func:`show` prints the public
key of key files. See ``docs/security.md`` for the whole set-up.

>>> import contextlib, io, tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with contextlib.redirect_stdout(io.StringIO()) as out:
...     key = new_pair(folder, "phone-1", Console(file=io.StringIO()))
...     show([folder / "phone-1.key_secret"])
>>> out.getvalue().split() == [key, key], len(key)
(True, 40)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from harstream.serve.security import make_key_pair, public_key_in

__all__ = ["new_pair", "show"]


def new_pair(folder: Path, name: str, err: Console | None = None) -> str:
    """Write the key pair ``name`` into ``folder``, say so on ``err`` (stderr), print and return its public key.

    Existing files are never overwritten (:class:`SecurityError`).
    """
    public, secret = make_key_pair(folder, name)
    err = err or Console(stderr=True, highlight=False, soft_wrap=True)
    err.print(f"wrote {public} (public: give it out; the engine allows it from an allow-list folder)",
              markup=False)
    err.print(f"wrote {secret} (secret, mode 0600: it never leaves this machine)", markup=False)
    key = public_key_in(public)
    print(key)
    return key


def show(files: Sequence[Path]) -> None:
    """Print the public key of each key file (followed by its path when there are several)."""
    keys = [(public_key_in(path), path) for path in files]
    for key, path in keys:
        print(key if len(keys) == 1 else f"{key}  {path}")
