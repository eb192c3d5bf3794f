"""Where data lives and how files are fingerprinted: the data root (``$MMEA_DATA``), the default mirrors
(``$MMEA_MIRROR``, ``$MMEA_EA_MIRROR``), the raw folders below the root, and file hashes (SHA-256 and git
blob ids, ``sha256sum`` files).

Local graph-pair folders use it as much as the downloader (:mod:`mmea_pyg.data.download`): a dataset
folder's processed files are keyed by the SHA-256 of its inputs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mmea_pyg.data import registry
from mmea_pyg.errors import DownloadError

__all__ = [
    "CHUNK_SIZE",
    "EA_DIRNAME",
    "RAW_DIRNAME",
    "SUMS_NAME",
    "Digest",
    "default_ea_mirror",
    "default_mirror",
    "default_root",
    "ea_dir",
    "file_digest",
    "git_blob_sha1",
    "parse_sha256sums",
    "raw_dir",
    "sha256sum",
]


#: Sub-directory of the data root that holds the MMKG files (upstream layout below it).
RAW_DIRNAME = "mmkg"
#: Sub-directory of the data root that holds the entity-alignment benchmarks (``<name>/`` below it).
EA_DIRNAME = "ea"
#: Checksum file a mirror may ship at its root.
SUMS_NAME = "SHA256SUMS"
#: Read/write block size.
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class Digest:
    """Size, SHA-256 and git blob id of a file (:func:`file_digest`)."""

    size: int
    sha256: str
    git_blob: str


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


def file_digest(path: Path) -> Digest:
    """Size, SHA-256 and git blob id of ``path`` in one pass."""
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return Digest(size, sha256.hexdigest(), blob.hexdigest())


def sha256sum(path: str | Path) -> str:
    """SHA-256 hex digest of a file."""
    return file_digest(Path(path)).sha256


def git_blob_sha1(path: str | Path) -> str:
    """Git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` followed by the content."""
    return file_digest(Path(path)).git_blob


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
