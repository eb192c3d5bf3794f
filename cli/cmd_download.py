"""``mmea download``: fetch and verify the raw MMKG files of one or more benchmarks."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from mmea_pyg.data import download as dl


class _InfoToStderr(logging.Handler):
    """Echo the downloader's progress messages (below WARNING) to stderr; warnings go in the summary."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            click.echo(self.format(record), err=True)


def _format_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _status(record: dl.FileRecord) -> str:
    if record.skipped:
        return f"skipped ({record.note})" if record.note else "skipped"
    action = "fetched" if record.fetched else "up to date"
    return f"{action}: {record.status}"


def _print_summary(records: list[dl.FileRecord], directory: Path) -> None:
    rows = [(r.path, _status(r), _format_size(r.size)) for r in records]
    header = ("file", "status", "size")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}".rstrip())
    fetched = sum(r.fetched for r in records)
    present = sum(not r.skipped for r in records)
    click.echo(
        f"\n{present} file(s) in {directory} ({fetched} fetched); manifest: {directory / dl.MANIFEST_NAME}"
    )


def _print_warnings(records: list[dl.FileRecord]) -> None:
    differing = [r for r in records if r.differs_from_upstream]
    if not differing:
        return
    click.secho(
        "\nWarning: these files differ from upstream mmkb (reconstructed in this mirror):",
        fg="yellow",
        err=True,
    )
    for record in differing:
        click.secho(
            f"  {record.path}: git blob {record.git_blob}, upstream {record.upstream_git_blob}",
            fg="yellow",
            err=True,
        )
    click.secho(
        "  Statistics computed on them may not match the published benchmark (see the mirror's PROVENANCE.md).",
        fg="yellow",
        err=True,
    )


@click.command("download")
@click.argument("names", nargs=-1, required=True, metavar="DATASET...")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data root; files land in ROOT/mmkg/. [default: $MMEA_DATA or ./datasets]",
)
@click.option(
    "--mirror",
    default=None,
    metavar="DIR_OR_URL",
    help="Mirror with the upstream layout: a folder, file:// URL or http(s):// base URL. "
    "[default: $MMEA_MIRROR; '' or unset: upstream mmkb]",
)
@click.option("--with-images", is_flag=True, help="Also fetch the VGG16 *_ImageData.h5 feature files.")
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries of transient network failures per file.",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress bars, messages or table; only warnings and errors."
)
def download(
    names: tuple[str, ...],
    root: Path | None,
    mirror: str | None,
    with_images: bool,
    retries: int,
    quiet: bool,
) -> None:
    """Download and verify the MMKG files of DATASET (fb15k-db15k, fb15k-yago15k).

    Files are checked against the mirror's SHA256SUMS or the upstream git blob ids and recorded in
    ROOT/mmkg/MANIFEST.json; running the command again only re-verifies them.
    """
    logger = logging.getLogger(dl.__name__)
    handler = _InfoToStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)  # also keeps logging's last-resort handler from printing warnings
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False  # warnings are printed once, in the summary
    try:
        records = dl.download_datasets(
            names, root=root, mirror=mirror, with_images=with_images, retries=retries, progress=not quiet
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    if not quiet:
        click.echo()
        _print_summary(records, dl.raw_dir(root))
    _print_warnings(records)


COMMANDS = (download,)
