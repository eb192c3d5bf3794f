"""LightEA's relation view over seed codes (:mod:`mmea_pyg.nn.relation_view`)."""

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_all_params_get_grad, assert_reset_reinitialises

import mmea_pyg.nn.relation_view as relation_view_module
from mmea_pyg.nn.relation_view import RelationView
from mmea_pyg.nn.structure import SeedPropagationEncoder

# 0 -r0-> 1, 1 -r1-> 2, 2 -r0-> 3, 3 -r2-> 0, 0 -r1-> 2
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
EDGE_TYPE = torch.tensor([0, 1, 0, 2, 1])


def test_relation_view_by_hand():
    """Relation features from the entities each kind leaves, then the sum over each entity's messages
    of (P r_kind) * (Q x_neighbour), normalised."""
    torch.manual_seed(0)
    view = RelationView(in_dim=3, width=5)
    x = torch.randn(4, 3)
    out = view(x, EDGE_INDEX, EDGE_TYPE)
    num_rel = 3
    rel = torch.zeros(2 * num_rel, 3)
    leaves = {(int(r), int(h)) for (h, t), r in zip(EDGE_INDEX.T.tolist(), EDGE_TYPE, strict=True)}
    leaves |= {(int(r) + num_rel, int(t)) for (h, t), r in zip(EDGE_INDEX.T.tolist(), EDGE_TYPE, strict=True)}
    for kind, entity in leaves:  # each (kind, entity) once
        rel[kind] += x[entity]
    rel = view.relation(F.normalize(rel, dim=-1))
    q = view.neighbour(x)
    expected = torch.zeros(4, 5)
    for (h, t), r in zip(EDGE_INDEX.T.tolist(), EDGE_TYPE.tolist(), strict=True):
        expected[h] += rel[r] * q[t]  # h receives t along r
        expected[t] += rel[r + num_rel] * q[h]  # t receives h against r
    torch.testing.assert_close(out, F.normalize(expected, dim=-1))


def test_relation_view_rows_chunks_grads_and_reset(monkeypatch):
    torch.manual_seed(0)
    view = RelationView(in_dim=4, width=6)
    x = torch.randn(4, 4, requires_grad=True)
    full = view(x, EDGE_INDEX, EDGE_TYPE)
    rows = torch.tensor([1, 3])
    torch.testing.assert_close(view(x, EDGE_INDEX, EDGE_TYPE, rows), full[rows])
    monkeypatch.setattr(relation_view_module, "CHUNK", 2)  # evaluation: chunked, the same values
    with torch.no_grad():
        torch.testing.assert_close(view(x, EDGE_INDEX, EDGE_TYPE), full)
    full.pow(2).sum().backward()
    assert_all_params_get_grad(view)
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert_reset_reinitialises(view)
    assert repr(view) == "RelationView(in_dim=4, width=6)"
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        view(torch.randn(4, 3), EDGE_INDEX, EDGE_TYPE)
    with pytest.raises(ValueError, match="one edge_type per edge"):
        view(x, EDGE_INDEX, EDGE_TYPE[:3])
    with pytest.raises(ValueError, match="width >= 1"):
        RelationView(4, 0)


def test_relation_view_needs_no_relation_alignment_and_tells_relations_and_directions_apart():
    """The second KG is the first with its relations renumbered: every entity gets the same row (the
    relation features come from the codes). Reaching the same neighbour by another relation, or in
    the other direction, changes the row."""
    torch.manual_seed(0)
    view = RelationView(in_dim=4, width=64)
    x = torch.randn(4, 4)
    out = view(x, EDGE_INDEX, EDGE_TYPE)
    renumbered = torch.tensor([7, 3, 0])[EDGE_TYPE]  # relation ids of another KG, and more of them
    torch.testing.assert_close(view(x, EDGE_INDEX, renumbered), out)
    # A star: 0 and 1 both point at 2 and 3; 4 points at 2 and 3 by a different relation for 3.
    star = torch.tensor([[0, 0, 1, 1, 4, 4], [2, 3, 2, 3, 2, 3]])
    x = torch.randn(5, 4)
    same = view(x, star, torch.tensor([0, 1, 0, 1, 0, 1]))
    assert torch.allclose(same[0], same[1]) and torch.allclose(same[0], same[4])
    other = view(x, star, torch.tensor([0, 1, 0, 1, 0, 2]))
    assert torch.allclose(other[0], other[1]) and not torch.allclose(other[0], other[4], atol=1e-3)
    flipped = view(
        x, torch.tensor([[0, 0, 1, 1, 4, 3], [2, 3, 2, 3, 2, 4]]), torch.tensor([0, 1, 0, 1, 0, 1])
    )
    assert not torch.allclose(flipped[0], flipped[4], atol=1e-3)


def test_seed_propagation_with_a_relation_view_reads_it_and_computes_rows_alike():
    torch.manual_seed(0)
    codes = torch.zeros(4, 6)
    codes[[1, 3]] = torch.randn(2, 6)
    enc = SeedPropagationEncoder(code_dim=6, dim=5, hops=2, relation_view=8)
    assert enc.out.in_features == 2 * 6 + 5 + 8 and enc.view.in_dim == 3 * 6
    out = enc(EDGE_INDEX, codes, edge_type=EDGE_TYPE)
    rows = torch.tensor([0, 2])
    torch.testing.assert_close(
        enc(EDGE_INDEX, codes, torch.zeros(2, 5), edge_type=EDGE_TYPE, rows=rows), out[rows]
    )
    out.pow(2).sum().backward()
    assert_all_params_get_grad(enc)
    assert "relation_view=8" in repr(enc)
    with pytest.raises(ValueError, match="one edge_type per edge"):
        enc(EDGE_INDEX, codes)
    with pytest.raises(ValueError, match="relation_view >= 0"):
        SeedPropagationEncoder(code_dim=6, dim=5, relation_view=-1)
