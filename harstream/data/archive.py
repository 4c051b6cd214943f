"""Unpacking a downloaded zip archive that nobody vouches for: caps and path checks.

Every member's path must stay inside the folder it is unpacked into; the number of members and
the bytes written are capped against zip bombs (the sizes the archive declares are checked first,
the bytes actually written are counted too, zips inside the zip against the same budget); a
damaged archive, corrupt compressed data included, is a :class:`~harstream.errors.DownloadError`.

>>> import io, tempfile, zipfile
>>> folder = Path(tempfile.mkdtemp()); buffer = io.BytesIO()
>>> with zipfile.ZipFile(buffer, "w") as bundle:
...     bundle.writestr("data/RawData/x.txt", "1 2 3\\n")
>>> _ = (folder / "a.zip").write_bytes(buffer.getvalue())
>>> find = lambda tree: next((p.parent for p in tree.rglob("RawData")), None)
>>> root = extract(folder / "a.zip", folder / "out", "a.zip", 1000, find, "RawData/", "is this it?")
>>> root.relative_to(folder).as_posix()
'out/data'
>>> extract(folder / "a.zip", folder / "out2", "a.zip", 3, find, "RawData/", "is this it?")
Traceback (most recent call last):
...
harstream.errors.DownloadError: a.zip: the archive declares 6 bytes unpacked, over the unpacked size \
limit of 3 bytes (max_unpacked_bytes); refusing a possible zip bomb
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harstream.errors import DownloadError

MAX_MEMBERS = 100_000
"""Most entries an archive may list."""
SKIP_DIRS = frozenset({"__MACOSX"})
"""Folders of an archive never searched for data (macOS resource forks)."""

_CHUNK = 1 << 16


@dataclass
class Budget:
    """Bytes that unpacking may still write, shared by an archive and the zips inside it."""

    limit: int
    used: int = 0


def _declared_size(members: list[zipfile.ZipInfo]) -> int:
    """Unpacked bytes the archive's directory claims (the first zip-bomb check)."""
    return sum(member.file_size for member in members)


def _member_path(into: Path, member: zipfile.ZipInfo, what: str) -> Path:
    """Where ``member`` goes under ``into``; names leaving the folder are refused."""
    name = member.filename.replace("\\", "/")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        raise DownloadError(
            f"{what}: archive member {member.filename!r} points outside the folder it is "
            f"unpacked into; expected relative paths"
        )
    return into.joinpath(*parts)


def unzip(archive: Path, into: Path, what: str, budget: Budget) -> None:
    """Unpack ``archive`` into ``into``, within ``budget``: declared and written bytes both count.

    ``what`` names the archive in errors.
    """
    def over(seen: str) -> DownloadError:
        return DownloadError(
            f"{what}: {seen}, over the unpacked size limit of {budget.limit:,} bytes "
            f"(max_unpacked_bytes); refusing a possible zip bomb"
        )

    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_MEMBERS:
                raise DownloadError(
                    f"{what}: the archive lists {len(members):,} entries, expected at most "
                    f"{MAX_MEMBERS:,}; refusing a possible zip bomb"
                )
            declared = _declared_size(members)
            if budget.used + declared > budget.limit:
                before = f" after {budget.used:,} bytes already unpacked" if budget.used else ""
                raise over(f"the archive declares {declared:,} bytes unpacked{before}")
            into.mkdir(parents=True, exist_ok=True)
            for member in members:
                target = _member_path(into, member, what)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, target.open("wb") as out:
                    while chunk := source.read(_CHUNK):
                        budget.used += len(chunk)
                        if budget.used > budget.limit:
                            raise over(
                                f"unpacking {member.filename!r} (declared {member.file_size:,} "
                                f"bytes) wrote more than {budget.used - len(chunk):,} bytes in all"
                            )
                        out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, RuntimeError,
            NotImplementedError) as exc:
        raise DownloadError(f"{what}: could not unpack as a zip archive ({exc})") from exc


def extract(
    archive: Path, into: Path, what: str, max_unpacked_bytes: int,
    find_root: Callable[[Path], Path | None], expected: str, question: str,
) -> Path:
    """Unpack ``archive`` into ``into`` (and zips inside it, one level deep, beside ``into``);
    the data folder ``find_root`` finds in what was unpacked.

    All unpacking together writes at most ``max_unpacked_bytes``. Without a data folder, the
    :class:`DownloadError` says what was ``expected`` in the archive and asks ``question``.
    """
    budget = Budget(max_unpacked_bytes)
    unzip(archive, into, what, budget)
    root = find_root(into)
    if root is not None:
        return root
    nested = sorted(
        path for path in into.rglob("*.zip")
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(into).parts)
    )
    for number, inner in enumerate(nested):
        target = into.parent / f"nested-{number}"
        unzip(inner, target, f"{what} ({inner.relative_to(into)})", budget)
        root = find_root(target)
        if root is not None:
            return root
    raise DownloadError(
        f"{what}: expected an archive with {expected}, found none"
        + (f" (also looked inside {len(nested)} nested zip file(s))" if nested else "")
        + f"; {question}"
    )
