r"""Rank-based evaluation of entity alignment: realistic ranks, Hits@k / MRR / MR, metric names (mutual
nearest neighbours for pseudo seeds live in :mod:`mmea_pyg.similarity`).

Protocol (CLAMEA, "Evaluation protocol"):

* The evaluated seed pairs are a ``[2, P]`` tensor of (source index, target index).
* **Candidates.** The source candidates are the unique source entities of the evaluated pairs, the
  target candidates the unique target entities. Entities that appear in no evaluated pair are never
  candidates.
* **Queries.** Every pair is one query in each direction. In the source -> target direction (``s2t``)
  the pair's source entity is scored against all target candidates and the rank of the pair's own
  target is recorded; the target -> source direction (``t2s``) is the mirror image.
* **Several gold counterparts.** Some benchmarks align one entity to several entities of the other
  graph (e.g. a DB15K entity to two FB15K MIDs). Each such pair is still its own query, and the
  *other* gold counterparts of the same query entity are ordinary candidates: if they score higher
  than the pair's counterpart they push its rank down (the "raw", unfiltered setting). At most one
  of two such pairs can then reach Hits@1.
* **Similarity.** Cosine similarity of the L2-normalised embeddings, or, when ``csls_k > 0``, cross
  domain similarity local scaling (CSLS, Lample et al., 2018)

  .. math::
      \mathrm{CSLS}(x, y) = 2 \cos(x, y) - r_T(x) - r_S(y),

  where :math:`r_T(x)` is the mean cosine of :math:`x` with its :math:`k` nearest *target
  candidates* and :math:`r_S(y)` the mean cosine of :math:`y` with its :math:`k` nearest *source
  candidates* (:math:`k` is clamped to the number of candidates on the other side).
* **Ties** are broken by the realistic rank, the mean of the optimistic and the pessimistic rank
  (as in PyKEEN): with :math:`s^*` the score of the true candidate and :math:`C` the candidates,

  .. math::
      \mathrm{rank} = 1 + \left|\{c \in C : s_c > s^*\}\right|
      + \tfrac{1}{2} \left|\{c \in C \setminus \{c^*\} : s_c = s^*\}\right|.

  A query whose true candidate ties with one other candidate at the top has rank 1.5, which is *not*
  a Hits@1.
* **Metrics.** Hits@k (fraction of queries with rank :math:`\le k`), MRR (mean of
  :math:`1/\mathrm{rank}`) and MR (mean rank).

Memory stays bounded: similarities are computed ``chunk_size`` query rows at a time, so at most a
``chunk_size x M`` block (``M`` candidates) is alive, never the full ``P x M`` matrix; the CSLS
neighbourhood means are computed the same way, keeping only each row's top-k.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from mmea_pyg.distributed import Sharding
from mmea_pyg.errors import ConfigError
from mmea_pyg.similarity import (
    check_chunk_size,
    check_csls_k,
    check_embeddings,
    check_index,
    mean_top_k_similarity,
    normalised_rows,
    on_rows,
    score_block,
)

__all__ = [
    "DEFAULT_KS",
    "evaluate",
    "evaluate_embedder",
    "evaluate_model_embedding",
    "metrics_from_ranks",
    "ranked_metrics",
    "parse_metric",
    "rank_among",
    "rank_pairs",
    "select_metric",
]

#: The Hits@k cut-offs reported by default.
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)

_VALID_METRIC_FORMS = (
    "'hits@K' (also 'Hits@K', 'h@K', 'hits_at_K', K a positive integer), 'mrr', 'mr' or 'all'"
)


# --------------------------------------------------------------------------------------------------
# Argument checks and small helpers
# --------------------------------------------------------------------------------------------------


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    out: list[int] = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"Hits@k cut-offs must be positive integers, got {k!r} in {ks!r}.")
        if k not in out:
            out.append(k)
    if not out:
        raise ConfigError("At least one Hits@k cut-off is needed, e.g. ks=(1, 5, 10).")
    return tuple(out)


def _check_pairs(pairs: Tensor, num_src: int, num_tgt: int) -> None:
    if not isinstance(pairs, Tensor) or pairs.dim() != 2 or pairs.size(0) != 2:
        shape = tuple(pairs.shape) if isinstance(pairs, Tensor) else type(pairs).__name__
        raise ValueError(f"pairs must be a [2, P] tensor of (source, target) indices, got {shape}.")
    if pairs.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"pairs must be an integer (long) tensor, got dtype {pairs.dtype}.")
    if pairs.size(1) == 0:
        raise ValueError("pairs is empty: there is nothing to evaluate.")
    check_index(pairs[0], num_src, "pairs[0] (source)")
    check_index(pairs[1], num_tgt, "pairs[1] (target)")


def _realistic_ranks(
    query: Tensor,
    cand: Tensor,
    true_col: Tensor,
    r_query: Tensor | None,
    r_cand: Tensor | None,
    chunk_size: int,
    bar=None,
) -> Tensor:
    """Realistic rank of candidate ``true_col[i]`` for query row ``query[i]``, chunked over rows.

    The true score is read from the same score block as its competitors, so exact ties are detected
    without a second, possibly differently rounded, computation.
    """
    ranks = torch.empty(query.size(0), dtype=torch.float32, device=query.device)
    top_tie = torch.empty(query.size(0), dtype=torch.bool, device=query.device)
    for start in range(0, query.size(0), chunk_size):
        stop = start + chunk_size
        rq = None if r_query is None else r_query[start:stop]
        scores = score_block(query[start:stop], cand, rq, r_cand)
        true = scores.gather(1, true_col[start:stop].unsqueeze(1))
        better = (scores > true).sum(dim=1)
        tied = (scores == true).sum(dim=1) - 1  # the true candidate ties with itself
        ranks[start:stop] = 1.0 + better.to(torch.float32) + 0.5 * tied.to(torch.float32)
        top_tie[start:stop] = (better == 0) & (tied > 0)
        if bar is not None:
            bar.update(min(stop, query.size(0)) - start)
    return ranks, top_tie


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def rank_pairs(
    src_emb: Tensor,
    tgt_emb: Tensor,
    pairs: Tensor,
    *,
    csls_k: int = 0,
    chunk_size: int = 1024,
    bar=None,
    sharding: Sharding | None = None,
) -> dict[str, Tensor]:
    r"""Realistic rank of every pair's counterpart, in both directions.

    Each pair :math:`(s, t)` is one query per direction. Source -> target: :math:`s` is scored against
    the unique target entities of ``pairs`` and the rank of :math:`t` is recorded; target -> source
    is the mirror image. Other gold counterparts of the same query entity are ordinary competitors.
    With :math:`s^*` the true candidate's score,

    .. math::
        \mathrm{rank} = 1 + \left|\{c : s_c > s^*\}\right|
        + \tfrac{1}{2} \left|\{c \neq c^* : s_c = s^*\}\right|.

    Args:
        src_emb: Source-graph entity embeddings, any device, need not be normalised.
        tgt_emb: Target-graph entity embeddings, same device and dimension as ``src_emb``.
        pairs: Evaluated (source index, target index) pairs.
        csls_k: ``0`` scores by cosine; ``k > 0`` scores by CSLS with ``k`` nearest neighbours.
        chunk_size: Query rows scored at a time (memory is about ``chunk_size x #candidates``).
        bar: A tqdm bar advanced by the number of queries ranked (both directions).
        sharding: In a process group, each rank ranks its block of the queries (and of the CSLS terms)
            and every rank gets all ranks (:mod:`mmea_pyg.distributed`); ``None``: this process ranks
            all.

    Returns:
        ``{"s2t": ranks, "t2s": ranks}``, float32 tensors of shape ``[P]`` on the embeddings' device
        (entry ``i`` is the rank for ``pairs[:, i]``), and ``"s2t_top_tie"``, ``"t2s_top_tie"``: bool
        tensors, whether nothing scores above the true candidate but another candidate scores the same
        (a tie at the top: the representation cannot tell the two apart).

    Raises:
        ValueError: On malformed shapes, out-of-range indices, empty pairs or non-finite embeddings.

    Shapes:
        - **src_emb** :math:`(N_1, D)`, **tgt_emb** :math:`(N_2, D)`
        - **pairs** :math:`(2, P)`
        - **output** two tensors of shape :math:`(P,)`
    """
    check_embeddings(src_emb, tgt_emb)
    csls_k = check_csls_k(csls_k)
    chunk_size = check_chunk_size(chunk_size)
    _check_pairs(pairs, src_emb.size(0), tgt_emb.size(0))

    pairs = pairs.to(device=src_emb.device, dtype=torch.long)
    src_cand, src_pos = torch.unique(pairs[0], sorted=True, return_inverse=True)
    tgt_cand, tgt_pos = torch.unique(pairs[1], sorted=True, return_inverse=True)
    src = normalised_rows(src_emb, src_cand, "src_emb")
    tgt = normalised_rows(tgt_emb, tgt_cand, "tgt_emb")

    r_src = r_tgt = None
    if csls_k > 0:  # r_T(x), x a source candidate; r_S(y), y a target candidate
        r_src = on_rows(lambda r: mean_top_k_similarity(src[r], tgt, csls_k, chunk_size), len(src), sharding)
        r_tgt = on_rows(lambda r: mean_top_k_similarity(tgt[r], src, csls_k, chunk_size), len(tgt), sharding)

    def ranks(query: Tensor, cand: Tensor, true_col: Tensor, r_query: Tensor | None, r_cand: Tensor | None):
        return on_rows(
            lambda r: _realistic_ranks(
                query[r], cand, true_col[r], None if r_query is None else r_query[r], r_cand, chunk_size, bar
            ),
            len(query),
            sharding,
        )

    s2t, s2t_tie = ranks(src[src_pos], tgt, tgt_pos, None if r_src is None else r_src[src_pos], r_tgt)
    t2s, t2s_tie = ranks(tgt[tgt_pos], src, src_pos, None if r_tgt is None else r_tgt[tgt_pos], r_src)
    return {"s2t": s2t, "t2s": t2s, "s2t_top_tie": s2t_tie, "t2s_top_tie": t2s_tie}


@torch.no_grad()
def rank_among(
    query_emb: Tensor,
    cand_emb: Tensor,
    true_col: Tensor,
    *,
    chunk_size: int = 1024,
    sharding: Sharding | None = None,
) -> dict[str, Tensor]:
    r"""Realistic rank of candidate ``true_col[i]`` for query ``i`` among *all* the candidates (cosine,
    the ties rule above), one direction: e.g. test sources among every target entity without a known
    pair, as a user aligning a whole graph meets them (:func:`rank_pairs` ranks among the evaluated
    pairs' own targets, the benchmark protocol).

    Shapes:
        - **query_emb** :math:`(P, D)`, **cand_emb** :math:`(C, D)`, **true_col** :math:`(P,)` in
          ``[0, C)``
        - **output** ``{"s2t": (P,), "s2t_top_tie": (P,) bool}``; at most a ``chunk_size x C`` block
          is alive
    """
    check_embeddings(query_emb, cand_emb)
    chunk_size = check_chunk_size(chunk_size)
    true_col = true_col.to(device=query_emb.device, dtype=torch.long)
    check_index(true_col, cand_emb.size(0), "true_col")
    query = normalised_rows(query_emb, torch.arange(query_emb.size(0), device=query_emb.device), "query_emb")
    cand = normalised_rows(cand_emb, torch.arange(cand_emb.size(0), device=cand_emb.device), "cand_emb")
    ranks, tie = on_rows(
        lambda r: _realistic_ranks(query[r], cand, true_col[r], None, None, chunk_size), len(query), sharding
    )
    return {"s2t": ranks, "s2t_top_tie": tie}


def metrics_from_ranks(ranks: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    r"""Hits@k, MRR and MR from a vector of (realistic) ranks.

    .. math::
        \mathrm{Hits@}k = \frac{1}{P} \sum_i [\mathrm{rank}_i \le k], \quad
        \mathrm{MRR} = \frac{1}{P} \sum_i \frac{1}{\mathrm{rank}_i}, \quad
        \mathrm{MR} = \frac{1}{P} \sum_i \mathrm{rank}_i.

    Args:
        ranks: Ranks (>= 1), shape ``[P]``, any device.
        ks: Hits@k cut-offs (positive integers; duplicates are dropped, order kept).

    Returns:
        ``{"hits@k": ..., "mrr": ..., "mr": ...}`` as Python floats.

    Raises:
        ValueError: If ``ranks`` is empty or holds values below 1.
        ConfigError: If a cut-off is not a positive integer.
    """
    ks = _check_ks(ks)
    ranks = ranks.detach().reshape(-1).to(torch.float64)
    if ranks.numel() == 0:
        raise ValueError("ranks is empty: there is nothing to aggregate.")
    if bool((ranks < 1).any()) or not bool(torch.isfinite(ranks).all()):
        raise ValueError("ranks must be finite and >= 1.")
    out = {f"hits@{k}": (ranks <= k).to(torch.float64).mean().item() for k in ks}
    out["mrr"] = ranks.reciprocal().mean().item()
    out["mr"] = ranks.mean().item()
    return out


def ranked_metrics(ranks: Mapping[str, Tensor], ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """:func:`metrics_from_ranks` of both directions of :func:`rank_pairs`-style ranks, as the flat
    dict of :func:`evaluate`: ``hits@k``/``mrr``/``mr`` source -> target, ``t2s/...`` the reverse, and
    ``tied_top`` (the share of queries whose true candidate ties at the top) where the ranks say it."""
    out: dict[str, float] = {}
    for direction, prefix in (("s2t", ""), ("t2s", "t2s/")):
        for name, value in metrics_from_ranks(ranks[direction], ks).items():
            out[prefix + name] = value
        tie = ranks.get(f"{direction}_top_tie")
        if tie is not None:
            out[prefix + "tied_top"] = tie.float().mean().item()
    return out


@torch.no_grad()
def evaluate(
    src_emb: Tensor,
    tgt_emb: Tensor,
    pairs: Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    csls_k: int = 0,
    chunk_size: int = 1024,
    progress: bool = False,
    desc: str = "eval",
    sharding: Sharding | None = None,
) -> dict[str, float]:
    """Hits@k, MRR and MR of an alignment, both directions, cosine and optionally CSLS.

    Args:
        src_emb: Source-graph entity embeddings, shape ``[N1, D]``.
        tgt_emb: Target-graph entity embeddings, shape ``[N2, D]``.
        pairs: Evaluated (source, target) pairs, shape ``[2, P]``.
        ks: Hits@k cut-offs.
        csls_k: If ``> 0``, CSLS with this neighbourhood size is reported *in addition* to cosine.
        chunk_size: Query rows scored at a time.
        progress: Show a progress bar (tqdm, stderr) over the ranked queries.
        desc: The bar's label.
        sharding: Rank the queries in blocks over the ranks of a process group (see :func:`rank_pairs`).

    Returns:
        A flat dict of Python floats. ``hits@k``, ``mrr``, ``mr``: source -> target with cosine (the
        headline numbers), ``tied_top``: the share of queries whose true candidate ties at the top
        with another; ``t2s/...``: target -> source with cosine; if ``csls_k > 0`` also ``csls/...``
        and ``csls/t2s/...``.

    See :func:`rank_pairs` for the ranking protocol.
    """
    ks = _check_ks(ks)
    csls_k = check_csls_k(csls_k)
    settings = [("", 0)] + ([("csls/", csls_k)] if csls_k > 0 else [])
    results: dict[str, float] = {}
    bar = None
    if progress:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(
            total=2 * pairs.size(-1) * len(settings), desc=desc, unit="query", file=sys.stderr, leave=False
        )
    try:
        for prefix, k in settings:
            ranks = rank_pairs(
                src_emb, tgt_emb, pairs, csls_k=k, chunk_size=chunk_size, bar=bar, sharding=sharding
            )
            results.update({prefix + key: value for key, value in ranked_metrics(ranks, ks).items()})
    finally:
        if bar is not None:
            bar.close()
    return results


@torch.no_grad()
def evaluate_embedder(
    embed: Callable[[str, Tensor], Tensor],
    pairs: Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    csls_k: int = 0,
    chunk_size: int = 1024,
    progress: bool = False,
    desc: str = "eval",
    sharding: Sharding | None = None,
) -> dict[str, float]:
    """:func:`evaluate` of the pairs :math:`(2, P)` with ``embed(side, index)`` :math:`\\to (B, D)` (e.g. a
    model's ``embed``), which is called once per side on the *distinct* entities of the pairs.

    A target shared by two pairs is then one candidate, not two copies that tie with each other (which
    would cap both of its queries below Hits@1).
    """
    src_ids, src_pos = torch.unique(pairs[0], sorted=True, return_inverse=True)
    tgt_ids, tgt_pos = torch.unique(pairs[1], sorted=True, return_inverse=True)
    src, tgt = embed("source", src_ids), embed("target", tgt_ids)
    local = torch.stack([src_pos, tgt_pos]).to(src.device)
    return evaluate(
        src,
        tgt,
        local,
        ks=ks,
        csls_k=csls_k,
        chunk_size=chunk_size,
        progress=progress,
        desc=desc,
        sharding=sharding,
    )


@torch.no_grad()
def evaluate_model_embedding(
    model: torch.nn.Module,
    data,
    pairs: Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    csls_k: int = 0,
    chunk_size: int = 1024,
    progress: bool = False,
    desc: str = "eval",
    sharding: Sharding | None = None,
) -> dict[str, float]:
    """The one embed-and-evaluate: :func:`evaluate_embedder` of the pairs :math:`(2, P)` with
    ``model.embed(data, side, index, chunk_size)`` :math:`\\to (B, D)`, in eval mode and without
    gradients; the model's training mode is restored afterwards (the trainer evaluates mid-training)."""
    was_training = model.training
    model.eval()
    try:
        return evaluate_embedder(
            lambda side, index: model.embed(data, side, index, chunk_size),
            pairs,
            ks=ks,
            csls_k=csls_k,
            chunk_size=chunk_size,
            progress=progress,
            desc=desc,
            sharding=sharding,
        )
    finally:
        model.train(was_training)


_HITS_RE = re.compile(r"^(?:hits|hit|h)(?:@|_at_)(\d+)$")


def parse_metric(name: str) -> tuple[str, int | None]:
    """Parse a metric name (case-insensitive).

    Examples: ``"hits@1"``, ``"Hits@10"``, ``"h@5"``, ``"hits_at_5"`` -> ``("hits", k)``;
    ``"mrr"`` -> ``("mrr", None)``; ``"mr"`` -> ``("mr", None)``; ``"all"`` -> ``("all", None)``.

    Args:
        name: The metric name.

    Returns:
        ``(metric, k)`` with ``metric`` one of ``"hits"``, ``"mrr"``, ``"mr"``, ``"all"`` and ``k``
        the Hits cut-off (``None`` for the others).

    Raises:
        ConfigError: (a :class:`ValueError`) for an unknown name; the message lists the valid forms.
    """
    if not isinstance(name, str):
        raise ConfigError(f"Metric name must be a string, got {name!r}; use {_VALID_METRIC_FORMS}.")
    key = name.strip().lower()
    match = _HITS_RE.match(key)
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ConfigError(
                f"Unknown metric {name!r}: the Hits cut-off must be >= 1; use {_VALID_METRIC_FORMS}."
            )
        return "hits", k
    if key in ("mrr", "mean_reciprocal_rank"):
        return "mrr", None
    if key in ("mr", "mean_rank"):
        return "mr", None
    if key == "all":
        return "all", None
    raise ConfigError(f"Unknown metric {name!r}; use {_VALID_METRIC_FORMS}.")


def select_metric(results: Mapping[str, float], name: str) -> dict[str, float]:
    """Pick one metric, in every direction/similarity evaluated, from an :func:`evaluate` result.

    Args:
        results: The output of :func:`evaluate`.
        name: A metric name accepted by :func:`parse_metric`.

    Returns:
        For ``"all"``, a copy of ``results``; otherwise every entry whose last path component is the
        canonical metric, e.g. ``"H@1"`` -> ``{"hits@1": ..., "t2s/hits@1": ..., "csls/hits@1": ...,
        "csls/t2s/hits@1": ...}`` (the CSLS entries only when present), in ``results``' order.

    Raises:
        ConfigError: If the name is invalid, or the metric was not computed (e.g. a Hits cut-off not
            in ``ks``).
    """
    metric, k = parse_metric(name)
    if metric == "all":
        return dict(results)
    canonical = f"hits@{k}" if metric == "hits" else metric
    selected = {key: value for key, value in results.items() if key.rsplit("/", 1)[-1] == canonical}
    if not selected:
        available = ", ".join(dict.fromkeys(key.rsplit("/", 1)[-1] for key in results)) or "none"
        hint = f"; to get Hits@{k}, add {k} to ks" if metric == "hits" else ""
        raise ConfigError(f"Metric {name!r} was not computed (available: {available}){hint}.")
    return selected
