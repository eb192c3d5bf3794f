r"""Alignment of two graphs: :func:`align_model` (a trained model's candidates, one-to-one,
threshold, Sinkhorn, names, and the figures of the test links) and :func:`align` (end to end: train
or load, refit, align, save the run folder's files)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.config import Config
from mmea_pyg.data import content_key
from mmea_pyg.data.base import SIDES
from mmea_pyg.data.splits import pairs_of
from mmea_pyg.distributed import init_from_env, is_main
from mmea_pyg.errors import MMEAError
from mmea_pyg.io import check_writable_dir, resolve_device
from mmea_pyg.pipeline.evaluate import evaluate_model
from mmea_pyg.pipeline.fit import refit as refit_model
from mmea_pyg.pipeline.fit import train_and_load
from mmea_pyg.pipeline.inputs import load_dataset, make_config
from mmea_pyg.results import MODEL, AlignmentResult
from mmea_pyg.runs import check_run_folder

__all__ = ["align", "align_model"]


@torch.no_grad()
def align_model(
    model,
    data: HeteroData,
    config: Config,
    *,
    top_k: int = 10,
    one_to_one: str | None = None,
    threshold: float | None = None,
    csls: bool = False,
    names: dict[str, Tensor] | None = None,
    names_weight: float = 1.0,
    known_pairs: Tensor | None = None,
    sinkhorn: int = 0,
    sinkhorn_tau: float = 0.02,
    sinkhorn_top_k: int = 500,
    progress: bool = True,
) -> AlignmentResult:
    """Align the graphs of ``data`` with a trained ``model``: every source entity without a training
    pair is a query, every target entity without a training pair a candidate (no test or validation
    link is looked at to choose them). See :mod:`mmea_pyg.alignment`.

    Args:
        top_k: Candidates per query in ``candidates``.
        one_to_one: :obj:`None`, ``"greedy"`` or ``"hungarian"``.
        threshold: Drop pairs whose score is below it.
        csls: Score by CSLS (``config.eval.csls_k``) instead of cosine.
        names: Name vectors per side (:func:`mmea_pyg.addons.names.name_vectors`): the "+ names"
            add-on is appended to the model's embedding with norm ``names_weight``.
        known_pairs: The links given as known :math:`(2, K)`, whose entities are neither queries nor
            candidates (default: the training links of ``data``, and the sources of its validation
            links are aligned but not judged; pivots induced from names are not given, so with
            ``known_pairs`` empty every entity is aligned and judged).
        sinkhorn: Sinkhorn iterations over all queries x candidates (0: off; an add-on, see
            :mod:`mmea_pyg.alignment`), temperature ``sinkhorn_tau``, over each query's
            ``sinkhorn_top_k`` best candidates (LightEA's sparse form; 0: the dense matrix). Scores,
            pairs and the test metrics then come from the normalised scores.
    """
    from mmea_pyg.alignment import check_options
    from mmea_pyg.similarity import check_search, search_recall
    from mmea_pyg.training.iterative import unaligned_candidates

    check_options(top_k, one_to_one, threshold, sinkhorn, sinkhorn_tau, sinkhorn_top_k)
    model.eval()
    if names is not None:
        from mmea_pyg.addons.names import NameAddOn

        model = NameAddOn(model, names, names_weight)
    train = pairs_of(data, "train")
    queries, cands = unaligned_candidates(
        data, train if known_pairs is None else known_pairs.to(train.device)
    )
    if queries.numel() == 0 or cands.numel() == 0:
        raise MMEAError("nothing to align: every entity of one graph is in a training pair")
    csls_k = config.eval.csls_k if csls else 0
    search = check_search(config.eval.search)
    scored = _score(
        model,
        data,
        queries,
        cands,
        config.eval.chunk_size,
        top_k,
        csls_k,
        sinkhorn,
        sinkhorn_tau,
        sinkhorn_top_k,
        progress,
        search,
    )
    rows, cols, values, flags = _assign(scored, one_to_one, threshold, csls_k, config.eval.chunk_size)
    pairs, candidates = _named_rows(data, queries, cands, scored, rows, cols, values, flags)
    metrics: dict[str, Any] = {"queries": queries.numel(), "candidates": cands.numel(), "pairs": len(pairs)}
    if search == "faiss-hnsw":  # what the approximate index missed, against the exact search
        k = sinkhorn_top_k if sinkhorn and sinkhorn_top_k else top_k
        metrics["search"] = search_recall(scored.src.cpu(), scored.tgt.cpu(), k, search)
    test = pairs_of(data, "test")
    if test.numel():
        metrics["test"] = _test_figures(model, data, config, queries, cands, scored, csls)
        metrics["test_among_unaligned"] = _among_unaligned(data, config, queries, cands, scored, csls_k)
        valid = pairs_of(data, "valid") if known_pairs is None else test.new_empty(2, 0)
        judged_out = set(valid[0].tolist())
        metrics["alignment"] = _judge(queries, cands, rows, cols, test, judged_out)
        metrics["alignment_mutual"] = _judge(queries, cands, rows[flags], cols[flags], test, judged_out)
        if valid.numel() and bool(torch.isin(valid[0].cpu(), queries.cpu()).all()):
            metrics["alignment_valid_threshold"] = _valid_threshold(
                queries, cands, rows, cols, values, valid, test, judged_out
            )
    options = {
        "top_k": top_k,
        "one_to_one": one_to_one,
        "threshold": threshold,
        "csls_k": csls_k,
        "embedding": ("model + names" if names is not None else MODEL) + (" + Sinkhorn" if sinkhorn else ""),
        "names_weight": names_weight if names is not None else None,
        "sinkhorn": sinkhorn,
        "sinkhorn_tau": sinkhorn_tau if sinkhorn else None,
        "sinkhorn_top_k": (sinkhorn_top_k or None) if sinkhorn else None,
    }
    return AlignmentResult(pairs=pairs, candidates=candidates, metrics=metrics, options=options)


@dataclass
class _Scored:
    """What :func:`_score` found: the top-k candidates (``found``), the embeddings, and the
    normalised scores where Sinkhorn ran: ``dense`` :math:`(Q, C)` log-probabilities or ``listed``
    (the sparse top-k probabilities)."""

    found: Any
    src: Tensor
    tgt: Tensor
    dense: Tensor | None = None
    listed: Any = None


def _score(
    model, data, queries, cands, chunk, top_k, csls_k, sinkhorn, tau, sinkhorn_top_k, progress, search
) -> _Scored:
    """Embed the queries and candidates and find each query's ``top_k`` candidates: by cosine / CSLS,
    or by the sparse (``sinkhorn_top_k`` > 0) or dense Sinkhorn probabilities."""
    from mmea_pyg.alignment import (
        Candidates,
        candidates_from_scores,
        sinkhorn_scores,
        sparse_sinkhorn_candidates,
        top_k_candidates,
    )

    device = pairs_of(data, "train").device  # the data's device (the ids may be on the CPU)
    src = model.embed(data, "source", queries.to(device), chunk)
    tgt = model.embed(data, "target", cands.to(device), chunk)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = queries.numel() + cands.numel()
        bar = tqdm(total=total, desc="align", unit="entity", file=sys.stderr, leave=False)
    try:
        if sinkhorn and sinkhorn_top_k:
            listed = sparse_sinkhorn_candidates(
                src,
                tgt,
                k=sinkhorn_top_k,
                iters=sinkhorn,
                tau=tau,
                csls_k=csls_k,
                chunk_size=chunk,
                bar=bar,
                search=search,
            )
            found = Candidates(listed.scores[:, :top_k], listed.index[:, :top_k], listed.mutual)
            return _Scored(found, src, tgt, listed=listed)
        if sinkhorn:
            dense = sinkhorn_scores(src, tgt, tau=tau, iters=sinkhorn, csls_k=csls_k, chunk_size=chunk)
            found = candidates_from_scores(dense, top_k)
            found.scores = found.scores.exp()  # log-probabilities rank; the files show the probabilities
            return _Scored(found, src, tgt, dense=dense)
        found = top_k_candidates(src, tgt, top_k, csls_k=csls_k, chunk_size=chunk, bar=bar, search=search)
        return _Scored(found, src, tgt)
    finally:
        if bar is not None:
            bar.close()


def _assign(scored: _Scored, one_to_one, threshold, csls_k, chunk) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The pairs ``(rows, cols, values, mutual flags)``, positions among the queries and candidates:
    each query's best candidate, or a greedy / optimal one-to-one assignment; then the threshold."""
    from mmea_pyg.alignment import assignment_from_scores, greedy_one_to_one, hungarian_one_to_one

    found = scored.found
    scores, index, mutual = found.scores.cpu(), found.index.cpu(), found.mutual.cpu()
    if one_to_one == "greedy":
        rows, cols, values = greedy_one_to_one(found)
    elif one_to_one == "hungarian" and scored.dense is not None:
        rows, cols, values = assignment_from_scores(scored.dense)
        values = values.exp()
    elif one_to_one == "hungarian":
        rows, cols, values = hungarian_one_to_one(scored.src, scored.tgt, csls_k=csls_k, chunk_size=chunk)
    else:
        order = torch.argsort(scores[:, 0], descending=True, stable=True)
        rows, cols, values = order, index[order, 0], scores[order, 0]
    flags = torch.zeros(rows.numel(), dtype=torch.bool)
    if rows.numel():
        flags = mutual[rows] & (index[rows, 0] == cols)
    if threshold is not None:
        keep = values >= threshold
        rows, cols, values, flags = rows[keep], cols[keep], values[keep], flags[keep]
    return rows, cols, values, flags


def _named_rows(data, queries, cands, scored: _Scored, rows, cols, values, flags) -> tuple[list, list]:
    """The rows of ``alignment.tsv`` and ``candidates.tsv``, entities named by their URIs."""
    src_uri, tgt_uri = data["source"].uri, data["target"].uri
    q_ids, c_ids = queries.tolist(), cands.tolist()
    scores, index = scored.found.scores.cpu(), scored.found.index.cpu()
    pairs = [
        (src_uri[q_ids[r]], tgt_uri[c_ids[c]], float(v), bool(f))
        for r, c, v, f in zip(rows.tolist(), cols.tolist(), values.tolist(), flags.tolist(), strict=True)
    ]
    candidates = [
        (src_uri[q_ids[r]], rank + 1, tgt_uri[c_ids[c]], float(scores[r, rank]))
        for r in range(index.size(0))
        for rank, c in enumerate(index[r].tolist())
    ]
    return pairs, candidates


def _test_figures(model, data, config, queries, cands, scored: _Scored, csls: bool) -> dict[str, Any]:
    """Hits@k / MRR of the test links ranked among the distinct test targets, by the scores that
    aligned (the sparse or dense Sinkhorn probabilities, else the model's evaluation), with how many
    targets they are ranked among and the share of truths with a structural twin."""
    from mmea_pyg.alignment import pair_block, positions, ranks_from_scores
    from mmea_pyg.data.twins import twin_share
    from mmea_pyg.evaluation import ranked_metrics
    from mmea_pyg.similarity import sparse_ranks

    test = pairs_of(data, "test")
    num_src, num_tgt = data["source"].num_nodes, data["target"].num_nodes
    ks = tuple(config.eval.ks)
    if scored.listed is not None:  # the sparse probabilities (unlisted: 0)
        rows, cols = positions(test[0], queries, num_src), positions(test[1], cands, num_tgt)
        ranks = sparse_ranks(scored.listed.scores.cpu(), scored.listed.index.cpu(), rows, cols)
        figures = {"pairs": int(test.size(1)), **ranked_metrics(ranks, ks)}
    elif scored.dense is not None:  # the scores normalised over all candidates
        block, rows, cols = pair_block(scored.dense, queries, cands, test, num_src, num_tgt)
        figures = {"pairs": int(test.size(1)), **ranked_metrics(ranks_from_scores(block, rows, cols), ks)}
    else:
        evaluation = evaluate_model(model, data, config, "test", csls=csls, progress=False)
        figures = {"pairs": evaluation.pairs, **evaluation.metrics}
    figures["ranked_among"] = int(torch.unique(test[1]).numel())
    # The share of truths that have a structural twin, which structure can at best tie with.
    figures.update(twin_share(data, test))
    return figures


def _among_unaligned(data, config, queries, cands, scored: _Scored, csls_k: int) -> dict[str, Any]:
    """Hits@k / MRR of the test links, source -> target, each source ranked among *every* candidate
    (all targets without a known pair, as :attr:`AlignmentResult.pairs` chose among them), by the
    scores that aligned: the sparse or dense Sinkhorn probabilities, else cosine (CSLS: not
    re-ranked here, the cosine figures are given)."""
    from mmea_pyg.alignment import positions
    from mmea_pyg.evaluation import metrics_from_ranks, rank_among
    from mmea_pyg.similarity import sparse_ranks

    test = pairs_of(data, "test").cpu()
    rows = positions(test[0], queries, data["source"].num_nodes)
    cols = positions(test[1], cands, data["target"].num_nodes)
    if bool((rows < 0).any()) or bool((cols < 0).any()):
        return {}  # a test entity is a known one (links given by hand): no such ranking
    if scored.listed is not None:
        ranks = sparse_ranks(
            scored.listed.scores.cpu(), scored.listed.index.cpu(), rows, cols, num_columns=cands.numel()
        )
        scoring = "sparse Sinkhorn"
    elif scored.dense is not None:
        block = scored.dense.cpu()[rows]
        true = block.gather(1, cols.unsqueeze(1))
        better, tied = (block > true).sum(1).float(), (block == true).sum(1).float() - 1
        ranks = {"s2t": 1 + better + 0.5 * tied, "s2t_top_tie": (better == 0) & (tied > 0)}
        scoring = "Sinkhorn"
    else:
        ranks = rank_among(
            scored.src[rows.to(scored.src.device)], scored.tgt, cols, chunk_size=config.eval.chunk_size
        )
        scoring = "cosine"
    out: dict[str, Any] = {
        "pairs": int(test.size(1)),
        **metrics_from_ranks(ranks["s2t"], tuple(config.eval.ks)),
    }
    out["tied_top"] = float(ranks["s2t_top_tie"].float().mean())
    out.update(
        ranked_among=int(cands.numel()),
        scores=scoring + (" (not CSLS)" if csls_k and scoring == "cosine" else ""),
    )
    return out


def _valid_threshold(queries, cands, rows, cols, values, valid, test, left_out: set[int]) -> dict[str, Any]:
    """The score threshold that maximises F1 on the validation sources' pairs
    (:func:`~mmea_pyg.alignment.best_f1_threshold`), and the test precision / recall / F1 of the pairs
    at or above it. Every validation source has a counterpart, so the threshold is the one for
    matchable sources; sources without one are only held back by it as far as their scores are lower."""
    from mmea_pyg.alignment import best_f1_threshold

    q_ids, c_ids = queries[rows.cpu()].cpu(), cands[cols.cpu()].cpu()
    gold = dict(zip(valid[0].tolist(), valid[1].tolist(), strict=True))
    in_valid = torch.tensor([q in gold for q in q_ids.tolist()], dtype=torch.bool)
    correct = torch.tensor(
        [gold.get(q) == c for q, c in zip(q_ids[in_valid].tolist(), c_ids[in_valid].tolist(), strict=True)],
        dtype=torch.bool,
    )
    chosen = best_f1_threshold(values.cpu()[in_valid], correct, len(gold))
    keep = values.cpu() >= chosen["threshold"]
    judged = _judge(queries, cands, rows.cpu()[keep], cols.cpu()[keep], test, left_out)
    return {"threshold": chosen["threshold"], "valid_f1": chosen["f1"], **judged}


def _judge(queries, cands, rows, cols, test, left_out: set[int]) -> dict[str, float]:
    """Precision / recall / F1 of the written pairs (positions ``rows``, ``cols``) against the test
    links, leaving out the queries in ``left_out`` (the validation sources of a model that did not
    train on them)."""
    from mmea_pyg.alignment import precision_recall_f1

    q_ids, c_ids = queries.tolist(), cands.tolist()
    judged = {
        (q_ids[r], c_ids[c])
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        if q_ids[r] not in left_out
    }
    gold = set(zip(test[0].tolist(), test[1].tolist(), strict=True))
    return precision_recall_f1(judged, gold)


def _name_vectors(
    data: HeteroData, config: Config, names: bool, text: bool = True, progress: bool = False
) -> dict[str, Tensor] | None:
    if not names:
        return None
    from mmea_pyg.addons.names import name_vectors
    from mmea_pyg.data.features.text import DEFAULT_TEXT_MODEL

    text_model = (config.data.text_model or DEFAULT_TEXT_MODEL) if text else None
    device = str(resolve_device(config.train.device))
    return {side: name_vectors(data, side, text_model, device=device, progress=progress) for side in SIDES}


def align(
    source: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    config: str | os.PathLike | Config | None = None,
    overrides: Sequence[str] = (),
    checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    data: HeteroData | None = None,
    top_k: int = 10,
    one_to_one: str | None = None,
    threshold: float | None = None,
    csls: bool = False,
    names: bool = False,
    names_weight: float = 1.0,
    names_text: bool = True,
    pivot_score: float = 0.9,
    sinkhorn: int = 0,
    sinkhorn_tau: float = 0.02,
    sinkhorn_top_k: int = 500,
    refit: bool = True,
    search: str | None = None,
    progress: bool = True,
    echo=None,
    command: str | None = None,
    **options: Any,
) -> AlignmentResult:
    """Align two graphs end to end: train ``model`` on ``source`` (a registered dataset or a folder in
    one of the supported layouts; or load ``checkpoint``), then :func:`align_model`, and save the
    files into the run folder ``out`` (default :func:`default_out`; with ``checkpoint``, its folder).

    ``options`` are :func:`make_config`'s shortcuts (``ratio``, ``epochs``, ``seed``, ``device``,
    ``root``, ``mirror``); ``overrides`` ``section.key=value`` assignments (e.g. ``data.format=jape``).

    With ``names``, the entities' name vectors (:mod:`mmea_pyg.addons.names`) are appended to the
    model's embedding (weight ``names_weight``; ``names_text=False`` leaves out the text embedding of
    the labels and keeps their character n-grams); when the graphs come without any training link, the
    mutual best name matches scoring at least ``pivot_score`` become the training links first.

    With ``refit`` (the default) and validation links, the model trained with validation-based
    selection only chooses the schedule: it is then trained afresh on the training *and* validation
    links for the selected number of epochs, in the run folder's ``refit/``, and that model aligns
    (:func:`~mmea_pyg.pipeline.fit.refit`). The run's validation figures stay those of the first fit.

    ``search`` (default: the config's ``eval.search``) is the nearest-neighbour search of the
    alignment (:func:`~mmea_pyg.similarity.top_k_search`): ``auto``, ``torch``, ``faiss`` or
    ``faiss-hnsw``.
    """
    from mmea_pyg.alignment import check_options
    from mmea_pyg.similarity import check_search

    check_options(top_k, one_to_one, threshold, sinkhorn, sinkhorn_tau, sinkhorn_top_k)  # before any training
    if search is not None:
        check_search(search, installed=True)
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    if checkpoint is not None:
        out_dir = Path(out) if out is not None else Path(checkpoint).parent
        check_writable_dir(out_dir, "alignment folder (--out)", "pass another --out")
        net, cfg, data = _from_checkpoint(checkpoint, source, data, progress, options)
        vectors = _name_vectors(data, cfg, names, names_text, progress)
        known, run_result, refit_result = None, None, None
    else:
        cfg = make_config(
            model, None if source is None else str(source), config, overrides, (), out, **options
        )
        if search is not None:
            cfg.eval.search = search
        check_search(cfg.eval.search, installed=True)  # a missing faiss is said before any training
        init_from_env(resolve_device(cfg.train.device))  # under torchrun: rank 0 checks, writes, prints
        if is_main():
            check_run_folder(cfg.out)
        out_dir = Path(cfg.out)
        if data is None:
            data = load_dataset(cfg, progress=progress)
        vectors = _name_vectors(data, cfg, names, names_text, progress)
        data, known = _with_training_links(data, cfg, vectors, pivot_score, echo)
        net, data, run_result, refit_result = _train(cfg, data, refit, progress, command, echo)
    if search is not None:
        cfg.eval.search = search
    result = align_model(
        net,
        data,
        cfg,
        top_k=top_k,
        one_to_one=one_to_one,
        threshold=threshold,
        csls=csls,
        names=vectors,
        names_weight=names_weight,
        known_pairs=known,
        sinkhorn=sinkhorn,
        sinkhorn_tau=sinkhorn_tau,
        sinkhorn_top_k=sinkhorn_top_k,
        progress=progress,
    )
    result.run = run_result
    if refit_result is not None:
        result.options["refit"] = {
            "epochs": refit_result.epochs,
            "links": int(pairs_of(data, "train").size(1)),
            "run_dir": refit_result.run_dir,
        }
        result.checkpoint = refit_result.checkpoints["best"]
    else:
        result.checkpoint = str(checkpoint) if checkpoint is not None else run_result.checkpoints["best"]
    if is_main():
        result.save(out_dir)
    return result


def _train(cfg: Config, data: HeteroData, refit: bool, progress: bool, command: str | None, echo):
    """``(model, data, run_result, refit_result)``: train with validation-based selection, then, with
    ``refit`` and validation links, train afresh on the training and validation links for the selected
    number of epochs (``refit_result`` is ``None`` otherwise); the returned model is the one that aligns."""
    run_result, net, data = train_and_load(
        cfg,
        data,
        resume=False,
        progress=progress,
        propagation=False,
        log_stream=None,
        command=command,
        echo=echo,
    )
    refit_result = None
    if refit and pairs_of(data, "valid").numel():
        refit_result, net, data = refit_model(
            cfg, data, run_result, progress=progress, command=command, echo=echo
        )
    return net, data, run_result, refit_result


def _from_checkpoint(checkpoint, source, data: HeteroData | None, progress: bool, options: dict[str, Any]):
    """The model of ``checkpoint`` on its dataset: ``source`` when given (refused in one line when its
    content differs from what the checkpoint was trained on), else the absolute path it records.
    Returns ``(model, config, data)``, the data on the model's device."""
    from mmea_pyg.training.checkpoint import load_checkpoint, load_model

    saved = load_checkpoint(checkpoint)
    cfg = Config.from_dict(saved["config"], source=str(checkpoint))
    if source is not None:
        cfg.data.dataset = str(source)  # the graphs the user names; checked against the checkpoint below
    elif saved.get("dataset_path") and Path(saved["dataset_path"]).is_dir():
        cfg.data.dataset = saved["dataset_path"]  # found from any working directory
    if data is None:
        data = load_dataset(cfg, progress=progress, root=options.get("root"))
    elif cfg.data.valid_in_train:  # a refit's checkpoint: its split (load_dataset does the same)
        from mmea_pyg.data.splits import with_valid_in_train

        data = with_valid_in_train(data)
    key = saved.get("dataset_key")
    if key is not None and key != content_key(data):
        raise MMEAError(
            f"{source if source is not None else cfg.data.dataset} is not the dataset {checkpoint} was trained "
            f"on (its graphs or links differ); pass that dataset, or train on this one"
        )
    device = resolve_device(options.get("device") or "auto")
    net, cfg, _ = load_model(checkpoint, data, str(device), checkpoint=saved)
    return net, cfg, data.to(device)


def _with_training_links(data: HeteroData, cfg: Config, vectors, pivot_score: float, echo):
    """``(data, known_pairs)``: the data as given when it has training links; without any, the mutual
    best name matches scoring at least ``pivot_score`` as its training links (``known_pairs`` then
    empty: pivots are not given links, so every entity is aligned and judged). Refused in one line
    when there are neither links nor (enough) names."""
    if pairs_of(data, "train").numel():
        return data, None
    if vectors is None:
        raise MMEAError(
            "the graphs come without training links: give some known pairs (a links file) or pass "
            "--names to induce pivot pairs from entity names"
        )
    from mmea_pyg.addons.names import name_pivots, with_pivots

    pivots = name_pivots(vectors, pivot_score, cfg.eval.chunk_size)
    echo(f"no training links: {pivots.size(1):,} pivot pairs induced from names (score >= {pivot_score})")
    if pivots.size(1) < 2:
        raise MMEAError(
            f"no training links and only {pivots.size(1)} name pivots scoring >= {pivot_score}: give "
            "some known pairs (a links file) or lower the pivot score"
        )
    return with_pivots(data, pivots, seed=cfg.split_seed), torch.empty(2, 0, dtype=torch.long)
