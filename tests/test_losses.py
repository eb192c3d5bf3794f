import math

import pytest
import torch

from mmea_pyg.losses import (
    contrastive_alignment_loss,
    gaussian_kl,
    infonce_alignment_loss,
    latent_alignment_loss,
    multimodal_contrastive_loss,
    orthogonality_loss,
    transe_margin_loss,
    vae_elbo_loss,
)


def _leaf(values):
    return torch.tensor(values, dtype=torch.float, requires_grad=True)


def _assert_attached_zero(loss, *inputs):
    assert loss.shape == () and loss.item() == 0.0
    loss.backward()
    for x in inputs:
        assert x.grad is not None and torch.equal(x.grad, torch.zeros_like(x))


# ------------------------------------------------------------------------------ TransE margin
def test_transe_margin_loss_hand_value():
    pos, neg = _leaf([0.5, 2.0, 0.1]), _leaf([1.0, 0.5, 3.0])
    # max(0, 1 + 0.5 - 1) = 0.5, max(0, 1 + 2 - 0.5) = 2.5, max(0, 1 + 0.1 - 3) = 0
    assert torch.isclose(transe_margin_loss(pos, neg), torch.tensor(3.0))
    assert torch.isclose(transe_margin_loss(pos, neg, reduction="mean"), torch.tensor(1.0))
    assert torch.allclose(transe_margin_loss(pos, neg, reduction="none"), torch.tensor([0.5, 2.5, 0.0]))
    assert torch.isclose(transe_margin_loss(pos, neg, margin=2.0), torch.tensor(1.5 + 3.5))
    transe_margin_loss(pos, neg).backward()
    assert torch.equal(pos.grad, torch.tensor([1.0, 1.0, 0.0]))
    assert torch.equal(neg.grad, torch.tensor([-1.0, -1.0, 0.0]))


def test_transe_margin_loss_errors_and_empty():
    with pytest.raises(ValueError, match="reduction"):
        transe_margin_loss(torch.zeros(2), torch.zeros(2), reduction="max")
    with pytest.raises(ValueError, match="same shape"):
        transe_margin_loss(torch.zeros(2), torch.zeros(3))
    pos, neg = _leaf([]), _leaf([])
    _assert_attached_zero(transe_margin_loss(pos, neg, reduction="mean"), pos, neg)


