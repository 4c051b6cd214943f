"""Fetching a dataset archive with :mod:`pooch`, the checksums the files are verified by, and what
a check of a dataset folder prints.

:func:`unpacked` is the one download path of both datasets (:func:`clean_stale` first removes
the partial files of an earlier, killed download): ``pooch.retrieve`` fetches the archive into a
partial folder of the user cache (``<prefix>-<pid>-*.zip.part``) and checks it against a pinned
SHA-256 when there is one; :func:`harstream.data.archive.extract` unpacks it into a hidden folder
beside the destination (``.<dest name>.partial-<pid>-*``); both are removed when the caller is
done with the unpacked files, whatever happened. Pooch's own HTTP downloader bounds each read but
neither the whole transfer nor its size, so :class:`Transfer`, the downloader handed to pooch,
does (:class:`Limits`): ``timeout`` bounds each wait for data, ``deadline`` the whole transfer (a
server trickling a byte at a time fails at the deadline), ``max_archive_bytes`` the archive
(announced or received).

>>> parse_manifest("0" * 64 + "  RawData/labels.txt\\n")
{'RawData/labels.txt': '0000000000000000000000000000000000000000000000000000000000000000'}
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pooch
import requests
import urllib3
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from harstream.data.archive import extract
from harstream.errors import ChecksumError, DatasetError, DownloadError
from harstream.paths import cache_dir

TIMEOUT_S = 60.0
"""Seconds a stalled connection may stay silent before the download fails."""
DEADLINE_S = 1800.0
"""Seconds the whole transfer (connecting and every read) may take, however the server trickles."""
STALE_AFTER_S = 86400.0
"""Age after which a partial download is removed even if its process id is in use again."""
MAX_SHOWN = 20
"""Problems a check prints; the rest are counted."""

_CHUNK = 1 << 16
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class Archive:
    """What is downloaded, as errors and the progress bar name it."""

    url: str
    """Where it is fetched from."""
    prefix: str
    """Partial archives in the cache are ``<prefix>-<pid>-*.zip.part``."""
    title: str
    """The progress bar's label."""
    what: str
    """The archive in errors (``is this <what>?``)."""
    manual_help: str
    """How to install the dataset by hand, appended to errors of the transfer."""


@dataclass(frozen=True)
class Limits:
    """Bounds of one download."""

    timeout: float = TIMEOUT_S
    """Seconds each wait for data may take."""
    deadline: float = DEADLINE_S
    """Seconds the whole transfer may take."""
    max_archive_bytes: int = 256 * 2**20
    """Largest archive accepted."""
    max_unpacked_bytes: int = 2**30
    """Most bytes unpacking may write, nested zips included."""


def parse_manifest(text: str, source: str = "the manifest") -> dict[str, str]:
    """Parse ``sha256sum`` output into ``{relative posix path: lowercase hex digest}``.

    Paths must be relative and stay inside the dataset folder; ``source`` names the file in errors.
    """
    manifest: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise DatasetError(f"{source}:{number}: expected '<64 hex digits>  <relative path>', got {line!r}")
        digest, name = match.group(1).lower(), match.group(2)
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name != path.as_posix():
            raise DatasetError(f"{source}:{number}: expected a plain relative path, got {name!r}")
        if name in manifest:
            raise DatasetError(f"{source}:{number}: expected each path once, {name!r} repeats")
        manifest[name] = digest
    if not manifest:
        raise DatasetError(f"{source}: expected sha256sum lines, the manifest is empty")
    return manifest


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return str(pooch.file_hash(str(path), alg="sha256"))


def verify_files(base: Path, manifest: dict[str, str]) -> tuple[list[str], int]:
    """Problems (missing or mismatching files under ``base``) and the number of files hashed."""
    problems: list[str] = []
    hashed = 0
    for name, expected in sorted(manifest.items()):
        path = base / name
        if not path.is_file():
            problems.append(f"{path}: missing (listed in the package manifest)")
            continue
        actual = sha256_file(path)
        hashed += 1
        if actual != expected:
            problems.append(f"{path}: expected SHA-256 {expected}, got {actual}")
    return problems, hashed


