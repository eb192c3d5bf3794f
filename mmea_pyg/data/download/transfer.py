"""Transfers of one file: from a local path, a ``file://`` URL or ``http(s)://`` (a mirror with the
upstream layout, :class:`Mirror`), into ``<dest>.part``, resumed when a previous run was interrupted
(HTTP ``Range`` or a copy from the offset), transient failures (connection errors, timeouts, HTTP
5xx/429) retried with exponential backoff, 404 not. :func:`fetch_part` is the one path every download
takes: transfer, verify, and fetch a resumed part that fails verification once more from the start;
:func:`fetch_file` is it for one file with an optional SHA-256.
"""

from __future__ import annotations

import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from mmea_pyg import __version__
from mmea_pyg.data import registry
from mmea_pyg.data.files import CHUNK_SIZE, SUMS_NAME, parse_sha256sums, sha256sum
from mmea_pyg.errors import ChecksumError, DownloadError

__all__ = [
    "RETRY_BASE_DELAY",
    "TIMEOUT",
    "Mirror",
    "RemoteNotFoundError",
    "display_url",
    "fetch_file",
    "fetch_part",
    "part_path",
    "transfer_to_part",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


#: Seconds before the first retry; doubled on every further retry (tests set it to 0).
RETRY_BASE_DELAY = 1.0
#: Socket timeout of one HTTP request, in seconds.
TIMEOUT = 60.0


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


def display_url(url_or_path: str | Path) -> str:
    """``url_or_path`` as a URL for messages and records (a ``file://`` URL for a local path)."""
    local = _local_path(url_or_path)
    return str(url_or_path) if local is None else local.resolve().as_uri()


class Mirror:
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
        return parse_sha256sums(text, display_url(source))


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


def transfer_to_part(source: str | Path, part: Path, retries: int, progress: bool) -> int:
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


def part_path(dest: Path) -> Path:
    """Where ``dest`` is fetched to before it is verified: ``<dest>.part``."""
    return dest.with_name(dest.name + ".part")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def fetch_part(
    source: str | Path,
    part: Path,
    verify: Callable[[Path], str | None],
    retries: int,
    progress: bool,
    name: str,
) -> str | None:
    """Fetch ``source`` into ``part`` (resuming it) and verify it with ``verify(part)``, which returns what
    is wrong with the content or ``None``. A resumed ``part`` that fails is fetched once more from the
    start (the bytes kept from an earlier run may be stale); a ``part`` that still fails is removed.

    Args:
        source: A local path, ``file://`` or ``http(s)://`` URL.
        part: The ``.part`` file (:func:`part_path`).
        verify: The check of the fetched content.
        retries: Retries of transient failures per transfer.
        progress: Show a tqdm progress bar.
        name: The file's name in log messages.

    Returns:
        ``None`` when ``part`` holds the verified content, else the problem (``part`` is gone).

    Raises:
        RemoteNotFoundError: The source does not exist (never retried).
        DownloadError: Any other transfer failure.
    """
    resumed_from = transfer_to_part(source, part, retries, progress)
    problem = verify(part)
    if problem is not None and resumed_from:
        logger.info("%s: resumed download failed verification; fetching it again from the start", name)
        _remove(part)
        transfer_to_part(source, part, retries, progress)
        problem = verify(part)
    if problem is not None:
        _remove(part)
    return problem


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
    part = part_path(dest)

    def verify(path: Path) -> str | None:
        actual = sha256sum(path) if expected else None
        return None if actual == expected else f"expected {expected}, got {actual}"

    problem = fetch_part(url_or_path, part, verify, retries, progress, dest.name)
    if problem is not None:
        raise ChecksumError(
            f"{dest}: sha256 mismatch for {display_url(url_or_path)}: {problem}; "
            "the download was removed; run again, or check the source"
        )
    os.replace(part, dest)
    return dest
