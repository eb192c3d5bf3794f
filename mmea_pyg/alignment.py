r"""From embeddings to an alignment: top-k candidates, mutual best matches, one-to-one assignment,
thresholds, and the precision / recall / F1 of the pairs against gold links.

Unlike the benchmark evaluation (:mod:`mmea_pyg.evaluation`), which ranks each test entity among the
*test* entities of the other graph, an alignment must be found among *all* candidates: every source
entity without a training pair is a query, every target entity without a training pair a candidate,
and nothing here looks at which entities the validation or test links contain.

* **Scores.** Cosine of the L2-normalised embeddings, or CSLS (Lample et al. 2018) over the
  candidates with ``csls_k > 0``.
* **Mutual best.** A query's best candidate :math:`t` is flagged mutual when the query is also
  :math:`t`'s best query.
* **Sinkhorn** (``sinkhorn_iters > 0``, LightEA's last step, Mao et al. 2022, but over *all* queries
  and candidates, never the test entities alone): the similarity matrix is turned into a nearly
  doubly stochastic one, :math:`P = \mathrm{Sinkhorn}(\exp(S / \tau))`, so that a candidate that is
  the best match of many queries is shared out among them; scores are then :math:`P_{st}` (in [0, 1],
  summing to about 1 per query). Dense, so bounded by ``max_cells``.
* **One to one.** ``greedy``: pairs from the top-k lists in decreasing score, each entity used once
  (a query whose k candidates are all taken stays unmatched); ``hungarian``: the assignment that
  maximises the summed score (:func:`scipy.optimize.linear_sum_assignment`) where the dense score
  matrix fits in memory.
* **Precision / recall / F1** of a set of predicted pairs against gold links: a prediction for a
  query with no gold counterpart is a false positive (a real alignment must say "no match" for such
  entities, which is what the threshold and the mutual flag are for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmea_pyg.errors import ConfigError
from mmea_pyg.similarity import (
    column_best,
    mean_top_k_similarity,
    nearest,
    score_block,
    sinkhorn_top_k,
    top_k_search,
)

__all__ = [
    "Candidates",
    "assignment_from_scores",
    "best_f1_threshold",
    "candidates_from_scores",
    "check_options",
    "greedy_one_to_one",
    "hungarian_one_to_one",
    "pair_block",
    "positions",
    "precision_recall_f1",
    "ranks_from_scores",
    "sinkhorn_scores",
    "sparse_sinkhorn_candidates",
    "top_k_candidates",
]

#: Largest dense score matrix (cells) that ``hungarian`` and ``sinkhorn`` build: 2.5e8 float32 cells, 1 GiB.
MAX_ASSIGNMENT_CELLS = 250_000_000
ONE_TO_ONE = ("greedy", "hungarian")


@dataclass
class Candidates:
    """The top-k candidates of every query.

    Attributes:
        scores: :math:`(Q, k)` similarity of each query's candidates, best first.
        index: :math:`(Q, k)` column of each candidate among the candidate rows.
        mutual: :math:`(Q,)` whether the query's best candidate has the query as its own best.
    """

    scores: Tensor
    index: Tensor
    mutual: Tensor


def check_options(
    top_k: int = 10,
    one_to_one: str | None = None,
    threshold: float | None = None,
    sinkhorn: int = 0,
    sinkhorn_tau: float = 0.02,
    sinkhorn_top_k: int = 500,
) -> None:
    """Refuse out-of-range alignment options (the ``mmea align`` flags of the same names) before any
    work: ``top_k >= 1``, ``one_to_one`` in :data:`ONE_TO_ONE`, a finite ``threshold``, ``sinkhorn >= 0``
    iterations and, with Sinkhorn, a finite temperature ``sinkhorn_tau > 0``, ``sinkhorn_top_k >= 0``
    and no Hungarian assignment over the sparse scores.

    Raises:
        ConfigError: The first option out of range, named as its flag.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"--top-k must be an integer of at least 1, got {top_k!r}")
    if one_to_one is not None and one_to_one not in ONE_TO_ONE:
        raise ConfigError(f"--one-to-one must be one of {', '.join(ONE_TO_ONE)}, got {one_to_one!r}")
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"--threshold must be a finite number, got {threshold!r}")
    if isinstance(sinkhorn, bool) or not isinstance(sinkhorn, int) or sinkhorn < 0:
        raise ConfigError(f"--sinkhorn must be a number of iterations >= 0 (0: off), got {sinkhorn!r}")
    if sinkhorn and not (math.isfinite(sinkhorn_tau) and sinkhorn_tau > 0):
        raise ConfigError(f"--sinkhorn-tau must be a finite number > 0, got {sinkhorn_tau!r}")
    if isinstance(sinkhorn_top_k, bool) or not isinstance(sinkhorn_top_k, int) or sinkhorn_top_k < 0:
        raise ConfigError(f"--sinkhorn-top-k must be an integer >= 0 (0: dense), got {sinkhorn_top_k!r}")
    if sinkhorn and sinkhorn_top_k and one_to_one == "hungarian":
        raise ConfigError(
            "--one-to-one hungarian needs the dense Sinkhorn scores: add --sinkhorn-top-k 0 or use greedy"
        )


