"""Our relational encoders: GAT, inductive GAT / GCN, seed anchors and relation context."""

import copy

import pytest
import torch
from conftest import GCN_EDGES, assert_all_params_get_grad, assert_reset_reinitialises, dense_gcn_operator

from mmea_pyg.nn.structure import GATEncoder

# A hand-made 4-entity graph: 0 -r0-> 1, 1 -r1-> 2, 2 -r0-> 3, 3 -r2-> 0, 0 -r1-> 2.
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
EDGE_TYPE = torch.tensor([0, 1, 0, 2, 1])


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
    assert_all_params_get_grad(enc)


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


def test_inductive_gat_encoder():
    torch.manual_seed(0)
    from mmea_pyg.nn.structure import InductiveGATEncoder

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
    from mmea_pyg.nn.structure import SeedAnchors

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
    from mmea_pyg.nn.structure import InductiveGATEncoder

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
    from mmea_pyg.nn.structure import RelationContext

    module = RelationContext(3, dim=8)
    gat = GATEncoder(5, dim=8, num_relations=3)
    with torch.no_grad():
        gat.relation_embedding.weight.copy_(module.embedding.weight)
    torch.testing.assert_close(module(EDGE_INDEX, EDGE_TYPE, 5), gat.relation_context(EDGE_INDEX, EDGE_TYPE))
    assert "RelationContext(3, dim=8)" in repr(module)
    with pytest.raises(ValueError, match="edge_type values"):
        module(EDGE_INDEX, EDGE_TYPE + 5, 5)
    assert_reset_reinitialises(module)


def test_inductive_gcn_encoder_matches_a_dense_hand_computation_and_trains_every_parameter():
    from mmea_pyg.nn.structure import InductiveGCNEncoder

    torch.manual_seed(0)
    enc = InductiveGCNEncoder(6, dim=8, num_layers=2)
    assert repr(enc) == "InductiveGCNEncoder(6, dim=8, num_layers=2)"
    x = torch.randn(5, 6)
    mask = torch.tensor([True, True, False, True, True])
    context = torch.randn(5, 8, requires_grad=True)
    out = enc(x, mask, GCN_EDGES, context)
    assert out.shape == (5, 8)
    # x0 = Proj(F) + C, x_{l+1} = tanh(A x_l W_l), out = W_o [x0 || x1 || x2].
    operator = dense_gcn_operator(GCN_EDGES, 5)
    layers = [enc.project(x, mask) + context]
    for lin in enc.lins:
        layers.append(torch.tanh(operator @ lin(layers[-1])))
    torch.testing.assert_close(out, enc.out(torch.cat(layers, dim=-1)))
    (out * torch.randn(5, 8)).sum().backward()
    assert_all_params_get_grad(enc)
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
    from mmea_pyg.nn.structure import InductiveGCNEncoder

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
    from mmea_pyg.nn.structure import InductiveGCNEncoder

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


def test_relation_reflection_by_hand_and_on_a_few_rows():
    from mmea_pyg.nn.structure import RelationReflection

    torch.manual_seed(0)
    module = RelationReflection(num_relations=2, dim=4)
    x = torch.randn(4, 4)
    # 0 -r0-> 1, 2 -r1-> 1, 1 -r0-> 3. A head hears its tail with kind r, a tail its head with kind
    # r + R (R = 2): entity 1 hears 0 (kind 2), 2 (kind 3) and 3 (kind 0); 0 hears 1 (kind 0); 3 hears
    # 1 (kind 2).
    edges, types = torch.tensor([[0, 2, 1], [1, 1, 3]]), torch.tensor([0, 1, 0])
    u = torch.nn.functional.normalize(module.vectors.weight, dim=-1)

    def reflect(v, k):
        return v - 2 * (v @ u[k]) * u[k]

    out = module(x, edges, types)
    torch.testing.assert_close(out[1], (reflect(x[0], 2) + reflect(x[2], 3) + reflect(x[3], 0)) / 3)
    torch.testing.assert_close(out[0], reflect(x[1], 0))
    torch.testing.assert_close(out[3], reflect(x[1], 2))
    assert float(out[0].detach().norm()) == pytest.approx(
        float(x[1].norm()), rel=1e-5
    )  # reflections keep norms
    # The same neighbour by another relation or in the other direction gives another row.
    assert not torch.allclose(reflect(x[1], 0), reflect(x[1], 2))
    # Rows computed alone over their neighbourhood equal the whole graph's, at every hop.
    rows = torch.tensor([1, 3])
    whole = module.hops(x, edges, types, hops=2)
    alone = module.hops(x, edges, types, hops=2, rows=rows)
    for w, a in zip(whole, alone, strict=True):
        torch.testing.assert_close(w[rows], a)
    assert_reset_reinitialises(module, run=lambda: module(x, edges, types))


def test_normalised_hops_at_equals_the_whole_graph_hops_and_their_gradients():
    from mmea_pyg.nn.graph_ops import normalised_hops, normalised_hops_at, row_normalised_operator

    g = torch.Generator().manual_seed(0)
    n = 300
    edges = torch.randint(0, n, (2, 900), generator=g)
    operator = row_normalised_operator(edges, n)
    x = torch.randn(n, 8, generator=g, requires_grad=True)
    rows = torch.unique(torch.randint(0, n, (25,), generator=g))
    whole = normalised_hops(operator, x, 3)
    alone = normalised_hops_at(operator, x, 3, rows)
    for w, a in zip(whole, alone, strict=True):
        torch.testing.assert_close(w[rows], a)
    weights = torch.randn(3, generator=g)
    grad_whole = torch.autograd.grad(
        sum(c * (w[rows] ** 2).sum() for c, w in zip(weights, whole, strict=True)), x
    )[0]
    grad_alone = torch.autograd.grad(sum(c * (a**2).sum() for c, a in zip(weights, alone, strict=True)), x)[0]
    torch.testing.assert_close(grad_whole, grad_alone)


def test_seed_propagation_self_weight_adds_an_anchors_own_code_and_nothing_else():
    from mmea_pyg.nn.structure import SeedPropagationEncoder

    torch.manual_seed(0)
    codes = torch.zeros(4, 6)
    codes[1] = torch.randn(6)  # entity 1 is an anchor; the others carry no code
    plain = SeedPropagationEncoder(code_dim=6, dim=6, hops=2)
    own = SeedPropagationEncoder(code_dim=6, dim=6, hops=2, self_weight=0.5)
    own.load_state_dict(plain.state_dict())  # the weight is a setting, not a parameter
    base, out = plain(EDGE_INDEX, codes), own(EDGE_INDEX, codes)
    torch.testing.assert_close(out - base, 0.5 * codes)
    assert torch.equal(out[[0, 2, 3]], base[[0, 2, 3]])  # entities without a code are unchanged
    rows = torch.tensor([1, 3])
    torch.testing.assert_close(own(EDGE_INDEX, codes, rows=rows), out[rows])
    assert "self_weight=0.5" in repr(own) and "self_weight" not in repr(plain)
    for bad in ({"self_weight": -0.1}, {"self_weight": 0.5, "code_dim": 8}):
        with pytest.raises(ValueError, match="self_weight"):
            SeedPropagationEncoder(**{"code_dim": 6, "dim": 6, **bad})
