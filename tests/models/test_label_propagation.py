"""Propagated seed labels in the final embedding (``model.label_propagation``), for every model on the
shared knowledge encoder: width, norm, the iterative strategy re-anchoring them, checkpoints, ablations."""

import pytest
import torch
import torch.nn.functional as F
from conftest import seeded_model

from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError
from mmea_pyg.models import AlignmentModel
from mmea_pyg.nn.encoders import LabelPropagation

LABELS = ["model.label_propagation=true", "model.anchor_dim=16", "model.anchor_hops=2"]


@pytest.fixture(scope="module")
def data():
    return toy_alignment(num_entities=60, attr_dim=12, img_dim=6, seed=1)


def make(data, name, *sets):
    return seeded_model(data, f"model.name={name}", *LABELS, *sets).eval()


def split(data, mask):
    aligned = data["source", "aligned", "target"]
    return aligned.edge_index[:, getattr(aligned, mask)]


@pytest.mark.parametrize("name", ["clamea", "ricea", "mimea"])
def test_labels_follow_the_model_embedding(data, name):
    model = make(data, name, "model.label_weight=3.0")
    assert model.output_dim == 300 + 32 and "label_propagation" in repr(model.knowledge)
    with torch.no_grad():
        full = model.embed(data, "target")
        labels = model.knowledge.labels(data, "target")
        plain = AlignmentModel.embed(model, data, "target")  # the model embedding alone
        index = torch.tensor([5, 0, 7])
        part = model.embed(data, "target", index, chunk_size=2)
    assert full.shape == (60, 332)
    torch.testing.assert_close(full[:, :300], F.normalize(plain, dim=-1))
    torch.testing.assert_close(full[:, 300:], labels)
    torch.testing.assert_close(part, full[index], atol=1e-5, rtol=1e-4)
    assert model.embed(data, "target", torch.tensor([], dtype=torch.long)).shape == (0, 332)
    # Each hop a seed reaches contributes a unit block: norm label_weight * sqrt(hops reached / hops).
    norms = labels.norm(dim=-1)
    assert (norms > 2.999).sum() > 30
    reached = torch.stack([labels[:, :16].norm(dim=-1) > 0, labels[:, 16:].norm(dim=-1) > 0]).sum(0)
    torch.testing.assert_close(norms, 3.0 * (reached / 2) ** 0.5)
    # The labels are no part of the training losses: they have no parameters.
    assert not any("label_propagation" in n for n, _ in model.named_parameters())


def test_labels_are_the_propagated_training_seeds(data):
    model = make(data, "clamea")
    seeds = split(data, "train_mask")
    expected = LabelPropagation(60, code_dim=16, hops=2)(
        seeds, 1, data["target", "relation", "target"].edge_index, 60
    )
    torch.testing.assert_close(model.knowledge.labels(data, "target"), expected * 2.0 / 2**0.5)


def test_pseudo_seeds_reanchor_the_labels_and_survive_a_checkpoint(data):
    model = make(data, "clamea")
    pseudo = split(data, "test_mask")[:, :6]
    before = model.knowledge.labels(data, "source")
    model.update_pseudo_seeds(pseudo)
    after = model.knowledge.labels(data, "source")
    assert not torch.allclose(before, after)
    # The two entities of a pseudo seed now share codes in both KGs: their labels agree more.
    cosine = lambda a, b: F.cosine_similarity(a, b, dim=-1)  # noqa: E731
    target_before = make(data, "clamea").knowledge.labels(data, "target")
    target_after = model.knowledge.labels(data, "target")
    gain = cosine(after[pseudo[0]], target_after[pseudo[1]]) - cosine(
        before[pseudo[0]], target_before[pseudo[1]]
    )
    assert gain.mean() > 0
    fresh = make(data, "clamea")
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.knowledge.pseudo_anchors, pseudo)
    torch.testing.assert_close(fresh.knowledge.labels(data, "source"), after)
    # Without anchor_pseudo the GAT anchors ignore the pseudo seeds; only the labels use them.
    gat = make(data, "clamea", "model.structure=gat-attr", "model.anchors=true")
    with torch.no_grad():
        structure = gat.structure(data, "source")
        gat.update_pseudo_seeds(pseudo)
        torch.testing.assert_close(gat.structure(data, "source"), structure)


def test_without_relations_there_are_no_labels(data):
    model = make(data, "clamea", "model.ablations=['w/o R']")
    assert model.knowledge.label_propagation is None and model.output_dim == 200
    with pytest.raises(RuntimeError, match="label_propagation=True"):
        model.knowledge.labels(data, "source")
    with pytest.raises(ConfigError, match="label_weight must be positive"):
        make(data, "mimea", "model.label_weight=0")
