"""A small synthetic alignment problem with the same ``HeteroData`` layout as the MMKG benchmarks.

Useful to try a model in seconds and for the end-to-end tests: the target KG is a relabelled, noisy
copy of the source KG, so the correct alignment is known and learnable from structure, attributes
and images alike.
"""

from __future__ import annotations

import torch
from torch_geometric.data import HeteroData

from mmea_pyg.data.splits import draw_split


def toy_alignment(
    num_entities: int = 300,
    num_relations: int = 6,
    avg_degree: float = 6.0,
    attr_dim: int = 16,
    img_dim: int = 8,
    attr_coverage: float = 0.8,
    img_coverage: float = 0.6,
    edge_keep: float = 0.8,
    noise: float = 0.5,
    train_ratio: float = 0.3,
    seed: int = 0,
) -> HeteroData:
    """Build two KGs over ``num_entities`` shared entities and their alignment.

    Args:
        num_entities: Entities per KG (every entity has a counterpart).
        num_relations: Relation types.
        avg_degree: Mean out-degree of the source KG.
        attr_dim, img_dim: Feature widths (``img_dim = 0``: no image features, masks all False).
        attr_coverage, img_coverage: Fraction of entities that have attributes / an image, per KG.
        edge_keep: Probability that a source triple also exists in the target KG.
        noise: Standard deviation of the per-KG feature noise around the shared entity features.
        train_ratio: Fraction of pairs for training (10% validation, the rest test).
        seed: Seed of everything above.

    Returns:
        A ``HeteroData`` like :class:`~mmea_pyg.data.mmkg.MMKGDataset` builds, with split masks.
    """
    gen = torch.Generator().manual_seed(seed)
    num_edges = int(num_entities * avg_degree)
    head = torch.randint(0, num_entities, (num_edges,), generator=gen)
    tail = torch.randint(0, num_entities, (num_edges,), generator=gen)
    rel = torch.randint(0, num_relations, (num_edges,), generator=gen)
    keep = head != tail
    head, tail, rel = head[keep], tail[keep], rel[keep]
    perm = torch.randperm(num_entities, generator=gen)  # source entity i is target entity perm[i]

    attr_base = torch.randn(num_entities, attr_dim, generator=gen)
    img_base = torch.randn(num_entities, img_dim, generator=gen)
    data = HeteroData()
    for side in ("source", "target"):
        relabel = torch.arange(num_entities) if side == "source" else perm
        inverse = torch.empty_like(relabel)
        inverse[relabel] = torch.arange(num_entities)
        mask_edges = torch.rand(head.numel(), generator=gen) < (1.0 if side == "source" else edge_keep)
        store = data[side]
        store.num_nodes = num_entities
        store.uri = [f"{side}:{int(i)}" for i in range(num_entities)]
        store.name = list(store.uri)
        store.kg_name = side.upper()
        edges = data[side, "relation", side]
        edges.edge_index = torch.stack([relabel[head[mask_edges]], relabel[tail[mask_edges]]])
        edges.edge_type = rel[mask_edges].clone()
        edges.relation_names = [f"r{i}" for i in range(num_relations)]
        attr_mask = torch.rand(num_entities, generator=gen) < attr_coverage
        img_mask = (
            torch.rand(num_entities, generator=gen) < img_coverage
            if img_dim
            else torch.zeros(num_entities, dtype=torch.bool)
        )
        x_attr = (attr_base + noise * torch.randn(attr_base.shape, generator=gen))[inverse]
        x_img = (img_base + noise * torch.randn(img_base.shape, generator=gen))[inverse]
        store.attr_mask, store.img_mask = attr_mask, img_mask
        store.x_attr = x_attr * attr_mask.unsqueeze(-1)
        store.x_img = x_img * img_mask.unsqueeze(-1)
        store.has_image = img_mask.clone()
        store.num_triple_lines = int(mask_edges.sum())
        store.num_attr_triples = int(attr_mask.sum())
        store.num_attr_names = attr_dim
    aligned = data["source", "aligned", "target"]
    aligned.edge_index = torch.stack([torch.arange(num_entities), perm])
    aligned.train_mask, aligned.valid_mask, aligned.test_mask = draw_split(
        aligned.edge_index, train_ratio, 0.1, seed
    )
    data.dataset_name = "toy"
    return data
