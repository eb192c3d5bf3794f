import copy
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_reset_reinitialises

from mmea_pyg.nn.encoders import GATEncoder, ModalityProjection, Tokenizer, TransE, corrupt_triples

# A hand-made 4-entity graph: 0 -r0-> 1, 1 -r1-> 2, 2 -r0-> 3, 3 -r2-> 0, 0 -r1-> 2.
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
EDGE_TYPE = torch.tensor([0, 1, 0, 2, 1])


def _assert_all_params_get_grad(module: torch.nn.Module) -> None:
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------------- TransE
def test_transe_shapes_repr_and_normalisation():
    model = TransE(5, 3, dim=8)
    assert str(model) == "TransE(5, 3, dim=8)"
    out = model()
    assert out.shape == (5, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(5), atol=1e-6)
    assert model(torch.tensor([4, 0])).shape == (2, 8)
    assert torch.allclose(model(torch.tensor([4, 0])), out[[4, 0]])


def test_transe_reset_parameters():
    assert_reset_reinitialises(TransE(5, 3, dim=8))


def test_transe_score_hand_computed():
    model = TransE(3, 1, dim=2)
    with torch.no_grad():
        model.entity.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]]))
        model.relation.weight.copy_(torch.tensor([[0.0, -5.0]]))
    # Normalised: e0 = (0.6, 0.8), e1 = (0, 1), e2 = (1/sqrt2, 1/sqrt2), r = (0, -1).
    s = 1 / math.sqrt(2)
    expected_01 = (0.6 + 0 - 0) ** 2 + (0.8 - 1 - 1) ** 2  # 0.36 + 1.44 = 1.8
    expected_12 = (0 - s) ** 2 + (1 - 1 - s) ** 2  # 1.0
    score = model.score(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([1, 2]))
    assert torch.allclose(score, torch.tensor([expected_01, expected_12]), atol=1e-6)
    l1 = TransE(3, 1, dim=2, p_norm=1)
    l1.load_state_dict(model.state_dict())
    score = l1.score(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))
    assert torch.allclose(score, torch.tensor([0.6 + 1.2]), atol=1e-6)


def test_transe_invalid_arguments():
    with pytest.raises(ValueError, match="p_norm"):
        TransE(3, 1, p_norm=3)
    with pytest.raises(ValueError):
        TransE(0, 1)


def test_corrupt_triples_changes_exactly_one_side_and_is_reproducible():
    head = torch.randint(0, 7, (500,))
    tail = torch.randint(0, 7, (500,))
    rel = torch.randint(0, 3, (500,))
    nh, nr, nt = corrupt_triples(head, rel, tail, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nr, rel)
    head_changed, tail_changed = nh != head, nt != tail
    assert torch.equal(head_changed ^ tail_changed, torch.ones(500, dtype=torch.bool))
    assert 0.35 < head_changed.float().mean() < 0.65  # a fair coin
    assert nh.min() >= 0 and nh.max() < 7 and nt.min() >= 0 and nt.max() < 7
    nh2, _, nt2 = corrupt_triples(head, rel, tail, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(nh, nh2) and torch.equal(nt, nt2)
    nh3, _, nt3 = corrupt_triples(head, rel, tail, 7, generator=torch.Generator().manual_seed(1))
    assert not (torch.equal(nh, nh3) and torch.equal(nt, nt3))
    # Two entities: the replacement is forced to be the other one, (0, 0) -> one side 1, (1, 1) -> one 0.
    nh, _, nt = corrupt_triples(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([0, 1]), 2)
    assert torch.equal(nh + nt, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="at least 2"):
        corrupt_triples(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), 1)


def test_transe_loss_matches_hand_computation_and_gives_gradients():
    torch.manual_seed(0)
    model = TransE(4, 3, dim=6)
    loss = model.loss(EDGE_INDEX, EDGE_TYPE, generator=torch.Generator().manual_seed(3))
    # Recompute by hand with the same random stream: all 5 triples (batch 5000 > E), then corruption.
    gen = torch.Generator().manual_seed(3)
    h, t, r = EDGE_INDEX[0], EDGE_INDEX[1], EDGE_TYPE
    nh, nr, nt = corrupt_triples(h, r, t, 4, generator=gen)
    expected = F.relu(1.0 + model.score(h, r, t) - model.score(nh, nr, nt)).sum()
    assert torch.allclose(loss, expected)
    mean = model.loss(EDGE_INDEX, EDGE_TYPE, generator=torch.Generator().manual_seed(3), reduction="mean")
    assert torch.allclose(mean, expected / 5)
    loss.backward()
    _assert_all_params_get_grad(model)


