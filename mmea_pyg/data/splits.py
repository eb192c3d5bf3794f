"""Seeded train / validation / test splits of the seed (sameAs) pairs: the one place that draws a split
(:func:`draw_split`, :func:`draw_split_by_count`, :func:`split_known_pairs`) and reads one
(:func:`pairs_of`).

The protocol of the MMEA literature: a fraction ``train_ratio`` (0.2, 0.5 or 0.8) of all pairs trains,
``valid_ratio`` (10% of all pairs) selects the checkpoint, the rest is the test set.

Pairs that share an entity (in FB15K-DB15K four DBpedia entities are each linked to two Freebase MIDs)
are kept in the same part, so that no test entity is also a training seed.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.errors import ConfigError

#: The parts of a split, each a boolean mask ``<split>_mask`` over the aligned pairs.
SPLITS = ("train", "valid", "test")


def _groups(pairs: Tensor) -> Tensor:
    """Connected-component id of every pair in the bipartite graph of the pairs. ``pairs``: [2, P]."""
    num_pairs = pairs.size(1)
    parent = list(range(num_pairs))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_entity: dict[tuple[int, int], int] = {}
    for i, (src, tgt) in enumerate(pairs.t().tolist()):
        for key in ((0, src), (1, tgt)):
            j = first_by_entity.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    return torch.tensor([find(i) for i in range(num_pairs)], dtype=torch.long)


def unpaired_entities(num_src: int, num_tgt: int, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Source and target entities in no pair of ``pairs`` :math:`(2, K)`: index tensors
    :math:`(n_1,)`, :math:`(n_2,)` (sorted, on the CPU)."""
    src = torch.ones(num_src, dtype=torch.bool)
    tgt = torch.ones(num_tgt, dtype=torch.bool)
    src[pairs[0].cpu()] = False
    tgt[pairs[1].cpu()] = False
    return src.nonzero().view(-1), tgt.nonzero().view(-1)


