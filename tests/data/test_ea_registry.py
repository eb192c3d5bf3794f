"""Registered entity-alignment benchmarks: their cards, the download from a local fixture mirror (tiny
hand-written files in the mirror layout with a SHA256SUMS), ``open_dataset`` by name and the
``mmea download`` / ``mmea info`` commands on them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmea_pyg.data import download as dl
from mmea_pyg.data import open_dataset, registry
from mmea_pyg.data.download import transfer
from mmea_pyg.data.graph_pair import GraphPairDataset
from mmea_pyg.errors import ChecksumError, DownloadError

EA = Path(__file__).resolve().parents[1] / "fixtures" / "ea"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MMEA_MIRROR", "MMEA_EA_MIRROR", "MMEA_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(transfer, "RETRY_BASE_DELAY", 0.0)


def write_sums(mirror: Path, skip: tuple[str, ...] = ()) -> None:
    lines = []
    for path in sorted(p for p in mirror.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        rel = path.relative_to(mirror).as_posix()
        if path.name not in skip:
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {rel}\n")
    (mirror / "SHA256SUMS").write_text("".join(lines))


def make_mirror(tmp_path: Path, sums: bool = True) -> Path:
    """A mirror in the layout of the EA cards: jape/SRPRS_EN_DE_15K_V1, jape/DBP15K_ZH_EN, openea/D_Y_15K_V1."""
    mirror = tmp_path / "mirror"
    shutil.copytree(EA / "jape" / "srprs_tiny", mirror / "jape" / "SRPRS_EN_DE_15K_V1")
    shutil.copytree(EA / "jape" / "dbp_tiny", mirror / "jape" / "DBP15K_ZH_EN")
    shutil.copytree(EA / "openea" / "D_Y_tiny", mirror / "openea" / "D_Y_15K_V1")
    (mirror / "jape" / "DBP15K_ZH_EN" / "training_attrs_1").write_text(
        "http://zh.dbpedia.org/resource/Z0\thttp://zh.dbpedia.org/property/name\n"
    )
    if sums:
        write_sums(mirror, skip=("training_attrs_1",))  # a file with no digest anywhere
    return mirror


def manifest(root: Path) -> dict[str, dict]:
    data = json.loads((root / "ea" / "MANIFEST.json").read_text())
    return {entry["path"]: entry for entry in data["files"]}


# --------------------------------------------------------------------------------------------------
# cards


def test_cards_pin_their_files() -> None:
    assert set(registry.EA_DATASETS) == {
        "dbp15k-zh-en",
        "dbp15k-ja-en",
        "dbp15k-fr-en",
        "srprs-en-de",
        "srprs-en-fr",
        "openea-d-y-15k-v1",
    }
    names = registry.registered_names()
    assert names[:2] == ["fb15k-db15k", "fb15k-yago15k"] and "srprs-en-de" in names
    zh = registry.get_ea_card("DBP15K-ZH-EN")
    assert zh.layout == "jape" and zh.commit == "4fc90c438e5a609b96df03daff170fbcf03fde94"
    assert [f.git_blob for f in zh.files()[:5]] == [
        "81f6c4238aecb51d1e5af74910bb414ba5e6829e",
        "99d788dabd2f1906887aa8f66f681f865263c33e",
        "842e2b97c24da1d8345b5420cafc004ef4600a7f",
        "db8976e14471db5fd2d6ca69476f9dfec05b5ccf",
        "632acd997cc9f5d09af610698c71dc3e0c576ab7",
    ]
    first = zh.files()[0]
    assert first.path == "dbp15k-zh-en/ent_ids_1" and first.mirror_relative == "jape/DBP15K_ZH_EN/ent_ids_1"
    assert first.upstream_url == (
        "https://raw.githubusercontent.com/1049451037/GCN-Align/4fc90c438e5a609b96df03daff170fbcf03fde94/"
        "data/zh_en/ent_ids_1"
    )
    assert [f.path for f in zh.files() if f.optional] == [
        "dbp15k-zh-en/training_attrs_1",
        "dbp15k-zh-en/training_attrs_2",
    ]
    assert all(f.git_blob is None for f in registry.get_ea_card("srprs-en-fr").files())
    d_y = registry.get_ea_card("openea-d-y-15k-v1")
    train = next(f for f in d_y.files() if f.path.endswith("train_links"))
    assert train.path == "openea-d-y-15k-v1/721_5fold/1/train_links"
    assert train.mirror_relative == "openea/D_Y_15K_V1/721_5fold/1/train_links"
    assert train.upstream_url.endswith("1354c9217364e0f048961e354add2e10be1845a5/AlignE/Data/D_Y/train_links")
    with pytest.raises(ValueError, match="open it with mmea_pyg.data.open_dataset"):
        registry.get_card("srprs-en-de")


# --------------------------------------------------------------------------------------------------
# download + open


def test_download_and_open_a_registered_benchmark_from_a_mirror(tmp_path: Path, monkeypatch) -> None:
    mirror = make_mirror(tmp_path)
    root = tmp_path / "data"
    ds = open_dataset("srprs-en-de", root=root, mirror=str(mirror), log=False)
    assert isinstance(ds, GraphPairDataset)
    assert (root / "ea" / "srprs-en-de" / "ent_ids_1").read_bytes() == (
        EA / "jape" / "srprs_tiny" / "ent_ids_1"
    ).read_bytes()
    stats = ds.statistics()
    assert stats["dataset"] == "srprs-en-de" and stats["layout"] == "jape"
    assert (stats["source"]["entities"], stats["target"]["entities"]) == (4, 5)
    assert stats["source"]["kg"] == "DBpedia (EN)" and stats["target"]["kg"] == "DBpedia (DE)"
    assert (stats["split"]["train"], stats["split"]["valid"], stats["split"]["test"]) == (2, 0, 2)
    entries = manifest(root)
    entry = entries["srprs-en-de/ent_ids_1"]
    assert entry["status"] == dl.STATUS_DIFFERS and entry["upstream"] == "differs"  # tiny, not the real file
    assert entry["url"].endswith("jape/SRPRS_EN_DE_15K_V1/ent_ids_1")
    assert "srprs-en-de/rel_ids_1" in entries

    # Everything present: nothing is fetched again, nothing reprocessed.
    monkeypatch.setattr(dl, "download_dataset", lambda *a, **k: pytest.fail("downloaded again"))
    again = open_dataset("srprs-en-de", root=root, log=False)
    assert again.processed_paths == ds.processed_paths


def test_openea_card_installs_the_flat_fold_as_fold_1(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path)
    root = tmp_path / "data"
    records = dl.download_dataset("openea-d-y-15k-v1", root=root, mirror=str(mirror), progress=False)
    status = {r.path.split("/", 1)[1]: r.status for r in records}
    assert len(records) == 8 and status["rel_triples_1"] == dl.STATUS_DIFFERS
    assert status["attr_triples_1"] == dl.STATUS_SHA256  # empty, like upstream's: identical
    assert (root / "ea" / "openea-d-y-15k-v1" / "721_5fold" / "1" / "valid_links").is_file()
    ds = open_dataset("openea-d-y-15k-v1", root=root, log=False)
    assert ds.statistics()["split"]["given"] == "721_5fold/1"
    assert ds[0]["source"].kg_name == "DBpedia" and ds[0]["target"].kg_name == "YAGO"


def test_dbp15k_optional_attributes_without_digest_are_unverified(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path)
    root = tmp_path / "data"
    records = {
        r.path: r for r in dl.download_dataset("dbp15k-zh-en", root=root, mirror=str(mirror), progress=False)
    }
    assert records["dbp15k-zh-en/training_attrs_1"].status == dl.STATUS_UNVERIFIED
    assert records["dbp15k-zh-en/training_attrs_2"].skipped  # optional, not in the mirror
    assert records["dbp15k-zh-en/ref_ent_ids"].status == dl.STATUS_DIFFERS
    ds = open_dataset("dbp15k-zh-en", root=root, log=False)
    assert [ds.statistics()["split"][k] for k in ("train", "valid", "test")] == [2, 1, 7]
    assert ds[0]["source"].attr_mask.tolist() == [True] + [False] * 9


def test_without_sha256sums_the_upstream_blob_governs(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path, sums=False)
    root = tmp_path / "data"
    with pytest.raises(
        ChecksumError, match=r"srprs-en-de/ent_ids_1 from .*: git blob mismatch: expected upstream id 7c3a9bb"
    ):
        dl.download_dataset("srprs-en-de", root=root, mirror=str(mirror), progress=False)
    assert not (root / "ea" / "srprs-en-de" / "ent_ids_1").exists()
    assert not list(root.rglob("*.part"))


def test_missing_required_file_and_missing_mirror(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path)
    (mirror / "jape" / "SRPRS_EN_DE_15K_V1" / "ref_ent_ids").unlink()
    with pytest.raises(DownloadError) as info:
        dl.download_dataset("srprs-en-de", root=tmp_path / "data", mirror=str(mirror), progress=False)
    message = str(info.value)
    assert "required file srprs-en-de/ref_ent_ids is missing from mirror" in message
    assert "it must hold jape/SRPRS_EN_DE_15K_V1/ref_ent_ids" in message and "MMEA_EA_MIRROR" in message
    with pytest.raises(DownloadError, match="holds jape/ and openea/"):
        dl.download_dataset(
            "srprs-en-de", root=tmp_path / "data", mirror=str(tmp_path / "nope"), progress=False
        )


def test_default_mirror_is_mmea_ea_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = make_mirror(tmp_path)
    monkeypatch.setenv("MMEA_EA_MIRROR", str(mirror))
    monkeypatch.setenv("MMEA_MIRROR", str(tmp_path / "mmkg-mirror-that-does-not-exist"))
    records = dl.download_datasets(["openea-d-y-15k-v1"], root=tmp_path / "data", progress=False)
    assert all(not r.skipped for r in records)


# --------------------------------------------------------------------------------------------------
# CLI


def _cli():
    from mmea_pyg.cli.main import cli

    return cli


def test_cli_download_and_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = make_mirror(tmp_path)
    root = tmp_path / "data"
    args = ["download", "srprs-en-de", "--root", str(root), "--mirror", str(mirror)]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert "srprs-en-de/sup_ent_ids  fetched: differs from upstream" in result.output
    assert f"manifest: {root / 'ea' / 'MANIFEST.json'}" in result.output
    assert "differ from upstream (reconstructed in this mirror)" in result.output
    again = CliRunner().invoke(_cli(), args)
    assert again.exit_code == 0 and "up to date" in again.output and "fetched:" not in again.output

    # `mmea info` on a fresh root: downloads from $MMEA_EA_MIRROR; $MMEA_MIRROR (MMKG files) is not used.
    monkeypatch.setenv("MMEA_EA_MIRROR", str(mirror))
    monkeypatch.setenv("MMEA_MIRROR", str(tmp_path / "mmkg-mirror-that-does-not-exist"))
    info = CliRunner().invoke(
        _cli(), ["info", "openea-d-y-15k-v1", "--root", str(tmp_path / "other"), "--format", "json"]
    )
    assert info.exit_code == 0, info.output
    stats = json.loads(info.stdout)
    assert stats["dataset"] == "openea-d-y-15k-v1" and stats["pairs"] == 5

    unknown = CliRunner().invoke(_cli(), ["download", "dbp15k"])
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
    assert "dbp15k-zh-en" in unknown.output and "fb15k-db15k" in unknown.output