def test_transe_loss_batches_without_replacement():
    model = TransE(4, 3, dim=6)
    index = model.sample_triples(5, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert index.shape == (3,) and index.unique().numel() == 3
    loss = model.loss(EDGE_INDEX, EDGE_TYPE, index=torch.tensor([0]), generator=torch.Generator())
    assert loss.shape == ()
    with pytest.raises(ValueError, match="edge_type"):
        model.loss(EDGE_INDEX, EDGE_TYPE[:2])


# -------------------------------------------------------------------------------- GATEncoder
@pytest.mark.parametrize("num_relations", [None, 3])
def test_gat_encoder_shapes_repr_and_grads(num_relations):
    torch.manual_seed(0)
    enc = GATEncoder(4, dim=8, num_layers=2, heads=2, num_relations=num_relations)
    assert enc.relation_features is (num_relations is not None)
    assert str(enc) == f"GATEncoder(4, dim=8, num_layers=2, heads=2, num_relations={num_relations})"
    edge_type = None if num_relations is None else EDGE_TYPE
    out = enc(EDGE_INDEX, edge_type)
    assert out.shape == (4, 8)
    out.pow(2).sum().backward()
    _assert_all_params_get_grad(enc)


def test_gat_encoder_reset_parameters():
    assert_reset_reinitialises(GATEncoder(4, dim=8, num_relations=3))


def test_gat_encoder_needs_edge_type_with_relation_features():
    enc = GATEncoder(4, dim=8, num_relations=3)
    with pytest.raises(ValueError, match="edge_type"):
        enc(EDGE_INDEX)
    with pytest.raises(ValueError, match="0..2"):
        enc(EDGE_INDEX, torch.tensor([0, 1, 0, 3, 1]))
    assert GATEncoder(4, dim=8, num_relations=3, relation_features=False)(EDGE_INDEX).shape == (4, 8)
    with pytest.raises(ValueError, match="num_relations"):
        GATEncoder(4, relation_features=True)


def test_gat_encoder_relation_context_is_direction_aware_mean():
    enc = GATEncoder(4, dim=8, num_relations=3)
    ctx = enc.relation_context(EDGE_INDEX, EDGE_TYPE)
    u = enc.relation_embedding.weight
    # Entity 0: outgoing r0 (edge 0), r1 (edge 4); incoming r2 (edge 3) -> ids 0, 1, 2 + 3.
    assert torch.allclose(ctx[0], (u[0] + u[1] + u[5]) / 3)
    # Entity 2: outgoing r0; incoming r1 twice -> ids 0, 4, 4.
    assert torch.allclose(ctx[2], (u[0] + u[4] + u[4]) / 3)
    isolated = GATEncoder(5, dim=8, num_relations=3).relation_context(EDGE_INDEX, EDGE_TYPE)
    assert torch.equal(isolated[4], torch.zeros(8))


@pytest.mark.parametrize("num_relations", [None, 3])
def test_gat_encoder_is_permutation_equivariant(num_relations):
    torch.manual_seed(0)
    enc = GATEncoder(4, dim=8, num_layers=2, num_relations=num_relations).eval()
    edge_type = None if num_relations is None else EDGE_TYPE
    out = enc(EDGE_INDEX, edge_type)
    perm = torch.tensor([2, 0, 3, 1])  # new id i holds old entity perm[i]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(4)
    permuted = copy.deepcopy(enc)
    with torch.no_grad():
        permuted.embedding.weight.copy_(enc.embedding.weight[perm])
    # Reordering the edge list as well must not matter.
    order = torch.tensor([4, 2, 0, 3, 1])
    new_edges = inverse[EDGE_INDEX][:, order]
    new_types = None if edge_type is None else edge_type[order]
    assert torch.allclose(permuted(new_edges, new_types), out[perm], atol=1e-5)


def test_gat_encoder_without_layers_returns_input():
    enc = GATEncoder(4, dim=8, num_layers=0)
    assert torch.equal(enc(EDGE_INDEX), enc.embedding.weight)


# ------------------------------------------------------------------------ ModalityProjection
def test_modality_projection_masked_rows_and_linear_rows():
    torch.manual_seed(0)
    proj = ModalityProjection(6, dim=4)
    assert str(proj) == "ModalityProjection(6, 4)"
    x = torch.randn(5, 6)
    x[1] = float("nan")  # features of a missing row are never read
    mask = torch.tensor([True, False, True, False, True])
    out = proj(x, mask)
    assert out.shape == (5, 4)
    assert torch.equal(out[1], proj.missing.detach()) and torch.equal(out[3], proj.missing.detach())
    expected = x[mask] @ proj.lin.weight.t() + proj.lin.bias
    assert torch.allclose(out[mask], expected)
    out.sum().backward()
    _assert_all_params_get_grad(proj)
    assert torch.allclose(proj.missing.grad, torch.full((4,), 2.0))
    assert torch.allclose(proj(x[[0]]), expected[[0]])  # mask None: every row has the modality


def test_modality_projection_without_features():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proj = ModalityProjection(0, dim=4)
    assert proj.lin is None
    out = proj(torch.empty(3, 0), torch.tensor([True, False, True]))
    assert torch.equal(out, proj.missing.detach().expand(3, 4))
    out.sum().backward()
    assert torch.allclose(proj.missing.grad, torch.full((4,), 3.0))
    assert_reset_reinitialises(proj)


def test_modality_projection_reset_and_errors():
    proj = ModalityProjection(6, dim=4)
    assert_reset_reinitialises(proj)
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        proj(torch.randn(3, 5))
    with pytest.raises(ValueError, match="mask"):
        proj(torch.randn(3, 6), torch.ones(2, dtype=torch.bool))


# --------------------------------------------------------------------------------- Tokenizer
def test_tokenizer_shapes_flatten_and_grads():
    tok = Tokenizer(dim=100, num_tokens=4)
    assert str(tok) == "Tokenizer(100, num_tokens=4)"
    x = torch.randn(7, 100)
    tokens = tok(x)
    assert tokens.shape == (7, 4, 25)
    flat = Tokenizer.flatten(tokens)
    assert flat.shape == (7, 100)
    assert torch.allclose(flat, tok.lin(x))
    assert tok(torch.randn(2, 3, 100)).shape == (2, 3, 4, 25)
    tokens.pow(2).sum().backward()
    _assert_all_params_get_grad(tok)
    assert_reset_reinitialises(tok)


def test_tokenizer_divisibility_error():
    with pytest.raises(ValueError, match="divide"):
        Tokenizer(dim=100, num_tokens=3)
    with pytest.raises(ValueError, match="last dimension"):
        Tokenizer(dim=8, num_tokens=2)(torch.randn(3, 6))


def test_inductive_gat_encoder():
    torch.manual_seed(0)
    from mmea_pyg.nn.encoders import InductiveGATEncoder

    enc = InductiveGATEncoder(6, dim=8, num_layers=2)
    x = torch.randn(5, 6)
    mask = torch.tensor([True, True, False, True, True])
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    out = enc(x, mask, edge_index)
    assert out.shape == (5, 8) and "InductiveGATEncoder(6, dim=8" in repr(enc)
    out.sum().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in enc.parameters())
    # Renumbering the nodes only permutes the output (no per-entity parameters).
    perm = torch.tensor([3, 0, 4, 1, 2])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(5)
    with torch.no_grad():
        permuted = enc(x[perm], mask[perm], inverse[edge_index])
    torch.testing.assert_close(permuted, out.detach()[perm])
    # The masked row's features are never read.
    x2 = x.clone()
    x2[2] = float("nan")
    torch.testing.assert_close(enc(x2, mask, edge_index), out)
    with pytest.raises(ValueError, match="edge_index"):
        enc(x, mask, edge_index[0])
    assert_reset_reinitialises(enc)


