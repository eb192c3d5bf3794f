"""What a download leaves behind: one :class:`FileRecord` per file, the manifest of a raw folder
(``MANIFEST.json``, written atomically), and the lock that serialises downloads into one data root.

Downloads into one data root are serialised by an exclusive lock on ``<root>/mmkg/.download.lock``
(:func:`download_lock`, ``fcntl.flock``): a second ``mmea download`` (or dataset build) into the same
root says on stderr that it waits, waits for the first to finish, then finds the files verified and
fetches nothing, so two processes never share a ``.part`` file. Where ``fcntl`` does not exist
(Windows) there is no lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from mmea_pyg.data.files import RAW_DIRNAME, default_root
from mmea_pyg.errors import DownloadError
from mmea_pyg.io import atomic_write_json

try:  # Linux, macOS; Windows has no fcntl and downloads are not locked there
    import fcntl
except ImportError:  # pragma: no cover - not on the supported platforms
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "STATUS_DIFFERS",
    "STATUS_GIT_BLOB",
    "STATUS_SHA256",
    "STATUS_SKIPPED",
    "STATUS_UNVERIFIED",
    "FileRecord",
    "download_lock",
    "manifest_entry",
    "read_manifest",
    "wait_for_downloads",
    "write_manifest",
]

logger = logging.getLogger(__name__)


#: Name of the manifest written under ``<root>/mmkg``.
MANIFEST_NAME = "MANIFEST.json"
#: Version of the manifest format.
MANIFEST_VERSION = 1
#: Lock file under ``<root>/mmkg`` held (exclusively) while files are fetched, verified and recorded.
LOCK_NAME = ".download.lock"


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


def write_manifest(directory: Path, entries: dict[str, dict]) -> None:
    """Write the manifest atomically (:func:`mmea_pyg.io.atomic_write_json`)."""
    data = {
        "version": MANIFEST_VERSION,
        "updated": _now(),
        "files": [entries[key] for key in sorted(entries)],
    }
    atomic_write_json(directory / MANIFEST_NAME, data)


def manifest_entry(record: FileRecord) -> dict:
    """The manifest's entry for ``record``: its fields but the per-call ones, and the time."""
    entry = asdict(record)
    for key in ("fetched", "skipped", "local_path", "note"):
        entry.pop(key)
    entry["time"] = _now()
    return entry


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
