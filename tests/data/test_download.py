"""Tests of the downloader (``mmea_pyg.data.download``) and the ``mmea download`` command.

Everything runs on tiny fixture mirrors in ``tmp_path`` (a local folder or a loopback HTTP server);
only the ``integration`` test reads the real MMKG mirror.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from mmea_pyg.data import download as dl
from mmea_pyg.data import files as data_files
from mmea_pyg.data import registry
from mmea_pyg.data.download import transfer
from mmea_pyg.data.registry import DatasetCard, KGCard, RemoteFile
from mmea_pyg.errors import ChecksumError, DownloadError, MMEAError

#: Read before the autouse fixture clears it, for the integration test.
_ENV_MIRROR = os.environ.get("MMEA_MIRROR")

#: The "upstream" content of the tiny benchmark (the registry's git blob ids are computed from it).
UPSTREAM = {
    "SRC/SRC_EntityTriples.txt": b"/m/a /r/x /m/b .\n/m/b /r/y /m/c .\n",
    "SRC/SRC_NumericalTriples.txt": b"/m/a\t<http://rdf.freebase.com/ns/p>\t1.5\n",
    "SRC/SRC_ImageIndex.txt": b"/m/a\tSRCIMG00001\n",
    "TGT/TGT_EntityTriples.txt": b"<t:a> <t:r> <t:b> .\n",
    "TGT/TGT_NumericalTriples.txt": b'<t:a> <t:p> "1"^^<xsd:integer> .\n<t:b> <t:p> "2"^^<xsd:integer> .\n',
    "TGT/TGT_ImageIndex.txt": b"<t:a>\tTGTIMG00001\n",
    "TGT/TGT_SameAsLink.txt": b"/m/a <SameAs> <t:a> .\n/m/b <SameAs> <t:b> .\n",
}
#: Optional extra file that has no upstream id.
NAMES = ("SRC/SRC_mid2name.txt", b"/m/a\tAlpha\n/m/b\tBeta\n")
#: A file the mirror reconstructed (its content differs from UPSTREAM).
RECONSTRUCTED = ("TGT/TGT_NumericalTriples.txt", b'<t:b> <t:p> "2"^^<xsd:integer> .\n')


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mirror_content(reconstructed: bool = True, names: bool = True) -> dict[str, bytes]:
    """The files of a fixture mirror (relative path -> bytes)."""
    files = dict(UPSTREAM)
    if reconstructed:
        files[RECONSTRUCTED[0]] = RECONSTRUCTED[1]
    if names:
        files[NAMES[0]] = NAMES[1]
    return files


def write_mirror(folder: Path, files: dict[str, bytes], sums: bool = True) -> Path:
    """Write ``files`` in the upstream layout, plus a SHA256SUMS file when ``sums``."""
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    if sums:
        lines = [f"{sha(data)}  {rel}\n" for rel, data in sorted(files.items())]
        (folder / "SHA256SUMS").write_text("".join(lines))
    return folder


def make_card(base_url: str | None = None) -> DatasetCard:
    """A two-KG card over UPSTREAM; with ``base_url`` every file's upstream URL points there."""

    def rf(rel: str, optional: bool = False, known: bool = True) -> RemoteFile:
        url = None if base_url is None else base_url + rel
        return RemoteFile(rel, blob_id(UPSTREAM[rel]) if known else None, url=url, optional=optional)

    def kg(name: str, same_as: bool, names: bool) -> KGCard:
        h5 = f"{name}/{name}_ImageData.h5"
        return KGCard(
            name=name,
            entity_triples=rf(f"{name}/{name}_EntityTriples.txt"),
            numerical_triples=rf(f"{name}/{name}_NumericalTriples.txt"),
            image_index=rf(f"{name}/{name}_ImageIndex.txt"),
            image_data=RemoteFile(h5, None, url=None if base_url is None else base_url + h5, optional=True),
            same_as=rf(f"{name}/{name}_SameAsLink.txt") if same_as else None,
            names=RemoteFile(
                NAMES[0], None, optional=True, url=None if base_url is None else base_url + NAMES[0]
            )
            if names
            else None,
        )

    return DatasetCard(name="tiny", source=kg("SRC", False, True), target=kg("TGT", True, False))


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real env defaults, no proxies, no backoff delays."""
    monkeypatch.delenv("MMEA_MIRROR", raising=False)
    monkeypatch.delenv("MMEA_DATA", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(transfer, "RETRY_BASE_DELAY", 0.0)
    monkeypatch.setattr(transfer, "TIMEOUT", 10.0)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> DatasetCard:
    """Register the tiny card as dataset ``tiny`` (files from the local/HTTP mirror only)."""
    card = make_card()
    monkeypatch.setitem(registry.DATASETS, "tiny", card)
    return card


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A local mirror with SHA256SUMS, one reconstructed file and the optional names file."""
    return write_mirror(tmp_path / "mirror", mirror_content())


