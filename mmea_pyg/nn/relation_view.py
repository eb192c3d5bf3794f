r"""The relation view of LightEA (Mao et al., EMNLP 2022 Findings) over learned seed codes: an input
of :class:`~mmea_pyg.nn.structure.SeedPropagationEncoder` (``model.relation_view``).

LightEA describes an entity by its neighbours *and the relations that reach them*: every relation gets
features from the entities it leaves (so a relation of one KG and its counterpart in the other, which
connect the same seeds, get similar features without any relation alignment), and an entity's
features sum, over its neighbours, the outer product of the connecting relations' features and the
neighbour's features. :class:`RelationView` keeps that algebra with two changes: the codes it starts
from are the learned seed codes of :class:`~mmea_pyg.nn.structure.SeedAnchors`, and the outer
product is replaced by the element-wise product of two projections,
:math:`(\mathbf{P}\mathbf{r}) \odot (\mathbf{Q}\mathbf{x})`, whose inner products estimate those of
:math:`\mathbf{r} \otimes \mathbf{x}` when :math:`\mathbf{P}, \mathbf{Q}` are Gaussian (random
features of a product kernel) and which costs :math:`O(D)` per edge instead of LightEA's
``rel_dim * mini_dim`` columns. Here :math:`\mathbf{P}, \mathbf{Q}` start Gaussian and are learned.
LightEA's own, parameter-free features are :func:`mmea_pyg.models.lightea.lightea_features`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from mmea_pyg.nn.graph_ops import GraphCache, csr_pair, directed_layout, row_entries, sparse_matmul

__all__ = ["RelationView"]

#: Messages per chunk of the edge-wise products (bounds the ``(M, D)`` temporaries without gradient).
CHUNK = 1 << 18


def _view_layout(edge_index: Tensor, num_nodes: int, edge_type: Tensor) -> tuple:
    """:func:`~mmea_pyg.nn.graph_ops.directed_layout` with the relation count read once per graph,
    and the incidence :math:`(2R, N)` of each relation kind and the entities it leaves (LightEA's
    ``rel_ent``: relation ``r`` leaves the heads of its triples, its inverse ``r + R`` the tails) as a
    CSR pair for :func:`~mmea_pyg.nn.graph_ops.sparse_matmul`."""
    num_relations = int(edge_type.max()) + 1 if edge_type.numel() else 1
    crow, receiver, sender, kind = directed_layout(edge_index, num_nodes, edge_type, num_relations)
    key = torch.unique(kind * num_nodes + receiver)  # each (kind, entity) once, as LightEA's 0/1 matrix
    incidence = csr_pair(
        torch.stack([key // num_nodes, key % num_nodes]),
        torch.ones(key.numel(), device=edge_index.device),
        (2 * num_relations, num_nodes),
    )
    return crow, receiver, sender, kind, incidence


class RelationView(nn.Module):
    r"""LightEA's relation view of one KG, over the layer features of the seed codes, with learned
    projections.

    With :math:`\mathbf{X} = [\mathbf{C}^{(0)} \,\|\, \dots \,\|\, \mathbf{C}^{(K)}]` the codes and their
    propagation steps (``in_dim`` wide), each relation kind :math:`k` (relation ``r`` and, for its
    inverse, ``r + R``) gets :math:`\mathbf{r}_k = \mathrm{normalize}\bigl(\sum_{i \in H_k}
    \mathbf{x}_i\bigr)` over the set :math:`H_k` of entities it leaves, and entity :math:`i`

    .. math::
        \mathbf{v}_i = \mathrm{normalize}\Bigl(\sum_{(i, k, j)} (\mathbf{P}\mathbf{r}_k) \odot
        (\mathbf{Q}\mathbf{x}_j)\Bigr),

    summed over its :math:`2|\mathcal{E}|`-message neighbourhood (every triple read both ways; a
    neighbour reached by two relations contributes twice, LightEA's summed tuple weights). Two
    entities with the same neighbours reached by other relations or in other directions get different
    rows, and the relation features need no alignment of relations: they come from the seed codes.

    Memory: :math:`O(|\mathcal{E}| D)` with gradient, :math:`O(\text{CHUNK} \cdot D)` without
    (evaluation); relation features :math:`O(R \cdot \text{in\_dim})`.

    Args:
        in_dim (int): Width of the layer features :math:`\mathbf{X}`.
        width (int): :math:`D`, the width of the view.

    Shapes:
        - **input:** layer features :math:`(N, \text{in\_dim})`, edge indices :math:`(2,
          |\mathcal{E}|)` (head, tail), edge types :math:`(|\mathcal{E}|,)`, optional ``rows`` (sorted,
          distinct ids :math:`(R,)`)
        - **output:** :math:`(N, D)` or :math:`(R, D)`, rows of unit norm (zero without edges)
    """

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        if in_dim < 1 or width < 1:
            raise ValueError(f"RelationView needs in_dim >= 1 and width >= 1, got {in_dim}, {width}.")
        self.in_dim, self.width = in_dim, width
        self.relation = nn.Linear(in_dim, width, bias=False)
        self.neighbour = nn.Linear(in_dim, width, bias=False)
        self._layout = GraphCache(_view_layout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Gaussian projections :math:`\mathcal{N}(0, 1/\text{in\_dim})`: the random features of
        LightEA's product at initialisation."""
        for lin in (self.relation, self.neighbour):
            nn.init.normal_(lin.weight, std=1.0 / math.sqrt(self.in_dim))

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor, rows: Tensor | None = None) -> Tensor:
        """The view of every entity :math:`(N, D)`, or of ``rows`` (sorted, distinct ids) :math:`(R, D)`,
        from the features ``x`` of every entity."""
        if x.dim() != 2 or x.size(1) != self.in_dim:
            raise ValueError(
                f"RelationView expects features of shape [N, {self.in_dim}], got {tuple(x.shape)}."
            )
        if edge_type.shape != edge_index[0].shape:
            raise ValueError("RelationView needs one edge_type per edge.")
        n = x.size(0)
        crow, receiver, sender, kind, incidence = self._layout(edge_index, n, edge_type)
        relations = self.relation(F.normalize(sparse_matmul(incidence, x), dim=-1))  # (2R, D)
        size = n
        if rows is not None:
            receiver, offset = row_entries(crow, rows)
            sender, kind, size = sender[offset], kind[offset], rows.numel()
            used, sender = torch.unique(sender, return_inverse=True)
            neighbours = self.neighbour(x[used])  # only the senders the rows read
        else:
            neighbours = self.neighbour(x)  # (N, D)
        if torch.is_grad_enabled():
            out = scatter(relations[kind] * neighbours[sender], receiver, dim=0, dim_size=size, reduce="sum")
        else:
            out = x.new_zeros(size, self.width)
            for start in range(0, receiver.numel(), CHUNK):
                part = slice(start, start + CHUNK)
                out.index_add_(0, receiver[part], relations[kind[part]] * neighbours[sender[part]])
        return F.normalize(out, dim=-1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(in_dim={self.in_dim}, width={self.width})"
