"""Options shared by several ``mmea`` commands."""

from __future__ import annotations

import click

from mmea_pyg.data.registry import DATASETS

dataset_argument = click.argument("name", type=click.Choice(sorted(DATASETS), case_sensitive=False))
root_option = click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    envvar="MMEA_DATA",
    help="Data root (default: $MMEA_DATA or ./datasets).",
)
mirror_option = click.option(
    "--mirror",
    default=None,
    envvar="MMEA_MIRROR",
    help="Mirror of the MMKG files: a folder or an http(s) URL in the mniepert/mmkb layout (default: $MMEA_MIRROR).",
)
text_model_option = click.option(
    "--text-model",
    default=None,
    help="Text encoder of the attribute sentences: a local folder or Hugging Face id "
    "(default: the packaged all-MiniLM-L6-v2).",
)
