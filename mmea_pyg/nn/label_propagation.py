r"""Seed labels propagated over the relation graph: the entity view of LightEA (Mao et al., EMNLP
2022), a structure feature without parameters (:class:`LabelPropagation`), and its learned
projection :class:`AnchorPropagation` (an input of the inductive encoders of
:mod:`mmea_pyg.nn.structure`, ``model.anchor_features=propagated``).

Neither is part of CLAMEA; :mod:`mmea_pyg.addons.propagation` uses the labels as an evaluation-time
add-on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmea_pyg.nn.graph_ops import GraphCache, normalised_hops, row_normalised_operator

__all__ = ["AnchorPropagation", "LabelPropagation"]


class LabelPropagation(nn.Module):
    r"""Seed labels propagated over the relation graph: the entity view of LightEA (Mao et al., EMNLP
    2022), a structure feature without parameters that every entity gets from the seeds in its
    neighbourhood.

    Each seed pair :math:`k` has a fixed random unit code :math:`\mathbf{c}_k \in \mathbb{R}^{D}`
    (indexed by its source entity, the same on both sides). With :math:`\mathbf{L}^{(0)}` holding the
    codes on the seed entities of one KG and zeros elsewhere, and :math:`\hat{\mathbf{A}}` the
    row-normalised adjacency of the undirected relation graph (no self loops):

    .. math::
        \mathbf{L}^{(k)} = \mathrm{normalize}\bigl(\hat{\mathbf{A}} \mathbf{L}^{(k-1)}\bigr), \qquad
        \mathbf{l}_i = [\mathbf{L}^{(1)}_i \,\|\, \dots \,\|\, \mathbf{L}^{(K)}_i].

    Two entities whose neighbourhoods hold the same seeds get the same labels in both KGs. Random
    codes of a few hundred dimensions are nearly orthogonal, which learned codes of width :math:`d`
    are not. The propagation runs without gradient.

    Args:
        num_source (int): Entities of the source KG (one potential code per source entity).
        code_dim (int, optional): Code size :math:`D`. (default: :obj:`512`)
        hops (int, optional): Propagation steps :math:`K`. (default: :obj:`2`)
        seed (int, optional): Seed of the random codes (a buffer rebuilt from the seed, not saved).
            (default: :obj:`0`)

    Shapes:
        - **input:** seed pairs :math:`(2, K)`, the side (0 source, 1 target), the KG's edge indices
          :math:`(2, |\mathcal{E}|)` and its number of entities :math:`N`
        - **output:** :math:`(N, KD)`, each hop's block of unit norm (or zero where no seed is
          within reach)
    """

    def __init__(self, num_source: int, code_dim: int = 512, hops: int = 2, seed: int = 0) -> None:
        super().__init__()
        if num_source < 1 or code_dim < 1 or hops < 1:
            raise ValueError(
                f"LabelPropagation needs num_source, code_dim, hops >= 1, got {num_source}, {code_dim}, {hops}."
            )
        self.code_dim, self.hops, self.seed = code_dim, hops, seed
        generator = torch.Generator().manual_seed(seed)
        codes = F.normalize(torch.randn(num_source, code_dim, generator=generator), dim=-1)
        self.register_buffer("codes", codes, persistent=False)  # rebuilt from ``seed``, not saved
        self.adjacency = GraphCache(row_normalised_operator)  # (N, N) sparse CSR, once per graph

    @property
    def out_dim(self) -> int:
        """Width :math:`KD` of the labels."""
        return self.hops * self.code_dim

    @torch.no_grad()
    def forward(self, pairs: Tensor, side: int, edge_index: Tensor, num_nodes: int) -> Tensor:
        if pairs.dim() != 2 or pairs.size(0) != 2:
            raise ValueError(
                f"{self.__class__.__name__} expects seed pairs of shape [2, K], got {tuple(pairs.shape)}."
            )
        labels = self.codes.new_zeros(num_nodes, self.code_dim).index_add(
            0, pairs[side], self.codes[pairs[0]]
        )
        return torch.cat(normalised_hops(self.adjacency(edge_index, num_nodes), labels, self.hops), dim=-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.codes.size(0)}, code_dim={self.code_dim}, hops={self.hops})"


class AnchorPropagation(nn.Module):
    r"""Seed labels of :class:`LabelPropagation` projected to :math:`d`, an input of the inductive
    GAT: :math:`\mathbf{h}_i = \mathbf{W}\,\mathbf{l}_i + \mathbf{b}`. Only the projection is learned.

    Args:
        num_source (int): Entities of the source KG (one potential code per source entity).
        dim (int, optional): Output size :math:`d`. (default: :obj:`100`)
        code_dim (int, optional): Code size :math:`D`. (default: :obj:`512`)
        hops (int, optional): Propagation steps :math:`K`. (default: :obj:`2`)
        seed (int, optional): Seed of the random codes. (default: :obj:`0`)

    Shapes:
        - **input:** as :class:`LabelPropagation`
        - **output:** :math:`(N, d)`
    """

    def __init__(
        self, num_source: int, dim: int = 100, code_dim: int = 512, hops: int = 2, seed: int = 0
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"AnchorPropagation needs dim >= 1, got {dim}.")
        self.labels = LabelPropagation(num_source, code_dim=code_dim, hops=hops, seed=seed)
        self.lin = nn.Linear(self.labels.out_dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the projection (the codes are fixed by ``seed``)."""
        self.lin.reset_parameters()

    def forward(self, pairs: Tensor, side: int, edge_index: Tensor, num_nodes: int) -> Tensor:
        return self.lin(self.labels(pairs, side, edge_index, num_nodes))

    def __repr__(self) -> str:
        labels = self.labels
        return (
            f"{self.__class__.__name__}({labels.codes.size(0)}, dim={self.lin.out_features}, "
            f"code_dim={labels.code_dim}, hops={labels.hops})"
        )
