r"""Sparse-graph operators shared by the relational encoders of :mod:`mmea_pyg.nn.structure` and by
:class:`~mmea_pyg.nn.label_propagation.LabelPropagation` (no paper module of its own).

A relation graph does not change between training steps, so every operator here is built once per
graph and kept in a :class:`GraphCache`; a product with it is one sparse CSR product
(:func:`sparse_matmul`, whose backward pass is one more CSR product):

* :func:`undirected_edges`: the relation graph made undirected (the input of the GAT layers);
* :func:`gcn_operator`: :math:`\hat{\mathbf{D}}^{-1/2}(\mathbf{A} + \mathbf{I})\hat{\mathbf{D}}^{-1/2}`
  (Kipf & Welling, 2017);
* :func:`row_normalised_operator` and :func:`normalised_hops`: the propagation of LightEA's labels and
  of the seed codes; :func:`normalised_hops_at` the same hops at a few rows only, computed over their
  neighbourhood (a training step's entities: its cost follows the batch, not the graph);
* :func:`relation_incidence` and :func:`relation_context`: the mean direction-aware relation-type
  embedding of each entity.

Every operator is a pair ``(A, A^T)`` of sparse CSR matrices.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_undirected

__all__ = [
    "GraphCache",
    "csr_pair",
    "directed_layout",
    "gcn_operator",
    "normalised_hops",
    "hop_sets",
    "normalised_hops_at",
    "propagate_at",
    "row_entries",
    "relation_context",
    "relation_incidence",
    "row_normalised_operator",
    "sparse_matmul",
    "undirected_edges",
]


class GraphCache:
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

    def __deepcopy__(self, memo: dict) -> GraphCache:
        # Derived state: a copied module starts with an empty cache (sparse CSR entries cannot be
        # deep-copied, and the copy rebuilds them on first use).
        return GraphCache(self.build, self.capacity)

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


def undirected_edges(edge_index: Tensor, num_nodes: int) -> Tensor:
    """The relation graph made undirected, :math:`(2, E')`: every edge in both directions, duplicates
    removed (the input of the GAT layers)."""
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


def csr_pair(index: Tensor, values: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
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


def gcn_operator(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    r"""GCN propagation :math:`\hat{\mathbf{D}}^{-1/2}(\mathbf{A} + \mathbf{I})\hat{\mathbf{D}}^{-1/2}`
    of the undirected, unweighted relation graph (Kipf & Welling, 2017) as ``(A, A^T)``."""
    undirected = _undirected_without_loops(edge_index, num_nodes)
    loops = torch.arange(num_nodes, device=edge_index.device).repeat(2, 1)
    index = torch.cat([undirected, loops], dim=1)
    degree = torch.bincount(index[0], minlength=num_nodes).to(torch.float)
    inv_sqrt = degree.pow(-0.5)
    values = inv_sqrt[index[0]] * inv_sqrt[index[1]]
    return csr_pair(index, values, (num_nodes, num_nodes))


def row_normalised_operator(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Row-normalised adjacency of the undirected relation graph without self loops as ``(A, A^T)``."""
    undirected = _undirected_without_loops(edge_index, num_nodes)
    degree = torch.bincount(undirected[0], minlength=num_nodes).clamp_min(1).to(torch.float)
    return csr_pair(undirected, 1.0 / degree[undirected[0]], (num_nodes, num_nodes))


def normalised_hops(operator: tuple[Tensor, Tensor], x: Tensor, hops: int) -> list[Tensor]:
    """``hops`` steps ``x <- normalize(A x)`` of a cached operator ``(A, A^T)``, every step's rows
    L2-normalised: the propagation of :class:`~mmea_pyg.nn.label_propagation.LabelPropagation` and
    :class:`~mmea_pyg.nn.structure.SeedPropagationEncoder`."""
    steps = []
    for _ in range(hops):
        x = F.normalize(sparse_matmul(operator, x), dim=-1)
        steps.append(x)
    return steps


def directed_layout(
    edge_index: Tensor, num_nodes: int, edge_type: Tensor, num_relations: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""The messages of a relation- and direction-aware hop
    (:class:`~mmea_pyg.nn.structure.RelationReflection`, :class:`~mmea_pyg.nn.relation_view.RelationView`)
    sorted by receiver: row pointers :math:`(N + 1,)`, and the receiver, sender and kind of each of the :math:`2|\mathcal{E}|` messages (kind ``r``: from
    the tail along relation ``r``; ``r + R``: from the head, against it)."""
    head, tail = edge_index
    receiver = torch.cat([head, tail])
    order = torch.argsort(receiver, stable=True)
    sender = torch.cat([tail, head])[order]
    kind = torch.cat([edge_type, edge_type + num_relations])[order]
    counts = torch.bincount(receiver, minlength=num_nodes)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)]), receiver[order], sender, kind


def row_entries(crow: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The stored entries of rows ``rows`` :math:`(R,)` of a CSR layout with row pointers ``crow``
    :math:`(N + 1,)`: ``(position, offset)``, both :math:`(M,)`, the position in ``rows`` of each
    entry's row and the entry's offset into the column / value arrays, row by row in storage order."""
    start = crow[rows]
    counts = crow[rows + 1] - start
    position = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), counts)
    first = torch.repeat_interleave(start - (counts.cumsum(0) - counts), counts)
    return position, first + torch.arange(position.numel(), device=rows.device)


