"""LightEA in the library (mmea_pyg.models.lightea) under LightEA's own protocol, to check it against
the figures of LightEA's public code (../shared/docs/PEERS.md).

    python benchmarks/lightea_protocol.py ../shared/ea/jape/SRPRS_EN_DE_15K_V1 --split redraw
    python benchmarks/lightea_protocol.py fb15k-db15k --split ours --rel-dim 341

--split redraw: the notebook's load_aligned_pair: ref_ent_ids + sup_ent_ids in file order (JAPE layout),
shuffled by numpy with seed 12306, the first 30% training, the rest test.
--split ours: the dataset's training links as training and its test links as test (validation unused),
as PEERS.md ran LightEA's code on the MMKG benchmarks and ContEA.

Writes results/lightea_protocol/<tag>.json with the per-round figures, CPU seconds, wall time, peak
RSS, the machine and the command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mmea_pyg.config import LightEAConfig
from mmea_pyg.data import open_dataset
from mmea_pyg.io import atomic_write_json
from mmea_pyg.models.lightea import lightea_protocol
from mmea_pyg.pipeline import machine_info, peak_memory

REPO = Path(__file__).resolve().parent.parent


def _jape_ids(folder: Path, name: str) -> dict[int, str]:
    out = {}
    for line in (folder / name).read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, uri = line.rstrip("\r").split("\t", 1)
            out[int(key)] = uri
    return out


def redrawn_split(
    folder: Path, data, ratio: float = 0.3, seed: int = 12306
) -> tuple[torch.Tensor, torch.Tensor]:
    """LightEA's ``load_aligned_pair`` on a JAPE folder, mapped to the dataset's entity indices."""
    lines = []
    for name in ("ref_ent_ids", "sup_ent_ids"):
        if (folder / name).exists():
            lines += [
                line for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()
            ]
    aligned = np.array([[int(x) for x in line.rstrip("\r").split("\t")] for line in lines], dtype=np.int64)
    np.random.seed(seed)
    np.random.shuffle(aligned)
    ids1, ids2 = _jape_ids(folder, "ent_ids_1"), _jape_ids(folder, "ent_ids_2")
    index1 = {uri: i for i, uri in enumerate(data["source"].uri)}
    index2 = {uri: i for i, uri in enumerate(data["target"].uri)}
    pairs = torch.tensor([[index1[ids1[a]], index2[ids2[b]]] for a, b in aligned.tolist()]).t()
    cut = int(len(aligned) * ratio)
    return pairs[:, :cut], pairs[:, cut:]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", help="a registered dataset name or a folder")
    parser.add_argument("--split", choices=("redraw", "ours"), default="ours")
    parser.add_argument("--rel-dim", type=int, default=0, help="0: ent_dim // 2 (cross-lingual)")
    parser.add_argument("--snapshot", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default=None)
    args = parser.parse_args()

    wall, cpu = time.perf_counter(), time.process_time()
    dataset = open_dataset(args.dataset, snapshot=args.snapshot, log=False)
    data = dataset[0]
    aligned = data["source", "aligned", "target"]
    if args.split == "redraw":
        train, test = redrawn_split(Path(args.dataset), data)
    else:
        train, test = aligned.edge_index[:, aligned.train_mask], aligned.edge_index[:, aligned.test_mask]
    config = LightEAConfig(rel_dim=args.rel_dim)
    rounds = lightea_protocol(
        data, train, test, config, seed=args.seed, echo=lambda line: print(line, flush=True)
    )
    record = {
        "dataset": args.dataset,
        "snapshot": args.snapshot,
        "split": args.split,
        "train_links": int(train.size(1)),
        "test_links": int(test.size(1)),
        "lightea": config.__dict__,
        "rounds": rounds,
        "final": rounds[-1],
        "cpu_s": round(time.process_time() - cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "peak_memory": peak_memory(),
        "machine": machine_info(),
        "torch_threads": torch.get_num_threads(),
        "command": "python " + " ".join(sys.argv),
    }
    tag = args.tag or Path(str(args.dataset)).name.lower() + f"_{args.split}"
    out = REPO / "results" / "lightea_protocol" / f"{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, record)
    print(
        f"{tag}: final {rounds[-1]}  cpu {record['cpu_s']} s  wall {record['wall_s']} s  peak {record['peak_memory']['rss_gib']} GiB"
    )


if __name__ == "__main__":
    main()
