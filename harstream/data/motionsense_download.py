"""Fetch, verify and check the MotionSense dataset (Device Motion data).

What is verified, and what is not:

* The project's copy (``../shared/data/motionsense``: 16 subjects, files
  re-compressed as ``.csv.gz`` with 9 of the 13 columns) is checked file by
  file against the SHA-256 manifest the package ships
  (``harstream/data/motionsense_sha256.txt``, the copy's ``SHA256SUMS`` lines).
* The official archive (:data:`DEFAULT_URL`) has no checksum pinned:
  :data:`ARCHIVE_SHA256` is None because no trusted copy of that zip was at
  hand to take it from, and its files differ from the copy's, so the manifest
  does not apply to them. A download is verified by structure instead: the
  15 trial folders, each with ``sub_1.csv`` .. ``sub_24.csv``, every file
  parsed with its columns found by name and finite numbers. The archive's
  SHA-256 is printed; ``download(sha256=...)`` (``--sha256``) pins it.

Like :mod:`harstream.data.download`: fetched with pooch within a deadline and
size limits (:mod:`harstream.data.fetch`), unpacked with caps and path checks
(:mod:`harstream.data.archive`) and verified beside ``dest``, moved in only
when everything passed.

>>> manifest = load_manifest()
>>> len(manifest), "A_DeviceMotion_data/dws_1/sub_1.csv.gz" in manifest
(242, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harstream.data import motionsense as ms
from harstream.data.archive import SKIP_DIRS
from harstream.data.fetch import (
    DEADLINE_S,
    TIMEOUT_S,
    Archive,
    Limits,
    clean_stale,
    parse_manifest,
    print_report,
    unpacked,
    verify_files,
)
from harstream.errors import DatasetError, DownloadError
from harstream.paths import ENV_VAR, cache_dir

DEFAULT_URL = "https://github.com/mmalekzadeh/motion-sense/raw/master/data/A_DeviceMotion_data.zip"
"""The official archive: ``data/A_DeviceMotion_data.zip`` of GitHub's mmalekzadeh/motion-sense."""
ARCHIVE_SHA256: str | None = None
"""SHA-256 of the official archive, when known; None: not pinned (see the module docstring)."""
MANIFEST_FILE = "motionsense_sha256.txt"
"""Name of the shipped manifest of the project's copy, inside ``harstream/data``."""
MAX_ARCHIVE_BYTES = 256 * 2**20
"""Largest archive accepted (256 MiB)."""
MAX_UNPACKED_BYTES = 2**30
"""Most bytes unpacking may write, nested zips included (1 GiB)."""
ARCHIVE_PREFIX = "motionsense"
"""Partial archives in the cache are ``motionsense-<pid>-*.zip.part``."""


def default_dir() -> Path:
    """Where ``harstream data download --dataset motionsense`` puts it."""
    return cache_dir() / ms.NAME


def load_manifest() -> dict[str, str]:
    """SHA-256 of every file of the project's copy, keyed by path relative to its folder."""
    resource = files("harstream") / "data" / MANIFEST_FILE
    return parse_manifest(resource.read_text(encoding="utf-8"), f"harstream/data/{MANIFEST_FILE}")


def structure_problems(path: Path | str, subjects: tuple[int, ...] | None = None) -> list[str]:
    """What is wrong with a MotionSense folder's layout: missing trials or subjects' files.

    Every trial of :data:`harstream.data.motionsense.TRIALS` must be there, each
    holding one file per subject: per ``subjects`` when given, else per
    subject found in any trial. Files are not read here.
    """
    entries = ms.list_recordings(path)
    root = ms.data_dir(path)
    wanted = set(subjects) if subjects is not None else {e.subject for e in entries}
    have = {(e.trial, e.subject) for e in entries}
    problems = []
    for trial, code in sorted(ms.TRIALS.items()):
        folder = root / f"{code}_{trial}"
        if not folder.is_dir():
            problems.append(f"{folder}: missing (expected the trial folder {code}_{trial}/)")
            continue
        missing = sorted(s for s in wanted if (trial, s) not in have)
        if missing:
            problems.append(
                f"{folder}: expected sub_<n>.csv or .csv.gz of subject(s) "
                f"{', '.join(map(str, missing))}, not there"
            )
    return problems


