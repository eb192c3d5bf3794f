r"""Training runs: :func:`train` (train, select on validation, evaluate once on test, save
``result.json``), :func:`run` (the same from a dataset name) and :func:`refit` (train again on the
training and validation links for the schedule chosen on validation)."""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch_geometric.data import HeteroData

from mmea_pyg.config import Config
from mmea_pyg.data.splits import pairs_of
from mmea_pyg.distributed import init_from_env, is_main
from mmea_pyg.io import resolve_device
from mmea_pyg.pipeline.evaluate import check_propagation, diagnostics, evaluate_model
from mmea_pyg.pipeline.inputs import load_dataset, make_config
from mmea_pyg.results import RunResult
from mmea_pyg.runs import check_run_folder, machine_info, peak_memory

__all__ = ["refit", "run", "train", "train_and_load"]


def train(
    config: Config,
    data: HeteroData | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    propagation: bool = False,
    log_stream=None,
    command: str | None = None,
    echo=None,
) -> RunResult:
    """Train ``config`` (resuming from ``<out>/last.pt`` with ``resume``), select the checkpoint with
    the best validation MRR, evaluate it on the validation and test pairs (cosine and CSLS; with
    ``propagation`` also the "+ propagation" add-on), save ``result.json`` in the run folder and return
    the :class:`RunResult`.

    Args:
        config: The run config (:func:`make_config`).
        data: The graph pair (default: :func:`load_dataset`).
        resume: Continue from the run folder's ``last.pt``.
        progress: Progress bars on the dataset build, epochs and evaluation.
        propagation: Also evaluate the "+ propagation" add-on (not part of the model).
        log_stream: Where the JSON line of each validation goes (default stdout).
        command: The command line to record.
        echo: Callable receiving one-line notices (default: print to stderr).
    """
    return train_and_load(
        config,
        data,
        resume=resume,
        progress=progress,
        propagation=propagation,
        log_stream=log_stream,
        command=command,
        echo=echo,
    )[0]


def train_and_load(
    config: Config,
    data: HeteroData | None,
    *,
    resume: bool,
    progress: bool,
    propagation: bool,
    log_stream,
    command: str | None,
    echo,
) -> tuple[RunResult, Any, HeteroData]:
    """:func:`train`, also returning the model with the selected checkpoint's weights (eval mode) and
    the data on its device, for callers that go on with them (:func:`align`)."""
    from mmea_pyg.training.checkpoint import load_checkpoint
    from mmea_pyg.training.trainer import Trainer

    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    if propagation:
        check_propagation(config, "--propagation")
    # Under torchrun: one process group from here on; rank 0 checks the folder, writes and prints.
    init_from_env(resolve_device(config.train.device))
    main = is_main()
    if main:
        check_run_folder(config.out)
    else:
        echo, progress = (lambda line: None), False
    started = time.perf_counter()
    if data is None:
        data = load_dataset(config, progress=progress)
    data_s = time.perf_counter() - started
    trainer = Trainer(config, data, progress=progress, log_stream=log_stream)
    model = trainer.model
    echo(f"run folder: {config.out}  model: {model}  device: {trainer.device}")
    kept = list(getattr(model, "kept", ()))
    missing = [m for m in ("v", "r", "a") if m not in kept]
    if kept:
        echo(
            f"modalities: {', '.join(kept)}"
            + (f" (not used: {', '.join(missing)}: ablated or absent from the data)" if missing else "")
        )
    if resume:
        trainer.resume()
    fit_started = time.perf_counter()
    state = trainer.fit()
    train_s = time.perf_counter() - fit_started

    out = Path(config.out)
    best = load_checkpoint(out / "best.pt", trainer.device)
    model.load_state_dict(best["model"])
    eval_started = time.perf_counter()
    evaluations, extra = _evaluate_selected(model, trainer, config, best, propagation, progress)
    eval_s = time.perf_counter() - eval_started
    result = RunResult(
        dataset=config.data.dataset,
        model=config.model.name,
        config=config.to_dict(),
        seed=config.train.seed,
        split_seed=config.split_seed,
        modalities=kept,
        best_epoch=state.best_epoch,
        epochs=state.epoch,
        evaluations=evaluations,
        history=list(state.history),
        timings={
            "data": round(data_s, 2),
            "train": round(train_s, 2),
            "eval": round(eval_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        peak_memory=peak_memory(),
        machine=machine_info(),
        checkpoints={"best": str(out / "best.pt"), "last": str(out / "last.pt")},
        run_dir=str(out),
        diagnostics=extra,
        command=command,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if main:
        result.save()
    return result, model, trainer.data


def _evaluate_selected(model, trainer, config: Config, best: dict, propagation: bool, progress: bool):
    """The selected checkpoint's evaluations (validation, test, and the "+ propagation" add-on's own
    test row when asked for) and the report's diagnostics. Graphs without gold test links (an
    alignment of one's own graphs) are evaluated on validation only."""
    pseudo = best.get("pseudo_pairs")
    pseudo = None if pseudo is None else pseudo.to(trainer.device)
    splits = [s for s in ("valid", "test") if pairs_of(trainer.data, s).numel()]
    evaluations = [evaluate_model(model, trainer.data, config, s, progress=progress) for s in splits]
    if propagation and "test" in splits:
        evaluations.append(
            evaluate_model(
                model, trainer.data, config, "test", propagation=True, pseudo_pairs=pseudo, progress=progress
            )
        )
    # The diagnostics are rank 0's alone (the evaluations above are every rank's, in blocks).
    extra = {}
    if splits and is_main():
        extra = diagnostics(model, trainer.data, config, splits[-1], seed=config.train.seed)
    return evaluations, extra


def run(
    dataset: str | None = None,
    model: str | None = None,
    config: str | os.PathLike | Config | None = None,
    overrides: Sequence[str] = (),
    ablations: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    *,
    data: HeteroData | None = None,
    resume: bool = False,
    progress: bool = True,
    propagation: bool = False,
    **options: Any,
) -> RunResult:
    """:func:`make_config` then :func:`train`: the whole run in one call (see the module docstring)."""
    cfg = make_config(model, dataset, config, overrides, ablations, out, **options)
    return train(cfg, data, resume=resume, progress=progress, propagation=propagation)


def refit(
    config: Config, data: HeteroData, selected: RunResult, *, progress: bool, command: str | None, echo
) -> tuple[RunResult, Any, HeteroData]:
    """Train ``config``'s model afresh on the training and validation links of ``data`` for the
    ``selected`` run's best epoch count (its schedule, chosen on validation), in ``<run>/refit``.

    The refit's config says ``data.valid_in_train``, so its checkpoint reloads onto the same split."""
    from mmea_pyg.data.splits import with_valid_in_train

    refit = Config.from_dict(config.to_dict())
    refit.data.valid_in_train = True
    refit.train.epochs = refit.train.eval_every = max(selected.best_epoch, 1)
    refit.train.patience = 0
    refit.out = str(Path(config.out) / "refit")
    known = with_valid_in_train(data)
    echo(
        f"refit on the training and validation links ({pairs_of(known, 'train').size(1):,}) for "
        f"{refit.train.epochs} epoch(s), the schedule chosen on validation"
    )
    return train_and_load(
        refit,
        known,
        resume=False,
        progress=progress,
        propagation=False,
        log_stream=None,
        command=command,
        echo=echo,
    )
