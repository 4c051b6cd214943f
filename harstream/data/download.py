"""Fetch, verify and check the HAPT dataset (UCI dataset 341).

:func:`download` fetches the public archive into the user cache (within a
deadline and a size limit), unpacks it (the data folder may sit anywhere
inside, or inside a zip within the zip; unpacked bytes are capped against zip
bombs), checks every file against the SHA-256 manifest the package ships
(``harstream/data/hapt_sha256.txt``) and only then moves the files into
place; partial files of an earlier, killed download are removed. :func:`check`
validates a dataset folder that is already there.

>>> manifest = load_manifest()
>>> len(manifest), "RawData/labels.txt" in manifest
(127, True)
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path, PurePosixPath

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

from harstream.data.hapt import N_LABEL_IDS, RAW_DIR, raw_dir, read_dataset
from harstream.errors import ChecksumError, DatasetError, DownloadError
from harstream.paths import ENV_VAR, cache_dir, default_data_dir

DEFAULT_URL = (
    "https://archive.ics.uci.edu/static/public/341/"
    "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip"
)
"""The public UCI archive of HAPT, version 2.1."""
MANIFEST_FILE = "hapt_sha256.txt"
"""Name of the shipped manifest inside ``harstream/data``."""
TIMEOUT_S = 60.0
"""Seconds a stalled connection may stay silent before the download fails."""
DEADLINE_S = 1800.0
"""Seconds the whole transfer (connecting and every read) may take, however the server trickles."""
MAX_ARCHIVE_BYTES = 256 * 2**20
"""Largest archive accepted (256 MiB); the HAPT archive is under 100 MB."""
MAX_UNPACKED_BYTES = 2**30
"""Most bytes unpacking may write, nested zips included (1 GiB); HAPT unpacks to about 0.35 GB."""
STALE_AFTER_S = 86400.0
"""Age after which a partial download is removed even if its process id is in use again."""
SAMPLE_RATE_HZ = 50
"""HAPT sampling rate, used only to show the recorded duration."""

_CHUNK = 1 << 16
_MAX_MEMBERS = 100_000
_ARCHIVE_PART = re.compile(r"^hapt-(?:(\d+)-)?[^/]*\.zip\.part$")
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_SKIP_DIRS = {"__MACOSX"}
_MAX_SHOWN = 20


def parse_manifest(text: str, source: str = MANIFEST_FILE) -> dict[str, str]:
    """Parse ``sha256sum`` output into ``{relative posix path: lowercase hex digest}``.

    Paths must be relative and stay inside the dataset folder; ``source``
    names the file in error messages.

    >>> parse_manifest("0" * 64 + "  RawData/labels.txt\\n")
    {'RawData/labels.txt': '0000000000000000000000000000000000000000000000000000000000000000'}
    """
    manifest: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise DatasetError(
                f"{source}:{number}: expected '<64 hex digits>  <relative path>', got {line!r}"
            )
        digest, name = match.group(1).lower(), match.group(2)
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name != path.as_posix():
            raise DatasetError(
                f"{source}:{number}: expected a plain relative path, got {name!r}"
            )
        if name in manifest:
            raise DatasetError(f"{source}:{number}: expected each path once, {name!r} repeats")
        manifest[name] = digest
    if not manifest:
        raise DatasetError(f"{source}: expected sha256sum lines, the manifest is empty")
    return manifest


def load_manifest() -> dict[str, str]:
    """The SHA-256 of every HAPT file, keyed by path relative to the dataset folder."""
    resource = files("harstream") / "data" / MANIFEST_FILE
    return parse_manifest(resource.read_text(encoding="utf-8"), f"harstream/data/{MANIFEST_FILE}")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_files(base: Path, manifest: dict[str, str]) -> tuple[list[str], int]:
    """Problems (missing or mismatching files) and the number of files hashed."""
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


@dataclass(frozen=True)
class DataCheck:
    """What :func:`check` found in a dataset folder.

    Counts are 0 when the folder could not be parsed; ``problems`` then says why.
    """

    data_dir: str
    """The folder that was checked, as given (a string, so ``asdict()`` is JSON-ready)."""
    experiments: int
    """Number of recordings (61 in HAPT)."""
    users: int
    """Number of distinct subjects (30 in HAPT)."""
    samples: int
    """Rows over all recordings (acc and gyro have as many each)."""
    segments: int
    """Rows of ``labels.txt``."""
    activity_segments: int
    """Segments labelled with one of the six activities (ids 1..6)."""
    files_checked: int
    """Manifest files whose SHA-256 was computed (0 when checksums were skipped)."""
    checksums: bool
    """Whether the files were checked against the manifest."""
    problems: list[str] = field(default_factory=list)
    """Missing files, checksum mismatches and the first parse error, if any."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with the folder."""
        return not self.problems

    @property
    def transition_segments(self) -> int:
        """Segments labelled with a postural transition (ids 7..12)."""
        return self.segments - self.activity_segments


