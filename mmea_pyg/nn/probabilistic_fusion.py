r"""Probability-guided Modal Fusion of MIMEA (Hu et al.).

The paper is available to us as its abstract and summary only
(``../shared/seeds/003_83e0ed85ba117153.txt``). The sentences implemented here:

    "a Probability-guided Modal Fusion module, which employs a probability guided approach to
    integrate uni-modal representations into joint-modal embeddings, while considering the
    interaction between uni-modal representations" and "a probabilistic fusion (Beta distributions)".

Our reading: each modality :math:`m` of an entity gets a weight :math:`p_m \sim
\mathrm{Beta}(\alpha_m, \beta_m)` whose parameters are predicted from the modality embedding *after*
it has attended to the other modalities of the same entity (the interaction); the joint embedding is
the normalised-weight sum of the L2-normalised modality embeddings. Training samples the weights
with the reparameterised Beta sampler, evaluation uses their means, and a KL term to the uniform
:math:`\mathrm{Beta}(1, 1)` keeps the distributions from collapsing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Beta, kl_divergence

from mmea_pyg.nn.attention import modality_self_attention


class ProbabilisticModalFusion(nn.Module):
    r"""Fusion with Beta-distributed modality weights.

    .. math::
        \mathbf{c} = \mathbf{X} + \mathrm{MHA}(\mathbf{X}, \mathbf{X}, \mathbf{X}), \qquad
        (\alpha_m, \beta_m) = \mathrm{softplus}(\mathbf{W}\mathbf{c}_m + \mathbf{b}) + \epsilon,

    .. math::
        p_m \sim \mathrm{Beta}(\alpha_m, \beta_m) \text{ (training) or }
        p_m = \tfrac{\alpha_m}{\alpha_m + \beta_m} \text{ (evaluation)}, \qquad
        w_m = \frac{p_m}{\sum_{n} p_n}, \qquad
        \mathbf{h}^J = \sum_m w_m \frac{\mathbf{x}_m}{\lVert \mathbf{x}_m \rVert},

    with :math:`\mathbf{X}` the modality embeddings of *one* entity, sums over the modalities it has
    (a missing modality is no key and gets :math:`w_m = 0`), and
    :math:`\mathcal{L}_{KL} = \mathrm{mean}_m\, \mathrm{KL}(\mathrm{Beta}(\alpha_m, \beta_m) \,\|\,
    \mathrm{Beta}(1, 1))` over present modalities.

    Args:
        dim (int): Width :math:`d` of each modality embedding.
        heads (int, optional): Attention heads; must divide ``dim``. (default: :obj:`2`)
        eps (float, optional): Floor :math:`\epsilon` of :math:`\alpha, \beta`. (default: :obj:`1e-2`)

    Shapes:
        - **input:** modality embeddings :math:`(N, |\mathcal{M}|, d)`, mask :math:`(N, |\mathcal{M}|)`
          (bool, optional)
        - **output:** dict with ``joint`` :math:`(N, d)`, ``weights``, ``alpha``, ``beta``
          :math:`(N, |\mathcal{M}|)` and the scalar ``loss_kl``
    """

    def __init__(self, dim: int, heads: int = 2, eps: float = 1e-2) -> None:
        super().__init__()
        if dim < 1 or heads < 1 or dim % heads:
            raise ValueError(
                f"ProbabilisticModalFusion needs heads to divide dim, got dim={dim}, heads={heads}."
            )
        self.dim = dim
        self.heads = heads
        self.eps = eps
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.beta_params = nn.Linear(dim, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.attention._reset_parameters()  # input projections and biases
        self.attention.out_proj.reset_parameters()
        self.beta_params.reset_parameters()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        context, safe, has_any = modality_self_attention(self.attention, x, mask, "ProbabilisticModalFusion")
        mask = safe & has_any  # the given mask, all True where it was None
        alpha, beta = (F.softplus(self.beta_params(x + context)) + self.eps).unbind(-1)  # [N, M] each
        dist = Beta(alpha, beta)
        p = dist.rsample() if self.training else dist.mean
        p = p * mask.to(p.dtype)
        weights = p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        joint = (weights.unsqueeze(-1) * F.normalize(x, dim=-1)).sum(dim=1)
        uniform = Beta(torch.ones_like(alpha), torch.ones_like(beta))
        kl = kl_divergence(dist, uniform)
        loss_kl = (kl * mask).sum() / mask.sum().clamp_min(1)
        return {"joint": joint, "weights": weights, "alpha": alpha, "beta": beta, "loss_kl": loss_kl}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"
