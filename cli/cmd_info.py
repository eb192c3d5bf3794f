"""``mmea info NAME_OR_FOLDER``: statistics of a benchmark or of a graph-pair folder, as a table and JSON."""

from __future__ import annotations

import json

import click
from mmea_pyg.cli.options import dataset_argument, mirror_option, root_option, text_model_option

from mmea_pyg.data.formats import LAYOUTS

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
    ("entities in no relation triple", "entities_without_triples"),
    ("attribute feature dim", "attribute_dim"),
    ("image feature dim", "image_dim"),
]


def format_table(stats: dict) -> str:
    """Render :meth:`MMKGDataset.statistics` or :meth:`GraphPairDataset.statistics` as an aligned table
    (rows a dataset does not report are left out)."""
    title = stats["dataset"]
    if "layout" in stats:
        extra = [f"layout {stats['layout']}"]
        extra += [f"{k} {stats[k]}" for k in ("fold", "snapshot") if k in stats]
        title += f" ({', '.join(extra)}: {stats['folder']})"
    lines = [title, ""]
    rows = [(label, key) for label, key in ROWS if key in stats["source"]]
    width = max(len(label) for label, _ in rows + [("train / valid / test", "")])
    lines.append(f"{'':{width}}  {'source':>12}  {'target':>12}")
    for label, key in rows:
        src, tgt = stats["source"][key], stats["target"][key]
        fmt = (lambda v: f"{v:>12,}") if isinstance(src, int) else (lambda v: f"{v:>12}")
        lines.append(f"{label:{width}}  {fmt(src)}  {fmt(tgt)}")
    split = stats["split"]
    given = split.get("given")
    lines += [
        "",
        f"{'seed pairs':{width}}  {stats['pairs']:>12,}",
        f"{'split (ratio, seed)':{width}}  {split['ratio']!s:>12}  {split['seed']!s:>12}",
    ]
    if given:
        lines.append(f"{'split shipped by the files':{width}}  {given}")
    lines.append(
        f"{'train / valid / test':{width}}  {split['train']:,} / {split['valid']:,} / {split['test']:,}"
    )
    return "\n".join(lines)


@click.command("info")
@dataset_argument
@root_option
@mirror_option
@text_model_option
@click.option(
    "--ratio",
    type=float,
    default=None,
    help="Split ratio to report: for MMKG benchmarks the training fraction [0.2]; for graph pairs the "
    "fraction of links known to the model, training + validation [0.3] (unused where the files ship a split).",
)
@click.option("--valid-ratio", type=float, default=None, help="Fraction of all links for validation [0.1].")
@click.option("--seed", default=0, show_default=True, help="Seed of the split to report.")
@click.option(
    "--layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", *LAYOUTS], case_sensitive=False),
    help="Layout of a graph-pair folder (auto: detected from its files).",
)
@click.option("--fold", type=click.IntRange(min=1), default=1, show_default=True, help="OpenEA fold.")
@click.option("--snapshot", type=click.IntRange(min=0), default=None, help="ContEA snapshot (0 = base) [0].")
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow a MEAformer *_id_img_feature_dict.pkl to be unpickled. Unpickling can run code: only for "
    "files from a source you trust (the .npz form needs no trust).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "both"]),
    default="both",
    show_default=True,
    help="Print the table, the JSON, or both.",
)
@click.pass_context
def info(
    ctx, name, root, mirror, text_model, ratio, valid_ratio, seed, layout, fold, snapshot, trust_pickle, fmt
):
    """Print the statistics of NAME_OR_FOLDER (building it, and downloading a registered one, if needed).

    NAME_OR_FOLDER is a registered benchmark (fb15k-db15k, fb15k-yago15k, dbp15k-zh-en, dbp15k-ja-en,
    dbp15k-fr-en, srprs-en-de, srprs-en-fr, openea-d-y-15k-v1) or a folder in one of the layouts openea,
    jape, meaformer, plain, contea.
    """
    from mmea_pyg.data import open_dataset
    from mmea_pyg.data.registry import EA_DATASETS

    if name in EA_DATASETS and ctx.get_parameter_source("mirror") == click.core.ParameterSource.ENVIRONMENT:
        mirror = None  # $MMEA_MIRROR holds the MMKG files; the EA benchmarks use $MMEA_EA_MIRROR
    dataset = open_dataset(
        name,
        root=root,
        format=layout,
        ratio=ratio,
        split_seed=seed,
        valid_ratio=valid_ratio,
        fold=fold,
        snapshot=snapshot,
        text_model=text_model,
        mirror=mirror,
        trust_pickle=trust_pickle,
    )
    stats = dataset.statistics()
    if fmt in ("table", "both"):
        click.echo(format_table(stats))
    if fmt in ("json", "both"):
        if fmt == "both":
            click.echo("")
        click.echo(json.dumps(stats, indent=2))


COMMANDS = (info,)
