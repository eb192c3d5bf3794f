"""ADC (RICEA), probability-guided fusion and optimal-transport alignment (MIMEA)."""

import pytest
import torch
from conftest import assert_reset_reinitialises

from mmea_pyg.nn.calibration import AttentionDynamicCalibration
from mmea_pyg.nn.optimal_transport import OptimalTransportModalAlignment
from mmea_pyg.nn.probabilistic_fusion import ProbabilisticModalFusion

N, M, D = 6, 3, 8
MASK = torch.tensor(
    [[True, True, True]] * 3 + [[True, False, True], [True, True, False], [True, False, False]]
)


def grads_everywhere(module):
    missing = [n for n, p in module.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


# ADC ------------------------------------------------------------------------------------------
def test_adc_shapes_masks_and_gradients():
    torch.manual_seed(0)
    adc = AttentionDynamicCalibration(D, heads=2)
    x = torch.randn(N, M, D)
    weights = torch.softmax(torch.randn(N, M), -1)
    calibrated, log_var = adc(x, weights, MASK)
    assert calibrated.shape == (N, M) and log_var.shape == (N, M)
    torch.testing.assert_close(calibrated.sum(-1), torch.ones(N))
    assert torch.all(calibrated[~MASK] == 0)
    # Inverse-variance recalibration, checked by hand for the first entity.
    expected = torch.softmax(weights[0].log() - log_var[0], -1)
    torch.testing.assert_close(calibrated[0], expected)
    (calibrated * torch.randn(N, M)).sum().backward()
    grads_everywhere(adc)
    assert "AttentionDynamicCalibration(8, heads=2)" == repr(adc)
    assert_reset_reinitialises(adc, lambda: adc(x, weights, MASK)[0])


def test_adc_is_per_entity_and_ignores_missing_modalities():
    torch.manual_seed(0)
    adc = AttentionDynamicCalibration(D, heads=2).eval()
    x, weights = torch.randn(N, M, D), torch.softmax(torch.randn(N, M), -1)
    with torch.no_grad():
        full = adc(x, weights, MASK)[0]
        alone = torch.cat([adc(x[i : i + 1], weights[i : i + 1], MASK[i : i + 1])[0] for i in range(N)])
        x2 = x.clone()
        x2[~MASK] = 1000.0  # values of missing modalities are never read
        moved = adc(x2, weights, MASK)[0]
    torch.testing.assert_close(alone, full)
    torch.testing.assert_close(moved, full)
    with pytest.raises(ValueError, match="weights"):
        adc(x, weights[:, :2], MASK)
    with pytest.raises(ValueError, match="divide"):
        AttentionDynamicCalibration(7, heads=2)


# Probability-guided fusion ---------------------------------------------------------------------
def test_probabilistic_fusion_beta_parameters_weights_and_kl():
    torch.manual_seed(0)
    pmf = ProbabilisticModalFusion(D, heads=2)
    x = torch.randn(N, M, D)
    out = pmf(x, MASK)
    assert out["joint"].shape == (N, D) and out["weights"].shape == (N, M)
    assert torch.all(out["alpha"] > 0) and torch.all(out["beta"] > 0)
    torch.testing.assert_close(out["weights"].sum(-1), torch.ones(N))
    assert torch.all(out["weights"][~MASK] == 0)
    assert out["loss_kl"].dim() == 0 and out["loss_kl"] >= 0
    (out["joint"].sum() + out["loss_kl"]).backward()
    grads_everywhere(pmf)
    assert_reset_reinitialises(pmf, lambda: pmf(x, MASK)["joint"])


def test_probabilistic_fusion_uses_beta_means_in_evaluation():
    torch.manual_seed(0)
    pmf = ProbabilisticModalFusion(D, heads=2).eval()
    x = torch.randn(N, M, D)
    with torch.no_grad():
        out, again = pmf(x, MASK), pmf(x, MASK)
    torch.testing.assert_close(out["weights"], again["weights"])  # deterministic
    mean = out["alpha"] / (out["alpha"] + out["beta"]) * MASK
    torch.testing.assert_close(out["weights"], mean / mean.sum(-1, keepdim=True))
    joint = (out["weights"].unsqueeze(-1) * torch.nn.functional.normalize(x, dim=-1)).sum(1)
    torch.testing.assert_close(out["joint"], joint)
    pmf.train()
    sampled = pmf(x, MASK)["weights"]
    assert not torch.allclose(sampled, out["weights"])  # training samples the Beta weights


# Optimal transport ----------------------------------------------------------------------------
def test_sinkhorn_plan_has_uniform_marginals():
    ota = OptimalTransportModalAlignment(reg=0.05, max_iter=500)
    cost = torch.rand(5, 7)
    plan = ota.plan(cost)
    torch.testing.assert_close(plan.sum(1), torch.full((5,), 1 / 5), atol=1e-4, rtol=0)
    torch.testing.assert_close(plan.sum(0), torch.full((7,), 1 / 7), atol=1e-4, rtol=0)
    assert torch.all(plan >= 0)


def test_ot_loss_is_low_when_each_modality_matches_its_joint():
    torch.manual_seed(0)
    ota = OptimalTransportModalAlignment(reg=0.02, max_iter=2000)
    joint = torch.randn(N, D)
    matched = ota(joint.unsqueeze(1).repeat(1, M, 1), joint)
    shuffled = ota(torch.randn(N, M, D), joint)
    assert matched < 0.05 < shuffled
    uni = torch.randn(N, M, D, requires_grad=True)
    ota(uni, joint, MASK).backward()
    assert uni.grad is not None and torch.any(uni.grad[MASK] != 0)
    assert torch.all(uni.grad[~MASK] == 0)  # entities without a modality are not transported
    with pytest.raises(ValueError, match="reg > 0"):
        OptimalTransportModalAlignment(reg=0)
    with pytest.raises(ValueError, match="uni"):
        ota(uni[0], joint)