def print_report(table: Table, problems: list[str], console: Console) -> None:
    """A check's table with its status row, then its problems (the first :data:`MAX_SHOWN`)."""
    table.add_row("status", "[green]OK[/]" if not problems else f"[red]{len(problems)} problem(s)[/]")
    console.print(table)
    for problem in problems[:MAX_SHOWN]:
        console.print(Text.assemble(("✗ ", "red"), problem), soft_wrap=True)
    if len(problems) > MAX_SHOWN:
        console.print(f"… and {len(problems) - MAX_SHOWN} more problem(s)")


def clean_stale(dest: Path, prefix: str, console: Console) -> None:
    """Remove partial files of earlier downloads that were killed before cleaning up.

    Partial archives are ``<prefix>-<pid>-*.zip.part`` in the cache, unpacking folders
    ``.<dest name>.partial-<pid>-*`` beside ``dest``; those of a process that is no longer
    running (or older than :data:`STALE_AFTER_S`, or named without a process id) are removed.
    """
    archive = re.compile("^" + re.escape(f"{prefix}-") + r"(?:(\d+)-)?[^/]*\.zip\.part$")
    work = re.compile("^" + re.escape(f".{dest.name}.partial-") + r"(?:(\d+)-)?[^/]*$")
    found: list[tuple[Path, re.Pattern[str]]] = []
    for folder, pattern in ((cache_dir(), archive), (dest.parent, work)):
        try:
            found += [(path, pattern) for path in folder.iterdir()]
        except OSError:
            continue
    removed = 0
    for path, pattern in found:
        match = pattern.match(path.name)
        if match is None or not _is_stale(path, match.group(1)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += not path.exists()
    if removed:
        console.print(f"Removed {removed} partial download file(s) left by an earlier, interrupted run",
                      highlight=False, soft_wrap=True)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (unsure counts as running)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap check without signals; the age rule in _is_stale applies
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's process
    return True


def _is_stale(path: Path, pid: str | None) -> bool:
    """A partial download left behind: no process id, a dead process, or old."""
    if pid is None or int(pid) <= 0 or not _pid_alive(int(pid)):
        return True
    try:
        return time.time() - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


class Transfer:
    """A pooch downloader (``downloader(url, output_file, pooch)``) over HTTP(S) by ``requests``, within
    :class:`Limits`, with a progress bar; it hashes what it writes (:attr:`sha256`)."""

    def __init__(self, archive: Archive, limits: Limits, progress: bool, console: Console) -> None:
        self.archive, self.limits, self.progress, self.console = archive, limits, progress, console
        self.sha256 = ""
        """SHA-256 of the bytes written, once the transfer is complete."""
        self.size = 0
        """Bytes received so far."""
        self._started = time.monotonic()

    def __call__(self, url: str, output_file: str, pooch: Any, check_only: bool = False) -> None:
        self._started = time.monotonic()
        try:
            response = requests.get(url, stream=True, headers={"User-Agent": "harstream"},
                                    timeout=max(min(self.limits.timeout, self._left()), 0.001))
            response.raise_for_status()
        except requests.RequestException as exc:
            raise self._failed(exc) from exc
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with response, open(output_file, "wb") as out, Progress(
            *columns, console=self.console, disable=not self.progress, transient=False
        ) as bar:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > self.limits.max_archive_bytes:
                raise self._too_big(f"the server announces {total:,} bytes")
            digest = hashlib.sha256()
            task = bar.add_task(self.archive.title, total=total)
            while chunk := self._read(response):
                self.size += len(chunk)
                if self.size > self.limits.max_archive_bytes:
                    raise self._too_big(f"received {self.size:,} bytes and counting")
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(f"{output_file}: could not write the download ({exc})") from exc
                digest.update(chunk)
                bar.update(task, advance=len(chunk))
        if total is not None and self.size != total:
            raise self._failed(ConnectionError(f"transfer cut short after {self.size:,} of {total:,} bytes"))
        self.sha256 = digest.hexdigest()

    def _read(self, response: requests.Response) -> bytes:
        """What has arrived (at least a byte, or b"" at the end): a trickle cannot hold a read."""
        if self._left() <= 0:
            raise self._overdue()
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
        if sock is not None:  # the next wait ends at the deadline, however long the timeout
            sock.settimeout(max(min(self.limits.timeout, self._left()), 0.001))
        try:
            return bytes(response.raw.read1(_CHUNK))
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise self._failed(exc) from exc

    def _left(self) -> float:
        return self.limits.deadline - (time.monotonic() - self._started)

    def _failed(self, exc: BaseException) -> DownloadError:
        if self._left() <= 0:
            return self._overdue()
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)  # what urllib3 gave up on
        return DownloadError(f"{self.archive.url} could not be reached ({reason or exc}). "
                             f"{self.archive.manual_help}")

    def _overdue(self) -> DownloadError:
        return DownloadError(
            f"{self.archive.url}: the download took longer than its deadline of {self.limits.deadline:g} s "
            f"({self.size:,} bytes received in {time.monotonic() - self._started:.1f} s); the server is "
            f"too slow or stalled. {self.archive.manual_help}"
        )

    def _too_big(self, seen: str) -> DownloadError:
        return DownloadError(
            f"{self.archive.url}: {seen}, over the archive size limit of {self.limits.max_archive_bytes:,} "
            f"bytes (max_archive_bytes); is this {self.archive.what}?"
        )


