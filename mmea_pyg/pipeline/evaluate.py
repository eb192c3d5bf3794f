r"""Evaluation of a trained model: :func:`evaluate_model` (one split, the model's own embedding or
the "+ propagation" add-on, named as such), :func:`diagnostics` (the report's histograms) and
:func:`evaluate_checkpoint` (``mmea eval``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.config import Config
from mmea_pyg.data.base import SIDES
from mmea_pyg.data.splits import pairs_of
from mmea_pyg.distributed import current_sharding
from mmea_pyg.errors import ConfigError, MMEAError
from mmea_pyg.evaluation import evaluate_model_embedding
from mmea_pyg.io import resolve_device
from mmea_pyg.pipeline.inputs import load_dataset
from mmea_pyg.results import MODEL, PROPAGATION, CheckpointEvaluation, Evaluation

__all__ = ["check_propagation", "diagnostics", "entity_modalities", "evaluate_checkpoint", "evaluate_model"]


def check_propagation(config: Config, where: str) -> None:
    e = config.eval
    if (
        e.propagation_weight <= 0
        or e.propagation_rounds < 0
        or min(e.propagation_dim, e.propagation_hops) < 1
    ):
        raise ConfigError(
            f"{where}: eval.propagation_weight must be > 0, eval.propagation_rounds >= 0 and "
            "eval.propagation_dim/hops >= 1"
        )


def evaluate_model(
    model,
    data: HeteroData,
    config: Config,
    split: str = "test",
    *,
    csls: bool = True,
    propagation: bool = False,
    pseudo_pairs: Tensor | None = None,
    progress: bool = False,
) -> Evaluation:
    """Rank ``split``'s pairs with ``model``'s embedding (or, with ``propagation``, the embedding with
    LightEA's seed labels appended; seeds: the training pairs and ``pseudo_pairs``)."""
    started = time.perf_counter()
    pairs = pairs_of(data, split)
    if pairs.numel() == 0:
        raise MMEAError(f"the {split} split has no links to evaluate; evaluate another split")
    chunk = config.eval.chunk_size
    name = getattr(model, "embedding_name", MODEL)
    model.eval()
    if propagation:
        from mmea_pyg.addons.propagation import LightEAPropagation

        check_propagation(config, "config")
        e = config.eval
        model = LightEAPropagation(
            model,
            data,
            pairs_of(data, "train"),
            pseudo_pairs,
            code_dim=e.propagation_dim,
            hops=e.propagation_hops,
            weight=e.propagation_weight,
            rounds=e.propagation_rounds,
            chunk_size=chunk,
        ).eval()
    csls_k = config.eval.csls_k if csls else 0
    desc = f"eval {split}" + (" + propagation" if propagation else "")
    metrics = evaluate_model_embedding(
        model,
        data,
        pairs,
        ks=tuple(config.eval.ks),
        csls_k=csls_k,
        chunk_size=chunk,
        progress=progress,
        desc=desc,
        sharding=current_sharding(),  # under torchrun every rank ranks its block of the queries
    )
    return Evaluation(
        split=split,
        embedding=PROPAGATION if propagation else name,
        pairs=int(pairs.size(1)),
        metrics=metrics,
        csls_k=csls_k,
        seconds=round(time.perf_counter() - started, 2),
        ranked_among=int(torch.unique(pairs[1]).numel()),
    )


def _histogram(values: Tensor, low: float, high: float, bins: int = 40) -> dict[str, Any]:
    values = values.detach().float().cpu()
    counts = torch.histc(values.clamp(low, high), bins=bins, min=low, max=high)
    return {
        "low": low,
        "high": high,
        "counts": [int(c) for c in counts.tolist()],
        "n": int(values.numel()),
        "mean": round(float(values.mean()), 6) if values.numel() else None,
    }


def entity_modalities(data: HeteroData, side: str) -> list[str]:
    """A label per entity of ``side`` naming the modalities it has (``"r+a"``, ``"a"``, ``"none"``):
    ``r`` at least one relation triple, ``a`` attribute features, ``v`` image features."""
    store = data[side]
    num = store.num_nodes
    edges = data[side, "relation", side].edge_index
    degree = torch.zeros(num, dtype=torch.long)
    if edges.numel():
        degree += torch.bincount(edges.reshape(-1).cpu(), minlength=num)
    has = {
        "r": degree > 0,
        "a": store.attr_mask.cpu() if "attr_mask" in store else torch.zeros(num, dtype=torch.bool),
        "v": store.img_mask.cpu() if "img_mask" in store else torch.zeros(num, dtype=torch.bool),
    }
    return ["+".join(m for m in ("r", "a", "v") if bool(has[m][i])) or "none" for i in range(num)]


@torch.no_grad()
def diagnostics(
    model, data: HeteroData, config: Config, split: str = "test", seed: int = 0
) -> dict[str, Any]:
    """Histograms for the report: cosine scores of the matches of ``split``, of a random non-match
    and of the hardest non-match per source entity; and the model's per-entity modality weights
    (:meth:`~mmea_pyg.models.base.AlignmentModel.modality_weights`) per group of entities with the
    same modalities."""
    model.eval()
    pairs = pairs_of(data, split)
    chunk = config.eval.chunk_size
    src = F.normalize(model.embed(data, "source", pairs[0], chunk), dim=-1)
    tgt = F.normalize(model.embed(data, "target", pairs[1], chunk), dim=-1)
    count = pairs.size(1)
    match = (src * tgt).sum(-1)
    generator = torch.Generator().manual_seed(seed)
    other = (torch.arange(count) + torch.randint(1, max(count, 2), (count,), generator=generator)) % count
    random_non = (src * tgt[other.to(tgt.device)]).sum(-1)
    hardest = torch.empty(count, device=src.device)
    for start in range(0, count, chunk):
        block = src[start : start + chunk] @ tgt.T
        rows = torch.arange(block.size(0), device=block.device)
        block[rows, rows + start] = -2.0  # the row's own match is no non-match
        hardest[start : start + chunk] = block.max(dim=1).values
    scores = {
        "match": _histogram(match, -1.0, 1.0),
        "random non-match": _histogram(random_non, -1.0, 1.0),
        "hardest non-match": _histogram(hardest, -1.0, 1.0),
    }
    weights: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        groups = entity_modalities(data, side)
        for label, values in model.modality_weights(data, side, chunk_size=chunk).items():
            values = values.cpu()
            per_group = weights.setdefault(label, {})
            for group in sorted(set(groups)):
                mask = torch.tensor([g == group for g in groups])
                per_group.setdefault(group, []).append(values[mask])
    modality_weights = {
        label: {group: _histogram(torch.cat(parts), 0.0, 1.0) for group, parts in groups.items()}
        for label, groups in weights.items()
    }
    return {"split": split, "scores": scores, "modality_weights": modality_weights}


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    split: str = "test",
    *,
    csls: bool = True,
    propagation: bool = False,
    device: str = "auto",
    root: str | os.PathLike | None = None,
    data: HeteroData | None = None,
    progress: bool = True,
) -> CheckpointEvaluation:
    """Evaluate a checkpoint on its own dataset and split (rebuilt from the config it carries)."""
    from mmea_pyg.training.checkpoint import load_checkpoint, load_model

    path = Path(checkpoint)
    saved = load_checkpoint(path)
    config = Config.from_dict(saved["config"], source=str(path))
    if propagation:
        check_propagation(config, f"{path}")
    if data is None:
        data = load_dataset(config, progress=False, root=root)
    model, config, _ = load_model(path, data, device, checkpoint=saved)
    dev = resolve_device(device)
    data = data.to(dev)
    pseudo = saved.get("pseudo_pairs")
    evaluation = evaluate_model(
        model,
        data,
        config,
        split,
        csls=csls,
        propagation=propagation,
        pseudo_pairs=None if pseudo is None else pseudo.to(dev),
        progress=progress,
    )
    return CheckpointEvaluation(
        checkpoint=str(path),
        dataset=config.data.dataset,
        ratio=config.data.ratio,
        seed=config.train.seed,
        epoch=int(saved["epoch"]),
        evaluation=evaluation,
        config=config.to_dict(),
    )
