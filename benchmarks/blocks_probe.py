"""Block by block: how well does each part of a checkpoint's embedding align on its own?

    python benchmarks/blocks_probe.py CHECKPOINT [--split test|valid]

For a CLAMEA, RICEA or MIMEA checkpoint, ranks the split's pairs (each source among the split's
distinct targets, as `mmea eval` ranks) with, each alone and L2-normalised: the model's final embedding
h^M; each modality block the model outputs (CLAMEA's ĥ^r, ĥ^a after its stack); each output of the
knowledge encoder (the relational encoder's h^r, the attribute projection's h^a) that every later
module reads; and the concatenation of those encoder outputs. A block that ranks lower after the
stack than at the encoder's output is one the stack loses information from. Prints Hits@1 and MRR.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from run_bench import load_run

from mmea_pyg.evaluation import evaluate_embedder
from mmea_pyg.pipeline import pairs_of


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    args = parser.parse_args()

    model, _, data = load_run(args.checkpoint)
    pairs = pairs_of(data, args.split)
    kept = model.kept

    def stack(side, index, key):  # an output of the model's encode (h^M or a modality block)
        return F.normalize(model.encode(data, side, index, model.structure(data, side))[key], dim=-1)

    def encoder(side, index, keys):  # the knowledge encoder's outputs, each normalised, concatenated
        h, _ = model.knowledge(data, side, index, model.structure(data, side))
        return torch.cat([F.normalize(h[m], dim=-1) for m in keys], dim=-1)

    rows = [("h^M (the model's embedding)", lambda s, i: stack(s, i, "M"))]
    rows += [(f"{m} block after the stack", lambda s, i, m=m: stack(s, i, m)) for m in kept]
    rows += [(f"{m} at the knowledge encoder's output", lambda s, i, m=m: encoder(s, i, (m,))) for m in kept]
    if len(kept) > 1:
        rows.append(
            (f"{' + '.join(kept)} at the encoder's output, concatenated", lambda s, i: encoder(s, i, kept))
        )
    print(f"{args.checkpoint}: {pairs.size(1):,} {args.split} pairs")
    for name, embed in rows:
        metrics = evaluate_embedder(embed, pairs)
        print(f"  {name:<55} Hits@1 {metrics['hits@1']:.4f}  MRR {metrics['mrr']:.4f}")


if __name__ == "__main__":
    main()
