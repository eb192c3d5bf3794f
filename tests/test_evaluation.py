"""Tests of mmea_pyg.evaluation: realistic ranks, metrics, CSLS, metric names, mutual NN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmea_pyg.errors import ConfigError
from mmea_pyg.evaluation import (
    evaluate,
    metrics_from_ranks,
    parse_metric,
    rank_pairs,
    select_metric,
)
from mmea_pyg.similarity import mutual_nearest_neighbours


def unit(deg: float) -> list[float]:
    """A 2-D unit vector at ``deg`` degrees."""
    rad = math.radians(deg)
    return [math.cos(rad), math.sin(rad)]


def reference_ranks(src: torch.Tensor, tgt: torch.Tensor, pairs: torch.Tensor, csls_k: int = 0) -> dict:
    """Brute-force realistic ranks from the full similarity matrix and the explicit formulas."""
    sc, sp = torch.unique(pairs[0], return_inverse=True)
    tc, tp = torch.unique(pairs[1], return_inverse=True)
    cos = F.normalize(src[sc].double(), dim=1) @ F.normalize(tgt[tc].double(), dim=1).t()
    if csls_k:
        r_t = cos.topk(min(csls_k, cos.size(1)), dim=1).values.mean(1)  # r_T(x)
        r_s = cos.t().topk(min(csls_k, cos.size(0)), dim=1).values.mean(1)  # r_S(y)
        sim = 2 * cos - r_t[:, None] - r_s[None, :]
    else:
        sim = cos
    out = {"s2t": [], "t2s": []}
    for i, j in zip(sp.tolist(), tp.tolist(), strict=True):
        row, true = sim[i], sim[i, j]
        out["s2t"].append(1 + (row > true).sum().item() + 0.5 * ((row == true).sum().item() - 1))
        col, true = sim[:, j], sim[i, j]
        out["t2s"].append(1 + (col > true).sum().item() + 0.5 * ((col == true).sum().item() - 1))
    return {key: torch.tensor(value) for key, value in out.items()}


@pytest.fixture
def tie_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Targets 0 and 1 are identical; source 2 is equally close to all three targets.
    src = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    tgt = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    pairs = torch.tensor([[0, 1, 2], [0, 2, 1]])
    return src, tgt, pairs


# --------------------------------------------------------------------------------------------------
# Ranks
# --------------------------------------------------------------------------------------------------


def test_realistic_ranks_with_ties(tie_example):
    src, tgt, pairs = tie_example
    ranks = rank_pairs(src, tgt, pairs)
    # s2t cosine rows: s0 -> [1, 1, 0] (true t0 ties with t1: 1 + 0.5 = 1.5),
    # s1 -> [0, 0, 1] (true t2: 1), s2 -> [.71, .71, .71] (true t1 ties with two: 1 + 0.5 * 2 = 2).
    assert ranks["s2t"].tolist() == [1.5, 1.0, 2.0]
    # t2s rows over sources [s0, s1, s2]: t0 -> [1, 0, .71] (true s0: 1), t2 -> [0, 1, .71]
    # (true s1: 1), t1 -> [1, 0, .71] (true s2: s0 is better -> 2).
    assert ranks["t2s"].tolist() == [1.0, 1.0, 2.0]
    assert ranks["s2t"].dtype == torch.float32


def test_metrics_hand_values(tie_example):
    src, tgt, pairs = tie_example
    res = evaluate(src, tgt, pairs)
    assert set(res) == {
        "hits@1",
        "hits@5",
        "hits@10",
        "mrr",
        "mr",
        "tied_top",
        "t2s/hits@1",
        "t2s/hits@5",
        "t2s/hits@10",
        "t2s/mrr",
        "t2s/mr",
        "t2s/tied_top",
    }
    assert all(isinstance(value, float) for value in res.values())
    # s0's true target ties with t1 at the top, s2's with both others; no t2s truth ties at the top.
    assert res["tied_top"] == pytest.approx(2 / 3)
    assert res["t2s/tied_top"] == 0.0
    # s2t ranks [1.5, 1, 2]: a rank of 1.5 is not a Hits@1.
    assert res["hits@1"] == pytest.approx(1 / 3)
    assert res["hits@5"] == pytest.approx(1.0)
    assert res["mrr"] == pytest.approx((1 / 1.5 + 1 + 1 / 2) / 3)
    assert res["mr"] == pytest.approx(1.5)
    # t2s ranks [1, 1, 2].
    assert res["t2s/hits@1"] == pytest.approx(2 / 3)
    assert res["t2s/mrr"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert res["t2s/mr"] == pytest.approx(4 / 3)


def test_metrics_from_ranks():
    ranks = torch.tensor([1.0, 2.5, 5.0, 11.0])
    m = metrics_from_ranks(ranks, ks=(1, 3, 5, 10))
    assert m == pytest.approx(
        {
            "hits@1": 0.25,
            "hits@3": 0.5,
            "hits@5": 0.75,
            "hits@10": 0.75,
            "mrr": (1 + 0.4 + 0.2 + 1 / 11) / 4,
            "mr": 19.5 / 4,
        }
    )
    assert list(metrics_from_ranks(ranks)) == ["hits@1", "hits@5", "hits@10", "mrr", "mr"]
    with pytest.raises(ValueError):
        metrics_from_ranks(torch.tensor([]))
    with pytest.raises(ValueError):
        metrics_from_ranks(ranks, ks=(0,))


def test_shared_target_and_non_candidates():
    # Sources 0 and 1 are both aligned to target 0; source 3 / target 2 appear in no pair.
    src = torch.tensor([[1.0, 0.0], [1.0, 0.5], [0.0, 1.0], [1.0, 0.0]])
    tgt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    pairs = torch.tensor([[0, 1, 2], [0, 0, 1]])
    ranks = rank_pairs(src, tgt, pairs)
    # Target 2 would beat target 0 for source 1, but it is not a candidate.
    assert ranks["s2t"].tolist() == [1.0, 1.0, 1.0]
    # Query t0 appears twice; for pair (1, 0) the other gold source s0 is a better competitor.
    assert ranks["t2s"].tolist() == [1.0, 2.0, 1.0]


@pytest.mark.parametrize("csls_k", [0, 3])
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 100_000])
def test_chunked_matches_reference(chunk_size, csls_k):
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(30, 16, generator=gen, dtype=torch.float64)
    tgt = torch.randn(40, 16, generator=gen, dtype=torch.float64)
    pairs = torch.stack([torch.randperm(30, generator=gen)[:20], torch.randperm(40, generator=gen)[:20]])
    pairs = torch.cat([pairs, torch.tensor([[25], [int(pairs[1, 0])]])], dim=1)  # a shared target
    ranks = rank_pairs(src, tgt, pairs, csls_k=csls_k, chunk_size=chunk_size)
    ref = reference_ranks(src, tgt, pairs, csls_k=csls_k)
    assert torch.equal(ranks["s2t"].double(), ref["s2t"])
    assert torch.equal(ranks["t2s"].double(), ref["t2s"])
    full = rank_pairs(src.float(), tgt.float(), pairs, csls_k=csls_k, chunk_size=100_000)
    chunked = rank_pairs(src.float(), tgt.float(), pairs, csls_k=csls_k, chunk_size=chunk_size)
    assert torch.equal(full["s2t"], chunked["s2t"]) and torch.equal(full["t2s"], chunked["t2s"])


@pytest.mark.parametrize("csls_k", [0, 2])
def test_scale_invariance(csls_k):
    gen = torch.Generator().manual_seed(1)
    src = F.normalize(torch.randn(12, 8, generator=gen, dtype=torch.float64), dim=1)
    tgt = F.normalize(torch.randn(12, 8, generator=gen, dtype=torch.float64), dim=1)
    pairs = torch.stack([torch.arange(12), torch.randperm(12, generator=gen)])
    scaled_src = src * torch.rand(12, 1, generator=gen, dtype=torch.float64).add(0.1) * 50
    scaled_tgt = tgt * torch.rand(12, 1, generator=gen, dtype=torch.float64).add(0.1) * 0.01
    a = evaluate(src, tgt, pairs, csls_k=csls_k)
    b = evaluate(scaled_src, scaled_tgt, pairs, csls_k=csls_k)
    assert a == pytest.approx(b)


# --------------------------------------------------------------------------------------------------
# CSLS
# --------------------------------------------------------------------------------------------------


def test_csls_hand_check_and_hubness():
    # Sources a (0 deg) and b (30 deg); targets hub (20 deg) and t (-25 deg). Pairs (a, t), (b, hub).
    src = torch.tensor([unit(0), unit(30)], dtype=torch.float64)
    tgt = torch.tensor([unit(20), unit(-25)], dtype=torch.float64)
    pairs = torch.tensor([[0, 1], [1, 0]])
    cos = lambda x, y: math.cos(math.radians(x - y))  # noqa: E731

    # Cosine: a prefers the hub (cos 20 > cos 25), so (a, t) has rank 2.
    assert rank_pairs(src, tgt, pairs)["s2t"].tolist() == [2.0, 1.0]

    # CSLS with k = 1 by hand: r_T(x) = best cosine of x over targets, r_S(y) over sources.
    r_t = {"a": cos(0, 20), "b": cos(30, 20)}
    r_s = {"hub": max(cos(0, 20), cos(30, 20)), "t": max(cos(0, -25), cos(30, -25))}
    csls_a_hub = 2 * cos(0, 20) - r_t["a"] - r_s["hub"]
    csls_a_t = 2 * cos(0, -25) - r_t["a"] - r_s["t"]
    assert csls_a_t > csls_a_hub  # the hub is penalised: t is now a's best match
    csls_b_hub = 2 * cos(30, 20) - r_t["b"] - r_s["hub"]
    csls_b_t = 2 * cos(30, -25) - r_t["b"] - r_s["t"]
    assert csls_b_hub > csls_b_t
    ranks = rank_pairs(src, tgt, pairs, csls_k=1)
    assert ranks["s2t"].tolist() == [1.0, 1.0]
    # t2s: column t -> [a, b]: 2cos - r_T(x) - r_S(t); a wins; column hub: b wins.
    assert ranks["t2s"].tolist() == [1.0, 1.0]

    res = evaluate(src, tgt, pairs, csls_k=1)
    assert res["hits@1"] == pytest.approx(0.5)
    assert res["csls/hits@1"] == pytest.approx(1.0)
    assert res["csls/mr"] == pytest.approx(1.0)
    assert {key for key in res if key.startswith("csls/t2s/")} == {
        "csls/t2s/hits@1",
        "csls/t2s/hits@5",
        "csls/t2s/hits@10",
        "csls/t2s/mrr",
        "csls/t2s/mr",
        "csls/t2s/tied_top",
    }


def test_csls_k_larger_than_candidates_is_clamped(tie_example):
    src, tgt, pairs = tie_example
    a = rank_pairs(src.double(), tgt.double(), pairs, csls_k=10)
    ref = reference_ranks(src, tgt, pairs, csls_k=10)
    assert torch.equal(a["s2t"].double(), ref["s2t"])


# --------------------------------------------------------------------------------------------------
# Metric names
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hits@1", ("hits", 1)),
        ("Hits@10", ("hits", 10)),
        ("h@5", ("hits", 5)),
        ("H@3", ("hits", 3)),
        ("hits_at_5", ("hits", 5)),
        ("MRR", ("mrr", None)),
        ("mr", ("mr", None)),
        (" all ", ("all", None)),
    ],
)
def test_parse_metric_valid(name, expected):
    assert parse_metric(name) == expected


@pytest.mark.parametrize("name", ["hits", "hits@", "hits@0", "hits@-1", "h5", "mrrr", "accuracy", ""])
def test_parse_metric_invalid(name):
    with pytest.raises(ValueError, match="hits@K") as info:
        parse_metric(name)
    assert isinstance(info.value, ConfigError)


def test_select_metric(tie_example):
    src, tgt, pairs = tie_example
    res = evaluate(src, tgt, pairs, csls_k=2)
    assert select_metric(res, "H@1") == {
        "hits@1": res["hits@1"],
        "t2s/hits@1": res["t2s/hits@1"],
        "csls/hits@1": res["csls/hits@1"],
        "csls/t2s/hits@1": res["csls/t2s/hits@1"],
    }
    assert set(select_metric(res, "mr")) == {"mr", "t2s/mr", "csls/mr", "csls/t2s/mr"}
    assert select_metric(res, "all") == res
    with pytest.raises(ConfigError, match="add 3 to ks"):
        select_metric(res, "hits@3")
    with pytest.raises(ValueError):
        select_metric(res, "bogus")


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------


def test_invalid_inputs(tie_example):
    src, tgt, pairs = tie_example
    with pytest.raises(ValueError, match="outside"):
        rank_pairs(src, tgt, torch.tensor([[0], [3]]))
    with pytest.raises(ValueError, match=r"\[2, P\]"):
        rank_pairs(src, tgt, pairs.t())
    with pytest.raises(ValueError, match="empty"):
        rank_pairs(src, tgt, torch.empty(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_size"):
        rank_pairs(src, tgt, pairs, chunk_size=0)
    with pytest.raises(ValueError, match="dimension"):
        rank_pairs(src, torch.ones(3, 3), pairs)
    with pytest.raises(ValueError, match="NaN"):
        rank_pairs(src, torch.full_like(tgt, float("nan")), pairs)


def test_requires_grad_inputs_are_fine(tie_example):
    src, tgt, pairs = tie_example
    src = src.clone().requires_grad_()
    assert rank_pairs(src, tgt, pairs)["s2t"].tolist() == [1.5, 1.0, 2.0]


# --------------------------------------------------------------------------------------------------
# Mutual nearest neighbours
# --------------------------------------------------------------------------------------------------


def mnn_example() -> tuple[torch.Tensor, torch.Tensor]:
    # s0 (5 deg) <-> t0 (0 deg) mutual; s1 (60 deg) -> t1 (90 deg) but t1 -> s2 (80 deg), so s1 is
    # left out; s2 <-> t1 mutual; t2 (180 deg) -> s2, but s2 -> t1: not mutual.
    src = torch.tensor([unit(5), unit(60), unit(80)])
    tgt = torch.tensor([unit(0), unit(90), unit(180)])
    return src, tgt


@pytest.mark.parametrize("chunk_size", [1, 2, 1024])
def test_mutual_nearest_neighbours(chunk_size):
    src, tgt = mnn_example()
    out = mutual_nearest_neighbours(src, tgt, torch.arange(3), torch.arange(3), chunk_size=chunk_size)
    assert out.dtype == torch.long
    assert out.tolist() == [[0, 2], [0, 1]]


def test_mutual_nearest_neighbours_candidates_subset_and_duplicates():
    src, tgt = mnn_example()
    # Without s2, t1's nearest source is s1 -> (s1, t1) becomes mutual. Unsorted, duplicated input.
    out = mutual_nearest_neighbours(src, tgt, torch.tensor([1, 0, 1]), torch.tensor([2, 1, 0]))
    assert out.tolist() == [[0, 1], [0, 1]]
    empty = mutual_nearest_neighbours(src, tgt, torch.tensor([], dtype=torch.long), torch.arange(3))
    assert empty.shape == (2, 0)


def test_mutual_nearest_neighbours_ties_lowest_index():
    # Targets 1 and 3 are identical copies; source 0 ties between them -> the lowest index, 1.
    src = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    out = mutual_nearest_neighbours(src, tgt, torch.arange(2), torch.arange(4))
    assert out.tolist() == [[0, 1], [1, 0]]


def test_mutual_nearest_neighbours_csls_matches_chunked():
    gen = torch.Generator().manual_seed(2)
    src = torch.randn(25, 6, generator=gen)
    tgt = src[torch.randperm(25, generator=gen)] + 0.3 * torch.randn(25, 6, generator=gen)
    cands = torch.arange(25)
    a = mutual_nearest_neighbours(src, tgt, cands, cands, chunk_size=1, csls_k=3)
    b = mutual_nearest_neighbours(src, tgt, cands, cands, chunk_size=1000, csls_k=3)
    assert torch.equal(a, b)
    assert a.size(1) > 0
    assert a[0].unique().numel() == a.size(1) and a[1].unique().numel() == a.size(1)


# --------------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    src = torch.randn(50, 32, generator=gen)
    tgt = torch.randn(60, 32, generator=gen)
    pairs = torch.stack([torch.randperm(50, generator=gen)[:40], torch.randperm(60, generator=gen)[:40]])
    cpu = evaluate(src, tgt, pairs, csls_k=5, chunk_size=7)
    gpu = evaluate(src.cuda(), tgt.cuda(), pairs.cuda(), csls_k=5, chunk_size=7)
    assert all(isinstance(value, float) for value in gpu.values())
    assert gpu == pytest.approx(cpu)
    ranks = rank_pairs(src.cuda(), tgt.cuda(), pairs, chunk_size=5)
    assert ranks["s2t"].is_cuda
    cands = torch.arange(50)
    mnn_gpu = mutual_nearest_neighbours(src.cuda(), tgt.cuda(), cands.cuda(), cands.cuda(), chunk_size=4)
    assert mnn_gpu.is_cuda
    assert torch.equal(mnn_gpu.cpu(), mutual_nearest_neighbours(src, tgt, cands, cands))