def test_seed_anchors_share_codes_within_a_pair():
    from mmea_pyg.nn.encoders import SeedAnchors

    torch.manual_seed(0)
    anchors = SeedAnchors(num_source=6, dim=4)
    pairs = torch.tensor([[0, 2, 2], [1, 3, 0]])  # source 2 is in two pairs
    src, tgt = anchors(pairs, (6, 5))
    assert src.shape == (6, 4) and tgt.shape == (5, 4)
    table = anchors.embedding.weight
    torch.testing.assert_close(src[0], tgt[1])
    torch.testing.assert_close(src[2], 2 * table[2])  # both of its codes
    torch.testing.assert_close(tgt[3], table[2])
    torch.testing.assert_close(tgt[0], table[2])
    # Entities outside every seed pair get no code.
    assert torch.all(src[[1, 3, 4, 5]] == 0) and torch.all(tgt[[2, 4]] == 0)
    (src.sum() + tgt.sum()).backward()
    assert torch.all(table.grad[[0, 2]] != 0) and torch.all(table.grad[[1, 3, 4, 5]] == 0)
    with pytest.raises(ValueError, match=r"\[2, K\]"):
        anchors(pairs[0], (6, 5))
    assert_reset_reinitialises(anchors)


def test_inductive_gat_encoder_propagates_anchor_codes():
    from mmea_pyg.nn.encoders import InductiveGATEncoder

    torch.manual_seed(0)
    enc = InductiveGATEncoder(3, dim=8, num_layers=1)
    x = torch.randn(4, 3)
    edge_index = torch.tensor([[0, 2], [1, 3]])  # 0-1 and 2-3 are separate components
    anchor = torch.zeros(4, 8)
    anchor[0] = torch.randn(8)
    with torch.no_grad():
        plain, coded = enc(x, None, edge_index), enc(x, None, edge_index, anchor)
    # The code reaches the anchor's neighbour, not the other component.
    assert not torch.allclose(plain[1], coded[1])
    torch.testing.assert_close(plain[2:], coded[2:])
    with pytest.raises(ValueError, match="context input"):
        enc(x, None, edge_index, anchor[:3])


