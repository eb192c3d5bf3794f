"""Which of LightEA's views carries its structure-only figure: a parameter-free probe.

    python benchmarks/lightea_views_probe.py FOLDER [--entity-dims 100 1024] [--product-dims 512 2048]

On an entity-alignment folder (any supported layout), with every known link (training + validation)
as labels and plain cosine (no bootstrapping, no Sinkhorn), prints test Hits@1 (test sources among
the distinct test targets; a tie at the top counts as a hit, so these are upper bounds) of:

* LightEA's features (:func:`mmea_pyg.models.lightea.lightea_features`: its relation view);
* its entity view alone (random codes of each width, propagated, layers concatenated);
* the element-wise product estimate of the relation view that :class:`mmea_pyg.nn.relation_view.RelationView`
  learns, with Gaussian projections of each width: sum over each entity's (head, tail) pairs of
  ``(P r) * (Q x_tail)``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from mmea_pyg.data.splits import pairs_of
from mmea_pyg.models.lightea import LightEAGraph, label_views, lightea_features
from mmea_pyg.pipeline.inputs import load_dataset, make_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder")
    parser.add_argument("--entity-dims", type=int, nargs="+", default=[100, 1024])
    parser.add_argument("--product-dims", type=int, nargs="+", default=[512, 2048])
    args = parser.parse_args()
    data = load_dataset(make_config(dataset=args.folder), progress=False)
    known = torch.cat([pairs_of(data, "train"), pairs_of(data, "valid")], dim=1)
    test = pairs_of(data, "test")
    graph = LightEAGraph.from_data(data)
    seeds = graph.joined(known)
    targets = torch.unique(test[1])
    gold = torch.searchsorted(targets, test[1])

    def hits1(features: torch.Tensor, what: str) -> None:
        query = F.normalize(features[test[0]], dim=-1)
        cand = F.normalize(features[targets + graph.offset], dim=-1)
        hits = 0
        for start in range(0, query.size(0), 2048):
            sim = query[start : start + 2048] @ cand.T
            hits += int(
                (sim.gather(1, gold[start : start + 2048, None]).squeeze(1) >= sim.max(1).values).sum()
            )
        print(f"{what}: test Hits@1 {hits / query.size(0):.4f}", flush=True)

    hits1(lightea_features(graph, seeds), "LightEA's features (relation view, 512 x 16)")
    for dim in args.entity_dims:
        entity = label_views(graph, seeds, ent_dim=dim, generator=torch.Generator().manual_seed(0))[0]
        hits1(entity, f"entity view alone, {dim}-d codes")
    ent, rel = label_views(graph, seeds, ent_dim=1024, generator=torch.Generator().manual_seed(0))
    heads, tails = graph.tuples
    for width in args.product_dims:
        gen = torch.Generator().manual_seed(1)
        p, q = torch.randn(rel.size(1), width, generator=gen), torch.randn(ent.size(1), width, generator=gen)
        weight = graph.tuple_rel @ (rel @ p)  # (pairs, width): each (head, tail) pair's relations
        out = torch.zeros(graph.num_entities, width).index_add_(0, heads, weight * (ent @ q)[tails])
        hits1(out, f"element-wise product estimate of the relation view, D = {width}")


if __name__ == "__main__":
    main()
