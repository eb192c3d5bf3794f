import pytest
import torch
from conftest import seeded_model

from mmea_pyg.config import ABLATIONS
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError
from mmea_pyg.models import CLAMEA


@pytest.fixture(scope="module")
def data():
    return toy_alignment(num_entities=60, attr_dim=12, img_dim=6, seed=1)


make = seeded_model


def step_losses(model, data):
    pairs = data["source", "aligned", "target"].edge_index[:, :16]
    pseudo = data["source", "aligned", "target"].edge_index[:, 16:24]
    return model.training_losses(data, pairs, pseudo, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("structure", ["transe", "gat", "gat-attr"])
def test_shapes_and_loss_terms(data, structure):
    model = make(data, f"model.structure={structure}")
    out = model(data)
    assert out["source"].shape == (60, 300) and out["target"].shape == (60, 300)
    terms = step_losses(model, data)
    expected = {"vae", "m", "s", "mcl", "pseudo"} | ({"transe"} if structure == "transe" else set())
    assert set(terms) == expected
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values())
    assert "CLAMEA(dim=100" in repr(model)


@pytest.mark.parametrize("structure", ["transe", "gat", "gat-attr"])
def test_gradients_reach_every_parameter(data, structure):
    model = make(data, f"model.structure={structure}")
    sum(step_losses(model, data).values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


@pytest.mark.parametrize("structure", ["transe", "gat-attr"])
def test_embeddings_do_not_depend_on_the_batch(data, structure):
    model = make(data, f"model.structure={structure}").eval()
    structure = model.structure(data, "source")
    with torch.no_grad():
        full = model.encode(data, "source", torch.arange(60), structure)["M"]
        alone = torch.cat(
            [model.encode(data, "source", torch.tensor([i]), structure)["M"] for i in range(60)]
        )
        perm = torch.randperm(60)
        shuffled = model.encode(data, "source", perm, structure)["M"]
    torch.testing.assert_close(alone, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(shuffled, full[perm], atol=1e-5, rtol=1e-4)
    chunked = model.embed(data, "source", chunk_size=7)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-4)


def test_missing_modality_never_uses_feature_values(data):
    """Entities without an image get the same visual input whatever their (masked) feature row holds."""
    model = make(data).eval()
    changed = data.clone()
    store = changed["source"]
    store.x_img = store.x_img.clone()
    store.x_img[~store.img_mask] = 1000.0
    with torch.no_grad():
        torch.testing.assert_close(model.embed(changed, "source"), model.embed(data, "source"))


@pytest.mark.parametrize("ablation", list(ABLATIONS))
def test_every_ablation_builds_and_trains(data, ablation):
    model = make(data, f"model.ablations=[{ablation!r}]")
    terms = step_losses(model, data)
    sum(terms.values()).backward()
    width = 200 if ablation in ("w/o R", "w/o V", "w/o A") else 300
    assert model(data)["source"].shape == (60, width)
    if ablation == "w/o DMMG":
        assert "vae" not in terms and "m" not in terms
    if ablation == "w/o CMAE":
        assert "s" not in terms


def test_ablations_change_the_model(data):
    full = make(data)
    assert make(data, "model.ablations=['w/o MFE']").mfe is None and full.mfe is not None
    assert make(data, "model.ablations=['w/o G']").dmaff["ar"].use_gate is False
    assert make(data, "model.ablations=['w/o MAF']").dmaff["ar"].use_flow is False


def test_invalid_model_options(data):
    with pytest.raises(ConfigError, match="divisible"):
        make(data, "model.dim=30", "model.num_tokens=4")
    with pytest.raises(ConfigError, match="structure must be one of transe, gat, gat-attr"):
        make(data, "model.structure=gcn")
    with pytest.raises(ConfigError, match="unknown model"):
        make(data, "model.name=nope")
    with pytest.raises(ConfigError, match="every modality"):
        make(data, "model.ablations=['w/o R', 'w/o V', 'w/o A']")
    with pytest.raises(ConfigError, match="anchors=true needs model.structure=gat-attr"):
        make(data, "model.anchors=true")
    with pytest.raises(ConfigError, match="anchor_holdout"):
        make(data, "model.structure=gat-attr", "model.anchors=true", "train.anchor_holdout=1.0")


def test_reset_parameters_reinitialises(data):
    model = make(data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    model.reset_parameters()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, torch.full_like(v, 0.5))]
    assert len(changed) == len(before)
    assert isinstance(model, CLAMEA)


