"""``mmea eval``: evaluate the best checkpoint of a run on the test (or validation) pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from mmea_pyg.errors import ConfigError, MMEAError


def latest_checkpoint() -> Path:
    from mmea_pyg.cli.cmd_train import LATEST

    if not LATEST.exists():
        raise MMEAError("no run to evaluate: train one first (`mmea train`) or pass --checkpoint FILE")
    return Path(LATEST.read_text().strip()) / "best.pt"


@click.command("eval")
@click.option(
    "--metric", default="all", show_default=True, help="hits@K (e.g. hits@1, hits@10), mrr, mr, or all."
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint to evaluate (default: best.pt of the latest `mmea train` run).",
)
@click.option("--split", type=click.Choice(["test", "valid"]), default="test", show_default=True)
@click.option(
    "--csls", is_flag=True, help="Also report CSLS-rescored metrics (k from the config, default 10)."
)
@click.option(
    "--propagation",
    is_flag=True,
    help="Rank the '+ propagation' embedding: LightEA's propagated seed labels appended to the model's "
    "(an add-on, not part of the model; options eval.propagation_* of the run's config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    envvar="MMEA_DATA",
    help="Data root (default: the run's, else $MMEA_DATA or ./datasets).",
)
def evaluate_command(metric, checkpoint, split, csls, propagation, as_json, device, root):
    """Rank each test source entity among all test target entities (and the reverse)."""
    import torch

    from mmea_pyg.config import Config
    from mmea_pyg.data.dataset import MMKGDataset
    from mmea_pyg.evaluation import evaluate, parse_metric, select_metric
    from mmea_pyg.training.trainer import load_checkpoint, load_model

    parse_metric(metric)  # fail fast on a bad name
    path = Path(checkpoint) if checkpoint else latest_checkpoint()
    saved = load_checkpoint(path)
    config = Config.from_dict(saved["config"])
    d = config.data
    ds = MMKGDataset(
        root or d.root,
        name=d.dataset,
        split_ratio=d.ratio,
        split_seed=config.split_seed,
        valid_ratio=d.valid_ratio,
        text_model=d.text_model,
        mirror=d.mirror,
        log=False,
    )
    data = ds[0]
    model, config, _ = load_model(path, data, device)
    data = data.to(next(model.parameters()).device)
    aligned = data["source", "aligned", "target"]
    pairs = aligned.edge_index[:, aligned.test_mask if split == "test" else aligned.valid_mask]
    chunk = config.eval.chunk_size
    if propagation:
        from mmea_pyg.training.propagation import LightEAPropagation

        e = config.eval
        if (
            e.propagation_weight <= 0
            or e.propagation_rounds < 0
            or min(e.propagation_dim, e.propagation_hops) < 1
        ):
            raise ConfigError(
                f"{path}: eval.propagation_weight must be > 0, eval.propagation_rounds >= 0 and "
                "eval.propagation_dim/hops >= 1; fix the run's config.yaml"
            )
        pseudo = saved.get("pseudo_pairs")
        model = LightEAPropagation(
            model,
            data,
            aligned.edge_index[:, aligned.train_mask],
            None if pseudo is None else pseudo.to(pairs.device),
            code_dim=e.propagation_dim,
            hops=e.propagation_hops,
            weight=e.propagation_weight,
            rounds=e.propagation_rounds,
            chunk_size=chunk,
        )
    with torch.no_grad():
        src = model.embed(data, "source", pairs[0], chunk)
        tgt = model.embed(data, "target", pairs[1], chunk)
    local = torch.arange(pairs.size(1), device=pairs.device).repeat(2, 1)
    results = evaluate(
        src, tgt, local, ks=tuple(config.eval.ks), csls_k=config.eval.csls_k if csls else 0, chunk_size=chunk
    )
    selected = select_metric(results, metric)
    record = {
        "checkpoint": str(path),
        "dataset": d.dataset,
        "split": split,
        "ratio": d.ratio,
        "seed": config.train.seed,
        "epoch": saved["epoch"],
        "embedding": "model + LightEA propagation" if propagation else "model",
        "pairs": int(pairs.size(1)),
        "metrics": selected,
        "config": config.to_dict(),
    }
    out = path.parent / f"eval_{split}{'_propagation' if propagation else ''}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({**record, "metrics": results}, indent=2))
    os.replace(tmp, out)
    if as_json:
        click.echo(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))
    else:
        click.echo(
            f"{d.dataset} ({split}, {record['pairs']:,} pairs, ratio {d.ratio:g}, epoch {record['epoch']}, "
            f"{record['embedding']})"
        )
        for key, value in selected.items():
            click.echo(f"  {key:<18} {value:.4f}")


COMMANDS = (evaluate_command,)
