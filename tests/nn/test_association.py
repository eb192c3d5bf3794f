import pytest
import torch
from conftest import assert_reset_reinitialises
from torch import nn

from mmea_pyg.nn.association import CrossModalAssociationExtraction

N, T, DT = 5, 4, 6
NAMES = ("h_r", "h_a", "h_v", "h_av", "h_vr", "h_ar")


def make(modalities=("r", "a", "v"), seed=0):
    torch.manual_seed(seed)
    return CrossModalAssociationExtraction(DT, heads=2, modalities=modalities)


def inputs(n=N, num_tokens=T, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(n, num_tokens, DT, generator=g) for name in NAMES}


class ZeroMH(nn.Module):
    def forward(self, query, key_value):
        return torch.zeros_like(query)


def test_cmae_shapes_weights_and_repr():
    cmae = make()
    out = cmae(**inputs())
    assert set(out) == {"r", "a", "v", "loss_s"}
    for x in "rav":
        assert out[x].shape == (N, T, DT)
    assert out["loss_s"].dim() == 0 and out["loss_s"] > 0
    weights = cmae.weights()
    for x in "rav":
        assert weights[x].shape == (4,)  # w_x, two single modalities, the fused pair
        assert torch.allclose(weights[x], torch.full((4,), 0.25))
    assert cmae.sources("r") == ("a", "v", "av") and cmae.sources("a") == ("r", "v", "vr")
    assert cmae.sources("v") == ("r", "a", "ar")
    assert str(cmae) == "CrossModalAssociationExtraction(6, heads=2, modalities=('r', 'a', 'v'))"


def test_cmae_two_modalities():
    cmae = make(modalities=("r", "a"))
    h = inputs()
    out = cmae(h_r=h["h_r"], h_a=h["h_a"])
    assert set(out) == {"r", "a", "loss_s"}
    assert sorted(cmae.mh.keys()) == ["a_r", "r_a"]
    assert cmae.weights()["r"].shape == (2,)
    with pytest.raises(ValueError, match="h_a"):
        cmae(h_r=h["h_r"])
    with pytest.raises(ValueError, match="modalities"):
        CrossModalAssociationExtraction(DT, modalities=("r",))
    with pytest.raises(ValueError, match="modalities"):
        CrossModalAssociationExtraction(DT, modalities=("r", "x"))
    with pytest.raises(ValueError, match="h_av"):
        make()(**{k: v for k, v in h.items() if k != "h_av"})


@pytest.mark.parametrize("modalities", [("r", "a", "v"), ("r", "a")])
def test_cmae_reset_parameters(modalities):
    cmae = make(modalities)
    h = inputs()
    assert_reset_reinitialises(cmae, lambda: cmae(**h)["r"])


@pytest.mark.parametrize("modalities", [("r", "a", "v"), ("a", "v")])
def test_cmae_grads_reach_every_parameter(modalities):
    cmae = make(modalities)
    out = cmae(**inputs())
    (sum(out[x].pow(2).sum() for x in modalities) + out["loss_s"]).backward()
    for name, p in cmae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("query", ["source", "target"])
@pytest.mark.parametrize("num_tokens,changes", [(T, True), (1, False)])
def test_cmae_mh_depends_on_query(query, num_tokens, changes):
    # MH_rv(h^v, h^r): the query comes from h^v ("source", MH(Q, K=V) argument order) or from h^r
    # ("target"). Change the query side only; with T = 1 (control) the softmax over one key is 1 and
    # MH ignores its query.
    torch.manual_seed(0)
    cmae = CrossModalAssociationExtraction(DT, heads=2, query=query)
    h = inputs(num_tokens=num_tokens)
    side = "h_v" if query == "source" else "h_r"
    store = []
    cmae.mh["r_v"].register_forward_hook(lambda mod, args, out: store.append(out.detach()))
    cmae(**h)
    cmae(**{**h, side: h[side] + torch.randn_like(h[side])})
    assert (not torch.allclose(store[0], store[1], atol=1e-5)) == changes


def test_cmae_source_query_keeps_the_target_values():
    # With the query from the source, MH_rv(h^v, h^r) mixes h^r's values: with one token per modality
    # (softmax over one key = 1) it is exactly the value/output projection of h^r, whatever h^v is.
    torch.manual_seed(0)
    cmae = CrossModalAssociationExtraction(DT, heads=2)
    h = inputs(num_tokens=1)
    store = []
    cmae.mh["r_v"].register_forward_hook(lambda mod, args, out: store.append(out.detach()))
    cmae(**h)
    cmae(**{**h, "h_v": torch.randn_like(h["h_v"])})
    torch.testing.assert_close(store[0], store[1])
    assert "query='target'" in repr(CrossModalAssociationExtraction(DT, query="target"))
    with pytest.raises(ValueError, match="query"):
        CrossModalAssociationExtraction(DT, query="both")


