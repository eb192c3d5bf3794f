"""How many pseudo seeds each rule proposes from a checkpoint, and how many of them are right.

    python benchmarks/pseudo_seeds_probe.py CHECKPOINT [--taus 0.025 0.05] [--thresholds 0.5]

From a CLAMEA, RICEA or MIMEA checkpoint, proposes pseudo seeds among the entities without a training
link, as one round of the iterative strategy does (`training.iterative.propose_pseudo_seeds`, first
pass only): mutual nearest neighbours on cosine, and mutual best candidates after sparse Sinkhorn
(`similarity.sinkhorn_mutual_pairs`) at each temperature (the temperature of h^M's cosine as given,
not divided by the number of blocks) and probability threshold. Each rule's pairs are judged against
the validation links only (`--split`): of the proposed pairs whose source has a validation link, the
share that pair it with its counterpart. Prints pairs, judged pairs and that precision.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from run_bench import load_run

from mmea_pyg.pipeline import pairs_of
from mmea_pyg.similarity import mutual_nearest_neighbours, sinkhorn_mutual_pairs
from mmea_pyg.training.iterative import unaligned_candidates


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.025, 0.05])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--top-k", type=int, default=50)
    args = parser.parse_args()

    model, _, data = load_run(args.checkpoint)
    gold = pairs_of(data, args.split)
    truth = dict(zip(gold[0].tolist(), gold[1].tolist(), strict=True))
    src, tgt = unaligned_candidates(data, pairs_of(data, "train"))
    src_emb = F.normalize(model.embed(data, "source", src), dim=-1)
    tgt_emb = F.normalize(model.embed(data, "target", tgt), dim=-1)
    print(
        f"{args.checkpoint}: {src.numel():,} x {tgt.numel():,} unaligned entities, h^M of "
        f"{model.num_blocks} block(s); judged against {gold.size(1):,} {args.split} links"
    )

    def report(name: str, local: torch.Tensor) -> None:
        pairs = zip(src[local[0]].tolist(), tgt[local[1]].tolist(), strict=True)
        judged = [truth[s] == t for s, t in pairs if s in truth]
        share = sum(judged) / max(len(judged), 1)
        print(f"  {name:<38} pairs {local.size(1):>7,}  judged {len(judged):>6,}  right {share:.4f}")

    rows = (torch.arange(src.numel()), torch.arange(tgt.numel()))
    report("mutual nearest neighbours", mutual_nearest_neighbours(src_emb, tgt_emb, *rows))
    for tau in args.taus:
        for threshold in args.thresholds:
            local = sinkhorn_mutual_pairs(src_emb, tgt_emb, threshold, k=args.top_k, tau=tau)
            report(f"Sinkhorn tau {tau:g}, probability > {threshold:g}", local)


if __name__ == "__main__":
    main()
