r"""Optimal Transport Modal Alignment of MIMEA (Hu et al.).

The paper is available to us as its abstract and summary only
(``../shared/seeds/003_83e0ed85ba117153.txt``). The sentence implemented here:

    "an Optimal Transport Modal Alignment module, which introduces an optimal transport mechanism to
    encourage the interaction between uni-modal and joint-modal embeddings".

Our reading: for each modality, the uni-modal embeddings of a batch of entities and their joint-modal
embeddings are two uniform empirical distributions; the entropic optimal-transport plan between them
(Sinkhorn, computed by POT with its torch backend) weights a cosine cost, and the transport cost is
the loss. The plan is computed on the detached cost (a fixed coupling per step, as in OT-based
alignment losses), so the gradient moves the embeddings, not the plan. This is a loss over a batch of
entities: no entity's embedding depends on the others.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:  # POT is a core dependency; the import is guarded so that the error names the fix.
    import ot
except ImportError:  # pragma: no cover - exercised only on broken installs
    ot = None


class OptimalTransportModalAlignment(nn.Module):
    r"""Entropic OT between uni-modal and joint-modal embeddings of a batch.

    For modality :math:`m` with embeddings :math:`\mathbf{u}_1..\mathbf{u}_B` and joint embeddings
    :math:`\mathbf{j}_1..\mathbf{j}_B` (entities that have the modality only):

    .. math::
        C_{ik} = 1 - \cos(\mathbf{u}_i, \mathbf{j}_k), \qquad
        \mathbf{P}^\star = \arg\min_{\mathbf{P} \in U(\frac{1}{B}\mathbf{1}, \frac{1}{B}\mathbf{1})}
        \langle \mathbf{P}, \mathbf{C} \rangle - \varepsilon H(\mathbf{P}), \qquad
        \mathcal{L}_{OT} = \frac{1}{|\mathcal{M}|}\sum_m \langle \mathbf{P}^\star, \mathbf{C} \rangle .

    Args:
        reg (float, optional): Entropic regularisation :math:`\varepsilon`. (default: :obj:`0.05`)
        max_iter (int, optional): Sinkhorn iterations. (default: :obj:`100`)

    Shapes:
        - **input:** uni-modal embeddings :math:`(B, |\mathcal{M}|, d)`, joint embeddings
          :math:`(B, d)`, mask :math:`(B, |\mathcal{M}|)` (bool, optional)
        - **output:** scalar loss
    """

    def __init__(self, reg: float = 0.05, max_iter: int = 100) -> None:
        super().__init__()
        if reg <= 0 or max_iter < 1:
            raise ValueError(
                f"OptimalTransportModalAlignment needs reg > 0 and max_iter >= 1, got {reg}, {max_iter}."
            )
        if ot is None:
            raise ImportError(
                "MIMEA's optimal transport needs POT: pip install pot (a core dependency of mmea-pyg)"
            )
        self.reg = reg
        self.max_iter = max_iter

    def reset_parameters(self) -> None:
        """No parameters."""

    @torch.no_grad()
    def plan(self, cost: Tensor) -> Tensor:
        r"""The entropic OT plan :math:`(B, B')` between uniform marginals for ``cost`` :math:`(B, B')`."""
        a = cost.new_full((cost.size(0),), 1.0 / cost.size(0))
        b = cost.new_full((cost.size(1),), 1.0 / cost.size(1))
        return ot.sinkhorn(
            a, b, cost, self.reg, method="sinkhorn_log", numItermax=self.max_iter, stopThr=1e-6
        )

    def forward(self, uni: Tensor, joint: Tensor, mask: Tensor | None = None) -> Tensor:
        if uni.dim() != 3 or joint.dim() != 2 or uni.size(0) != joint.size(0) or uni.size(2) != joint.size(1):
            raise ValueError(
                f"OptimalTransportModalAlignment expects uni [B, M, d] and joint [B, d], got "
                f"{tuple(uni.shape)} and {tuple(joint.shape)}."
            )
        b, m, _ = uni.shape
        if mask is None:
            mask = torch.ones(b, m, dtype=torch.bool, device=uni.device)
        joint = F.normalize(joint, dim=-1)
        total, used = uni.new_zeros(()), 0
        for k in range(m):
            rows = mask[:, k]
            if int(rows.sum()) < 2:
                continue
            cost = 1.0 - F.normalize(uni[rows, k], dim=-1) @ joint[rows].t()
            total = total + (self.plan(cost.detach()) * cost).sum()
            used += 1
        return total / max(used, 1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(reg={self.reg}, max_iter={self.max_iter})"