ANCHORED = ("model.structure=gat-attr", "model.anchors=true", "model.relation_context=true")


def test_seed_anchors_reach_neighbours_and_can_be_hidden(data):
    model = make(data, "model.structure=gat-attr", "model.anchors=true").eval()
    aligned = data["source", "aligned", "target"]
    seeds = aligned.edge_index[:, aligned.train_mask]
    with torch.no_grad():
        visible = model.structure(data, "target")
        all_hidden = model.structure(data, "target", torch.ones(60, dtype=torch.bool))
        no_anchor = model.knowledge.encoder(
            data["target"].x_attr, data["target"].attr_mask, data["target", "relation", "target"].edge_index
        )
    # Hiding every seed is the same as having no anchors; visible anchors change the seed targets.
    torch.testing.assert_close(all_hidden, no_anchor)
    changed = (visible - all_hidden).abs().sum(-1) > 1e-6
    assert torch.all(changed[seeds[1]])


def test_seed_anchors_train_on_the_hidden_pairs(data):
    model = make(data, *ANCHORED)
    aligned = data["source", "aligned", "target"]
    pairs = aligned.edge_index[:, aligned.train_mask]
    torch.manual_seed(0)  # the VAEs sample from the global generator
    first = model.training_losses(data, pairs, None, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    again = model.training_losses(data, pairs, None, torch.Generator().manual_seed(3))
    assert first["mcl"].item() == pytest.approx(again["mcl"].item())
    sum(first.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_relation_context_is_per_kg_and_needs_gat_attr(data):
    model = make(data, "model.structure=gat-attr", "model.relation_context=true")
    assert set(model.knowledge.relation_context) == {"source", "target"}
    with pytest.raises(ConfigError, match="relation_context=true needs model.structure=gat-attr"):
        make(data, "model.relation_context=true")


def test_pseudo_anchors_are_kept_in_the_checkpoint_state(data):
    model = make(data, *ANCHORED, "model.anchor_pseudo=true").eval()
    aligned = data["source", "aligned", "target"]
    pseudo = aligned.edge_index[:, aligned.test_mask][:, :5]
    with torch.no_grad():
        before = model.structure(data, "target")
        model.update_pseudo_seeds(pseudo)
        after = model.structure(data, "target")
    assert not torch.allclose(before[pseudo[1]], after[pseudo[1]])
    fresh = make(data, *ANCHORED, "model.anchor_pseudo=true").eval()
    fresh.load_state_dict(model.state_dict())  # a different number of pseudo anchors loads
    assert torch.equal(fresh.knowledge.pseudo_anchors, pseudo)
    with torch.no_grad():
        torch.testing.assert_close(fresh.structure(data, "target"), after)
    fresh.reset_parameters()
    assert fresh.knowledge.pseudo_anchors.shape == (2, 0)
    # Without anchor_pseudo the hook changes nothing.
    plain = make(data, *ANCHORED)
    plain.update_pseudo_seeds(pseudo)
    assert plain.knowledge.pseudo_anchors is None
    with pytest.raises(ConfigError, match="anchor_pseudo=true needs model.anchors=true"):
        make(data, "model.structure=gat-attr", "model.anchor_pseudo=true")


def test_propagated_anchors(data):
    model = make(data, *ANCHORED, "model.anchor_features=propagated", "model.anchor_dim=32")
    assert "AnchorPropagation" in repr(model.knowledge.anchors)
    sum(step_losses(model, data).values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    with pytest.raises(ConfigError, match="anchor_features"):
        make(data, *ANCHORED, "model.anchor_features=random")
