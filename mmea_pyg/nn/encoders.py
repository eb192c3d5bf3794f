r"""Multimodal Knowledge Encoder (MKE, CLAMEA Appendix B).

The MKE turns the raw inputs of one knowledge graph into one :math:`d`-dimensional embedding per
modality (:math:`d = 100` in the paper):

* relational :math:`\mathbf{h}_o^r`: :class:`TransE` (Eq. 29-30), or :class:`GATEncoder` for
  ``--structure gat``;
* visual :math:`\mathbf{h}_o^v` and attribute :math:`\mathbf{h}_o^a`: :class:`ModalityProjection`
  (Eq. 31-32), a linear map of frozen, cached image / sentence features with a learned vector for
  entities that lack the modality (missing modalities are masks, never noise);
* :class:`Tokenizer` turns a :math:`d`-vector into the :math:`T` tokens the attention stack of CLAMEA
  works on (``docs/CLAMEA.md``, "Modality tokens").

Both knowledge graphs go through the same module classes; whether weights are shared is the model's
choice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv
from torch_geometric.utils import to_undirected

from mmea_pyg.losses import transe_margin_loss

__all__ = [
    "AnchorPropagation",
    "GATEncoder",
    "InductiveGATEncoder",
    "InductiveGCNEncoder",
    "LabelPropagation",
    "ModalityProjection",
    "RelationContext",
    "SeedAnchors",
    "SeedPropagationEncoder",
    "Tokenizer",
    "TransE",
    "corrupt_triples",
]


def _random_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """The device random numbers must be drawn on so that ``generator`` can be used."""
    return generator.device if generator is not None else fallback


def corrupt_triples(
    head: Tensor,
    rel: Tensor,
    tail: Tensor,
    num_entities: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Uniform negative sampling of Bordes et al. (2013), one negative per positive (Eq. 30).

    For every triple a fair coin decides whether the head or the tail is replaced; the replacement is
    drawn uniformly from the *other* :math:`N - 1` entities, so each negative differs from its
    positive in exactly one of head / tail. Negatives are not filtered against the known triples
    (the "unif" setting of TransE).

    Args:
        head (torch.Tensor): Head entity ids, shape :math:`(B,)`.
        rel (torch.Tensor): Relation ids, shape :math:`(B,)` (returned unchanged).
        tail (torch.Tensor): Tail entity ids, shape :math:`(B,)`.
        num_entities (int): Number of entities :math:`N` (ids are ``0..N-1``); at least 2.
        generator (torch.Generator, optional): Source of randomness; a seeded generator makes the
            negatives reproducible. Numbers are drawn on the generator's device and moved to
            ``head.device``.

    Returns:
        ``(neg_head, rel, neg_tail)``, each of shape :math:`(B,)`.
    """
    if num_entities < 2:
        raise ValueError(
            f"corrupt_triples needs at least 2 entities to corrupt a triple, got {num_entities}."
        )
    if head.shape != tail.shape or head.shape != rel.shape or head.dim() != 1:
        raise ValueError(
            "corrupt_triples expects 1-d head, rel and tail of equal length, got shapes "
            f"{tuple(head.shape)}, {tuple(rel.shape)}, {tuple(tail.shape)}."
        )
    device = _random_device(generator, head.device)
    n = head.numel()
    corrupt_head = torch.rand(n, generator=generator, device=device).lt(0.5).to(head.device)
    # Uniform over the N - 1 entities other than the original: draw from 0..N-2, skip the original.
    draw = torch.randint(0, num_entities - 1, (n,), generator=generator, device=device).to(head.device)
    original = torch.where(corrupt_head, head, tail)
    replacement = draw + (draw >= original).long()
    neg_head = torch.where(corrupt_head, replacement, head)
    neg_tail = torch.where(corrupt_head, tail, replacement)
    return neg_head, rel, neg_tail