def test_relation_context_module_matches_the_gat_encoder_features():
    from mmea_pyg.nn.encoders import RelationContext

    module = RelationContext(3, dim=8)
    gat = GATEncoder(5, dim=8, num_relations=3)
    with torch.no_grad():
        gat.relation_embedding.weight.copy_(module.embedding.weight)
    torch.testing.assert_close(module(EDGE_INDEX, EDGE_TYPE, 5), gat.relation_context(EDGE_INDEX, EDGE_TYPE))
    assert "RelationContext(3, dim=8)" in repr(module)
    with pytest.raises(ValueError, match="edge_type values"):
        module(EDGE_INDEX, EDGE_TYPE + 5, 5)
    assert_reset_reinitialises(module)


def test_label_propagation_hand_computed():
    from mmea_pyg.nn.encoders import LabelPropagation

    module = LabelPropagation(num_source=4, code_dim=6, hops=2)
    # Source KG: path 0-1-2, node 3 isolated; target KG: the same path renumbered 2-0-1.
    src_edges, tgt_edges = torch.tensor([[0, 1], [1, 2]]), torch.tensor([[2, 0], [0, 1]])
    pairs = torch.tensor([[0], [2]])  # seed pair: source 0 <-> target 2
    src = module(pairs, 0, src_edges, 4)
    tgt = module(pairs, 1, tgt_edges, 3)
    code = module.codes[0]
    assert src.shape == (4, 12) and tgt.shape == (3, 12) and module.out_dim == 12
    # Hop 1: node 1 sees the seed's code; the seed itself has no labelled neighbour (no self loops).
    torch.testing.assert_close(src[1, :6], code)
    assert torch.all(src[0, :6] == 0) and torch.all(src[3] == 0)
    # Hop 2: the seed gets its code back through node 1, node 2 through node 1.
    torch.testing.assert_close(src[0, 6:], code)
    torch.testing.assert_close(src[2, 6:], code)
    # Corresponding entities of the two KGs get the same labels.
    torch.testing.assert_close(tgt[[2, 0, 1]], src[:3])
    # Two seeds around node 1: the row-normalised mean of their codes, renormalised.
    two = module(torch.tensor([[0, 2], [0, 2]]), 0, src_edges, 4)
    torch.testing.assert_close(
        two[1, :6], torch.nn.functional.normalize(module.codes[0] + module.codes[2], dim=0)
    )
    assert list(module.parameters()) == [] and "codes" not in module.state_dict()  # rebuilt from the seed
    torch.testing.assert_close(LabelPropagation(4, code_dim=6, hops=2).codes, module.codes)
    assert not torch.equal(LabelPropagation(4, code_dim=6, hops=2, seed=1).codes, module.codes)
    with pytest.raises(ValueError, match=r"\[2, K\]"):
        module(pairs[0], 0, src_edges, 4)
    with pytest.raises(ValueError, match="hops >= 1"):
        LabelPropagation(4, hops=0)


