"""harstream.data.download: fetch from a local HTTP server, verify, check folders."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import harstream.data.archive
from harstream.data.download import (
    DataCheck,
    check,
    download,
    load_manifest,
    print_check,
)
from harstream.data.fetch import parse_manifest
from harstream.errors import ChecksumError, DatasetError, DownloadError

ROWS = b"0.1 0.2 0.3\n0.4 0.5 0.6\n0.7 0.8 0.9\n1.0 1.1 1.2\n"
FILES = {
    "README.txt": b"tiny fake HAPT\n",
    "activity_labels.txt": b"1 WALKING\n7 STAND_TO_SIT\n",
    "RawData/acc_exp01_user01.txt": ROWS,
    "RawData/gyro_exp01_user01.txt": ROWS,
    "RawData/labels.txt": b"1 1 5 1 2\n1 1 7 3 4\n",
}
MANIFEST = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
UNREACHABLE = "http://127.0.0.1:1/x.zip"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user cache (and so the default dest and temp files) into tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "harstream"




def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def output(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def hapt_zip(prefix: str = "HAPT Data Set/", changes: dict[str, bytes] | None = None) -> bytes:
    """The fake dataset under ``prefix`` (``changes`` replaces files), with decoys."""
    files = {f"{prefix}{name}": data for name, data in {**FILES, **(changes or {})}.items()}
    files[f"{prefix}Train/X_train.txt"] = b"0.5 0.5\n"
    files["__MACOSX/RawData/._acc_exp01_user01.txt"] = b"\x00resource fork"
    return zip_bytes(files)


def serve(www: tuple[Path, str], name: str, data: bytes) -> str:
    root, base = www
    (root / name).write_bytes(data)
    return f"{base}/{name.replace(' ', '%20')}"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def assert_installed(dest: Path) -> None:
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data
    assert not (dest / "Train").exists()
    assert not (dest / "__MACOSX").exists()


def test_download_from_nested_folder(
    tmp_path: Path, www: tuple[Path, str], cache: Path
) -> None:
    url = serve(www, "hapt.zip", hapt_zip())
    dest = tmp_path / "data" / "hapt"
    console = quiet()
    assert download(dest, url, progress=False, console=console, manifest=MANIFEST) == dest
    assert_installed(dest)
    assert leftovers(dest.parent) == ["hapt"]
    assert leftovers(cache) == []
    assert check(dest, manifest=MANIFEST).ok
    assert "Verified 5 files" in output(console)


def test_download_nested_zip_to_default_dest(
    www: tuple[Path, str], cache: Path
) -> None:
    inner = hapt_zip(prefix="")
    url = serve(www, "outer.zip", zip_bytes({"HAPT Data Set.zip": inner, "notes.txt": b"x"}))
    dest = download(url=url, progress=True, console=quiet(), manifest=MANIFEST)
    assert dest == cache / "hapt"
    assert_installed(dest)
    assert leftovers(cache) == ["hapt"]


def test_already_verified_returns_without_downloading(
    tmp_path: Path, www: tuple[Path, str]
) -> None:
    dest = tmp_path / "hapt"
    download(dest, serve(www, "a.zip", hapt_zip()), progress=False, console=quiet(),
             manifest=MANIFEST)
    console = quiet()
    assert download(dest, UNREACHABLE, progress=False, console=console,
                    manifest=MANIFEST) == dest
    assert "already there" in output(console)
    assert "Downloading" not in output(console)


def test_corrupted_file_raises_and_leaves_nothing(
    tmp_path: Path, www: tuple[Path, str], cache: Path
) -> None:
    url = serve(www, "bad.zip", hapt_zip(changes={"RawData/labels.txt": b"1 1 5 1 3\n"}))
    dest = tmp_path / "data" / "hapt"
    with pytest.raises(ChecksumError) as info:
        download(dest, url, progress=False, console=quiet(), manifest=MANIFEST)
    message = str(info.value)
    actual = hashlib.sha256(b"1 1 5 1 3\n").hexdigest()
    assert "RawData/labels.txt" in message
    assert MANIFEST["RawData/labels.txt"] in message and actual in message
    assert str(dest) in message
    assert not dest.exists()
    assert leftovers(dest.parent) == []
    assert leftovers(cache) == []


def test_existing_folder_is_untouched_on_failure_and_updated_on_success(
    tmp_path: Path, www: tuple[Path, str]
) -> None:
    dest = tmp_path / "hapt"
    (dest / "RawData").mkdir(parents=True)
    (dest / "RawData" / "labels.txt").write_bytes(b"stale\n")
    (dest / "notes.txt").write_bytes(b"mine\n")
    bad = serve(www, "bad.zip", hapt_zip(changes={"README.txt": b"changed\n"}))
    with pytest.raises(ChecksumError, match=r"README\.txt"):
        download(dest, bad, progress=False, console=quiet(), manifest=MANIFEST)
    assert leftovers(dest) == ["RawData", "notes.txt"]
    assert (dest / "RawData" / "labels.txt").read_bytes() == b"stale\n"

    good = serve(www, "good.zip", hapt_zip())
    download(dest, good, progress=False, console=quiet(), manifest=MANIFEST)
    assert_installed(dest)
    assert (dest / "notes.txt").read_bytes() == b"mine\n"
    assert leftovers(tmp_path) == ["cache", "hapt", "www"]


def test_unreachable_url_says_where_to_put_the_files(tmp_path: Path) -> None:
    dest = tmp_path / "hapt"
    with pytest.raises(DownloadError) as info:
        download(dest, UNREACHABLE, progress=False, console=quiet(), manifest=MANIFEST)
    message = str(info.value)
    assert UNREACHABLE in message and "could not be reached" in message
    assert str(dest) in message
    assert "RawData" in message and "labels.txt" in message
    assert "--data" in message and "HARSTREAM_DATA" in message
    assert not dest.exists()
    assert leftovers(tmp_path) == ["cache"]


def test_http_error(tmp_path: Path, www: tuple[Path, str]) -> None:
    url = f"{www[1]}/nothing-here.zip"
    with pytest.raises(DownloadError, match="404"):
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)


def test_archive_without_rawdata(tmp_path: Path, www: tuple[Path, str]) -> None:
    url = serve(www, "other.zip", zip_bytes({
        "Some Data/README.txt": b"x",
        "inner.zip": zip_bytes({"data/labels.txt": b"1 1 1 1 1\n"}),
    }))
    dest = tmp_path / "hapt"
    with pytest.raises(DownloadError, match="RawData/") as info:
        download(dest, url, progress=False, console=quiet(), manifest=MANIFEST)
    assert "nested zip" in str(info.value)
    assert not dest.exists()
    assert leftovers(tmp_path) == ["cache", "www"]


def test_not_a_zip(tmp_path: Path, www: tuple[Path, str]) -> None:
    url = serve(www, "page.zip", b"<html>not a zip</html>")
    with pytest.raises(DownloadError, match="zip"):
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)
    assert leftovers(tmp_path) == ["cache", "www"]


@pytest.mark.parametrize("nested", [False, True])
def test_archive_missing_a_manifest_file(
    tmp_path: Path, www: tuple[Path, str], nested: bool
) -> None:
    files = {f"HAPT/{name}": data for name, data in FILES.items() if name != "README.txt"}
    archive = zip_bytes(files)
    url = serve(www, "partial.zip", zip_bytes({"in.zip": archive}) if nested else archive)
    with pytest.raises(DownloadError, match=r"README\.txt beside RawData/ in the archive \(HAPT\)"):
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)
    assert not (tmp_path / "hapt").exists()


def test_dest_is_a_file(tmp_path: Path) -> None:
    dest = tmp_path / "hapt"
    dest.write_text("x")
    with pytest.raises(DownloadError, match="got a file"):
        download(dest, UNREACHABLE, progress=False, console=quiet(), manifest=MANIFEST)


def write_fake(dest: Path) -> Path:
    for name, data in FILES.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return dest


def test_check_good_folder(tmp_path: Path) -> None:
    report = check(write_fake(tmp_path / "hapt"), manifest=MANIFEST)
    assert report == DataCheck(
        data_dir=str(tmp_path / "hapt"), experiments=1, users=1, samples=4, segments=2,
        activity_segments=1, files_checked=5, checksums=True, problems=[],
    )
    assert report.ok and report.transition_segments == 1
    assert json.loads(json.dumps(asdict(report)))["segments"] == 2
    console = quiet()
    print_check(report, console)
    assert "OK" in output(console) and "5 files hashed" in output(console)


def test_check_the_rawdata_folder_itself(tmp_path: Path) -> None:
    report = check(write_fake(tmp_path / "hapt") / "RawData", manifest=MANIFEST)
    assert report.ok and report.files_checked == 5


def test_check_reports_mismatch_and_missing_files(tmp_path: Path) -> None:
    dest = write_fake(tmp_path / "hapt")
    (dest / "README.txt").write_bytes(b"edited\n")
    (dest / "activity_labels.txt").unlink()
    edited = hashlib.sha256(b"edited\n").hexdigest()
    report = check(dest, manifest=MANIFEST)
    assert report.files_checked == 4 and report.experiments == 1
    assert report.problems == [
        f"{dest / 'README.txt'}: expected SHA-256 {MANIFEST['README.txt']}, "
        f"got {edited}",
        f"{dest / 'activity_labels.txt'}: missing (listed in the package manifest)",
    ]
    console = quiet()
    print_check(report, console)
    assert "2 problem(s)" in output(console) and "README.txt" in output(console)
    assert f"✗ {dest / 'README.txt'}: expected SHA-256" in output(console)


def test_check_reports_parse_errors_as_problems(tmp_path: Path) -> None:
    dest = write_fake(tmp_path / "hapt")
    (dest / "RawData" / "labels.txt").write_bytes(b"1 1 5 1 2\n1 1 99 3 4\n")
    report = check(dest, manifest=MANIFEST)
    assert not report.ok and report.experiments == 0
    assert report.problems[0].startswith(f"{dest / 'RawData' / 'labels.txt'}: expected SHA-256")
    assert report.problems[1].startswith(f"{dest / 'RawData' / 'labels.txt'}:2: ")


def test_check_without_checksums_and_not_a_dataset(tmp_path: Path) -> None:
    dest = write_fake(tmp_path / "hapt")
    (dest / "README.txt").write_bytes(b"edited\n")
    report = check(dest, checksums=False)
    assert report.ok and report.files_checked == 0 and not report.checksums
    empty = check(tmp_path / "nothing", manifest=MANIFEST)
    assert len(empty.problems) == 1 and "RawData/" in empty.problems[0]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"{'a' * 64}  README.txt\nnot a checksum line\n", 2),
        (f"{'a' * 64}  ../etc/passwd\n", 1),
        (f"{'a' * 64}  /abs/path\n", 1),
        (f"{'a' * 64}  x.txt\n\n{'b' * 64}  x.txt\n", 3),
    ],
)
def test_parse_manifest_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(DatasetError, match=rf"^m\.txt:{line}: expected"):
        parse_manifest(text, "m.txt")


def test_parse_manifest_binary_marker() -> None:
    assert parse_manifest(f"{'A' * 64} *RawData/x.txt\n") == {"RawData/x.txt": "a" * 64}


def test_package_manifest_lists_every_real_file(hapt_dir: Path) -> None:
    manifest = load_manifest()
    on_disk = {p.relative_to(hapt_dir).as_posix() for p in hapt_dir.rglob("*") if p.is_file()}
    assert set(manifest) == on_disk
    assert len(manifest) == 127


def test_real_dataset_checks_clean(hapt_dir: Path) -> None:
    report = check(hapt_dir)
    assert report.problems == []
    assert (report.experiments, report.users, report.segments, report.samples) == (
        61, 30, 1214, 1_122_772,
    )
    assert report.files_checked == 127


# --- limits: archive size, unpacked size (zip bombs), deadline, stale partial files ---


class TrickleHandler(BaseHTTPRequestHandler):
    """Announces a 1,000-byte archive, then sends one byte every 0.2 s."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)


