"""Fetch, verify and check the HAPT dataset (UCI dataset 341).

:func:`download` fetches the public archive with pooch (:mod:`harstream.data.fetch`: within a
deadline and a size limit), unpacks it (the data folder may sit anywhere inside, or inside a zip
within the zip; unpacked bytes are capped against zip bombs, :mod:`harstream.data.archive`),
checks every file against the SHA-256 manifest the package ships
(``harstream/data/hapt_sha256.txt``) and only then moves the files into place; partial files
of an earlier, killed download are removed. :func:`check` validates a dataset folder that is
already there.

>>> manifest = load_manifest()
>>> len(manifest), "RawData/labels.txt" in manifest
(127, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harstream.data.archive import SKIP_DIRS
from harstream.data.fetch import (
    DEADLINE_S,
    TIMEOUT_S,
    Archive,
    Limits,
    clean_stale,
    parse_manifest,
    print_report,
    sha256_file,
    unpacked,
    verify_files,
)
from harstream.data.hapt import N_LABEL_IDS, RAW_DIR, raw_dir, read_dataset
from harstream.errors import ChecksumError, DatasetError, DownloadError
from harstream.paths import ENV_VAR, default_data_dir

DEFAULT_URL = (
    "https://archive.ics.uci.edu/static/public/341/"
    "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip"
)
"""The public UCI archive of HAPT, version 2.1."""
MANIFEST_FILE = "hapt_sha256.txt"
"""Name of the shipped manifest inside ``harstream/data``."""
MAX_ARCHIVE_BYTES = 256 * 2**20
"""Largest archive accepted (256 MiB); the HAPT archive is under 100 MB."""
MAX_UNPACKED_BYTES = 2**30
"""Most bytes unpacking may write, nested zips included (1 GiB); HAPT unpacks to about 0.35 GB."""
SAMPLE_RATE_HZ = 50
"""HAPT sampling rate, used only to show the recorded duration."""


def load_manifest() -> dict[str, str]:
    """The SHA-256 of every HAPT file, keyed by path relative to the dataset folder."""
    resource = files("harstream") / "data" / MANIFEST_FILE
    return parse_manifest(resource.read_text(encoding="utf-8"), f"harstream/data/{MANIFEST_FILE}")


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
        problems, hashed = verify_files(base, load_manifest() if manifest is None else manifest)
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
    print_report(table, report.problems, console or Console())


def _archive(url: str, dest: Path) -> Archive:
    help_text = (
        f"To install the dataset by hand, download the HAPT archive (UCI dataset 341) "
        f"elsewhere and unpack it so that {dest / RAW_DIR} holds acc_expNN_userMM.txt, "
        f"gyro_expNN_userMM.txt and labels.txt; or point `--data DIR` or ${ENV_VAR} "
        f"at a folder laid out that way."
    )
    return Archive(url, "hapt", "HAPT archive", "the HAPT archive (UCI dataset 341)", help_text)


def _find_root(tree: Path) -> Path | None:
    """The shallowest folder under ``tree`` that holds a ``RawData`` folder."""
    found = [
        path.parent
        for path in tree.rglob(RAW_DIR)
        if path.is_dir() and not SKIP_DIRS.intersection(path.relative_to(tree).parts)
    ]
    return min(found, key=lambda p: (len(p.parts), str(p))) if found else None


def _stage(root: Path, staged: Path, url: str, manifest: dict[str, str], dest: Path) -> None:
    """Move the manifest's files from the unpacked ``root`` to ``staged`` and check every one."""
    missing = [name for name in sorted(manifest) if not (root / name).is_file()]
    if missing:
        inside = "/".join(root.relative_to(staged.parent).parts[1:]) or "its top level"
        raise DownloadError(
            f"{url}: expected {missing[0]} beside {RAW_DIR}/ in the archive ({inside}), not there"
            + (f" ({len(missing) - 1} more files missing)" if len(missing) > 1 else "")
        )
    for name in manifest:
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / name, staged / name)
    mismatches = [(name, expected, actual) for name, expected in sorted(manifest.items())
                  if (actual := sha256_file(staged / name)) != expected]
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

    Returns at once if ``dest`` already matches the manifest. Files are
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
    clean_stale(dest, "hapt", console)
    if dest.is_dir() and not verify_files(dest, manifest)[0]:
        console.print(
            f"{dest}: the HAPT dataset is already there and all {len(manifest)} files "
            f"match their checksums; nothing to download",
            highlight=False,
            soft_wrap=True,
        )
        return dest
    limits = Limits(timeout, deadline, max_archive_bytes, max_unpacked_bytes)
    expected = (f"a {RAW_DIR}/ folder (acc_expNN_userMM.txt, gyro_expNN_userMM.txt, labels.txt)")
    with unpacked(_archive(url, dest), dest, limits, find_root=_find_root, expected=expected,
                  progress=progress, console=console) as (root, work, _):
        _stage(root, work / "dataset", url, manifest, dest)
        _install(work / "dataset", dest, manifest)
    console.print(f"Verified {len(manifest)} files against the package manifest", highlight=False)
    return dest
