"""The real benchmarks, downloaded from the MMKG mirror (MMEA_MIRROR or ../shared/mmkg) as a folder and over
a loopback HTTP server, then built. Marked ``integration``: deselect with ``-m "not integration"``."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import pytest

from mmea_pyg.data.download import download_dataset
from mmea_pyg.data.mmkg import FB15KDB15K, FB15KYAGO15K

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def root(tmp_path_factory, mmkg_mirror: Path) -> Path:
    root = tmp_path_factory.mktemp("mmkg-folder")
    for name in ("fb15k-db15k", "fb15k-yago15k"):
        download_dataset(name, root=root, mirror=str(mmkg_mirror), progress=False)
    return root


@pytest.fixture(scope="module")
def http_mirror(mmkg_mirror: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mmkg_mirror))
    handler.log_message = lambda *args, **kwargs: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_http_mirror_matches_folder_mirror(root: Path, http_mirror: str, tmp_path: Path):
    records = download_dataset("fb15k-yago15k", root=tmp_path, mirror=http_mirror, progress=False)
    by_path = {r.path: r for r in records}
    folder = {f["path"]: f for f in json.loads((root / "mmkg" / "MANIFEST.json").read_text())["files"]}
    for path, record in by_path.items():
        if record.skipped:
            continue
        assert record.sha256 == folder[path]["sha256"], path
    assert by_path["YAGO15K/YAGO15K_NumericalTriples.txt"].differs_from_upstream
    assert not by_path["YAGO15K/YAGO15K_SameAsLink.txt"].differs_from_upstream
    # A second run is a verified no-op.
    again = download_dataset("fb15k-yago15k", root=tmp_path, mirror=http_mirror, progress=False)
    assert not any(r.fetched for r in again)


def test_fb15k_db15k(root: Path):
    dataset = FB15KDB15K(root, split_ratio=0.2, log=False)
    stats = dataset.statistics()
    target = stats["target"]
    assert (target["entities"], target["relations"], target["triples"]) == (12842, 279, 89197)
    assert target["triple_lines"] == 99028
    assert stats["source"]["triples"] == 381186  # the mirror's partial FB15K (64% of 592,213)
    assert stats["pairs"] == 12846
    assert stats["source"]["entities_with_image_features"] == 0  # no VGG16 .h5 in the mirror
    split = stats["split"]
    assert (split["train"], split["valid"], split["test"]) == (2569, 1285, 8992)
    data = dataset[0]
    assert data["source"].x_attr.shape == (stats["source"]["entities"], 384)
    assert (
        stats["source"]["entities_with_attributes"] == 12493 and target["entities_with_attributes"] == 10985
    )


def test_fb15k_yago15k(root: Path):
    dataset = FB15KYAGO15K(root, split_ratio=0.5, log=False)
    stats = dataset.statistics()
    target = stats["target"]
    assert (target["entities"], target["relations"], target["triples"]) == (15404, 32, 122886)
    assert stats["source"]["triples"] == 381186
    assert stats["pairs"] == 11199
    assert stats["split"]["train"] == round(0.5 * 11199)