class NoLengthHandler(BaseHTTPRequestHandler):
    """Sends 3 MB without a Content-Length (the end of the body is the end of the connection)."""

    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(48):
                self.wfile.write(b"\0" * 65536)
        except OSError:
            return


@pytest.fixture
def handler_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Serve ``request.param`` (a handler class) on 127.0.0.1; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hapt.zip"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def zip_bomb(declared: int | None = None, size: int = 5_000_000) -> bytes:
    """A zip of ``size`` zero bytes (a few kB); ``declared`` rewrites the size its directory claims."""
    data = bytearray(zip_bytes({"HAPT/RawData/zeros.txt": bytes(size)}))
    if declared is not None:
        central = data.index(b"PK\x01\x02")
        data[central + 24 : central + 28] = struct.pack("<I", declared)
        local = data.index(b"PK\x03\x04")
        data[local + 22 : local + 26] = struct.pack("<I", declared)
    return bytes(data)


def test_archive_announced_over_the_size_cap_is_refused(
    tmp_path: Path, www: tuple[Path, str], cache: Path
) -> None:
    url = serve(www, "big.zip", hapt_zip() + bytes(2_000_000))
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST,
                 max_archive_bytes=1_000_000)
    message = str(info.value)
    assert "announces" in message and "archive size limit of 1,000,000 bytes" in message
    assert "max_archive_bytes" in message
    assert leftovers(cache) == [] and leftovers(tmp_path) == ["cache", "www"]


