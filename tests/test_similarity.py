"""Blocked top-k search, LightEA's sparse Sinkhorn and realistic ranks of a sparse score matrix, each
checked against a dense computation or by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmea_pyg.alignment import ranks_from_scores, sinkhorn_scores, sparse_sinkhorn_candidates
from mmea_pyg.errors import ConfigError
from mmea_pyg.similarity import column_best, sparse_ranks, sparse_sinkhorn, top_k_search


def test_top_k_search_matches_a_full_sort_in_any_chunking():
    gen = torch.Generator().manual_seed(0)
    q, c = torch.randn(37, 8, generator=gen), torch.randn(23, 8, generator=gen)
    values, index = top_k_search(q, c, 5, chunk_size=4)
    full = F.normalize(q, dim=-1) @ F.normalize(c, dim=-1).T
    expected = full.topk(5, dim=1)
    assert torch.equal(index, expected.indices)
    assert torch.allclose(values, expected.values)
    assert top_k_search(q, c, 100)[0].shape == (37, 23)  # k clamped to the candidates


def test_sparse_sinkhorn_with_every_candidate_listed_is_the_dense_sinkhorn():
    gen = torch.Generator().manual_seed(1)
    q, c = torch.randn(12, 6, generator=gen), torch.randn(9, 6, generator=gen)
    values, index = top_k_search(q, c, 9)
    sparse = sparse_sinkhorn(values, index, 9, iters=7, tau=0.1)
    dense = sinkhorn_scores(q, c, tau=0.1, iters=7).exp()
    assert sparse.dtype == torch.float64  # float32 would round contested rows' probabilities to ties
    assert torch.allclose(sparse, dense.gather(1, index).double(), atol=1e-5)
    # Each column then sums to 1 (the last normalisation), and unlisted entries are simply absent.
    cols = torch.zeros(9, dtype=torch.float64).index_add_(0, index.reshape(-1), sparse.reshape(-1))
    assert torch.allclose(cols, torch.ones(9, dtype=torch.float64), atol=1e-5)


def test_sparse_sinkhorn_does_not_underflow_at_a_low_temperature():
    values = torch.tensor([[-1.0, -0.99], [-0.98, -1.0]])
    index = torch.tensor([[0, 1], [0, 1]])
    probs = sparse_sinkhorn(values, index, 2, iters=3, tau=0.001)
    assert torch.isfinite(probs).all() and probs.sum() > 0


def test_sparse_candidates_shares_a_popular_target_out():
    # Both queries prefer target 0; after normalisation the second query, which is less sure, moves to 1.
    q = torch.tensor([[1.0, 0.0], [0.9, 0.436]])
    c = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    plain = top_k_search(q, c, 2)[1][:, 0]
    assert plain.tolist() == [0, 0]
    found = sparse_sinkhorn_candidates(q, c, k=2, iters=20, tau=0.05)
    assert found.index[:, 0].tolist() == [0, 1]
    assert found.mutual.tolist() == [True, True]
    assert torch.all(found.scores[:, 0] >= found.scores[:, 1])  # best first


def test_column_best_by_hand():
    values = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.2, 0.1]])
    index = torch.tensor([[0, 1], [1, 0], [0, 2]])
    # column 0: rows 0 (0.9), 1 (0.7), 2 (0.2) -> 0; column 1: rows 0 (0.1), 1 (0.8) -> 1; 2: row 2; 3: none.
    assert column_best(values, index, 4).tolist() == [0, 1, 2, -1]


def test_sparse_ranks_equal_dense_ranks_when_every_entry_is_listed():
    gen = torch.Generator().manual_seed(2)
    scores = torch.randint(0, 4, (6, 5), generator=gen).float() / 4  # many exact ties
    values, index = scores.sort(dim=1, descending=True)
    rows, cols = torch.tensor([0, 1, 2, 4]), torch.tensor([1, 1, 3, 0])  # target 1 in two pairs
    sparse = sparse_ranks(values, index, rows, cols)
    # Dense reference over the distinct rows and columns of the pairs.
    r_ids, r_pos = torch.unique(rows, return_inverse=True)
    c_ids, c_pos = torch.unique(cols, return_inverse=True)
    dense = ranks_from_scores(scores[r_ids][:, c_ids], r_pos, c_pos)
    for key in ("s2t", "t2s", "s2t_top_tie", "t2s_top_tie"):
        assert torch.equal(sparse[key], dense[key]), key


def test_sparse_ranks_count_unlisted_entries_as_zero():
    # 3 queries x 4 candidates, 2 listed each; pairs (0, 0), (1, 3), (2, 2).
    values = torch.tensor([[0.6, 0.4], [0.7, 0.3], [0.5, 0.5]])
    index = torch.tensor([[1, 0], [0, 2], [0, 1]])
    ranks = sparse_ranks(values, index, torch.tensor([0, 1, 2]), torch.tensor([0, 3, 2]))
    # Evaluated columns {0, 2, 3}. Query 0: scores {0: .4, 2: 0, 3: 0}; truth 0 -> .4 is the best: 1.
    # Query 1: {0: .7, 2: .3, 3: 0 (unlisted truth)}: two above, no tie: 3.
    # Query 2: {0: .5, 2: 0 (truth), 3: 0}: one above, one tie: 2.5.
    assert ranks["s2t"].tolist() == [1.0, 3.0, 2.5]
    assert ranks["s2t_top_tie"].tolist() == [False, False, False]
    # t2s, evaluated rows {0, 1, 2}. Column 0 (truth row 0, .4): rows 1 (.7) and 2 (.5) above: 3.
    # Column 3 (truth row 1): nobody lists it, all three tie at 0: 1 + 0.5 * 2 = 2.
    # Column 2 (truth row 2, 0): row 1 lists .3 above, row 0 ties at 0: 2.5.
    assert ranks["t2s"].tolist() == [3.0, 2.0, 2.5]
    assert ranks["t2s_top_tie"].tolist() == [False, True, False]


def test_sparse_sinkhorn_keeps_small_probabilities_apart():
    # At a low temperature some rows' probabilities fall below float32's range: rounded to float32 they
    # become exact zeros that tie at the top; in float64 (what sparse_sinkhorn returns) they do not.
    gen = torch.Generator().manual_seed(0)
    values, index = top_k_search(torch.randn(300, 16, generator=gen), torch.randn(300, 16, generator=gen), 50)
    probs = sparse_sinkhorn(values, index, 300, iters=15, tau=0.002)

    def rows_tied_at_top(p):
        return int(((p == p.max(dim=1, keepdim=True).values).sum(dim=1) > 1).sum())

    assert rows_tied_at_top(probs) == 0
    assert rows_tied_at_top(probs.float()) > 0


# ------------------------------------------------------------------------------ faiss searches
def _rows(n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1
    )


def test_faiss_exact_search_equals_the_blocked_product():
    pytest.importorskip("faiss")
    from mmea_pyg.similarity import top_k_search

    q, c = _rows(300, seed=1), _rows(700, seed=2)
    v_torch, i_torch = top_k_search(q, c, 20, search="torch", chunk_size=64)
    v_faiss, i_faiss = top_k_search(q, c, 20, search="faiss")
    assert torch.allclose(v_faiss, v_torch, atol=1e-5)
    assert (i_faiss == i_torch).float().mean() > 0.999  # random rows: no ties


def test_auto_search_hands_large_problems_to_faiss(monkeypatch):
    pytest.importorskip("faiss")
    import mmea_pyg.similarity as sim

    calls = []
    real = sim._faiss_search
    monkeypatch.setattr(sim, "_faiss_search", lambda *a: calls.append(a[2]) or real(*a))
    q, c = _rows(50, seed=3), _rows(80, seed=4)
    sim.top_k_search(q, c, 5)  # 4,000 cells: the blocked product
    assert not calls
    monkeypatch.setattr(sim, "FAISS_FROM_CELLS", 1000)
    v_auto, _ = sim.top_k_search(q, c, 5)
    assert calls == [5]
    # CSLS scores are not inner products: never faiss.
    sim.top_k_search(q, c, 5, csls=(torch.zeros(50), torch.zeros(80)))
    assert calls == [5]


def test_hnsw_recall_is_measured_against_exact():
    pytest.importorskip("faiss")
    from mmea_pyg.similarity import search_recall

    q, c = _rows(400, seed=5), _rows(3000, seed=6)
    measured = search_recall(q, c, 10, "faiss-hnsw", sample=200)
    assert measured["queries"] == 200 and measured["k"] == 10 and 0.5 < measured["recall"] <= 1.0
    assert search_recall(q, c, 10, "faiss", sample=200)["recall"] > 0.999


def test_faiss_search_without_faiss_is_one_line(monkeypatch):
    import builtins

    from mmea_pyg.similarity import check_search, top_k_search

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ConfigError, match=r"pip install 'mmea-pyg\[faiss\]'"):
        check_search("faiss-hnsw", installed=True)
    with pytest.raises(ConfigError, match="search must be one of"):
        check_search("annoy")
    q, c = _rows(10), _rows(20)
    assert top_k_search(q, c, 3, search="auto")[1].shape == (10, 3)  # auto falls back to the product


@pytest.mark.parametrize("search", ["faiss", "faiss-hnsw"])
def test_mutual_nearest_neighbours_with_faiss_match_the_blocked_search(search: str):
    pytest.importorskip("faiss")
    from mmea_pyg.similarity import mutual_nearest_neighbours

    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(300, 16, generator=g), torch.randn(400, 16, generator=g)
    tgt[:300] = src + 0.05 * torch.randn(300, 16, generator=g)  # 300 clear mutual pairs
    cands = torch.arange(300), torch.arange(400)
    exact = mutual_nearest_neighbours(src, tgt, *cands, chunk_size=64)
    found = mutual_nearest_neighbours(src, tgt, *cands, chunk_size=64, search=search)
    assert exact.size(1) >= 290
    same = (found.t().unsqueeze(1) == exact.t().unsqueeze(0)).all(-1).any(1).float().mean()
    assert found.size(1) == exact.size(1) if search == "faiss" else same >= 0.95
    if search == "faiss":
        assert torch.equal(found, exact)


def test_pseudo_search_is_checked_before_training(monkeypatch):
    from mmea_pyg.config import Config
    from mmea_pyg.data.synthetic import toy_alignment
    from mmea_pyg.errors import ConfigError
    from mmea_pyg.training.trainer import Trainer

    cfg = Config().override(["train.pseudo_search=annoy"])
    with pytest.raises(ConfigError, match="search must be one of"):
        Trainer(cfg, toy_alignment(num_entities=20, seed=0), progress=False)


def test_sinkhorn_mutual_pairs_pair_clear_matches_and_leave_a_contested_target():
    from mmea_pyg.similarity import mutual_nearest_neighbours, sinkhorn_mutual_pairs

    g = torch.Generator().manual_seed(0)
    src = torch.randn(40, 16, generator=g)
    perm = torch.randperm(40, generator=g)
    tgt = torch.empty_like(src)
    tgt[perm] = src + 0.01 * torch.randn(40, 16, generator=g)  # target perm[i] <-> source i
    # Sources 0 and 1 become near copies and source 1's counterpart goes away: target perm[0] is
    # contested. Mutual nearest neighbours still pair it; with one candidate kept per entity, the
    # normalisation splits its mass between the two sources, and neither is sure enough.
    src[1] = src[0] + 0.001 * torch.randn(16, generator=g)
    tgt[perm[1]] = torch.randn(16, generator=g)
    cands = torch.arange(40), torch.arange(40)
    assert perm[0].item() in mutual_nearest_neighbours(src, tgt, *cands)[1].tolist()
    pairs = sinkhorn_mutual_pairs(src, tgt, 0.6, k=1, tau=0.05)
    assert perm[0].item() not in pairs[1].tolist()
    assert perm[0].item() in sinkhorn_mutual_pairs(src, tgt, 0.4, k=1, tau=0.05)[1].tolist()
    # The clear matches, all right (the stray target perm[1] may contest one of them too).
    assert set(pairs[0].tolist()) <= set(range(2, 40)) and pairs.size(1) >= 36
    assert torch.equal(pairs[1], perm[pairs[0]])
    assert sinkhorn_mutual_pairs(src, tgt[:0], 0.5).shape == (2, 0)
    with pytest.raises(ValueError, match="threshold"):
        sinkhorn_mutual_pairs(src, tgt, 1.0)


def test_pseudo_seeds_by_sinkhorn_are_unaligned_one_to_one_pairs(monkeypatch):
    from mmea_pyg.config import Config
    from mmea_pyg.data.synthetic import toy_alignment
    from mmea_pyg.models import build_model
    from mmea_pyg.pipeline import pairs_of
    from mmea_pyg.training.iterative import propose_pseudo_seeds

    data = toy_alignment(num_entities=60, seed=0)
    torch.manual_seed(0)
    model = build_model(Config(), data)
    train = pairs_of(data, "train")
    pairs = propose_pseudo_seeds(model, data, train, sinkhorn=0.3, sinkhorn_top_k=5)
    assert model.num_blocks == len(model.kept) >= 2
    assert pairs.dim() == 2 and pairs.size(0) == 2
    assert not set(pairs[0].tolist()) & set(train[0].tolist())
    assert not set(pairs[1].tolist()) & set(train[1].tolist())
    assert pairs[0].unique().numel() == pairs.size(1) == pairs[1].unique().numel()

    # The temperature is per block: h^M's cosine is the mean of its blocks' cosines.
    import mmea_pyg.training.iterative as iterative

    seen = {}

    def spy(src, tgt, threshold, **kwargs):
        seen.update(kwargs, threshold=threshold)
        return torch.empty(2, 0, dtype=torch.long)

    monkeypatch.setattr(iterative, "sinkhorn_mutual_pairs", spy)
    assert propose_pseudo_seeds(model, data, train, sinkhorn=0.5, sinkhorn_tau=0.06).shape == (2, 0)
    assert seen["threshold"] == 0.5 and seen["tau"] == pytest.approx(0.06 / model.num_blocks)


def test_pseudo_seeds_that_stay_mutual_are_kept_before_new_sinkhorn_pairs():
    from mmea_pyg.training.iterative import keep_staying_pairs

    src_idx, tgt_idx = torch.tensor([2, 4, 6, 8]), torch.tensor([1, 3, 5, 7])  # local row -> entity id
    mutual = torch.tensor([[0, 1, 2], [0, 1, 2]])  # (2, 1), (4, 3), (6, 5)
    previous = torch.tensor([[4, 6], [3, 7]])  # (4, 3) is still mutual; (6, 7) is not
    confident = torch.tensor([[1, 3], [2, 3]])  # (4, 5) takes source 4 again; (8, 7) is free
    got = keep_staying_pairs(mutual, confident, previous, src_idx, tgt_idx, 10)
    assert got.tolist() == [[1, 3], [1, 3]]  # (4, 3) stays, (8, 7) enters
