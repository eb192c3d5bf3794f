"""The paper's MKE (App. B): TransE and its negatives, the modality projections, the tokenizer."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_all_params_get_grad, assert_reset_reinitialises

from mmea_pyg.nn.mke import ModalityProjection, Tokenizer, TransE, corrupt_triples

# A hand-made 4-entity graph: 0 -r0-> 1, 1 -r1-> 2, 2 -r0-> 3, 3 -r2-> 0, 0 -r1-> 2.
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
EDGE_TYPE = torch.tensor([0, 1, 0, 2, 1])


# ----------------------------------------------------------------------------------- TransE
def test_transe_shapes_repr_and_normalisation():
    model = TransE(5, 3, dim=8)
    assert str(model) == "TransE(5, 3, dim=8)"
    out = model()
    assert out.shape == (5, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert model(torch.tensor([4, 0])).shape == (2, 8)
    assert torch.allclose(model(torch.tensor([4, 0])), out[[4, 0]])


def test_transe_reset_parameters():
    assert_reset_reinitialises(TransE(5, 3, dim=8))


def test_transe_score_hand_computed():
    model = TransE(3, 1, dim=2)
    with torch.no_grad():
        model.entity.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]]))
        model.relation.weight.copy_(torch.tensor([[0.0, -5.0]]))
    # Normalised: e0 = (0.6, 0.8), e1 = (0, 1), e2 = (1/sqrt2, 1/sqrt2), r = (0, -1).
    s = 1 / math.sqrt(2)
    expected_01 = (0.6 + 0 - 0) ** 2 + (0.8 - 1 - 1) ** 2  # 0.36 + 1.44 = 1.8
    expected_12 = (0 - s) ** 2 + (1 - 1 - s) ** 2  # 1.0
    score = model.score(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([1, 2]))
    assert torch.allclose(score, torch.tensor([expected_01, expected_12]), atol=1e-6)
    l1 = TransE(3, 1, dim=2, p_norm=1)
    l1.load_state_dict(model.state_dict())
    score = l1.score(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    assert torch.allclose(score, torch.tensor([0.6 + 1.2]), atol=1e-6)


def test_transe_invalid_arguments():
    with pytest.raises(ValueError, match="p_norm"):
        TransE(3, 1, p_norm=3)
    with pytest.raises(ValueError):
        TransE(0, 1)


def test_corrupt_triples_changes_exactly_one_side_and_is_reproducible():
    head = torch.randint(0, 7, (500,))
    tail = torch.randint(0, 7, (500,))
    rel = torch.randint(0, 3, (500,))
    nh, nr, nt = corrupt_triples(head, rel, tail, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nr, rel)
    head_changed, tail_changed = nh != head, nt != tail
    assert torch.equal(head_changed ^ tail_changed, torch.ones(500, dtype=torch.bool))
    assert 0.35 < head_changed.float().mean() < 0.65  # a fair coin
    assert nh.min() >= 0 and nh.max() < 7 and nt.min() >= 0 and nt.max() < 7
    nh2, _, nt2 = corrupt_triples(head, rel, tail, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nh, nh2) and torch.equal(nt, nt2)
    nh3, _, nt3 = corrupt_triples(head, rel, tail, 7, generator=torch.Generator().manual_seed(1))
    assert not (torch.equal(nh, nh3) and torch.equal(nt, nt3))
    # Two entities: the replacement is forced to be the other one, (0, 0) -> one side 1, (1, 1) -> one 0.
    nh, _, nt = corrupt_triples(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([0, 1]), 2)
    assert torch.equal(nh + nt, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="at least 2"):
        corrupt_triples(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), 1)


def test_transe_loss_matches_hand_computation_and_gives_gradients():
    torch.manual_seed(0)
    model = TransE(4, 3, dim=6)
    loss = model.loss(EDGE_INDEX, EDGE_TYPE, generator=torch.Generator().manual_seed(3))
    # Recompute by hand with the same random stream: all 5 triples (batch 5000 > E), then corruption.
    gen = torch.Generator().manual_seed(3)
    h, t, r = EDGE_INDEX[0], EDGE_INDEX[1], EDGE_TYPE
    nh, nr, nt = corrupt_triples(h, r, t, 4, generator=gen)
    expected = F.relu(1.0 + model.score(h, r, t) - model.score(nh, nr, nt)).sum()
    assert torch.allclose(loss, expected)
    mean = model.loss(EDGE_INDEX, EDGE_TYPE, generator=torch.Generator().manual_seed(3), reduction="mean")
    assert torch.allclose(mean, expected / 5)
    loss.backward()
    assert_all_params_get_grad(model)


def test_transe_loss_batches_without_replacement():
    model = TransE(4, 3, dim=6)
    index = model.sample_triples(5, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert index.shape == (3,) and index.unique().numel() == 3
    loss = model.loss(EDGE_INDEX, EDGE_TYPE, index=torch.tensor([0]), generator=torch.Generator())
    assert loss.shape == ()
    with pytest.raises(ValueError, match="edge_type"):
        model.loss(EDGE_INDEX, EDGE_TYPE[:2])


# ------------------------------------------------------------------------ ModalityProjection
def test_modality_projection_masked_rows_and_linear_rows():
    torch.manual_seed(0)
    proj = ModalityProjection(6, dim=4)
    assert str(proj) == "ModalityProjection(6, 4)"
    x = torch.randn(5, 6)
    x[1] = float("nan")  # features of a missing row are never read
    mask = torch.tensor([True, False, True, False, True])
    out = proj(x, mask)
    assert out.shape == (5, 4)
    assert torch.equal(out[1], proj.missing.detach()) and torch.equal(out[3], proj.missing.detach())
    expected = x[mask] @ proj.lin.weight.t() + proj.lin.bias
    assert torch.allclose(out[mask], expected)
    out.sum().backward()
    assert_all_params_get_grad(proj)
    assert torch.allclose(proj.missing.grad, torch.full((4,), 2.0))
    assert torch.allclose(proj(x[[0]]), expected[[0]])  # mask None: every row has the modality


def test_modality_projection_without_features():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proj = ModalityProjection(0, dim=4)
    assert proj.lin is None
    out = proj(torch.empty(3, 0), torch.tensor([True, False, True]))
    assert torch.equal(out, proj.missing.detach().expand(3, 4))
    out.sum().backward()
    assert torch.allclose(proj.missing.grad, torch.full((4,), 3.0))
    assert_reset_reinitialises(proj)


def test_modality_projection_reset_and_errors():
    proj = ModalityProjection(6, dim=4)
    assert_reset_reinitialises(proj)
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        proj(torch.randn(3, 5))
    with pytest.raises(ValueError, match="mask"):
        proj(torch.randn(3, 6), torch.ones(2, dtype=torch.bool))


# --------------------------------------------------------------------------------- Tokenizer
def test_tokenizer_shapes_flatten_and_grads():
    tok = Tokenizer(dim=100, num_tokens=4)
    assert str(tok) == "Tokenizer(100, num_tokens=4)"
    x = torch.randn(7, 100)
    tokens = tok(x)
    assert tokens.shape == (7, 4, 25)
    flat = Tokenizer.flatten(tokens)
    assert flat.shape == (7, 100)
    assert torch.allclose(flat, tok.lin(x))
    assert tok(torch.randn(2, 3, 100)).shape == (2, 3, 4, 25)
    tokens.pow(2).sum().backward()
    assert_all_params_get_grad(tok)
    assert_reset_reinitialises(tok)


def test_tokenizer_identity_init_cuts_the_input_into_tokens():
    tok = Tokenizer(dim=8, num_tokens=2, identity_init=True)
    x = torch.randn(3, 8)
    assert torch.equal(Tokenizer.flatten(tok(x)), x)
    tok(x).pow(2).sum().backward()
    assert_all_params_get_grad(tok)
    with torch.no_grad():
        tok.lin.weight.add_(1.0)
    tok.reset_parameters()  # back to the identity
    assert torch.equal(tok(x), x.view(3, 2, 4))


def test_tokenizer_divisibility_error():
    with pytest.raises(ValueError, match="divide"):
        Tokenizer(dim=100, num_tokens=3)
    with pytest.raises(ValueError, match="last dimension"):
        Tokenizer(dim=8, num_tokens=2)(torch.randn(3, 6))
