"""The bidirectional iterative strategy (MRAEA, Mao et al. 2020; CLAMEA App. E.2): mutual nearest
neighbours among the entities without a training seed become pseudo seeds."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.data.splits import unpaired_entities
from mmea_pyg.distributed import Sharding
from mmea_pyg.models.base import AlignmentModel
from mmea_pyg.similarity import mutual_nearest_neighbours


def unaligned_candidates(data: HeteroData, train_pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Entities of each KG that are not in a training seed pair: ``([n1], [n2])`` index tensors.

    Every such entity is a candidate, whether or not it has a gold link: the candidate pool never
    looks at the validation or test links (unlike TMEA's code, which draws it from them).
    """
    return unpaired_entities(data["source"].num_nodes, data["target"].num_nodes, train_pairs)


@torch.no_grad()
def propose_pseudo_seeds(
    model: AlignmentModel,
    data: HeteroData,
    train_pairs: Tensor,
    chunk_size: int = 4096,
    sharding: Sharding | None = None,
    search: str = "torch",
) -> Tensor:
    """Pairs ``[2, K]`` of unaligned entities that are each other's nearest neighbour (cosine).

    Called every few epochs; the returned set replaces the previous one, so a pseudo seed is kept
    only while it stays mutual. With a ``sharding`` (a process group), each rank scores its block of
    the candidates and every rank gets the same pairs. ``search``: the nearest-neighbour search
    (:func:`~mmea_pyg.similarity.mutual_nearest_neighbours`; ``train.pseudo_search``).
    """
    was_training = model.training
    model.eval()
    try:
        src_idx, tgt_idx = unaligned_candidates(data, train_pairs)
        device = train_pairs.device
        src_idx, tgt_idx = src_idx.to(device), tgt_idx.to(device)
        src_emb = model.embed(data, "source", src_idx, chunk_size)
        tgt_emb = model.embed(data, "target", tgt_idx, chunk_size)
        # Embeddings of the candidates only: map local rows back to entity ids.
        local = mutual_nearest_neighbours(
            src_emb,
            tgt_emb,
            torch.arange(src_idx.numel(), device=device),
            torch.arange(tgt_idx.numel(), device=device),
            chunk_size=chunk_size,
            sharding=sharding,
            search=search,
        )
        return torch.stack([src_idx[local[0]], tgt_idx[local[1]]])
    finally:
        model.train(was_training)
