r"""Nearest candidates in bounded memory, and Sinkhorn normalisation of the sparse top-k scores.

Both are building blocks below every model and every evaluation (a model that bootstraps pseudo
pairs needs them as much as :mod:`mmea_pyg.alignment` does), so this module imports nothing of the
package but its errors and the type of a sharding.

* :func:`top_k_search` — the ``k`` highest inner products of every query row among the candidate
  rows, exact, computed ``chunk_size`` query rows at a time: memory is :math:`O(\text{chunk} \cdot C +
  Q k)`, never :math:`Q \times C`; or by faiss (exact, or an approximate HNSW index whose recall
  :func:`search_recall` measures) when it is installed.
* :func:`sparse_sinkhorn` — LightEA's test-time normalisation (Mao et al., EMNLP 2022): only the
  ``k`` listed candidates of each query take part; :math:`P = \exp(S / \tau)` is normalised over each
  query's row, then over each candidate's column (over the queries that list it), ``iters`` times.
  Unlisted entries are exactly 0. Computed in the log domain, so that a temperature of 0.02 cannot
  underflow a whole row.
* :func:`score_block`, :func:`mean_top_k_similarity` and :func:`nearest` — cosine or CSLS scores of a
  block of query rows, CSLS's neighbourhood terms, and each query's best candidate, chunked (what
  :mod:`mmea_pyg.evaluation` ranks with and :mod:`mmea_pyg.alignment` aligns with).
* :func:`mutual_nearest_neighbours` — pairs that are each other's best candidate (MRAEA's bidirectional
  pseudo seeds), cosine or CSLS, chunked.
* :func:`check_embeddings`, :func:`check_index`, :func:`check_chunk_size`, :func:`check_csls_k`,
  :func:`normalised_rows` — the argument checks and the scoring-dtype normalisation that this module and
  :mod:`mmea_pyg.evaluation` share (one message for one mistake).
* :func:`column_best` — for every candidate, the query whose listed score for it is highest (the
  reverse direction of a top-k list, for mutual-best flags).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmea_pyg.distributed import Sharding
from mmea_pyg.errors import ConfigError

__all__ = [
    "check_chunk_size",
    "check_csls_k",
    "check_embeddings",
    "check_index",
    "check_search",
    "column_best",
    "mean_top_k_similarity",
    "mutual_nearest_neighbours",
    "nearest",
    "normalised_rows",
    "on_rows",
    "score_block",
    "search_recall",
    "SEARCHES",
    "sinkhorn_best",
    "sinkhorn_mutual_pairs",
    "sinkhorn_top_k",
    "sparse_ranks",
    "sparse_sinkhorn",
    "top_k_search",
]


def check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    return chunk_size


def check_csls_k(csls_k: int) -> int:
    if isinstance(csls_k, bool) or not isinstance(csls_k, int) or csls_k < 0:
        raise ConfigError(
            f"csls_k must be a non-negative integer (0 = plain cosine, e.g. 10 for CSLS), got {csls_k!r}."
        )
    return csls_k


def check_embeddings(src_emb: Tensor, tgt_emb: Tensor) -> None:
    for name, emb in (("src_emb", src_emb), ("tgt_emb", tgt_emb)):
        if not isinstance(emb, Tensor) or emb.dim() != 2:
            shape = tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__
            raise ValueError(f"{name} must be a 2-D tensor [num_entities, dim], got {shape}.")
        if not emb.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {emb.dtype}.")
    if src_emb.size(1) != tgt_emb.size(1):
        raise ValueError(
            f"src_emb and tgt_emb must have the same dimension, got {src_emb.size(1)} and {tgt_emb.size(1)}."
        )
    if src_emb.device != tgt_emb.device:
        raise ValueError(
            f"src_emb and tgt_emb must be on the same device, got {src_emb.device} and {tgt_emb.device}."
        )


def check_index(index: Tensor, size: int, name: str) -> None:
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
        raise ValueError(
            f"{name} holds indices outside [0, {size}) (min {int(index.min())}, max {int(index.max())}); "
            "check that the pairs/candidates match the embedding tables."
        )


def _compute_dtype(emb: Tensor) -> torch.dtype:
    # Half precision produces spurious exact ties; score in float32 unless float64 was given.
    return torch.float64 if emb.dtype == torch.float64 else torch.float32


def normalised_rows(emb: Tensor, index: Tensor, name: str) -> Tensor:
    """Gather ``emb[index]``, cast it to the scoring dtype and L2-normalise it (zero rows stay zero)."""
    rows = emb.detach()[index].to(_compute_dtype(emb))
    if not bool(torch.isfinite(rows).all()):
        raise ValueError(
            f"{name} holds NaN or infinite values in the evaluated rows; ranks would be meaningless."
        )
    return F.normalize(rows, p=2.0, dim=-1)


def score_block(q: Tensor, cand: Tensor, r_q: Tensor | None, r_cand: Tensor | None) -> Tensor:
    """Cosine (``r_* is None``) or CSLS scores of a block of query rows against all candidates."""
    sim = q @ cand.t()
    if r_q is None or r_cand is None:
        return sim
    return 2.0 * sim - r_q.unsqueeze(1) - r_cand.unsqueeze(0)


def mean_top_k_similarity(query: Tensor, cand: Tensor, k: int, chunk_size: int) -> Tensor:
    """Mean cosine of each query row with its ``k`` most similar candidate rows (chunked).

    Args:
        query: L2-normalised rows, shape ``[N, D]``.
        cand: L2-normalised rows, shape ``[M, D]``.
        k: Neighbourhood size; clamped to ``M``.
        chunk_size: Query rows scored at a time.

    Returns:
        Tensor of shape ``[N]``.
    """
    k = min(k, cand.size(0))
    out = query.new_empty(query.size(0))
    for start in range(0, query.size(0), chunk_size):
        sim = query[start : start + chunk_size] @ cand.t()
        out[start : start + chunk_size] = sim.topk(k, dim=1).values.mean(dim=1)
    return out


def nearest(
    query: Tensor,
    cand: Tensor,
    r_query: Tensor | None,
    r_cand: Tensor | None,
    chunk_size: int,
    search: str = "torch",
) -> Tensor:
    """Column of the best-scoring candidate for every query row; ties go to the lowest column. Cosine
    scores (no CSLS terms) with a ``search`` other than ``torch`` go through :func:`top_k_search`
    (faiss: ties in the index's order; HNSW: approximate)."""
    if search != "torch" and r_query is None and r_cand is None:
        return top_k_search(query, cand, 1, normalise=False, chunk_size=chunk_size, search=search)[1][:, 0]
    out = torch.empty(query.size(0), dtype=torch.long, device=query.device)
    for start in range(0, query.size(0), chunk_size):
        stop = start + chunk_size
        rq = None if r_query is None else r_query[start:stop]
        scores = score_block(query[start:stop], cand, rq, r_cand)
        # torch.argmax returns the first maximal index (documented, CPU and CUDA): lowest column.
        out[start:stop] = scores.argmax(dim=1)
    return out


def on_rows(compute, n: int, sharding: Sharding | None):
    """``compute(rows)`` for the ``n`` query rows: all of them (``rows = slice(None)``) without a
    ``sharding``; with one, this rank's block, joined with every other rank's
    (:meth:`~mmea_pyg.distributed.Sharding.gather`), so every rank returns the whole result.
    ``compute`` returns a tensor or a tuple of tensors whose first dimension is the rows."""
    if sharding is None:
        return compute(slice(None))
    out = compute(sharding.rows(n))
    if isinstance(out, tuple):
        return tuple(sharding.gather(part, n) for part in out)
    return sharding.gather(out, n)


#: The nearest-neighbour searches of :func:`top_k_search` (``eval.search``, ``mmea align --search``).
SEARCHES = ("auto", "torch", "faiss", "faiss-hnsw")
#: ``auto`` hands a search to faiss's exact index from this many query x candidate cells on (when
#: faiss is installed and the rows are on the CPU); below it the blocked product is as fast and
#: bit-for-bit the same on every machine.
FAISS_FROM_CELLS = 200_000_000


def check_search(search: str, installed: bool = False) -> str:
    """``search`` if it is one of :data:`SEARCHES` (with ``installed``: and faiss is importable where
    it needs faiss); a one-line :class:`~mmea_pyg.errors.ConfigError` otherwise."""
    if search not in SEARCHES:
        raise ConfigError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if installed and search.startswith("faiss"):
        _faiss(required=True)
    return search


def _faiss(required: bool):
    try:
        import faiss
    except ImportError:
        if required:
            raise ConfigError(
                "the faiss search needs faiss: pip install 'mmea-pyg[faiss]' (or search 'torch')"
            ) from None
        return None
    return faiss


def _faiss_search(query: Tensor, cand: Tensor, k: int, approximate: bool, faiss) -> tuple[Tensor, Tensor]:
    """faiss's inner-product search: the exact ``IndexFlatIP`` or an HNSW graph (``approximate``,
    32 links per node, ``efSearch`` = max(2k, 128))."""
    q = query.detach().float().contiguous().numpy()
    c = cand.detach().float().contiguous().numpy()
    if approximate:
        index = faiss.IndexHNSWFlat(c.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(c)
        index.hnsw.efSearch = max(2 * k, 128)
    else:
        index = faiss.IndexFlatIP(c.shape[1])
        index.add(c)
    values, found = index.search(q, k)
    return torch.from_numpy(values), torch.from_numpy(found).long()


@torch.no_grad()
def top_k_search(
    query: Tensor,
    cand: Tensor,
    k: int,
    *,
    normalise: bool = True,
    chunk_size: int = 2048,
    csls: tuple[Tensor, Tensor] | None = None,
    bar=None,
    search: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The ``k`` best candidates of every query by inner product (cosine with ``normalise``).

    Args:
        query: Query rows :math:`(Q, D)`.
        cand: Candidate rows :math:`(C, D)`.
        k: Candidates kept per query (clamped to :math:`C`).
        normalise: L2-normalise both sides first (cosine similarity).
        chunk_size: Query rows scored at a time.
        csls: ``(r_query, r_cand)`` :math:`(Q,)`, :math:`(C,)`: score by CSLS,
            :math:`2 s - r_q - r_c`, instead.
        bar: A tqdm bar advanced by the rows done.
        search: ``"torch"``: exact, ``chunk_size`` query rows against all candidates at a time;
            ``"faiss"``: faiss's exact inner-product index (``pip install mmea-pyg[faiss]``);
            ``"faiss-hnsw"``: faiss's approximate HNSW index (faster on large graphs, may miss a
            neighbour: measure its recall with :func:`search_recall`); ``"auto"``: faiss's exact
            index from :data:`FAISS_FROM_CELLS` cells on when faiss is installed and the rows are on
            the CPU, else ``"torch"``. CSLS scores always use ``"torch"``.

    Returns:
        ``(values, index)``, both :math:`(Q, k)`: scores best first and candidate rows. Ties keep the
        order of the search (:func:`torch.topk` for ``"torch"``).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    check_search(search)
    if normalise:
        query, cand = F.normalize(query.float(), dim=-1), F.normalize(cand.float(), dim=-1)
    k = min(k, cand.size(0))
    on_cpu = query.device.type == "cpu" and cand.device.type == "cpu"
    if search != "torch" and csls is None and on_cpu:
        big = query.size(0) * cand.size(0) >= FAISS_FROM_CELLS
        faiss = _faiss(required=search != "auto") if (search != "auto" or big) else None
        if faiss is not None:
            values, index = _faiss_search(query, cand, k, search == "faiss-hnsw", faiss)
            if bar is not None:
                bar.update(query.size(0))
            return values.to(query.dtype), index
    values = query.new_empty(query.size(0), k)
    index = torch.empty(query.size(0), k, dtype=torch.long, device=query.device)
    for start in range(0, query.size(0), chunk_size):
        block = query[start : start + chunk_size] @ cand.t()
        if csls is not None:
            block = 2.0 * block - csls[0][start : start + chunk_size].unsqueeze(1) - csls[1].unsqueeze(0)
        top = block.topk(k, dim=1)
        values[start : start + chunk_size], index[start : start + chunk_size] = top.values, top.indices
        if bar is not None:
            bar.update(block.size(0))
    return values, index


@torch.no_grad()
def search_recall(
    query: Tensor, cand: Tensor, k: int, search: str, *, sample: int = 2000, seed: int = 0
) -> dict[str, float | int | str]:
    """Recall@k of ``search`` against the exact blocked search, on ``sample`` random query rows: the
    share of the exact ``k`` best candidates that ``search`` finds (what an approximate index costs)."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randperm(query.size(0), generator=g)[: min(sample, query.size(0))].to(query.device)
    _, exact = top_k_search(query[rows], cand, k, search="torch")
    _, found = top_k_search(query[rows], cand, k, search=search)
    hit = (found.unsqueeze(2) == exact.unsqueeze(1)).any(1).float().mean()
    return {"search": search, "k": int(exact.size(1)), "queries": int(rows.numel()), "recall": float(hit)}


def _column_logsumexp(log_p: Tensor, index: Tensor, num_cand: int) -> Tensor:
    """``logsumexp`` of the listed entries of each candidate column :math:`(C,)` (``-inf`` if none)."""
    flat, cols = log_p.reshape(-1), index.reshape(-1)
    top = torch.full((num_cand,), -torch.inf, dtype=log_p.dtype, device=log_p.device)
    top = top.scatter_reduce(0, cols, flat, reduce="amax", include_self=True)
    safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = torch.zeros(num_cand, dtype=log_p.dtype, device=log_p.device)
    total.index_add_(0, cols, (flat - safe[cols]).exp())
    return total.log() + safe


@torch.no_grad()
def sparse_sinkhorn(
    values: Tensor, index: Tensor, num_cand: int, *, iters: int = 15, tau: float = 0.02
) -> Tensor:
    r"""Sinkhorn normalisation restricted to each query's listed candidates (LightEA's
    ``sparse_sinkhorn_sims``).

    With :math:`S_{qc}` the listed scores, :math:`P^{(0)} = \exp(S / \tau)`, then ``iters`` times
    :math:`P \leftarrow P / \sum_c P_{qc}` (rows) and :math:`P \leftarrow P / \sum_q P_{qc}` (columns,
    over the queries that list :math:`c`). Unlisted entries stay 0.

    Args:
        values: Listed scores :math:`(Q, k)` (:func:`top_k_search`).
        index: Their candidate columns :math:`(Q, k)`, in ``[0, num_cand)``.
        num_cand: Number of candidate columns :math:`C`.
        iters: Row-then-column rounds (at least 1).
        tau: Temperature (> 0).

    Returns:
        :math:`(Q, k)` probabilities in the layout of ``values`` (not re-sorted), in float64 whatever
        the dtype of ``values``: float32 rounds the small probabilities of contested rows to exact zeros,
        and those zeros tie (on SRPRS EN-DE with LightEA's features, 14.0% of the test sources had their
        truth tied at the top in float32 against 6.8% in float64, and Hits@1 0.538 against 0.550).
    """
    if not tau > 0 or iters < 1:
        raise ValueError(f"sparse Sinkhorn needs tau > 0 and iters >= 1, got {tau} and {iters}")
    log_p = values.double() / tau
    for _ in range(iters):
        log_p = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
        log_p = log_p - _column_logsumexp(log_p, index, num_cand)[index]
    return log_p.exp()


@torch.no_grad()
def sinkhorn_top_k(
    query: Tensor,
    cand: Tensor,
    k: int = 500,
    *,
    iters: int = 15,
    tau: float = 0.02,
    normalise: bool = True,
    chunk_size: int = 2048,
    csls: tuple[Tensor, Tensor] | None = None,
    bar=None,
    search: str = "auto",
) -> tuple[Tensor, Tensor]:
    """:func:`top_k_search` then :func:`sparse_sinkhorn`: ``(probs, index)``, both :math:`(Q, k)`,
    in the search's layout (best *similarity* first, not re-sorted by probability)."""
    values, index = top_k_search(
        query, cand, k, normalise=normalise, chunk_size=chunk_size, csls=csls, bar=bar, search=search
    )
    return sparse_sinkhorn(values, index, cand.size(0), iters=iters, tau=tau), index


@torch.no_grad()
def sinkhorn_best(
    query: Tensor,
    cand: Tensor,
    k: int = 500,
    *,
    iters: int = 15,
    tau: float = 0.02,
    chunk_size: int = 2048,
    search: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Each query's most probable candidate after :func:`sinkhorn_top_k`: ``(prob, index)``, both
    :math:`(Q,)` (the candidate's row of ``cand`` and its probability)."""
    probs, index = sinkhorn_top_k(query, cand, k, iters=iters, tau=tau, chunk_size=chunk_size, search=search)
    prob, at = probs.max(dim=1)
    return prob, index.gather(1, at.unsqueeze(1)).view(-1)


@torch.no_grad()
def column_best(values: Tensor, index: Tensor, num_cand: int) -> Tensor:
    """For each candidate column, the query row with its highest listed score (``-1`` where no query
    lists it; ties go to the lowest row). Shapes: ``values``, ``index`` :math:`(Q, k)` -> :math:`(C,)`."""
    flat, cols = values.reshape(-1), index.reshape(-1)
    rows = torch.arange(values.size(0), device=values.device).repeat_interleave(values.size(1))
    best = torch.full((num_cand,), -torch.inf, dtype=values.dtype, device=values.device)
    best = best.scatter_reduce(0, cols, flat, reduce="amax", include_self=True)
    winner = torch.full((num_cand,), values.size(0), dtype=torch.long, device=values.device)
    hit = flat == best[cols]
    winner = winner.scatter_reduce(0, cols[hit], rows[hit], reduce="amin", include_self=True)
    return torch.where(winner == values.size(0), torch.full_like(winner, -1), winner)


def _counts_in_groups(group: Tensor, value_rank: Tensor, query_group: Tensor, query_rank: Tensor):
    """For entries ``(group, value_rank)`` and queries ``(query_group, query_rank)`` (integers): per
    query, how many entries of its group rank above, and how many equal, its rank; and the group's
    size. Exact (integer keys), :math:`O((E + P) \\log E)`."""
    width = int(value_rank.max().item()) + 2 if value_rank.numel() else 2
    keys, _ = torch.sort(group * width + value_rank)
    q_key = query_group * width + query_rank
    group_end = torch.searchsorted(keys, query_group * width + width, right=False)
    group_start = torch.searchsorted(keys, query_group * width, right=False)
    above_start = torch.searchsorted(keys, q_key, right=True)
    equal_start = torch.searchsorted(keys, q_key, right=False)
    return group_end - above_start, above_start - equal_start, group_end - group_start


@torch.no_grad()
def sparse_ranks(
    values: Tensor,
    index: Tensor,
    pair_rows: Tensor,
    pair_cols: Tensor,
    fill: float = 0.0,
    num_columns: int | None = None,
) -> dict[str, Tensor]:
    r"""Realistic ranks of evaluated pairs in a sparse score matrix whose unlisted entries are
    ``fill`` (e.g. 0 for :func:`sparse_sinkhorn` probabilities).

    Pair :math:`i` is query row ``pair_rows[i]`` and candidate column ``pair_cols[i]``. Source ->
    target (``s2t``): its column is ranked among the *distinct* columns of ``pair_cols``; target ->
    source (``t2s``): its row among the distinct rows of ``pair_rows``; listed entries outside those
    sets are ignored. With ``num_columns``, source -> target ranks among *all* columns
    ``0 .. num_columns - 1`` instead (e.g. every target without a known pair). The rank is :math:`1 + |\{c : s_c > s^*\}| + \tfrac12 |\{c \ne c^* : s_c =
    s^*\}|` (the rule of :mod:`mmea_pyg.evaluation`), unlisted entries counting as ``fill``.

    Shapes:
        - **values**, **index** :math:`(Q, k)`; **pair_rows**, **pair_cols** :math:`(P,)`
        - **output** ``{"s2t": (P,), "t2s": (P,)}`` and the bool flags ``"s2t_top_tie"``,
          ``"t2s_top_tie"`` (the true entry ties at the top with another)
    """
    device = values.device
    pair_rows, pair_cols = pair_rows.to(device), pair_cols.to(device)
    num_rows, num_cols = values.size(0), int(max(int(index.max()) + 1, int(pair_cols.max()) + 1))
    if num_columns is not None:
        num_cols = max(num_cols, num_columns)
    in_rows = torch.zeros(num_rows, dtype=torch.bool, device=device)
    in_cols = torch.zeros(num_cols, dtype=torch.bool, device=device)
    in_rows[pair_rows] = True
    if num_columns is None:
        in_cols[pair_cols] = True
    else:
        in_cols[:num_columns] = True
    rows = torch.arange(num_rows, device=device).repeat_interleave(values.size(1))
    cols, vals = index.reshape(-1), values.reshape(-1)
    keep = in_rows[rows] & in_cols[cols]
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    # The listed value of each pair (fill where unlisted), by a lookup of (row, col) keys.
    entry_key = rows * num_cols + cols
    order = torch.argsort(entry_key)
    entry_key, sorted_vals = entry_key[order], vals[order]
    want = pair_rows * num_cols + pair_cols
    at = torch.searchsorted(entry_key, want).clamp_max(max(entry_key.numel() - 1, 0))
    if entry_key.numel():
        truth = torch.where(entry_key[at] == want, sorted_vals[at], vals.new_tensor(fill))
    else:
        truth = torch.full(want.shape, fill, dtype=vals.dtype, device=device)
    # Integer ranks of the values (and of the truths, which are listed values or the fill).
    levels = torch.unique(torch.cat([vals, vals.new_tensor([fill])]))
    value_rank, truth_rank = torch.searchsorted(levels, vals), torch.searchsorted(levels, truth)
    fill_rank = int(torch.searchsorted(levels, vals.new_tensor([fill])))
    out = {}
    for name, group, query_group, size in (
        ("s2t", rows, pair_rows, int(in_cols.sum())),
        ("t2s", cols, pair_cols, int(in_rows.sum())),
    ):
        above, equal, listed_count = _counts_in_groups(group, value_rank, query_group, truth_rank)
        unlisted = size - listed_count
        above = above + torch.where(truth_rank < fill_rank, unlisted, torch.zeros_like(unlisted))
        equal = equal + torch.where(truth_rank == fill_rank, unlisted, torch.zeros_like(unlisted))
        out[name] = 1.0 + above.float() + 0.5 * (equal - 1).float()
        out[f"{name}_top_tie"] = (above == 0) & (equal > 1)
    return out


@torch.no_grad()
def mutual_nearest_neighbours(
    src_emb: Tensor,
    tgt_emb: Tensor,
    src_candidates: Tensor,
    tgt_candidates: Tensor,
    chunk_size: int = 1024,
    csls_k: int = 0,
    sharding: Sharding | None = None,
    search: str = "torch",
) -> Tensor:
    r"""Mutual nearest neighbours among candidate entities (MRAEA's bidirectional pseudo seeds).

    A pair :math:`(s, t)` is returned iff :math:`t` is the best-scoring target candidate of
    :math:`s` *and* :math:`s` is the best-scoring source candidate of :math:`t`:

    .. math::
        t = \operatorname*{arg\,max}_{t' \in C_T} \mathrm{sim}(s, t') \quad\wedge\quad
        s = \operatorname*{arg\,max}_{s' \in C_S} \mathrm{sim}(s', t),

    with :math:`\mathrm{sim}` the cosine, or CSLS over the candidate sets when ``csls_k > 0``.
    Candidates are de-duplicated; ties go to the lowest entity index. Each source and each target
    appears in at most one returned pair.

    Args:
        src_emb: Source-graph entity embeddings, shape ``[N1, D]``.
        tgt_emb: Target-graph entity embeddings, shape ``[N2, D]``.
        src_candidates: Source entity indices to consider (e.g. the unaligned ones).
        tgt_candidates: Target entity indices to consider.
        chunk_size: Rows scored at a time.
        csls_k: ``0`` for cosine, ``k > 0`` for CSLS with ``k`` neighbours.
        sharding: Each rank of a process group scores its block of the query rows and every rank
            gets the whole result (:mod:`mmea_pyg.distributed`); ``None``: this process scores all.
        search: The nearest-neighbour search of cosine scores (:func:`top_k_search`: ``torch``,
            ``faiss``, ``faiss-hnsw`` or ``auto``); CSLS and a sharding always use the blocked product.

    Returns:
        ``[2, K]`` long tensor of (source index, target index), sorted by source index, on the device
        of ``src_candidates``.

    Shapes:
        - **src_candidates** :math:`(C_S,)`, **tgt_candidates** :math:`(C_T,)`
        - **output** :math:`(2, K)`, :math:`K \le \min(C_S, C_T)`
    """
    check_embeddings(src_emb, tgt_emb)
    chunk_size = check_chunk_size(chunk_size)
    csls_k = check_csls_k(csls_k)
    out_device = src_candidates.device
    for name, cand, size in (
        ("src_candidates", src_candidates, src_emb.size(0)),
        ("tgt_candidates", tgt_candidates, tgt_emb.size(0)),
    ):
        if cand.dim() != 1 or cand.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name} must be a 1-D integer tensor, got {tuple(cand.shape)} {cand.dtype}.")
        check_index(cand, size, name)

    device = src_emb.device
    src_cand = torch.unique(src_candidates.to(device=device, dtype=torch.long), sorted=True)
    tgt_cand = torch.unique(tgt_candidates.to(device=device, dtype=torch.long), sorted=True)
    if src_cand.numel() == 0 or tgt_cand.numel() == 0:
        return torch.empty(2, 0, dtype=torch.long, device=out_device)

    src = normalised_rows(src_emb, src_cand, "src_emb")
    tgt = normalised_rows(tgt_emb, tgt_cand, "tgt_emb")
    r_src = r_tgt = None
    if csls_k > 0:
        r_src = on_rows(lambda r: mean_top_k_similarity(src[r], tgt, csls_k, chunk_size), len(src), sharding)
        r_tgt = on_rows(lambda r: mean_top_k_similarity(tgt[r], src, csls_k, chunk_size), len(tgt), sharding)

    check_search(search)

    blocked = search if sharding is None else "torch"  # a sharding scores its blocks by products

    def best(query: Tensor, cand: Tensor, r_query: Tensor | None, r_cand: Tensor | None) -> Tensor:
        return on_rows(
            lambda r: nearest(
                query[r], cand, None if r_query is None else r_query[r], r_cand, chunk_size, blocked
            ),
            len(query),
            sharding,
        )

    s2t = best(src, tgt, r_src, r_tgt)  # [C_S] column in tgt_cand
    t2s = best(tgt, src, r_tgt, r_src)  # [C_T] column in src_cand
    rows = torch.arange(src_cand.size(0), device=device)
    mutual = t2s[s2t] == rows
    result = torch.stack([src_cand[mutual], tgt_cand[s2t[mutual]]])
    return result.to(out_device)


@torch.no_grad()
def sinkhorn_mutual_pairs(
    src_emb: Tensor,
    tgt_emb: Tensor,
    threshold: float,
    *,
    k: int = 50,
    iters: int = 15,
    tau: float = 0.05,
    chunk_size: int = 2048,
    search: str = "torch",
) -> Tensor:
    r"""Pairs that are each other's best candidate after sparse Sinkhorn normalisation, both sure of it
    (LightEA's bootstrapping, made bidirectional): the pseudo seeds of ``train.pseudo_sinkhorn``.

    Each source keeps its ``k`` best targets by cosine and :func:`sparse_sinkhorn` normalises them
    (rows, then the columns over the sources that list them); the same from the targets' side. A pair
    :math:`(s, t)` is returned iff :math:`t` has the highest probability among :math:`s`'s listed
    candidates, :math:`s` the highest among :math:`t`'s, and both probabilities exceed ``threshold``.
    Where mutual nearest neighbours take every pair of mutual best cosines, this leaves the pairs the
    normalisation finds contested (a target that several sources score almost alike), so fewer pairs
    are wrong. Each source and each target is in at most one pair. Memory grows with
    :math:`(N_1 + N_2)\,k`, never :math:`N_1 N_2` (:func:`top_k_search` is blocked).

    Args:
        src_emb: Source embeddings :math:`(N_1, D)` (normalised here).
        tgt_emb: Target embeddings :math:`(N_2, D)`.
        threshold: Probability both directions must exceed, in :math:`[0, 1)`.
        k: Candidates kept per entity (at most the other side's size).
        iters, tau: Sinkhorn rounds and temperature (:func:`sparse_sinkhorn`).
        chunk_size: Rows scored at a time.
        search: The top-k search (:func:`top_k_search`).

    Returns:
        ``[2, K]`` long tensor of (source row, target row), sorted by source row.
    """
    check_embeddings(src_emb, tgt_emb)
    if not 0.0 <= threshold < 1.0 or k < 1:
        raise ValueError(f"sinkhorn_mutual_pairs needs 0 <= threshold < 1 and k >= 1, got {threshold}, {k}.")
    n1, n2 = src_emb.size(0), tgt_emb.size(0)
    if n1 == 0 or n2 == 0:
        return torch.empty(2, 0, dtype=torch.long, device=src_emb.device)

    def best(query: Tensor, cand: Tensor) -> tuple[Tensor, Tensor]:
        top = min(k, cand.size(0))
        return sinkhorn_best(query, cand, top, iters=iters, tau=tau, chunk_size=chunk_size, search=search)

    s_prob, s2t = best(src_emb, tgt_emb)  # [N1] best target of each source, and its probability
    t_prob, t2s = best(tgt_emb, src_emb)  # [N2]
    rows = torch.arange(n1, device=s2t.device)
    keep = (t2s[s2t] == rows) & (s_prob > threshold) & (t_prob[s2t] > threshold)
    return torch.stack([rows[keep], s2t[keep]])