@dataclass(frozen=True)
class MotionSenseCheck:
    """What :func:`check` found in a MotionSense folder (counts 0 when it could not be read)."""

    data_dir: str
    """The folder checked."""
    recordings: int
    """Recording files read (one subject, one trial each)."""
    subjects: list[int]
    """Subject ids present."""
    trials: int
    """Trial folders with at least one recording."""
    samples: int
    """Rows over all recordings (50 Hz)."""
    jogging_recordings: int
    """Recordings of jogging, which is no class of the six (never trained on or scored)."""
    files_checked: int
    """Manifest files whose SHA-256 was computed."""
    checksums: bool
    """Whether checksums were asked for."""
    checksum_note: str
    """What the checksums covered: the project's copy, or why none apply."""
    layout: str = ms.NAME
    """Always ``"motionsense"`` (``data check --json`` tells the layouts apart by it)."""
    problems: list[str] = field(default_factory=list)
    """Missing files, checksum mismatches, missing trials or subjects, the first parse error."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with the folder."""
        return not self.problems


def check(
    data_dir: Path | str, checksums: bool = True, *, manifest: dict[str, str] | None = None
) -> MotionSenseCheck:
    """Validate a MotionSense folder: checksums where known, layout, then every file parsed.

    Never raises for a bad folder: findings go into ``problems``. The shipped
    manifest applies to the project's ``.csv.gz`` copy; a folder of the
    official ``.csv`` files has no known checksums (``checksum_note`` says so)
    and is checked by structure and parsing only.
    """
    data = Path(data_dir)
    try:
        root = ms.data_dir(data)
    except DatasetError as exc:
        return MotionSenseCheck(str(data), 0, [], 0, 0, 0, 0, checksums, "not a MotionSense folder",
                                problems=[str(exc)])
    base = root.parent
    problems: list[str] = []
    hashed = 0
    compressed = any(root.glob("*/sub_*.csv.gz"))
    if not checksums:
        note = "skipped"
    elif compressed:
        problems, hashed = verify_files(base, load_manifest() if manifest is None else manifest)
        note = (f"the project's copy, against harstream/data/{MANIFEST_FILE} "
                f"(another .csv.gz copy: pass --no-checksums)")
    else:
        note = ("none known: the official archive's .csv files have no pinned checksums; "
                "structure and parsing checked")
    try:
        problems += structure_problems(root)
        dataset = ms.read_dataset(root)
    except DatasetError as exc:
        problems.append(str(exc))
        return MotionSenseCheck(str(data), 0, [], 0, 0, 0, hashed, checksums, note, problems=problems)
    return MotionSenseCheck(
        data_dir=str(data),
        recordings=len(dataset.recordings),
        subjects=sorted({r.user for r in dataset.recordings}),
        trials=len({r.experiment for r in dataset.recordings}),
        samples=sum(len(r) for r in dataset.recordings),
        jogging_recordings=sum(1 for s in dataset.segments if s.activity == ms.JOGGING),
        files_checked=hashed,
        checksums=checksums,
        checksum_note=note,
        problems=problems,
    )