@contextmanager
def unpacked(
    archive: Archive, dest: Path, limits: Limits, *, find_root: Callable[[Path], Path | None],
    expected: str, sha256: str | None = None, progress: bool = True, console: Console,
) -> Iterator[tuple[Path, Path, Transfer]]:
    """Fetch ``archive`` (checked against ``sha256`` when given), unpack it beside ``dest``; yields
    the data folder ``find_root`` found in it, a work folder beside ``dest`` (same file system:
    files move from it by rename) and the finished :class:`Transfer`. Everything is removed after.

    :class:`ChecksumError` when the archive differs from ``sha256``; :class:`DownloadError` when it
    cannot be fetched or unpacked, breaks a limit, or holds no data folder (``expected`` says what).
    """
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent))
        part = Path(tempfile.mkdtemp(prefix=f"{archive.prefix}-{os.getpid()}-", suffix=".zip.part", dir=cache))
    except OSError as exc:
        raise DownloadError(f"{dest}: could not prepare the download folder ({exc})") from exc
    transfer = Transfer(archive, limits, progress, console)
    try:
        try:
            console.print(f"Downloading {archive.url}", highlight=False, soft_wrap=True)
            fetched = Path(_retrieve(archive.url, sha256, part, transfer, dest))
            console.print(f"Unpacking {transfer.size / 1e6:.1f} MB", highlight=False, soft_wrap=True)
            root = extract(fetched, work / "archive", archive.url, limits.max_unpacked_bytes, find_root,
                           expected, f"is this {archive.what}?")
        finally:
            shutil.rmtree(part, ignore_errors=True)
        yield root, work, transfer
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _retrieve(url: str, sha256: str | None, part: Path, transfer: Transfer, dest: Path) -> str:
    """``pooch.retrieve`` into ``part``, its log kept quiet; a pinned hash that differs is a ChecksumError."""
    log = pooch.get_logger()
    level = log.level
    log.setLevel(logging.WARNING)  # pooch logs every download and hash at INFO on stderr
    try:
        return str(pooch.retrieve(url, known_hash=None if sha256 is None else f"sha256:{sha256.lower()}",
                                  fname="archive.zip", path=part, downloader=transfer))
    except ValueError as exc:
        if sha256 is None or not transfer.sha256:
            raise DownloadError(f"{url}: could not be fetched ({exc})") from exc
        raise ChecksumError(f"{url}: expected the archive's SHA-256 {sha256.lower()}, got {transfer.sha256}; "
                            f"nothing was written to {dest}") from None
    finally:
        log.setLevel(level)
