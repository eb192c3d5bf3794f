r"""ADC, the attention-based dynamic calibration of RICEA (Li et al., ACL 2025).

The paper is available to us as its abstract only (``../shared/seeds/002_fc2eb0ba8bfb6fee.txt``). The
sentences implemented here:

    "[RICEA] dynamically computes weights based on the relative interaction and recalibrates the
    weights according to their uncertainties. [...] ADC utilizes attention mechanisms to perceive
    the uncertainty of the weight for each modality, rather than directly calculating the weight of
    each modality as in previous works."

Our reading (the simplest we found that a reviewer would accept):

* the *relative-interaction* weights :math:`\mathbf{w}` come from the attention each modality of an
  entity receives from the others (:class:`~mmea_pyg.nn.attention.DynamicWeightedSum`);
* ADC attends over the modalities of the entity (multi-head self-attention, missing modalities
  masked) and maps each modality's attention output to a log-variance :math:`\log\sigma^2_m`, the
  uncertainty of that modality's weight;
* the weights are recalibrated by inverse-variance weighting,
  :math:`\tilde{w}_m = \mathrm{softmax}_m(\log w_m - \log\sigma^2_m)` over the modalities the entity
  has, so an uncertain weight shrinks and a confident one grows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmea_pyg.nn.attention import modality_self_attention


class AttentionDynamicCalibration(nn.Module):
    r"""ADC: recalibrates per-entity modality weights by an attention-estimated uncertainty.

    .. math::
        \mathbf{o} = \mathrm{MHA}(\mathbf{X}, \mathbf{X}, \mathbf{X}), \qquad
        \log\sigma^2_m = \mathbf{u}^\top \mathbf{o}_m + b, \qquad
        \tilde{w}_m = \frac{w_m / \sigma^2_m}{\sum_{n} w_n / \sigma^2_n}

    where :math:`\mathbf{X} \in \mathbb{R}^{|\mathcal{M}| \times d}` holds the modality embeddings of
    *one* entity (attention never crosses entities) and the sums run over the modalities the entity
    has; a missing modality is neither a key nor weighted (:math:`\tilde{w}_m = 0`).

    Args:
        dim (int): Width :math:`d` of each modality embedding.
        heads (int, optional): Attention heads; must divide ``dim``. (default: :obj:`2`)

    Shapes:
        - **input:** modality embeddings :math:`(N, |\mathcal{M}|, d)`, weights :math:`(N, |\mathcal{M}|)`
          (non-negative), mask :math:`(N, |\mathcal{M}|)` (bool, optional)
        - **output:** calibrated weights :math:`(N, |\mathcal{M}|)` (rows sum to 1 over present
          modalities), log-variances :math:`(N, |\mathcal{M}|)`
    """

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        if dim < 1 or heads < 1 or dim % heads:
            raise ValueError(
                f"AttentionDynamicCalibration needs heads to divide dim, got dim={dim}, heads={heads}."
            )
        self.dim = dim
        self.heads = heads
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.uncertainty = nn.Linear(dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.attention._reset_parameters()  # input projections and biases
        self.attention.out_proj.reset_parameters()
        self.uncertainty.reset_parameters()

    def forward(self, x: Tensor, weights: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if weights.shape != x.shape[:2]:
            raise ValueError(
                f"AttentionDynamicCalibration expects weights {list(x.shape[:2])}, got {tuple(weights.shape)}."
            )
        out, safe, has_any = modality_self_attention(self.attention, x, mask, "AttentionDynamicCalibration")
        log_var = self.uncertainty(out).squeeze(-1)  # [N, M]
        logits = torch.log(weights.clamp_min(1e-12)) - log_var
        calibrated = logits.masked_fill(~safe, float("-inf")).softmax(dim=-1) * has_any.to(x.dtype)
        return calibrated, log_var

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"