@pytest.mark.parametrize("handler_url", [NoLengthHandler], indirect=True)
def test_archive_received_over_the_size_cap_is_refused(
    tmp_path: Path, handler_url: str, cache: Path
) -> None:
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "hapt", handler_url, progress=False, console=quiet(),
                 manifest=MANIFEST, max_archive_bytes=1_000_000)
    message = str(info.value)
    assert "received" in message and "archive size limit of 1,000,000 bytes" in message
    assert leftovers(cache) == [] and not (tmp_path / "hapt").exists()


def test_zip_bomb_is_refused_by_its_declared_size(
    tmp_path: Path, www: tuple[Path, str], cache: Path
) -> None:
    archive = zip_bomb()
    assert len(archive) < 50_000  # 5 MB of content in a few kB
    url = serve(www, "bomb.zip", archive)
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST,
                 max_unpacked_bytes=1_000_000)
    message = str(info.value)
    assert "declares 5,000,000 bytes unpacked" in message
    assert "unpacked size limit of 1,000,000 bytes" in message and "zip bomb" in message
    assert leftovers(cache) == [] and leftovers(tmp_path) == ["cache", "www"]


def test_zip_bomb_over_the_default_cap_is_refused_before_writing(
    tmp_path: Path, www: tuple[Path, str]
) -> None:
    url = serve(www, "bomb.zip", zip_bomb(declared=3_000_000_000))
    with pytest.raises(DownloadError, match=r"declares 3,000,000,000 bytes unpacked, over the "
                       r"unpacked size limit of 1,073,741,824 bytes"):
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)
    assert leftovers(tmp_path) == ["cache", "www"]


