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


@pytest.mark.parametrize("num_tokens,changes", [(T, True), (1, False)])
def test_cmae_mh_depends_on_query(num_tokens, changes):
    # MH_rv(h^v, h^r): query from the target r. Change h^r only; with T = 1 (control) the
    # softmax over one key is 1 and MH ignores its query.
    cmae = make()
    h = inputs(num_tokens=num_tokens)
    store = []
    cmae.mh["r_v"].register_forward_hook(lambda mod, args, out: store.append(out.detach()))
    cmae(**h)
    cmae(**{**h, "h_r": h["h_r"] + torch.randn_like(h["h_r"])})
    assert (not torch.allclose(store[0], store[1], atol=1e-5)) == changes


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
                residual = single[x] - cmae.mh[f"{x}_{y}"](single[x], single[y])  # S_d(h^x, h^y)
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
