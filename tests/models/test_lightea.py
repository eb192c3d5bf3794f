"""LightEA in the library: its joined graph by hand, features that are a function of the seed and the
pairs, bootstrapping, the trainer's no-training path, checkpoints, and its own protocol."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import HeteroData

from mmea_pyg.config import Config, LightEAConfig
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.evaluation import evaluate_embedder
from mmea_pyg.models.lightea import LightEA, LightEAGraph, lightea_features, lightea_protocol
from mmea_pyg.training.checkpoint import load_model

SMALL = dict(ent_dim=64, rel_dim=8, mini_dim=4, top_k=20, head_chunk=3)


def _tiny() -> HeteroData:
    data = HeteroData()
    for side, (edges, types) in {
        "source": ([[0, 0], [1, 2]], [0, 1]),  # 0 -r0-> 1, 0 -r1-> 2
        "target": ([[1], [0]], [0]),  # 1 -r0-> 0
    }.items():
        data[side].num_nodes = 3 if side == "source" else 2
        data[side, "relation", side].edge_index = torch.tensor(edges)
        data[side, "relation", side].edge_type = torch.tensor(types)
        data[side, "relation", side].relation_names = ["a", "b"] if side == "source" else ["c"]
    return data


def test_joined_graph_by_hand():
    graph = LightEAGraph.from_data(_tiny())
    assert graph.num_entities == 5 and graph.offset == 3
    assert graph.num_relations == 2 * 3  # source a, b and target c, each with its inverse
    ent_ent = graph.ent_ent.to_dense()
    # Each triple counts twice on both ends' diagonals (itself and its inverse) and once each way.
    assert ent_ent.diagonal().tolist() == [4.0, 2.0, 2.0, 2.0, 2.0]
    assert ent_ent[0, 1] == ent_ent[1, 0] == ent_ent[0, 2] == 1.0 and ent_ent[1, 2] == 0.0
    assert ent_ent[4, 3] == ent_ent[3, 4] == 1.0 and ent_ent[:3, 3:].abs().sum() == 0  # graphs stay apart
    # Target relation c is relation 2 overall: 4 forward, 5 inverse; target entity 1 is row 4.
    assert graph.rel_ent.to_dense()[4].nonzero().view(-1).tolist() == [4]
    assert graph.ent_rel.to_dense()[3].nonzero().view(-1).tolist() == [4]
    assert graph.tuples.t().tolist() == [[0, 1], [0, 2], [1, 0], [2, 0], [3, 4], [4, 3]]
    assert graph.tuple_rel.to_dense().sum(1).tolist() == [1.0] * 6


def test_features_are_a_function_of_the_seed_and_the_pairs():
    data = toy_alignment(num_entities=120, img_dim=0, seed=1)
    graph = LightEAGraph.from_data(data)
    aligned = data["source", "aligned", "target"]
    seeds = graph.joined(aligned.edge_index[:, aligned.train_mask])
    run = lambda s: lightea_features(  # noqa: E731
        graph,
        seeds,
        ent_dim=64,
        rel_dim=8,
        mini_dim=4,
        generator=torch.Generator().manual_seed(s),
        head_chunk=3,
    )
    a, b, c = run(0), run(0), run(1)
    assert a.shape == (240, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    norms = a.norm(dim=1)
    assert torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=1e-5)


def test_lightea_aligns_a_noisy_copy_and_bootstraps_one_to_one_pairs():
    data = toy_alignment(num_entities=300, img_dim=0, edge_keep=0.9, seed=0)
    config = Config()
    config.lightea = LightEAConfig(**SMALL)
    model = LightEA.from_config(config, data)
    aligned = data["source", "aligned", "target"]
    train, test = aligned.edge_index[:, aligned.train_mask], aligned.edge_index[:, aligned.test_mask]
    history = model.fit(train)
    assert [r["round"] for r in history] == [1, 2, 3][: len(history)]
    assert history[0]["new_pairs"] > 0
    pseudo = model.pseudo
    # One to one, and disjoint from the training pairs.
    assert pseudo[0].unique().numel() == pseudo.size(1) == pseudo[1].unique().numel()
    assert not set(pseudo[0].tolist()) & set(train[0].tolist())
    metrics = evaluate_embedder(lambda side, index: model.embed(data, side, index), test)
    assert metrics["hits@1"] > 0.8  # the untrained random codes alone would give ~1/200
    # Rebuilding from the stored pairs gives the same embedding (what a checkpoint relies on).
    again = LightEA.from_config(config, data)
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.embed(data, "target"), model.embed(data, "target"))


def test_lightea_protocol_reproduces_the_notebooks_loop():
    data = toy_alignment(num_entities=300, img_dim=0, edge_keep=0.9, seed=0)
    aligned = data["source", "aligned", "target"]
    rounds = lightea_protocol(
        data,
        aligned.edge_index[:, aligned.train_mask],
        aligned.edge_index[:, aligned.test_mask],
        LightEAConfig(**SMALL),
    )
    assert 1 <= len(rounds) <= 3
    assert rounds[-1]["hits@1"] > 0.8 and rounds[-1]["hits@10"] >= rounds[-1]["hits@1"]
    assert rounds[-1]["known"] > rounds[0]["known"]  # pseudo pairs from the test pool


def test_lightea_needs_relation_triples():
    data = _tiny()
    data["target", "relation", "target"].edge_index = torch.empty(2, 0, dtype=torch.long)
    data["target", "relation", "target"].edge_type = torch.empty(0, dtype=torch.long)
    with pytest.raises(Exception, match="relation triples"):
        LightEA.from_config(Config(), data)


def test_evaluation_ranks_distinct_targets():
    # Two pairs share target 0: ranked among the distinct targets {0, 1}, both reach Hits@1 (as copies
    # of target 0 they would tie with each other and score rank 1.5).
    src = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    tgt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pairs = torch.tensor([[0, 1, 2], [0, 0, 1]])
    metrics = evaluate_embedder(lambda side, index: (src if side == "source" else tgt)[index], pairs)
    assert metrics["hits@1"] == 1.0 and metrics["tied_top"] == 0.0


def test_lightea_through_the_pipeline_trains_nothing_and_its_checkpoint_gives_the_same_figures(tmp_path):
    from mmea_pyg import pipeline

    data = toy_alignment(num_entities=200, img_dim=0, edge_keep=0.9, seed=2)
    overrides = [f"lightea.{key}={value}" for key, value in SMALL.items()]
    result = pipeline.run(
        model="lightea", overrides=overrides, out=tmp_path / "run", data=data, progress=False
    )
    assert result.model == "lightea" and result.epochs == 1 and result.best_epoch == 1
    record = result.history[0]
    assert record["loss"] == {} and record["rounds"][0]["known"] == int(
        data["source", "aligned", "target"].train_mask.sum()
    )
    test = result.metrics("test")
    assert test["hits@1"] > 0.6 and 0.0 <= test["tied_top"] <= 1.0
    # Each figure says what it is ranked among: the distinct targets of its split.
    aligned_links = data["source", "aligned", "target"]
    test_targets = int(aligned_links.edge_index[1, aligned_links.test_mask].unique().numel())
    assert result.evaluation("test").ranked_among == test_targets
    assert record["valid_ranked_among"] == int(
        aligned_links.edge_index[1, aligned_links.valid_mask].unique().numel()
    )
    assert f"ranked among {test_targets:,} test targets" in result.summary()
    again = pipeline.evaluate_checkpoint(result.checkpoints["best"], data=data, progress=False)
    assert again.evaluation.metrics == result.evaluation("test").metrics
    # Its own scoring: the sparse Sinkhorn over all unaligned entities (no test knowledge).
    model, config, _ = load_model(result.checkpoints["best"], data, "cpu")
    aligned = pipeline.align_model(model, data, config, sinkhorn=15, sinkhorn_top_k=20, progress=False)
    assert aligned.metrics["test"]["hits@1"] >= test["hits@1"] - 0.05
    assert aligned.options["sinkhorn_top_k"] == 20
    assert aligned.metrics["test"]["ranked_among"] == test_targets and "tied_top" in aligned.metrics["test"]
    assert len(aligned.candidates) == 10 * aligned.metrics["queries"]  # --top-k, not the Sinkhorn's k