class _GraphCache:
    """``build(edge_index, num_nodes)`` computed once per graph: relation graphs do not change between
    training steps, and sorting ~10^6 edges every step would dominate a CPU step. Keyed by the edge
    tensor's storage, size, device and node count; holds the last few graphs (a shared encoder sees
    both KGs). An entry keeps its edge tensor alive, so its storage cannot be freed and reused by
    another graph while cached, and an in-place edit of the edges (a new version of the tensor)
    rebuilds the entry."""

    def __init__(self, build: Callable[..., Any], capacity: int = 4) -> None:
        self.build = build
        self.capacity = capacity
        self._cache: dict[tuple, tuple[tuple[Tensor, ...], tuple[int, ...], Any]] = {}

    def __deepcopy__(self, memo: dict) -> _GraphCache:
        # Derived state: a copied module starts with an empty cache (sparse CSR entries cannot be
        # deep-copied, and the copy rebuilds them on first use).
        return _GraphCache(self.build, self.capacity)

    def __call__(self, edge_index: Tensor, num_nodes: int, *extra: Any) -> Any:
        """``build(edge_index, num_nodes, *extra)``, cached; tensors among ``extra`` (e.g. edge types)
        are part of the key like ``edge_index``."""
        tensors = (edge_index, *(e for e in extra if isinstance(e, Tensor)))
        key = (
            *((t.data_ptr(), tuple(t.shape), t.device) for t in tensors),
            num_nodes,
            *(e for e in extra if not isinstance(e, Tensor)),
        )
        versions = tuple(t._version for t in tensors)
        entry = self._cache.get(key)
        if entry is None or entry[1] != versions:
            self._cache.pop(key, None)
            if len(self._cache) >= self.capacity:
                self._cache.pop(next(iter(self._cache)))
            entry = (tensors, versions, self.build(edge_index, num_nodes, *extra))
            self._cache[key] = entry
        return entry[2]


def _undirected(edge_index: Tensor, num_nodes: int) -> Tensor:
    return to_undirected(edge_index, num_nodes=num_nodes)


