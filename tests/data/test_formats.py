"""Format readers (``mmea_pyg.data.formats``) and ``GraphPairDataset`` on the tiny hand-written graph pairs
of ``tests/fixtures/ea`` (see its README): counts, URIs, edges, splits and masks checked by hand, every
bad-input rule, and one CLAMEA training epoch on a structure-only pair."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mmea_pyg.data import open_dataset
from mmea_pyg.data.formats import LAYOUTS, detect_format, read_graph_pair
from mmea_pyg.data.graph_pair import GraphPairDataset
from mmea_pyg.errors import ConfigError, DataFormatError, MMEAError

EA = Path(__file__).resolve().parents[1] / "fixtures" / "ea"
FORMATS_LOG = "mmea_pyg.data.formats"
DIM = 8  # width of the fake text encoder


# --------------------------------------------------------------------------------------------------
# helpers


class FakeEncoder:
    """Stands in for the BERT-family encoder: a deterministic vector per sentence; counts model loads."""

    loads = 0
    sentences: list[str] = []

    def __init__(self, model=None, device="cpu", num_threads=None) -> None:
        FakeEncoder.loads += 1

    def encode(self, sentences, batch_size=128, max_length=128, device=None, progress=False):
        FakeEncoder.sentences.extend(sentences)
        rows = [hashlib.sha256(s.encode()).digest()[:DIM] for s in sentences]
        return torch.tensor([[b / 255 + 0.01 for b in row] for row in rows], dtype=torch.float32).reshape(
            -1, DIM
        )


def fake_vector(sentence: str) -> torch.Tensor:
    return FakeEncoder.encode(None, [sentence])[0]


@pytest.fixture(autouse=True)
def fake_text(monkeypatch: pytest.MonkeyPatch):
    """Every test here runs with the fake encoder unless it asks for the real one."""
    from mmea_pyg.data.features import text

    FakeEncoder.loads, FakeEncoder.sentences = 0, []
    monkeypatch.setattr(text, "TextEncoder", FakeEncoder)
    monkeypatch.delenv("MMEA_DATA", raising=False)
    return FakeEncoder


def build(folder: Path, root: Path, **kwargs) -> GraphPairDataset:
    return GraphPairDataset(folder, root=root, log=False, **kwargs)


def copy(layout_dir: str, tmp_path: Path) -> Path:
    """A writable copy of a fixture folder."""
    target = tmp_path / "in" / Path(layout_dir).name
    shutil.copytree(EA / layout_dir, target)
    return target


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == FORMATS_LOG and r.levelname == "WARNING"]


def masks(aligned) -> tuple[list[bool], list[bool], list[bool]]:
    return aligned.train_mask.tolist(), aligned.valid_mask.tolist(), aligned.test_mask.tolist()


def snapshot_tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# --------------------------------------------------------------------------------------------------
# detection


@pytest.mark.parametrize(
    ("folder", "layout"),
    [
        ("openea/D_Y_tiny", "openea"),
        ("jape/srprs_tiny", "jape"),
        ("jape/dbp_tiny", "jape"),
        ("meaformer/npz", "meaformer"),
        ("meaformer/pkl", "meaformer"),
        ("plain/nt", "plain"),
        ("plain/tsv", "plain"),
        ("contea/JA-EN_tiny", "contea"),
    ],
)
def test_detect_format(folder: str, layout: str) -> None:
    assert detect_format(EA / folder) == layout
    assert layout in LAYOUTS


def test_unknown_layout_lists_what_was_found_and_what_each_needs(tmp_path: Path) -> None:
    folder = tmp_path / "pair"
    folder.mkdir()
    (folder / "ent_ids_1").write_text("0\thttp://a\n")
    (folder / "notes.txt").write_text("x")
    with pytest.raises(MMEAError) as info:
        detect_format(folder)
    message = str(info.value)
    assert "\n" not in message
    assert "no known graph-pair layout" in message and "found ent_ids_1, notes.txt" in message
    assert (
        "(closest: meaformer, which lacks ent_ids_2, triples_1, triples_2, ill_ent_ids; or jape, which"
        in message
    )
    for needs in ("openea needs rel_triples_1", "jape needs ent_ids_1", "meaformer needs", "ill_ent_ids"):
        assert needs in message
    assert "plain needs triples_1.nt|triples_1.tsv" in message and "contea needs rel_dict" in message


def test_missing_folder_and_missing_file_of_a_named_layout(tmp_path: Path) -> None:
    with pytest.raises(MMEAError, match="no such folder"):
        build(tmp_path / "nope", tmp_path)
    folder = copy("jape/dbp_tiny", tmp_path)
    (folder / "ref_ent_ids").unlink()
    with pytest.raises(
        MMEAError, match=r"the jape layout needs ref_ent_ids, which is missing; found ent_ids_1"
    ):
        build(folder, tmp_path / "root", format="jape")
    with pytest.raises(ConfigError, match="unknown layout 'nt'"):
        build(folder, tmp_path / "root", format="nt")


# --------------------------------------------------------------------------------------------------
# OpenEA


def test_openea_fold_1(tmp_path: Path, caplog: pytest.LogCaptureFixture, fake_text) -> None:
    with caplog.at_level("WARNING"):
        ds = build(EA / "openea" / "D_Y_tiny", tmp_path)
    data = ds[0]
    src, tgt = data["source"], data["target"]
    d = "http://dbpedia.org/resource/"
    assert src.uri == [d + x for x in "ABCDE"] and src.name == list("ABCDE")
    assert tgt.uri == ["YAGO/a", "YAGO/b", "YAGO/c", "YAGO/d", "YAGO/e"]  # e: linked only
    assert src.num_nodes == 5 and tgt.num_nodes == 5
    edges = data["source", "relation", "source"]
    assert edges.edge_index.tolist() == [[0, 1, 0, 3, 4], [1, 2, 2, 2, 2]]  # the repeat is stored once
    assert edges.edge_type.tolist() == [0, 1, 1, 2, 2]
    assert edges.relation_names == [
        f"http://dbpedia.org/ontology/{r}" for r in ("spouse", "birthPlace", "country")
    ]
    tedges = data["target", "relation", "target"]  # CRLF file
    assert tedges.edge_index.tolist() == [[0, 1, 0, 3], [1, 2, 2, 2]]
    assert tedges.relation_names == ["isMarriedTo", "wasBornIn", "isLocatedIn"]
    # Empty attribute files: zero-width features, no text model loaded, no images.
    for store in (src, tgt):
        assert store.x_attr.shape == (5, 0) and not store.attr_mask.any()
        assert store.x_img.shape == (5, 0) and not store.img_mask.any() and not store.has_image.any()
    assert fake_text.loads == 0
    aligned = data["source", "aligned", "target"]
    assert aligned.edge_index.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    assert aligned.given_split.tolist() == [0, 0, 1, 2, 2]
    assert masks(aligned) == (
        [True, True, False, False, False],
        [False, False, True, False, False],
        [False, False, False, True, True],
    )
    stats = ds.statistics()
    assert stats["layout"] == "openea" and stats["fold"] == 1 and stats["pairs"] == 5
    assert stats["source"]["triples"] == 5 and stats["source"]["triple_lines"] == 6
    assert stats["target"]["entities_without_triples"] == 1 and stats["target"]["relations"] == 3
    assert stats["split"]["given"] == "721_5fold/1"
    assert (stats["split"]["train"], stats["split"]["valid"], stats["split"]["test"]) == (2, 1, 2)
    (warning,) = warnings_of(caplog)
    assert warning.endswith(
        "721_5fold/1/test_links: 1 linked entity of KG2 appears in no relation triple (first: line 2, "
        "'YAGO/e'); only its attributes or name can align it"
    )
    assert data.dataset_name == "D_Y_tiny"


def test_openea_fold_2_and_missing_fold(tmp_path: Path) -> None:
    aligned = build(EA / "openea" / "D_Y_tiny", tmp_path, fold=2)[0]["source", "aligned", "target"]
    assert masks(aligned) == (
        [False, False, False, True, True],
        [True, False, False, False, False],
        [False, True, True, False, False],
    )
    with pytest.raises(DataFormatError, match=r"721_5fold/3: no such fold \(found 1, 2\); pass --fold"):
        build(EA / "openea" / "D_Y_tiny", tmp_path, fold=3)
    with pytest.raises(ConfigError, match="--fold 2 applies to OpenEA folders only"):
        build(EA / "jape" / "dbp_tiny", tmp_path, fold=2)


def test_openea_without_folds_has_a_seeded_split_and_attribute_sentences(tmp_path: Path, fake_text) -> None:
    folder = copy("openea/D_Y_tiny", tmp_path)
    shutil.rmtree(folder / "721_5fold")
    d, o = "http://dbpedia.org/resource/", "http://dbpedia.org/ontology/"
    (folder / "attr_triples_1").write_text(
        f'{d}A\t{o}birthDate\t"1946-06-14"^^<http://www.w3.org/2001/XMLSchema#date>\n'
        f"{d}A\t{o}populationTotal\t1200.0\n{d}C\t{o}motto\tvive la France\n"
    )
    ds = build(folder, tmp_path / "root", split_ratio=0.6, valid_ratio=0.2)
    src = ds[0]["source"]
    assert src.attr_mask.tolist() == [True, False, True, False, False]
    assert src.x_attr.shape == (5, DIM) and torch.all(src.x_attr[~src.attr_mask] == 0)
    torch.testing.assert_close(
        src.x_attr[0], fake_vector("birth date is 1946-06-14, population total is 1200")
    )
    torch.testing.assert_close(src.x_attr[2], fake_vector("motto is vive la France"))
    tgt = ds[0]["target"]  # no attributes, same width
    assert tgt.x_attr.shape == (5, DIM) and not tgt.attr_mask.any()
    assert fake_text.loads == 1  # one model load for both KGs
    aligned = ds[0]["source", "aligned", "target"]
    assert aligned.given_split.tolist() == [-1] * 5
    assert [int(m.sum()) for m in (aligned.train_mask, aligned.valid_mask, aligned.test_mask)] == [2, 1, 2]
    assert ds.statistics()["split"]["given"] is None
    assert ds.statistics()["source"]["attribute_triples"] == 3


# --------------------------------------------------------------------------------------------------
# JAPE / DBP15K


def test_jape_interleaved_ids_crlf_sup_and_ref(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        ds = build(EA / "jape" / "srprs_tiny", tmp_path)
    data = ds[0]
    src, tgt = data["source"], data["target"]
    people = ["Alice", "Bob", "Carol", "Dave"]
    assert src.uri == [f"http://dbpedia.org/resource/{p}" for p in people]
    assert tgt.uri == [f"http://de.dbpedia.org/resource/{p}" for p in [*people, "Eve"]]
    assert src.name == people
    edges = data["source", "relation", "source"]  # ids 0 1 6 7 -> indices 0 1 2 3
    assert edges.edge_index.tolist() == [[0, 1, 2], [1, 2, 3]] and edges.edge_type.tolist() == [0, 1, 1]
    assert edges.relation_names == ["http://dbpedia.org/ontology/spouse", "http://dbpedia.org/ontology/knows"]
    tedges = data["target", "relation", "target"]  # ids 2 3 4 8 -> indices 0 1 2 3
    assert tedges.edge_index.tolist() == [[0, 1, 2], [1, 2, 3]] and tedges.edge_type.tolist() == [0, 1, 1]
    assert tedges.relation_names[1] == "http://de.dbpedia.org/property/kennt"
    # training_attrs: attribute-name lists.
    assert src.attr_mask.tolist() == [True, False, False, False]
    assert tgt.attr_mask.tolist() == [False, True, False, False, False]
    torch.testing.assert_close(src.x_attr[0], fake_vector("birth date, name"))
    torch.testing.assert_close(tgt.x_attr[1], fake_vector("geburtsdatum"))
    aligned = data["source", "aligned", "target"]
    assert aligned.edge_index.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert aligned.given_split.tolist() == [3, 3, 2, 2]  # sup_ent_ids: train or valid; ref_ent_ids: test
    # valid_ratio 0.1 of 4 links rounds to 0: both sup links train.
    assert masks(aligned) == ([True, True, False, False], [False] * 4, [False, False, True, True])
    stats = ds.statistics()
    assert stats["source"]["triple_lines"] == 4 and stats["source"]["triples"] == 3
    assert stats["target"]["entities"] == 5 and stats["target"]["entities_without_triples"] == 1
    assert stats["source"]["attribute_triples"] == 2
    (warning,) = warnings_of(caplog)
    assert (
        "training_attrs_1: 1 line(s) name an entity that ent_ids_1 does not define (first: line 2" in warning
    )


def test_jape_validation_is_carved_from_sup(tmp_path: Path) -> None:
    ds = build(EA / "jape" / "srprs_tiny", tmp_path, valid_ratio=0.25, split_seed=3)
    train, valid, test = masks(ds[0]["source", "aligned", "target"])
    assert sum(train) == 1 and sum(valid) == 1 and test == [False, False, True, True]
    assert not any(valid[2:])  # never a test (ref_ent_ids) link
    with pytest.raises(ConfigError, match="asks for 2 validation links, but the folder ships only 2"):
        ds.resplit(0.3, 0, 0.5)


def test_dbp15k_like_links_get_a_seeded_split_independent_of_line_order(tmp_path: Path) -> None:
    ds = build(EA / "jape" / "dbp_tiny", tmp_path)
    data = ds[0]
    aligned = data["source", "aligned", "target"]
    # ref_ent_ids lists the links in reverse; they are stored sorted by (source URI, target URI).
    assert aligned.edge_index.tolist() == [list(range(10)), list(range(10))]
    assert data["source", "relation", "source"].relation_names == ["0", "1"]  # no rel_ids: the ids
    counts = [int(m.sum()) for m in (aligned.train_mask, aligned.valid_mask, aligned.test_mask)]
    assert counts == [2, 1, 7]  # 0.3 known (0.2 train + 0.1 valid), 0.7 test
    first = masks(aligned)

    shuffled = copy("jape/dbp_tiny", tmp_path)
    lines = (shuffled / "ref_ent_ids").read_text().splitlines()
    (shuffled / "ref_ent_ids").write_text("\n".join(lines[3:] + lines[:3]) + "\n")
    other = build(shuffled, tmp_path / "root2")
    assert masks(other[0]["source", "aligned", "target"]) == first

    processed = Path(ds.processed_paths[0])
    mtime = processed.stat().st_mtime_ns
    again = build(EA / "jape" / "dbp_tiny", tmp_path, split_seed=1, split_ratio=0.5, valid_ratio=0.2)
    assert processed.stat().st_mtime_ns == mtime  # resplit, not reprocessed
    assert [int(m.sum()) for m in masks_t(again)] == [3, 2, 5]
    with pytest.raises(ConfigError, match="validation ratio 0.3 must be >= 0 and below the split ratio 0.3"):
        build(EA / "jape" / "dbp_tiny", tmp_path, valid_ratio=0.3)


def masks_t(ds: GraphPairDataset):
    aligned = ds[0]["source", "aligned", "target"]
    return aligned.train_mask, aligned.valid_mask, aligned.test_mask


# --------------------------------------------------------------------------------------------------
# MEAformer


def test_meaformer_npz_images_and_one_sided_attributes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING"):
        ds = build(EA / "meaformer" / "npz", tmp_path)
    src, tgt = ds[0]["source"], ds[0]["target"]
    assert src.x_img.shape == (3, 4) and tgt.x_img.shape == (3, 4)
    assert src.img_mask.tolist() == [True, False, True] and tgt.img_mask.tolist() == [False, True, False]
    assert src.x_img.tolist() == [[1, 0, 0, 0.5], [0, 0, 0, 0], [0, 1, 0, 0.5]]
    assert tgt.x_img.tolist() == [[0, 0, 0, 0], [0, 0, 1, 0.5], [0, 0, 0, 0]]  # masks, never random rows
    assert torch.equal(src.has_image, src.img_mask)
    assert src.attr_mask.tolist() == [True, False, False] and not tgt.attr_mask.any()
    assert src.x_attr.shape == tgt.x_attr.shape == (3, DIM)
    torch.testing.assert_close(src.x_attr[0], fake_vector("population, area code"))
    assert ds[0]["source", "aligned", "target"].given_split.tolist() == [-1, -1, -1]
    assert any(
        "1 vector(s) of ids that ent_ids_1/ent_ids_2 do not define (first: id 99)" in w
        for w in warnings_of(caplog)
    )
    from mmea_pyg.models.modalities import available_modalities

    assert set(available_modalities(ds[0])) == {"r", "a", "v"}


def test_meaformer_pickle_is_refused_without_trust(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(MMEAError) as info:
        build(EA / "meaformer" / "pkl", root)
    message = str(info.value)
    assert "\n" not in message and "zh_en_id_img_feature_dict.pkl: refused to load this pickle" in message
    assert "--trust-pickle" in message and "zh_en_id_img_feature_dict.npz" in message
    assert not list(root.rglob("data_*.pt"))  # nothing half-written
    trusted = build(EA / "meaformer" / "pkl", root, trust_pickle=True)
    reference = build(EA / "meaformer" / "npz", root)
    assert torch.equal(trusted[0]["source"].x_img, reference[0]["source"].x_img)
    assert torch.equal(trusted[0]["target"].img_mask, reference[0]["target"].img_mask)


class _Evil:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_runs_nothing_when_refused(tmp_path: Path) -> None:
    folder = copy("meaformer/pkl", tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "zh_en_id_img_feature_dict.pkl", "wb") as handle:
        pickle.dump(_Evil(marker), handle)
    with pytest.raises(MMEAError, match="refused to load this pickle"):
        build(folder, tmp_path / "root")
    with pytest.raises(MMEAError, match="refused to load this pickle"):
        read_graph_pair(folder)
    assert not marker.exists()
    # The file really runs code when trusted (what the refusal prevents).
    with pytest.raises(DataFormatError, match="not a dictionary"):
        read_graph_pair(folder, trust_pickle=True)
    assert marker.exists()


def test_npz_wins_over_pkl_and_object_arrays_are_refused(tmp_path: Path) -> None:
    folder = copy("meaformer/pkl", tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "zh_en_id_img_feature_dict.pkl", "wb") as handle:
        pickle.dump(_Evil(marker), handle)
    shutil.copy(EA / "meaformer" / "npz" / "zh_en_id_img_feature_dict.npz", folder)
    pair = read_graph_pair(folder)
    assert pair.source.image_index.tolist() == [0, 2] and not marker.exists()
    import numpy as np

    np.savez(folder / "zh_en_id_img_feature_dict.npz", **{"0": np.array([object()], dtype=object)})
    with pytest.raises(DataFormatError, match="cannot be read without unpickling"):
        read_graph_pair(folder)


# --------------------------------------------------------------------------------------------------
# plain files


def test_plain_ntriples_literals_labels_and_links(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        ds = build(EA / "plain" / "nt", tmp_path)
    data = ds[0]
    src, tgt = data["source"], data["target"]
    k1, k2 = "http://ex.org/kg1/", "http://ex.org/kg2/"
    assert src.uri == [k1 + "Alice", k1 + "Bob", k1 + "Paris", "_:b1", k1 + "Carol"]
    assert src.name == ["Alice Liddell", "Bob", "Paris", "_:b1", "Carol"]  # rdfs:label, skos:prefLabel
    assert tgt.uri == [k2 + "alice", k2 + "bob", k2 + "paris", k2 + "carol"]
    assert tgt.name == ["Alice", "bob", "paris", "carol"]
    edges = data["source", "relation", "source"]
    assert edges.edge_index.tolist() == [[0, 1, 3], [1, 2, 0]] and edges.edge_type.tolist() == [0, 1, 0]
    assert edges.relation_names == [k1 + "knows", k1 + "livesIn"]
    assert data["target", "relation", "target"].edge_index.tolist() == [[0, 1], [1, 2]]  # CRLF file
    # Literals are attributes, labels are names only.
    assert src.attr_mask.tolist() == [True, True, False, False, True]
    torch.testing.assert_close(src.x_attr[0], fake_vector("birth year is 1852"))
    torch.testing.assert_close(src.x_attr[1], fake_vector('motto is say "hi"'))
    torch.testing.assert_close(src.x_attr[4], fake_vector("birth year is 1900"))
    assert not tgt.attr_mask.any() and tgt.x_attr.shape == (4, DIM)
    aligned = data["source", "aligned", "target"]
    assert aligned.edge_index.tolist() == [[0, 1, 4, 2], [0, 1, 3, 2]]  # sorted: Alice, Bob, Carol, Paris
    stats = ds.statistics()
    assert stats["source"]["attribute_triples"] == 3 and stats["source"]["attribute_names"] == 2
    assert (
        stats["source"]["entities_without_triples"] == 1 and stats["target"]["entities_without_triples"] == 1
    )
    warned = warnings_of(caplog)
    assert len(warned) == 2 and "links.tsv: 1 linked entity of KG1 appears in no relation triple" in warned[0]


def test_structure_only_pair_trains_clamea_unchanged(tmp_path: Path) -> None:
    from mmea_pyg.config import Config
    from mmea_pyg.models.modalities import available_modalities
    from mmea_pyg.training.trainer import Trainer

    ds = build(EA / "plain" / "tsv", tmp_path / "root", split_ratio=0.5)
    data = ds[0]
    assert [int(m.sum()) for m in masks_t(ds)] == [4, 1, 5]
    assert data["source"].x_attr.shape == (10, 0) and data["target"].x_img.shape == (10, 0)
    assert available_modalities(data) == ("r",)
    config = Config.recommended("clamea").override(["train.device=cpu"])
    config.out = str(tmp_path / "run")
    losses = Trainer(config, data, progress=False).train_epoch()
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values())


# --------------------------------------------------------------------------------------------------
# ContEA


def test_contea_snapshots(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = EA / "contea" / "JA-EN_tiny"
    base = build(folder, tmp_path)
    assert base[0]["source"].uri == ["0", "2", "4"] and base[0]["target"].uri == ["1", "3", "5"]
    assert base.statistics()["snapshot"] == 0
    assert [int(m.sum()) for m in masks_t(base)] == [1, 1, 1]

    one = build(folder, tmp_path, snapshot=1)
    stats = one.statistics()
    assert (stats["source"]["entities"], stats["target"]["entities"]) == (4, 4)
    assert (stats["source"]["triple_lines"], stats["source"]["triples"]) == (4, 3)  # batch 1 repeats one
    assert [int(m.sum()) for m in masks_t(one)] == [1, 1, 2]

    with caplog.at_level("WARNING"):
        two = build(folder, tmp_path, snapshot=2)
    data = two[0]
    src, tgt = data["source"], data["target"]
    assert src.uri == ["0", "2", "4", "6", "8", "10"] and tgt.uri == ["1", "3", "5", "7", "9", "11"]
    edges = data["source", "relation", "source"]
    assert edges.edge_index.tolist() == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    assert edges.edge_type.tolist() == [0, 1, 0, 2, 1]
    assert edges.relation_names == [f"http://ja.dbpedia.org/property/{r}" for r in "abc"]  # ids 0, 1, 4
    assert data["target", "relation", "target"].relation_names == [
        "http://dbpedia.org/property/x",
        "http://dbpedia.org/property/y",
    ]
    aligned = data["source", "aligned", "target"]
    # Sorted by the id strings: "0", "10", "2", "4", "6", "8".
    assert aligned.edge_index.tolist() == [[0, 5, 1, 2, 3, 4], [0, 5, 1, 2, 3, 4]]
    assert masks(aligned) == (
        [True, False, False, False, False, False],
        [False, False, True, False, False, False],
        [False, True, False, True, True, True],
    )
    assert two.statistics()["target"]["entities_without_triples"] == 1  # id 11: a link only
    assert any("batch2/new_test_links: 1 linked entity of KG2" in w for w in warnings_of(caplog))
    with pytest.raises(DataFormatError, match=r"snapshot 3 does not exist .* snapshots 0 \.\. 2"):
        build(folder, tmp_path, snapshot=3)


def test_contea_all_test_links_cross_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = copy("contea/JA-EN_tiny", tmp_path)
    (folder / "batch1" / "all_test_links").write_text("4\t5\n")
    with caplog.at_level("WARNING"):
        ds = build(folder, tmp_path / "root", snapshot=1)
    assert [int(m.sum()) for m in masks_t(ds)] == [1, 1, 2]
    assert any("all_test_links: lists 0 test link(s)" in w and "misses 1" in w for w in warnings_of(caplog))


# --------------------------------------------------------------------------------------------------
# files: where they go, what they are keyed on, corrupted ones


def test_input_folder_is_never_written_and_processed_location(tmp_path: Path) -> None:
    folder = copy("plain/nt", tmp_path)
    before = snapshot_tree(folder)
    root = tmp_path / "root"
    ds = build(folder, root)
    assert snapshot_tree(folder) == before
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    processed = Path(ds.processed_paths[0])
    assert processed.parent == root / "graph_pairs" / f"nt-{tag}" / "processed"
    assert processed.name.startswith("data_") and processed.is_file()
    assert list((root / "graph_pairs" / f"nt-{tag}" / "cache").glob("text_source_*.pt"))


def test_key_follows_content_not_mtime(tmp_path: Path, fake_text) -> None:
    folder = copy("jape/srprs_tiny", tmp_path)
    root = tmp_path / "root"
    first = Path(build(folder, root).processed_paths[0])
    later = first.stat().st_mtime_ns + 10**10
    os.utime(folder / "triples_2", ns=(later, later))
    assert Path(build(folder, root).processed_paths[0]) == first  # same content, new mtime
    loads = fake_text.loads
    with open(folder / "triples_2", "a") as handle:
        handle.write("8\t2\t9\n")
    changed = build(folder, root)
    assert Path(changed.processed_paths[0]) != first
    assert changed.statistics()["target"]["triples"] == 4
    assert fake_text.loads == loads  # the attribute sentences did not change: the feature cache is reused


def test_truncated_processed_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = build(EA / "openea" / "D_Y_tiny", tmp_path)
    stats = ds.statistics()
    processed = Path(ds.processed_paths[0])
    os.truncate(processed, processed.stat().st_size // 2)
    with caplog.at_level("WARNING", logger="mmea_pyg.data.base"):
        again = build(EA / "openea" / "D_Y_tiny", tmp_path)
    (notice,) = [
        r.getMessage() for r in caplog.records if "processed dataset is unreadable" in r.getMessage()
    ]
    assert notice.startswith(f"{processed}: ") and notice.endswith("; rebuilding")
    assert again.statistics() == stats


def test_malicious_processed_file_is_not_unpickled_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = build(EA / "contea" / "JA-EN_tiny", tmp_path, snapshot=1)
    stats = ds.statistics()
    marker = tmp_path / "pwned"
    torch.save(_Evil(marker), ds.processed_paths[0])
    with caplog.at_level("WARNING", logger="mmea_pyg.data.base"):
        again = build(EA / "contea" / "JA-EN_tiny", tmp_path, snapshot=1)
    assert not marker.exists()
    assert any(
        "could run code" in r.getMessage() and r.getMessage().endswith("; rebuilding") for r in caplog.records
    )
    assert again.statistics() == stats


def test_real_text_model_encodes_like_the_mmkg_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmea_pyg.data.features import text

    monkeypatch.undo()  # the packaged all-MiniLM-L6-v2, as MMKGDataset uses it
    ds = build(EA / "plain" / "nt", tmp_path)
    src = ds[0]["source"]
    expected = text.TextEncoder().encode(["birth year is 1852", 'motto is say "hi"', "birth year is 1900"])
    torch.testing.assert_close(src.x_attr[src.attr_mask], expected)
    assert src.x_attr.shape == (5, 384)


# --------------------------------------------------------------------------------------------------
# bad input: one clear line each


def _bad(tmp_path: Path, fixture: str, name: str, content: str | bytes) -> Path:
    folder = copy(fixture, tmp_path)
    path = folder / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return folder


@pytest.mark.parametrize(
    ("fixture", "name", "content", "pattern"),
    [
        (
            "openea/D_Y_tiny",
            "rel_triples_1",
            "a\tr\tb\na\tr\n",
            r"rel_triples_1, line 2: expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', got 2",
        ),
        ("jape/dbp_tiny", "triples_1", "0 0 1\n1 0 42\n", r"triples_1, line 2: tail id 42 is not defined"),
        ("jape/dbp_tiny", "triples_1", "0 0 1\n1 0\n", r"triples_1, line 2: expected 3 ids"),
        (
            "jape/dbp_tiny",
            "ref_ent_ids",
            "0\t10\n11\t1\n",
            r"ref_ent_ids, line 2: source \(KG1\) id 11 belongs to KG2",
        ),
        (
            "jape/dbp_tiny",
            "ent_ids_2",
            "10\thttp://x/a\n3\thttp://x/b\n",
            r"ent_ids_2, line 2: id 3 is already defined",
        ),
        ("jape/dbp_tiny", "triples_1", "", r"triples_1: KG1 has no relation triples"),
        ("openea/D_Y_tiny", "rel_triples_2", "\n\n", r"rel_triples_2: KG2 has no relation triples"),
        (
            "openea/D_Y_tiny",
            "rel_triples_2",
            "YAGO/a\tr\tYAGO/b\nYAGO/b\tr\tYAGO/\xe9\n".encode("latin-1"),
            r"rel_triples_2, line 2: not valid UTF-8 \(byte 0xe9 at column 15\)",
        ),
        (
            "plain/nt",
            "triples_1.nt",
            "<a> <b> <c> .\n<a> <b> c .\n",
            r"triples_1.nt, line 2: expected an N-Triples",
        ),
        (
            "contea/JA-EN_tiny",
            "base/triples_2",
            "1\t2\t3\n0\t3\t5\n",
            r"base/triples_2, line 2: id 0 is an entity of KG1",
        ),
        (
            "contea/JA-EN_tiny",
            "base/triples_1",
            "0\t9\t2\n",
            r"base/triples_1, line 1: relation id 9 is not defined in rel_dict",
        ),
        (
            "openea/D_Y_tiny",
            "721_5fold/1/test_links",
            "http://dbpedia.org/resource/A\tYAGO/a\n",
            r"test_links, line 1: link .* is already a train link",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_and_line(
    tmp_path: Path, fixture: str, name: str, content: str | bytes, pattern: str
) -> None:
    folder = _bad(tmp_path, fixture, name, content)
    root = tmp_path / "root"
    with pytest.raises(MMEAError, match=pattern) as info:
        build(folder, root)
    assert "\n" not in str(info.value)
    assert not list(root.rglob("data_*.pt"))


def test_duplicate_links_are_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _bad(tmp_path, "jape/dbp_tiny", "ref_ent_ids", "0\t10\n1\t11\n0\t10\n2\t12\n0\t10\n")
    with caplog.at_level("WARNING"):
        ds = build(folder, tmp_path / "root")
    assert ds.statistics()["pairs"] == 3
    (warning,) = warnings_of(caplog)
    assert "ref_ent_ids: 2 duplicate link(s) dropped (first: line 3, 0 -> 10, as on line 1)" in warning


def test_conflicting_links_keep_both_counterparts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    links = "".join(f"{i}\t{i + 10}\n" for i in range(10)) + "0\t15\n"  # source 0 also linked to E5
    folder = _bad(tmp_path, "jape/dbp_tiny", "ref_ent_ids", links)
    with caplog.at_level("WARNING"):
        ds = build(folder, tmp_path / "root", split_ratio=0.5, valid_ratio=0.2)
    aligned = ds[0]["source", "aligned", "target"]
    assert aligned.edge_index.size(1) == 11
    (warning,) = warnings_of(caplog)
    assert "1 link(s) give an entity a second counterpart (first: line 11, 0 -> 15)" in warning
    assert "all are kept as gold counterparts" in warning
    # The seeded split keeps the pairs sharing an entity (0-10, 0-15, 5-15) in one part.
    cols = [i for i, (s, t) in enumerate(aligned.edge_index.t().tolist()) if s in (0, 5)]
    assert len(cols) == 3
    for mask in masks_t(ds):
        assert len({bool(mask[c]) for c in cols}) == 1


# --------------------------------------------------------------------------------------------------
# open_dataset and `mmea info`


def test_open_dataset_folder_and_unknown_name(tmp_path: Path) -> None:
    ds = open_dataset(EA / "jape" / "dbp_tiny", root=tmp_path, log=False)
    assert isinstance(ds, GraphPairDataset) and ds.statistics()["split"]["ratio"] == 0.3
    with pytest.raises(MMEAError) as info:
        open_dataset("dbp15k", root=tmp_path)
    message = str(info.value)
    assert "neither a registered dataset nor a folder" in message and "\n" not in message
    for name in (
        "fb15k-db15k",
        "dbp15k-zh-en",
        "srprs-en-de",
        "openea-d-y-15k-v1",
        "openea needs",
        "contea needs",
    ):
        assert name in message


def test_open_dataset_mmkg_name(data_root: Path) -> None:
    from mmea_pyg.data.mmkg import MMKGDataset

    ds = open_dataset("FB15K-DB15K", root=data_root, log=False)
    assert isinstance(ds, MMKGDataset) and ds.split_ratio == 0.2
    with pytest.raises(ConfigError, match="MMKG benchmark"):
        open_dataset("fb15k-db15k", root=data_root, snapshot=1)


def _cli():
    from mmea_pyg.cli.main import cli

    return cli


def test_info_command_on_folders(tmp_path: Path) -> None:
    folder = str(EA / "contea" / "JA-EN_tiny")
    args = ["info", folder, "--root", str(tmp_path), "--snapshot", "2", "--format", "json"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["snapshot"] == 2 and stats["source"]["entities"] == 6 and stats["split"]["test"] == 4
    table = CliRunner().invoke(
        _cli(), ["info", str(EA / "jape" / "srprs_tiny"), "--root", str(tmp_path), "--format", "table"]
    )
    assert table.exit_code == 0, table.output
    assert "layout jape" in table.output and "split shipped by the files" in table.output
    assert "entities in no relation triple" in table.output and "2 / 0 / 2" in table.output

    refused = CliRunner().invoke(_cli(), ["info", str(EA / "meaformer" / "pkl"), "--root", str(tmp_path)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "refused to load this pickle" in refused.output
    trusted = CliRunner().invoke(
        _cli(),
        [
            "info",
            str(EA / "meaformer" / "pkl"),
            "--root",
            str(tmp_path),
            "--trust-pickle",
            "--format",
            "json",
        ],
    )
    assert (
        trusted.exit_code == 0 and json.loads(trusted.stdout)["source"]["entities_with_image_features"] == 2
    )

    wrong = CliRunner().invoke(_cli(), ["info", folder, "--root", str(tmp_path), "--layout", "jape"])
    assert wrong.exit_code == 1 and "the jape layout needs ent_ids_1" in wrong.output

    unknown = CliRunner().invoke(_cli(), ["info", "no-such-thing", "--root", str(tmp_path)])
    assert unknown.exit_code == 2
    assert "neither a registered dataset nor a folder" in unknown.output and "srprs-en-de" in unknown.output


def test_contea_relation_ids_far_apart_cost_no_memory(tmp_path: Path) -> None:
    """Relation ids are ranked, not used as indices: an id of 10^12 allocates nothing of its size."""
    folder = copy("contea/JA-EN_tiny", tmp_path)
    (folder / "rel_dict").write_text(
        (folder / "rel_dict")
        .read_text()
        .replace("1\thttp://ja.dbpedia.org/property/b", "1000000000000\thttp://ja.dbpedia.org/property/b")
    )
    (folder / "base" / "triples_1").write_text("0\t0\t2\n2\t1000000000000\t4\n")
    pair = read_graph_pair(folder, "contea")
    assert pair.source.relations == ["http://ja.dbpedia.org/property/a", "http://ja.dbpedia.org/property/b"]
    assert pair.source.triples[:, 1].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("layout", "file", "line", "content"),
    [
        ("contea/JA-EN_tiny", "rel_dict", 2, "0\thttp://a\n-1\thttp://b\n"),
        ("contea/JA-EN_tiny", "base/triples_1", 2, "0\t0\t2\n2\t-1\t4\n"),
        ("contea/JA-EN_tiny", "base/train_links", 1, "-2\t1\n"),
        ("contea/JA-EN_tiny", "base/triples_1", 1, f"0\t{2**64}\t2\n"),
        ("jape/dbp_tiny", "ent_ids_1", 1, "-5\thttp://x\n"),
    ],
)
def test_negative_or_huge_ids_are_refused_naming_file_and_line(
    layout, file, line, content, tmp_path: Path
) -> None:
    folder = copy(layout, tmp_path)
    (folder / file).write_text(content)
    with pytest.raises(DataFormatError, match="is out of range") as info:
        read_graph_pair(folder, layout.split("/")[0])
    assert info.value.path.endswith(file) and info.value.line == line
