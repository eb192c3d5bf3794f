"""The sparse-graph operators and their cache."""

import pytest
import torch
from conftest import GCN_EDGES, dense_gcn_operator

# A hand-made 4-entity graph: 0 -r0-> 1, 1 -r1-> 2, 2 -r0-> 3, 3 -r2-> 0, 0 -r1-> 2.
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
EDGE_TYPE = torch.tensor([0, 1, 0, 2, 1])


def test_graph_cache_builds_once_and_rebuilds_after_an_in_place_edit():
    from mmea_pyg.nn.graph_ops import GraphCache

    calls = []
    cache = GraphCache(lambda edge_index, n: calls.append(n) or edge_index.flip(0).clone(), capacity=2)
    edges = torch.tensor([[0, 1], [1, 2]])
    first = cache(edges, 3)
    assert cache(edges, 3) is first and calls == [3]  # cached
    cache(edges, 4)  # another node count is another graph
    assert calls == [3, 4]
    edges[0, 0] = 2  # in place: same storage, new version
    torch.testing.assert_close(cache(edges, 3), edges.flip(0))
    assert calls == [3, 4, 3]
    for n in (5, 6, 7):  # bounded: the oldest entries go first
        cache(edges, n)
    assert len(cache._cache) == 2


def test_graph_cache_keys_on_extra_tensors_and_arguments():
    from mmea_pyg.nn.graph_ops import GraphCache

    calls = []
    cache = GraphCache(lambda e, n, t, r: calls.append((n, r)) or (t.clone(), r))
    edges, types = torch.tensor([[0, 1], [1, 2]]), torch.tensor([0, 1])
    first = cache(edges, 3, types, 2)
    assert cache(edges, 3, types, 2) is first and calls == [(3, 2)]
    cache(edges, 3, types, 4)  # another non-tensor argument: another entry
    assert calls == [(3, 2), (3, 4)]
    cache(edges, 3, types.clone(), 2)  # another edge-type tensor: another entry
    assert len(calls) == 3
    types[1] = 0  # in place: rebuilt
    assert torch.equal(cache(edges, 3, types, 2)[0], torch.tensor([0, 0])) and len(calls) == 4
    assert cache(edges, 3, types, 2)[0] is cache(edges, 3, types, 2)[0] and len(calls) == 4


def test_gcn_operator_is_the_symmetric_normalised_adjacency_with_self_loops():
    from mmea_pyg.nn.graph_ops import gcn_operator

    matrix, matrix_t = gcn_operator(GCN_EDGES, 5)
    expected = dense_gcn_operator(GCN_EDGES, 5)
    torch.testing.assert_close(matrix.to_dense(), expected)
    torch.testing.assert_close(matrix_t.to_dense(), expected.t())
    assert matrix.layout == torch.sparse_csr and matrix_t.layout == torch.sparse_csr
    # Node 2 (neighbour 3 and its self loop, counted once) and the isolated node 4 (its own loop only).
    torch.testing.assert_close(matrix.to_dense()[[2, 4], [2, 4]], torch.tensor([0.5, 1.0]))


# ------------------------------------------------------------------ sparse operators and caches
def test_sparse_matmul_matches_the_dense_product_and_its_gradient():
    from mmea_pyg.nn.graph_ops import csr_pair, sparse_matmul

    torch.manual_seed(0)
    # A non-symmetric, rectangular operator with a duplicate entry (summed).
    index = torch.tensor([[0, 0, 1, 3, 4, 5, 5, 2], [1, 1, 3, 0, 2, 3, 0, 2]])
    values = torch.randn(8)
    operator = csr_pair(index, values, (6, 4))
    dense = torch.zeros(6, 4).index_put_((index[0], index[1]), values, accumulate=True)
    torch.testing.assert_close(operator[0].to_dense(), dense)
    torch.testing.assert_close(operator[1].to_dense(), dense.t())
    x = torch.randn(4, 3, requires_grad=True)
    x_dense = x.detach().clone().requires_grad_()
    weights = torch.randn(6, 3)
    out = sparse_matmul(operator, x)
    expected = dense @ x_dense
    torch.testing.assert_close(out, expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_dense.grad)
    # Without a gradient: the plain product.
    torch.testing.assert_close(sparse_matmul(operator, x.detach()), dense @ x.detach())
    # In double precision against finite differences, through a non-contiguous upstream gradient.
    operator64 = csr_pair(index, values.double(), (6, 4))
    x64 = torch.randn(4, 3, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sparse_matmul(operator64, t).t(), (x64,))


def _hand_relation_context(weight, edge_index, edge_type, num_relations, num_nodes):
    """The old scatter-mean definition, by hand: rows r (outgoing) and r + R (incoming), zero if isolated."""
    rows = [[] for _ in range(num_nodes)]
    for (h, t), r in zip(edge_index.t().tolist(), edge_type.tolist(), strict=True):
        rows[h].append(weight[r])
        rows[t].append(weight[r + num_relations])
    return torch.stack([torch.stack(r).mean(0) if r else torch.zeros(weight.size(1)) for r in rows])


def test_relation_context_is_the_direction_aware_mean_and_follows_in_place_edits():
    from mmea_pyg.nn.graph_ops import relation_context

    torch.manual_seed(0)
    embedding = torch.nn.Embedding(7, 4)  # rows past 2R are never read
    # EDGE_INDEX plus a duplicate edge and a self loop; nodes 4 and 5 are isolated.
    edge_index = torch.cat([EDGE_INDEX, torch.tensor([[0, 1], [1, 1]])], dim=1)
    edge_type = torch.cat([EDGE_TYPE, torch.tensor([0, 2])])
    ctx = relation_context(embedding, edge_index, edge_type, 3, 6)
    expected = _hand_relation_context(embedding.weight, edge_index, edge_type, 3, 6)
    torch.testing.assert_close(ctx, expected)
    assert torch.all(ctx[4:] == 0)
    weights = torch.randn(6, 4)
    (grad,) = torch.autograd.grad((ctx * weights).sum(), embedding.weight)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), embedding.weight)
    torch.testing.assert_close(grad, expected_grad)
    assert torch.all(grad[6] == 0)
    # Editing the edge types in place (same storage, new version) rebuilds the cached incidence.
    edge_type[0] = 2
    torch.testing.assert_close(
        relation_context(embedding, edge_index, edge_type, 3, 6),
        _hand_relation_context(embedding.weight, edge_index, edge_type, 3, 6),
    )
    with pytest.raises(ValueError, match="edge_type values must lie in 0..2"):
        relation_context(embedding, edge_index, edge_type + 1, 3, 6)
