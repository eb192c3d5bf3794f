import pytest
import torch

from mmea_pyg.data.splits import draw_split
from mmea_pyg.errors import ConfigError


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8])
def test_split_sizes_and_partition(ratio):
    pairs = torch.arange(1000).repeat(2, 1)
    train, valid, test = draw_split(pairs, ratio, 0.1, seed=3)
    assert int(train.sum()) == round(ratio * 1000)
    assert int(valid.sum()) == 100
    assert int(test.sum()) == 1000 - round(ratio * 1000) - 100
    assert torch.all(train.int() + valid.int() + test.int() == 1)


def test_split_is_seeded():
    pairs = torch.arange(200).repeat(2, 1)
    a = draw_split(pairs, 0.2, 0.1, seed=0)
    b = draw_split(pairs, 0.2, 0.1, seed=0)
    c = draw_split(pairs, 0.2, 0.1, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


def test_pairs_sharing_an_entity_stay_together():
    # Pairs 2k and 2k+1 share their target entity.
    pairs = torch.stack([torch.arange(100), torch.arange(100) // 2])
    for seed in range(5):
        masks = draw_split(pairs, 0.2, 0.1, seed=seed)
        for mask in masks:
            assert torch.equal(mask[0::2], mask[1::2])


@pytest.mark.parametrize(("ratio", "valid"), [(0.0, 0.1), (1.0, 0.1), (0.9, 0.1), (0.5, -0.1)])
def test_invalid_ratios(ratio, valid):
    with pytest.raises(ConfigError):
        draw_split(torch.arange(10).repeat(2, 1), ratio, valid)
