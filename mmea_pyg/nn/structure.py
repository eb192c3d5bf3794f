r"""Relational encoders of our own, beside the paper's :class:`~mmea_pyg.nn.mke.TransE` (not in
CLAMEA; chosen by ``model.structure``):

* :class:`GATEncoder` (``gat``): GAT layers over free entity rows, optionally with relation-type
  features;
* :class:`InductiveGATEncoder` (``gat-attr``) and :class:`InductiveGCNEncoder` (``gcn-attr``): GAT / GCN
  layers over projected entity features, no per-entity parameter;
* :class:`SeedPropagationEncoder` (``propagation``, the default preset's): learned seed-pair codes
  propagated over the relation graph;
* their inputs: :class:`SeedAnchors` (learned seed-pair codes) and :class:`RelationContext`
  (relation-type features), and :class:`RelationReflection` (the relation- and direction-aware hop of
  the propagation encoder), whose read-out can also take LightEA's relation view
  (:class:`~mmea_pyg.nn.relation_view.RelationView`); the projected LightEA labels
  (:class:`~mmea_pyg.nn.label_propagation.AnchorPropagation`) are in :mod:`mmea_pyg.nn.label_propagation`.

The sparse operators they share are in :mod:`mmea_pyg.nn.graph_ops`. One concept, the relational
encoders ``model.structure`` chooses among (and the two inputs they share), which is why this module is
~500 lines.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv
from torch_geometric.utils import scatter

from mmea_pyg.nn.graph_ops import (
    GraphCache,
    directed_layout,
    gcn_operator,
    hop_sets,
    normalised_hops,
    normalised_hops_at,
    propagate_at,
    relation_context,
    relation_incidence,
    row_entries,
    row_normalised_operator,
    sparse_matmul,
    undirected_edges,
)
from mmea_pyg.nn.mke import ModalityProjection
from mmea_pyg.nn.relation_view import RelationView

__all__ = [
    "GATEncoder",
    "InductiveGATEncoder",
    "InductiveGCNEncoder",
    "RelationContext",
    "RelationReflection",
    "SeedAnchors",
    "SeedPropagationEncoder",
]


def _encoder_input(
    name: str, project: nn.Module, x: Tensor, mask: Tensor | None, edge_index: Tensor, context: Tensor | None
) -> Tensor:
    """Projected features plus the optional additive ``context``, after checking the shapes of the
    edges and the context (the first step of the inductive encoders)."""
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} expects edge_index of shape [2, E], got {tuple(edge_index.shape)}.")
    h = project(x, mask)
    if context is not None:
        if context.shape != h.shape:
            raise ValueError(
                f"{name} expects a context input of shape {tuple(h.shape)}, got {tuple(context.shape)}."
            )
        h = h + context
    return h


def _gat_layers(dim: int, num_layers: int, heads: int, dropout: float) -> nn.ModuleList:
    """``num_layers`` GAT layers ``d -> d`` with averaged heads and self loops."""
    return nn.ModuleList(
        GATConv(dim, dim, heads=heads, concat=False, dropout=dropout, add_self_loops=True)
        for _ in range(num_layers)
    )


def _residual_gat(
    x: Tensor, convs: nn.ModuleList, edge_index: Tensor, dropout: float, training: bool
) -> Tensor:
    """``x + sigma(GAT(x))`` layer by layer, with ELU and dropout on all but the last layer."""
    for i, conv in enumerate(convs):
        out = conv(x, edge_index)
        if i < len(convs) - 1:
            out = F.dropout(F.elu(out), p=dropout, training=training)
        x = x + out
    return x


class GATEncoder(nn.Module):
    r"""Graph-attention relational encoder, the ``--structure gat`` alternative to
    :class:`~mmea_pyg.nn.mke.TransE`.

    A learned entity embedding, optionally concatenated with relation-type features, is fed through
    ``num_layers`` :class:`torch_geometric.nn.GATConv` layers over the relation graph made undirected
    (self loops are added by :class:`~torch_geometric.nn.GATConv`), with residual connections:

    .. math::
        \mathbf{x}^{(0)}_i = \mathbf{W}_{in}\bigl[\mathbf{e}_i \,\Vert\, \mathbf{c}_i\bigr],
        \qquad
        \mathbf{c}_i = \operatorname{mean}\bigl(\{\mathbf{u}_{r} : (i, r, j) \in \mathcal{T}\}
        \cup \{\mathbf{u}_{r + R} : (j, r, i) \in \mathcal{T}\}\bigr),

    .. math::
        \mathbf{x}^{(l+1)} = \mathbf{x}^{(l)} + \sigma\bigl(\mathrm{GAT}^{(l)}(\mathbf{x}^{(l)})\bigr),

    with :math:`\sigma` = ELU on all but the last layer (identity there) and heads averaged
    (``concat=False``), so every layer maps :math:`d \to d`. Relation-type features
    :math:`\mathbf{c}_i` are direction-aware (relation :math:`r` as an outgoing edge and as an incoming
    edge have separate embeddings); entities without edges get :math:`\mathbf{c}_i = 0`. Without
    relation features :math:`\mathbf{x}^{(0)}_i = \mathbf{e}_i`.

    This encoder has no loss of its own: its parameters are trained only by the alignment losses, and
    a model using it sets :math:`\mathcal{L}_{TransE} = 0`.

    Args:
        num_entities (int): Number of entities :math:`N`.
        dim (int, optional): Embedding size :math:`d`. (default: :obj:`100`)
        num_layers (int, optional): Number of GAT layers (:obj:`0` returns the input embedding).
            (default: :obj:`2`)
        heads (int, optional): Attention heads per layer (averaged). (default: :obj:`2`)
        dropout (float, optional): Dropout on attention coefficients and between layers.
            (default: :obj:`0.0`)
        num_relations (int, optional): Number of relation types :math:`R`; needed for relation-type
            features. (default: :obj:`None`)
        relation_features (bool, optional): Use relation-type features; defaults to
            :obj:`num_relations is not None`. (default: :obj:`None`)

    Shapes:
        - **input:** edge indices :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|,)`
          (required with relation features)
        - **output:** entity embeddings :math:`(N, d)`
    """

    def __init__(
        self,
        num_entities: int,
        dim: int = 100,
        num_layers: int = 2,
        heads: int = 2,
        dropout: float = 0.0,
        num_relations: int | None = None,
        relation_features: bool | None = None,
    ) -> None:
        super().__init__()
        if relation_features is None:
            relation_features = num_relations is not None
        if relation_features and (num_relations is None or num_relations < 1):
            raise ValueError("GATEncoder with relation_features=True needs num_relations >= 1.")
        if num_entities < 1 or dim < 1 or num_layers < 0 or heads < 1:
            raise ValueError(
                "GATEncoder needs num_entities, dim, heads >= 1 and num_layers >= 0, got "
                f"{num_entities}, {dim}, {heads}, {num_layers}."
            )
        self.num_entities = num_entities
        self.dim = dim
        self.num_layers = num_layers
        self.heads = heads
        self.dropout = dropout
        self.num_relations = num_relations
        self.relation_features = relation_features
        self.embedding = nn.Embedding(num_entities, dim)
        if relation_features:
            self.relation_embedding = nn.Embedding(2 * num_relations, dim)
            self.lin_in = nn.Linear(2 * dim, dim)
        else:
            self.relation_embedding = None
            self.lin_in = None
        self.convs = _gat_layers(dim, num_layers, heads, dropout)
        self._undirected = GraphCache(undirected_edges)
        self._incidence = GraphCache(relation_incidence)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Xavier-uniform embeddings; default initialisation of the linear and GAT layers."""
        nn.init.xavier_uniform_(self.embedding.weight)
        if self.relation_embedding is not None:
            nn.init.xavier_uniform_(self.relation_embedding.weight)
            self.lin_in.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()

    def relation_context(self, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        r"""Mean direction-aware relation-type embedding per entity, shape :math:`(N, d)`."""
        return relation_context(
            self.relation_embedding,
            edge_index,
            edge_type,
            self.num_relations,
            self.num_entities,
            self._incidence,
        )

    def forward(self, edge_index: Tensor, edge_type: Tensor | None = None) -> Tensor:
        """Entity embeddings :math:`(N, d)` from the relation graph (head -> tail triples)."""
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"GATEncoder expects edge_index of shape [2, E], got {tuple(edge_index.shape)}.")
        x = self.embedding.weight
        if self.relation_features:
            if edge_type is None or edge_type.shape != (edge_index.size(1),):
                raise ValueError(
                    "GATEncoder was built with relation-type features: pass edge_type [E] to forward, "
                    "or build it with relation_features=False."
                )
            x = self.lin_in(torch.cat([x, self.relation_context(edge_index, edge_type)], dim=-1))
        if self.num_layers == 0:
            return x
        undirected = self._undirected(edge_index, self.num_entities)
        return _residual_gat(x, self.convs, undirected, self.dropout, self.training)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.num_entities}, dim={self.dim}, "
            f"num_layers={self.num_layers}, heads={self.heads}, num_relations={self.num_relations})"
        )


class InductiveGATEncoder(nn.Module):
    r"""Inductive relational encoder: GAT layers over *projected entity features* instead of free
    per-entity embedding rows (the ``--set model.structure=gat-attr`` alternative to TransE).

    .. math::
        \mathbf{x}^{(0)}_i = \mathrm{Proj}(\mathbf{f}_i), \qquad
        \mathbf{x}^{(l+1)}_i = \mathbf{x}^{(l)}_i + \sigma\bigl(\mathrm{GAT}^{(l)}(\mathbf{x}^{(l)},
        \mathcal{E})_i\bigr),

    where :math:`\mathrm{Proj}` is a :class:`ModalityProjection` (a learned missing vector for entities
    without features) and :math:`\sigma` = ELU on all but the last layer. Every parameter is shared by
    all entities (and by both KGs when one instance serves both), so an entity that no seed pair
    touches is embedded by the same function as a seed entity: free per-entity rows (TransE, or
    :class:`GATEncoder`'s input embedding) can fit the training pairs without generalising. The
    relation graph is used undirected with self loops. No loss of its own
    (:math:`\mathcal{L}_{TransE} = 0`).

    Args:
        in_dim (int): Width :math:`D` of the entity features (e.g. the attribute features).
        dim (int, optional): Output size :math:`d`. (default: :obj:`100`)
        num_layers (int, optional): GAT layers. (default: :obj:`2`)
        heads (int, optional): Attention heads per layer (averaged). (default: :obj:`1`)
        dropout (float, optional): Dropout on attention coefficients and between layers.
            (default: :obj:`0.0`)

    Shapes:
        - **input:** features :math:`(N, D)`, mask :math:`(N,)` (bool), edge indices
          :math:`(2, |\mathcal{E}|)`
        - **output:** entity embeddings :math:`(N, d)`
    """

    def __init__(
        self, in_dim: int, dim: int = 100, num_layers: int = 2, heads: int = 1, dropout: float = 0.0
    ):
        super().__init__()
        if dim < 1 or num_layers < 0 or heads < 1:
            raise ValueError(
                f"InductiveGATEncoder needs dim, heads >= 1 and num_layers >= 0, got {dim}, {heads}, {num_layers}."
            )
        self.in_dim = in_dim
        self.dim = dim
        self.num_layers = num_layers
        self.heads = heads
        self.dropout = dropout
        self.project = ModalityProjection(in_dim, dim)
        self.convs = _gat_layers(dim, num_layers, heads, dropout)
        self._undirected = GraphCache(undirected_edges)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the projection and every GAT layer."""
        self.project.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()

    def forward(
        self, x: Tensor, mask: Tensor | None, edge_index: Tensor, context: Tensor | None = None
    ) -> Tensor:
        """Entity embeddings :math:`(N, d)` from features ``x`` :math:`(N, D)`, the relation graph and
        an optional additive input ``context`` :math:`(N, d)` (seed anchor codes of
        :class:`SeedAnchors`, relation-type features of :class:`RelationContext`), added to the
        projected features before the first layer."""
        h = _encoder_input("InductiveGATEncoder", self.project, x, mask, edge_index, context)
        undirected = self._undirected(edge_index, h.size(0))
        return _residual_gat(h, self.convs, undirected, self.dropout, self.training)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_dim}, dim={self.dim}, num_layers={self.num_layers}, "
            f"heads={self.heads})"
        )


class InductiveGCNEncoder(nn.Module):
    r"""Inductive relational encoder with graph convolutions (Kipf & Welling, 2017) over projected
    entity features, the ``model.structure=gcn-attr`` alternative to :class:`InductiveGATEncoder`:

    .. math::
        \mathbf{x}^{(0)} = \mathrm{Proj}(\mathbf{F}) + \mathbf{C}, \qquad
        \mathbf{x}^{(l+1)} = \tanh\bigl(\hat{\mathbf{A}}\,\mathbf{x}^{(l)}\mathbf{W}^{(l)}\bigr),
        \qquad
        \mathbf{h} = \mathbf{W}_o\,[\mathbf{x}^{(0)} \,\|\, \dots \,\|\, \mathbf{x}^{(L)}],

    with :math:`\hat{\mathbf{A}}` the symmetrically normalised adjacency of the undirected relation
    graph with self loops, :math:`\mathbf{C}` the optional additive context (seed anchor codes of
    :class:`SeedAnchors`, relation-type features of :class:`RelationContext`) and the output the
    projected concatenation of every layer, as RREA and Dual-AMN keep each hop's view. Like the GAT
    variant it has no per-entity parameter; unlike it, one layer is a single sparse product (cached
    CSR matrix), about 20 times cheaper than edge-wise attention on CPU, which is what lets a
    training run take thousands of optimiser steps.

    Args:
        in_dim (int): Width :math:`D` of the entity features (e.g. the attribute features).
        dim (int, optional): Output size :math:`d` (and hidden width). (default: :obj:`100`)
        num_layers (int, optional): Graph convolutions :math:`L`. (default: :obj:`2`)
        dropout (float, optional): Dropout on each layer's input during training. (default: :obj:`0.0`)

    Shapes:
        - **input:** features :math:`(N, D)`, mask :math:`(N,)` (bool), edge indices
          :math:`(2, |\mathcal{E}|)`, optional context :math:`(N, d)`
        - **output:** entity embeddings :math:`(N, d)`
    """

    def __init__(self, in_dim: int, dim: int = 100, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if dim < 1 or num_layers < 0:
            raise ValueError(
                f"InductiveGCNEncoder needs dim >= 1 and num_layers >= 0, got {dim}, {num_layers}."
            )
        self.in_dim, self.dim, self.num_layers, self.dropout = in_dim, dim, num_layers, dropout
        self.project = ModalityProjection(in_dim, dim)
        self.lins = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(num_layers))
        self.out = nn.Linear(dim * (num_layers + 1), dim)
        self._operator = GraphCache(gcn_operator)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the projection, every layer and the output map."""
        self.project.reset_parameters()
        for lin in self.lins:
            lin.reset_parameters()
        self.out.reset_parameters()

    def forward(
        self, x: Tensor, mask: Tensor | None, edge_index: Tensor, context: Tensor | None = None
    ) -> Tensor:
        """Entity embeddings :math:`(N, d)`; see the class docstring."""
        h = _encoder_input("InductiveGCNEncoder", self.project, x, mask, edge_index, context)
        operator = self._operator(edge_index, h.size(0))
        layers = [h]
        for lin in self.lins:
            h = F.dropout(h, p=self.dropout, training=self.training)
            h = torch.tanh(sparse_matmul(operator, lin(h)))
            layers.append(h)
        return self.out(torch.cat(layers, dim=-1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_dim}, dim={self.dim}, num_layers={self.num_layers})"


class SeedPropagationEncoder(nn.Module):
    r"""Relational encoder that propagates learned seed-pair codes over the relation graph (the
    ``model.structure=propagation`` alternative to TransE): the shared seed embeddings of IPTransE /
    BootEA, carried to every entity by the normalised propagation of LightEA, with learned codes and a
    learned read-out.

    .. math::
        \mathbf{C}^{(0)} = \text{seed codes}, \qquad
        \mathbf{C}^{(k)} = \mathrm{normalize}\bigl(\tilde{\mathbf{A}}\,\mathbf{C}^{(k-1)}\bigr),
        \qquad
        \mathbf{h} = \mathbf{W}\,[\mathbf{C}^{(1)} \,\|\, \dots \,\|\, \mathbf{C}^{(K)}
        \,\|\, \mathbf{X} \,\|\, \mathbf{V}] + \mathbf{b} + \lambda\,\mathbf{C}^{(0)},

    where the codes :math:`\mathbf{C}^{(0)}` come from :class:`SeedAnchors` (a learned row per seed
    pair, the same on both sides, zero on other entities), :math:`\tilde{\mathbf{A}}` is the
    row-normalised adjacency of the undirected relation graph without self loops (the hops describe
    an entity by the seeds around it, not by its own code), rows are L2-normalised after each hop, and
    :math:`\mathbf{X}` is an optional context (relation-type features of :class:`RelationContext`;
    zero without). It reads the relation graph only: attribute and image features are other
    modalities. Two entities whose neighbourhoods hold the same seeds get the same hop blocks in both
    KGs; training moves the codes and the read-out :math:`\mathbf{W}` so that held-out seed pairs
    match. One hop is one sparse product (cached CSR), so a training step costs milliseconds of graph
    work.

    With ``relation_view`` :math:`D > 0` (``model.relation_view``), the read-out also reads LightEA's
    relation view of the codes (:class:`~mmea_pyg.nn.relation_view.RelationView` of
    :math:`[\mathbf{C}^{(0)} \| \dots \| \mathbf{C}^{(K)}]`, :math:`D` wide): which neighbours reach
    an entity by which relations, with relation features taken from the codes of the entities each
    relation leaves, so relations need no alignment. Its input steps are taken without gradient (one
    whole-graph propagation per call; the backward pass stays on the rows' neighbourhood): its
    projections learn, the codes learn through the hop blocks.

    The last term (``self_weight`` :math:`\lambda`, ``model.anchor_self``; 0 by default) is LightEA's
    layer-0 label: an anchor (a training seed, or a pseudo seed kept as an anchor) carries the code it
    shares with its counterpart. It tells apart entities that no neighbourhood can (structural twins,
    :mod:`mmea_pyg.data.twins`) once the iterative strategy has paired them one to one. The codes of
    the pairs a training step scores are hidden, so the term takes no part in a loss: it acts in
    evaluation and in pseudo-seed mining.

    Args:
        code_dim (int): Width of the seed codes. (default: :obj:`100`)
        dim (int, optional): Output size :math:`d` (and width of the context). (default: :obj:`100`)
        hops (int, optional): Propagation steps :math:`K \geq 1`. (default: :obj:`2`)
        self_weight (float, optional): :math:`\lambda \geq 0`, the weight of an entity's own code;
            needs ``code_dim == dim``. (default: :obj:`0.0`)
        relation_view (int, optional): Width :math:`D` of the relation view :math:`\mathbf{V}`
            (:obj:`0`: none, :math:`\mathbf{V}` is left out). (default: :obj:`0`)

    Shapes:
        - **input:** edge indices :math:`(2, |\mathcal{E}|)`, codes :math:`(N, \text{code\_dim})`,
          optional context :math:`(N, d)`
        - **output:** entity embeddings :math:`(N, d)`
    """

    def __init__(
        self,
        code_dim: int = 100,
        dim: int = 100,
        hops: int = 2,
        self_weight: float = 0.0,
        relation_view: int = 0,
    ) -> None:
        super().__init__()
        if dim < 1 or code_dim < 1 or hops < 1 or relation_view < 0:
            raise ValueError(
                "SeedPropagationEncoder needs dim, code_dim, hops >= 1 and relation_view >= 0, got "
                f"{dim}, {code_dim}, {hops}, {relation_view}."
            )
        if self_weight < 0 or (self_weight > 0 and code_dim != dim):
            raise ValueError(
                f"SeedPropagationEncoder: self_weight must be >= 0 and needs code_dim == dim, got "
                f"{self_weight}, code_dim={code_dim}, dim={dim}."
            )
        self.code_dim, self.dim, self.hops, self.self_weight = code_dim, dim, hops, self_weight
        self.view = RelationView((hops + 1) * code_dim, relation_view) if relation_view else None
        self.out = nn.Linear(hops * code_dim + dim + relation_view, dim)
        self._operator = GraphCache(row_normalised_operator)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the read-out (and the relation view's projections)."""
        self.out.reset_parameters()
        if self.view is not None:
            self.view.reset_parameters()

    def forward(
        self,
        edge_index: Tensor,
        codes: Tensor,
        context: Tensor | None = None,
        reflection: RelationReflection | None = None,
        edge_type: Tensor | None = None,
        rows: Tensor | None = None,
    ) -> Tensor:
        r"""Entity embeddings :math:`(N, d)`; see the class docstring. With ``reflection`` (the KG's
        :class:`RelationReflection`) and the ``edge_type`` :math:`(|\mathcal{E}|,)` of ``edge_index``,
        every hop is its relation- and direction-aware mean instead of :math:`\tilde{\mathbf{A}}`.
        With ``rows`` (sorted, distinct entity ids :math:`(R,)`), only those rows :math:`(R, d)`: the
        same values, computed over their ``hops``-hop neighbourhood (a training step's entities);
        ``context`` is then :math:`(R, d)` too."""
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"SeedPropagationEncoder expects edge_index of shape [2, E], got {tuple(edge_index.shape)}."
            )
        if (reflection is not None or self.view is not None) and (
            edge_type is None or edge_type.shape != edge_index[0].shape
        ):
            raise ValueError(
                "SeedPropagationEncoder: a reflection or relation view needs one edge_type per edge."
            )
        if codes.dim() != 2 or codes.size(1) != self.code_dim:
            raise ValueError(
                f"SeedPropagationEncoder expects codes of shape [N, {self.code_dim}], got {tuple(codes.shape)}."
            )
        n = codes.size(0)
        m = n if rows is None else rows.numel()
        if context is None:
            context = codes.new_zeros(m, self.dim)
        elif context.shape != (m, self.dim):
            raise ValueError(
                f"SeedPropagationEncoder expects a context input of shape {(m, self.dim)}, "
                f"got {tuple(context.shape)}."
            )
        blocks = self._hops(codes, edge_index, edge_type, reflection, rows)
        parts = [*blocks, context]
        if self.view is not None:
            # The view reads every entity's steps, as LightEA reads its labels, without gradient: its
            # projections learn, the codes learn through the blocks, and a step's backward pass stays
            # on its rows' neighbourhood.
            if rows is None:
                layers = torch.cat([codes, *blocks], dim=-1).detach()
            else:
                with torch.no_grad():
                    layers = torch.cat([codes, *self._hops(codes, edge_index, edge_type, reflection)], dim=-1)
            parts.append(self.view(layers, edge_index, edge_type, rows))
        out = self.out(torch.cat(parts, dim=-1))
        if self.self_weight > 0:
            out = out + self.self_weight * (codes if rows is None else codes[rows])
        return out

    def _hops(
        self,
        codes: Tensor,
        edge_index: Tensor,
        edge_type: Tensor | None,
        reflection: RelationReflection | None,
        rows: Tensor | None = None,
    ) -> list[Tensor]:
        """The ``hops`` propagation steps of ``codes``, :math:`(N, c)` each, or their rows ``rows``."""
        if reflection is not None:
            return reflection.hops(codes, edge_index, edge_type, self.hops, rows)
        operator = self._operator(edge_index, codes.size(0))
        if rows is None:
            return normalised_hops(operator, codes, self.hops)
        return normalised_hops_at(operator, codes, self.hops, rows)

    def __repr__(self) -> str:
        own = f", self_weight={self.self_weight}" if self.self_weight else ""
        view = f", relation_view={self.view.width}" if self.view is not None else ""
        return f"{self.__class__.__name__}(code_dim={self.code_dim}, dim={self.dim}, hops={self.hops}{own}{view})"


class RelationContext(nn.Module):
    r"""Relation-type features of the entities of one KG: the mean of learned, direction-aware
    relation-type embeddings over each entity's edges,

    .. math::
        \mathbf{c}_i = \operatorname{mean}\bigl(\{\mathbf{u}_{r} : (i, r, j) \in \mathcal{T}\}
        \cup \{\mathbf{u}_{r + R} : (j, r, i) \in \mathcal{T}\}\bigr)

    (zero for entities without edges). One row per relation type and direction, shared by every entity
    with such an edge, so the features generalise to entities no seed pair touches. Used as an
    additive input of :class:`InductiveGATEncoder` (``model.relation_context``).

    Args:
        num_relations (int): Relation types :math:`R` of the KG.
        dim (int, optional): Feature size :math:`d`. (default: :obj:`100`)

    Shapes:
        - **input:** edge indices :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|,)`,
          number of entities :math:`N`
        - **output:** :math:`(N, d)`
    """

    def __init__(self, num_relations: int, dim: int = 100) -> None:
        super().__init__()
        if num_relations < 1 or dim < 1:
            raise ValueError(
                f"RelationContext needs num_relations >= 1 and dim >= 1, got {num_relations}, {dim}."
            )
        self.num_relations = num_relations
        self.embedding = nn.Embedding(2 * num_relations, dim)
        self._incidence = GraphCache(relation_incidence)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Rows :math:`\sim \mathcal{N}(0, 1/d)`, on the scale of a projected feature."""
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(self.embedding.embedding_dim))

    def forward(
        self, edge_index: Tensor, edge_type: Tensor, num_nodes: int, rows: Tensor | None = None
    ) -> Tensor:
        """:math:`(N, d)`; with ``rows`` (sorted, distinct ids :math:`(R,)`), their rows :math:`(R, d)`."""
        return relation_context(
            self.embedding, edge_index, edge_type, self.num_relations, num_nodes, self._incidence, rows
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_relations}, dim={self.embedding.embedding_dim})"