def test_cmae_fused_pair_wiring():
    # h^{av} feeds only the association of r; the fused pairs are not in L_s (App. D).
    cmae = make()
    h = inputs()
    out = cmae(**h)
    out2 = cmae(**{**h, "h_av": h["h_av"] + 1.0})
    assert not torch.allclose(out2["r"], out["r"], atol=1e-5)
    assert torch.equal(out2["a"], out["a"]) and torch.equal(out2["v"], out["v"])
    assert torch.equal(out2["loss_s"], out["loss_s"])


def test_cmae_loss_s_against_explicit_formula():
    cmae = make()
    h = inputs()
    out = cmae(**h)
    single = {"r": h["h_r"], "a": h["h_a"], "v": h["h_v"]}
    expected = 0.0
    for x in "rav":
        for y in "rav":
            if x != y:
                residual = single[x] - cmae.mh[f"{x}_{y}"](single[y], single[x])  # S_d(h^x, h^y)
                expected = expected + ((residual.flatten(1) * single[y].flatten(1)).sum(-1) ** 2).mean()
    assert torch.allclose(out["loss_s"], expected, rtol=1e-5)


def test_cmae_loss_s_by_hand_with_forced_mh():
    # With every MH forced to 0: h_hat^x = w_x h^x and L_s = sum_{x != y} mean_e (h^x_e . h^y_e)^2.
    cmae = CrossModalAssociationExtraction(2, heads=1)
    for key in list(cmae.mh.keys()):
        cmae.mh[key] = ZeroMH()
    ones = torch.ones(1, 2, 2)
    h = {"h_r": ones, "h_a": 2 * ones, "h_v": -ones, "h_av": ones, "h_vr": ones, "h_ar": ones}
    out = cmae(**h)
    # r.a = 8, r.v = -4, a.v = -8; each unordered pair twice: 2 * (64 + 16 + 64) = 288.
    assert out["loss_s"].item() == pytest.approx(288.0)
    assert torch.allclose(out["a"], 0.25 * 2 * ones)


def test_cmae_batch_independence():
    cmae = make()
    h = inputs(n=7)
    out = cmae(**h)
    perm = torch.randperm(7)
    shuffled = cmae(**{k: v[perm] for k, v in h.items()})
    for x in "rav":
        assert torch.allclose(shuffled[x], out[x][perm], atol=1e-5)
    assert torch.allclose(shuffled["loss_s"], out["loss_s"], rtol=1e-5)
    for i in range(7):
        alone = cmae(**{k: v[i : i + 1] for k, v in h.items()})
        for x in "rav":
            assert torch.allclose(alone[x], out[x][i : i + 1], atol=1e-5)


# masks: a source that is no evidence for an entity -------------------------------------------------

V_MASK = torch.tensor([True, False, True, False, True])
A_MASK = torch.tensor([True, True, False, False, True])


@pytest.mark.parametrize("source,targets", [("v", ("r", "a")), ("av", ("r",)), ("a", ("r", "v"))])
def test_cmae_masked_source_does_not_reach_that_entity(source, targets):
    cmae = make()
    h = inputs()
    masks = {source: V_MASK}
    changed = {**h, f"h_{source}": h[f"h_{source}"].clone()}
    changed[f"h_{source}"][~V_MASK] += 3.0 * torch.randn_like(changed[f"h_{source}"][~V_MASK])
    out, out2 = cmae(**h, masks=masks), cmae(**changed, masks=masks)
    for x in targets:  # every target that reads the masked source
        assert torch.allclose(out2[x][~V_MASK], out[x][~V_MASK], atol=1e-6), x
    # Control: without the mask the same change does reach those entities.
    plain, plain2 = cmae(**h), cmae(**changed)
    for x in targets:
        assert not torch.allclose(plain2[x][~V_MASK], plain[x][~V_MASK], atol=1e-3), x
    if source in cmae.modalities:  # the target's own embedding always counts
        assert not torch.allclose(out2[source][~V_MASK], out[source][~V_MASK], atol=1e-3)


