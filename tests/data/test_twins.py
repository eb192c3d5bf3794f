import pytest
import torch
from torch_geometric.data import HeteroData

from mmea_pyg.data.twins import has_twin, twin_share


def _graph(triples: list[tuple[int, int, int]], num_nodes: int) -> HeteroData:
    data = HeteroData()
    for side in ("source", "target"):
        data[side].num_nodes = num_nodes
        t = torch.tensor(triples).T
        data[side, "relation", side].edge_index = t[[0, 2]]
        data[side, "relation", side].edge_type = t[1]
    return data


def test_twins_by_hand():
    # 1 and 2 hang from 0 by relation 0: twins. 3 hangs from 0 by relation 1, 4 points *to* 0 by
    # relation 0, 5 hangs from 0 twice: none of them has a twin. 6 and 7 have no triple: twins.
    triples = [(0, 0, 1), (0, 0, 2), (0, 1, 3), (4, 0, 0), (0, 0, 5), (0, 0, 5)]
    data = _graph(triples, 8)
    twins = has_twin(data, "source", torch.arange(8))
    assert twins.tolist() == [False, True, True, False, False, False, True, True]
    # Among the candidates only: 2 is not among them, so 1 has no twin there.
    assert has_twin(data, "source", torch.tensor([0, 1, 3, 6, 7])).tolist() == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_twin_share_of_the_evaluated_pairs():
    data = _graph([(0, 0, 1), (0, 0, 2), (0, 1, 3)], 4)
    pairs = torch.tensor([[1, 2, 3], [1, 2, 3]])
    share = twin_share(data, pairs)
    assert share == pytest.approx({"source_twins": 2 / 3, "target_twins": 2 / 3})
