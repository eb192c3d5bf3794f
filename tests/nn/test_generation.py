import pytest
import torch
from conftest import assert_reset_reinitialises

from mmea_pyg.losses import vae_elbo_loss
from mmea_pyg.nn.generation import DynamicMissingModalityGeneration, ModalityVAE, generation_sources

N, T, DT, LATENT = 6, 4, 5, 8
ATTR = torch.tensor([True, False, True, False, True, True])
IMG = torch.tensor([False, True, True, False, True, False])
MASKS = {"a": ATTR, "v": IMG}
TOKENS, FUSED = ("a", "v", "r"), ("vr", "ar", "av")


def make(seed=0, **kwargs):
    torch.manual_seed(seed)
    return DynamicMissingModalityGeneration(
        num_tokens=T, token_dim=DT, hidden_dim=16, latent_dim=LATENT, **kwargs
    )


def inputs(n=N, seed=1):
    """Every embedding DMMG may read, by name: tokens a, v, r and fused pairs vr, ar, av."""
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(n, T, DT, generator=g) for name in (*TOKENS, *FUSED)}


def run(dmmg, h, masks=MASKS):
    tokens = {x: h[x] for x in TOKENS if x in h}
    fused = {x: h[x] for x in FUSED if x in h}
    return dmmg(tokens, fused, masks)


def posterior_means(dmmg, h):
    return {x: dmmg.vae[x].encode(h[x].flatten(1))[0] for x in dmmg.targets}


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


def test_vae_reset_parameters():
    vae = ModalityVAE(20, hidden_dim=16, latent_dim=8)
    assert_reset_reinitialises(vae)


# generation_sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "modalities,expected",
    [
        (("r", "a", "v"), {"a": ("vr", "r"), "v": ("ar", "r")}),
        (("v", "r", "a"), {"a": ("vr", "r"), "v": ("ar", "r")}),  # order does not matter
        (("r", "a"), {"a": ("r",)}),  # no image anywhere, or w/o V
        (("r", "v"), {"v": ("r",)}),  # w/o A
        (("a", "v"), {}),  # w/o R: no source for either (vr / ar need r)
        (("r",), {}),  # nothing to generate
    ],
)
def test_generation_sources(modalities, expected):
    assert generation_sources(modalities) == expected


# DynamicMissingModalityGeneration -------------------------------------------------------------


def test_dmmg_shapes_and_repr():
    dmmg = make()
    out = run(dmmg, inputs())
    assert set(out) == {"a", "v", "weights_a", "weights_v", "loss_vae", "loss_m"}
    assert out["a"].shape == out["v"].shape == (N, T, DT)
    assert out["loss_vae"].dim() == 0 and out["loss_m"].dim() == 0
    assert out["weights_a"].shape == out["weights_v"].shape == (N, 2)
    assert torch.allclose(out["weights_a"].sum(-1), torch.ones(N), atol=1e-6)
    assert dmmg.enabled and dmmg.sources == {"a": ("vr", "r"), "v": ("ar", "r")}
    assert set(dmmg.vae) == {"a", "v", "r", "vr", "ar"} and set(dmmg.dsum) == {"a", "v"}
    assert str(dmmg) == (
        "DynamicMissingModalityGeneration(num_tokens=4, token_dim=5, latent_dim=8, generates=a<-vr+r, v<-ar+r)"
    )
    with pytest.raises(ValueError, match="attr_mask"):
        run(dmmg, inputs(), {"a": ATTR.float(), "v": IMG})
    with pytest.raises(ValueError, match="img_mask"):
        run(dmmg, inputs(), {"a": ATTR, "v": IMG[:-1]})
    h = inputs()
    with pytest.raises(ValueError, match="h_vr"):
        run(dmmg, {**h, "vr": h["vr"][:, :2]})
    with pytest.raises(ValueError, match="h_vr"):
        run(dmmg, {k: v for k, v in h.items() if k != "vr"})


def test_dmmg_reset_parameters():
    dmmg = make()
    h = inputs()
    assert_reset_reinitialises(dmmg, lambda: run(dmmg, h)["a"])


