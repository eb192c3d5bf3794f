"""Fetch and verify the raw files of a registered benchmark (MMKG, and the entity-alignment benchmarks).

Files come from upstream (:attr:`RemoteFile.upstream_url <mmea_pyg.data.registry.RemoteFile.upstream_url>`,
the pinned ``mniepert/mmkb`` commit and the Dropbox links of the image features) or from a *mirror*
with the upstream layout: a local folder, a ``file://`` URL or an ``http(s)://`` base URL. Every file
lands under ``<root>/mmkg/<relative path>`` and is recorded in ``<root>/mmkg/MANIFEST.json``.

Verification, per file:

* If the mirror ships a ``SHA256SUMS`` file (``sha256sum`` format, paths relative to the mirror root)
  with an entry for the file, that entry governs; a mismatch is a :class:`~mmea_pyg.errors.ChecksumError`.
  When the file's git blob id then differs from the registry's upstream id, the file is reported as
  *differs from upstream* (a reconstruction shipped by the mirror), a warning, not an error.
* Otherwise the registry's upstream git blob id governs (mismatch: ``ChecksumError``).
* Files with neither are recorded as *unverified*; ``.h5`` files must also open with h5py.

Transfers go to ``<dest>.part`` (resumed when a previous run was interrupted), are verified, then
moved into place with :func:`os.replace`, so a final path never holds a half-written file. Transient
failures (connection errors, timeouts, HTTP 5xx/429) are retried with exponential backoff; 404 is not.
The manifest is written with :func:`mmea_pyg.io.atomic_write_json`.

**Entity-alignment benchmarks** (:data:`~mmea_pyg.data.registry.EA_DATASETS`: DBP15K, SRPRS, OpenEA
D_Y_15K_V1) use the same machinery with their own folder and mirror: files land under
``<root>/ea/<name>/`` (manifest ``<root>/ea/MANIFEST.json``, lock ``<root>/ea/.download.lock``), come
from the pinned GitHub commit of their card or from a mirror in the layout
``<layout>/<MIRROR_DIR>/<file>`` (:class:`~mmea_pyg.data.registry.EACard`), which is ``--mirror`` when
given, else ``$MMEA_EA_MIRROR`` (``$MMEA_MIRROR`` is the MMKG mirror and is not used for them).

Downloads into one data root are serialised by an exclusive lock on ``<root>/mmkg/.download.lock``
(:func:`download_lock`, ``fcntl.flock``): a second ``mmea download`` (or dataset build) into the same
root says on stderr that it waits, waits for the first to finish, then finds the files verified and
fetches nothing, so two processes never share a ``.part`` file. Where ``fcntl`` does not exist
(Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from http.client import HTTPException
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from mmea_pyg import __version__
from mmea_pyg.data import registry
from mmea_pyg.data.registry import RemoteFile
from mmea_pyg.errors import ChecksumError, ConfigError, DownloadError
from mmea_pyg.io import atomic_write_json

try:  # Linux, macOS; Windows has no fcntl and downloads are not locked there
    import fcntl
except ImportError:  # pragma: no cover - not on the supported platforms
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Sub-directory of the data root that holds the MMKG files (upstream layout below it).
RAW_DIRNAME = "mmkg"
#: Sub-directory of the data root that holds the entity-alignment benchmarks (``<name>/`` below it).
EA_DIRNAME = "ea"
#: Name of the manifest written under ``<root>/mmkg``.
MANIFEST_NAME = "MANIFEST.json"
#: Version of the manifest format.
MANIFEST_VERSION = 1
#: Lock file under ``<root>/mmkg`` held (exclusively) while files are fetched, verified and recorded.
LOCK_NAME = ".download.lock"
#: Checksum file a mirror may ship at its root.
SUMS_NAME = "SHA256SUMS"
#: Seconds before the first retry; doubled on every further retry (tests set it to 0).
RETRY_BASE_DELAY = 1.0
#: Socket timeout of one HTTP request, in seconds.
TIMEOUT = 60.0
#: Read/write block size.
CHUNK_SIZE = 1 << 20

#: Status: the mirror's SHA256SUMS entry matched (and the file is the upstream one or no id is known).
STATUS_SHA256 = "sha256 (mirror SHA256SUMS)"
#: Status: the registry's upstream git blob id matched.
STATUS_GIT_BLOB = "git blob (upstream id)"
#: Status: the mirror's SHA256SUMS entry matched, but the content is not the upstream file.
STATUS_DIFFERS = "differs from upstream"
#: Status: no checksum known for the file.
STATUS_UNVERIFIED = "unverified"
#: Status of an optional file that the source does not have.
STATUS_SKIPPED = "skipped"

_USER_AGENT = f"mmea-pyg/{__version__} (+https://github.com/mmea-pyg/mmea-pyg)"


class RemoteNotFoundError(DownloadError):
    """The source has no such file (HTTP 404/410 or a missing file in a local mirror)."""


class _TransientError(Exception):
    """A failure worth retrying (connection error, timeout, HTTP 5xx/429, truncated body)."""


class _RangeNotSatisfiable(Exception):
    """HTTP 416 to a ``Range`` request; ``total`` is the resource size when the server says it."""

    def __init__(self, total: int | None) -> None:
        super().__init__(f"range not satisfiable (size {total})")
        self.total = total


@dataclass
class FileRecord:
    """The outcome for one file of a benchmark.

    Attributes:
        path: Path relative to the raw directory (and to the mirror/upstream root).
        url: Where the file came from (a ``file://`` URL for local mirrors); the would-be source of a
            skipped file.
        size: Size in bytes (``None`` when skipped).
        sha256: SHA-256 hex digest (``None`` when skipped).
        git_blob: Git blob id of the content (``None`` when skipped).
        status: One of the ``STATUS_*`` constants.
        fetched: Whether the file was transferred by this call (``False``: already present and verified).
        skipped: Whether the file is optional and the source does not have it.
        upstream: ``"identical"``, ``"differs"`` or ``"unknown"`` (no upstream id in the registry).
        upstream_git_blob: The registry's git blob id, where known.
        note: A human-readable remark (why it was skipped, how it differs), or ``None``.
        local_path: Absolute path of the file on disk (``None`` when skipped).
    """

    path: str
    url: str | None
    size: int | None = None
    sha256: str | None = None
    git_blob: str | None = None
    status: str = STATUS_UNVERIFIED
    fetched: bool = False
    skipped: bool = False
    upstream: str = "unknown"
    upstream_git_blob: str | None = None
    note: str | None = None
    local_path: Path | None = None

    @property
    def differs_from_upstream(self) -> bool:
        """Whether the content is known to differ from the upstream mmkb file."""
        return self.upstream == "differs"


@dataclass(frozen=True)
class _Digest:
    size: int
    sha256: str
    git_blob: str


# --------------------------------------------------------------------------------------------------
# defaults and checksums


def default_root() -> Path:
    """The data root: ``$MMEA_DATA`` if set and non-empty, else ``./datasets``."""
    return Path(os.environ.get("MMEA_DATA") or "datasets")


def default_mirror() -> str | None:
    """The mirror: ``$MMEA_MIRROR`` if set and non-empty, else ``None`` (upstream)."""
    return os.environ.get("MMEA_MIRROR") or None


def raw_dir(root: str | Path | None = None) -> Path:
    """The directory the MMKG files land in: ``<root>/mmkg``."""
    return Path(default_root() if root is None else root) / RAW_DIRNAME


def default_ea_mirror() -> str | None:
    """The mirror of the entity-alignment files: ``$MMEA_EA_MIRROR`` if set and non-empty, else ``None``."""
    return os.environ.get(registry.EA_MIRROR_ENV) or None


def ea_dir(root: str | Path | None = None) -> Path:
    """The directory the entity-alignment benchmarks land in: ``<root>/ea`` (one ``<name>/`` each)."""
    return Path(default_root() if root is None else root) / EA_DIRNAME


def ea_folder(name: str, root: str | Path | None = None) -> Path:
    """The folder of registered entity-alignment benchmark ``name``: ``<root>/ea/<name>``."""
    return ea_dir(root) / registry.get_ea_card(name).name


def _digest(path: Path) -> _Digest:
    """Size, SHA-256 and git blob id of ``path`` in one pass."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return _Digest(size, sha256.hexdigest(), blob.hexdigest())


def sha256sum(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    return _digest(Path(path)).sha256


def git_blob_sha1(path: str | Path) -> str:
    """Git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` followed by the content."""
    return _digest(Path(path)).git_blob


def parse_sha256sums(text: str, source: str = SUMS_NAME) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <path>`` or ``<hex> *<path>`` lines).

    Args:
        text: The file content.
        source: Where it came from, for error messages.

    Returns:
        Relative path -> lower-case hex digest.

    Raises:
        DownloadError: A line is not in ``sha256sum`` format.
    """
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        if len(digest) != 64 or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise DownloadError(
                f"{source}, line {number}: not in sha256sum format ('<64 hex digits>  <path>'): {line!r}; "
                "fix or remove the mirror's SHA256SUMS file"
            )
        sums[name.removeprefix("./")] = digest.lower()
    return sums


# --------------------------------------------------------------------------------------------------
# sources


def _is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme.lower() in ("http", "https", "file")


def _local_path(url_or_path: str | Path) -> Path | None:
    """The local path of a plain path or ``file://`` URL; ``None`` for http(s)."""
    if isinstance(url_or_path, Path):
        return url_or_path
    parts = urllib.parse.urlsplit(url_or_path)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if scheme in ("http", "https"):
        return None
    return Path(url_or_path)


def _display_url(url_or_path: str | Path) -> str:
    local = _local_path(url_or_path)
    return str(url_or_path) if local is None else local.resolve().as_uri()


class _Mirror:
    """A base location with the upstream layout (local folder or http(s) base URL)."""

    def __init__(self, spec: str, kind: str = "mmkg") -> None:
        self.spec = spec
        self.local = _local_path(spec)
        if self.local is not None:
            if not self.local.is_dir():
                if kind == "ea":
                    raise DownloadError(
                        f"mirror folder {self.local} does not exist (from --mirror/{registry.EA_MIRROR_ENV} "
                        f"{spec!r}); pass the folder that holds jape/ and openea/, or pass --mirror '' (or "
                        f"unset {registry.EA_MIRROR_ENV}) to download from upstream"
                    )
                raise DownloadError(
                    f"mirror folder {self.local} does not exist (from --mirror/MMEA_MIRROR {spec!r}); "
                    "pass the folder that holds FB15K/, DB15K/ and YAGO15K/, or pass --mirror '' "
                    "(or unset MMEA_MIRROR) to download from upstream"
                )
            self.base = self.local.resolve().as_uri() + "/"
        else:
            self.base = spec if spec.endswith("/") else spec + "/"

    def url(self, relative: str) -> str:
        """Source of ``relative`` in this mirror (a local path or an http(s) URL)."""
        if self.local is not None:
            return str(self.local / relative)
        return self.base + urllib.parse.quote(relative)

    def load_sums(self, retries: int) -> dict[str, str]:
        """The mirror's SHA256SUMS entries (empty when it ships none)."""
        source = self.url(SUMS_NAME)
        try:
            if self.local is not None:
                text = Path(source).read_text(encoding="utf-8")
            else:
                text = _with_retries(source, retries, lambda: _read_url(source)).decode("utf-8")
        except (FileNotFoundError, RemoteNotFoundError):
            logger.info(
                "mirror %s ships no %s; verifying against the registry's git blob ids", self.spec, SUMS_NAME
            )
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise DownloadError(f"cannot read {source}: {exc}; check the mirror") from exc
        return parse_sha256sums(text, _display_url(source))


# --------------------------------------------------------------------------------------------------
# transfers


def _request(url: str, offset: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _open(request: urllib.request.Request) -> http.client.HTTPResponse:
    """``urlopen`` with errors sorted into not-found, transient (retried) and fatal."""
    url = request.full_url
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and request.has_header("Range"):
            raise _RangeNotSatisfiable(_content_range(exc.headers.get("Content-Range"))[1]) from exc
        if exc.code in (404, 410):
            raise RemoteNotFoundError(f"{url}: not found (HTTP {exc.code})") from exc
        if exc.code == 429 or exc.code >= 500:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL or mirror") from exc
    except (urllib.error.URLError, HTTPException, OSError) as exc:
        raise _TransientError(str(getattr(exc, "reason", exc)) or type(exc).__name__) from exc


def _read_url(url: str) -> bytes:
    """The whole body of a small resource."""
    with _open(_request(url)) as response:
        try:
            return response.read()
        except (HTTPException, OSError) as exc:
            raise _TransientError(str(exc) or type(exc).__name__) from exc


def _with_retries(url: str, retries: int, attempt: Callable[[], _T]) -> _T:
    """Call ``attempt()`` until it succeeds, retrying :class:`_TransientError` with backoff.

    Raises:
        DownloadError: Still failing after ``retries`` retries.
    """
    retries = max(0, int(retries))
    for number in range(retries + 1):
        try:
            return attempt()
        except _TransientError as exc:
            if number == retries:
                raise DownloadError(
                    f"{url}: {exc} (gave up after {retries + 1} attempt(s)); check the network or the "
                    "mirror and run again (a partial download is resumed), or raise --retries"
                ) from exc
            wait = RETRY_BASE_DELAY * 2**number
            logger.info("%s: %s; retrying in %.1f s (%d/%d)", url, exc, wait, number + 1, retries)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _progress_bar(name: str, total: int | None, initial: int, progress: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not progress,
        leave=False,
    )


def _copy_stream(source, target, bar: tqdm) -> int:
    copied = 0
    for chunk in iter(lambda: source.read(CHUNK_SIZE), b""):
        target.write(chunk)
        copied += len(chunk)
        bar.update(len(chunk))
    return copied


def _transfer_local(source: Path, part: Path, progress: bool) -> None:
    """Copy ``source`` into ``part``, continuing from the bytes ``part`` already holds."""
    try:
        total = source.stat().st_size
    except FileNotFoundError as exc:
        raise RemoteNotFoundError(f"{source}: no such file") from exc
    offset = part.stat().st_size if part.exists() else 0
    if offset > total:
        offset = 0
    mode = "ab" if offset else "wb"
    try:
        with source.open("rb") as src, part.open(mode) as dst:
            src.seek(offset)
            with _progress_bar(part.name.removesuffix(".part"), total, offset, progress) as bar:
                _copy_stream(src, dst, bar)
    except OSError as exc:
        raise DownloadError(f"cannot copy {source} to {part}: {exc}") from exc


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a ``Content-Range: bytes a-b/T`` (or ``bytes */T``) header."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[6:].partition("/")
    start = span.partition("-")[0]
    return (int(start) if start.isdigit() else None), (int(total) if total.isdigit() else None)


def _attempt_http(url: str, part: Path, progress: bool) -> None:
    """One HTTP attempt: request the bytes ``part`` lacks (or everything) and append them."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(_request(url, offset))
    except _RangeNotSatisfiable as exc:
        if exc.total == offset:  # the .part file is already complete
            return
        _remove(part)  # longer than the resource: start again
        response = _open(_request(url))
        offset = 0
    with response:
        start, _ = _content_range(response.headers.get("Content-Range"))
        if response.status == 206 and start != offset:
            _remove(part)
            raise _TransientError(f"server sent bytes from {start} instead of {offset}; starting again")
        if response.status == 206:
            mode = "ab"
        else:  # the server ignored the Range header: start again from byte 0
            mode, offset = "wb", 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = None if expected is None else offset + expected
        try:
            with (
                part.open(mode) as target,
                _progress_bar(part.name.removesuffix(".part"), total, offset, progress) as bar,
            ):
                received = _copy_stream(response, target, bar)
        except (HTTPException, ConnectionError, TimeoutError) as exc:
            raise _TransientError(f"transfer interrupted: {exc or type(exc).__name__}") from exc
        except OSError as exc:
            raise DownloadError(f"cannot fetch {url} into {part}: {exc}") from exc
    if expected is not None and received != expected:
        raise _TransientError(f"connection closed after {received} of {expected} bytes")


def _transfer(source: str | Path, part: Path, retries: int, progress: bool) -> int:
    """Fetch ``source`` into ``part`` (resuming it); return the size ``part`` had before.

    Raises:
        RemoteNotFoundError: The source does not exist.
        DownloadError: Any other failure (after the retries for transient ones).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    resumed_from = part.stat().st_size if part.exists() else 0
    local = _local_path(source)
    if local is not None:
        _transfer_local(local, part, progress)
    else:
        _with_retries(str(source), retries, lambda: _attempt_http(str(source), part, progress))
    return resumed_from


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def fetch_file(
    url_or_path: str | Path,
    dest: str | Path,
    *,
    expected_sha256: str | None = None,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download (or copy) one file atomically.

    The content goes to ``<dest>.part`` first (an existing ``.part`` is resumed: HTTP ``Range`` or a
    copy from that offset), is checked against ``expected_sha256`` when given, and is then moved to
    ``dest`` with :func:`os.replace`. When ``dest`` already exists with the expected SHA-256 nothing
    is fetched.

    Args:
        url_or_path: An ``http(s)://`` or ``file://`` URL, or a local path.
        dest: Final path of the file.
        expected_sha256: Hex SHA-256 the content must have, or ``None`` for no check.
        retries: Retries of transient failures (connection errors, timeouts, HTTP 5xx/429).
        progress: Show a tqdm progress bar.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        RemoteNotFoundError: The source does not exist (never retried).
        ChecksumError: The content does not match ``expected_sha256`` (the partial file is removed).
        DownloadError: Any other failure.
    """
    dest = Path(dest)
    expected = expected_sha256.lower() if expected_sha256 else None
    if expected and dest.is_file() and sha256sum(dest) == expected:
        return dest
    part = _part_path(dest)
    resumed_from = _transfer(url_or_path, part, retries, progress)
    actual = sha256sum(part)
    if expected and actual != expected and resumed_from:
        logger.info("%s: resumed download failed verification; fetching it again from the start", dest.name)
        _remove(part)
        _transfer(url_or_path, part, retries, progress)
        actual = sha256sum(part)
    if expected and actual != expected:
        _remove(part)
        raise ChecksumError(
            f"{dest}: sha256 mismatch for {_display_url(url_or_path)}: expected {expected}, got {actual}; "
            "the download was removed; run again, or check the source"
        )
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------------
# verification


def _check(digest: _Digest, rf: RemoteFile, sums: dict[str, str]) -> tuple[str, str, str | None]:
    """Verify a digest against the governing checksum.

    Returns:
        ``(status, upstream, problem)``: ``upstream`` is ``"identical"``, ``"differs"`` or
        ``"unknown"``; ``problem`` describes a mismatch of the governing checksum (``None`` if fine).
    """
    if rf.git_blob is None:
        upstream = "unknown"
    else:
        upstream = "identical" if digest.git_blob == rf.git_blob else "differs"
    expected_sha = sums.get(rf.mirror_relative)
    if expected_sha is not None:
        if digest.sha256 != expected_sha:
            return (
                STATUS_SHA256,
                upstream,
                f"sha256 mismatch: expected {expected_sha} (mirror {SUMS_NAME}), got {digest.sha256}",
            )
        return (STATUS_DIFFERS if upstream == "differs" else STATUS_SHA256), upstream, None
    if rf.git_blob is not None:
        if upstream == "differs":
            return (
                STATUS_GIT_BLOB,
                upstream,
                (f"git blob mismatch: expected upstream id {rf.git_blob}, got {digest.git_blob}"),
            )
        return STATUS_GIT_BLOB, upstream, None
    return STATUS_UNVERIFIED, upstream, None


def _check_hdf5(path: Path, final_name: str, url: str) -> None:
    """Make sure an ``.h5`` download opens with h5py (a Dropbox error page does not)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        logger.warning("%s: h5py is not installed; the HDF5 file was not checked", final_name)
        return
    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        _remove(path)
        raise DownloadError(
            f"{final_name}: the file from {url} is not a readable HDF5 file ({exc}); it was removed. "
            "The link may have expired or returned an HTML page: download it by hand into "
            f"{path.parent} or use a mirror that has it"
        ) from exc


# --------------------------------------------------------------------------------------------------
# manifest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(root: str | Path | None = None, dirname: str = RAW_DIRNAME) -> dict[str, dict]:
    """The manifest entries under ``<root>/<dirname>`` (``mmkg`` or ``ea``), keyed by relative path (empty
    if none/unreadable)."""
    path = Path(default_root() if root is None else root) / dirname / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {entry["path"]: entry for entry in data["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s is unreadable (%s); files will be verified again", path, exc)
        return {}


def _write_manifest(directory: Path, entries: dict[str, dict]) -> None:
    """Write the manifest atomically (:func:`mmea_pyg.io.atomic_write_json`)."""
    data = {
        "version": MANIFEST_VERSION,
        "updated": _now(),
        "files": [entries[key] for key in sorted(entries)],
    }
    atomic_write_json(directory / MANIFEST_NAME, data)


# --------------------------------------------------------------------------------------------------
# lock

#: Lock files this thread holds (a nested :func:`download_lock` on the same folder does not wait on itself).
_held = threading.local()


def _flock_or_wait(handle, mode: int, directory: str | Path, lock: Path, strict: bool) -> bool:
    """``flock`` ``handle`` in ``mode`` (``LOCK_EX`` / ``LOCK_SH``): at once when it is free, else after
    one ``waiting for another download ...`` line on stderr. When the first, non-blocking try fails for
    another reason, raise (``strict``) or return :obj:`False` without locking."""
    try:
        fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            if strict:
                raise
            return False
        print(f"waiting for another download into {directory} (lock {lock})", file=sys.stderr, flush=True)
        fcntl.flock(handle.fileno(), mode)
    return True


@contextlib.contextmanager
def download_lock(directory: str | Path) -> Iterator[Path]:
    """Hold the exclusive download lock of a raw directory (``<directory>/.download.lock``).

    The lock is tried without waiting first; when another process (or thread) holds it, one line
    ``waiting for another download into <directory> (lock <file>)`` goes to stderr and the call waits
    until it is released. The lock is released when the block ends, also when the process dies (the
    operating system drops ``flock`` locks with the file descriptor); the lock file itself stays. A
    nested call in the same thread for the same folder does not lock again. Without ``fcntl``
    (Windows) nothing is locked.

    Args:
        directory: The raw directory, ``<root>/mmkg``; created if needed.

    Yields:
        The lock file's path.
    """
    directory = Path(directory)
    path = directory / LOCK_NAME
    key = str(path.resolve())
    held: set[str] = getattr(_held, "paths", None) or set()
    _held.paths = held
    if fcntl is None or key in held:
        yield path
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+b")  # append mode: never truncates, creates the file when missing
    except OSError as exc:
        raise DownloadError(
            f"cannot create the download lock {path} ({exc.strerror or exc}); make {directory} writable "
            "or pass another --root"
        ) from None
    with handle:
        _flock_or_wait(handle, fcntl.LOCK_EX, directory, path, strict=True)
        held.add(key)
        try:
            yield path
        finally:
            held.discard(key)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _manifest_entry(record: FileRecord) -> dict:
    entry = asdict(record)
    for key in ("fetched", "skipped", "local_path", "note"):
        entry.pop(key)
    entry["time"] = _now()
    return entry


def wait_for_downloads(directory: str | Path) -> None:
    """Wait until no download into ``directory`` (``<root>/mmkg``) runs, without blocking others.

    Takes and drops a shared lock on the download lock file: instant when no download holds it, else one
    ``waiting for another download ...`` line on stderr and a wait. Creates nothing; a missing lock file
    (nothing was ever downloaded here), a lock file that cannot be opened (a read-only root) or a
    platform without ``fcntl`` mean no wait.
    """
    path = Path(directory) / LOCK_NAME
    if fcntl is None or str(path.resolve()) in (getattr(_held, "paths", None) or set()):
        return
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        if _flock_or_wait(handle, fcntl.LOCK_SH, directory, path, strict=False):
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------------
# benchmark downloads


@dataclass
class _Context:
    directory: Path
    mirror: _Mirror | None
    sums: dict[str, str]
    manifest: dict[str, dict]
    retries: int
    progress: bool
    #: What "upstream" is: ``"mmkb"`` or ``"GitHub"`` (the EA cards' pinned repositories).
    upstream: str = "mmkb"
    #: The environment variable of the default mirror, for messages.
    mirror_env: str = "MMEA_MIRROR"

    def source(self, rf: RemoteFile) -> str:
        return rf.upstream_url if self.mirror is None else self.mirror.url(rf.mirror_relative)

    @property
    def where(self) -> str:
        return f"upstream {self.upstream}" if self.mirror is None else f"mirror {self.mirror.spec}"


def _record(
    rf: RemoteFile,
    url: str,
    digest: _Digest,
    status: str,
    upstream: str,
    dest: Path,
    fetched: bool,
    upstream_name: str = "mmkb",
) -> FileRecord:
    note = None
    if upstream == "differs":
        note = (
            f"differs from upstream {upstream_name} (reconstructed in this mirror): git blob {digest.git_blob}, "
            f"upstream {rf.git_blob}"
        )
    return FileRecord(
        path=rf.path,
        url=_display_url(url),
        size=digest.size,
        sha256=digest.sha256,
        git_blob=digest.git_blob,
        status=status,
        fetched=fetched,
        upstream=upstream,
        upstream_git_blob=rf.git_blob,
        note=note,
        local_path=dest.resolve(),
    )


def _existing(rf: RemoteFile, dest: Path, ctx: _Context) -> FileRecord | None:
    """The record of an already present, still valid file; ``None`` if it must be fetched."""
    if not dest.is_file():
        return None
    digest = _digest(dest)
    entry = ctx.manifest.get(rf.path)
    in_manifest = bool(entry) and entry.get("size") == digest.size and entry.get("sha256") == digest.sha256
    status, upstream, problem = _check(digest, rf, ctx.sums)
    if problem is not None:
        logger.info("%s: present but %s; fetching it again", rf.path, problem)
        return None
    if not in_manifest and status == STATUS_UNVERIFIED:
        logger.info(
            "%s: present but not in the manifest and no checksum is known; fetching it again", rf.path
        )
        return None
    url = entry["url"] if in_manifest and entry.get("url") else ctx.source(rf)
    record = _record(rf, url, digest, status, upstream, dest, fetched=False, upstream_name=ctx.upstream)
    _remove(_part_path(dest))  # a stale partial download of a file that is complete
    logger.info("%s: verified, up to date (%s)", rf.path, status)
    return record


def _fetch_verified(rf: RemoteFile, dest: Path, ctx: _Context) -> FileRecord | None:
    """Fetch ``rf`` into ``dest`` via ``.part`` and verify it; ``None`` if an optional file is absent."""
    url = ctx.source(rf)
    part = _part_path(dest)
    logger.info("%s: fetching from %s", rf.path, _display_url(url))
    try:
        resumed_from = _transfer(url, part, ctx.retries, ctx.progress)
    except RemoteNotFoundError as exc:
        if rf.optional:
            logger.info("%s: skipped (optional, not in %s)", rf.path, ctx.where)
            return None
        raise _missing_required(rf, url, ctx) from exc
    digest = _digest(part)
    status, upstream, problem = _check(digest, rf, ctx.sums)
    if problem is not None and resumed_from:
        logger.info("%s: resumed download failed verification; fetching it again from the start", rf.path)
        _remove(part)
        _transfer(url, part, ctx.retries, ctx.progress)
        digest = _digest(part)
        status, upstream, problem = _check(digest, rf, ctx.sums)
    if problem is not None:
        _remove(part)
        raise ChecksumError(
            f"{rf.path} from {_display_url(url)}: {problem}; the download was removed. Run again; if it "
            f"persists the {ctx.where} holds a different file (use another mirror or upstream)"
        )
    if dest.suffix == ".h5":
        _check_hdf5(part, rf.path, _display_url(url))
    os.replace(part, dest)
    return _record(rf, url, digest, status, upstream, dest, fetched=True, upstream_name=ctx.upstream)


def _missing_required(rf: RemoteFile, url: str, ctx: _Context) -> DownloadError:
    if ctx.mirror is None:
        fix = f"the upstream repository may have moved; pass --mirror (or set {ctx.mirror_env}) to a mirror that has it"
    else:
        fix = (
            f"complete the mirror (it must hold {rf.mirror_relative}), point --mirror/{ctx.mirror_env} to another mirror, "
            "or pass --mirror '' to download from upstream"
        )
    return DownloadError(f"required file {rf.path} is missing from {ctx.where} ({_display_url(url)}); {fix}")


def _ensure(rf: RemoteFile, ctx: _Context) -> FileRecord:
    """Make one file present and verified; update the manifest."""
    dest = ctx.directory / rf.path
    record = _existing(rf, dest, ctx)
    if record is None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        record = _fetch_verified(rf, dest, ctx)
    if record is None:
        return FileRecord(
            path=rf.path,
            url=_display_url(ctx.source(rf)),
            status=STATUS_SKIPPED,
            skipped=True,
            upstream_git_blob=rf.git_blob,
            note=f"optional file not in {ctx.where}",
        )
    if record.note:
        logger.warning("%s: %s", rf.path, record.note)
    old = ctx.manifest.get(rf.path)
    comparable = ("url", "size", "sha256", "git_blob", "status", "upstream", "upstream_git_blob")
    if record.fetched or old is None or any(old.get(k) != getattr(record, k) for k in comparable):
        ctx.manifest[rf.path] = _manifest_entry(record)
        _write_manifest(ctx.directory, ctx.manifest)
    return record


def _unique(files: Iterable[RemoteFile]) -> list[RemoteFile]:
    seen: dict[str, RemoteFile] = {}
    for rf in files:
        seen.setdefault(rf.path, rf)
    return list(seen.values())


def _card(name: str) -> registry.DatasetCard | registry.EACard:
    key = name.strip().lower()
    if key in registry.DATASETS:
        return registry.DATASETS[key]
    if key in registry.EA_DATASETS:
        return registry.EA_DATASETS[key]
    raise ConfigError(
        f"unknown dataset {name!r}; known datasets: {', '.join(registry.registered_names())}; "
        "e.g. `mmea download fb15k-db15k`"
    )


def _download_group(
    files: list[RemoteFile],
    directory: Path,
    spec: str | None,
    kind: str,
    retries: int,
    progress: bool,
) -> list[FileRecord]:
    """Fetch and verify ``files`` into ``directory`` under its download lock."""
    source = _Mirror(spec, kind) if spec else None
    # The manifest is read under the lock, so that what another process recorded meanwhile counts.
    with download_lock(directory):
        ctx = _Context(
            directory=directory,
            mirror=source,
            sums={} if source is None else source.load_sums(retries),
            manifest=read_manifest(directory.parent, directory.name),
            retries=retries,
            progress=progress,
            upstream="mmkb" if kind == "mmkg" else "GitHub",
            mirror_env="MMEA_MIRROR" if kind == "mmkg" else registry.EA_MIRROR_ENV,
        )
        return [_ensure(rf, ctx) for rf in files]


def download_datasets(
    names: Iterable[str],
    root: str | Path | None = None,
    mirror: str | None = None,
    with_images: bool = False,
    retries: int = 3,
    progress: bool = True,
) -> list[FileRecord]:
    """Fetch and verify the files of several benchmarks; shared files (FB15K) are handled once.

    MMKG files go to ``<root>/mmkg`` (default mirror ``$MMEA_MIRROR``), entity-alignment benchmarks to
    ``<root>/ea/<name>`` (default mirror ``$MMEA_EA_MIRROR``); an explicit ``mirror`` is used for both.
    Each group runs under its own :func:`download_lock`. See :func:`download_dataset` for the arguments.

    Returns:
        The MMKG records first (card order), then the entity-alignment ones.
    """
    cards = [_card(name) for name in names]
    mmkg = [c for c in cards if isinstance(c, registry.DatasetCard)]
    ea = [c for c in cards if isinstance(c, registry.EACard)]
    records: list[FileRecord] = []
    if mmkg:
        files = _unique(rf for card in mmkg for rf in card.files(with_images))
        spec = default_mirror() if mirror is None else mirror
        records += _download_group(files, raw_dir(root), spec, "mmkg", retries, progress)
    if ea:
        files = _unique(rf for card in ea for rf in card.files())
        spec = default_ea_mirror() if mirror is None else mirror
        records += _download_group(files, ea_dir(root), spec, "ea", retries, progress)
    return records


def download_dataset(
    name: str,
    root: str | Path | None = None,
    mirror: str | None = None,
    with_images: bool = False,
    retries: int = 3,
    progress: bool = True,
) -> list[FileRecord]:
    """Fetch and verify the raw files of one benchmark under ``<root>/mmkg`` (MMKG) or ``<root>/ea/<name>``
    (entity-alignment benchmarks).

    Files already present whose size and SHA-256 match the manifest (and the governing checksum) are
    not fetched again, so a second call is a verified no-op. Another download into the same root
    (another process) is waited for (:func:`download_lock`).

    Args:
        name: Benchmark name, e.g. ``"fb15k-db15k"`` (see :data:`mmea_pyg.data.registry.DATASETS`).
        root: Data root; ``None`` for :func:`default_root`.
        mirror: Local folder, ``file://`` URL or ``http(s)://`` base URL with the upstream layout (MMKG)
            or the ``<layout>/<MIRROR_DIR>`` layout (entity alignment); ``None`` for :func:`default_mirror`
            / :func:`default_ea_mirror`, ``""`` to force upstream.
        with_images: Also fetch the optional VGG16 ``*_ImageData.h5`` feature files.
        retries: Retries of transient failures per file.
        progress: Show tqdm progress bars.

    Returns:
        One :class:`FileRecord` per file, in card order (skipped optional files included).

    Raises:
        ConfigError: Unknown benchmark name.
        DownloadError: A required file is missing or cannot be fetched.
        ChecksumError: A file does not match its governing checksum (the download is removed).
    """
    return download_datasets([name], root, mirror, with_images, retries, progress)


__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "RAW_DIRNAME",
    "STATUS_DIFFERS",
    "STATUS_GIT_BLOB",
    "STATUS_SHA256",
    "STATUS_SKIPPED",
    "STATUS_UNVERIFIED",
    "FileRecord",
    "RemoteNotFoundError",
    "EA_DIRNAME",
    "default_ea_mirror",
    "default_mirror",
    "default_root",
    "ea_dir",
    "ea_folder",
    "download_dataset",
    "download_lock",
    "wait_for_downloads",
    "download_datasets",
    "fetch_file",
    "git_blob_sha1",
    "parse_sha256sums",
    "raw_dir",
    "read_manifest",
    "sha256sum",
]
