import json
import os
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from mmea_pyg.cli.main import cli

from mmea_pyg.data.dataset import FB15KDB15K, FB15KYAGO15K, MMKGDataset
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
