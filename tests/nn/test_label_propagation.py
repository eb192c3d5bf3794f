"""LightEA's propagated seed labels and their projection."""

import pytest
import torch
from conftest import assert_reset_reinitialises


def test_label_propagation_hand_computed():
    from mmea_pyg.nn.label_propagation import LabelPropagation

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
    from mmea_pyg.nn.label_propagation import AnchorPropagation

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