def test_dmmg_grads_reach_every_parameter():
    dmmg = make()
    out = run(dmmg, inputs())  # both masks mix present and missing entities
    (out["a"].sum() + out["v"].sum() + out["loss_vae"] + out["loss_m"]).backward()
    for name, p in dmmg.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dmmg_masks_keep_present_and_generate_missing():
    dmmg = make().eval()
    h = inputs()
    out = run(dmmg, h)
    assert torch.equal(out["a"][ATTR], h["a"][ATTR]) and torch.equal(out["v"][IMG], h["v"][IMG])
    # Missing rows: Dsum of the a-decoder applied to z^{vr} and z^{r} (Eq. 19), v with z^{ar}, z^{r}.
    z = posterior_means(dmmg, h)
    g_a, _ = dmmg.dsum["a"]([dmmg.vae["a"].decode(z["vr"]), dmmg.vae["a"].decode(z["r"])])
    g_v, _ = dmmg.dsum["v"]([dmmg.vae["v"].decode(z["ar"]), dmmg.vae["v"].decode(z["r"])])
    assert torch.allclose(out["a"][~ATTR], g_a.view(N, T, DT)[~ATTR], atol=1e-6)
    assert torch.allclose(out["v"][~IMG], g_v.view(N, T, DT)[~IMG], atol=1e-6)
    assert not torch.allclose(out["a"][~ATTR], h["a"][~ATTR])
    # A missing entity's own (placeholder) embedding does not leak into its generated one.
    h_a2 = h["a"].clone()
    h_a2[~ATTR] = 50.0
    assert torch.allclose(run(dmmg, {**h, "a": h_a2})["a"], out["a"], atol=1e-6)


def test_dmmg_losses_ignore_masked_rows():
    dmmg = make().eval()
    h = inputs()
    out = run(dmmg, h)
    h_a2, h_v2 = h["a"].clone(), h["v"].clone()
    h_a2[~ATTR] += 3.0  # entities without attributes
    h_v2[~IMG] -= 3.0  # entities without images
    out2 = run(dmmg, {**h, "a": h_a2, "v": h_v2})
    assert torch.allclose(out2["loss_m"], out["loss_m"]) and torch.allclose(out2["loss_vae"], out["loss_vae"])
    h_a2[ATTR] += 3.0  # control: a present row does count
    assert not torch.allclose(run(dmmg, {**h, "a": h_a2})["loss_m"], out["loss_m"])


def test_dmmg_loss_m_formula():
    dmmg = make().eval()
    h = inputs()
    out = run(dmmg, h)
    mu = posterior_means(dmmg, h)

    def mse(x, y, mask):
        return (mu[x][mask] - mu[y][mask]).pow(2).mean()

    expected = mse("a", "vr", ATTR) + mse("v", "ar", IMG) + mse("a", "r", ATTR) + mse("v", "r", IMG)
    assert torch.allclose(out["loss_m"], expected, atol=1e-6)


def test_dmmg_loss_vae_is_the_sum_of_the_elbos():
    dmmg = make().eval()  # eval: z = mu, so the forward pass is deterministic
    h = inputs()
    out = run(dmmg, h)

    def elbos(kl_weight):
        total = 0.0
        for x in ("a", "v", "r", "vr", "ar"):
            target = h[x].flatten(1)
            recon, mu, logvar, _ = dmmg.vae[x](target)
            total = total + vae_elbo_loss(recon, target, mu, logvar, MASKS.get(x), kl_weight=kl_weight)
        return total

    assert torch.allclose(out["loss_vae"], elbos(1.0 / LATENT), atol=1e-6)
    # Control: the KL weight matters at these inputs (the test could tell a wrong weight).
    assert not torch.allclose(out["loss_vae"], elbos(1.0), atol=1e-4)


def test_dmmg_no_entity_has_the_modality():
    dmmg = make()
    none = torch.zeros(N, dtype=torch.bool)
    h = inputs()
    out = run(dmmg, h, {"a": none, "v": none})
    (out["loss_m"] + out["loss_vae"] + out["a"].sum()).backward()
    assert out["loss_m"].item() == 0.0
    assert torch.isfinite(out["loss_vae"]) and out["loss_vae"] > 0  # r, vr, ar still reconstructed
    assert all(torch.isfinite(p.grad).all() for p in dmmg.parameters() if p.grad is not None)
    # The a / v VAEs see no target: their encoders get no gradient from the losses.
    assert dmmg.vae["a"].encoder[0].weight.grad.abs().sum() == 0


