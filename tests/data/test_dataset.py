import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from mmea_pyg.cli.main import cli
from torch_geometric.data import HeteroData

from mmea_pyg.data.mmkg import FB15KDB15K, FB15KYAGO15K, MMKGDataset
from mmea_pyg.errors import ConfigError, DataFormatError


@pytest.fixture
def dataset(data_root: Path) -> MMKGDataset:
    return FB15KDB15K(data_root, split_ratio=0.5, split_seed=0, log=False)


def test_heterodata_layout(dataset: MMKGDataset):
    data = dataset[0]
    assert set(data.node_types) == {"source", "target"}
    src, tgt = data["source"], data["target"]
    # FB15K: triple entities first (7 in triples incl. /m/06), then /m/07 (attributes/image), /m/08 (link only).
    assert src.uri == ["/m/01", "/m/05", "/m/02", "/m/03", "/m/04", "/m/06", "/m/07", "/m/08"]
    assert src.name[0] == "Donald Trump" and tgt.name[0] == "Donald Trump"
    assert tgt.uri[0] == "http://dbpedia.org/resource/Donald_Trump"
    assert src.num_nodes == 8 and tgt.num_nodes == 7

    edges = data["source", "relation", "source"]
    assert edges.edge_index.shape == (2, 7)  # the repeated triple is stored once
    assert edges.edge_type.shape == (7,)
    assert edges.relation_names[0] == "/people/person/place_of_birth"
    head, tail = edges.edge_index[:, 0].tolist()
    assert (src.uri[head], src.uri[tail]) == ("/m/01", "/m/05")
    assert len(data["target", "relation", "target"].relation_names) == 4


def test_attribute_and_image_masks(dataset: MMKGDataset):
    data = dataset[0]
    src = data["source"]
    with_attrs = {src.uri[i] for i in src.attr_mask.nonzero().view(-1).tolist()}
    assert with_attrs == {"/m/01", "/m/05", "/m/06", "/m/07"}
    assert src.x_attr.shape == (8, 384)
    assert torch.all(src.x_attr[~src.attr_mask] == 0)
    assert torch.all(src.x_attr[src.attr_mask].norm(dim=-1) > 0)
    # Two entities with different attribute sentences get different features.
    assert not torch.allclose(src.x_attr[0], src.x_attr[1])
    # No image features in the fixture: zero-width features and all-False masks, never random vectors.
    assert src.x_img.shape == (8, 0) and not src.img_mask.any()
    assert src.has_image.sum() == 4


def test_seed_pairs_and_split(dataset: MMKGDataset):
    data = dataset[0]
    aligned = data["source", "aligned", "target"]
    assert aligned.edge_index.shape == (2, 8)
    src, tgt = data["source"], data["target"]
    s, t = aligned.edge_index[:, 0].tolist()
    assert (src.uri[s], tgt.uri[t]) == ("/m/01", "http://dbpedia.org/resource/Donald_Trump")
    masks = aligned.train_mask.int() + aligned.valid_mask.int() + aligned.test_mask.int()
    assert torch.all(masks == 1)
    # /m/06 and /m/08 share their DBpedia entity and land in the same part.
    i6, i8 = src.uri.index("/m/06"), src.uri.index("/m/08")
    col6 = (aligned.edge_index[0] == i6).nonzero().item()
    col8 = (aligned.edge_index[0] == i8).nonzero().item()
    for mask in (aligned.train_mask, aligned.valid_mask, aligned.test_mask):
        assert mask[col6] == mask[col8]


def test_resplit_without_reprocessing(data_root: Path, dataset: MMKGDataset):
    processed = Path(dataset.processed_paths[0])
    mtime = processed.stat().st_mtime_ns
    other = FB15KDB15K(data_root, split_ratio=0.2, split_seed=1, log=False)
    assert processed.stat().st_mtime_ns == mtime
    assert int(other[0]["source", "aligned", "target"].train_mask.sum()) == 2
    assert other.statistics()["split"] == {"ratio": 0.2, "seed": 1, "train": 2, "valid": 1, "test": 5}


