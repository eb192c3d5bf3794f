"""``mmea train``: train an alignment model on a benchmark split (:func:`mmea_pyg.pipeline.train`)."""

from __future__ import annotations

from pathlib import Path

import click
from mmea_pyg.cli.options import (
    check_latest_writable,
    config_option,
    epochs_option,
    mirror_option,
    model_option,
    quiet_option,
    root_option,
    set_option,
)

from mmea_pyg.config import ABLATIONS, Config
from mmea_pyg.data.registry import DATASETS


@click.command("train")
@click.option(
    "--dataset",
    default=None,
    metavar="NAME_OR_FOLDER",
    help="A registered dataset ("
    + ", ".join(sorted(DATASETS))
    + ", dbp15k-*, srprs-*, openea-d-y-15k-v1) or a "
    "folder in a supported layout (--set data.format=...; default: fb15k-db15k).",
)
@click.option(
    "--ratio",
    type=float,
    default=None,
    help="Split ratio: the training share for MMKG benchmarks (default 0.2), the known share for graph "
    "pairs (default 0.3).",
)
@model_option
@config_option
@set_option
@click.option(
    "--ablation",
    "ablations",
    multiple=True,
    metavar="NAME",
    help="Table 2 ablation switch, repeatable: " + ", ".join(ABLATIONS),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder (default: runs/<dataset>_<model>_r<ratio>_s<seed>[_ablations]).",
)
@epochs_option
@click.option(
    "--seed", type=int, default=None, help="Shortcut for --set train.seed=N (also seeds the split)."
)
@click.option("--device", default=None, help="auto (CUDA when present), cpu or cuda[:N].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option(
    "--propagation",
    is_flag=True,
    help="Also evaluate the '+ propagation' add-on (LightEA's seed labels appended; not part of the model).",
)
@quiet_option
@root_option
@mirror_option
def train(
    dataset,
    ratio,
    model,
    config_file,
    sets,
    ablations,
    out,
    epochs,
    seed,
    device,
    resume,
    propagation,
    quiet,
    root,
    mirror,
):
    """Train a model, select it on validation MRR, evaluate it on test; everything goes to the run
    folder (config.yaml, metrics.jsonl, best.pt, last.pt, result.json)."""
    from mmea_pyg import pipeline

    config = pipeline.make_config(
        model,
        dataset,
        config_file,
        sets,
        ablations,
        out,
        ratio=ratio,
        epochs=epochs,
        seed=seed,
        device=device,
        root=root,
        mirror=mirror,
    )
    if resume and (Path(config.out) / "config.yaml").exists():
        config = Config.load(Path(config.out) / "config.yaml")
    check_latest_writable()
    result = pipeline.train(
        config,
        resume=resume,
        progress=not quiet,
        propagation=propagation,
        command=pipeline.command_line(),
        echo=lambda line: click.echo(line, err=True),
    )
    pipeline.mark_latest(config.out)
    valid = result.metrics("valid")
    click.echo(
        f"best validation MRR {valid['mrr']:.4f} at epoch {result.best_epoch}; checkpoint "
        f"{result.checkpoints['best']}; result {Path(config.out) / pipeline.RESULT_NAME}",
        err=True,
    )
    click.echo(result.summary(), err=True)


COMMANDS = (train,)