def test_nested_zip_bomb_counts_against_the_same_cap(
    tmp_path: Path, www: tuple[Path, str]
) -> None:
    outer = zip_bytes({"inner.zip": zip_bomb(), "pad.txt": bytes(600_000)})
    url = serve(www, "nested.zip", outer)
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST,
                 max_unpacked_bytes=4_000_000)
    assert "(inner.zip): the archive declares 5,000,000 bytes unpacked after" in str(info.value)


def test_zip_understating_its_size_writes_no_more_than_declared(
    tmp_path: Path, www: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = serve(www, "liar.zip", zip_bomb(declared=1000))
    written: list[int] = []
    real_open = Path.open

    def counting_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        if self.name == "zeros.txt":
            written.append(0)
            write = handle.write

            def counted(data: bytes) -> int:
                written[-1] += len(data)
                return int(write(data))

            handle.write = counted
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    with pytest.raises(DownloadError, match="could not unpack as a zip archive"):
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)
    assert written and max(written) <= 1000


def test_written_bytes_are_counted_even_if_declared_sizes_were_believed(
    tmp_path: Path, www: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harstream.data.archive, "_declared_size", lambda members: 0)
    url = serve(www, "bomb.zip", zip_bomb())
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST,
                 max_unpacked_bytes=1_000_000)
    message = str(info.value)
    assert "unpacking 'HAPT/RawData/zeros.txt' (declared 5,000,000 bytes) wrote more than" in message
    assert "unpacked size limit of 1,000,000 bytes" in message
    assert leftovers(tmp_path) == ["cache", "www"]