def _prepare(query: Tensor, cand: Tensor, csls_k: int, chunk_size: int):
    if query.dim() != 2 or cand.dim() != 2 or query.size(1) != cand.size(1):
        raise ValueError(
            f"embeddings must be [Q, D] and [C, D], got {tuple(query.shape)} and {tuple(cand.shape)}"
        )
    q = F.normalize(query.float(), dim=-1)
    c = F.normalize(cand.float(), dim=-1)
    r_q = r_c = None
    if csls_k > 0:
        r_q = mean_top_k_similarity(q, c, csls_k, chunk_size)
        r_c = mean_top_k_similarity(c, q, csls_k, chunk_size)
    return q, c, r_q, r_c


def _check_dense(query: Tensor, cand: Tensor, max_cells: int, option: str, instead: str) -> None:
    """Refuse a dense ``Q x C`` score matrix larger than ``max_cells`` in one line."""
    cells = query.size(0) * cand.size(0)
    if cells > max_cells:
        raise ConfigError(
            f"{option} needs a dense {query.size(0):,} x {cand.size(0):,} score matrix ({cells:,} cells, more "
            f"than {max_cells:,}); {instead}"
        )


@torch.no_grad()
def top_k_candidates(
    query: Tensor,
    cand: Tensor,
    k: int = 10,
    *,
    csls_k: int = 0,
    chunk_size: int = 2048,
    bar=None,
    search: str = "auto",
) -> Candidates:
    """The ``k`` best candidates of every query, and the mutual-best flag of the first.

    Memory stays bounded by a ``chunk_size x C`` block (``search``: see
    :func:`~mmea_pyg.similarity.top_k_search`; each candidate's best query is found the same way).

    Args:
        query: Query embeddings :math:`(Q, D)`.
        cand: Candidate embeddings :math:`(C, D)`.
        k: Candidates kept per query (clamped to :math:`C`).
        csls_k: ``0`` scores by cosine, ``> 0`` by CSLS with that neighbourhood.
        chunk_size: Query rows scored at a time.
        bar: A tqdm bar advanced by the rows done (both passes).
    """
    if k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {k}")
    q, c, r_q, r_c = _prepare(query, cand, csls_k, chunk_size)
    k = min(k, c.size(0))
    csls = None if r_q is None else (r_q, r_c)
    scores, index = top_k_search(
        q, c, k, normalise=False, chunk_size=chunk_size, csls=csls, bar=bar, search=search
    )
    back = nearest(c, q, r_c, r_q, chunk_size, search)  # each candidate's best query
    if bar is not None:
        bar.update(c.size(0))
    rows = torch.arange(q.size(0), device=q.device)
    mutual = back[index[:, 0]] == rows if k else torch.zeros(q.size(0), dtype=torch.bool)
    return Candidates(scores=scores, index=index, mutual=mutual)


@torch.no_grad()
def sparse_sinkhorn_candidates(
    query: Tensor,
    cand: Tensor,
    *,
    k: int = 500,
    iters: int = 15,
    tau: float = 0.02,
    csls_k: int = 0,
    chunk_size: int = 2048,
    bar=None,
    search: str = "auto",
) -> Candidates:
    """LightEA's sparse Sinkhorn over every query's ``k`` best candidates
    (:func:`mmea_pyg.similarity.sparse_sinkhorn`): :class:`Candidates` whose scores are the normalised
    probabilities, best first, unlisted entries 0. Memory :math:`O(Q k)` beside one score block.

    Raises:
        ConfigError: ``k``, ``iters`` or ``tau`` out of range.
    """
    if k < 1 or iters < 1 or not tau > 0:
        raise ConfigError(
            f"--sinkhorn needs --sinkhorn-top-k >= 1, at least one iteration and a temperature > 0, got {k}, "
            f"{iters} and {tau}"
        )
    q, c, r_q, r_c = _prepare(query, cand, csls_k, chunk_size)
    csls = None if r_q is None else (r_q, r_c)
    probs, index = sinkhorn_top_k(
        q,
        c,
        k,
        iters=iters,
        tau=tau,
        normalise=False,
        chunk_size=chunk_size,
        csls=csls,
        bar=bar,
        search=search,
    )
    order = torch.argsort(probs, dim=1, descending=True, stable=True)
    probs, index = probs.gather(1, order), index.gather(1, order)
    back = column_best(probs, index, c.size(0))
    rows = torch.arange(q.size(0), device=q.device)
    return Candidates(scores=probs, index=index, mutual=back[index[:, 0]] == rows)