def test_anchor_propagation_projects_the_labels():
    from mmea_pyg.nn.encoders import AnchorPropagation

    torch.manual_seed(0)
    module = AnchorPropagation(num_source=4, dim=3, code_dim=6, hops=2)
    src_edges, pairs = torch.tensor([[0, 1], [1, 2]]), torch.tensor([[0], [2]])
    out = module(pairs, 0, src_edges, 4)
    torch.testing.assert_close(out, module.lin(module.labels(pairs, 0, src_edges, 4)))
    assert out.shape == (4, 3)
    out.sum().backward()
    assert module.lin.weight.grad is not None and "codes" not in dict(module.named_parameters())
    assert "code_dim=6" in repr(module)
    assert_reset_reinitialises(module)


def test_graph_cache_builds_once_and_rebuilds_after_an_in_place_edit():
    from mmea_pyg.nn.encoders import _GraphCache

    calls = []
    cache = _GraphCache(lambda edge_index, n: calls.append(n) or edge_index.flip(0).clone(), capacity=2)
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


# ----------------------------------------------------------------------- InductiveGCNEncoder
def _dense_gcn_operator(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of the undirected, unweighted graph, by hand (dense)."""
    adjacency = torch.zeros(n, n)
    for h, t in edge_index.t().tolist():
        if h != t:
            adjacency[h, t] = adjacency[t, h] = 1.0
    adjacency += torch.eye(n)
    inv_sqrt = adjacency.sum(1).pow(-0.5)
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


# Duplicate (0->1 twice), reverse (1->0) and self loop (2->2) edges; node 4 is isolated.
GCN_EDGES = torch.tensor([[0, 0, 1, 2, 2, 3], [1, 1, 0, 2, 3, 1]])


def test_gcn_operator_is_the_symmetric_normalised_adjacency_with_self_loops():
    from mmea_pyg.nn.encoders import _gcn_operator

    matrix, matrix_t = _gcn_operator(GCN_EDGES, 5)
    expected = _dense_gcn_operator(GCN_EDGES, 5)
    torch.testing.assert_close(matrix.to_dense(), expected)
    torch.testing.assert_close(matrix_t.to_dense(), expected.t())
    assert matrix.layout == torch.sparse_csr and matrix_t.layout == torch.sparse_csr
    # Node 2 (neighbour 3 and its self loop, counted once) and the isolated node 4 (its own loop only).
    torch.testing.assert_close(matrix.to_dense()[[2, 4], [2, 4]], torch.tensor([0.5, 1.0]))


def test_inductive_gcn_encoder_matches_a_dense_hand_computation_and_trains_every_parameter():
    from mmea_pyg.nn.encoders import InductiveGCNEncoder

    torch.manual_seed(0)
    enc = InductiveGCNEncoder(6, dim=8, num_layers=2)
    assert repr(enc) == "InductiveGCNEncoder(6, dim=8, num_layers=2)"
    x = torch.randn(5, 6)
    mask = torch.tensor([True, True, False, True, True])
    context = torch.randn(5, 8, requires_grad=True)
    out = enc(x, mask, GCN_EDGES, context)
    assert out.shape == (5, 8)
    # x0 = Proj(F) + C, x_{l+1} = tanh(A x_l W_l), out = W_o [x0 || x1 || x2].
    operator = _dense_gcn_operator(GCN_EDGES, 5)
    layers = [enc.project(x, mask) + context]
    for lin in enc.lins:
        layers.append(torch.tanh(operator @ lin(layers[-1])))
    torch.testing.assert_close(out, enc.out(torch.cat(layers, dim=-1)))
    (out * torch.randn(5, 8)).sum().backward()
    _assert_all_params_get_grad(enc)
    assert context.grad is not None and torch.all(context.grad.abs().sum(-1) > 0)
    # Renumbering the nodes only permutes the output (no per-entity parameters).
    perm = torch.tensor([3, 0, 4, 1, 2])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(5)
    with torch.no_grad():
        permuted = enc(x[perm], mask[perm], inverse[GCN_EDGES], context[perm])
    torch.testing.assert_close(permuted, out.detach()[perm], atol=1e-6, rtol=1e-5)
    # Without layers: the projected input (plus context) through the output map.
    flat = InductiveGCNEncoder(6, dim=8, num_layers=0)
    torch.testing.assert_close(flat(x, mask, GCN_EDGES), flat.out(flat.project(x, mask)))


def test_inductive_gcn_encoder_isolated_node_sees_only_itself():
    from mmea_pyg.nn.encoders import InductiveGCNEncoder

    torch.manual_seed(0)
    enc = InductiveGCNEncoder(6, dim=8, num_layers=2).eval()
    x, context = torch.randn(5, 6), torch.randn(5, 8)
    with torch.no_grad():
        out = enc(x, None, GCN_EDGES, context)
        # Everything about the other nodes changes: node 4's output does not.
        x2, context2 = torch.randn(5, 6), torch.randn(5, 8)
        x2[4], context2[4] = x[4], context[4]
        torch.testing.assert_close(enc(x2, None, GCN_EDGES, context2)[4], out[4])
        assert not torch.allclose(enc(x2, None, GCN_EDGES, context2)[:4], out[:4])
        # Its own self loop only: x_{l+1} = tanh(W_l x_l).
        h = enc.project(x, None)[4] + context[4]
        layers = [h]
        for lin in enc.lins:
            layers.append(torch.tanh(lin(layers[-1])))
        torch.testing.assert_close(out[4], enc.out(torch.cat(layers)))
        # Its own features or context do change it.
        x3 = x.clone()
        x3[4] += 1.0
        assert not torch.allclose(enc(x3, None, GCN_EDGES, context)[4], out[4])
        context3 = context.clone()
        context3[4] += 1.0
        assert not torch.allclose(enc(x, None, GCN_EDGES, context3)[4], out[4])


def test_inductive_gcn_encoder_errors_and_reset():
    from mmea_pyg.nn.encoders import InductiveGCNEncoder

    torch.manual_seed(0)
    enc = InductiveGCNEncoder(6, dim=8, num_layers=2)
    x = torch.randn(5, 6)
    with pytest.raises(ValueError, match="context input of shape"):
        enc(x, None, GCN_EDGES, torch.randn(4, 8))
    with pytest.raises(ValueError, match="context input of shape"):
        enc(x, None, GCN_EDGES, torch.randn(5, 7))
    with pytest.raises(ValueError, match=r"edge_index of shape \[2, E\]"):
        enc(x, None, GCN_EDGES[0])
    with pytest.raises(ValueError, match=r"edge_index of shape \[2, E\]"):
        enc(x, None, torch.cat([GCN_EDGES, GCN_EDGES[:1]]))
    with pytest.raises(ValueError, match="dim >= 1"):
        InductiveGCNEncoder(6, dim=0)
    with pytest.raises(ValueError, match="num_layers >= 0"):
        InductiveGCNEncoder(6, num_layers=-1)
    assert_reset_reinitialises(enc, run=lambda: enc(x, None, GCN_EDGES))


# ------------------------------------------------------------------ sparse operators and caches
def test_sparse_matmul_matches_the_dense_product_and_its_gradient():
    from mmea_pyg.nn.encoders import _csr_pair, sparse_matmul

    torch.manual_seed(0)
    # A non-symmetric, rectangular operator with a duplicate entry (summed).
    index = torch.tensor([[0, 0, 1, 3, 4, 5, 5, 2], [1, 1, 3, 0, 2, 3, 0, 2]])
    values = torch.randn(8)
    operator = _csr_pair(index, values, (6, 4))
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
    operator64 = _csr_pair(index, values.double(), (6, 4))
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
    from mmea_pyg.nn.encoders import _relation_context

    torch.manual_seed(0)
    embedding = torch.nn.Embedding(7, 4)  # rows past 2R are never read
    # EDGE_INDEX plus a duplicate edge and a self loop; nodes 4 and 5 are isolated.
    edge_index = torch.cat([EDGE_INDEX, torch.tensor([[0, 1], [1, 1]])], dim=1)
    edge_type = torch.cat([EDGE_TYPE, torch.tensor([0, 2])])
    ctx = _relation_context(embedding, edge_index, edge_type, 3, 6)
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
        _relation_context(embedding, edge_index, edge_type, 3, 6),
        _hand_relation_context(embedding.weight, edge_index, edge_type, 3, 6),
    )
    with pytest.raises(ValueError, match="edge_type values must lie in 0..2"):
        _relation_context(embedding, edge_index, edge_type + 1, 3, 6)


def test_graph_cache_keys_on_extra_tensors_and_arguments():
    from mmea_pyg.nn.encoders import _GraphCache

    calls = []
    cache = _GraphCache(lambda e, n, t, r: calls.append((n, r)) or (t.clone(), r))
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
