"""``mmea featurize-images``: image features of a folder of entity images, in the MMKG ``.h5`` format."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click

#: The KGs whose image features the datasets read from ``<root>/mmkg/<KG>/<KG>_ImageData.h5``.
KG_NAMES = ("FB15K", "DB15K", "YAGO15K")


def default_output(kg: str, root: str | os.PathLike | None = None) -> Path:
    """Where the datasets look for a KG's image features: ``<root>/mmkg/<KG>/<KG>_ImageData.h5``.

    Args:
        kg: ``FB15K``, ``DB15K`` or ``YAGO15K`` (any case).
        root: Data root (default: ``$MMEA_DATA`` or ``./datasets``).
    """
    from mmea_pyg.data.files import raw_dir

    kg = kg.upper()
    return raw_dir(root or None) / kg / f"{kg}_ImageData.h5"


@click.command("featurize-images")
@click.argument("image_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output .h5 file (default with --kg: ROOT/mmkg/KG/KG_ImageData.h5).",
)
@click.option(
    "--kg",
    type=click.Choice(KG_NAMES, case_sensitive=False),
    default=None,
    help="Write the features where the datasets read this KG's image features.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="MMEA_DATA",
    help="Data root used with --kg. [default: $MMEA_DATA or ./datasets]",
)
@click.option(
    "--backbone",
    type=click.Choice(["efficientnet-lite0", "resnet50"], case_sensitive=False),
    default="efficientnet-lite0",
    show_default=True,
    help="efficientnet-lite0: packaged weights, offline, 1280-d; resnet50: needs torchvision, 2048-d.",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per batch."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"], case_sensitive=False),
    default="auto",
    show_default=True,
    help="Where the CNN runs.",
)
@click.option("--recursive", is_flag=True, help="Also featurize images in sub-folders of IMAGE_DIR.")
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Local weights file overriding the backbone's default.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def featurize_images(
    image_dir: Path,
    out: Path | None,
    kg: str | None,
    root: Path | None,
    backbone: str,
    batch_size: int,
    device: str,
    recursive: bool,
    weights: Path | None,
    quiet: bool,
) -> None:
    """Compute image features of the images in IMAGE_DIR (key = file stem, e.g. DBIMG00039.jpg ->
    DBIMG00039) and write them in the MMKG .h5 format, readable like the release's VGG16 features.

    Either --out FILE or --kg KG is required.
    """
    if out is None and kg is None:
        raise click.UsageError(
            "give the output file with --out FILE, or --kg FB15K|DB15K|YAGO15K to write it "
            "where the datasets read it (ROOT/mmkg/KG/KG_ImageData.h5)"
        )
    from mmea_pyg.data.features.image import featurize_folder

    output = out if out is not None else default_output(kg or "", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the skipped files are listed below
        summary = featurize_folder(
            image_dir,
            output,
            backbone=backbone.lower(),
            batch_size=batch_size,
            device=device.lower(),
            progress=not quiet,
            recursive=recursive,
            weights_path=weights,
        )
    click.echo(f"images:   {summary['images']:,}")
    click.echo(f"skipped:  {len(summary['skipped']):,}")
    for name, reason in summary["skipped"][:20]:
        click.echo(f"  {name}: {reason}")
    if len(summary["skipped"]) > 20:
        click.echo(f"  ... and {len(summary['skipped']) - 20} more")
    click.echo(f"dim:      {summary['dim']} ({summary['backbone']}, {summary['device']})")
    click.echo(f"output:   {summary['output']}")
    click.echo(f"time:     {summary['seconds']:.1f} s")


COMMANDS = (featurize_images,)
