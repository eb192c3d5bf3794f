"""Fetch and verify the raw files of a registered benchmark (MMKG, and the entity-alignment benchmarks).

Files come from upstream (:attr:`RemoteFile.upstream_url <mmea_pyg.data.registry.RemoteFile.upstream_url>`,
the pinned ``mniepert/mmkb`` commit and the Dropbox links of the image features) or from a *mirror*
with the upstream layout: a local folder, a ``file://`` URL or an ``http(s)://`` base URL. Every file
lands under ``<root>/mmkg/<relative path>`` and is recorded in ``<root>/mmkg/MANIFEST.json``.

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

The package's rooms:

* :mod:`.transfer`: mirrors, transfers with resume and retry, the one fetch-and-verify path;
* :mod:`.manifest`: the records of each file, the manifest and the download lock;
* :mod:`.fetch`: benchmark downloads and their verification.

The data root, the default mirrors and file hashing are in :mod:`mmea_pyg.data.files`.
"""

from mmea_pyg.data.download.fetch import download_dataset, download_datasets
from mmea_pyg.data.download.manifest import (
    LOCK_NAME,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    STATUS_DIFFERS,
    STATUS_GIT_BLOB,
    STATUS_SHA256,
    STATUS_SKIPPED,
    STATUS_UNVERIFIED,
    FileRecord,
    download_lock,
    read_manifest,
    wait_for_downloads,
)
from mmea_pyg.data.download.transfer import RemoteNotFoundError, fetch_file

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
    "RemoteNotFoundError",
    "download_dataset",
    "download_datasets",
    "download_lock",
    "fetch_file",
    "read_manifest",
    "wait_for_downloads",
]
