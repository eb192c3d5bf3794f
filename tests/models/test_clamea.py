import os

import pytest
import torch
from conftest import seeded_model

from mmea_pyg.config import ABLATIONS, Config
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError
from mmea_pyg.models import CLAMEA
from mmea_pyg.models.modalities import available_modalities
from mmea_pyg.training.trainer import Trainer


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


def test_identity_init_starts_from_the_encoder_embeddings():
    """``model.identity_init``: before any step, h^M is the concatenation of the knowledge encoder's
    normalised embeddings (tokenizers at W = I, MFE the identity, CMAE a rescaled h^x), so the stack can
    only add to what the encoder gives; the default start is random projections and attention."""
    data = toy_alignment(num_entities=60, attr_dim=12, img_dim=0, seed=1)  # r and a, as the mirror
    index = torch.arange(60)
    for identity in (True, False):
        model = make(data, f"model.identity_init={str(identity).lower()}").eval()
        with torch.no_grad():
            structure = model.structure(data, "source")
            h, masks = model.knowledge(data, "source", index, structure)
            out = model.encode(data, "source", index, structure)
        both = masks["a"]  # DMMG replaces the attribute block of the others with a generated one
        assert both.any() and not both.all()
        expected = torch.cat([torch.nn.functional.normalize(h[m][both], dim=-1) for m in ("r", "a")], -1)
        assert torch.allclose(out["M"][both], expected, atol=1e-6) == identity


def test_clamea_checks_dsum_heads_only_where_it_builds_a_dsum(data):
    """CLAMEA's Dsum exists only with images (DMAFF pairs, DMMG's two-source generation): with them a
    width the heads cannot split is refused; without them dsum_heads splits nothing, so it is not
    checked (a width-256 checkpoint that records App. F's 5 heads still loads)."""
    with pytest.raises(
        ConfigError, match=r"model.dsum_heads=5 must divide model.dim=64 .* --set model.dsum_heads=4"
    ):
        make(data, "model.dim=64")
    image_free = toy_alignment(num_entities=60, attr_dim=12, img_dim=0, seed=1)
    model = make(image_free, "model.dim=64")
    assert model.pairs == () and not model.dmmg.dsum  # no Dsum built, nothing to check


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
    with pytest.raises(ConfigError, match="structure must be one of transe, gat, gat-attr, gcn-attr"):
        make(data, "model.structure=gcn")
    with pytest.raises(ConfigError, match="unknown model"):
        make(data, "model.name=nope")
    with pytest.raises(ConfigError, match=r"drop every modality that the data has \(v, r, a\)"):
        make(data, "model.ablations=['w/o R', 'w/o V', 'w/o A']")
    with pytest.raises(
        ConfigError, match="anchors=true needs an inductive encoder: model.structure=gat-attr or gcn-attr"
    ):
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
    with pytest.raises(
        ConfigError,
        match="relation_context=true needs an inductive encoder: model.structure=gat-attr or gcn-attr",
    ):
        make(data, "model.relation_context=true")
    model = make(data, "model.structure=gcn-attr", "model.relation_context=true")  # the other inductive one
    assert set(model.knowledge.relation_context) == {"source", "target"}


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


def test_anchor_self_needs_the_propagation_encoder_with_codes_as_wide_as_the_embedding(data):
    model = make(
        data,
        "model.structure=propagation",
        "model.anchors=true",
        "model.anchor_dim=100",
        "model.anchor_self=0.3",
    )
    assert model.knowledge.encoder.self_weight == 0.3
    for sets in (
        [*ANCHORED, "model.anchor_self=0.3"],
        ["model.structure=propagation", "model.anchors=true", "model.anchor_dim=64", "model.anchor_self=0.3"],
    ):
        with pytest.raises(ConfigError, match="anchor_self=0.3 adds an anchor's own code"):
            make(data, *sets)
    with pytest.raises(ConfigError, match="model.anchor_self: must be at least 0.0"):
        make(data, "model.anchor_self=-1")


