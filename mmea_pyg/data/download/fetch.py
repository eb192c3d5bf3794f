"""Benchmark downloads: every file of a registered benchmark's card fetched (:mod:`.transfer`),
verified against the governing checksum, and recorded in the manifest under the download lock
(:mod:`.manifest`).

Verification, per file:

* If the mirror ships a ``SHA256SUMS`` file (``sha256sum`` format, paths relative to the mirror root)
  with an entry for the file, that entry governs; a mismatch is a :class:`~mmea_pyg.errors.ChecksumError`.
  When the file's git blob id then differs from the registry's upstream id, the file is reported as
  *differs from upstream* (a reconstruction shipped by the mirror), a warning, not an error.
* Otherwise the registry's upstream git blob id governs (mismatch: ``ChecksumError``).
* Files with neither are recorded as *unverified*; ``.h5`` files must also open with h5py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmea_pyg.data import registry
from mmea_pyg.data.download import transfer
from mmea_pyg.data.download.manifest import (
    STATUS_DIFFERS,
    STATUS_GIT_BLOB,
    STATUS_SHA256,
    STATUS_SKIPPED,
    STATUS_UNVERIFIED,
    FileRecord,
    download_lock,
    manifest_entry,
    read_manifest,
    write_manifest,
)
from mmea_pyg.data.download.transfer import Mirror, RemoteNotFoundError, display_url, part_path
from mmea_pyg.data.files import (
    SUMS_NAME,
    Digest,
    default_ea_mirror,
    default_mirror,
    ea_dir,
    file_digest,
    raw_dir,
)
from mmea_pyg.data.registry import RemoteFile
from mmea_pyg.errors import ChecksumError, ConfigError, DownloadError

__all__ = ["download_dataset", "download_datasets"]

logger = logging.getLogger(__name__)


def _check(digest: Digest, rf: RemoteFile, sums: dict[str, str]) -> tuple[str, str, str | None]:
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
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{final_name}: the file from {url} is not a readable HDF5 file ({exc}); it was removed. "
            "The link may have expired or returned an HTML page: download it by hand into "
            f"{path.parent} or use a mirror that has it"
        ) from exc


@dataclass
class _Context:
    directory: Path
    mirror: Mirror | None
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
    digest: Digest,
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
        url=display_url(url),
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
    digest = file_digest(dest)
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
    part_path(dest).unlink(missing_ok=True)  # a stale partial download of a file that is complete
    logger.info("%s: verified, up to date (%s)", rf.path, status)
    return record


def _fetch_verified(rf: RemoteFile, dest: Path, ctx: _Context) -> FileRecord | None:
    """Fetch ``rf`` into ``dest`` via ``.part`` and verify it; ``None`` if an optional file is absent."""
    url = ctx.source(rf)
    part = part_path(dest)
    logger.info("%s: fetching from %s", rf.path, display_url(url))
    checked: list[tuple[Digest, tuple[str, str, str | None]]] = []  # (digest, _check) of each try

    def verify(path: Path) -> str | None:
        digest = file_digest(path)
        checked.append((digest, _check(digest, rf, ctx.sums)))
        return checked[-1][1][2]

    try:
        problem = transfer.fetch_part(url, part, verify, ctx.retries, ctx.progress, rf.path)
    except RemoteNotFoundError as exc:
        if rf.optional:
            logger.info("%s: skipped (optional, not in %s)", rf.path, ctx.where)
            return None
        raise _missing_required(rf, url, ctx) from exc
    digest, (status, upstream, _) = checked[-1]
    if problem is not None:
        raise ChecksumError(
            f"{rf.path} from {display_url(url)}: {problem}; the download was removed. Run again; if it "
            f"persists the {ctx.where} holds a different file (use another mirror or upstream)"
        )
    if dest.suffix == ".h5":
        _check_hdf5(part, rf.path, display_url(url))
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
    return DownloadError(f"required file {rf.path} is missing from {ctx.where} ({display_url(url)}); {fix}")


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
            url=display_url(ctx.source(rf)),
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
        ctx.manifest[rf.path] = manifest_entry(record)
        write_manifest(ctx.directory, ctx.manifest)
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
    source = Mirror(spec, kind) if spec else None
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
        root: Data root; ``None`` for :func:`~mmea_pyg.data.files.default_root`.
        mirror: Local folder, ``file://`` URL or ``http(s)://`` base URL with the upstream layout (MMKG)
            or the ``<layout>/<MIRROR_DIR>`` layout (entity alignment); ``None`` for
            :func:`~mmea_pyg.data.files.default_mirror`
            / :func:`~mmea_pyg.data.files.default_ea_mirror`, ``""`` to force upstream.
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
