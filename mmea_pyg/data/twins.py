r"""Structural twins: entities of one graph that no structure-only aligner can tell apart.

Two entities are *twins* when they have the same neighbours through the same relations in the same
directions (the same multiset of ``(neighbour, relation, direction)``). Swapping two twins is an
automorphism of the graph, so any representation computed from the relation triples alone (labels
propagated from seeds, a GNN, a translation model, their ensembles) gives them the same vector unless
something arbitrary (a random initial embedding) tells them apart. When the true counterpart of a
query has a twin among the candidates, structure can at best tie it with the twin.

This is what :func:`twin_share` reports beside the ``tied_top`` share of an evaluation: the part of the
ties that belongs to the data rather than to the model. On SRPRS EN-DE (JAPE layout) 31.1% of the test
targets have a twin among the test targets (a leaf hanging from the same entity by the same relation);
on OpenEA D-Y 15K V1, 10.9%.

Isolated entities (no triple) are twins of each other. Relation names are not compared: the
relations are ids of the graph, as in every structure-only model.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

__all__ = ["has_twin", "twin_share"]

_MASK = (1 << 62) - 1


def _multiset_hashes(entity: Tensor, code: Tensor, num_nodes: int, seed: int) -> Tensor:
    """Sum over each entity's incidences of a random 62-bit value per distinct code :math:`(N,)`
    (a multiset hash: equal multisets give equal sums; distinct ones collide with probability about
    :math:`2^{-62}` per pair)."""
    codes, inverse = torch.unique(code, return_inverse=True)
    values = torch.randint(0, _MASK, (codes.numel(),), generator=torch.Generator().manual_seed(seed))
    out = torch.zeros(num_nodes, dtype=torch.long)
    out.index_add_(0, entity, values[inverse])  # int64 wraps around: still a fixed function of the multiset
    return out


def has_twin(data: HeteroData, side: str, among: Tensor) -> Tensor:
    r"""Whether each entity of ``among`` has a structural twin *among* ``among``.

    Args:
        data: The aligned pair (``data[side, "relation", side]`` with ``edge_index`` and ``edge_type``).
        side: ``"source"`` or ``"target"``.
        among: Entity ids :math:`(M,)` of that side, distinct (the candidates of an evaluation).

    Returns:
        :math:`(M,)` bool.
    """
    edges = data[side, "relation", side]
    num_nodes = data[side].num_nodes
    heads, tails = edges.edge_index.cpu()
    rels = edges.edge_type.cpu().long()
    num_rel = int(rels.max()) + 1 if rels.numel() else 1
    # Each triple seen from its head (tail, r, out) and from its tail (head, r, in).
    entity = torch.cat([heads, tails])
    code = torch.cat([(tails * num_rel + rels) * 2, (heads * num_rel + rels) * 2 + 1])
    degree = torch.zeros(num_nodes, dtype=torch.long).index_add_(0, entity, torch.ones_like(entity))
    signature = torch.stack(
        [degree] + [_multiset_hashes(entity, code, num_nodes, seed) for seed in (0, 1)], dim=1
    )
    among = among.cpu()
    _, inverse, counts = torch.unique(signature[among], dim=0, return_inverse=True, return_counts=True)
    return counts[inverse] > 1


def twin_share(data: HeteroData, pairs: Tensor) -> dict[str, float]:
    r"""Shares of the evaluated ``pairs`` :math:`(2, P)` whose source has a twin among the distinct
    sources of the pairs (``source_twins``) and whose target has one among the distinct targets
    (``target_twins``): the queries whose truth structure can at best tie (module docstring)."""
    out: dict[str, float] = {}
    for row, side in enumerate(("source", "target")):
        among, inverse = torch.unique(pairs[row].cpu(), return_inverse=True)
        out[f"{side}_twins"] = (
            has_twin(data, side, among)[inverse].float().mean().item() if pairs.size(1) else 0.0
        )
    return out