def hop_sets(crow: Tensor, col: Tensor, rows: Tensor, hops: int) -> list[Tensor]:
    """Where each of ``hops`` propagation steps must be computed so that every step is known at
    ``rows`` (sorted, distinct): step ``hops`` at ``rows``, step ``k`` at ``rows`` and the neighbours
    (columns, in the CSR layout ``crow``, ``col``) of step ``k + 1``'s rows; sorted and distinct, first
    step first."""
    sets = [rows]
    for _ in range(hops - 1):
        _, offset = row_entries(crow, sets[-1])
        sets.append(torch.unique(torch.cat([rows, col[offset]])))
    return sets[::-1]


def _rows_operator(matrix: Tensor, rows: Tensor, columns: Tensor | None, num_columns: int):
    """``(A[rows][:, columns], its transpose)`` as CSR pairs, ``columns`` sorted and holding every
    column the rows use (``None``: all ``num_columns``)."""
    position, offset = row_entries(matrix.crow_indices(), rows)
    cols = matrix.col_indices()[offset]
    if columns is not None:
        cols, num_columns = torch.searchsorted(columns, cols), columns.numel()
    return csr_pair(torch.stack([position, cols]), matrix.values()[offset], (rows.numel(), num_columns))


def normalised_hops_at(operator: tuple[Tensor, Tensor], x: Tensor, hops: int, rows: Tensor) -> list[Tensor]:
    r"""Rows ``rows`` (sorted, distinct, :math:`(R,)`) of each step of :func:`normalised_hops`, each
    :math:`(R, d)`: the same values, computed only where they are needed. Step :math:`k` is computed
    on :math:`S_k = \text{rows} \cup \text{neighbours}(S_{k+1})` (:math:`S_K` = ``rows``), so the cost is
    that of the rows' :math:`K`-hop neighbourhood, not of the graph; ``x`` :math:`(N, d)` is read at
    :math:`S_1`'s neighbours only."""
    matrix, n = operator[0], x.size(0)
    sets = hop_sets(matrix.crow_indices(), matrix.col_indices(), rows, hops)
    return propagate_at(
        lambda h, at, cols: sparse_matmul(_rows_operator(matrix, at, cols, n), h), x, sets, rows
    )


def propagate_at(
    step: Callable[[Tensor, Any, Any], Tensor], x: Tensor, sets: list, rows: Tensor | None
) -> list[Tensor]:
    """The steps ``x <- normalize(step(x, at, columns))`` over ``sets`` (:func:`hop_sets`, first step
    first), each step's rows ``rows``: ``step`` computes the rows ``at`` from ``x`` holding the rows
    ``columns`` (the previous set; ``None`` at the first step: all of them). With ``rows=None`` and
    ``sets = [None] * hops``, every step is computed on every row."""
    steps, previous = [], None
    for at in sets:
        x = F.normalize(step(x, at, previous), dim=-1)
        steps.append(x if at is rows else x[torch.searchsorted(at, rows)])
        previous = at
    return steps


def relation_incidence(
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
    return csr_pair(torch.stack([nodes, ids]), 1.0 / degree[nodes], (num_nodes, 2 * num_relations))


def relation_context(
    embedding: nn.Embedding,
    edge_index: Tensor,
    edge_type: Tensor,
    num_relations: int,
    num_nodes: int,
    cache: GraphCache | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    r"""Mean of the direction-aware relation-type embeddings of each node's edges, :math:`(N, d)`:
    rows ``r`` of ``embedding`` for outgoing edges of type ``r``, rows ``r + R`` for incoming ones;
    zero for nodes without edges. One sparse product with the incidence matrix of the graph, taken
    from the caller's ``cache`` of :func:`relation_incidence` (built afresh without one). With ``rows``
    (sorted, distinct node ids :math:`(R,)`), their rows only, :math:`(R, d)`."""
    incidence = (cache or relation_incidence)(edge_index, num_nodes, edge_type, num_relations)
    if rows is not None:  # only these nodes (sorted, distinct): (R, d)
        incidence = _rows_operator(incidence[0], rows, None, 2 * num_relations)
    return sparse_matmul(incidence, embedding.weight[: 2 * num_relations])
