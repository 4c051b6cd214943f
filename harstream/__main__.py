"""``python -m harstream``: the command line, also how harstream starts its own child processes."""

from __future__ import annotations

import sys

from harstream.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
