"""``mmea eval``: evaluate the best checkpoint of a run (:func:`mmea_pyg.pipeline.evaluate_checkpoint`)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from mmea_pyg.cli.options import quiet_option


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
@quiet_option
def evaluate_command(metric, checkpoint, split, csls, propagation, as_json, device, root, quiet):
    """Rank each test source entity among all test target entities (and the reverse)."""
    from mmea_pyg import pipeline
    from mmea_pyg.evaluation import parse_metric, select_metric
    from mmea_pyg.io import check_writable_dir

    parse_metric(metric)  # fail fast on a bad name
    path = Path(checkpoint) if checkpoint else pipeline.latest_run() / "best.pt"
    if path.is_file():  # eval_<split>.json goes beside it; a missing file is reported by the evaluation
        check_writable_dir(
            path.parent, "checkpoint folder (where eval_<split>.json goes)", "copy the run elsewhere"
        )
    result = pipeline.evaluate_checkpoint(
        path, split, csls=csls, propagation=propagation, device=device, root=root, progress=not quiet
    )
    result.save()
    record = result.to_dict()
    record["metrics"] = select_metric(record["metrics"], metric)
    if as_json:
        click.echo(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2))
    else:
        click.echo(
            f"{record['dataset']} ({split}, {record['pairs']:,} pairs, ratio {record['ratio']:g}, "
            f"epoch {record['epoch']}, {record['embedding']})"
        )
        for key, value in record["metrics"].items():
            click.echo(f"  {key:<18} {value:.4f}")


COMMANDS = (evaluate_command,)