class _Handler(BaseHTTPRequestHandler):
    """Static files with Range support, scripted failures and one-off truncations."""

    server: _Server

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        srv = self.server
        range_header = self.headers.get("Range")
        srv.log.append((self.path, range_header))
        failures = srv.failures.get(self.path)
        if failures:
            self.send_error(failures.pop(0))
            return
        path = srv.directory / unquote(self.path.split("?")[0].lstrip("/"))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if range_header and srv.honor_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in srv.truncate:
            srv.truncate.discard(self.path)
            body = body[: len(body) // 2]
        srv.sent.append((self.path, len(body)))
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    directory: Path
    log: list[tuple[str, str | None]]
    sent: list[tuple[str, int]]
    failures: dict[str, list[int]]
    truncate: set[str]
    honor_range: bool

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def requests_for(self, path: str) -> list[str | None]:
        """The Range headers of the requests for ``path`` (``None``: no Range)."""
        return [rng for p, rng in self.log if p == path]


@pytest.fixture
def server(tmp_path: Path):
    """A loopback HTTP server over ``tmp_path/www`` (a mirror with SHA256SUMS)."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.directory = write_mirror(tmp_path / "www", mirror_content())
    srv.log, srv.sent, srv.failures, srv.truncate, srv.honor_range = [], [], {}, set(), True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def by_path(records: list[dl.FileRecord]) -> dict[str, dl.FileRecord]:
    return {r.path: r for r in records}


def manifest(root: Path) -> dict[str, dict]:
    data = json.loads((root / "mmkg" / "MANIFEST.json").read_text())
    assert data["version"] == dl.MANIFEST_VERSION
    return {entry["path"]: entry for entry in data["files"]}


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.part"))


# --------------------------------------------------------------------------------------------------
# checksums and defaults


def test_git_blob_and_sha256_of_known_content(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert data_files.git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert (
        data_files.sha256sum(str(path)) == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    )
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert data_files.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_parse_sha256sums_formats_and_errors() -> None:
    a, b = "a" * 64, "B" * 64
    sums = data_files.parse_sha256sums(f"{a}  X/x.txt\n\n# comment\n{b} *./Y/y.h5\n")
    assert sums == {"X/x.txt": a, "Y/y.h5": b.lower()}
    with pytest.raises(DownloadError, match="line 1"):
        data_files.parse_sha256sums("not-a-digest  X/x.txt\n", "mirror/SHA256SUMS")


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert data_files.default_root() == Path("datasets")
    assert data_files.default_mirror() is None
    monkeypatch.setenv("MMEA_DATA", str(tmp_path))
    monkeypatch.setenv("MMEA_MIRROR", "http://127.0.0.1:1/")
    assert data_files.default_root() == tmp_path
    assert data_files.default_mirror() == "http://127.0.0.1:1/"
    assert data_files.raw_dir() == tmp_path / "mmkg"


# --------------------------------------------------------------------------------------------------
# local mirrors


def test_local_mirror_fetch_manifest_and_noop_second_run(
    tiny: DatasetCard, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    records = dl.download_dataset("tiny", root=root, mirror=str(mirror), progress=False)

    expected = mirror_content()
    assert [r.path for r in records] == [rf.path for rf in tiny.files()]
    for rel, data in expected.items():
        assert (root / "mmkg" / rel).read_bytes() == data
    assert all(r.fetched and not r.skipped for r in records)
    entries = manifest(root)
    assert set(entries) == set(expected)
    same_as = entries["TGT/TGT_SameAsLink.txt"]
    assert same_as["status"] == dl.STATUS_SHA256
    assert same_as["upstream"] == "identical"
    assert same_as["url"] == (mirror / "TGT/TGT_SameAsLink.txt").resolve().as_uri()
    assert same_as["sha256"] == sha(expected["TGT/TGT_SameAsLink.txt"])
    assert same_as["git_blob"] == blob_id(expected["TGT/TGT_SameAsLink.txt"])
    assert same_as["size"] == len(expected["TGT/TGT_SameAsLink.txt"])
    assert same_as["time"]
    assert entries[NAMES[0]]["upstream"] == "unknown"
    assert leftovers(root) == []

    files = [root / "mmkg" / rel for rel in expected] + [root / "mmkg" / "MANIFEST.json"]
    mtimes = {p: p.stat().st_mtime_ns for p in files}

    def no_transfer(*args, **kwargs):
        raise AssertionError("a verified file was fetched again")

    monkeypatch.setattr(transfer, "transfer_to_part", no_transfer)
    again = dl.download_dataset("tiny", root=root, mirror=str(mirror), progress=False)
    assert not any(r.fetched for r in again)
    assert [r.status for r in again] == [r.status for r in records]
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes


def test_file_url_mirror_and_shared_files_fetched_once(
    tiny: DatasetCard, mirror: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    records = dl.download_datasets(
        ["tiny", "TINY"], root=root, mirror=mirror.resolve().as_uri(), progress=False
    )
    assert len(records) == len({r.path for r in records}) == len(tiny.files())
    assert (root / "mmkg" / "SRC/SRC_EntityTriples.txt").read_bytes() == UPSTREAM["SRC/SRC_EntityTriples.txt"]


def test_differs_from_upstream_is_reported_not_an_error(
    tiny: DatasetCard, mirror: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    with caplog.at_level(logging.WARNING, logger=dl.__name__):
        records = by_path(dl.download_dataset("tiny", root=root, mirror=str(mirror), progress=False))
    numeric = records[RECONSTRUCTED[0]]
    assert numeric.status == dl.STATUS_DIFFERS
    assert numeric.differs_from_upstream
    assert "differs from upstream mmkb (reconstructed in this mirror)" in numeric.note
    assert numeric.upstream_git_blob == blob_id(UPSTREAM[RECONSTRUCTED[0]])
    assert manifest(root)[RECONSTRUCTED[0]]["status"] == dl.STATUS_DIFFERS
    assert manifest(root)[RECONSTRUCTED[0]]["upstream"] == "differs"
    assert not records["TGT/TGT_SameAsLink.txt"].differs_from_upstream
    assert any(RECONSTRUCTED[0] in m and "differs from upstream" in m for m in caplog.messages)


def test_without_sha256sums_the_registry_blob_governs(tiny: DatasetCard, tmp_path: Path) -> None:
    root = tmp_path / "data"
    good = write_mirror(tmp_path / "good", mirror_content(reconstructed=False), sums=False)
    records = by_path(dl.download_dataset("tiny", root=root, mirror=str(good), progress=False))
    assert records["TGT/TGT_SameAsLink.txt"].status == dl.STATUS_GIT_BLOB
    assert records[NAMES[0]].status == dl.STATUS_UNVERIFIED

    bad = write_mirror(tmp_path / "bad", mirror_content(reconstructed=True), sums=False)
    root2 = tmp_path / "data2"
    with pytest.raises(ChecksumError) as info:
        dl.download_dataset("tiny", root=root2, mirror=str(bad), progress=False)
    message = str(info.value)
    assert RECONSTRUCTED[0] in message and "git blob" in message
    assert blob_id(UPSTREAM[RECONSTRUCTED[0]]) in message and blob_id(RECONSTRUCTED[1]) in message
    assert not (root2 / "mmkg" / RECONSTRUCTED[0]).exists()
    assert leftovers(root2) == []


def test_sha256sums_mismatch_removes_the_file(tiny: DatasetCard, mirror: Path, tmp_path: Path) -> None:
    rel = "TGT/TGT_SameAsLink.txt"
    wrong = "0" * 64
    sums = (mirror / "SHA256SUMS").read_text().replace(sha(UPSTREAM[rel]), wrong)
    (mirror / "SHA256SUMS").write_text(sums)
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as info:
        dl.download_dataset("tiny", root=root, mirror=str(mirror), progress=False)
    message = str(info.value)
    assert rel in message and wrong in message and sha(UPSTREAM[rel]) in message
    assert not (root / "mmkg" / rel).exists()
    assert leftovers(root) == []
    # files verified before the failure are kept and recorded
    assert "TGT/TGT_ImageIndex.txt" in manifest(root)


def test_optional_file_missing_in_mirror_is_skipped(tiny: DatasetCard, tmp_path: Path) -> None:
    folder = write_mirror(tmp_path / "mirror", mirror_content(names=False))
    root = tmp_path / "data"
    records = by_path(dl.download_dataset("tiny", root=root, mirror=str(folder), progress=False))
    skipped = records[NAMES[0]]
    assert skipped.skipped and not skipped.fetched and skipped.status == dl.STATUS_SKIPPED
    assert "optional" in skipped.note
    assert NAMES[0] not in manifest(root)
    assert not (root / "mmkg" / NAMES[0]).exists()


def test_required_file_missing_in_mirror_is_an_error(tiny: DatasetCard, mirror: Path, tmp_path: Path) -> None:
    (mirror / "TGT/TGT_SameAsLink.txt").unlink()
    with pytest.raises(DownloadError) as info:
        dl.download_dataset("tiny", root=tmp_path / "data", mirror=str(mirror), progress=False)
    message = str(info.value)
    assert "TGT/TGT_SameAsLink.txt" in message and str(mirror) in message and "--mirror" in message


def test_missing_mirror_folder_and_unknown_dataset(tiny: DatasetCard, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        dl.download_dataset("tiny", root=tmp_path, mirror=str(tmp_path / "nowhere"), progress=False)
    with pytest.raises(MMEAError, match="fb15k-db15k"):
        dl.download_dataset("no-such-benchmark", root=tmp_path, progress=False)


def test_changed_file_is_fetched_again(tiny: DatasetCard, mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    dl.download_dataset("tiny", root=root, mirror=str(mirror), progress=False)
    target = root / "mmkg" / "SRC/SRC_ImageIndex.txt"
    target.write_bytes(b"tampered\n")
    records = by_path(dl.download_dataset("tiny", root=root, mirror=str(mirror), progress=False))
    assert records["SRC/SRC_ImageIndex.txt"].fetched
    assert not records["SRC/SRC_EntityTriples.txt"].fetched
    assert target.read_bytes() == UPSTREAM["SRC/SRC_ImageIndex.txt"]


def test_local_resume_copies_from_the_offset(tmp_path: Path) -> None:
    source = tmp_path / "src.txt"
    source.write_bytes(b"0123456789abcdef")
    dest = tmp_path / "out" / "dst.txt"
    dest.parent.mkdir()
    (dest.parent / "dst.txt.part").write_bytes(b"XXXX")  # stands in for the first 4 bytes
    dl.fetch_file(source, dest, progress=False)
    assert dest.read_bytes() == b"XXXX456789abcdef"
    assert not (dest.parent / "dst.txt.part").exists()


def test_fetch_file_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "src.txt"
    source.write_bytes(b"payload\n")
    dest = tmp_path / "dst.txt"
    with pytest.raises(ChecksumError) as info:
        dl.fetch_file(source, dest, expected_sha256="f" * 64, progress=False)
    assert "f" * 64 in str(info.value) and sha(b"payload\n") in str(info.value)
    assert not dest.exists() and leftovers(tmp_path) == []
    assert dl.fetch_file(source, dest, expected_sha256=sha(b"payload\n"), progress=False) == dest


# --------------------------------------------------------------------------------------------------
# HTTP


def test_http_mirror_fetch(tiny: DatasetCard, server: _Server, tmp_path: Path) -> None:
    root = tmp_path / "data"
    records = by_path(dl.download_dataset("tiny", root=root, mirror=server.base_url, progress=False))
    assert ("/SHA256SUMS", None) in server.log
    assert records["TGT/TGT_SameAsLink.txt"].status == dl.STATUS_SHA256
    assert records["TGT/TGT_SameAsLink.txt"].url == server.base_url + "TGT/TGT_SameAsLink.txt"
    assert records[RECONSTRUCTED[0]].status == dl.STATUS_DIFFERS
    for rel, data in mirror_content().items():
        assert (root / "mmkg" / rel).read_bytes() == data
    server.log.clear()
    again = dl.download_dataset("tiny", root=root, mirror=server.base_url, progress=False)
    assert not any(r.fetched for r in again)
    assert server.log == [("/SHA256SUMS", None)]


def test_http_upstream_with_images(monkeypatch: pytest.MonkeyPatch, server: _Server, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(server.directory / "SRC/SRC_ImageData.h5", "w") as fh:
        fh["SRCIMG00001"] = [0.5, 1.5]
    # "upstream" = the registry URLs; the server's files must then match the upstream git blob ids
    (server.directory / RECONSTRUCTED[0]).write_bytes(UPSTREAM[RECONSTRUCTED[0]])
    monkeypatch.setitem(registry.DATASETS, "tiny", make_card(base_url=server.base_url))
    root = tmp_path / "data"
    records = by_path(dl.download_dataset("tiny", root=root, mirror="", with_images=True, progress=False))
    assert "/SHA256SUMS" not in [p for p, _ in server.log]
    assert records["SRC/SRC_ImageData.h5"].status == dl.STATUS_UNVERIFIED
    assert records["SRC/SRC_ImageData.h5"].fetched
    assert records["TGT/TGT_ImageData.h5"].skipped
    assert records["TGT/TGT_SameAsLink.txt"].status == dl.STATUS_GIT_BLOB
    assert records[RECONSTRUCTED[0]].status == dl.STATUS_GIT_BLOB
    # a second run keeps the unverified file: it matches the manifest
    again = by_path(dl.download_dataset("tiny", root=root, mirror="", with_images=True, progress=False))
    assert not again["SRC/SRC_ImageData.h5"].fetched


def test_http_invalid_hdf5_is_removed(tiny: DatasetCard, server: _Server, tmp_path: Path) -> None:
    (server.directory / "TGT/TGT_ImageData.h5").write_bytes(b"<html>expired link</html>")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="not a readable HDF5 file"):
        dl.download_dataset("tiny", root=root, mirror=server.base_url, with_images=True, progress=False)
    assert not (root / "mmkg" / "TGT/TGT_ImageData.h5").exists()
    assert leftovers(root) == []


def test_http_resume_requests_only_the_remainder(server: _Server, tmp_path: Path) -> None:
    rel = "SRC/SRC_EntityTriples.txt"
    data = UPSTREAM[rel]
    dest = tmp_path / "out.txt"
    (tmp_path / "out.txt.part").write_bytes(data[:10])
    dl.fetch_file(server.base_url + rel, dest, expected_sha256=sha(data), progress=False)
    assert dest.read_bytes() == data
    assert server.requests_for("/" + rel) == ["bytes=10-"]
    assert server.sent == [("/" + rel, len(data) - 10)]
    assert leftovers(tmp_path) == []


def test_http_server_ignoring_range_restarts(server: _Server, tmp_path: Path) -> None:
    server.honor_range = False
    rel = "SRC/SRC_EntityTriples.txt"
    dest = tmp_path / "out.txt"
    (tmp_path / "out.txt.part").write_bytes(b"garbage")
    dl.fetch_file(server.base_url + rel, dest, progress=False)
    assert dest.read_bytes() == UPSTREAM[rel]


def test_http_corrupt_part_is_fetched_again_from_scratch(server: _Server, tmp_path: Path) -> None:
    rel = "SRC/SRC_EntityTriples.txt"
    data = UPSTREAM[rel]
    dest = tmp_path / "out.txt"
    (tmp_path / "out.txt.part").write_bytes(b"X" * 10)
    dl.fetch_file(server.base_url + rel, dest, expected_sha256=sha(data), progress=False)
    assert dest.read_bytes() == data
    assert server.requests_for("/" + rel) == ["bytes=10-", None]


def test_http_complete_part_with_416(server: _Server, tmp_path: Path) -> None:
    rel = "SRC/SRC_EntityTriples.txt"
    dest = tmp_path / "out.txt"
    (tmp_path / "out.txt.part").write_bytes(UPSTREAM[rel])
    dl.fetch_file(server.base_url + rel, dest, progress=False)
    assert dest.read_bytes() == UPSTREAM[rel]


@pytest.mark.parametrize("code", [503, 429])
def test_http_transient_error_is_retried(server: _Server, tmp_path: Path, code: int) -> None:
    rel = "SRC/SRC_ImageIndex.txt"
    server.failures["/" + rel] = [code]
    dest = dl.fetch_file(server.base_url + rel, tmp_path / "x.txt", progress=False)
    assert dest.read_bytes() == UPSTREAM[rel]
    assert len(server.requests_for("/" + rel)) == 2


def test_http_retries_back_off_then_give_up(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rel = "SRC/SRC_ImageIndex.txt"
    server.failures["/" + rel] = [503] * 5
    sleeps: list[float] = []
    monkeypatch.setattr(transfer, "RETRY_BASE_DELAY", 0.01)
    monkeypatch.setattr(transfer.time, "sleep", sleeps.append)
    with pytest.raises(DownloadError, match=r"gave up after 3 attempt\(s\)") as info:
        dl.fetch_file(server.base_url + rel, tmp_path / "x.txt", retries=2, progress=False)
    assert rel in str(info.value) and "503" in str(info.value)
    assert sleeps == [0.01, 0.02]
    assert len(server.requests_for("/" + rel)) == 3
    assert not (tmp_path / "x.txt").exists()


def test_http_truncated_transfer_is_resumed(server: _Server, tmp_path: Path) -> None:
    rel = "TGT/TGT_SameAsLink.txt"
    data = UPSTREAM[rel]
    server.truncate.add("/" + rel)
    dest = dl.fetch_file(server.base_url + rel, tmp_path / "x.txt", expected_sha256=sha(data), progress=False)
    assert dest.read_bytes() == data
    assert server.requests_for("/" + rel) == [None, f"bytes={len(data) // 2}-"]


def test_http_404_is_not_retried(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(dl.RemoteNotFoundError, match="404"):
        dl.fetch_file(server.base_url + "nope.txt", tmp_path / "x.txt", retries=3, progress=False)
    assert len(server.requests_for("/nope.txt")) == 1
    assert not (tmp_path / "x.txt").exists()


def test_http_404_on_required_file_names_it(tiny: DatasetCard, server: _Server, tmp_path: Path) -> None:
    (server.directory / "SRC/SRC_ImageIndex.txt").unlink()
    with pytest.raises(DownloadError) as info:
        dl.download_dataset("tiny", root=tmp_path / "data", mirror=server.base_url, progress=False)
    assert "SRC/SRC_ImageIndex.txt" in str(info.value) and server.base_url in str(info.value)
    assert len(server.requests_for("/SRC/SRC_ImageIndex.txt")) == 1


def test_http_404_on_optional_file_is_skipped(tiny: DatasetCard, server: _Server, tmp_path: Path) -> None:
    (server.directory / NAMES[0]).unlink()
    records = by_path(
        dl.download_dataset("tiny", root=tmp_path / "data", mirror=server.base_url, progress=False)
    )
    assert records[NAMES[0]].skipped


# --------------------------------------------------------------------------------------------------
# CLI


def _cli():
    from mmea_pyg.cli.main import cli

    return cli


def test_cli_unknown_dataset() -> None:
    result = CliRunner().invoke(_cli(), ["download", "fb15k-nope"])
    assert result.exit_code == 1
    assert "fb15k-db15k" in result.output and "fb15k-yago15k" in result.output
    assert "Traceback" not in result.output


def test_cli_download_summary_and_noop(tiny: DatasetCard, mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    args = ["download", "tiny", "--root", str(root), "--mirror", str(mirror), "--retries", "1"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert (
        "TGT/TGT_SameAsLink.txt" in result.output and "fetched: sha256 (mirror SHA256SUMS)" in result.output
    )
    assert "differ from upstream mmkb" in result.output and RECONSTRUCTED[0] in result.output
    assert (root / "mmkg" / "MANIFEST.json").is_file()

    again = CliRunner().invoke(_cli(), args)
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output and "fetched:" not in again.output

    quiet = CliRunner().invoke(_cli(), [*args, "--quiet"])
    assert quiet.exit_code == 0
    assert "TGT/TGT_SameAsLink.txt" not in quiet.output  # no table, only the warning
    assert RECONSTRUCTED[0] in quiet.output


def test_cli_missing_required_file(tiny: DatasetCard, mirror: Path, tmp_path: Path) -> None:
    (mirror / "TGT/TGT_EntityTriples.txt").unlink()
    result = CliRunner().invoke(
        _cli(), ["download", "tiny", "--root", str(tmp_path), "--mirror", str(mirror), "-q"]
    )
    assert result.exit_code == 1
    assert "TGT/TGT_EntityTriples.txt" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------------------------------
# the download lock, across processes

#: Takes the download lock, downloads under it (the nested lock of download_dataset does not wait on
#: itself), says "locked", then holds the lock until a line arrives on stdin; prints the time just before
#: the release.
_HOLDER = """
import sys, time
from mmea_pyg.data.download import download_dataset, download_lock
from mmea_pyg.data.files import raw_dir
root, mirror = sys.argv[1], sys.argv[2]
with download_lock(raw_dir(root)):
    download_dataset("fb15k-db15k", root=root, mirror=mirror, progress=False)
    print("locked", flush=True)
    sys.stdin.readline()
    print(f"releasing {time.time()!r}", flush=True)
"""


def _mmea(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mmea_pyg.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _read_lines(stream, lines: list[str], seen: threading.Event, needle: str) -> None:
    for line in stream:
        lines.append(line)
        if needle in line:
            seen.set()


def _assert_root_complete(root: Path, mirror: Path, kgs: set[str]) -> None:
    """Every mirror file of the KGs ``kgs`` is in place and recorded with its SHA-256; nothing temporary."""
    raw = root / "mmkg"
    entries = manifest(root)
    sums = data_files.parse_sha256sums((mirror / "SHA256SUMS").read_text())
    assert set(entries) == {rel for rel in sums if rel.split("/")[0] in kgs}
    for rel, entry in entries.items():
        assert (raw / rel).read_bytes() == (mirror / rel).read_bytes()
        assert entry["sha256"] == sums[rel] == data_files.sha256sum(raw / rel)
    assert [p for p in root.rglob("*") if p.name.endswith((".part", ".tmp"))] == []


def test_second_download_waits_for_the_lock(tmp_path: Path, fixture_mirror: Path) -> None:
    root = tmp_path / "data"
    raw, lock = root / "mmkg", root / "mmkg" / dl.LOCK_NAME
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), str(fixture_mirror)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    second = None
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        second = _mmea("download", "fb15k-db15k", "--root", str(root), "--mirror", str(fixture_mirror))
        errors: list[str] = []
        waiting = threading.Event()
        needle = f"waiting for another download into {raw} (lock {lock})"
        reader = threading.Thread(target=_read_lines, args=(second.stderr, errors, waiting, needle))
        reader.start()
        assert waiting.wait(120), "".join(errors)
        time.sleep(0.5)
        assert second.poll() is None  # blocked on the lock
        holder.stdin.write("release\n")
        holder.stdin.flush()
        released = float(holder.stdout.readline().split()[1])
        output = second.stdout.read()
        assert second.wait(120) == 0, "".join(errors)
        finished = time.time()
        reader.join(10)
        holder_status = holder.wait(120)  # it exits once its interpreter has shut down (slow when busy)
    finally:
        for process in (holder, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert holder_status == 0, holder.stderr.read()
    assert finished > released
    assert sum(needle in line for line in errors) == 1
    assert "(0 fetched)" in output and "fetched:" not in output  # everything was verified, up to date
    _assert_root_complete(root, fixture_mirror, {"FB15K", "DB15K"})


def test_concurrent_downloads_both_succeed(tmp_path: Path, fixture_mirror: Path) -> None:
    root = tmp_path / "data"
    args = ("download", "fb15k-db15k", "fb15k-yago15k", "--root", str(root), "--mirror", str(fixture_mirror))
    processes = [_mmea(*args) for _ in range(2)]
    try:
        results = [process.communicate(timeout=180) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0, 0], results
    fetched = sorted(int(re.search(r"\((\d+) fetched\)", out).group(1)) for out, _ in results)
    entries = manifest(root)
    assert fetched == [0, len(entries)]  # one process fetched everything, the other waited and verified
    _assert_root_complete(root, fixture_mirror, {"FB15K", "DB15K", "YAGO15K"})


def test_nested_lock_in_one_thread_and_a_waiting_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "mmkg"
    order: list[str] = []
    with dl.download_lock(raw) as lock:
        with dl.download_lock(raw):  # the same thread: no deadlock
            order.append("nested")
        worker = threading.Thread(target=_lock_and_record, args=(raw, order))
        worker.start()
        time.sleep(0.3)
        assert order == ["nested"]  # the other thread waits
        order.append("released")
    worker.join(10)
    assert order == ["nested", "released", "other"]
    assert lock == raw / dl.LOCK_NAME and lock.is_file()
    assert f"waiting for another download into {raw} (lock {lock})" in capsys.readouterr().err
    dl.wait_for_downloads(raw)  # nobody holds it: returns at once
    dl.wait_for_downloads(tmp_path / "never-downloaded")  # no lock file: nothing to wait for, nothing created
    assert not (tmp_path / "never-downloaded").exists()


def _lock_and_record(raw: Path, order: list[str]) -> None:
    with dl.download_lock(raw):
        order.append("other")


# --------------------------------------------------------------------------------------------------
# real mirror


@pytest.mark.integration
def test_real_mirror_fb15k_db15k(tmp_path: Path) -> None:
    source = _ENV_MIRROR or str(Path(__file__).resolve().parents[3] / "shared" / "mmkg")
    if "://" not in source and not Path(source).is_dir():
        pytest.skip(f"no MMKG mirror at {source} (set MMEA_MIRROR)")
    records = by_path(dl.download_dataset("fb15k-db15k", root=tmp_path, mirror=source, progress=False))
    entries = manifest(tmp_path)
    numeric, links = "DB15K/DB15K_NumericalTriples.txt", "DB15K/DB15K_SameAsLink.txt"
    assert entries[numeric]["status"] == dl.STATUS_DIFFERS and entries[numeric]["upstream"] == "differs"
    assert records[numeric].differs_from_upstream
    assert entries[links]["upstream"] == "identical"
    assert entries[links]["git_blob"] == registry.DB15K.same_as.git_blob
    assert not any(r.skipped for r in records.values() if not r.path.endswith("_mid2name.txt"))