def test_relation_view_needs_the_propagation_encoder(data):
    model = make(data, "model.structure=propagation", "model.anchors=true", "model.relation_view=16")
    assert model.knowledge.encoder.view.width == 16
    with pytest.raises(ConfigError, match="relation_view=16 needs model.structure=propagation"):
        make(data, *ANCHORED, "model.relation_view=16")
    with pytest.raises(ConfigError, match="model.relation_view: must be at least 0"):
        make(data, "model.relation_view=-1")


def test_propagated_anchors(data):
    model = make(data, *ANCHORED, "model.anchor_features=propagated", "model.anchor_dim=32")
    assert "AnchorPropagation" in repr(model.knowledge.anchors)
    sum(step_losses(model, data).values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    with pytest.raises(ConfigError, match="anchor_features"):
        make(data, *ANCHORED, "model.anchor_features=random")


# Data without images ---------------------------------------------------------------------------


def without_images(kind):
    """The fixture's KGs with no image at all: no image features (width 0), or features but no mask."""
    if kind == "no features":
        return toy_alignment(num_entities=60, attr_dim=12, img_dim=0, seed=1)
    data = toy_alignment(num_entities=60, attr_dim=12, img_dim=6, seed=1)
    for side in ("source", "target"):
        data[side].img_mask = torch.zeros_like(data[side].img_mask)
    return data


def structure_of(model):
    """What CLAMEA builds, module by module (the knowledge encoder aside)."""
    return {
        "kept": model.kept,
        "tokenize": tuple(model.tokenize),
        "mfe": tuple(model.mfe),
        "pairs": model.pairs,
        "dmaff": None if model.dmaff is None else tuple(model.dmaff),
        "dmmg": None if model.dmmg is None else model.dmmg.sources,
        "vae": None if model.dmmg is None else tuple(model.dmmg.vae),
        "cmae": None if model.cmae is None else model.cmae.modalities,
        "parameters": sorted(k for k, _ in model.named_parameters() if not k.startswith("knowledge.")),
    }


@pytest.mark.parametrize("kind", ["no features", "no mask"])
def test_data_without_images_drops_the_visual_branch(data, kind):
    assert available_modalities(data) == ("v", "r", "a")
    no_img = without_images(kind)
    assert available_modalities(no_img) == ("r", "a")
    model = make(no_img)
    assert model.kept == ("r", "a")
    assert "v" not in model.tokenize and set(model.tokenize) == {"r", "a"} and set(model.mfe) == {"r", "a"}
    # With two modalities no module reads a fused pair (DMMG generates a from r, CMAE has no fused
    # source): no DMAFF at all.
    assert model.pairs == () and model.dmaff is None
    assert model.dmmg.sources == {"a": ("r",)} and set(model.dmmg.vae) == {"a", "r"}
    assert model.cmae.modalities == ("r", "a")
    assert set(model.cmae.mh) == {"r_a", "a_r"} and set(model.cmae.logits) == {"r", "a"}
    visual = {"v", "av", "vr", "r_v", "v_r", "a_v", "v_a"}
    assert not [k for k in structure_of(model)["parameters"] if visual & set(k.split("."))]
    out = model(no_img)
    assert out["source"].shape == (60, 200)  # M concatenates r and a only
    terms = step_losses(model, no_img)
    assert {"vae", "m", "s", "mcl"} <= set(terms) and all(torch.isfinite(v) for v in terms.values())
    # "w/o V" on data with images builds the same model.
    assert structure_of(make(data, "model.ablations=['w/o V']")) == structure_of(model)
    # With images, the full model keeps every branch (control).
    full = make(data)
    assert full.kept == ("v", "r", "a") and set(full.tokenize) == {"v", "r", "a"}
    assert len(full.pairs) == 3 and full.dmmg.sources == {"a": ("vr", "r"), "v": ("ar", "r")}
    # The ablations may not drop what the data still has.
    with pytest.raises(ConfigError, match=r"drop every modality that the data has \(r, a\)"):
        make(no_img, "model.ablations=['w/o R', 'w/o A']")


@pytest.mark.parametrize("seed", [0, 1])
def test_the_learned_embedding_alone_aligns_far_above_an_untrained_model(tmp_path, seed):
    # The recommended configuration (`mmea train` without --config) on a toy graph pair with all
    # three modalities (noisy attributes and images on part of the entities): CLAMEA's own embedding,
    # no add-on, must learn to align. Observed (seeds 0 / 1, 30 validation pairs, best epoch):
    # 0.20 / 0.20 untrained -> 0.73 / 0.80 or better.
    data = toy_alignment(
        num_entities=300, avg_degree=4, attr_dim=16, img_dim=8, noise=2.0, train_ratio=0.3, seed=seed
    )
    config = Config.recommended("clamea").override(
        [
            "train.device=cpu",
            "train.epochs=30",
            "train.pair_batch_size=90",
            "train.lr=0.005",
            "train.eval_every=10",
            "model.ablations=['w/o IT']",
            f"out={tmp_path / 'run'}",
        ]
    )
    torch.manual_seed(0)
    trainer = Trainer(config, data, progress=False, log_stream=open(os.devnull, "w"))
    assert trainer.model.kept == ("v", "r", "a")
    before = trainer.evaluate(trainer.valid_pairs)["hits@1"]
    before_test = trainer.evaluate(trainer.test_pairs)["hits@1"]
    state = trainer.fit()
    best = next(row for row in state.history if row["epoch"] == state.best_epoch)
    assert best["valid"]["hits@1"] >= before + 0.4, (before, state.history)
    # It generalises to the 180 test pairs too (observed 0.08 / 0.06 -> 0.44 / 0.63 after 30 epochs).
    assert trainer.evaluate(trainer.test_pairs)["hits@1"] >= before_test + 0.3


def test_switches_without_anything_to_switch_off_on_image_free_data():
    # Without images there is no visual branch and no fused pair that a later module reads, so these
    # Table 2 switches build exactly the full model (what `make ablation` relies on to run them last).
    data = toy_alignment(num_entities=60, attr_dim=12, img_dim=0, seed=1)
    full = structure_of(make(data))
    for ablation in ("w/o V", "w/o DMAFF", "w/o MAF", "w/o G"):
        assert structure_of(make(data, f"model.ablations=['{ablation}']")) == full, ablation
    # Control: a switch with something to remove changes the model.
    assert structure_of(make(data, "model.ablations=['w/o CMAE']")) != full


@pytest.mark.parametrize("reflection", [False, True])
@pytest.mark.parametrize("model", ["clamea", "ricea"])
def test_a_step_on_its_batch_neighbourhood_equals_the_whole_graph_step(model: str, reflection: bool):
    """The propagation encoder computes a training step's entities over their neighbourhood
    (partial_structure): the same losses and gradients as the whole-graph pass."""
    from mmea_pyg.models import build_model

    data = toy_alignment(num_entities=120, seed=3)
    sets = [f"model.name={model}", "model.relation_reflection=" + str(reflection).lower()]
    cfg = Config.recommended(model).override(sets)
    runs = []
    for partial in (True, False):
        torch.manual_seed(0)
        net = build_model(cfg, data)
        if not partial:
            net.knowledge.__class__ = type("Whole", (type(net.knowledge),), {"partial_structure": False})
        assert net.partial_structure is partial
        pairs = data["source", "aligned", "target"].edge_index[:, :24]
        losses = net.training_losses(data, pairs, pairs[:, 24:30], torch.Generator().manual_seed(1))
        sum(losses.values()).backward()
        runs.append((losses, {n: p.grad for n, p in net.named_parameters() if p.grad is not None}))
    (part_losses, part_grads), (whole_losses, whole_grads) = runs
    assert part_losses.keys() == whole_losses.keys()
    for name in part_losses:
        torch.testing.assert_close(part_losses[name], whole_losses[name], rtol=1e-5, atol=1e-6)
    assert part_grads.keys() == whole_grads.keys() and part_grads
    for name in part_grads:
        torch.testing.assert_close(part_grads[name], whole_grads[name], rtol=1e-4, atol=1e-6)
