"""``mmea info NAME``: statistics of a benchmark as a table and as JSON."""

from __future__ import annotations

import json

import click
from mmea_pyg.cli.options import dataset_argument, mirror_option, root_option, text_model_option

ROWS = [
    ("KG", "kg"),
    ("entities", "entities"),
    ("relations", "relations"),
    ("relation triples (distinct)", "triples"),
    ("relation triple lines", "triple_lines"),
    ("attribute triples", "attribute_triples"),
    ("attribute names", "attribute_names"),
    ("entities with attributes", "entities_with_attributes"),
    ("entities with an image (index)", "entities_with_image"),
    ("entities with image features", "entities_with_image_features"),
    ("attribute feature dim", "attribute_dim"),
    ("image feature dim", "image_dim"),
]


def format_table(stats: dict) -> str:
    """Render :meth:`MMKGDataset.statistics` as an aligned text table."""
    lines = [f"{stats['dataset']}", ""]
    width = max(len(label) for label, _ in ROWS)
    lines.append(f"{'':{width}}  {'source':>12}  {'target':>12}")
    for label, key in ROWS:
        src, tgt = stats["source"][key], stats["target"][key]
        fmt = (lambda v: f"{v:>12,}") if isinstance(src, int) else (lambda v: f"{v:>12}")
        lines.append(f"{label:{width}}  {fmt(src)}  {fmt(tgt)}")
    split = stats["split"]
    lines += [
        "",
        f"{'seed pairs':{width}}  {stats['pairs']:>12,}",
        f"{'split (ratio, seed)':{width}}  {split['ratio']:>12}  {split['seed']:>12}",
        f"{'train / valid / test':{width}}  {split['train']:,} / {split['valid']:,} / {split['test']:,}",
    ]
    return "\n".join(lines)


@click.command("info")
@dataset_argument
@root_option
@mirror_option
@text_model_option
@click.option("--ratio", default=0.2, show_default=True, help="Train ratio of the split to report.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split to report.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "both"]),
    default="both",
    show_default=True,
    help="Print the table, the JSON, or both.",
)
def info(name, root, mirror, text_model, ratio, seed, fmt):
    """Print the statistics of benchmark NAME (downloading and building it if needed)."""
    from mmea_pyg.data.dataset import MMKGDataset

    dataset = MMKGDataset(
        root, name=name, split_ratio=ratio, split_seed=seed, text_model=text_model, mirror=mirror
    )
    stats = dataset.statistics()
    if fmt in ("table", "both"):
        click.echo(format_table(stats))
    if fmt in ("json", "both"):
        if fmt == "both":
            click.echo("")
        click.echo(json.dumps(stats, indent=2))


COMMANDS = (info,)
