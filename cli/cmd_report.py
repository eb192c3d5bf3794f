"""``mmea report RUN_DIR``: plots and a Markdown page of a run (:meth:`mmea_pyg.pipeline.RunResult.report`)."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of the plots and report.md (default: RUN_DIR/report).",
)
def report(run_dir, out):
    """Write PNG plots (losses, validation, pseudo seeds, modality weights, match scores) and
    report.md for RUN_DIR (default: the latest `mmea train` run). Needs matplotlib."""
    from mmea_pyg import pipeline

    result = pipeline.RunResult.load(run_dir or pipeline.latest_run())
    for path in result.report(out):
        click.echo(str(path))


COMMANDS = (report,)
