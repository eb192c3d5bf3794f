import pytest
import torch
from conftest import assert_reset_reinitialises

from mmea_pyg.nn.generation import DynamicMissingModalityGeneration, ModalityVAE

N, T, DT = 6, 4, 5
ATTR = torch.tensor([True, False, True, False, True, True])
IMG = torch.tensor([False, True, True, False, True, False])


def make(seed=0, **kwargs):
    torch.manual_seed(seed)
    return DynamicMissingModalityGeneration(num_tokens=T, token_dim=DT, hidden_dim=16, latent_dim=8, **kwargs)


def inputs(n=N, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, T, DT, generator=g) for _ in range(5)]  # h_a, h_v, h_r, h_vr, h_ar


# ModalityVAE ----------------------------------------------------------------------------------


def test_vae_shapes_repr_and_sampling():
    torch.manual_seed(0)
    vae = ModalityVAE(20, hidden_dim=16, latent_dim=8)
    x = torch.randn(5, 20)
    x_hat, mu, logvar, z = vae(x)
    assert x_hat.shape == (5, 20) and mu.shape == logvar.shape == z.shape == (5, 8)
    assert not torch.allclose(z, mu)  # reparameterised sample in training
    vae.eval()
    x_hat, mu, logvar, z = vae(x)
    assert torch.equal(z, mu) and torch.equal(x_hat, vae.decode(mu))
    assert str(vae) == "ModalityVAE(20, hidden_dim=16, latent_dim=8)"
    with pytest.raises(ValueError, match="ModalityVAE"):
        vae(torch.randn(5, 21))


def test_vae_elbo_terms_masked_mean():
    torch.manual_seed(0)
    vae = ModalityVAE(20, hidden_dim=16, latent_dim=8).eval()
    x = torch.randn(5, 20)
    mask = torch.tensor([True, False, True, False, False])
    terms = vae.elbo_terms(x, mask)
    x_hat, mu, logvar, _ = vae(x)
    rec = (x_hat - x).pow(2).mean(-1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).mean(-1)
    assert torch.allclose(terms["rec"], rec[mask].mean()) and torch.allclose(terms["kl"], kl[mask].mean())
    assert torch.allclose(terms["loss"], terms["rec"] + terms["kl"])
    assert torch.allclose(vae.elbo_terms(x)["loss"], (rec + kl).mean())
    # No row selected: a zero that still backpropagates (all-zero, finite gradients).
    empty = vae.elbo_terms(x, torch.zeros(5, dtype=torch.bool))
    assert empty["loss"].item() == 0.0 and empty["loss"].requires_grad
    empty["loss"].backward()
    assert all(torch.isfinite(p.grad).all() and (p.grad == 0).all() for p in vae.parameters())


def test_vae_reset_parameters():
    vae = ModalityVAE(20, hidden_dim=16, latent_dim=8)
    assert_reset_reinitialises(vae)


# DynamicMissingModalityGeneration -------------------------------------------------------------


def test_dmmg_shapes_and_repr():
    dmmg = make()
    out = dmmg(*inputs(), ATTR, IMG)
    assert out["a"].shape == out["v"].shape == (N, T, DT)
    assert out["loss_vae"].dim() == 0 and out["loss_m"].dim() == 0
    assert out["weights_a"].shape == out["weights_v"].shape == (N, 2)
    assert torch.allclose(out["weights_a"].sum(-1), torch.ones(N), atol=1e-6)
    assert (
        str(dmmg) == "DynamicMissingModalityGeneration(num_tokens=4, token_dim=5, latent_dim=8, enabled=True)"
    )
    with pytest.raises(ValueError, match="attr_mask"):
        dmmg(*inputs(), ATTR.float(), IMG)
    with pytest.raises(ValueError, match="h_vr"):
        h = inputs()
        dmmg(h[0], h[1], h[2], h[3][:, :2], h[4], ATTR, IMG)


def test_dmmg_reset_parameters():
    dmmg = make()
    assert_reset_reinitialises(dmmg, lambda: dmmg(*inputs(), ATTR, IMG)["a"])


