"""The bidirectional iterative strategy (MRAEA, Mao et al. 2020; CLAMEA App. E.2): mutual nearest
neighbours among the entities without a training seed become pseudo seeds (or, with
``train.pseudo_sinkhorn``, mutual best candidates after LightEA's sparse Sinkhorn normalisation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.data.splits import unpaired_entities
from mmea_pyg.distributed import Sharding
from mmea_pyg.models.base import AlignmentModel
from mmea_pyg.similarity import (
    mutual_nearest_neighbours,
    nearest,
    on_rows,
    sinkhorn_mutual_pairs,
    top_k_search,
)

#: Two cosines closer than this are a tie (:func:`propose_pseudo_seeds`): identical rows give scores that
#: differ only by float rounding (about 1e-7 per product), distinct entities almost never come this close.
TIE = 1e-5


def _tied_passes(
    first: Tensor,
    src_emb: Tensor,
    tgt_emb: Tensor,
    passes: int,
    chunk_size: int,
    sharding: Sharding | None,
    search: str,
) -> Tensor:
    """The first pass's pairs ``first`` :math:`(2, K)` (rows of ``src_emb`` / ``tgt_emb``) and those of
    up to ``passes`` further passes (:func:`propose_pseudo_seeds`). A further pair has an entity that
    ties at its best score over the whole pool, so each pass queries those entities alone: after one
    search of the two best candidates of each entity the first pass left free, a pass costs
    (tied entities) x (pool), not (pool) x (pool)."""
    search = search if sharding is None else "torch"
    unit = [F.normalize(e.float(), dim=-1) for e in (src_emb, tgt_emb)]
    free = [torch.ones(e.size(0), dtype=torch.bool, device=first.device) for e in unit]
    for side in (0, 1):
        free[side][first[side]] = False
    # Only an entity the first pass left free is ever queried again: its best score over the whole
    # pool and whether a second candidate ties with it (the others keep -inf and False).
    best = []
    for side in (0, 1):
        rows, cand = free[side].nonzero().view(-1), unit[1 - side]
        query = unit[side][rows]
        top = on_rows(
            lambda r, q=query, c=cand: top_k_search(
                q[r], c, 2, normalise=False, chunk_size=chunk_size, search=search
            )[0],
            rows.numel(),
            sharding,
        )
        value = torch.full_like(free[side], float("-inf"), dtype=top.dtype)
        tie = torch.zeros_like(free[side])
        value[rows] = top[:, 0]
        if top.size(1) > 1:  # a single candidate ties with nothing
            tie[rows] = top[:, 0] - top[:, 1] <= TIE
        best.append((value, tie))
    found = [first]
    for index in range(passes):
        if index > 0:
            for side in (0, 1):
                free[side][found[-1][side]] = False
        pool = [f.nonzero().view(-1) for f in free]
        if pool[0].numel() == 0 or pool[1].numel() == 0:
            break
        kept = []
        for side in (0, 1):  # pairs whose side-``side`` entity ties at its best
            other = 1 - side
            queries = (free[side] & best[side][1]).nonzero().view(-1)
            partner = _nearest_among(unit[side], queries, unit[other], pool[other], chunk_size, sharding)
            back = _nearest_among(unit[other], partner, unit[side], pool[side], chunk_size, sharding)
            score = (unit[side][queries] * unit[other][partner]).sum(dim=-1)
            keep = (back == queries) & (score >= best[side][0][queries] - TIE)
            pair = (queries[keep], partner[keep])
            kept.append(torch.stack(pair if side == 0 else pair[::-1]))
        new = torch.unique(torch.cat(kept, dim=1), dim=1)
        if new.size(1) == 0:
            break
        found.append(new)
    return torch.cat(found, dim=1)


def keep_staying_pairs(
    mutual: Tensor, confident: Tensor, previous: Tensor, src_idx: Tensor, tgt_idx: Tensor, n_tgt: int
) -> Tensor:
    """The pairs of ``mutual`` (local rows :math:`(2, M)`) that were ``previous`` pseudo seeds (entity
    ids :math:`(2, K')`; ``src_idx`` / ``tgt_idx`` map local rows to ids, ``n_tgt`` target entities),
    then the pairs of ``confident`` (local rows) whose two entities they leave free: :math:`(2, K)`, one
    to one (:func:`propose_pseudo_seeds`). A pair (s, t) is compared as the one number s * n_tgt + t."""
    previous = previous.to(mutual.device)
    was = torch.isin(src_idx[mutual[0]] * n_tgt + tgt_idx[mutual[1]], previous[0] * n_tgt + previous[1])
    staying = mutual[:, was]
    free = ~torch.isin(confident[0], staying[0]) & ~torch.isin(confident[1], staying[1])
    return torch.cat([staying, confident[:, free]], dim=1)


def _nearest_among(
    query: Tensor, rows: Tensor, cand: Tensor, pool: Tensor, chunk_size: int, sharding: Sharding | None
) -> Tensor:
    """For each of the ``rows`` of L2-normalised ``query``, the row of ``cand`` among ``pool`` that it
    scores best (ties: the lowest row), as a row of ``cand`` :math:`(R,)`."""
    if rows.numel() == 0:
        return rows
    q, c = query[rows], cand[pool]
    return pool[on_rows(lambda r: nearest(q[r], c, None, None, chunk_size), q.size(0), sharding)]


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
    passes: int = 1,
    sinkhorn: float = 0.0,
    sinkhorn_tau: float = 0.05,
    sinkhorn_top_k: int = 50,
    previous: Tensor | None = None,
) -> Tensor:
    """Pairs ``[2, K]`` of unaligned entities that are each other's nearest neighbour (cosine).

    Called every few epochs; the returned set replaces the previous one, so a pseudo seed is kept
    only while it stays mutual. With a ``sharding`` (a process group), each rank scores its block of
    the candidates and every rank gets the same pairs. ``search``: the nearest-neighbour search
    (:func:`~mmea_pyg.similarity.mutual_nearest_neighbours`; ``train.pseudo_search``).

    With ``passes > 1`` (``train.pseudo_bootstrap``) each further pass looks for mutual nearest
    neighbours among the entities the passes before it left over (LightEA's bootstrapping with the
    matched entities removed from the pool), and keeps a pair only if one of its two entities had
    several candidates tied at its best score over the whole pool (within :data:`TIE`) and its partner
    is one of them: an entity whose first choice was taken by a candidate it cannot tell from its
    partner. That pairs every member of a group of structural twins (:mod:`mmea_pyg.data.twins`), one
    to one, where one pass pairs only the first (ties go to the lowest index); an entity whose best
    candidate was simply taken by a closer pair stays unpaired (measured on FB15K-DB15K, where
    entities have no twins, such second-pass pairs were right for a third of them). Only entities that
    tie at their best are queried in those passes, so they cost little beyond one search of every
    entity's two best candidates. A pass that pairs nothing ends the round. Each source and each target
    is in at most one pair.

    With ``sinkhorn`` :math:`> 0` (``train.pseudo_sinkhorn``, a probability) the first pass pairs instead
    the entities that are each other's best candidate after LightEA's sparse Sinkhorn normalisation over
    their ``sinkhorn_top_k`` best cosines, both with a probability above ``sinkhorn``
    (:func:`~mmea_pyg.similarity.sinkhorn_mutual_pairs`): a contested target (one several sources score
    almost alike) is left for a later round instead of going to whichever source scores it a hair
    higher. ``sinkhorn_tau`` is the temperature of one modality block's cosine: a model's embedding
    that concatenates B normalised blocks (``model.num_blocks``) has their mean as its cosine, whose gaps
    shrink with B, so the Sinkhorn runs at ``sinkhorn_tau / B``. Entry needs that confidence; staying
    does not: a pair of the ``previous`` round (the current pseudo seeds, :math:`(2, K')`) that is still
    a pair of mutual nearest neighbours is kept first, and the Sinkhorn pairs fill the entities it
    leaves. Otherwise a paired group of structural twins, which its pseudo anchors' own codes
    (``model.anchor_self``) now tell apart by a hair, would look contested to the normalisation, be
    dropped, tie again and be paired again by the tie passes, one round in two, and a run could end
    on a round that left them tied. Every rank of a ``sharding`` computes the
    Sinkhorn whole (the same pairs everywhere); the tie passes above follow as before (docs/clamea.md,
    "Pseudo seeds by Sinkhorn").
    """
    if passes < 1:
        raise ValueError(f"propose_pseudo_seeds: passes must be >= 1, got {passes}.")
    was_training = model.training
    model.eval()
    try:
        src_idx, tgt_idx = unaligned_candidates(data, train_pairs)
        device = train_pairs.device
        src_idx, tgt_idx = src_idx.to(device), tgt_idx.to(device)
        src_emb = model.embed(data, "source", src_idx, chunk_size)
        tgt_emb = model.embed(data, "target", tgt_idx, chunk_size)
        # Embeddings of the candidates only: local rows, mapped back to entity ids at the end.
        rows = (torch.arange(src_idx.numel(), device=device), torch.arange(tgt_idx.numel(), device=device))
        if sinkhorn > 0:
            local = sinkhorn_mutual_pairs(
                src_emb,
                tgt_emb,
                sinkhorn,
                k=sinkhorn_top_k,
                tau=sinkhorn_tau / model.num_blocks,
                chunk_size=chunk_size,
                search=search,
            )
            if previous is not None and previous.numel():
                mutual = mutual_nearest_neighbours(
                    src_emb, tgt_emb, *rows, chunk_size=chunk_size, sharding=sharding, search=search
                )
                local = keep_staying_pairs(
                    mutual, local, previous, src_idx, tgt_idx, data["target"].num_nodes
                )
        else:
            local = mutual_nearest_neighbours(
                src_emb, tgt_emb, *rows, chunk_size=chunk_size, sharding=sharding, search=search
            )
        if passes > 1 and local.size(1):
            local = _tied_passes(local, src_emb, tgt_emb, passes - 1, chunk_size, sharding, search)
        return torch.stack([src_idx[local[0]], tgt_idx[local[1]]])
    finally:
        model.train(was_training)
