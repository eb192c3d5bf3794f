"""``mmea train``: train an alignment model on a benchmark split."""

from __future__ import annotations

from pathlib import Path

import click
from mmea_pyg.cli.options import mirror_option, root_option

from mmea_pyg.config import ABLATIONS, Config, ablation_slug
from mmea_pyg.data.registry import DATASETS

RUNS = Path("runs")
LATEST = RUNS / "LATEST"


def default_out(config: Config) -> str:
    ablations = ablation_slug(sorted(config.ablations))
    return str(
        RUNS
        / f"{config.data.dataset}_{config.model.name}_r{config.data.ratio:g}_s{config.train.seed}{ablations}"
    )


def build_config(
    config_file, dataset, ratio, model, ablations, sets, out, epochs, seed, device, root, mirror
) -> Config:
    """The run config: the model's validated preset (or the ``--config`` file or preset) < explicit
    options < ``--set`` assignments."""
    config = Config.load(config_file) if config_file else Config.recommended(model or Config().model.name)
    explicit = []
    for key, value in (
        ("data.dataset", dataset),
        ("data.ratio", ratio),
        ("model.name", model),
        ("train.epochs", epochs),
        ("train.seed", seed),
        ("train.device", device),
        ("data.root", root),
        ("data.mirror", mirror),
    ):
        if value is not None:
            explicit.append(f"{key}={value}")
    if ablations:
        explicit.append("model.ablations=[" + ", ".join(repr(a) for a in ablations) + "]")
    config = config.override(explicit + list(sets))
    config.model.ablations = sorted(config.ablations)  # canonical Table 2 names (validated)
    config.out = out or (config.out if config_file and config.out != Config().out else default_out(config))
    return config


@click.command("train")
@click.option(
    "--dataset",
    type=click.Choice(sorted(DATASETS), case_sensitive=False),
    default=None,
    help="Benchmark (default: fb15k-db15k).",
)
@click.option("--ratio", type=float, default=None, help="Fraction of seed pairs for training (default 0.2).")
@click.option("--model", default=None, help="Model name: clamea (default), ricea or mimea.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config (sections data, model, train, eval) or preset name (clamea, ricea, mimea, paper); "
    "default: the model's validated preset. Options below override it.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config value, e.g. --set train.epochs=50 --set model.structure=gat.",
)
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
@click.option("--epochs", type=int, default=None, help="Shortcut for --set train.epochs=N.")
@click.option(
    "--seed", type=int, default=None, help="Shortcut for --set train.seed=N (also seeds the split)."
)
@click.option("--device", default=None, help="auto (CUDA when present), cpu or cuda[:N].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar (JSON lines are still printed).")
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
    quiet,
    root,
    mirror,
):
    """Train a model; checkpoints, config and metrics go to the run folder."""
    from mmea_pyg.data.dataset import MMKGDataset
    from mmea_pyg.training.trainer import Trainer

    config = build_config(
        config_file, dataset, ratio, model, ablations, sets, out, epochs, seed, device, root, mirror
    )
    if resume:
        saved = Path(config.out) / "config.yaml"
        if saved.exists():
            config = Config.load(saved)
    data_cfg = config.data
    ds = MMKGDataset(
        data_cfg.root,
        name=data_cfg.dataset,
        split_ratio=data_cfg.ratio,
        split_seed=config.split_seed,
        valid_ratio=data_cfg.valid_ratio,
        text_model=data_cfg.text_model,
        mirror=data_cfg.mirror,
        log=not quiet,
    )
    trainer = Trainer(config, ds[0], progress=not quiet)
    click.echo(f"run folder: {config.out}  model: {trainer.model}  device: {trainer.device}", err=True)
    kept = getattr(trainer.model, "kept", None)
    if kept is not None:
        missing = [m for m in ("v", "r", "a") if m not in kept]
        click.echo(
            f"modalities: {', '.join(kept)}"
            + (f" (not used: {', '.join(missing)}: ablated or absent from the data)" if missing else ""),
            err=True,
        )
    if resume:
        trainer.resume()
    state = trainer.fit()
    RUNS.mkdir(exist_ok=True)
    tmp = LATEST.with_suffix(".tmp")
    tmp.write_text(str(Path(config.out).resolve()) + "\n")
    tmp.replace(LATEST)
    click.echo(
        f"best validation MRR {state.best_valid_mrr:.4f} at epoch {state.best_epoch}; "
        f"checkpoint {Path(config.out) / 'best.pt'}",
        err=True,
    )


COMMANDS = (train,)
