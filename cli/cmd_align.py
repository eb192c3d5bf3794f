"""``mmea align``: align two graphs and write the pairs (:func:`mmea_pyg.pipeline.align`)."""

from __future__ import annotations

import click
from mmea_pyg.cli.options import (
    POSITIVE_INT,
    Count,
    FiniteFloat,
    check_latest_writable,
    config_option,
    epochs_option,
    mirror_option,
    model_option,
    quiet_option,
    root_option,
    set_option,
)

from mmea_pyg.data.formats import LAYOUTS

#: ``auto`` (detected from the files) or one of the layouts the readers know.
FORMATS = ("auto", *LAYOUTS)


@click.command("align")
@click.argument("source", required=False)
@click.option(
    "--format",
    "--layout",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Layout of a SOURCE folder (default: auto-detected).",
)
@click.option("--fold", type=int, default=None, help="OpenEA fold of 721_5fold/ (default 1).")
@click.option("--snapshot", type=int, default=None, help="ContEA snapshot: base (0) plus batches 1..K.")
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow loading a MEAformer *.pkl image-feature dictionary (a pickle can run code: only for files "
    "you trust; a .npz needs no trust).",
)
@model_option
@config_option
@set_option
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Align with this trained checkpoint instead of training (SOURCE, if given, must hold the same graphs and links, compared by content; default: the checkpoint's own dataset).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run folder for the checkpoints and the alignment files (default: runs/<name>_<model>_...).",
)
@click.option(
    "--top-k",
    type=POSITIVE_INT,
    default=10,
    show_default=True,
    help="Candidates per source in candidates.tsv.",
)
@click.option(
    "--one-to-one",
    type=click.Choice(["greedy", "hungarian"]),
    default=None,
    help="Each target used at most once: greedy over the top-k lists, or the optimal assignment (scipy, "
    "where the dense score matrix fits in memory).",
)
@click.option("--threshold", type=FiniteFloat(), default=None, help="Drop pairs scoring below this.")
@click.option("--csls", is_flag=True, help="Score by CSLS (eval.csls_k) instead of cosine.")
@click.option(
    "--sinkhorn",
    type=Count(min=0),
    default=0,
    show_default=True,
    metavar="ITERS",
    help="Normalise the scores of all sources x all candidate targets by Sinkhorn iterations (an add-on; "
    "10-15 is a good value; 0: off), over each source's --sinkhorn-top-k best candidates.",
)
@click.option(
    "--sinkhorn-tau",
    type=FiniteFloat(min=0, min_open=True),
    default=0.02,
    show_default=True,
    help="Sinkhorn temperature (> 0).",
)
@click.option(
    "--sinkhorn-top-k",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Normalise only each source's K best candidates (LightEA's sparse Sinkhorn: memory grows with "
    "sources x K, any graph size); 0: the dense matrix of all sources x all candidates.",
)
@click.option(
    "--search",
    type=click.Choice(["auto", "torch", "faiss", "faiss-hnsw"]),
    default=None,
    help="Nearest-neighbour search: auto (faiss's exact index on large graphs when faiss is installed, "
    "else blocked matrix products), torch, faiss (exact; pip install 'mmea-pyg[faiss]') or faiss-hnsw "
    "(approximate, its recall against exact in metrics.json) [eval.search: auto].",
)
@click.option(
    "--refit/--no-refit",
    default=True,
    show_default=True,
    help="After the schedule is chosen on the validation links, train again on the training and "
    "validation links for that many epochs and align with that model (in the run folder's refit/).",
)
@click.option(
    "--names",
    is_flag=True,
    help="Append entity names (labels or the URI's last segment: character n-grams + text embedding) to "
    "the model's embedding, an add-on; without any training link, induce pivot pairs from names first.",
)
@click.option("--names-weight", type=float, default=1.0, show_default=True, help="Norm of the names block.")
@click.option(
    "--pivot-score",
    type=float,
    default=0.9,
    show_default=True,
    help="With --names and no links: the least name similarity of a pivot pair.",
)
@click.option(
    "--ratio",
    type=float,
    default=None,
    help="Share of the links known to the model, where the layout ships no split.",
)
@epochs_option
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="auto (CUDA when present), cpu or cuda[:N].")
@quiet_option
@root_option
@mirror_option
def align(
    source,
    fmt,
    fold,
    snapshot,
    trust_pickle,
    model,
    config_file,
    sets,
    checkpoint,
    out,
    top_k,
    one_to_one,
    threshold,
    csls,
    sinkhorn,
    sinkhorn_tau,
    sinkhorn_top_k,
    search,
    refit,
    names,
    names_weight,
    pivot_score,
    ratio,
    epochs,
    seed,
    device,
    quiet,
    root,
    mirror,
):
    """Align SOURCE (a registered dataset or a folder with two graphs) and write alignment.tsv,
    candidates.tsv and, with gold links, metrics.json into the run folder."""
    from mmea_pyg import pipeline
    from mmea_pyg.errors import ConfigError

    if source is None and checkpoint is None:
        raise ConfigError("mmea align needs SOURCE (a dataset name or folder) or --checkpoint FILE")
    data_sets = [
        f"data.{key}={value}"
        for key, value in (("format", fmt), ("fold", fold), ("snapshot", snapshot))
        if value is not None
    ]
    data_sets += ["data.trust_pickle=true"] if trust_pickle else []
    if checkpoint is None:
        check_latest_writable()
    result = pipeline.align(
        source,
        model=model,
        config=config_file,
        overrides=[*data_sets, *sets],
        checkpoint=checkpoint,
        out=out,
        top_k=top_k,
        one_to_one=one_to_one,
        threshold=threshold,
        csls=csls,
        sinkhorn=sinkhorn,
        sinkhorn_tau=sinkhorn_tau,
        sinkhorn_top_k=sinkhorn_top_k,
        search=search,
        refit=refit,
        names=names,
        names_weight=names_weight,
        pivot_score=pivot_score,
        progress=not quiet,
        echo=lambda line: click.echo(line, err=True),
        command=pipeline.command_line(),
        ratio=ratio,
        epochs=epochs,
        seed=seed,
        device=device,
        root=root,
        mirror=mirror,
    )
    if checkpoint is None:
        pipeline.mark_latest(result.out_dir)
    click.echo(result.summary())
    click.echo(f"files: {result.out_dir}/{{{pipeline.ALIGNMENT_TSV}, {pipeline.CANDIDATES_TSV}}}")


COMMANDS = (align,)
