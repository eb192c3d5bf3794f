"""``mmea download``: fetch and verify the raw files of one or more registered benchmarks (MMKG and
entity alignment)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from mmea_pyg.data import download as dl
from mmea_pyg.data.files import ea_dir, raw_dir


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


def _print_summary(records: list[dl.FileRecord], directories: list[Path]) -> None:
    rows = [(r.path, _status(r), _format_size(r.size)) for r in records]
    header = ("file", "status", "size")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}".rstrip())
    fetched = sum(r.fetched for r in records)
    present = sum(not r.skipped for r in records)
    where = " and ".join(str(d) for d in directories)
    manifests = ", ".join(str(d / dl.MANIFEST_NAME) for d in directories)
    click.echo(f"\n{present} file(s) in {where} ({fetched} fetched); manifest: {manifests}")


def _print_warnings(records: list[dl.FileRecord], ea_paths: set[str]) -> None:
    differing = [r for r in records if r.differs_from_upstream]
    if not differing:
        return
    upstream = "upstream mmkb" if any(r.path not in ea_paths for r in differing) else "upstream"
    click.secho(
        f"\nWarning: these files differ from {upstream} (reconstructed in this mirror):",
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
    help="Data root; MMKG files land in ROOT/mmkg/, entity-alignment benchmarks in ROOT/ea/NAME/. "
    "[default: $MMEA_DATA or ./datasets]",
)
@click.option(
    "--mirror",
    default=None,
    metavar="DIR_OR_URL",
    help="Mirror: a folder, file:// URL or http(s):// base URL; the mmkb layout for MMKG files, "
    "<layout>/<DIR>/ (e.g. jape/SRPRS_EN_DE_15K_V1/) for entity-alignment benchmarks. "
    "[default: $MMEA_MIRROR for MMKG, $MMEA_EA_MIRROR for the others; '' or unset: upstream]",
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
    """Download and verify the files of DATASET: the MMKG benchmarks fb15k-db15k, fb15k-yago15k, and the
    entity-alignment benchmarks dbp15k-zh-en, dbp15k-ja-en, dbp15k-fr-en, srprs-en-de, srprs-en-fr,
    openea-d-y-15k-v1.

    Files are checked against the mirror's SHA256SUMS or the upstream git blob ids (files with neither are
    recorded as unverified) and recorded in ROOT/mmkg/MANIFEST.json or ROOT/ea/MANIFEST.json; running the
    command again only re-verifies them.
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
    from mmea_pyg.data import registry

    keys = {n.strip().lower() for n in names}
    ea_paths = {f.path for k in keys & set(registry.EA_DATASETS) for f in registry.EA_DATASETS[k].files()}
    directories = [raw_dir(root)] if keys & set(registry.DATASETS) else []
    directories += [ea_dir(root)] if ea_paths else []
    if not quiet:
        click.echo()
        _print_summary(records, directories)
    _print_warnings(records, ea_paths)


COMMANDS = (download,)