# ------------------------------------------------------------------------------------ VAE
def test_gaussian_kl_hand_values():
    assert torch.equal(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    kl = gaussian_kl(torch.tensor([[1.0, 2.0]]), torch.tensor([[math.log(2.0), 0.0]]))
    # -1/2 [(1 + log 2 - 1 - 2) + (1 + 0 - 4 - 1)] = 3 - log(2) / 2
    assert torch.allclose(kl, torch.tensor([3.0 - 0.5 * math.log(2.0)]))


def test_vae_elbo_loss_hand_values():
    recon = _leaf([[1.0, 2.0], [0.0, 0.0]])
    target = torch.zeros(2, 2)
    mu = _leaf([[1.0, 0.0], [0.0, 0.0]])
    logvar = _leaf([[0.0, 0.0], [0.0, 0.0]])
    # reconstruction: (1 + 4 + 0 + 0) / 4 = 1.25; KL rows 0.5 and 0 -> mean 0.25
    assert torch.isclose(vae_elbo_loss(recon, target, mu, logvar), torch.tensor(1.5))
    assert torch.isclose(vae_elbo_loss(recon, target, mu, logvar, kl_weight=2.0), torch.tensor(1.75))
    # only row 0: (1 + 4) / 2 = 2.5, KL 0.5
    loss = vae_elbo_loss(recon, target, mu, logvar, mask=torch.tensor([True, False]))
    assert torch.isclose(loss, torch.tensor(3.0))
    loss.backward()
    assert torch.equal(recon.grad[1], torch.zeros(2)) and torch.equal(mu.grad[1], torch.zeros(2))
    assert torch.allclose(recon.grad[0], torch.tensor([1.0, 2.0]))  # d/dr (r^2 / 2) = r


def test_vae_elbo_loss_token_inputs_and_empty_mask():
    recon, target = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    mu, logvar = torch.zeros(3, 6), torch.zeros(3, 6)
    assert torch.isclose(vae_elbo_loss(recon, target, mu, logvar), ((recon - target) ** 2).mean())
    recon = _leaf([[float("nan"), 1.0]])
    mu, logvar = _leaf([[0.5]]), _leaf([[0.1]])
    loss = vae_elbo_loss(recon, torch.zeros(1, 2), mu, logvar, mask=torch.tensor([False]))
    _assert_attached_zero(loss, recon, mu, logvar)
    with pytest.raises(ValueError, match="mask"):
        vae_elbo_loss(recon, torch.zeros(1, 2), mu, logvar, mask=torch.tensor([True, False]))


# ------------------------------------------------------------------------- latent alignment
def test_latent_alignment_loss_hand_value():
    z1 = _leaf([[1.0, 2.0], [3.0, 4.0]])
    z2 = torch.zeros(2, 2)
    # pair 1 on row 0 only: (1 + 4) / 2 = 2.5; pair 2 over all rows: every difference is 1
    loss = latent_alignment_loss([(z1, z2, torch.tensor([True, False])), (z1, z1.detach() + 1, None)])
    assert torch.isclose(loss, torch.tensor(3.5))
    loss.backward()
    assert torch.isfinite(z1.grad).all()


def test_latent_alignment_loss_empty():
    z1, z2 = _leaf([[1.0, 2.0]]), _leaf([[0.0, float("nan")]])
    _assert_attached_zero(latent_alignment_loss([(z1, z2, torch.tensor([False]))]), z1, z2)
    assert latent_alignment_loss([]).item() == 0.0


# ------------------------------------------------------------------------------ orthogonality
def test_orthogonality_loss_hand_value():
    residual = _leaf([[1.0, 2.0], [0.0, 1.0], [1.0, 1.0]])
    other = torch.tensor([[2.0, 0.0], [1.0, 1.0], [1.0, -1.0]])
    # dots 2, 1, 0 -> squares 4, 1, 0 -> mean 5/3
    assert torch.isclose(orthogonality_loss(residual, other), torch.tensor(5.0 / 3.0))
    mask = torch.tensor([False, True, True])
    assert torch.isclose(orthogonality_loss(residual, other, mask), torch.tensor(0.5))
    tokens = orthogonality_loss(residual.reshape(3, 2, 1), other.reshape(3, 2, 1))
    assert torch.isclose(tokens, torch.tensor(5.0 / 3.0))
    _assert_attached_zero(orthogonality_loss(residual, other, torch.zeros(3, dtype=torch.bool)), residual)


# -------------------------------------------------------------------------------- contrastive
def test_contrastive_alignment_loss_hand_value():
    h1 = _leaf([[1.0, 0.0], [0.0, 3.0]])
    h2 = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    s = 1.0 / math.sqrt(2.0)
    # S = [[1, s], [0, s]]; diagonal: max(2 - S, 0)^2, off-diagonal: S^2; mean of the 4 entries
    expected = ((2.0 - 1.0) ** 2 + s**2 + 0.0**2 + (2.0 - s) ** 2) / 4.0
    loss = contrastive_alignment_loss(h1, h2)
    assert torch.isclose(loss, torch.tensor(expected))
    loss.backward()
    assert torch.isfinite(h1.grad).all()
    # margin 0.5: diagonal terms max(0.5 - 1, 0) = 0 and max(0.5 - s, 0) = 0 -> only s^2 / 4
    assert torch.isclose(contrastive_alignment_loss(h1, h2, margin=0.5), torch.tensor(s**2 / 4.0))


def test_contrastive_alignment_loss_3x3_and_errors():
    h1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    h2 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # S = [[1,0,0],[0,1,0],[0,1,0]]: diagonal (2-1)^2 + (2-1)^2 + (2-0)^2 = 6, off-diagonal S[1,2]=1
    assert torch.isclose(contrastive_alignment_loss(h1, h2), torch.tensor(7.0 / 9.0))
    with pytest.raises(ValueError, match="differ"):
        contrastive_alignment_loss(h1, h2[:2])


def test_multimodal_contrastive_loss_sums_present_keys():
    torch.manual_seed(0)
    emb1 = {"M": torch.randn(4, 6), "r": torch.randn(4, 2), "a": torch.randn(4, 2)}
    emb2 = {"M": torch.randn(4, 6), "r": torch.randn(4, 2), "a": torch.randn(4, 2)}
    expected = sum(contrastive_alignment_loss(emb1[k], emb2[k]) for k in ("M", "r", "a"))
    assert torch.isclose(multimodal_contrastive_loss(emb1, emb2), expected)
    assert torch.isclose(
        multimodal_contrastive_loss(emb1, emb2, keys=("r",), margin=1.0),
        contrastive_alignment_loss(emb1["r"], emb2["r"], margin=1.0),
    )
    with pytest.raises(ValueError, match="one side"):
        multimodal_contrastive_loss(emb1, {"M": emb2["M"]})
    with pytest.raises(ValueError, match="none of the keys"):
        multimodal_contrastive_loss(emb1, emb2, keys=("v",))


def test_infonce_alignment_loss_hand_value():
    h1 = _leaf([[1.0, 0.0], [0.0, 2.0]])
    h2 = torch.eye(2)
    # S = I, tau = 1: each row CE = -log(e / (e + 1)) = log(1 + 1/e), both directions equal
    loss = infonce_alignment_loss(h1, h2, temperature=1.0)
    assert torch.isclose(loss, torch.tensor(math.log(1.0 + math.exp(-1.0))))
    loss.backward()
    assert torch.isfinite(h1.grad).all()
    h2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # S = [[1, 1], [0, 0]]: rows: log 2, log 2; columns [1, 0] -> label 0: log(1 + 1/e), label 1: log(1 + e)
    expected = 0.5 * (math.log(2.0) + 0.5 * (math.log(1.0 + math.exp(-1.0)) + math.log(1.0 + math.e)))
    assert torch.isclose(infonce_alignment_loss(h1, h2, temperature=1.0), torch.tensor(expected))
    with pytest.raises(ValueError, match="temperature"):
        infonce_alignment_loss(h1, h2, temperature=0.0)


def test_alignment_losses_empty_batch():
    h1, h2 = _leaf([[]]).reshape(0, 2), torch.zeros(0, 2)
    assert contrastive_alignment_loss(h1, h2).item() == 0.0
    assert infonce_alignment_loss(h1, h2).item() == 0.0