def test_cmae_masks_leave_unmasked_entities_unchanged():
    cmae = make()
    h = inputs()
    masks = {"v": V_MASK, "a": A_MASK, "av": V_MASK | A_MASK}
    out, plain = cmae(**h, masks=masks), cmae(**h)
    both = V_MASK & A_MASK
    for x in "rav":
        assert torch.allclose(out[x][both], plain[x][both], atol=1e-6), x
    # r reads a and v: it changes exactly where one of them is masked.
    assert not torch.allclose(out["r"][~both], plain["r"][~both], atol=1e-4)
    # All-True masks are the same as no masks.
    ones = {name: torch.ones(N, dtype=torch.bool) for name in ("r", "a", "v", "av", "vr", "ar")}
    full = cmae(**h, masks=ones)
    for x in "rav":
        assert torch.allclose(full[x], plain[x], atol=1e-6), x
    assert torch.allclose(full["loss_s"], plain["loss_s"])


def test_cmae_masked_weights_are_renormalised():
    # With every MH forced to 0: h_hat^x = w_x h^x. Uniform weights 1/4; with one of the three
    # sources masked for an entity, the remaining three (target included) get 1/3 each.
    cmae = CrossModalAssociationExtraction(DT, heads=1)
    for key in list(cmae.mh.keys()):
        cmae.mh[key] = ZeroMH()
    h = inputs()
    out = cmae(**h, masks={"v": V_MASK})
    expected = torch.where(V_MASK[:, None, None], h["h_r"] / 4, h["h_r"] / 3)
    assert torch.allclose(out["r"], expected, atol=1e-6)
    assert torch.allclose(out["v"], h["h_v"] / 4, atol=1e-6)  # the target's own mask is not a source
    # A target keeps its own weight even where it is masked itself (v lacks an image, a is masked).
    out = cmae(**h, masks={"a": A_MASK, "v": V_MASK})
    assert torch.allclose(out["v"], torch.where(A_MASK[:, None, None], h["h_v"] / 4, h["h_v"] / 3), atol=1e-6)
    # Every source masked: the target keeps all the weight.
    none = torch.zeros(N, dtype=torch.bool)
    out = cmae(**h, masks={"a": none, "v": none, "av": none})
    assert torch.allclose(out["r"], h["h_r"], atol=1e-6)


def test_cmae_loss_s_ignores_masked_entities():
    cmae = make()
    h = inputs()
    masks = {"v": V_MASK, "a": A_MASK}
    out = cmae(**h, masks=masks)
    changed = {**h, "h_v": h["h_v"].clone()}
    changed["h_v"][~V_MASK] += 3.0
    assert torch.allclose(cmae(**changed, masks=masks)["loss_s"], out["loss_s"], rtol=1e-6)
    # Control: without masks the change counts.
    assert not torch.allclose(cmae(**changed)["loss_s"], cmae(**h)["loss_s"], rtol=1e-3)
    # Explicit: each term S_d(h^x, h^y) averages over the entities that have both x and y.
    single = {"r": h["h_r"], "a": h["h_a"], "v": h["h_v"]}
    have = {"r": torch.ones(N, dtype=torch.bool), "a": A_MASK, "v": V_MASK}
    expected = 0.0
    for x in "rav":
        for y in "rav":
            if x != y:
                residual = single[x] - cmae.mh[f"{x}_{y}"](single[y], single[x])
                dots = (residual.flatten(1) * single[y].flatten(1)).sum(-1) ** 2
                expected = expected + dots[have[x] & have[y]].mean()
    assert torch.allclose(out["loss_s"], expected, rtol=1e-5)


@pytest.mark.parametrize("modalities", [("r", "a", "v"), ("r", "a")])
def test_cmae_zero_init_starts_from_each_modality_itself(modalities):
    """With ``zero_init`` every association term starts at zero, so each output is its own input
    scaled by its self weight (1 / (1 + sources) at the uniform start): the direction of h^x survives."""
    torch.manual_seed(0)
    cmae = CrossModalAssociationExtraction(DT, heads=2, modalities=modalities, zero_init=True)
    h = inputs()
    given = {name: h[name] for name in NAMES if name[2:] in modalities or len(modalities) == 3}
    out = cmae(**given)
    for x in modalities:
        share = 1 / (1 + len(cmae.sources(x)))
        torch.testing.assert_close(out[x], share * h[f"h_{x}"])
    default = CrossModalAssociationExtraction(DT, heads=2, modalities=modalities)(**given)
    assert not torch.allclose(default["r"], out["r"])