def greedy_one_to_one(candidates: Candidates) -> tuple[Tensor, Tensor, Tensor]:
    """One-to-one pairs from the top-k lists: all (query, candidate) pairs in decreasing score, each
    query and candidate taken at most once.

    Returns:
        ``(query_rows, cand_rows, scores)``, each :math:`(M,)`, in decreasing score.
    """
    scores = candidates.scores.reshape(-1)
    queries = torch.arange(candidates.scores.size(0)).repeat_interleave(candidates.scores.size(1))
    cands = candidates.index.reshape(-1).cpu()
    order = torch.argsort(scores.cpu(), descending=True, stable=True)
    used_q, used_c = set(), set()
    rows, cols, values = [], [], []
    for i in order.tolist():
        qi, ci = int(queries[i]), int(cands[i])
        if qi in used_q or ci in used_c:
            continue
        used_q.add(qi)
        used_c.add(ci)
        rows.append(qi)
        cols.append(ci)
        values.append(float(scores[i]))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long), torch.tensor(values)


@torch.no_grad()
def hungarian_one_to_one(
    query: Tensor,
    cand: Tensor,
    *,
    csls_k: int = 0,
    chunk_size: int = 2048,
    max_cells: int = MAX_ASSIGNMENT_CELLS,
) -> tuple[Tensor, Tensor, Tensor]:
    """The one-to-one assignment with the largest summed score (Hungarian algorithm, scipy).

    Raises:
        ConfigError: The dense :math:`Q \\times C` score matrix exceeds ``max_cells``.

    Returns:
        ``(query_rows, cand_rows, scores)`` in decreasing score.
    """
    _check_dense(query, cand, max_cells, "--one-to-one hungarian", "use --one-to-one greedy")
    return assignment_from_scores(_dense(query, cand, csls_k, chunk_size))


def _dense(query: Tensor, cand: Tensor, csls_k: int, chunk_size: int) -> Tensor:
    q, c, r_q, r_c = _prepare(query, cand, csls_k, chunk_size)
    return torch.cat(
        [
            score_block(q[s : s + chunk_size], c, None if r_q is None else r_q[s : s + chunk_size], r_c)
            for s in range(0, q.size(0), chunk_size)
        ]
    )


