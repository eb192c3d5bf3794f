import math

import pytest
import torch
from conftest import assert_reset_reinitialises

from mmea_pyg.nn.attention import DynamicWeightedSum, TokenAttention


def assert_grads_everywhere(module):
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def reference_attention(att, query, kv, gate=None):
    # Eq. 1-2 written head by head with explicit matrices.
    heads, dk = att.heads, att.head_dim
    q, k, v = att.q_proj(query), att.k_proj(kv), att.v_proj(kv)
    if gate is not None:
        q, k = (1 + gate[:, None]) * q, (1 + gate[:, None]) * k
    outs = []
    for i in range(heads):
        sl = slice(i * dk, (i + 1) * dk)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(dk)
        outs.append(scores.softmax(dim=-1) @ v[..., sl])
    return att.out_proj(torch.cat(outs, dim=-1))


# TokenAttention -------------------------------------------------------------------------------


@pytest.mark.parametrize("heads,head_dim", [(1, None), (2, None), (2, 7), (3, 4)])
@pytest.mark.parametrize("tq,tk", [(4, 4), (3, 5)])
def test_token_attention_shapes_and_reference(heads, head_dim, tq, tk):
    torch.manual_seed(0)
    att = TokenAttention(25, heads=heads, head_dim=head_dim, kv_dim=10)
    q, kv = torch.randn(6, tq, 25), torch.randn(6, tk, 10)
    out = att(q, kv)
    assert out.shape == (6, tq, 25)
    assert torch.allclose(out, reference_attention(att, q, kv), atol=1e-5)
    gate = torch.rand(6, att.inner_dim)
    assert torch.allclose(att(q, kv, gate=gate), reference_attention(att, q, kv, gate), atol=1e-5)


def test_token_attention_self_attention_default_and_repr():
    att = TokenAttention(25, heads=2)
    x = torch.randn(3, 4, 25)
    assert torch.equal(att(x), att(x, x))
    assert att.inner_dim == 50  # 25 is not divisible by 2 heads: each head is 25 wide
    assert str(att) == "TokenAttention(25, heads=2, head_dim=25)"
    assert (
        str(TokenAttention(25, kv_dim=10, head_dim=5)) == "TokenAttention(25, kv_dim=10, heads=2, head_dim=5)"
    )


def test_token_attention_reset_parameters():
    att = TokenAttention(25, heads=2, qkv_bias=True)
    x = torch.randn(3, 4, 25)
    assert_reset_reinitialises(att, lambda: att(x))


def test_token_attention_grads_reach_every_parameter():
    torch.manual_seed(0)
    att = TokenAttention(25, heads=2, kv_dim=8, qkv_bias=True)
    att(torch.randn(5, 4, 25), torch.randn(5, 3, 8), gate=torch.rand(5, 50)).sum().backward()
    assert_grads_everywhere(att)


def test_token_attention_output_depends_on_query():
    torch.manual_seed(0)
    att = TokenAttention(25, heads=2)
    kv = torch.randn(4, 4, 25)
    q1, q2 = torch.randn(4, 4, 25), torch.randn(4, 4, 25)
    # T_k = 4 keys: the softmax, hence the output, depends on the query alone changing.
    assert not torch.allclose(att(q1, kv), att(q2, kv), atol=1e-4)
    # Control: with a single key token the softmax is identically 1 and the query is ignored.
    kv1 = kv[:, :1]
    assert torch.allclose(att(q1, kv1), att(q2, kv1), atol=1e-6)


def test_token_attention_gate():
    torch.manual_seed(0)
    att = TokenAttention(25, heads=2)
    x = torch.randn(4, 4, 25)
    assert torch.allclose(att(x, gate=torch.zeros(4, 50)), att(x), atol=1e-6)
    assert not torch.allclose(att(x, gate=torch.rand(4, 50)), att(x), atol=1e-4)
    with pytest.raises(ValueError, match="gate"):
        att(x, gate=torch.rand(4, 25))
    with pytest.raises(ValueError, match="query"):
        att(torch.randn(4, 25))