def test_dmmg_grads_reach_every_parameter():
    dmmg = make()
    out = dmmg(*inputs(), ATTR, IMG)  # both masks mix present and missing entities
    (out["a"].sum() + out["v"].sum() + out["loss_vae"] + out["loss_m"]).backward()
    for name, p in dmmg.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dmmg_masks_keep_present_and_generate_missing():
    dmmg = make().eval()
    h_a, h_v, h_r, h_vr, h_ar = inputs()
    out = dmmg(h_a, h_v, h_r, h_vr, h_ar, ATTR, IMG)
    assert torch.equal(out["a"][ATTR], h_a[ATTR]) and torch.equal(out["v"][IMG], h_v[IMG])
    # Missing rows: Dsum of the a-decoder applied to z^{vr} and z^{r} (Eq. 19), v with z^{ar}, z^{r}.
    z = {x: dmmg.vae[x].encode(h.flatten(1))[0] for x, h in (("r", h_r), ("vr", h_vr), ("ar", h_ar))}
    g_a, _ = dmmg.dsum_a([dmmg.vae["a"].decode(z["vr"]), dmmg.vae["a"].decode(z["r"])])
    g_v, _ = dmmg.dsum_v([dmmg.vae["v"].decode(z["ar"]), dmmg.vae["v"].decode(z["r"])])
    assert torch.allclose(out["a"][~ATTR], g_a.view(N, T, DT)[~ATTR], atol=1e-6)
    assert torch.allclose(out["v"][~IMG], g_v.view(N, T, DT)[~IMG], atol=1e-6)
    assert not torch.allclose(out["a"][~ATTR], h_a[~ATTR])
    # A missing entity's own (placeholder) embedding does not leak into its generated one.
    h_a2 = h_a.clone()
    h_a2[~ATTR] = 50.0
    assert torch.allclose(dmmg(h_a2, h_v, h_r, h_vr, h_ar, ATTR, IMG)["a"], out["a"], atol=1e-6)


def test_dmmg_losses_ignore_masked_rows():
    dmmg = make().eval()
    h_a, h_v, h_r, h_vr, h_ar = inputs()
    out = dmmg(h_a, h_v, h_r, h_vr, h_ar, ATTR, IMG)
    h_a2, h_v2 = h_a.clone(), h_v.clone()
    h_a2[~ATTR] += 3.0  # entities without attributes
    h_v2[~IMG] -= 3.0  # entities without images
    out2 = dmmg(h_a2, h_v2, h_r, h_vr, h_ar, ATTR, IMG)
    assert torch.allclose(out2["loss_m"], out["loss_m"]) and torch.allclose(out2["loss_vae"], out["loss_vae"])
    h_a2[ATTR] += 3.0  # control: a present row does count
    assert not torch.allclose(dmmg(h_a2, h_v, h_r, h_vr, h_ar, ATTR, IMG)["loss_m"], out["loss_m"])


def test_dmmg_loss_m_formula():
    dmmg = make().eval()
    h_a, h_v, h_r, h_vr, h_ar = inputs()
    out = dmmg(h_a, h_v, h_r, h_vr, h_ar, ATTR, IMG)
    mu = {
        x: dmmg.vae[x].encode(h.flatten(1))[0]
        for x, h in zip(dmmg.TARGETS, (h_a, h_v, h_r, h_vr, h_ar), strict=True)
    }

    def mse(x, y, mask):
        return (mu[x][mask] - mu[y][mask]).pow(2).mean()

    expected = mse("a", "vr", ATTR) + mse("v", "ar", IMG) + mse("a", "r", ATTR) + mse("v", "r", IMG)
    assert torch.allclose(out["loss_m"], expected, atol=1e-6)
    expected_vae = sum(
        dmmg.vae[x].elbo_terms(h.flatten(1), m)["loss"]
        for x, h, m in zip(
            dmmg.TARGETS, (h_a, h_v, h_r, h_vr, h_ar), (ATTR, IMG, None, None, None), strict=True
        )
    )
    assert torch.allclose(out["loss_vae"], expected_vae, atol=1e-6)


def test_dmmg_no_entity_has_the_modality():
    dmmg = make()
    none = torch.zeros(N, dtype=torch.bool)
    out = dmmg(*inputs(), none, none)
    (out["loss_m"] + out["loss_vae"] + out["a"].sum()).backward()
    assert out["loss_m"].item() == 0.0
    assert all(torch.isfinite(p.grad).all() for p in dmmg.parameters() if p.grad is not None)


def test_dmmg_disabled_is_identity():
    dmmg = make(enabled=False)
    assert list(dmmg.parameters()) == []
    h = inputs()
    out = dmmg(*h, ATTR, IMG)
    assert out["a"] is h[0] and out["v"] is h[1]
    assert out["loss_vae"].item() == 0.0 and out["loss_m"].item() == 0.0
    dmmg.reset_parameters()
    assert "enabled=False" in str(dmmg)


def test_dmmg_batch_independence():
    dmmg = make().eval()
    h = inputs()
    out = dmmg(*h, ATTR, IMG)
    perm = torch.randperm(N)
    shuffled = dmmg(*(x[perm] for x in h), ATTR[perm], IMG[perm])
    for key in ("a", "v", "weights_a", "weights_v"):
        assert torch.allclose(shuffled[key], out[key][perm], atol=1e-5), key
    assert torch.allclose(shuffled["loss_m"], out["loss_m"], atol=1e-5)
    for i in range(N):
        alone = dmmg(*(x[i : i + 1] for x in h), ATTR[i : i + 1], IMG[i : i + 1])
        assert torch.allclose(alone["a"], out["a"][i : i + 1], atol=1e-5)
        assert torch.allclose(alone["v"], out["v"][i : i + 1], atol=1e-5)