def check(
    data_dir: Path | str,
    checksums: bool = True,
    *,
    manifest: dict[str, str] | None = None,
) -> DataCheck:
    """Validate a dataset folder: manifest checksums, then layout and parsing.

    Never raises for a bad folder: every finding goes into ``problems`` (all
    missing or mismatching files, then the first :class:`DatasetError` that
    :func:`harstream.data.hapt.read_dataset` raises), so one run reports them all.
    ``manifest`` defaults to :func:`load_manifest`.
    """
    data = Path(data_dir)
    try:
        base = raw_dir(data).parent
    except DatasetError as exc:
        return DataCheck(str(data), 0, 0, 0, 0, 0, 0, checksums, [str(exc)])
    problems: list[str] = []
    hashed = 0
    if checksums:
        problems, hashed = _verify_files(base, load_manifest() if manifest is None else manifest)
    try:
        dataset = read_dataset(base)
    except DatasetError as exc:
        problems.append(str(exc))
        return DataCheck(str(data), 0, 0, 0, 0, 0, hashed, checksums, problems)
    return DataCheck(
        data_dir=str(data),
        experiments=len(dataset.recordings),
        users=len({r.user for r in dataset.recordings}),
        samples=sum(len(r) for r in dataset.recordings),
        segments=len(dataset.segments),
        activity_segments=sum(1 for s in dataset.segments if 1 <= s.activity <= 6),
        files_checked=hashed,
        checksums=checksums,
        problems=problems,
    )


