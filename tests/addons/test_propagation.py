"""LightEA's propagated seed labels as an evaluation-time add-on to a trained model
(:class:`~mmea_pyg.addons.propagation.LightEAPropagation`, ``mmea eval --propagation``): the layout of
its embedding, the seeds of its labels, the re-anchoring rounds and what they may look at."""

import pytest
import torch
import torch.nn.functional as F
from conftest import seeded_model

from mmea_pyg.addons.propagation import LightEAPropagation
from mmea_pyg.config import Config
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError
from mmea_pyg.nn.label_propagation import LabelPropagation
from mmea_pyg.similarity import mutual_nearest_neighbours

N, CODE, HOPS = 60, 16, 2


@pytest.fixture(scope="module")
def data():
    return toy_alignment(num_entities=N, attr_dim=12, img_dim=6, seed=1)


@pytest.fixture
def model(data):
    return seeded_model(data, "model.name=mimea").eval()


def split(data, mask):
    aligned = data["source", "aligned", "target"]
    return aligned.edge_index[:, getattr(aligned, mask)]


def propagate(model, data, pseudo=None, **kwargs):
    """The add-on (in eval mode, like the model it wraps)."""
    kwargs = {"code_dim": CODE, "hops": HOPS, "rounds": 0, **kwargs}
    return LightEAPropagation(model, data, split(data, "train_mask"), pseudo, **kwargs).eval()


def hand_labels(data, side, seeds, weight=2.0):
    """LabelPropagation of ``seeds`` on ``side`` scaled by ``weight / sqrt(hops)``, computed afresh."""
    edges = data[side, "relation", side].edge_index
    labels = LabelPropagation(N, code_dim=CODE, hops=HOPS)(seeds, ("source", "target").index(side), edges, N)
    return labels * weight / HOPS**0.5


@pytest.mark.parametrize("name", ["clamea", "ricea", "mimea"])
def test_embedding_is_the_normalised_model_embedding_then_the_labels(data, name):
    model = seeded_model(data, f"model.name={name}").eval()
    pseudo = split(data, "test_mask")[:, :5]
    prop = propagate(model, data, pseudo, weight=3.0)
    seeds = torch.cat([split(data, "train_mask"), pseudo], dim=1)
    for side in ("source", "target"):
        with torch.no_grad():
            plain = model.embed(data, side)
            full = prop.embed(data, side)
        assert full.shape == (N, model.output_dim + HOPS * CODE)
        torch.testing.assert_close(full[:, : model.output_dim], F.normalize(plain, dim=-1))
        labels = full[:, model.output_dim :]
        torch.testing.assert_close(labels, hand_labels(data, side, seeds, weight=3.0))
        # Each hop a seed reaches is a unit block: the label norm is weight * sqrt(hops reached / hops).
        reached = sum((labels[:, k * CODE : (k + 1) * CODE].norm(dim=-1) > 0).float() for k in range(HOPS))
        torch.testing.assert_close(labels.norm(dim=-1), 3.0 * (reached / HOPS) ** 0.5)
        assert (reached == HOPS).sum() > N // 2
    assert torch.equal(prop.pseudo_pairs, pseudo)  # rounds=0: exactly the given pseudo seeds
    assert (
        f"LightEAPropagation({model.__class__.__name__}, code_dim=16, hops=2, weight=3.0, rounds=0)"
        == repr(prop)
    )


def test_without_pseudo_seeds_the_labels_are_those_of_the_training_seeds(data, model):
    prop = propagate(model, data)
    assert prop.pseudo_pairs.shape == (2, 0)
    full = prop.embed(data, "target")
    torch.testing.assert_close(
        full[:, model.output_dim :], hand_labels(data, "target", split(data, "train_mask"))
    )
    # The given pseudo seeds change the labels: they are seeds too.
    with_pseudo = propagate(model, data, split(data, "test_mask")[:, :5]).embed(data, "target")
    assert not torch.allclose(full[:, model.output_dim :], with_pseudo[:, model.output_dim :])
    torch.testing.assert_close(full[:, : model.output_dim], with_pseudo[:, : model.output_dim])


def test_pseudo_seeds_make_their_entities_agree(data, model):
    pseudo = split(data, "test_mask")[:, :6]

    def cosine(prop):
        src = prop.embed(data, "source", pseudo[0])[:, model.output_dim :]
        tgt = prop.embed(data, "target", pseudo[1])[:, model.output_dim :]
        return F.cosine_similarity(src, tgt, dim=-1)

    assert (cosine(propagate(model, data, pseudo)) - cosine(propagate(model, data))).mean() > 0