class RelationReflection(nn.Module):
    r"""One relation- and direction-aware propagation hop over one KG: the mean of the neighbours'
    rows, each reflected by its edge's relation and direction (RREA's relational reflection, Mao et
    al., CIKM 2020),

    .. math::
        \mathbf{x}'_i = \operatorname{mean}_{(i, r, j)} \bigl(\mathbf{I} - 2\,\mathbf{u}_r
        \mathbf{u}_r^\top\bigr)\,\mathbf{x}_j, \qquad \lVert \mathbf{u}_r \rVert = 1,

    over the outgoing edges (relation ``r``) and the incoming ones (their inverse, ``r + R``, a
    vector of its own). A reflection is orthogonal, so no hop shrinks or inflates a code, and two
    entities whose neighbours are the same but reached by other relations or in other directions get
    different rows, which :math:`\tilde{\mathbf{A}}` of :class:`SeedPropagationEncoder` cannot tell
    apart. One gather and one scatter (PyG's native ``scatter``) over the :math:`2|\mathcal{E}|`
    directed edges per hop: memory :math:`O(|\mathcal{E}| d)`.

    Args:
        num_relations (int): Relation types :math:`R` of the KG.
        dim (int): Width :math:`d` of the rows it propagates.

    Shapes:
        - **input:** rows :math:`(N, d)`, edge indices :math:`(2, |\mathcal{E}|)` (head, tail), edge
          types :math:`(|\mathcal{E}|,)`
        - **output:** :math:`(N, d)` (zero for an entity without edges)
    """

    def __init__(self, num_relations: int, dim: int) -> None:
        super().__init__()
        if num_relations < 1 or dim < 1:
            raise ValueError(
                f"RelationReflection needs num_relations >= 1 and dim >= 1, got {num_relations}, {dim}."
            )
        self.num_relations = num_relations
        self.vectors = nn.Embedding(2 * num_relations, dim)
        self._layout = GraphCache(directed_layout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Directions :math:`\mathbf{u}_r \sim \mathcal{N}(0, \mathbf{I})` (normalised when used)."""
        nn.init.normal_(self.vectors.weight)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_type: Tensor,
        num_nodes: int | None = None,
        at: Tensor | None = None,
        columns: Tensor | None = None,
    ) -> Tensor:
        """One hop :math:`(N, d)` of a graph of ``num_nodes`` entities (default: ``x.size(0)``). With
        ``at`` (sorted, distinct ids), only those rows :math:`(|at|, d)`; with ``columns`` (sorted,
        distinct ids holding every neighbour of ``at``), ``x`` holds only those entities' rows."""
        n = x.size(0) if num_nodes is None else num_nodes
        crow, receiver, sender, kind = self._layout(edge_index, n, edge_type, self.num_relations)
        if at is None:
            size = n
        else:
            receiver, offset = row_entries(crow, at)
            sender, kind, size = sender[offset], kind[offset], at.numel()
        if columns is not None:
            sender = torch.searchsorted(columns, sender)
        u = F.normalize(self.vectors(kind), dim=-1)
        rows = x[sender]
        messages = rows - 2.0 * (rows * u).sum(dim=-1, keepdim=True) * u
        return scatter(messages, receiver, dim=0, dim_size=size, reduce="mean")

    def hops(
        self, x: Tensor, edge_index: Tensor, edge_type: Tensor, hops: int, rows: Tensor | None = None
    ) -> list[Tensor]:
        """``hops`` steps ``x <- normalize(hop(x))`` from ``x`` :math:`(N, d)`, each step's output
        :math:`(N, d)`; with ``rows`` (sorted, distinct), their rows :math:`(R, d)` only, computed over
        their neighbourhood (:func:`~mmea_pyg.nn.graph_ops.hop_sets`)."""
        n = x.size(0)
        if rows is None:
            sets = [None] * hops
        else:
            crow, _, sender, _ = self._layout(edge_index, n, edge_type, self.num_relations)
            sets = hop_sets(crow, sender, rows, hops)
        return propagate_at(
            lambda h, at, columns: self(h, edge_index, edge_type, n, at=at, columns=columns), x, sets, rows
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_relations}, dim={self.vectors.embedding_dim})"


