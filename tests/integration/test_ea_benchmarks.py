"""The entity-alignment benchmarks of the offline mirror (``../shared/ea``, or ``$MMEA_EA_MIRROR``), read in
place and downloaded through their registry cards.

The expected counts were measured independently of the loader with coreutils on the mirror's files:

* entities: ``cut -f2 ent_ids_N | sort -u | wc -l`` (JAPE); ``awk -F'\\t' '{print $1"\\n"$3}' rel_triples_N |
  sort -u | wc -l`` (OpenEA); for ContEA snapshot k the same over ``base/triples_N`` and
  ``batch1..k/new_triples_N`` (no ``ent_ids`` files; every linked entity appears in a triple);
* triples: ``wc -l`` (lines) and ``sort -u | wc -l`` (distinct; CRLF removed with ``tr -d '\\r'``);
* relations: ``cut -f2 | sort -u | wc -l`` over the triples;
* links: ``wc -l`` of ``sup_ent_ids`` / ``ref_ent_ids``, of the fold files, of ``base/*_links`` and
  ``batchK/new_test_links`` (whose union equals ``batchK/all_test_links``: ``comm -3`` is empty).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmea_pyg.data import download as dl
from mmea_pyg.data import open_dataset
from mmea_pyg.data.graph_pair import GraphPairDataset
from mmea_pyg.data.registry import get_ea_card

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def ea_mirror() -> Path:
    for candidate in (os.environ.get("MMEA_EA_MIRROR"), REPO.parent / "shared" / "ea"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    pytest.skip("no entity-alignment mirror: set MMEA_EA_MIRROR to a folder like ../shared/ea")


def folder(relative: str) -> Path:
    path = ea_mirror() / relative
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def summary(ds: GraphPairDataset) -> dict:
    stats = ds.statistics()
    return {
        "entities": (stats["source"]["entities"], stats["target"]["entities"]),
        "triple_lines": (stats["source"]["triple_lines"], stats["target"]["triple_lines"]),
        "triples": (stats["source"]["triples"], stats["target"]["triples"]),
        "relations": (stats["source"]["relations"], stats["target"]["relations"]),
        "without_triples": (
            stats["source"]["entities_without_triples"],
            stats["target"]["entities_without_triples"],
        ),
        "pairs": stats["pairs"],
        "split": (stats["split"]["train"], stats["split"]["valid"], stats["split"]["test"]),
    }


SRPRS_EN_DE = {
    "entities": (15000, 15000),
    "triple_lines": (38363, 37377),
    "triples": (38363, 37377),
    "relations": (222, 120),
    "without_triples": (0, 0),
    "pairs": 15000,
    "split": (3000, 1500, 10500),  # sup_ent_ids 4,500 = 3,000 train + 1,500 valid; ref_ent_ids 10,500
}
D_Y_15K_V1 = {
    "entities": (15000, 15000),
    "triple_lines": (30291, 26638),
    "triples": (30291, 26638),
    "relations": (165, 28),
    "without_triples": (0, 0),
    "pairs": 15000,
    "split": (3000, 1500, 10500),  # 721_5fold/1
}


def test_srprs_en_de_in_place(tmp_path: Path) -> None:
    ds = GraphPairDataset(folder("jape/SRPRS_EN_DE_15K_V1"), root=tmp_path, log=False)
    assert ds.format == "jape"
    assert summary(ds) == SRPRS_EN_DE
    data = ds[0]
    assert data["source"].uri[0] == "http://dbpedia.org/resource/Westbury,_New_York"  # ent_ids_1 line 1
    assert data["target"].uri[0] == "http://de.dbpedia.org/resource/Westbury_(New_York)"
    assert data["source"].x_attr.size(1) == 0 and data["target"].x_img.size(1) == 0


def test_openea_d_y_in_place(tmp_path: Path) -> None:
    ds = GraphPairDataset(folder("openea/D_Y_15K_V1"), root=tmp_path, log=False)
    assert ds.format == "openea"
    assert summary(ds) == D_Y_15K_V1


def test_contea_ja_en_snapshots(tmp_path: Path) -> None:
    path = folder("contea/JA-EN")
    base = summary(GraphPairDataset(path, root=tmp_path, log=False))
    assert base["entities"] == (19814, 19780)
    assert base["triples"] == base["triple_lines"] == (77214, 93484)
    assert base["relations"] == (1299, 1153)
    assert base["split"] == (3750, 1875, 13127)
    last = summary(GraphPairDataset(path, root=tmp_path, snapshot=5, log=False))
    assert last["entities"] == (85658, 126006)
    assert last["triple_lines"] == (274884, 421971)
    assert last["triples"] == (244533, 387883)  # batches repeat earlier triples
    assert last["relations"] == (1299, 1153)
    assert last["split"] == (3750, 1875, 29782)  # = wc -l batch5/all_test_links
    assert last["without_triples"] == (0, 0)


@pytest.mark.parametrize(
    ("name", "expected"), [("srprs-en-de", SRPRS_EN_DE), ("openea-d-y-15k-v1", D_Y_15K_V1)]
)
def test_registered_download_is_verified_against_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, expected: dict
) -> None:
    monkeypatch.setenv("MMEA_EA_MIRROR", str(ea_mirror()))
    records = dl.download_dataset(name, root=tmp_path, progress=False)
    present = [r for r in records if not r.skipped]
    assert len(present) == len(get_ea_card(name).files())
    # The mirror's SHA256SUMS governs; every file is also byte-identical to the pinned upstream one.
    assert all(r.status == dl.STATUS_SHA256 and r.upstream == "identical" for r in present)
    ds = open_dataset(name, root=tmp_path, log=False)
    assert summary(ds) == expected
    card = get_ea_card(name)
    stats = ds.statistics()
    for key, value in card.expected.items():
        if key in ("pairs",):
            assert stats["pairs"] == value
        elif key in ("train", "valid", "test"):
            assert stats["split"][key] == value
        else:
            side, what = key.split(".")
            assert stats[side][what] == value, key


def test_mmea_align_end_to_end_on_openea_d_y(tmp_path: Path) -> None:
    """`mmea align` on the real D-Y folder with a short schedule: files, counts and metrics."""
    import json

    from click.testing import CliRunner
    from mmea_pyg.cli.main import cli

    source = folder("openea/D_Y_15K_V1")
    out = tmp_path / "run"
    args = ["align", str(source), "--out", str(out), "--root", str(tmp_path / "data"), "--quiet"]
    args += ["--epochs", "2", "--set", "train.eval_every=1", "--set", "train.iterative_start=100"]
    args += ["--one-to-one", "greedy", "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "modalities: r (not used: v, a" in result.stderr
    pairs = (out / "alignment.tsv").read_text(encoding="utf-8").splitlines()
    # Fold 1: 3,000 training and 1,500 validation links, all known to the refit that aligns; every
    # other source entity (15,000 - 4,500) is a query.
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["queries"] == metrics["candidates"] == 10_500
    assert 0 < len(pairs) - 1 <= 10_500 and len(pairs) - 1 == metrics["pairs"]
    targets = [line.split("\t")[1] for line in pairs[1:]]
    assert len(set(targets)) == len(targets)  # one to one
    assert metrics["test"]["pairs"] == 10_500 and metrics["alignment"]["gold"] == 10_500
    assert metrics["test"]["hits@1"] > 0.05  # two epochs already align some
    candidates = (out / "candidates.tsv").read_text(encoding="utf-8").splitlines()
    assert len(candidates) == 1 + 10 * 10_500
