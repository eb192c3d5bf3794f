import pytest
import torch
from conftest import assert_reset_reinitialises

from mmea_pyg.nn.attention_flow import ModalAttentionFlowFusion

SWITCHES = [(True, True), (True, False), (False, True)]


def make(num_tokens=4, token_dim=5, use_flow=True, use_gate=True, seed=0):
    torch.manual_seed(seed)
    return ModalAttentionFlowFusion(
        num_tokens=num_tokens,
        token_dim=token_dim,
        heads=2,
        dsum_heads=5,
        use_flow=use_flow,
        use_gate=use_gate,
    )


def inputs(n=6, num_tokens=4, token_dim=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, num_tokens, token_dim, generator=g), torch.randn(
        n, num_tokens, token_dim, generator=g
    )


@pytest.mark.parametrize("use_flow,use_gate", SWITCHES)
def test_dmaff_shapes(use_flow, use_gate):
    dmaff = make(use_flow=use_flow, use_gate=use_gate)
    out = dmaff(*inputs())
    for key in ("fused", "a", "b"):
        assert out[key].shape == (6, 4, 5)
    assert out["weights"].shape == (6, 2)
    assert (out["weights"] >= 0).all()
    assert torch.allclose(out["weights"].sum(-1), torch.ones(6), atol=1e-6)
    assert out["weights"].std(dim=0).min() > 1e-5
    w = out["weights"]
    expected = w[:, :1, None] * out["a"] + w[:, 1:, None] * out["b"]
    assert torch.allclose(out["fused"], expected, atol=1e-6)


def test_dmaff_repr_and_bad_input():
    assert (
        str(make())
        == "ModalAttentionFlowFusion(num_tokens=4, token_dim=5, heads=2, use_flow=True, use_gate=True)"
    )
    assert "use_flow=False, use_gate=False" in str(make(use_flow=False))
    with pytest.raises(ValueError, match="ModalAttentionFlowFusion"):
        make()(torch.randn(3, 4, 5), torch.randn(3, 2, 5))


@pytest.mark.parametrize("use_flow,use_gate", SWITCHES)
def test_dmaff_reset_parameters(use_flow, use_gate):
    dmaff = make(use_flow=use_flow, use_gate=use_gate)
    a, b = inputs()
    assert_reset_reinitialises(dmaff, lambda: dmaff(a, b)["fused"])


@pytest.mark.parametrize("use_flow,use_gate", SWITCHES)
def test_dmaff_grads_reach_every_parameter(use_flow, use_gate):
    dmaff = make(use_flow=use_flow, use_gate=use_gate)
    a, b = inputs()
    out = dmaff(a, b)
    (out["fused"].sum() + out["a"].pow(2).sum() + out["b"].pow(2).sum()).backward()
    names = [name for name, _ in dmaff.named_parameters()]
    assert any(name.startswith("gate_") for name in names) == (use_flow and use_gate)
    assert any(name.startswith("inter_") for name in names) == use_flow
    for name, p in dmaff.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def capture(module):
    store = []
    module.register_forward_hook(lambda mod, args, out: store.append(out.detach()))
    return store


@pytest.mark.parametrize("num_tokens,changes", [(4, True), (1, False)])
def test_dmaff_inter_flow_depends_on_query(num_tokens, changes):
    # A <- B flow: query from A. Change A only; keep B. With T = 1 token (control) the
    # softmax over one key is 1 and the flow output ignores A entirely.
    dmaff = make(num_tokens=num_tokens)
    a, b = inputs(num_tokens=num_tokens)
    store = capture(dmaff.inter_a)
    dmaff(a, b)
    dmaff(a + torch.randn_like(a), b)
    assert (not torch.allclose(store[0], store[1], atol=1e-5)) == changes


def test_dmaff_gate_scales_the_intra_flow():
    dmaff = make()
    a, b = inputs()
    intra_out, a_s, gate_a = capture(dmaff.intra_a), capture(dmaff.lin_a), capture(dmaff.gate_a)
    dmaff(a, b)
    with torch.no_grad():
        ungated = dmaff.intra_a(a_s[0])
        zero_gate = torch.zeros(6, dmaff.intra_a.inner_dim)
        assert torch.allclose(dmaff.intra_a(a_s[0], gate=zero_gate), ungated, atol=1e-6)
        assert not torch.allclose(intra_out[0], ungated, atol=1e-5)  # G != 0 changes the flow
    # G_{A <- B} comes from B: changing B only changes A's gate.
    dmaff(a, b + torch.randn_like(b))
    assert not torch.allclose(gate_a[0], gate_a[1], atol=1e-5)


def test_dmaff_switches_change_the_output():
    a, b = inputs()
    full = make()
    default = full(a, b)
    no_gate = make(use_gate=False)
    no_gate.load_state_dict(full.state_dict(), strict=False)  # same weights, gate dropped
    out = no_gate(a, b)
    assert not torch.allclose(out["fused"], default["fused"], atol=1e-5)
    no_flow = make(use_flow=False)
    no_flow.load_state_dict(full.state_dict(), strict=False)  # same Dsum weights
    out = no_flow(a, b)
    assert not torch.allclose(out["fused"], default["fused"], atol=1e-5)
    # w/o MAF: the plain Dsum of the inputs.
    fused, weights = full.dsum([a.flatten(1), b.flatten(1)])
    assert torch.equal(out["a"], a) and torch.equal(out["b"], b)
    assert torch.allclose(out["fused"], fused.view_as(a)) and torch.allclose(out["weights"], weights)


def test_dmaff_mask_zeroes_the_weight_of_a_missing_modality():
    dmaff = make()
    a, b = inputs()
    mask_a = torch.tensor([True, False, True, False, True, True])
    out = dmaff(a, b, mask_a=mask_a)
    assert torch.equal(out["weights"][~mask_a, 0], torch.zeros(2))
    assert torch.allclose(out["fused"][~mask_a], out["b"][~mask_a], atol=1e-6)
    assert torch.allclose(out["fused"][mask_a], dmaff(a, b)["fused"][mask_a], atol=1e-6)


@pytest.mark.parametrize("use_flow,use_gate", SWITCHES)
def test_dmaff_batch_independence(use_flow, use_gate):
    dmaff = make(use_flow=use_flow, use_gate=use_gate)
    a, b = inputs(n=7)
    out = dmaff(a, b)
    perm = torch.randperm(7)
    shuffled = dmaff(a[perm], b[perm])
    for key in ("fused", "a", "b", "weights"):
        assert torch.allclose(shuffled[key], out[key][perm], atol=1e-5), key
    for i in range(7):
        alone = dmaff(a[i : i + 1], b[i : i + 1])
        assert torch.allclose(alone["fused"], out["fused"][i : i + 1], atol=1e-5)
