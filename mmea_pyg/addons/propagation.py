r"""LightEA's entity view as an add-on to a trained model: seed labels propagated over the relation
graphs, appended to the model's embedding at evaluation time.

This is **not** part of CLAMEA, RICEA or MIMEA. LightEA (Mao et al., EMNLP 2022) aligns two KGs
without a learned parameter: every seed pair gets a random code, the codes are propagated a few hops
over each graph, and mutual nearest neighbours of the propagated labels become new seeds for the next
round. Appended to a learned embedding it adds relational evidence that the model may not carry, so
every benchmark reports it as its own "+ propagation" row beside the model's row, both from the same
checkpoint (``mmea eval --propagation``).

With :math:`\mathbf{m}_i` the model's embedding of entity :math:`i` and :math:`\mathbf{l}_i` its
labels (:class:`~mmea_pyg.nn.label_propagation.LabelPropagation`, hops of unit norm each):

.. math::
    \mathbf{e}_i = \Bigl[\frac{\mathbf{m}_i}{\lVert \mathbf{m}_i \rVert} \,\Big\|\,
    \frac{w}{\sqrt{K}}\,\mathbf{l}_i\Bigr],

so a label block reached at every hop has norm :math:`w` (``weight``) against the model block's 1. The
seeds of the labels are the training pairs plus the model's last pseudo seeds (those of its checkpoint),
then ``rounds`` times the mutual nearest neighbours of :math:`\mathbf{e}` among the entities without a
training pair (never the validation or test links). Nothing here has a gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES
from mmea_pyg.models.base import AlignmentModel
from mmea_pyg.nn.label_propagation import LabelPropagation
from mmea_pyg.training.iterative import propose_pseudo_seeds


class LightEAPropagation(nn.Module):
    """A trained model with LightEA's propagated seed labels appended to its embedding.

    Args:
        model: The trained model (any :class:`~mmea_pyg.models.base.AlignmentModel`).
        data: The graphs the model was trained on.
        train_pairs: The training seed pairs :math:`(2, K)`.
        pseudo_pairs: The model's last pseudo seeds :math:`(2, K')` (from its checkpoint), if any.
        code_dim: Width :math:`D` of the random codes. (default: :obj:`512`)
        hops: Propagation steps :math:`K`. (default: :obj:`2`)
        weight: Norm :math:`w` of a full label block. (default: :obj:`2.0`)
        rounds: Rounds of mutual-nearest-neighbour re-anchoring. (default: :obj:`3`)
        chunk_size: Rows scored at a time.

    Shapes:
        - :meth:`embed`: ``data``, ``side``, optional entity indices :math:`(B,)` :math:`\\to
          (B, D_{model} + K D)`
    """

    def __init__(
        self,
        model: AlignmentModel,
        data: HeteroData,
        train_pairs: Tensor,
        pseudo_pairs: Tensor | None = None,
        code_dim: int = 512,
        hops: int = 2,
        weight: float = 2.0,
        rounds: int = 3,
        chunk_size: int = 4096,
    ) -> None:
        super().__init__()
        if weight <= 0 or rounds < 0:
            raise ValueError(f"LightEAPropagation needs weight > 0 and rounds >= 0, got {weight}, {rounds}.")
        self.model = model
        self.eval()  # an evaluation-time add-on: the model embeds in eval mode (no dropout, VAE means)
        self.weight = weight
        self.rounds = rounds
        self.propagation = LabelPropagation(data["source"].num_nodes, code_dim=code_dim, hops=hops).to(
            train_pairs.device
        )
        self.train_pairs = train_pairs
        self.pseudo_pairs = pseudo_pairs if pseudo_pairs is not None else train_pairs.new_zeros(2, 0)
        self._labels: dict[str, Tensor] = {}
        self._relabel(data)
        for _ in range(rounds):
            self.pseudo_pairs = propose_pseudo_seeds(self, data, train_pairs, chunk_size)
            self._relabel(data)

    def _relabel(self, data: HeteroData) -> None:
        seeds = torch.cat([self.train_pairs, self.pseudo_pairs.to(self.train_pairs.device)], dim=1)
        scale = self.weight / self.propagation.hops**0.5
        for i, side in enumerate(SIDES):
            edges = data[side, "relation", side]
            self._labels[side] = scale * self.propagation(seeds, i, edges.edge_index, data[side].num_nodes)

    @torch.no_grad()
    def embed(
        self, data: HeteroData, side: str, index: Tensor | None = None, chunk_size: int = 4096
    ) -> Tensor:
        """The model's unit-normalised embedding of ``index`` followed by its labels."""
        out = F.normalize(self.model.embed(data, side, index, chunk_size), dim=-1)
        labels = self._labels[side]
        if index is not None:
            labels = labels[index.to(labels.device)]
        return torch.cat([out, labels.to(out.device)], dim=-1)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.model.__class__.__name__}, code_dim={self.propagation.code_dim}, "
            f"hops={self.propagation.hops}, weight={self.weight}, rounds={self.rounds})"
        )
