"""Numeric CSV files read as a stream: plain or gzip-compressed, columns found by header name,
errors naming the file and line.

The MotionSense and recordings readers share these. A file is parsed in chunks of
:data:`CHUNK_LINES` lines, so reading holds the columns read (float64) and one chunk of text,
never the whole file's text (a recording of hours is read in about the memory of its samples).

>>> import tempfile
>>> folder = tempfile.TemporaryDirectory(); path = Path(folder.name) / "x.csv"
>>> _ = path.write_text("note,a,b\\nhello,1,2\\n\\nbye,3,4\\n")
>>> with open_text(path) as lines:
...     names = header_names(lines.readline())
...     read_columns(path, lines, names, [2, 1], "expected rows").tolist()
[[2.0, 1.0], [4.0, 3.0]]
>>> line_of_row(path, 1)
4
>>> folder.cleanup()
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from harstream.errors import DatasetError

CHUNK_LINES = 16384
"""Lines parsed at a time."""


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """The file's text (``.gz`` decompressed, a UTF-8 byte-order mark dropped), as lines.

    A missing, unreadable or corrupt file, or bytes that are not UTF-8, raise :class:`DatasetError`
    while it is read.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    compressed = path.suffix == ".gz"
    try:
        with _open(path, compressed) as stream:
            yield stream
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: expected a readable {'gzip-compressed ' if compressed else ''}"
                           f"CSV file, could not read it ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: expected UTF-8 text, got bytes that are not ({exc.reason} at "
                           f"byte {exc.start})") from None


def _open(path: Path, compressed: bool) -> TextIO:
    return gzip.open(path, "rt", encoding="utf-8-sig") if compressed else path.open(encoding="utf-8-sig")


def read_text(path: Path) -> str:
    """The whole text of a small file (a labels file), as :func:`open_text` reads it."""
    with open_text(path) as stream:
        return stream.read()


def header_names(line: str) -> list[str]:
    """The column names of a header line (spaces and double quotes around each name dropped).

    >>> header_names('t, "acc_x",acc_y\\n')
    ['t', 'acc_x', 'acc_y']
    """
    return [name.strip().strip('"') for name in line.rstrip("\r\n").split(",")]


def read_columns(
    path: Path, lines: Iterator[str], names: list[str], used: list[int], no_rows: str
) -> npt.NDArray[np.float64]:
    """The ``used`` columns of the rows in ``lines`` (what follows the header ``names``) as floats,
    shape (rows, len(used)).

    Every row must have the header's fields and numbers where they are read; blank lines hold no
    row. Errors name the file and line (``no_rows``: what is said of a file without rows, at line 2).
    """
    parts: list[npt.NDArray[np.float64]] = []
    number = 2
    while chunk := list(itertools.islice(lines, CHUNK_LINES)):
        if any(line.strip() for line in chunk):
            parts.append(_parse_chunk(path, chunk, number, names, used))
        number += len(chunk)
    if not parts:
        raise DatasetError(f"{path}:2: {no_rows}")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def line_of_row(path: Path, row: int, first: int = 2) -> int:
    """1-based file line of data row ``row``, rows starting on line ``first`` (2: after a header;
    blank lines hold no row)."""
    seen = -1
    with open_text(path) as lines:
        for number, line in enumerate(itertools.islice(lines, first - 1, None), start=first):
            if line.strip():
                seen += 1
                if seen == row:
                    return number
    return row + first


def _parse_chunk(
    path: Path, chunk: list[str], number: int, names: list[str], used: list[int]
) -> npt.NDArray[np.float64]:
    """The ``used`` columns of ``chunk``, whose first line is file line ``number``."""
    try:  # every column: numpy checks that each row has as many fields
        table = np.loadtxt(chunk, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        problem = _first_bad_line(path, chunk, number, names, {names[i]: i for i in used})
        if problem is not None:
            raise DatasetError(problem) from None
        # every row has its fields and numbers where read: a column not read is not numeric
        values: npt.NDArray[np.float64] = np.loadtxt(chunk, delimiter=",", dtype=np.float64, ndmin=2,
                                                     comments=None, usecols=used)
        return values
    if table.shape[1] != len(names):
        first = number + next(k for k, line in enumerate(chunk) if line.strip())
        raise DatasetError(f"{path}:{first}: expected {len(names)} comma-separated fields like the "
                           f"header, got {table.shape[1]}")
    return table[:, used]


def _first_bad_line(
    path: Path, chunk: list[str], number: int, names: list[str], index: dict[str, int]
) -> str | None:
    """The first row with the wrong field count or a non-number in a column read; None if none."""
    for at_line, line in enumerate(chunk, start=number):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split(",")
        if len(fields) != len(names):
            return (f"{path}:{at_line}: expected {len(names)} comma-separated fields like the header, "
                    f"got {len(fields)} ({line.strip()[:80]!r})")
        for column, at in index.items():
            try:
                float(fields[at])
            except ValueError:
                return f"{path}:{at_line}: expected a number in column {column!r}, got {fields[at]!r}"
    return None