def print_check(report: MotionSenseCheck, console: Console | None = None) -> None:
    """Render a :class:`MotionSenseCheck` as a short table, then its problems."""
    table = Table(title="MotionSense dataset", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("folder", report.data_dir)
    table.add_row("recordings", f"{report.recordings} ({report.jogging_recordings} of jogging, "
                                f"not a class: never trained on or scored)")
    table.add_row("subjects", f"{len(report.subjects)}: {', '.join(map(str, report.subjects))}")
    table.add_row("trials", f"{report.trials}")
    hours = report.samples / ms.SAMPLE_RATE_HZ / 3600
    table.add_row("samples", f"{report.samples:,} ({hours:.1f} h at {ms.SAMPLE_RATE_HZ} Hz)")
    hashed = f"{report.files_checked} files hashed: " if report.files_checked else ""
    table.add_row("checksums", hashed + report.checksum_note)
    print_report(table, report.problems, console or Console())


def _archive(url: str, dest: Path) -> Archive:
    help_text = (
        f"To install the dataset by hand, download {DEFAULT_URL} elsewhere and unpack it so "
        f"that {dest / ms.DATA_DIR} holds the <code>_<trial>/sub_<n>.csv files; or point "
        f"`--data DIR` or ${ENV_VAR} at a folder laid out that way."
    )
    return Archive(url, ARCHIVE_PREFIX, "MotionSense archive", "MotionSense's A_DeviceMotion_data.zip", help_text)


def _find_root(tree: Path) -> Path | None:
    """The shallowest folder under ``tree`` holding trial folders (``__MACOSX`` skipped)."""
    found = [
        path
        for path in [tree, *tree.rglob("*")]
        if path.is_dir()
        and not SKIP_DIRS.intersection(path.relative_to(tree).parts)
        and any(child.is_dir() and ms.trial_code(child.name) is not None for child in path.iterdir())
    ]
    return min(found, key=lambda p: (len(p.parts), str(p))) if found else None


def _verify(root: Path, url: str, subjects: tuple[int, ...]) -> int:
    """Structure and parsing of an unpacked archive; the number of recordings."""
    try:
        problems = structure_problems(root, subjects)
        if problems:
            more = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise DownloadError(f"{url}: the archive's layout is not MotionSense's: {problems[0]}{more}")
        return len(ms.read_dataset(root, set(subjects)).recordings)
    except DatasetError as exc:
        raise DownloadError(f"{url}: the archive's data do not parse: {exc}") from None


def _install(staged: Path, target: Path, aside: Path) -> None:
    """Move ``staged`` to ``target``; what was at ``target`` goes to ``aside`` (put back on failure)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.replace(target, aside)
        try:
            os.replace(staged, target)
        except OSError:
            if aside.exists():
                os.replace(aside, target)
            raise
    except OSError as exc:
        raise DownloadError(f"{target}: could not move the verified files in ({exc})") from exc


def download(
    dest: Path | None = None,
    url: str = DEFAULT_URL,
    progress: bool = True,
    console: Console | None = None,
    *,
    sha256: str | None = ARCHIVE_SHA256,
    subjects: tuple[int, ...] = ms.ALL_SUBJECTS,
    timeout: float = TIMEOUT_S,
    deadline: float = DEADLINE_S,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> Path:
    """Download MotionSense into ``dest`` (default the user cache) and verify it; returns ``dest``.

    Returns at once if ``dest`` already holds every trial of every one of
    ``subjects``, all parsing. Otherwise the archive is fetched, its SHA-256
    compared with ``sha256`` when one is given (:class:`ChecksumError` if it
    differs), unpacked beside ``dest``, verified by structure (every trial of
    every one of ``subjects``, each file parsed) and only then moved to
    ``dest/A_DeviceMotion_data``, replacing what was there; a failure leaves
    ``dest`` as it was.
    """
    dest = Path(dest) if dest is not None else default_dir()
    console = console or Console(stderr=True)
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"{dest}: expected a folder to download the dataset into, got a file")
    clean_stale(dest, ARCHIVE_PREFIX, console)
    if ms.find_data_dir(dest) is not None:
        try:
            n = _verify(ms.data_dir(dest), str(dest), subjects)
        except DownloadError:
            pass
        else:
            console.print(f"{dest}: MotionSense is already there ({n} recordings of {len(subjects)} "
                          f"subjects, every file parsed); nothing to download",
                          highlight=False, soft_wrap=True)
            return dest
    limits = Limits(timeout, deadline, max_archive_bytes, max_unpacked_bytes)
    expected = f"{ms.DATA_DIR}/<code>_<trial>/sub_<n>.csv files (codes {', '.join(ms.CODES)})"
    with unpacked(_archive(url, dest), dest, limits, find_root=_find_root, expected=expected, sha256=sha256,
                  progress=progress, console=console) as (root, work, transfer):
        n = _verify(root, url, subjects)
        _install(root, dest / ms.DATA_DIR, work / "replaced")
        digest = transfer.sha256
    pinned = "matches the pinned checksum" if sha256 is not None else (
        "not pinned: the project knows no trusted checksum of the official archive")
    console.print(
        f"Verified the structure of {n} recordings ({len(ms.TRIALS)} trials x {len(subjects)} "
        f"subjects, columns by name, every file parsed); archive SHA-256 {digest} ({pinned})",
        highlight=False, soft_wrap=True,
    )
    return dest