def draw_split(
    pairs: Tensor,
    train_ratio: float = 0.2,
    valid_ratio: float = 0.1,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Split seed pairs into boolean train / valid / test masks.

    Args:
        pairs: Seed pairs ``[2, P]`` (source index, target index).
        train_ratio: Fraction of all pairs used for training, in ``(0, 1)``.
        valid_ratio: Fraction of all pairs used for validation; ``train_ratio + valid_ratio < 1``.
        seed: Seed of the permutation; the same seed always gives the same split.

    Returns:
        ``(train_mask, valid_mask, test_mask)``, each a ``[P]`` bool tensor; every pair is in exactly one.
    """
    if not 0.0 < train_ratio < 1.0:
        raise ConfigError(
            f"train ratio must be in (0, 1), got {train_ratio}; the benchmarks use 0.2, 0.5 or 0.8"
        )
    if not 0.0 <= valid_ratio < 1.0 or train_ratio + valid_ratio >= 1.0:
        raise ConfigError(
            f"train ratio {train_ratio} + validation ratio {valid_ratio} must stay below 1 to leave a test set"
        )
    num_pairs = pairs.size(1)
    return draw_split_by_count(pairs, round(train_ratio * num_pairs), round(valid_ratio * num_pairs), seed)


def draw_split_by_count(
    pairs: Tensor, num_train: int, num_valid: int, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Split seed pairs into about ``num_train`` training and ``num_valid`` validation pairs, the rest
    test; pairs that share an entity stay in one part (so a part can overshoot its count by the size of
    the last group it takes).

    The connected groups of pairs are walked in a seeded random order and fill train, then valid, then
    test by pair count. :func:`draw_split` is this function with counts rounded from its ratios.

    Args:
        pairs: Seed pairs ``[2, P]`` (source index, target index).
        num_train: Training pairs to draw, ``0 <= num_train <= P``.
        num_valid: Validation pairs to draw, ``num_train + num_valid <= P``.
        seed: Seed of the permutation.

    Returns:
        ``(train_mask, valid_mask, test_mask)``, each a ``[P]`` bool tensor; every pair is in exactly one.
    """
    num_pairs = pairs.size(1)
    groups = _groups(pairs)
    _, groups = torch.unique(groups, return_inverse=True)
    num_groups = int(groups.max()) + 1 if num_pairs else 0
    generator = torch.Generator().manual_seed(seed)
    group_order = torch.randperm(num_groups, generator=generator)
    # Walk the groups in random order and fill train, then valid, then test by pair count.
    sizes = torch.bincount(groups, minlength=num_groups)
    cumulative = torch.cumsum(sizes[group_order], 0)  # pairs used after each group, in walk order
    train_groups = int(torch.searchsorted(cumulative, num_train, right=False)) + 1 if num_train else 0
    valid_end = (
        int(torch.searchsorted(cumulative, num_train + num_valid, right=False)) + 1
        if num_valid
        else train_groups
    )
    train_groups = min(train_groups, num_groups)
    valid_end = min(max(valid_end, train_groups), num_groups)
    part_of_group = torch.full((num_groups,), 2, dtype=torch.long)
    part_of_group[group_order[:train_groups]] = 0
    part_of_group[group_order[train_groups:valid_end]] = 1
    part = part_of_group[groups]
    return part == 0, part == 1, part == 2


def check_known_ratios(known_ratio: float, valid_ratio: float) -> None:
    """Validate the ratios of :func:`split_known_pairs` (one line naming the fix)."""
    if not 0.0 < known_ratio < 1.0:
        raise ConfigError(
            f"split ratio must be in (0, 1), got {known_ratio}; it is the fraction of the links known to the "
            "model (training + validation), 0.3 in the OpenEA/DBP15K convention"
        )
    if not 0.0 <= valid_ratio < known_ratio:
        raise ConfigError(
            f"validation ratio {valid_ratio} must be >= 0 and below the split ratio {known_ratio} (validation "
            "is carved out of the known links; 0.1 of all links with a split ratio of 0.3)"
        )


def split_known_pairs(
    pairs: Tensor, known_ratio: float = 0.3, valid_ratio: float = 0.1, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """The entity-alignment convention (OpenEA, DBP15K): ``known_ratio`` of all pairs are known to the
    model, and of them ``valid_ratio`` *of all pairs* are held out for validation; the rest is the test
    set. ``0.3 / 0.1`` gives 20% train, 10% valid, 70% test (OpenEA's 2:1:7 folds). Test pairs are never
    used for validation. Pairs that share an entity stay in one part.

    Args:
        pairs: Seed pairs ``[2, P]``.
        known_ratio: Fraction of all pairs used for training and validation, in ``(0, 1)``.
        valid_ratio: Fraction of all pairs used for validation, ``0 <= valid_ratio < known_ratio``.
        seed: Seed of the permutation.

    Returns:
        ``(train_mask, valid_mask, test_mask)``, each a ``[P]`` bool tensor.
    """
    check_known_ratios(known_ratio, valid_ratio)
    num_pairs = pairs.size(1)
    num_known = round(known_ratio * num_pairs)
    num_valid = min(round(valid_ratio * num_pairs), num_known)
    return draw_split_by_count(pairs, num_known - num_valid, num_valid, seed)


def pairs_of(data: HeteroData, split: str) -> Tensor:
    """The aligned pairs :math:`(2, P)` of ``split`` (one of :data:`SPLITS`) held by ``data``."""
    if split not in SPLITS:
        raise ConfigError(f"split must be train, valid or test, got {split!r}")
    aligned = data["source", "aligned", "target"]
    return aligned.edge_index[:, aligned[f"{split}_mask"]]


def with_valid_in_train(data: HeteroData) -> HeteroData:
    """A shallow copy of ``data`` whose training links are its training *and* validation links, with an
    empty validation split (the test links are untouched). The graphs and features are shared."""
    out = copy.copy(data)
    aligned = data["source", "aligned", "target"]
    store = out["source", "aligned", "target"]
    store.train_mask = aligned.train_mask | aligned.valid_mask
    store.valid_mask = torch.zeros_like(aligned.valid_mask)
    return out