def assignment_from_scores(dense: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The one-to-one assignment maximising the summed score of a dense matrix :math:`(Q, C)`
    (:func:`scipy.optimize.linear_sum_assignment`), as ``(rows, cols, scores)`` in decreasing score."""
    from scipy.optimize import linear_sum_assignment

    dense = dense.detach().cpu()
    rows, cols = linear_sum_assignment(dense.numpy(), maximize=True)
    rows, cols = torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
    values = dense[rows, cols]
    order = torch.argsort(values, descending=True, stable=True)
    return rows[order], cols[order], values[order]


@torch.no_grad()
def sinkhorn_scores(
    query: Tensor,
    cand: Tensor,
    *,
    tau: float = 0.02,
    iters: int = 10,
    csls_k: int = 0,
    chunk_size: int = 2048,
    max_cells: int = MAX_ASSIGNMENT_CELLS,
) -> Tensor:
    r"""Sinkhorn-normalised scores :math:`\log P` :math:`(Q, C)` of every query and candidate (log domain,
    rows then columns, ``iters`` times). Returned as log-probabilities: far-off entries of :math:`P`
    underflow to 0 in float32 and would tie, the logarithms keep their order.

    Raises:
        ConfigError: ``tau`` or ``iters`` out of range, or the dense matrix exceeds ``max_cells``.
    """
    if tau <= 0 or iters < 1:
        raise ConfigError(
            f"--sinkhorn needs a temperature > 0 and at least one iteration, got {tau} and {iters}"
        )
    _check_dense(query, cand, max_cells, "--sinkhorn", "align without it")
    log_p = _dense(query, cand, csls_k, chunk_size)
    log_p /= tau
    for _ in range(iters):
        log_p -= torch.logsumexp(log_p, dim=1, keepdim=True)
        log_p -= torch.logsumexp(log_p, dim=0, keepdim=True)
    return log_p


def candidates_from_scores(scores: Tensor, k: int = 10) -> Candidates:
    """:class:`Candidates` from a dense score matrix :math:`(Q, C)` (e.g. :func:`sinkhorn_scores`)."""
    k = min(k, scores.size(1))
    top = scores.topk(k, dim=1)
    back = scores.argmax(dim=0)
    rows = torch.arange(scores.size(0), device=scores.device)
    return Candidates(scores=top.values, index=top.indices, mutual=back[top.indices[:, 0]] == rows)


def positions(ids: Tensor, among: Tensor, size: int) -> Tensor:
    """The position of each entity id of ``ids`` :math:`(P,)` in ``among`` :math:`(Q,)` (-1 where it is
    not there), for ids below ``size`` (the graph's entity count); on the CPU."""
    where = torch.full((size,), -1, dtype=torch.long)
    where[among.cpu()] = torch.arange(among.numel())
    return where[ids.cpu()]


def pair_block(
    scores: Tensor, queries: Tensor, cands: Tensor, pairs: Tensor, num_src: int, num_tgt: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The block of ``scores`` :math:`(Q, C)` (rows: the entities ``queries``, columns: ``cands``) over
    the *distinct* source and target entities of ``pairs`` :math:`(2, P)`, and each pair's row and
    column in it: ``(block, rows, cols)`` for :func:`ranks_from_scores`. Every pair's entities must be
    among the queries and candidates; ``num_src`` / ``num_tgt``: the graphs' entity counts."""
    pairs = pairs.cpu()
    src_ids, rows = torch.unique(pairs[0], sorted=True, return_inverse=True)
    tgt_ids, cols = torch.unique(pairs[1], sorted=True, return_inverse=True)
    block = scores.cpu()[positions(src_ids, queries, num_src)][:, positions(tgt_ids, cands, num_tgt)]
    return block, rows, cols


def ranks_from_scores(
    scores: Tensor, rows: Tensor | None = None, cols: Tensor | None = None
) -> dict[str, Tensor]:
    """Realistic ranks of pairs in a score matrix :math:`(S, T)` of distinct sources and targets, in
    both directions, with the ties rule of :mod:`mmea_pyg.evaluation`: pair ``i`` is row ``rows[i]``
    and column ``cols[i]`` (default: the diagonal of a square matrix). Source -> target ranks its
    column within its row, target -> source its row within its column."""
    if rows is None or cols is None:
        rows = cols = torch.arange(scores.size(0))
    true = scores[rows, cols]

    out = {}
    for name, block in (("s2t", scores[rows]), ("t2s", scores.T[cols])):
        better = (block > true.unsqueeze(1)).sum(dim=1).float()
        tied = (block == true.unsqueeze(1)).sum(dim=1).float() - 1
        out[name] = 1.0 + better + 0.5 * tied
        out[f"{name}_top_tie"] = (better == 0) & (tied > 0)
    return out


def precision_recall_f1(
    predicted: set[tuple[int, int]], gold: set[tuple[int, int]]
) -> dict[str, float | int]:
    """Precision, recall and F1 of predicted (source, target) pairs against gold pairs.

    ``predicted`` should hold only the predictions that are judged (e.g. the rows whose source is not
    in a training or validation link); a prediction whose source has no gold counterpart counts as
    wrong.
    """
    correct = len(predicted & gold)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "correct": correct,
        "predicted": len(predicted),
        "gold": len(gold),
    }


def best_f1_threshold(scores: Tensor, correct: Tensor, num_gold: int) -> dict[str, float | int]:
    """The score threshold that maximises F1 of the pairs kept (score >= threshold) against
    ``num_gold`` gold links, given each pair's ``scores`` :math:`(M,)` and whether it is ``correct``
    :math:`(M,)` bool (e.g. the pairs of the validation sources): ``threshold`` (``-inf`` without
    pairs) and the precision / recall / F1 it reaches there."""
    scores, correct = scores.detach().double().cpu(), correct.cpu()
    if scores.numel() == 0 or num_gold == 0:
        return {"threshold": float("-inf"), "precision": 0.0, "recall": 0.0, "f1": 0.0, "kept": 0}
    order = torch.argsort(scores, descending=True, stable=True)
    scores, hits = scores[order], correct[order].double().cumsum(0)
    kept = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # Only the last position of a run of equal scores is a threshold (a threshold keeps every tie).
    last = torch.ones(scores.numel(), dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    precision, recall = hits / kept, hits / num_gold
    f1 = torch.where(hits > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(hits))
    f1 = torch.where(last, f1, torch.full_like(f1, -1.0))
    at = int(torch.argmax(f1))
    return {
        "threshold": float(scores[at]),
        "precision": float(precision[at]),
        "recall": float(recall[at]),
        "f1": float(f1[at]),
        "kept": at + 1,
    }