def test_index_and_chunks_match_the_full_embedding(data, model):
    prop = propagate(model, data, split(data, "test_mask")[:, :5])
    full = prop.embed(data, "source")
    index = torch.tensor([5, 0, 7, 5])
    torch.testing.assert_close(
        prop.embed(data, "source", index, chunk_size=2), full[index], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(prop.embed(data, "source", chunk_size=7), full, atol=1e-5, rtol=1e-4)
    empty = prop.embed(data, "source", torch.tensor([], dtype=torch.long))
    assert empty.shape == (0, model.output_dim + HOPS * CODE)


def test_a_round_reanchors_on_mutual_nearest_neighbours_among_entities_without_a_training_pair(data, model):
    train = split(data, "train_mask")
    start = split(data, "test_mask")[:, :4]
    before = propagate(model, data, start)  # the labels the first round ranks with
    src_cand = torch.tensor([i for i in range(N) if i not in set(train[0].tolist())])
    tgt_cand = torch.tensor([i for i in range(N) if i not in set(train[1].tolist())])
    expected = mutual_nearest_neighbours(
        before.embed(data, "source"), before.embed(data, "target"), src_cand, tgt_cand
    )
    after = propagate(model, data, start, rounds=1)
    assert expected.size(1) > 0
    assert torch.equal(after.pseudo_pairs, expected)
    seeds = torch.cat([train, expected], dim=1)
    for side in ("source", "target"):
        torch.testing.assert_close(
            after.embed(data, side)[:, model.output_dim :], hand_labels(data, side, seeds)
        )


def test_rounds_never_pair_a_training_entity_nor_read_the_held_out_links(data, model):
    train = split(data, "train_mask")
    prop = propagate(model, data, rounds=3)
    pseudo = prop.pseudo_pairs
    assert pseudo.size(1) > 0
    assert not set(pseudo[0].tolist()) & set(train[0].tolist())
    assert not set(pseudo[1].tolist()) & set(train[1].tolist())
    assert pseudo[0].unique().numel() == pseudo.size(1) == pseudo[1].unique().numel()  # one to one
    # The same graphs without any validation or test link: the same pseudo seeds and embedding, so the
    # held-out links are neither candidates nor evidence; every entity without a training pair is one.
    blind = data.clone()
    aligned = blind["source", "aligned", "target"]
    aligned.edge_index = train.clone()
    aligned.train_mask = torch.ones(train.size(1), dtype=torch.bool)
    aligned.valid_mask = aligned.test_mask = torch.zeros(train.size(1), dtype=torch.bool)
    blind_prop = LightEAPropagation(model, blind, train, code_dim=CODE, hops=HOPS, rounds=3).eval()
    assert torch.equal(blind_prop.pseudo_pairs, pseudo)
    torch.testing.assert_close(blind_prop.embed(blind, "target"), prop.embed(data, "target"))


def test_no_parameter_is_added_and_nothing_has_a_gradient(data):
    model = seeded_model(data, "model.name=ricea")  # in training mode, parameters with gradient
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prop = LightEAPropagation(model, data, split(data, "train_mask"), code_dim=CODE, rounds=2)
    params = dict(prop.named_parameters())
    assert params.keys() == {f"model.{k}" for k, _ in model.named_parameters()}
    assert set(prop.state_dict()) == {f"model.{k}" for k in model.state_dict()}  # codes are rebuilt
    out = prop.embed(data, "source", torch.tensor([0, 1]))
    assert not out.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training  # an evaluation-time add-on: the model embeds in eval mode


def test_the_rounds_leave_a_model_in_eval_mode(data, model):
    prop = LightEAPropagation(model, data, split(data, "train_mask"), code_dim=CODE, rounds=1)
    assert not model.training
    torch.testing.assert_close(prop.embed(data, "source"), prop.embed(data, "source"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": 0.0}, "weight > 0"),
        ({"weight": -1.0}, "weight > 0"),
        ({"rounds": -1}, "rounds >= 0"),
        ({"hops": 0}, "hops >= 1"),
        ({"code_dim": 0}, "code_dim"),
    ],
)
def test_invalid_arguments(data, model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        propagate(model, data, **kwargs)


def test_labels_are_no_longer_a_model_option():
    for key in ("model.label_propagation=true", "model.label_weight=3.0"):
        with pytest.raises(ConfigError, match=f"unknown key '{key.split('=')[0]}'") as info:
            Config().override([key])
        # The message lists the known keys, among them the evaluation-time add-on's.
        assert "eval.propagation_weight" in str(info.value) and "eval.propagation_rounds" in str(info.value)
    with pytest.raises(ConfigError, match="model.label_propagation"):
        Config.from_dict({"model": {"label_propagation": True}}, source="cfg.yaml")
    config = Config().override(["eval.propagation_rounds=0", "eval.propagation_dim=8"])
    assert (config.eval.propagation_rounds, config.eval.propagation_dim) == (0, 8)
    assert (Config().eval.propagation_hops, Config().eval.propagation_weight) == (2, 2.0)