class _SparseMatMul(torch.autograd.Function):
    """``matrix @ x`` for a fixed sparse CSR ``matrix`` whose transpose is given too, so that the
    backward pass is one more CSR product (autograd through ``torch.sparse.mm`` transposes and
    re-sorts the matrix on every call, several times slower on CPU)."""

    @staticmethod
    def forward(ctx, matrix: Tensor, matrix_t: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.matrix_t = matrix_t
        return matrix @ x

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, None, ctx.matrix_t @ grad.contiguous()


def sparse_matmul(operator: tuple[Tensor, Tensor], x: Tensor) -> Tensor:
    """``A @ x`` for ``operator = (A, A^T)``, two sparse CSR matrices of a cached graph operator."""
    matrix, matrix_t = operator
    if x.requires_grad:
        return _SparseMatMul.apply(matrix, matrix_t, x)
    return matrix @ x


def _csr_pair(index: Tensor, values: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """``(A, A^T)`` as sparse CSR matrices from COO ``index`` :math:`(2, E)` and ``values``
    (duplicates summed)."""
    matrix = torch.sparse_coo_tensor(index, values, size, check_invariants=True).coalesce()
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return matrix.to_sparse_csr(), matrix.t().coalesce().to_sparse_csr()


def _undirected_without_loops(edge_index: Tensor, num_nodes: int) -> Tensor:
    """The edges of the undirected relation graph, each direction once, self loops dropped."""
    undirected = to_undirected(edge_index, num_nodes=num_nodes)
    return undirected[:, undirected[0] != undirected[1]]


def _gcn_operator(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    r"""GCN propagation :math:`\hat{\mathbf{D}}^{-1/2}(\mathbf{A} + \mathbf{I})\hat{\mathbf{D}}^{-1/2}`
    of the undirected, unweighted relation graph (Kipf & Welling, 2017) as ``(A, A^T)``."""
    undirected = _undirected_without_loops(edge_index, num_nodes)
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)
    index = torch.cat([undirected, loops], dim=1)
    degree = torch.bincount(index[0], minlength=num_nodes).to(torch.float)
    inv_sqrt = degree.pow(-0.5)
    values = inv_sqrt[index[0]] * inv_sqrt[index[1]]
    return _csr_pair(index, values, (num_nodes, num_nodes))


def _row_normalised_operator(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Row-normalised adjacency of the undirected relation graph without self loops as ``(A, A^T)``."""
    undirected = _undirected_without_loops(edge_index, num_nodes)
    degree = torch.bincount(undirected[0], minlength=num_nodes).clamp_min(1).to(torch.float)
    return _csr_pair(undirected, 1.0 / degree[undirected[0]], (num_nodes, num_nodes))


def _normalised_hops(operator: tuple[Tensor, Tensor], x: Tensor, hops: int) -> list[Tensor]:
    """``hops`` steps ``x <- normalize(A x)`` of a cached operator ``(A, A^T)``, every step's rows
    L2-normalised: the propagation of :class:`LabelPropagation` and :class:`SeedPropagationEncoder`."""
    steps = []
    for _ in range(hops):
        x = F.normalize(sparse_matmul(operator, x), dim=-1)
        steps.append(x)
    return steps


def _relation_incidence(
    edge_index: Tensor, num_nodes: int, edge_type: Tensor, num_relations: int
) -> tuple[Tensor, Tensor]:
    """Row-normalised incidence :math:`(N, 2R)` of entities and direction-aware relation types:
    column ``r`` counts outgoing edges of type ``r``, column ``r + R`` incoming ones, each row divided
    by the entity's edge count (zero rows for entities without edges)."""
    if edge_type.numel() > 0 and (int(edge_type.min()) < 0 or int(edge_type.max()) >= num_relations):
        raise ValueError(f"edge_type values must lie in 0..{num_relations - 1}.")
    nodes = torch.cat([edge_index[0], edge_index[1]])
    ids = torch.cat([edge_type, edge_type + num_relations])
    degree = torch.bincount(nodes, minlength=num_nodes).clamp_min(1).to(torch.float)
    return _csr_pair(torch.stack([nodes, ids]), 1.0 / degree[nodes], (num_nodes, 2 * num_relations))


def _relation_context(
    embedding: nn.Embedding,
    edge_index: Tensor,
    edge_type: Tensor,
    num_relations: int,
    num_nodes: int,
    cache: _GraphCache | None = None,
) -> Tensor:
    r"""Mean of the direction-aware relation-type embeddings of each node's edges, :math:`(N, d)`:
    rows ``r`` of ``embedding`` for outgoing edges of type ``r``, rows ``r + R`` for incoming ones;
    zero for nodes without edges. One sparse product with the incidence matrix of the graph, taken
    from the caller's ``cache`` of :func:`_relation_incidence` (built afresh without one)."""
    incidence = (cache or _relation_incidence)(edge_index, num_nodes, edge_type, num_relations)
    return sparse_matmul(incidence, embedding.weight[: 2 * num_relations])


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


class TransE(nn.Module):
    r"""TransE relational encoder of CLAMEA's MKE (Bordes et al., 2013; Appendix B.1).

    .. math::
        f(h, r, t) = \lVert \bar{\mathbf{h}}_h + \bar{\mathbf{r}} - \bar{\mathbf{h}}_t \rVert_2^2,
        \qquad
        \mathcal{L}_{TransE} = \sum_{\tau \in T^R} \max\bigl(0, \gamma + f(\tau) - f(\tau^-)\bigr),

    where :math:`\bar{\cdot}` denotes an L2-normalised row (as TMEA / MSNEA normalise entity and
    relation embeddings) and :math:`\tau^-` is one uniformly corrupted triple per positive
    (:func:`corrupt_triples`). The entity embedding :math:`\mathbf{h}_o^r` handed to the rest of the
    model is the L2-normalised entity row.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relation types :math:`R`.
        dim (int, optional): Embedding size :math:`d`. (default: :obj:`100`)
        margin (float, optional): Margin :math:`\gamma`. (default: :obj:`1.0`)
        p_norm (int, optional): :obj:`2` scores with the squared L2 distance (Eq. 29); :obj:`1`
            with the L1 distance. (default: :obj:`2`)

    Shapes:
        - **forward:** optional entity ids :math:`(B,)` ->
          entity embeddings :math:`(N, d)` or :math:`(B, d)`
        - **score:** ids :math:`(B,)`, :math:`(B,)`, :math:`(B,)` -> :math:`(B,)`
        - **loss:** edge indices :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|,)`
          -> scalar
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        dim: int = 100,
        margin: float = 1.0,
        p_norm: int = 2,
    ) -> None:
        super().__init__()
        if num_entities < 1 or num_relations < 1 or dim < 1:
            raise ValueError(
                "TransE needs num_entities, num_relations and dim >= 1, got "
                f"{num_entities}, {num_relations}, {dim}."
            )
        if p_norm not in (1, 2):
            raise ValueError(f"TransE p_norm must be 1 or 2, got {p_norm}.")
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.dim = dim
        self.margin = margin
        self.p_norm = p_norm
        self.entity = nn.Embedding(num_entities, dim)
        self.relation = nn.Embedding(num_relations, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Xavier-uniform entity and relation rows (scale is irrelevant: rows are normalised)."""
        nn.init.xavier_uniform_(self.entity.weight)
        nn.init.xavier_uniform_(self.relation.weight)

    def forward(self, index: Tensor | None = None) -> Tensor:
        """L2-normalised entity embeddings, all of them or the rows ``index``."""
        weight = self.entity.weight if index is None else self.entity(index)
        return F.normalize(weight, p=2.0, dim=-1)

    def score(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        r"""Distance :math:`f(h, r, t)` of Eq. 29 (lower is more plausible), shape :math:`(B,)`."""
        h = F.normalize(self.entity(head), p=2.0, dim=-1)
        r = F.normalize(self.relation(rel), p=2.0, dim=-1)
        t = F.normalize(self.entity(tail), p=2.0, dim=-1)
        diff = h + r - t
        if self.p_norm == 2:
            return diff.pow(2).sum(dim=-1)
        return diff.abs().sum(dim=-1)

    def sample_triples(
        self,
        num_triples: int,
        batch_size: int = 5000,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Tensor:
        """Ids of ``min(batch_size, num_triples)`` triples drawn without replacement."""
        device = torch.device("cpu") if device is None else device
        if batch_size >= num_triples:
            return torch.arange(num_triples, device=device)
        perm = torch.randperm(num_triples, generator=generator, device=_random_device(generator, device))
        return perm[:batch_size].to(device)

    def loss(
        self,
        edge_index: Tensor,
        edge_type: Tensor,
        batch_size: int = 5000,
        generator: torch.Generator | None = None,
        reduction: str = "sum",
        index: Tensor | None = None,
    ) -> Tensor:
        r"""Margin loss Eq. 30 on a batch of triples, one corrupted triple per positive.

        Args:
            edge_index (torch.Tensor): Relation triples head -> tail, shape :math:`(2, E)`.
            edge_type (torch.Tensor): Relation id of each triple, shape :math:`(E,)`.
            batch_size (int, optional): Number of positive triples drawn without replacement
                (all of them when :math:`E \le` ``batch_size``). (default: :obj:`5000`)
            generator (torch.Generator, optional): Makes batch and negatives reproducible.
            reduction (str, optional): ``'sum'`` (Eq. 30, the paper's and TMEA's) or ``'mean'``.
            index (torch.Tensor, optional): Explicit triple ids :math:`(B,)` to use instead of a
                random batch, e.g. for a trainer that walks an epoch of shuffled batches.

        Returns:
            Scalar loss.
        """
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_type.shape != (edge_index.size(1),):
            raise ValueError(
                "TransE.loss expects edge_index [2, E] and edge_type [E], got "
                f"{tuple(edge_index.shape)} and {tuple(edge_type.shape)}."
            )
        if index is None:
            index = self.sample_triples(edge_index.size(1), batch_size, generator, edge_index.device)
        head, tail, rel = edge_index[0, index], edge_index[1, index], edge_type[index]
        neg_head, neg_rel, neg_tail = corrupt_triples(head, rel, tail, self.num_entities, generator)
        pos = self.score(head, rel, tail)
        neg = self.score(neg_head, neg_rel, neg_tail)
        return transe_margin_loss(pos, neg, margin=self.margin, reduction=reduction)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_entities}, {self.num_relations}, dim={self.dim})"


class GATEncoder(nn.Module):
    r"""Graph-attention relational encoder, the ``--structure gat`` alternative to :class:`TransE`.

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
        self._undirected = _GraphCache(_undirected)
        self._incidence = _GraphCache(_relation_incidence)
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
        return _relation_context(
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


class ModalityProjection(nn.Module):
    r"""Linear projection of a frozen modality feature, Eq. 31 (visual) and Eq. 32 (attribute).

    .. math::
        \mathbf{h}_o = \begin{cases}
            \mathbf{W}\mathbf{x} + \mathbf{b} & \text{if the entity has the modality,} \\
            \mathbf{m} & \text{otherwise,}
        \end{cases}

    where :math:`\mathbf{m}` is a learned "missing" vector shared by all entities that lack the
    modality (like BERT's ``[MASK]`` embedding): a missing modality never becomes random noise. With
    ``in_dim == 0`` (a benchmark without the modality) there is no linear map and every row is
    :math:`\mathbf{m}`. Features of masked-out rows are never read (they may hold NaN).

    With ``hidden > 0`` the linear map becomes a two-layer MLP
    :math:`\mathbf{W}_2\,\mathrm{ReLU}(\mathbf{W}_1\mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2` (MIMEA's
    "MLP encoders").

    Args:
        in_dim (int): Feature size :math:`D` (may be :obj:`0`).
        dim (int, optional): Output size :math:`d`. (default: :obj:`100`)
        hidden (int, optional): Hidden width of the MLP; :obj:`0` for the linear map.
            (default: :obj:`0`)

    Shapes:
        - **input:** features :math:`(N, D)`, optional mask :math:`(N,)` (bool, all True if None)
        - **output:** :math:`(N, d)`
    """

    def __init__(self, in_dim: int, dim: int = 100, hidden: int = 0) -> None:
        super().__init__()
        if in_dim < 0 or dim < 1 or hidden < 0:
            raise ValueError(
                f"ModalityProjection needs in_dim >= 0, dim >= 1 and hidden >= 0, got {in_dim}, {dim}, {hidden}."
            )
        self.in_dim = in_dim
        self.dim = dim
        self.hidden = hidden
        self.lin: nn.Module | None = None
        if in_dim > 0:
            self.lin = nn.Linear(in_dim, dim)
            if hidden:
                self.lin = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.missing = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Default :class:`~torch.nn.Linear` init; missing vector :math:`\sim \mathcal{N}(0, 1/d)`."""
        for module in () if self.lin is None else self.lin.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        nn.init.normal_(self.missing, std=1.0 / math.sqrt(self.dim))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_dim:
            raise ValueError(
                f"ModalityProjection expects features of shape [N, {self.in_dim}], got {tuple(x.shape)}."
            )
        n = x.size(0)
        missing = self.missing.unsqueeze(0).expand(n, self.dim)
        if self.lin is None:
            return missing.clone()
        if mask is None:
            return self.lin(x)
        if mask.shape != (n,):
            raise ValueError(f"ModalityProjection expects a mask of shape [{n}], got {tuple(mask.shape)}.")
        mask = mask.to(torch.bool).unsqueeze(-1)
        # Zero the rows that are not read so that NaN/Inf in them cannot leak into W's gradient.
        projected = self.lin(x.masked_fill(~mask, 0.0))
        return torch.where(mask, projected, missing)

    def __repr__(self) -> str:
        hidden = f", hidden={self.hidden}" if self.hidden else ""
        return f"{self.__class__.__name__}({self.in_dim}, {self.dim}{hidden})"


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
        self._undirected = _GraphCache(_undirected)
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
        self._operator = _GraphCache(_gcn_operator)
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
        \,\|\, \mathbf{X}] + \mathbf{b},

    where the codes :math:`\mathbf{C}^{(0)}` come from :class:`SeedAnchors` (a learned row per seed
    pair, the same on both sides, zero on other entities), :math:`\tilde{\mathbf{A}}` is the
    row-normalised adjacency of the undirected relation graph without self loops (an entity is
    described by the seeds around it, not by its own code), rows are L2-normalised after each hop, and
    :math:`\mathbf{X}` is an optional context (relation-type features of :class:`RelationContext`;
    zero without). It reads the relation graph only: attribute and image features are other
    modalities. Two entities whose neighbourhoods hold the same seeds get the same hop blocks in both
    KGs; training moves the codes and the read-out :math:`\mathbf{W}` so that held-out seed pairs
    match. One hop is one sparse product (cached CSR), so a training step costs milliseconds of graph
    work.

    Args:
        code_dim (int): Width of the seed codes. (default: :obj:`100`)
        dim (int, optional): Output size :math:`d` (and width of the context). (default: :obj:`100`)
        hops (int, optional): Propagation steps :math:`K \geq 1`. (default: :obj:`2`)

    Shapes:
        - **input:** edge indices :math:`(2, |\mathcal{E}|)`, codes :math:`(N, \text{code\_dim})`,
          optional context :math:`(N, d)`
        - **output:** entity embeddings :math:`(N, d)`
    """

    def __init__(self, code_dim: int = 100, dim: int = 100, hops: int = 2) -> None:
        super().__init__()
        if dim < 1 or code_dim < 1 or hops < 1:
            raise ValueError(
                f"SeedPropagationEncoder needs dim, code_dim, hops >= 1, got {dim}, {code_dim}, {hops}."
            )
        self.code_dim, self.dim, self.hops = code_dim, dim, hops
        self.out = nn.Linear(hops * code_dim + dim, dim)
        self._operator = _GraphCache(_row_normalised_operator)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the read-out."""
        self.out.reset_parameters()

    def forward(self, edge_index: Tensor, codes: Tensor, context: Tensor | None = None) -> Tensor:
        """Entity embeddings :math:`(N, d)`; see the class docstring."""
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"SeedPropagationEncoder expects edge_index of shape [2, E], got {tuple(edge_index.shape)}."
            )
        if codes.dim() != 2 or codes.size(1) != self.code_dim:
            raise ValueError(
                f"SeedPropagationEncoder expects codes of shape [N, {self.code_dim}], got {tuple(codes.shape)}."
            )
        n = codes.size(0)
        if context is None:
            context = codes.new_zeros(n, self.dim)
        elif context.shape != (n, self.dim):
            raise ValueError(
                f"SeedPropagationEncoder expects a context input of shape {(n, self.dim)}, "
                f"got {tuple(context.shape)}."
            )
        blocks = _normalised_hops(self._operator(edge_index, n), codes, self.hops)
        return self.out(torch.cat([*blocks, context], dim=-1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(code_dim={self.code_dim}, dim={self.dim}, hops={self.hops})"


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
        self._incidence = _GraphCache(_relation_incidence)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Rows :math:`\sim \mathcal{N}(0, 1/d)`, on the scale of a projected feature."""
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(self.embedding.embedding_dim))

    def forward(self, edge_index: Tensor, edge_type: Tensor, num_nodes: int) -> Tensor:
        return _relation_context(
            self.embedding, edge_index, edge_type, self.num_relations, num_nodes, self._incidence
        )

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_relations}, dim={self.embedding.embedding_dim})"


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
        self.adjacency = _GraphCache(_row_normalised_operator)  # (N, N) sparse CSR, once per graph

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
        return torch.cat(_normalised_hops(self.adjacency(edge_index, num_nodes), labels, self.hops), dim=-1)

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


class Tokenizer(nn.Module):
    r"""Learned map of a :math:`d`-vector to :math:`T` modality tokens of size :math:`d_t = d / T`.

    .. math::
        \mathbf{X} = \operatorname{reshape}_{T \times d_t}(\mathbf{W}\mathbf{h} + \mathbf{b})

    Attention blocks of CLAMEA attend over these tokens inside one entity (``docs/CLAMEA.md``).

    Args:
        dim (int, optional): Input size :math:`d`. (default: :obj:`100`)
        num_tokens (int, optional): Number of tokens :math:`T`; must divide :math:`d`.
            (default: :obj:`4`)

    Shapes:
        - **input:** :math:`(*, d)`
        - **output:** :math:`(*, T, d / T)`
    """

    def __init__(self, dim: int = 100, num_tokens: int = 4) -> None:
        super().__init__()
        if num_tokens < 1 or dim < 1 or dim % num_tokens != 0:
            raise ValueError(
                f"Tokenizer: num_tokens ({num_tokens}) must be >= 1 and divide dim ({dim}); "
                "choose e.g. dim=100 with num_tokens in {1, 2, 4, 5, 10}."
            )
        self.dim = dim
        self.num_tokens = num_tokens
        self.token_dim = dim // num_tokens
        self.lin = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if x.size(-1) != self.dim:
            raise ValueError(f"Tokenizer expects last dimension {self.dim}, got shape {tuple(x.shape)}.")
        return self.lin(x).unflatten(-1, (self.num_tokens, self.token_dim))

    @staticmethod
    def flatten(tokens: Tensor) -> Tensor:
        r"""Concatenate the tokens: :math:`(*, T, d_t) \to (*, T \cdot d_t)`."""
        return tokens.flatten(start_dim=-2)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, num_tokens={self.num_tokens})"