def test_reprocess_when_inputs_change(data_root: Path, dataset: MMKGDataset):
    first = dataset.processed_paths[0]
    triples = data_root / "mmkg" / "DB15K" / "DB15K_EntityTriples.txt"
    with open(triples, "a", encoding="utf-8") as handle:
        handle.write(
            "<http://dbpedia.org/resource/Ivana_Trump> <http://dbpedia.org/ontology/spouse> "
            "<http://dbpedia.org/resource/Donald_Trump> .\n"
        )
    os.utime(triples, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = FB15KDB15K(data_root, log=False)
    assert again.processed_paths[0] != first
    assert again[0]["target", "relation", "target"].edge_index.size(1) == 6


def test_malformed_raw_line_names_file_and_line(data_root: Path):
    triples = data_root / "mmkg" / "FB15K" / "FB15K_EntityTriples.txt"
    triples.write_text("/m/01 /r /m/02 .\n/m/01 /r\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"FB15K_EntityTriples.txt, line 2"):
        FB15KDB15K(data_root, log=False)
    assert not any((data_root / "fb15k-db15k" / "processed").glob("data_*.pt"))


def test_yago_dataset_and_statistics(data_root: Path):
    dataset = FB15KYAGO15K(data_root, split_ratio=0.2, log=False)
    stats = dataset.statistics()
    assert stats["dataset"] == "fb15k-yago15k"
    assert stats["target"]["kg"] == "YAGO15K" and stats["target"]["entities"] == 3
    assert stats["pairs"] == 3
    assert stats["source"]["triples"] == 7 and stats["source"]["triple_lines"] == 8
    assert stats["source"]["attribute_triples"] == 5


def test_unknown_dataset_and_bad_ratio(data_root: Path):
    with pytest.raises(ValueError, match="known datasets: fb15k-db15k, fb15k-yago15k"):
        MMKGDataset(data_root, name="dbp15k")
    with pytest.raises(ConfigError, match="train ratio"):
        FB15KDB15K(data_root, split_ratio=1.5, log=False)


def test_download_from_fixture_mirror(tmp_path: Path, fixture_mirror: Path):
    dataset = FB15KDB15K(tmp_path / "data", mirror=str(fixture_mirror), log=False)
    assert dataset[0]["source"].num_nodes == 8
    manifest = json.loads((tmp_path / "data" / "mmkg" / "MANIFEST.json").read_text())
    assert any(f["path"] == "DB15K/DB15K_SameAsLink.txt" for f in manifest["files"])


def test_info_command(data_root: Path):
    result = CliRunner().invoke(cli, ["info", "fb15k-db15k", "--root", str(data_root), "--format", "json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["source"]["entities"] == 8 and stats["pairs"] == 8
    table = CliRunner().invoke(cli, ["info", "fb15k-db15k", "--root", str(data_root), "--format", "table"])
    assert "entities with attributes" in table.output and "train / valid / test" in table.output


def test_info_unknown_dataset_is_a_clean_error(tmp_path: Path):
    result = CliRunner().invoke(cli, ["info", "nope", "--root", str(tmp_path)])
    assert result.exit_code == 2 and "fb15k-db15k" in result.output


# ------------------------------------------------------------------------------ corrupted caches
class _Evil:
    """Unpickling this creates ``marker`` (what a malicious cache file could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_evil(path: Path, marker: Path) -> None:
    torch.save(_Evil(marker), path)


def _unreadable(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if what in r.getMessage()]


def test_truncated_processed_file_is_rebuilt(
    data_root: Path, dataset: MMKGDataset, caplog: pytest.LogCaptureFixture
):
    stats = dataset.statistics()
    processed = Path(dataset.processed_paths[0])
    with open(processed, "r+b") as handle:
        handle.truncate(processed.stat().st_size // 2)
    with caplog.at_level("WARNING", logger="mmea_pyg.data.base"):
        again = FB15KDB15K(data_root, split_ratio=0.5, split_seed=0, log=False)
    (notice,) = _unreadable(caplog, "processed dataset is unreadable")
    assert notice.startswith(f"{processed}: processed dataset is unreadable (") and notice.endswith(
        "; rebuilding"
    )
    assert "\n" not in notice
    assert again.processed_paths[0] == str(processed)
    assert again.statistics() == stats
    assert torch.load(processed, weights_only=True)[2] is HeteroData  # whole again


def test_info_command_rebuilds_a_truncated_processed_file(
    data_root: Path, dataset: MMKGDataset, caplog: pytest.LogCaptureFixture
):
    processed = Path(dataset.processed_paths[0])
    os.truncate(processed, 1000)
    result = CliRunner().invoke(cli, ["info", "fb15k-db15k", "--root", str(data_root), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and json.loads(result.stdout)["pairs"] == 8
    assert _unreadable(caplog, f"{processed}: processed dataset is unreadable")


def test_malicious_processed_file_is_not_unpickled_and_rebuilt(
    data_root: Path, dataset: MMKGDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    # The file really would run code under a plain torch.load (or PyG's fallback to weights_only=False).
    control = tmp_path / "control"
    _write_evil(tmp_path / "control.pt", control)
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()

    stats = dataset.statistics()
    processed = Path(dataset.processed_paths[0])
    marker = tmp_path / "pwned"
    _write_evil(processed, marker)
    with caplog.at_level("WARNING", logger="mmea_pyg.data.base"):
        again = FB15KDB15K(data_root, split_ratio=0.5, split_seed=0, log=False)
    assert not marker.exists()
    (notice,) = _unreadable(caplog, "processed dataset is unreadable")
    assert "could run code" in notice and "open" in notice and notice.endswith("; rebuilding")
    assert again.statistics() == stats


def test_processed_file_with_other_content_is_rebuilt(
    data_root: Path, dataset: MMKGDataset, caplog: pytest.LogCaptureFixture
):
    processed = Path(dataset.processed_paths[0])
    torch.save({"weights": torch.zeros(3)}, processed)  # a readable torch file, but not a processed graph
    with caplog.at_level("WARNING", logger="mmea_pyg.data.base"):
        again = FB15KDB15K(data_root, split_ratio=0.5, split_seed=0, log=False)
    assert _unreadable(caplog, "processed dataset is unreadable (it holds a dict")
    assert again[0]["source"].num_nodes == 8


def test_pre_transform_files_are_never_unpickled(
    data_root: Path, dataset: MMKGDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    processed_dir = Path(dataset.processed_dir)
    assert torch.load(processed_dir / "pre_transform.pt", weights_only=True) == "None"
    marker = tmp_path / "pwned"
    for name in ("pre_transform.pt", "pre_filter.pt"):
        _write_evil(processed_dir / name, marker)
    with caplog.at_level("WARNING", logger="mmea_pyg.data.base"):
        FB15KDB15K(data_root, log=False)  # PyG's own check would torch.load(weights_only=False) them
    assert not marker.exists()
    assert len(_unreadable(caplog, "unreadable (it holds objects other than tensors")) == 2
    for name in ("pre_transform.pt", "pre_filter.pt"):  # rewritten, loadable safely
        assert torch.load(processed_dir / name, weights_only=True) == "None"


@pytest.mark.parametrize("damage", ["truncated", "other content", "malicious"])
def test_corrupted_feature_cache_is_recomputed(
    data_root: Path, dataset: MMKGDataset, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
):
    expected = dataset[0]["source"].x_attr
    caches = sorted((data_root / "mmkg" / "cache").glob("text_FB15K_*.pt"))
    assert len(caches) == 1
    cache = caches[0]
    marker = tmp_path / "pwned"
    if damage == "truncated":
        os.truncate(cache, cache.stat().st_size // 3)
    elif damage == "other content":
        torch.save({"not": "features"}, cache)
    else:
        _write_evil(cache, marker)
    with caplog.at_level("WARNING", logger="mmea_pyg.data.features.attributes"):
        again = FB15KDB15K(data_root, split_ratio=0.5, force_reload=True, log=False)
    assert not marker.exists()
    (notice,) = _unreadable(caplog, "attribute-feature cache is unreadable")
    assert notice.startswith(f"{cache}: ") and notice.endswith("; recomputing")
    torch.testing.assert_close(again[0]["source"].x_attr, expected)
    features = torch.load(cache, weights_only=True)  # rewritten whole
    assert features.shape == (int(again[0]["source"].attr_mask.sum()), expected.size(1))


# ------------------------------------------------------------------------------ checksum cache key
def _touch_raw_files(root: Path, seconds: int = 100) -> list[Path]:
    """Give every raw file a new modification time (as ``cp -r`` without ``-p`` does)."""
    later = time.time_ns() + seconds * 10**9
    files = [p for p in (root / "mmkg").rglob("*.txt")]
    for path in files:
        os.utime(path, ns=(later, later))
    return files


def _no_processing(monkeypatch: pytest.MonkeyPatch) -> None:
    def process(self):
        raise AssertionError("the copied data root was processed again")

    monkeypatch.setattr(MMKGDataset, "process", process)


def test_copied_data_root_is_reused(
    data_root: Path, dataset: MMKGDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    stats = dataset.statistics()
    copy = tmp_path / "copy"
    shutil.copytree(data_root, copy)
    _touch_raw_files(copy)
    processed = copy / "fb15k-db15k" / "processed" / Path(dataset.processed_paths[0]).name
    mtime = processed.stat().st_mtime_ns
    _no_processing(monkeypatch)
    again = FB15KDB15K(copy, split_ratio=0.5, split_seed=0, log=False)
    assert again.processed_paths[0] == str(processed) and processed.stat().st_mtime_ns == mtime
    assert again.statistics() == stats


def test_copied_downloaded_root_is_reused_from_the_manifest(
    tmp_path: Path, fixture_mirror: Path, monkeypatch: pytest.MonkeyPatch
):
    from mmea_pyg.data import files

    root = tmp_path / "data"
    first = FB15KDB15K(root, mirror=str(fixture_mirror), log=False)
    name = Path(first.processed_paths[0]).name
    assert not (root / "mmkg" / "cache" / "raw_sha256.json").exists()  # the manifest had every digest

    kept = tmp_path / "kept"  # copy2 keeps the mtimes: the manifest's digests are trusted, nothing hashed
    shutil.copytree(root, kept)
    with monkeypatch.context() as patch:
        patch.setattr(files, "sha256sum", lambda path: pytest.fail(f"{path} was hashed"))
        _no_processing(patch)
        assert Path(FB15KDB15K(kept, log=False).processed_paths[0]).name == name

    touched = tmp_path / "touched"  # new mtimes: the files are hashed, the digests are the same
    shutil.copytree(root, touched)
    _touch_raw_files(touched)
    with monkeypatch.context() as patch:
        _no_processing(patch)
        assert Path(FB15KDB15K(touched, log=False).processed_paths[0]).name == name
    assert (touched / "mmkg" / "cache" / "raw_sha256.json").is_file()


@pytest.mark.parametrize("downloaded", [False, True])
def test_changed_raw_content_of_the_same_size_rebuilds(
    tmp_path: Path, data_root: Path, fixture_mirror: Path, downloaded: bool
):
    root = tmp_path / "downloaded" if downloaded else data_root
    first = FB15KDB15K(root, mirror=str(fixture_mirror), log=False)
    links = root / "mmkg" / "DB15K" / "DB15K_SameAsLink.txt"
    text = links.read_text(encoding="utf-8")
    changed = text.replace("Donald_Trump", "Donald_Trumq", 1)
    assert changed != text and len(changed) == len(text)
    links.write_text(changed, encoding="utf-8")
    os.utime(links, ns=(time.time_ns() + 10 * 10**9, time.time_ns() + 10 * 10**9))
    again = FB15KDB15K(root, log=False)
    assert again.processed_paths[0] != first.processed_paths[0]
    assert "http://dbpedia.org/resource/Donald_Trumq" in again[0]["target"].uri


def test_build_waits_for_a_download_in_another_process(
    tmp_path: Path, fixture_mirror: Path, capsys: pytest.CaptureFixture[str]
):
    holder_code = (
        "import sys, time\n"
        "from mmea_pyg.data.download import download_dataset, download_lock\n"
        "from mmea_pyg.data.files import raw_dir\n"
        "with download_lock(raw_dir(sys.argv[1])):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(1.5)\n"
        "    download_dataset('fb15k-db15k', root=sys.argv[1], mirror=sys.argv[2], progress=False)\n"
        "    print(f'releasing {time.time()!r}', flush=True)\n"
    )
    root = tmp_path / "data"
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(root), str(fixture_mirror)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        dataset = FB15KDB15K(root, mirror=str(fixture_mirror), log=False)
        built = time.time()
        out, err = holder.communicate(timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert holder.returncode == 0, err
    assert built > float(out.split()[1])
    assert f"waiting for another download into {root / 'mmkg'}" in capsys.readouterr().err
    assert dataset.statistics()["pairs"] == 8
    assert not any(p.name.endswith((".part", ".tmp")) for p in root.rglob("*"))
