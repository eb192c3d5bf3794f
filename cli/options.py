"""Options shared by several ``mmea`` commands."""

from __future__ import annotations

import math
from pathlib import Path

import click

from mmea_pyg.data.registry import DATASETS, EA_DATASETS, registered_names


class FiniteFloat(click.FloatRange):
    """A float that must be finite (``nan`` and ``inf`` are usage errors), within ``min``/``max`` where
    given: click's :class:`~click.FloatRange` lets ``nan`` through, as every comparison with it is false."""

    name = "finite float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a plain number such as 0.5", param, ctx)
        return number


class Count(click.IntRange):
    """An integer of at least ``min`` (``--top-k``, ``--epochs``, ``--sinkhorn``)."""

    name = "integer"


#: A count that must be at least 1 (``--top-k``, ``--epochs``).
POSITIVE_INT = Count(min=1)


def _dataset_name_or_folder(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A registered name (lower-cased) or an existing folder; anything else is a usage error (exit 2)
    listing the registered names and the layouts a folder may have."""
    del ctx, param
    key = value.strip().lower()
    if key in DATASETS or key in EA_DATASETS:
        return key
    if Path(value).expanduser().is_dir():
        return value
    from mmea_pyg.data.formats import layout_help

    raise click.BadParameter(
        f"{value!r} is neither a registered dataset nor a folder; registered: {', '.join(registered_names())}; "
        f"a folder may hold one of these layouts: {layout_help()}"
    )


#: ``NAME``: a registered dataset (MMKG or entity alignment) or a folder with a graph pair.
dataset_argument = click.argument("name", metavar="NAME_OR_FOLDER", callback=_dataset_name_or_folder)
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


def _quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``--quiet`` also hides the progress bars of the text encoder's libraries (transformers)."""
    del ctx, param
    if value:
        from mmea_pyg.data.features.text import hide_progress_bars

        hide_progress_bars()
    return value


quiet_option = click.option(
    "--quiet", is_flag=True, callback=_quiet, help="No progress bars (the text encoder's included)."
)
epochs_option = click.option(
    "--epochs", type=POSITIVE_INT, default=None, help="Shortcut for --set train.epochs=N (N >= 1)."
)
model_option = click.option(
    "--model", default=None, help="Model name: clamea (default), ricea, mimea or lightea (no training)."
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config (sections data, model, train, eval) or preset name (clamea, ricea, mimea, paper); "
    "default: the model's validated preset. Options below override it.",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config value, e.g. --set train.epochs=50 --set model.structure=gat.",
)


def check_latest_writable() -> None:
    """Before a run starts: ``runs/LATEST`` (the latest-run pointer of ``mmea eval`` / ``mmea report``,
    written when the run ends) can be written in the working directory."""
    from mmea_pyg.io import check_writable_dir
    from mmea_pyg.pipeline import LATEST

    check_writable_dir(
        LATEST.parent, "folder of the latest-run pointer", "run mmea from a writable working directory"
    )