@pytest.mark.parametrize("kwargs", [{"enabled": False}, {"modalities": ("a", "v")}, {"modalities": ("r",)}])
def test_dmmg_disabled_is_identity(kwargs):
    dmmg = make(**kwargs)
    assert not dmmg.enabled and dmmg.sources == {} and dmmg.targets == ()
    assert list(dmmg.parameters()) == []
    out = run(dmmg, inputs())
    # Nothing generated: the caller keeps its own tokens; zero losses.
    assert set(out) == {"loss_vae", "loss_m"}
    assert out["loss_vae"].item() == 0.0 and out["loss_m"].item() == 0.0
    dmmg.reset_parameters()
    assert "generates=nothing" in str(dmmg)


def test_dmmg_batch_independence():
    dmmg = make().eval()
    h = inputs()
    out = run(dmmg, h)
    perm = torch.randperm(N)
    shuffled = run(dmmg, {k: v[perm] for k, v in h.items()}, {k: m[perm] for k, m in MASKS.items()})
    for key in ("a", "v", "weights_a", "weights_v"):
        assert torch.allclose(shuffled[key], out[key][perm], atol=1e-5), key
    assert torch.allclose(shuffled["loss_m"], out["loss_m"], atol=1e-5)
    for i in range(N):
        alone = run(
            dmmg, {k: v[i : i + 1] for k, v in h.items()}, {k: m[i : i + 1] for k, m in MASKS.items()}
        )
        assert torch.allclose(alone["a"], out["a"][i : i + 1], atol=1e-5)
        assert torch.allclose(alone["v"], out["v"][i : i + 1], atol=1e-5)


def test_dmmg_without_images_generates_a_from_r_only():
    dmmg = make(modalities=("r", "a")).eval()
    assert dmmg.enabled and dmmg.sources == {"a": ("r",)}
    assert set(dmmg.vae) == {"a", "r"} and set(dmmg.dsum) == set()  # one source: no Dsum
    assert str(dmmg).endswith("generates=a<-r)")
    h = inputs()
    # Only a, r are read: no v tokens, no fused pairs, no image mask.
    out = run(dmmg, {"a": h["a"], "r": h["r"]}, {"a": ATTR})
    assert set(out) == {"a", "weights_a", "loss_vae", "loss_m"}
    assert out["weights_a"].shape == (N, 1)
    mu = posterior_means(dmmg, h)
    assert torch.allclose(out["loss_m"], (mu["a"][ATTR] - mu["r"][ATTR]).pow(2).mean(), atol=1e-6)
    assert out["loss_m"] > 0
    # Present rows kept, missing ones are the a-decoder of z^r (the only source).
    assert torch.equal(out["a"][ATTR], h["a"][ATTR])
    g_a = dmmg.vae["a"].decode(mu["r"]).view(N, T, DT)
    assert torch.allclose(out["a"][~ATTR], g_a[~ATTR], atol=1e-6)
    # The v / fused embeddings play no part even when given.
    again = run(dmmg, {**h, "v": h["v"] + 5.0, "vr": h["vr"] - 5.0}, MASKS)
    assert torch.equal(again["a"], out["a"]) and torch.equal(again["loss_m"], out["loss_m"])


@pytest.mark.parametrize("detach", [True, False])
def test_dmmg_detach_targets(detach):
    dmmg = make(detach_targets=detach)
    assert dmmg.detach_targets is detach
    h = {k: v.requires_grad_() for k, v in inputs().items()}
    out = run(dmmg, h)
    names, params = list(dmmg.targets), list(dmmg.vae.parameters())
    grads = torch.autograd.grad(
        out["loss_vae"], [h[x] for x in names] + params, allow_unused=True, retain_graph=True
    )
    to_inputs, to_vaes = grads[: len(names)], grads[len(names) :]
    # The VAEs are trained either way.
    assert all(g is not None and g.abs().sum() > 0 for g in to_vaes)
    reaches = {x: g is not None and bool(g.abs().sum() > 0) for x, g in zip(names, to_inputs, strict=True)}
    if detach:  # L_vae does not pull the embeddings
        assert not any(reaches.values()), reaches
    else:  # control: the paper's joint training moves every embedding
        assert all(reaches.values()), reaches
    # Only L_vae is cut off: a generated embedding still trains the embeddings it is generated from.
    (g_r,) = torch.autograd.grad(out["a"][~ATTR].sum(), h["r"])
    assert g_r.abs().sum() > 0
