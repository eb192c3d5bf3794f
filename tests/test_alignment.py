"""Alignment outputs: candidates, mutual flags, one-to-one, thresholds, P/R/F1, files, names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mmea_pyg import pipeline
from mmea_pyg.addons.names import char_ngram_vectors, name_pivots, normalise_label, with_pivots
from mmea_pyg.alignment import (
    greedy_one_to_one,
    hungarian_one_to_one,
    precision_recall_f1,
    top_k_candidates,
)
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError, MMEAError

# Three queries, three candidates, 2-d unit vectors at known angles.
QUERY = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
CANDS = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.96, 0.28]])


def test_top_k_scores_ranks_and_mutual_flags_by_hand():
    found = top_k_candidates(QUERY, CANDS, k=2)
    # q0: c0 (1.0), c2 (0.96); q1: c2 (0.936), c1 (0.96)? -> c1 0.96 > c2 0.936
    assert found.index.tolist() == [[0, 2], [1, 2], [1, 2]]
    expected = torch.tensor([[1.0, 0.96], [0.96, 0.936], [0.8, 0.28]])
    assert torch.allclose(found.scores, expected, atol=1e-6)
    # best query of c0: q0; of c1: q1 (0.96 > q2's 0.8); of c2: q0 (0.96)
    assert found.mutual.tolist() == [True, True, False]


def test_one_to_one_greedy_and_hungarian_by_hand():
    found = top_k_candidates(QUERY, CANDS, k=3)
    rows, cols, values = greedy_one_to_one(found)
    # greedy: (q0,c0) 1.0, (q1,c1) 0.96, then q2 takes c2 (0.28)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 1), (2, 2)]
    assert torch.allclose(values, torch.tensor([1.0, 0.96, 0.28]), atol=1e-6)
    # The optimal assignment trades q1's best for a larger sum: 1.0 + 0.936 + 0.8 > 1.0 + 0.96 + 0.28.
    rows, cols, values = hungarian_one_to_one(QUERY, CANDS)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 2), (2, 1)]
    assert torch.allclose(values, torch.tensor([1.0, 0.936, 0.8]), atol=1e-6)
    with pytest.raises(ConfigError, match="greedy"):
        hungarian_one_to_one(QUERY, CANDS, max_cells=4)
    with pytest.raises(ConfigError, match="top-k"):
        top_k_candidates(QUERY, CANDS, k=0)


def test_greedy_leaves_a_query_unmatched_when_its_candidates_are_taken():
    query = torch.tensor([[1.0, 0.0], [0.99, 0.14]])
    cands = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    rows, cols, _ = greedy_one_to_one(top_k_candidates(query, cands, k=1))
    assert rows.tolist() == [0] and cols.tolist() == [0]


def test_precision_recall_f1_counts_unmatched_entities_as_wrong():
    gold = {(0, 0), (1, 1), (2, 2)}
    # (3, 1): a source with no gold counterpart that got a pair is a false positive.
    metrics = precision_recall_f1({(0, 0), (1, 2), (3, 1)}, gold)
    assert metrics["correct"] == 1 and metrics["precision"] == pytest.approx(1 / 3)
    assert metrics["recall"] == pytest.approx(1 / 3) and metrics["f1"] == pytest.approx(1 / 3)
    assert precision_recall_f1(set(), gold)["f1"] == 0.0


FAST = ["train.epochs=4", "train.eval_every=2", "train.device=cpu", "train.pair_batch_size=32"]


@pytest.fixture(scope="module")
def toy():
    return toy_alignment(num_entities=90, seed=1)


@pytest.fixture(scope="module")
def aligned(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("align") / "run"
    return pipeline.align(data=toy, model="clamea", overrides=FAST, out=out, top_k=3, progress=False)


def test_align_writes_pairs_candidates_and_metrics(aligned: pipeline.AlignmentResult, toy):
    link = toy["source", "aligned", "target"]
    train = int(link.train_mask.sum() + link.valid_mask.sum())  # the refit knows both
    out = Path(aligned.out_dir)
    assert aligned.metrics["queries"] == 90 - train == len(aligned.pairs)
    lines = (out / "alignment.tsv").read_text().splitlines()
    assert lines[0] == "source\ttarget\tscore\tmutual" and len(lines) == len(aligned.pairs) + 1
    scores = [float(line.split("\t")[2]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)
    candidates = (out / "candidates.tsv").read_text().splitlines()
    assert len(candidates) == 1 + 3 * aligned.metrics["queries"]
    # The first candidate of each query is its pair, with the same score.
    first = {s: (t, float(v)) for s, rank, t, v in (c.split("\t") for c in candidates[1:]) if rank == "1"}
    for src, tgt, score, _ in aligned.pairs:
        assert first[src][0] == tgt and first[src][1] == pytest.approx(score, abs=1e-6)
    metrics = aligned.metrics
    assert {"test", "alignment"} <= set(metrics) and (out / "metrics.json").exists()
    assert metrics["test"]["pairs"] == int(toy["source", "aligned", "target"].test_mask.sum())
    assert metrics["alignment"]["gold"] == metrics["test"]["pairs"]
    loaded = pipeline.AlignmentResult.load(out)
    assert len(loaded.pairs) == len(aligned.pairs) and loaded.metrics == aligned.metrics
    assert loaded.run is not None and loaded.run.best_epoch == aligned.run.best_epoch


def test_no_training_entity_is_aligned(aligned: pipeline.AlignmentResult, toy):
    link = toy["source", "aligned", "target"]
    train = link.edge_index[:, link.train_mask | link.valid_mask]  # the refit trained on both
    train_src = {toy["source"].uri[i] for i in train[0].tolist()}
    train_tgt = {toy["target"].uri[i] for i in train[1].tolist()}
    assert not train_src & {p[0] for p in aligned.pairs}
    assert not train_tgt & {c[2] for c in aligned.candidates}


def test_align_refits_on_training_and_validation_links(
    aligned: pipeline.AlignmentResult, toy, tmp_path: Path
):
    link = toy["source", "aligned", "target"]
    known = int(link.train_mask.sum() + link.valid_mask.sum())
    refit = aligned.options["refit"]
    # The schedule (epoch count) comes from the first fit's validation; the refit trains that long on
    # every known link, in its own folder, and its checkpoint is the one that aligned.
    assert refit["epochs"] == aligned.run.best_epoch and refit["links"] == known
    assert Path(refit["run_dir"]) == Path(aligned.out_dir) / "refit"
    assert Path(aligned.checkpoint) == Path(refit["run_dir"]) / "best.pt"
    saved = torch.load(aligned.checkpoint, weights_only=True)
    assert saved["config"]["data"]["valid_in_train"] is True and saved["state"]["epoch"] == refit["epochs"]
    # Reloading the refit's checkpoint rebuilds its split and gives the same alignment.
    again = pipeline.align(
        data=toy, checkpoint=aligned.checkpoint, out=tmp_path / "again", top_k=3, progress=False
    )
    assert again.pairs == aligned.pairs
    # --no-refit aligns with the model selected on validation, whose validation entities are queries.
    plain = pipeline.align(
        data=toy, model="clamea", overrides=FAST, out=tmp_path / "plain", refit=False, progress=False
    )
    assert "refit" not in plain.options and plain.metrics["queries"] == 90 - int(link.train_mask.sum())
    assert Path(plain.checkpoint) == tmp_path / "plain" / "best.pt"


def test_threshold_and_one_to_one_from_a_checkpoint(aligned: pipeline.AlignmentResult, toy, tmp_path: Path):
    ckpt = aligned.checkpoint
    greedy = pipeline.align(
        data=toy, checkpoint=ckpt, out=tmp_path / "g", one_to_one="greedy", progress=False
    )
    targets = [p[1] for p in greedy.pairs]
    assert len(set(targets)) == len(targets)
    cut = aligned.pairs[len(aligned.pairs) // 2][2]
    high = pipeline.align(data=toy, checkpoint=ckpt, out=tmp_path / "t", threshold=cut, progress=False)
    assert all(p[2] >= cut for p in high.pairs) and 0 < len(high.pairs) < len(aligned.pairs)
    assert high.metrics["alignment"]["predicted"] <= aligned.metrics["alignment"]["predicted"]
    with pytest.raises(ConfigError, match="one-to-one"):
        pipeline.align(data=toy, checkpoint=ckpt, out=tmp_path / "x", one_to_one="nope", progress=False)


def test_names_normalisation_and_char_ngrams():
    assert normalise_label("http://dbpedia.org/resource/Paris_(Texas)") == "paris texas"
    assert normalise_label("<http://x.org/a#Caf%C3%A9>") == "café"
    v = char_ngram_vectors(["Berlin", "Berlín", "Tokyo", ""])
    sim = v @ v.T
    assert sim[0, 1] > 0.4 and sim[0, 2] < 0.2 and v[3].abs().sum() == 0


def _named_toy(toy):
    words = [
        f"{a}{b}" for a in ("kar", "mel", "dos", "pin", "tur", "vex", "qua", "lom", "ris") for b in range(10)
    ]
    data = toy.clone()
    link = toy["source", "aligned", "target"].edge_index
    data["source"].name = words[: toy["source"].num_nodes]
    target = [""] * toy["target"].num_nodes
    for s, t in zip(link[0].tolist(), link[1].tolist(), strict=True):
        target[t] = words[s].capitalize() + "_"
    data["target"].name = target
    return data


def test_name_pivots_start_an_alignment_without_links(toy, tmp_path: Path):
    data = _named_toy(toy)
    names = {side: char_ngram_vectors(list(data[side].name)) for side in ("source", "target")}
    pivots = name_pivots(names, min_score=0.9)
    link = toy["source", "aligned", "target"].edge_index
    truth = dict(zip(link[0].tolist(), link[1].tolist(), strict=True))
    assert pivots.size(1) > 40 and all(truth[s] == t for s, t in pivots.t().tolist())
    seeded = with_pivots(data, pivots)
    aligned = seeded["source", "aligned", "target"]
    assert int(aligned.train_mask.sum() + aligned.valid_mask.sum()) == pivots.size(1)
    assert aligned.valid_mask.sum() >= 1
    # End to end through the library, links removed: pivots from names, then every entity aligned.
    bare = data.clone()
    store = bare["source", "aligned", "target"]
    store.edge_index = torch.empty(2, 0, dtype=torch.long)
    for mask in ("train_mask", "valid_mask", "test_mask"):
        store[mask] = torch.empty(0, dtype=torch.bool)
    notices = []
    with pytest.raises(MMEAError, match="--names"):
        pipeline.align(data=bare, overrides=FAST, out=tmp_path / "a", progress=False, echo=notices.append)
    result = pipeline.align(
        data=bare,
        overrides=FAST,
        out=tmp_path / "b",
        progress=False,
        echo=notices.append,
        names=True,
        names_text=False,
    )
    assert any("pivot pairs induced from names" in n for n in notices)
    assert result.metrics["queries"] == 90 and len(result.pairs) == 90
    correct = sum(
        truth[toy["source"].uri.index(s)] == toy["target"].uri.index(t) for s, t, _, _ in result.pairs
    )
    assert correct >= 60  # the names alone nearly decide it


def test_mmea_align_command_on_a_checkpoint(aligned: pipeline.AlignmentResult, tmp_path: Path, monkeypatch):
    from mmea_pyg.cli.main import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["align", "--checkpoint", "missing.pt"])
    assert result.exit_code == 1 and "not found" in result.output
    result = CliRunner().invoke(cli, ["align"])
    assert result.exit_code == 1 and "SOURCE" in result.output


CITIES = ["Berlin", "Paris", "Rome", "Madrid", "Vienna", "Prague", "Lisbon", "Dublin", "Oslo", "Athens"]


def test_mmea_align_on_a_plain_folder_without_links_starts_from_names(tmp_path: Path, monkeypatch):
    """A user's own two graphs, no known pair at all: `--names` induces pivots, the run aligns
    every entity, and the files name the entities by their URIs."""
    from mmea_pyg.cli.main import cli

    folder = tmp_path / "graphs"
    folder.mkdir()
    rows = {1: [], 2: []}
    for i, city in enumerate(CITIES):
        nxt = CITIES[(i + 1) % len(CITIES)]
        far = CITIES[(i + 3) % len(CITIES)]
        rows[1] += [f"http://a.org/{city}\thttp://a.org/near\thttp://a.org/{nxt}"]
        rows[1] += [f"http://a.org/{city}\thttp://a.org/far\thttp://a.org/{far}"]
        rows[2] += [f"http://b.org/{city.upper()}_\thttp://b.org/nahe\thttp://b.org/{nxt.upper()}_"]
        rows[2] += [f"http://b.org/{city.upper()}_\thttp://b.org/fern\thttp://b.org/{far.upper()}_"]
    for k in (1, 2):
        (folder / f"triples_{k}.tsv").write_text("\n".join(rows[k]) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["align", str(folder), "--names", "--epochs", "2", "--set", "train.eval_every=1", "--quiet"]
    args += ["--root", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args[:2], *args[3:]])  # without --names: a clear error
    assert result.exit_code == 1 and "--names" in result.stderr and "Traceback" not in result.output
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "pivot pairs induced from names" in result.stderr
    lines = (tmp_path / "run" / "alignment.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(lines) == len(CITIES)  # every entity aligned: pivots are not given links
    found = {row.split("\t")[0]: row.split("\t")[1] for row in lines}
    correct = sum(found[f"http://a.org/{c}"] == f"http://b.org/{c.upper()}_" for c in CITIES)
    assert correct >= 8
    assert not (tmp_path / "run" / "metrics.json").exists()  # no gold links, no metrics to report


def test_sinkhorn_shares_out_a_hub_candidate():
    from mmea_pyg.alignment import candidates_from_scores, ranks_from_scores, sinkhorn_scores

    # Both queries prefer c0 by cosine; Sinkhorn gives c0 to q0 and c1 to q1.
    query = torch.tensor([[1.0, 0.0], [0.9, 0.44]])
    cands = torch.tensor([[0.95, 0.31], [0.6, 0.8]])
    assert top_k_candidates(query, cands, k=1).index[:, 0].tolist() == [0, 0]
    p = sinkhorn_scores(query, cands, tau=0.05, iters=20)
    assert torch.allclose(p.exp().sum(dim=0), torch.ones(2), atol=1e-4)
    found = candidates_from_scores(p, k=2)
    assert found.index[:, 0].tolist() == [0, 1] and found.mutual.tolist() == [True, True]
    ranks = ranks_from_scores(p)
    assert ranks["s2t"].tolist() == [1.0, 1.0] and ranks["t2s"].tolist() == [1.0, 1.0]
    assert ranks_from_scores(torch.ones(3, 3))["s2t"].tolist() == [2.0, 2.0, 2.0]  # ties: realistic rank
    with pytest.raises(ConfigError, match="dense"):
        sinkhorn_scores(query, cands, max_cells=3)


def _precision_from_the_pairs(result: pipeline.AlignmentResult, data) -> float:
    """The precision of ``result.pairs`` against the test links, recomputed from the URIs."""
    link = data["source", "aligned", "target"]
    test = link.edge_index[:, link.test_mask]
    gold = {(data["source"].uri[s], data["target"].uri[t]) for s, t in test.T.tolist()}
    return sum((src, tgt) in gold for src, tgt, _, _ in result.pairs) / len(result.pairs)


@pytest.mark.parametrize("top_k", [500, 0])
def test_align_with_sinkhorn_from_a_checkpoint(
    aligned: pipeline.AlignmentResult, toy, tmp_path: Path, top_k: int
):
    result = pipeline.align(
        data=toy,
        checkpoint=aligned.checkpoint,
        out=tmp_path / "s",
        sinkhorn=10,
        sinkhorn_top_k=top_k,
        progress=False,
    )
    # The alignment figures judge the pairs written (a regression: the sparse path once judged the
    # test links themselves, precision 1).
    assert result.metrics["alignment"]["precision"] == pytest.approx(_precision_from_the_pairs(result, toy))
    assert result.metrics["alignment"]["precision"] < 1.0
    assert _precision_from_the_pairs(aligned, toy) == pytest.approx(aligned.metrics["alignment"]["precision"])
    assert result.options["embedding"] == "model + Sinkhorn" and result.options["sinkhorn"] == 10
    assert all(0.0 <= p[2] <= 1.0 for p in result.pairs)
    test = result.metrics["test"]
    assert test["pairs"] == aligned.metrics["test"]["pairs"] and 0.0 < test["hits@1"] <= 1.0
    assert {"hits@1", "hits@10", "mrr", "t2s/hits@1"} <= set(test)
    assert result.metrics["alignment"]["gold"] == test["pairs"]


@pytest.mark.parametrize("name", ["2024", "on", "null", "my graphs", "a: b", "x #1"])
def test_mmea_align_takes_any_folder_name(name: str, tmp_path: Path, monkeypatch):
    """The folder reaches the config as a value, never through YAML: names YAML would read as a number,
    a boolean, null, a mapping or a comment align like any other."""
    from mmea_pyg.cli.main import cli

    folder = tmp_path / name
    folder.mkdir()
    rows = {1: [], 2: []}
    for i, city in enumerate(CITIES):
        nxt, far = CITIES[(i + 1) % len(CITIES)], CITIES[(i + 3) % len(CITIES)]
        rows[1] += [f"a:{city}\tnear\ta:{nxt}", f"a:{city}\tfar\ta:{far}"]
        rows[2] += [f"b:{city}\tnahe\tb:{nxt}", f"b:{city}\tfern\tb:{far}"]
    for k in (1, 2):
        (folder / f"triples_{k}.tsv").write_text("\n".join(rows[k]) + "\n", encoding="utf-8")
    links = [f"a:{c}\tb:{c}" for c in CITIES]
    (folder / "links.tsv").write_text("\n".join(links) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["align", name, "--epochs", "1", "--ratio", "0.5", "--quiet", "--device", "cpu"]
    args += ["--root", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = pipeline.AlignmentResult.load(tmp_path / "run")
    assert saved.run.dataset == name and saved.pairs


def test_best_f1_threshold_by_hand():
    from mmea_pyg.alignment import best_f1_threshold

    # Scores 0.9 (right), 0.8 (wrong), 0.7 (right), 0.6 (wrong), 4 gold links: keeping the top 3 gives
    # P 2/3, R 2/4, F1 4/7, better than the top 1 (P 1, R 1/4, F1 0.4) or all 4 (F1 0.5).
    chosen = best_f1_threshold(
        torch.tensor([0.7, 0.9, 0.6, 0.8]), torch.tensor([True, True, False, False]), num_gold=4
    )
    assert chosen["threshold"] == pytest.approx(0.7) and chosen["kept"] == 3
    assert chosen["f1"] == pytest.approx(4 / 7) and chosen["precision"] == pytest.approx(2 / 3)
    # A tie at the cut is kept whole: the threshold never splits equal scores.
    tied = best_f1_threshold(torch.tensor([0.9, 0.5, 0.5]), torch.tensor([True, True, False]), num_gold=2)
    assert (
        tied["kept"] in (1, 3)
        and best_f1_threshold(torch.empty(0), torch.empty(0, dtype=torch.bool), 3)["kept"] == 0
    )


def test_ranks_among_all_candidates_match_a_dense_count():
    from mmea_pyg.evaluation import rank_among
    from mmea_pyg.similarity import sparse_ranks

    g = torch.Generator().manual_seed(0)
    query, cand = torch.randn(30, 8, generator=g), torch.randn(50, 8, generator=g)
    cand[7] = cand[3]  # an exact tie
    true = torch.randint(0, 50, (30,), generator=g)
    true[0] = 3
    scores = torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(cand, dim=1).T
    t = scores.gather(1, true.unsqueeze(1))
    expect = 1 + (scores > t).sum(1) + 0.5 * ((scores == t).sum(1) - 1)
    got = rank_among(query, cand, true, chunk_size=7)
    assert torch.equal(got["s2t"], expect.float())
    # The sparse form over all columns: the listed top-k probabilities, unlisted ones 0.
    values, index = scores.topk(10, dim=1)
    ranks = sparse_ranks(values, index, torch.arange(30), true, num_columns=50)["s2t"]
    listed = (index == true.unsqueeze(1)).any(1)
    assert torch.equal(ranks[listed], expect[listed].float())
    unlisted_rank = 1 + 10 + 0.5 * (50 - 10 - 1)  # below every listed one, tied with the other unlisted
    assert torch.all(ranks[~listed] == unlisted_rank)


def test_align_reports_figures_among_all_targets_mutual_pairs_and_a_validation_threshold(toy, tmp_path: Path):
    plain = pipeline.align(
        data=toy, model="clamea", overrides=FAST, out=tmp_path / "plain", refit=False, progress=False
    )
    m = plain.metrics
    among = m["test_among_unaligned"]
    assert among["ranked_among"] == m["candidates"] > m["test"]["ranked_among"]
    assert among["scores"] == "cosine" and among["hits@1"] <= m["test"]["hits@1"] + 1e-9
    mutual = m["alignment_mutual"]
    assert mutual["predicted"] == sum(1 for p in plain.pairs if p[3] and p[0] not in _valid_uris(toy))
    chosen = m["alignment_valid_threshold"]
    assert chosen["predicted"] <= m["alignment"]["predicted"] and 0.0 <= chosen["valid_f1"] <= 1.0
    assert "among all" in plain.summary() and "threshold chosen on validation" in plain.summary()
    # A refit knows the validation links: no validation sources to choose a threshold on.
    refit = pipeline.align(data=toy, model="clamea", overrides=FAST, out=tmp_path / "refit", progress=False)
    assert "alignment_valid_threshold" not in refit.metrics and "test_among_unaligned" in refit.metrics
    sinkhorn = pipeline.align(
        data=toy, checkpoint=plain.checkpoint, out=tmp_path / "s", sinkhorn=10, progress=False
    )
    assert sinkhorn.metrics["test_among_unaligned"]["scores"] == "sparse Sinkhorn"


def _valid_uris(data) -> set[str]:
    link = data["source", "aligned", "target"]
    return {data["source"].uri[i] for i in link.edge_index[0, link.valid_mask].tolist()}


def test_align_with_faiss_searches_from_a_checkpoint(aligned: pipeline.AlignmentResult, toy, tmp_path: Path):
    pytest.importorskip("faiss")
    exact = pipeline.align(
        data=toy, checkpoint=aligned.checkpoint, out=tmp_path / "f", search="faiss", progress=False
    )
    assert [p[:2] for p in exact.pairs] == [p[:2] for p in aligned.pairs] and "search" not in exact.metrics
    approximate = pipeline.align(
        data=toy, checkpoint=aligned.checkpoint, out=tmp_path / "h", search="faiss-hnsw", progress=False
    )
    recall = approximate.metrics["search"]
    assert recall["search"] == "faiss-hnsw" and recall["k"] == 10 and 0.0 < recall["recall"] <= 1.0
    with pytest.raises(ConfigError, match="search must be one of"):
        pipeline.align(
            data=toy, checkpoint=aligned.checkpoint, out=tmp_path / "x", search="annoy", progress=False
        )