def print_check(report: DataCheck, console: Console | None = None) -> None:
    """Render a :class:`DataCheck` as a short table, then its problems."""
    console = console or Console()
    table = Table(title="HAPT dataset", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("folder", report.data_dir)
    table.add_row("experiments", f"{report.experiments}")
    table.add_row("users", f"{report.users}")
    hours = report.samples / SAMPLE_RATE_HZ / 3600
    table.add_row("samples", f"{report.samples:,} ({hours:.1f} h at {SAMPLE_RATE_HZ} Hz)")
    table.add_row(
        "segments",
        f"{report.segments:,} ({report.activity_segments:,} activities 1..6, "
        f"{report.transition_segments:,} transitions 7..{N_LABEL_IDS})",
    )
    table.add_row(
        "checksums",
        f"{report.files_checked} files hashed" if report.checksums else "skipped",
    )
    status = "[green]OK[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]"
    table.add_row("status", status)
    console.print(table)
    for problem in report.problems[:_MAX_SHOWN]:
        console.print(Text.assemble(("✗ ", "red"), problem), soft_wrap=True)
    if len(report.problems) > _MAX_SHOWN:
        console.print(f"… and {len(report.problems) - _MAX_SHOWN} more problem(s)")


def _manual_help(dest: Path) -> str:
    return (
        f"To install the dataset by hand, download the HAPT archive (UCI dataset 341) "
        f"elsewhere and unpack it so that {dest / RAW_DIR} holds acc_expNN_userMM.txt, "
        f"gyro_expNN_userMM.txt and labels.txt; or point `--data DIR` or ${ENV_VAR} "
        f"at a folder laid out that way."
    )


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
    """A partial download left behind: no process id (old name), a dead process, or old."""
    if pid is None or int(pid) <= 0 or not _pid_alive(int(pid)):
        return True
    try:
        return time.time() - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def _clean_stale(cache: Path, dest: Path, console: Console, prefix: str = "hapt") -> None:
    """Remove partial files of earlier downloads that were killed before cleaning up.

    Archives being fetched are ``<prefix>-<pid>-*.zip.part`` in the cache (``hapt-``
    for HAPT), unpacking folders ``.<dest name>.partial-<pid>-*`` beside ``dest``; those
    of a process that is no longer running (or older than :data:`STALE_AFTER_S`) are removed.
    """
    work = re.compile("^" + re.escape(f".{dest.name}.partial-") + r"(?:(\d+)-)?[^/]*$")
    archive = _ARCHIVE_PART if prefix == "hapt" else re.compile(
        "^" + re.escape(f"{prefix}-") + r"(?:(\d+)-)?[^/]*\.zip\.part$")
    found: list[tuple[Path, re.Pattern[str]]] = []
    for folder, pattern in ((cache, archive), (dest.parent, work)):
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
        console.print(
            f"Removed {removed} partial download file(s) left by an earlier, interrupted run",
            highlight=False,
            soft_wrap=True,
        )


def _set_read_timeout(response: object, seconds: float) -> None:
    """Best effort: bound the next socket read of an HTTP response by ``seconds``."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    settimeout = getattr(sock, "settimeout", None)
    if callable(settimeout):
        settimeout(max(seconds, 0.001))


def _fetch(
    url: str,
    target: Path,
    dest: Path,
    *,
    timeout: float,
    deadline: float,
    max_bytes: int,
    progress: bool,
    console: Console,
    title: str = "HAPT archive",
    what: str = "the HAPT archive (UCI dataset 341)",
    manual_help: str | None = None,
) -> int:
    """Stream ``url`` into ``target`` with a progress bar; returns the byte count.

    ``timeout`` bounds each wait for data, ``deadline`` the whole transfer
    (a server trickling a byte at a time fails at the deadline), ``max_bytes``
    the archive size (announced or received). ``title`` labels the progress
    bar, ``what`` names the archive in errors, ``manual_help`` says how to
    install it by hand (default: HAPT's).
    """
    help_text = _manual_help(dest) if manual_help is None else manual_help
    started = time.monotonic()
    written = 0

    def left() -> float:
        return deadline - (time.monotonic() - started)

    def unreachable(exc: BaseException) -> DownloadError:
        return DownloadError(f"{url} could not be reached ({exc}). {help_text}")

    def overdue() -> DownloadError:
        return DownloadError(
            f"{url}: the download took longer than its deadline of {deadline:g} s "
            f"({written:,} bytes received in {time.monotonic() - started:.1f} s); the server is "
            f"too slow or stalled. {help_text}"
        )

    def too_big(seen: str) -> DownloadError:
        return DownloadError(
            f"{url}: {seen}, over the archive size limit of {max_bytes:,} bytes "
            f"(max_archive_bytes); is this {what}?"
        )

    try:
        request = urllib.request.Request(url, headers={"User-Agent": "harstream"})
        response = urllib.request.urlopen(request, timeout=max(min(timeout, left()), 0.001))
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        if left() <= 0:
            raise overdue() from exc
        raise unreachable(exc) from exc
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with response, target.open("wb") as out, Progress(
        *columns, console=console, disable=not progress, transient=False
    ) as bar:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise too_big(f"the server announces {total:,} bytes")
        task = bar.add_task(title, total=total)
        while True:
            if left() <= 0:
                raise overdue()
            _set_read_timeout(response, min(timeout, left()))
            try:
                chunk = response.read1(_CHUNK)  # what has arrived: a trickle cannot hold a read
            except (OSError, http.client.HTTPException) as exc:
                if left() <= 0:
                    raise overdue() from exc
                raise unreachable(exc) from exc
            if not chunk:
                break
            written += len(chunk)
            if written > max_bytes:
                raise too_big(f"received {written:,} bytes and counting")
            try:
                out.write(chunk)
            except OSError as exc:
                raise DownloadError(f"{target}: could not write the download ({exc})") from exc
            bar.update(task, advance=len(chunk))
    if total is not None and written != total:
        raise unreachable(
            ConnectionError(f"transfer cut short after {written:,} of {total:,} bytes")
        )
    return written


@dataclass
class _Budget:
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


def _unzip(archive: Path, into: Path, what: str, budget: _Budget) -> None:
    """Unpack ``archive`` into ``into``, within ``budget``: declared and written bytes both count."""
    def over(seen: str) -> DownloadError:
        return DownloadError(
            f"{what}: {seen}, over the unpacked size limit of {budget.limit:,} bytes "
            f"(max_unpacked_bytes); refusing a possible zip bomb"
        )

    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > _MAX_MEMBERS:
                raise DownloadError(
                    f"{what}: the archive lists {len(members):,} entries, expected at most "
                    f"{_MAX_MEMBERS:,}; refusing a possible zip bomb"
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


def _find_root(tree: Path) -> Path | None:
    """The shallowest folder under ``tree`` that holds a ``RawData`` folder."""
    found = [
        path.parent
        for path in tree.rglob(RAW_DIR)
        if path.is_dir() and not _SKIP_DIRS.intersection(path.relative_to(tree).parts)
    ]
    return min(found, key=lambda p: (len(p.parts), str(p))) if found else None


def _extract(archive: Path, into: Path, url: str, max_unpacked_bytes: int) -> Path:
    """Unpack ``archive`` (and zips inside it, one level deep); the dataset folder.

    All unpacking together writes at most ``max_unpacked_bytes``.
    """
    budget = _Budget(max_unpacked_bytes)
    _unzip(archive, into, url, budget)
    root = _find_root(into)
    if root is not None:
        return root
    nested = sorted(
        path for path in into.rglob("*.zip")
        if path.is_file() and not _SKIP_DIRS.intersection(path.relative_to(into).parts)
    )
    for number, inner in enumerate(nested):
        _unzip(inner, into.parent / f"nested-{number}", f"{url} ({inner.relative_to(into)})", budget)
        root = _find_root(into.parent / f"nested-{number}")
        if root is not None:
            return root
    raise DownloadError(
        f"{url}: expected an archive with a {RAW_DIR}/ folder (acc_expNN_userMM.txt, "
        f"gyro_expNN_userMM.txt, labels.txt), found none"
        + (f" (also looked inside {len(nested)} nested zip file(s))" if nested else "")
        + "; is this the HAPT archive (UCI dataset 341)?"
    )


def _install(staged: Path, dest: Path, manifest: dict[str, str]) -> None:
    """Move verified files into ``dest``: one rename, or file by file if it has content."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if not dest.exists():
        os.replace(staged, dest)
        return
    for name in sorted(manifest):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / name, dest / name)


def download(
    dest: Path | None = None,
    url: str = DEFAULT_URL,
    progress: bool = True,
    console: Console | None = None,
    *,
    manifest: dict[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    deadline: float = DEADLINE_S,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> Path:
    """Download HAPT into ``dest`` (default the user cache) and verify it; returns ``dest``.

    Returns at once if ``dest`` already matches the manifest. The archive goes
    to a temporary file in :func:`harstream.paths.cache_dir`; files are
    unpacked and checked in a hidden folder beside ``dest`` and moved in only
    when every one matches, so a failure leaves ``dest`` as it was. If
    ``dest`` already holds other files, only the manifest's files are
    replaced. ``manifest`` defaults to :func:`load_manifest`. Partial files
    of an earlier download that was killed are removed first.

    ``timeout`` bounds each wait for data and ``deadline`` the whole transfer
    in seconds; ``max_archive_bytes`` caps the archive, ``max_unpacked_bytes``
    what unpacking it may write (the sizes the zip declares are checked first,
    the bytes actually written are counted too).

    Raises :class:`DownloadError` when the URL cannot be reached, the
    transfer misses its deadline, a size limit is exceeded or the archive
    lacks the data, :class:`ChecksumError` when a file differs.
    """
    dest = Path(dest) if dest is not None else default_data_dir()
    console = console or Console(stderr=True)
    manifest = load_manifest() if manifest is None else manifest
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"{dest}: expected a folder to download the dataset into, got a file")
    cache = cache_dir()
    _clean_stale(cache, dest, console)
    if dest.is_dir() and not _verify_files(dest, manifest)[0]:
        console.print(
            f"{dest}: the HAPT dataset is already there and all {len(manifest)} files "
            f"match their checksums; nothing to download",
            highlight=False,
            soft_wrap=True,
        )
        return dest
    try:
        cache.mkdir(parents=True, exist_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent))
    except OSError as exc:
        raise DownloadError(f"{dest}: could not prepare the download folder ({exc})") from exc
    try:
        with tempfile.NamedTemporaryFile(
            prefix=f"hapt-{os.getpid()}-", suffix=".zip.part", dir=cache, delete=False
        ) as handle:
            archive = Path(handle.name)
        try:
            console.print(f"Downloading {url}", highlight=False, soft_wrap=True)
            size = _fetch(
                url, archive, dest, timeout=timeout, deadline=deadline,
                max_bytes=max_archive_bytes, progress=progress, console=console,
            )
            console.print(f"Unpacking {size / 1e6:.1f} MB", highlight=False, soft_wrap=True)
            root = _extract(archive, work / "archive", url, max_unpacked_bytes)
        finally:
            archive.unlink(missing_ok=True)
        staged = work / "dataset"
        missing = [name for name in sorted(manifest) if not (root / name).is_file()]
        if missing:
            inside = "/".join(root.relative_to(work).parts[1:]) or "its top level"
            raise DownloadError(
                f"{url}: expected {missing[0]} beside {RAW_DIR}/ in the archive "
                f"({inside}), not there"
                + (f" ({len(missing) - 1} more files missing)" if len(missing) > 1 else "")
            )
        for name in manifest:
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(root / name, staged / name)
        mismatches = []
        for name, expected in sorted(manifest.items()):
            actual = sha256_file(staged / name)
            if actual != expected:
                mismatches.append((name, expected, actual))
        if mismatches:
            name, expected, actual = mismatches[0]
            more = ""
            if len(mismatches) > 1:
                more = f" ({len(mismatches) - 1} more files differ: " + ", ".join(
                    m[0] for m in mismatches[1:6]
                ) + (", …" if len(mismatches) > 6 else "") + ")"
            raise ChecksumError(
                f"{name} (from {url}): expected SHA-256 {expected}, got {actual}{more}; "
                f"nothing was written to {dest}"
            )
        _install(staged, dest, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    console.print(
        f"Verified {len(manifest)} files against the package manifest", highlight=False
    )
    return dest