def test_token_attention_batch_independence():
    torch.manual_seed(0)
    att = TokenAttention(25, heads=2, kv_dim=12)
    q, kv, gate = torch.randn(7, 4, 25), torch.randn(7, 3, 12), torch.rand(7, 50)
    out = att(q, kv, gate=gate)
    perm = torch.randperm(7)
    assert torch.allclose(att(q[perm], kv[perm], gate=gate[perm]), out[perm], atol=1e-5)
    for i in range(7):
        assert torch.allclose(
            att(q[i : i + 1], kv[i : i + 1], gate=gate[i : i + 1]), out[i : i + 1], atol=1e-5
        )


# DynamicWeightedSum ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_dsum_weights_are_a_distribution_that_varies(num_modalities):
    torch.manual_seed(0)
    dsum = DynamicWeightedSum(20, heads=5)
    xs = [torch.randn(8, 20) for _ in range(num_modalities)]
    fused, weights = dsum(xs)
    assert fused.shape == (8, 20) and weights.shape == (8, num_modalities)
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(8), atol=1e-6)
    assert weights.std(dim=0).min() > 1e-4  # not constant across entities (Eq. 33 as printed is)
    assert torch.allclose(fused, sum(weights[:, j : j + 1] * xs[j] for j in range(num_modalities)), atol=1e-6)
    fused2, weights2 = dsum(torch.stack(xs, dim=1))
    assert torch.equal(fused, fused2) and torch.equal(weights, weights2)


def test_dsum_matches_received_attention_formula():
    torch.manual_seed(0)
    dsum = DynamicWeightedSum(20, heads=5)
    x = torch.randn(3, 3, 20)
    _, weights = dsum(x)
    q, k = dsum.q_proj(x), dsum.k_proj(x)
    for e in range(3):
        received = torch.zeros(3)
        for i in range(5):
            sl = slice(4 * i, 4 * (i + 1))
            for m in range(3):
                beta = torch.stack([q[e, m, sl] @ k[e, j, sl] / math.sqrt(4) for j in range(3)]).softmax(0)
                received += beta  # attention that modality j receives from m under head i
        expected = (received / math.sqrt(3 * 5)).softmax(0)
        assert torch.allclose(weights[e], expected, atol=1e-6)


def test_dsum_mask():
    torch.manual_seed(0)
    dsum = DynamicWeightedSum(20, heads=5)
    x = torch.randn(4, 3, 20)
    mask = torch.tensor(
        [[True, True, True], [True, False, True], [False, False, True], [False, False, False]]
    )
    fused, weights = dsum(x, mask=mask)
    assert torch.equal(weights[~mask], torch.zeros(int((~mask).sum())))
    assert torch.allclose(weights[:3].sum(-1), torch.ones(3), atol=1e-6)
    assert torch.allclose(fused[2], x[2, 2]) and torch.equal(fused[3], torch.zeros(20))
    # A masked modality neither queries nor is a key: its value does not matter.
    x2 = x.clone()
    x2[1, 1] = 100.0
    assert torch.allclose(dsum(x2, mask=mask)[0][1], fused[1], atol=1e-6)
    assert torch.equal(dsum(x, mask=torch.ones(4, 3, dtype=torch.bool))[1], dsum(x)[1])
    with pytest.raises(ValueError, match="mask"):
        dsum(x, mask=mask.float())


def test_dsum_grads_reset_repr_and_batch_independence():
    torch.manual_seed(0)
    dsum = DynamicWeightedSum(20, heads=5)
    x = torch.randn(6, 2, 20)
    fused, _ = dsum(x)
    fused.sum().backward()
    assert_grads_everywhere(dsum)
    perm = torch.randperm(6)
    assert torch.allclose(dsum(x[perm])[0], fused[perm], atol=1e-5)
    assert torch.allclose(dsum(x[2:3])[0], fused[2:3], atol=1e-5)
    assert str(dsum) == "DynamicWeightedSum(20, heads=5)"
    assert_reset_reinitialises(dsum, lambda: dsum(x)[0])
    with pytest.raises(ValueError, match="divide"):
        DynamicWeightedSum(100, heads=3)
    with pytest.raises(ValueError, match="width"):
        dsum(torch.randn(6, 2, 21))