class SeedAnchors(nn.Module):
    r"""Anchor codes of the training seed pairs, shared by both entities of a pair.

    .. math::
        \mathbf{c}_i = \begin{cases}
            \mathbf{e}_k & \text{if entity } i \text{ is in visible seed pair } k, \\
            \mathbf{0} & \text{otherwise,}
        \end{cases}

    where :math:`\mathbf{e}_k` is a learned row indexed by the pair's source entity. Added to the
    input of an :class:`InductiveGATEncoder`, the codes let message passing carry *which seeds an
    entity is connected to*: two entities whose neighbourhoods contain the same seeds receive the same
    codes in both KGs. This is the parameter sharing of seed pairs that structure-based alignment
    models use (MTransE, IPTransE, JAPE and MMEA share or swap the embeddings of seed entities), moved
    to the input of an inductive encoder. A code belongs to a *pair*, never to one side, so it cannot
    memorise a pair's alignment; during training the trainer hides the codes of the pairs a step is
    scored on (``train.anchor_holdout``) so that those pairs must be aligned from their context.

    Args:
        num_source (int): Entities of the source KG (one potential code per source entity).
        dim (int, optional): Code size :math:`d`. (default: :obj:`100`)

    Shapes:
        - **input:** seed pairs :math:`(2, K)` (source, target ids), entity counts ``(N1, N2)``
        - **output:** codes ``(source (N1, d), target (N2, d))``
    """

    def __init__(self, num_source: int, dim: int = 100) -> None:
        super().__init__()
        if num_source < 1 or dim < 1:
            raise ValueError(f"SeedAnchors needs num_source >= 1 and dim >= 1, got {num_source}, {dim}.")
        self.embedding = nn.Embedding(num_source, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Codes :math:`\sim \mathcal{N}(0, 1/d)`, on the scale of a projected feature."""
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(self.embedding.embedding_dim))

    def forward(self, pairs: Tensor, num_nodes: tuple[int, int]) -> tuple[Tensor, Tensor]:
        if pairs.dim() != 2 or pairs.size(0) != 2:
            raise ValueError(f"SeedAnchors expects seed pairs of shape [2, K], got {tuple(pairs.shape)}.")
        codes = self.embedding(pairs[0])
        out = []
        for row, n in zip(pairs, num_nodes, strict=True):
            # index_add (not assignment): an entity in two seed pairs gets both codes.
            out.append(codes.new_zeros(n, codes.size(1)).index_add(0, row, codes))
        return out[0], out[1]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.embedding.num_embeddings}, dim={self.embedding.embedding_dim})"
        )
