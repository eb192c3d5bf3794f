import pytest
import torch
from conftest import assert_reset_reinitialises

from mmea_pyg.nn.enhancement import ModalFeatureEnhancement


@pytest.mark.parametrize("num_tokens,token_dim,heads", [(4, 25, 2), (2, 8, 1), (5, 6, 3)])
def test_mfe_shapes(num_tokens, token_dim, heads):
    mfe = ModalFeatureEnhancement(token_dim, heads=heads)
    out = mfe(torch.randn(3, num_tokens, token_dim))
    assert out.shape == (3, num_tokens, token_dim)


def test_mfe_repr_and_bad_input():
    mfe = ModalFeatureEnhancement(25, heads=2)
    assert str(mfe) == "ModalFeatureEnhancement(25, heads=2)"
    with pytest.raises(ValueError, match="ModalFeatureEnhancement"):
        mfe(torch.randn(3, 100))


def test_mfe_reset_parameters():
    mfe = ModalFeatureEnhancement()
    x = torch.randn(3, 4, 25)
    assert_reset_reinitialises(mfe, lambda: mfe(x))


def test_mfe_grads_reach_every_parameter():
    torch.manual_seed(0)
    mfe = ModalFeatureEnhancement()
    mfe(torch.randn(5, 4, 25)).pow(2).sum().backward()
    for name, p in mfe.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mfe_keeps_residual():
    mfe = ModalFeatureEnhancement()
    with torch.no_grad():
        mfe.attn.out_proj.weight.zero_()
        mfe.attn.out_proj.bias.zero_()
    x = torch.randn(3, 4, 25)
    assert torch.equal(mfe(x), x)


def test_mfe_attends_over_tokens_and_depends_on_query():
    torch.manual_seed(0)
    mfe = ModalFeatureEnhancement()
    x = torch.randn(4, 4, 25)
    x2 = x.clone()
    x2[:, 0] += torch.randn(4, 25)
    # Changing token 0 changes the other tokens' outputs: the tokens attend to each other.
    assert not torch.allclose(mfe(x)[:, 1:], mfe(x2)[:, 1:], atol=1e-4)
    # Query side only (same keys/values, T = 4 > 1): the attention output changes.
    assert not torch.allclose(mfe.attn(x2, x), mfe.attn(x, x), atol=1e-4)


def test_mfe_batch_independence():
    torch.manual_seed(0)
    mfe = ModalFeatureEnhancement()
    x = torch.randn(7, 4, 25)
    out = mfe(x)
    perm = torch.randperm(7)
    assert torch.allclose(mfe(x[perm]), out[perm], atol=1e-5)
    for i in range(7):
        assert torch.allclose(mfe(x[i : i + 1]), out[i : i + 1], atol=1e-5)


def test_mfe_zero_init_starts_as_the_identity_and_still_learns():
    """``zero_init`` (CLAMEA's ``model.identity_init``): the block returns its input until the
    output projection moves; that projection gets a gradient at once, the attention after one step."""
    torch.manual_seed(0)
    mfe = ModalFeatureEnhancement(25, heads=2, zero_init=True)
    x = torch.randn(5, 4, 25)
    assert torch.equal(mfe(x), x)
    mfe(x).pow(3).sum().backward()
    grads = {name: p.grad.abs().sum() for name, p in mfe.named_parameters()}
    assert grads["attn.out_proj.weight"] > 0 and grads["attn.q_proj.weight"] == 0
    torch.optim.SGD(mfe.parameters(), lr=0.1).step()
    mfe.zero_grad()
    mfe(x).pow(3).sum().backward()
    for name, p in mfe.named_parameters():
        assert p.grad.abs().sum() > 0, name
    assert not torch.equal(mfe(x), x)
    mfe.reset_parameters()  # back to the identity
    assert torch.equal(mfe(x), x)