def corrupt_deflate(archive: bytes) -> bytes:
    """``archive`` with its first member's deflate stream starting on a reserved block type."""
    data = bytearray(archive)
    local = data.index(b"PK\x03\x04")
    name_length, extra_length = struct.unpack("<HH", data[local + 26 : local + 30])
    data[local + 30 + name_length + extra_length] = 0xFF
    return bytes(data)


def test_corrupt_deflate_data_is_a_download_error(tmp_path: Path, www: tuple[Path, str], cache: Path) -> None:
    # issue 19 item 14: zlib.error escaped as a traceback
    url = serve(www, "corrupt.zip", corrupt_deflate(hapt_zip()))
    with pytest.raises(DownloadError, match=r"could not unpack as a zip archive \(Error -3 while decompressing"):
        download(tmp_path / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)
    assert leftovers(cache) == [] and leftovers(tmp_path) == ["cache", "www"]


def test_member_outside_the_folder_is_refused(tmp_path: Path, www: tuple[Path, str]) -> None:
    url = serve(www, "evil.zip", zip_bytes({"../../evil.txt": b"x"}))
    with pytest.raises(DownloadError, match=r"'\.\./\.\./evil\.txt' points outside"):
        download(tmp_path / "d" / "hapt", url, progress=False, console=quiet(), manifest=MANIFEST)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("handler_url", [TrickleHandler], indirect=True)
def test_trickling_server_fails_at_the_deadline(
    tmp_path: Path, handler_url: str, cache: Path
) -> None:
    # one byte every 0.2 s never trips the 60 s per-read timeout; the 1 s deadline stops it
    with pytest.raises(DownloadError) as info:
        download(tmp_path / "hapt", handler_url, progress=False, console=quiet(),
                 manifest=MANIFEST, deadline=1.0)
    message = str(info.value)
    assert "longer than its deadline of 1 s" in message and "bytes received" in message
    assert "--data" in message
    assert leftovers(cache) == [] and not (tmp_path / "hapt").exists()


def test_stale_partial_files_are_removed_on_the_next_run(
    tmp_path: Path, www: tuple[Path, str], cache: Path
) -> None:
    dead = 4_194_305  # above Linux's largest pid: no such process
    dest = tmp_path / "data" / "hapt"
    cache.mkdir(parents=True)
    dest.parent.mkdir(parents=True)
    stale = [
        cache / f"hapt-{dead}-k1ll3d.zip.part",
        cache / "hapt-abc123de.zip.part",  # named before process ids were recorded
    ]
    for path in stale:
        path.write_bytes(b"half an archive")
    (dest.parent / f".hapt.partial-{dead}-x1y2" / "archive").mkdir(parents=True)
    (dest.parent / f".hapt.partial-{dead}-x1y2" / "archive" / "big.txt").write_bytes(b"x" * 1000)
    live = cache / f"hapt-{os.getppid()}-running.zip.part"  # another download still running
    live.write_bytes(b"in progress")
    (dest.parent / "notes.txt").write_text("not ours")

    console = quiet()
    download(dest, serve(www, "hapt.zip", hapt_zip()), progress=False, console=console,
             manifest=MANIFEST)
    assert_installed(dest)
    assert leftovers(cache) == [live.name]
    assert leftovers(dest.parent) == ["hapt", "notes.txt"]
    assert "Removed 3 partial download file(s)" in output(console)
