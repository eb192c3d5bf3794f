"""Training loop: weighted loss terms, iterative pseudo seeds, model selection on validation MRR only,
checkpoints that carry everything needed to resume or audit a run.

Started by ``torchrun`` (``WORLD_SIZE`` > 1), the trainer is data-parallel
(:class:`~torch.nn.parallel.DistributedDataParallel`, :mod:`mmea_pyg.distributed`): every rank draws
the same batches of seed pairs, takes its block of each, and DDP averages the gradients, so one step
sees the whole batch; validation and pseudo-seed mining rank their queries in blocks over the ranks and
gather the result, so every rank takes the same decisions (best epoch, patience, pseudo seeds). Only
rank 0 writes files and prints.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg import __version__
from mmea_pyg.config import Config
from mmea_pyg.data import content_key
from mmea_pyg.data.splits import SPLITS, pairs_of
from mmea_pyg.distributed import (
    all_ranks_agree,
    barrier,
    current_sharding,
    init_from_env,
    is_main,
    mean_over_ranks,
)
from mmea_pyg.errors import MMEAError
from mmea_pyg.evaluation import evaluate_model_embedding
from mmea_pyg.io import atomic_torch_save, resolve_device
from mmea_pyg.models import build_model
from mmea_pyg.models.base import AlignmentModel
from mmea_pyg.similarity import check_search
from mmea_pyg.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_state_fits,
    load_checkpoint,
)
from mmea_pyg.training.iterative import propose_pseudo_seeds


class TrainingDivergedError(MMEAError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def _absolute_dataset(dataset: str) -> str | None:
    """The absolute path of a dataset given as a folder (None for a registered name)."""
    path = Path(dataset)
    return str(path.resolve()) if path.is_dir() else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def loss_weights(config: Config) -> dict[str, float]:
    """Weights of the named loss terms (Eq. 28): ``L_TransE + L_vae + alpha L_m + beta L_s + L_mcl``,
    plus the pseudo-seed alignment term and MIMEA's optimal-transport and Beta-KL terms."""
    ablations = config.ablations
    return {
        "transe": 1.0,
        "vae": 1.0,
        "m": 0.0 if "w/o L_m" in ablations else config.train.alpha,
        "s": 0.0 if "w/o L_s" in ablations else config.train.beta,
        "mcl": 1.0,
        "pseudo": config.train.pseudo_weight,
        "ot": config.train.ot_weight,
        "kl": config.train.kl_weight,
    }


def _essential(config: Config) -> dict[str, Any]:
    """The parts of a config that a resumed run must share with its checkpoint (not the epoch budget,
    the device, the patience or where files live)."""
    values = config.to_dict()
    for section, key in (
        ("train", "epochs"),
        ("train", "device"),
        ("train", "patience"),
        ("data", "root"),
        ("data", "mirror"),
    ):
        values[section].pop(key)
    values.pop("out")
    return values


@dataclass
class TrainState:
    epoch: int = 0
    best_epoch: int = -1
    best_valid_mrr: float = -math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0


class _Step(torch.nn.Module):
    """One training step's unweighted loss terms as a module's forward, which is what
    :class:`~torch.nn.parallel.DistributedDataParallel` wraps (it synchronises gradients of what
    ``forward`` computes)."""

    def __init__(self, model: AlignmentModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, data: HeteroData, pairs: Tensor, pseudo: Tensor | None, generator: torch.Generator
    ) -> dict[str, Tensor]:
        return self.model.training_losses(data, pairs, pseudo, generator)


class Trainer:
    """Trains an :class:`~mmea_pyg.models.base.AlignmentModel` on one split of a benchmark.

    Files written under ``config.out``:

    * ``config.yaml``: the full config (seed included).
    * ``last.pt``: model, optimizer, RNG states, pseudo seeds, epoch and history after the latest
      evaluation (what ``resume`` continues from).
    * ``best.pt``: the model with the best validation MRR so far (what ``mmea eval`` evaluates).
    * ``metrics.jsonl``: one JSON line per evaluation (losses and validation metrics).

    Checkpoints hold tensors and plain data only (the config as a dict), so that
    :func:`~mmea_pyg.training.checkpoint.load_checkpoint` reads them with ``weights_only=True``. Every file is written to a temporary name and renamed, so an interrupted run leaves the previous
    complete checkpoint behind.
    """

    def __init__(self, config: Config, data: HeteroData, progress: bool = True, log_stream=None) -> None:
        check_search(config.train.pseudo_search, installed=True)  # a missing faiss: before any epoch
        self.config = config
        self.device = resolve_device(config.train.device)
        if init_from_env(self.device) and self.device.type == "cuda":
            self.device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU
        #: This rank's block of the queries in a process group (None: a single process).
        self.sharding = current_sharding()
        self.main = is_main()
        self.data = data.to(self.device)
        self.out = Path(config.out)
        self.progress = progress
        self.log_stream = log_stream if log_stream is not None else sys.stdout
        seed_everything(config.train.seed)
        self.model: AlignmentModel = build_model(config, self.data).to(self.device)
        params = list(self.model.parameters())
        # A model without parameters (LightEA) gets an optimizer over nothing, so checkpoints keep one form.
        self.optimizer = torch.optim.Adam(
            params or [torch.nn.Parameter(torch.zeros(0))],
            lr=config.train.lr,
            weight_decay=config.train.weight_decay,
        )
        self.generator = torch.Generator(device="cpu").manual_seed(config.train.seed)
        self.step = _Step(self.model)
        #: What the loss terms draw negatives with: the batch generator in one process; in a group,
        #: one per rank (every rank must draw the same batches, but not the same negatives).
        self.loss_generator = self.generator
        if self.sharding is not None:
            self.loss_generator = torch.Generator(device="cpu").manual_seed(
                config.train.seed + 1 + self.sharding.rank
            )
            if params:
                from torch.nn.parallel import DistributedDataParallel

                self.step = DistributedDataParallel(
                    self.step,
                    device_ids=[self.device] if self.device.type == "cuda" else None,
                    find_unused_parameters=True,  # a step may not reach every modality's parameters
                )
        self.weights = loss_weights(config)
        self.train_pairs, self.valid_pairs, self.test_pairs = (pairs_of(self.data, s) for s in SPLITS)
        #: Distinct validation targets: what a validation Hits@k is ranked among (logged beside it).
        self.valid_targets = int(torch.unique(self.valid_pairs[1]).numel())
        self.pseudo_pairs: Tensor | None = None
        self.state = TrainState()
        self.dataset_key = content_key(self.data)

    # ------------------------------------------------------------------------------ checkpoints
    def _checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.config.to_dict(),
            "seed": self.config.train.seed,
            "epoch": self.state.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "pseudo_pairs": None if self.pseudo_pairs is None else self.pseudo_pairs.cpu(),
            "state": self.state.__dict__,
            "dataset": self.data.dataset_name if "dataset_name" in self.data else None,
            # The dataset by content (any path or copy of the same graphs matches) and by absolute path.
            "dataset_key": self.dataset_key,
            "dataset_path": _absolute_dataset(self.config.data.dataset),
        }

    def resume(self, path: str | os.PathLike | None = None) -> None:
        """Continue from ``last.pt`` (or ``path``): model, optimizer, RNG, pseudo seeds, epoch."""
        checkpoint = load_checkpoint(path or self.out / "last.pt", self.device)
        if _essential(Config.from_dict(checkpoint["config"])) != _essential(self.config):
            raise CheckpointError(
                f"{path or self.out / 'last.pt'} was trained with a different config; resume without options "
                "that change it, or train into a new --out folder"
            )
        check_state_fits(
            self.model, checkpoint["model"], path or self.out / "last.pt", checkpoint.get("dataset")
        )
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.generator.set_state(checkpoint["generator"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        pseudo = checkpoint["pseudo_pairs"]
        self.pseudo_pairs = None if pseudo is None else pseudo.to(self.device)
        self.state = TrainState(**checkpoint["state"])

    # ---------------------------------------------------------------------------------- training
    def _pair_batches(self) -> list[Tensor]:
        cfg = self.config.train
        num = self.train_pairs.size(1)
        order = torch.randperm(num, generator=self.generator).to(self.device)
        batches = list(self.train_pairs[:, order].split(cfg.pair_batch_size, dim=1))
        if cfg.steps_per_epoch > 0:
            batches = [batches[i % len(batches)] for i in range(cfg.steps_per_epoch)]
        return batches

    def _pseudo_batches(self, sizes: list[int]) -> list[Tensor | None]:
        """One batch of pseudo seeds per step, drawn before the epoch's steps (one host-to-device copy
        of the picks, none inside a step); the same draws, in the same order, as one per step."""
        if self.pseudo_pairs is None or self.pseudo_pairs.size(1) == 0:
            return [None] * len(sizes)
        count = self.pseudo_pairs.size(1)
        picks = [torch.randperm(count, generator=self.generator)[: min(size, count)] for size in sizes]
        lengths = [p.numel() for p in picks]
        moved = torch.cat(picks).to(self.device, non_blocking=True).split(lengths)
        return [self.pseudo_pairs[:, pick] for pick in moved]

    def _block(self, pairs: Tensor | None) -> Tensor | None:
        """This rank's block of a batch :math:`(2, B)` (the whole batch in one process; a batch smaller
        than the group gives a rank one of its pairs, so that no rank steps on nothing)."""
        if pairs is None or self.sharding is None:
            return pairs
        rows = self.sharding.rows(pairs.size(1))
        if rows.start == rows.stop:
            i = self.sharding.rank % pairs.size(1)
            rows = slice(i, i + 1)
        return pairs[:, rows]

    def train_epoch(self) -> dict[str, float]:
        """One epoch of optimiser steps; returns the mean of each loss term (and ``total``) over its
        steps, averaged over the ranks.

        The steps run on the model's device without a host round trip (:meth:`_steps`); the epoch's
        losses and whether all of them were finite reach the host once, at its end. A non-finite
        loss therefore stops training at the end of its epoch, with the checkpoints written before it.
        """
        self.model.train()
        batches = self._pair_batches()
        totals, finite = self._steps(batches, self._pseudo_batches([b.size(1) for b in batches]))
        names = sorted(totals)
        means = dict(
            zip(names, (torch.stack([totals[n] for n in names]) / len(batches)).tolist(), strict=True)
        )
        if not all_ranks_agree(bool(finite)):
            last = self.out / "last.pt"
            kept = (
                f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
            )
            raise TrainingDivergedError(
                f"loss became non-finite at epoch {self.state.epoch + 1} (epoch means {means}); {kept}. "
                "Lower train.lr or set train.grad_clip (e.g. --set train.grad_clip=1.0)"
            )
        return mean_over_ranks(means)

    def _steps(self, batches: list[Tensor], pseudo: list[Tensor | None]) -> tuple[dict[str, Tensor], Tensor]:
        """The optimiser steps of one epoch, on device tensors only: no ``.item()``, ``.cpu()`` or
        Python branch on a tensor's value (tests/training/test_device_steps.py). Returns the summed
        loss terms (0-dim tensors, ``total`` included) and a 0-dim bool, whether every loss was finite."""
        totals: dict[str, Tensor] = {}
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        for pairs, pseudo_pairs in zip(batches, pseudo, strict=True):
            terms = self.step(self.data, self._block(pairs), self._block(pseudo_pairs), self.loss_generator)
            loss = sum(self.weights.get(name, 1.0) * value for name, value in terms.items())
            finite = finite & torch.isfinite(loss.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
            self.optimizer.step()
            for name, value in (*terms.items(), ("total", loss)):
                totals[name] = totals[name] + value.detach() if name in totals else value.detach()
        return totals, finite

    def _iterative_due(self, epoch: int) -> bool:
        cfg = self.config.train
        if "w/o IT" in self.config.ablations:
            return False
        if cfg.iterative_epochs:
            return epoch in cfg.iterative_epochs
        return (
            cfg.iterative_every > 0
            and epoch >= cfg.iterative_start
            and (epoch - cfg.iterative_start) % cfg.iterative_every == 0
        )

    def evaluate(self, pairs: Tensor, csls_k: int = 0) -> dict[str, float]:
        """Metrics of ``pairs`` ``[2, P]`` with the current model (eval mode, then back to training)."""
        e = self.config.eval
        return evaluate_model_embedding(
            self.model,
            self.data,
            pairs,
            ks=tuple(e.ks),
            csls_k=csls_k,
            chunk_size=e.chunk_size,
            sharding=self.sharding,
        )

    def _log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        line = json.dumps(record)
        print(line, file=self.log_stream, flush=True)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def fit(self) -> TrainState:
        """Train for ``config.train.epochs`` epochs (from the current state), evaluating on the
        validation pairs every ``eval_every`` epochs and at the end; keeps ``best.pt`` by MRR."""
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.config.save(self.out / "config.yaml")
            if self.state.epoch == 0:  # a fresh run does not inherit the log of an earlier run here
                (self.out / "metrics.jsonl").unlink(missing_ok=True)
        try:
            if not getattr(self.model, "trainable", True):
                return self._fit_without_training()
            return self._fit_epochs()
        finally:
            barrier()  # the other ranks read best.pt once rank 0 has written it

    def _save(self, best: dict[str, Any] | None) -> None:
        """``last.pt`` and, when ``best`` (the validation figures) is given, ``best.pt`` (rank 0)."""
        if not self.main:
            return
        checkpoint = self._checkpoint()
        if best is not None:
            atomic_torch_save({**checkpoint, "optimizer": None, "valid": best}, self.out / "best.pt")
        atomic_torch_save(checkpoint, self.out / "last.pt")

    def _fit_epochs(self) -> TrainState:
        cfg = self.config.train
        start_epoch = self.state.epoch
        bar = None
        if self.progress and self.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.epochs, initial=start_epoch, desc="train", unit="epoch", file=sys.stderr)
        waited = 0
        started = time.time() - self.state.elapsed
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            if self._iterative_due(epoch):
                self.pseudo_pairs = propose_pseudo_seeds(
                    self.model,
                    self.data,
                    self.train_pairs,
                    self.config.eval.chunk_size,
                    self.sharding,
                    search=cfg.pseudo_search,
                    passes=cfg.pseudo_bootstrap,
                    sinkhorn=cfg.pseudo_sinkhorn,
                    sinkhorn_tau=cfg.pseudo_tau,
                    sinkhorn_top_k=cfg.pseudo_top_k,
                    previous=self.pseudo_pairs,
                )
                self.model.update_pseudo_seeds(self.pseudo_pairs)
            losses = self.train_epoch()
            self.state.epoch = epoch
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k in ("total", "mcl", "transe")})
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                # Without validation links (a refit on training + validation) the latest epoch is kept.
                valid = self.evaluate(self.valid_pairs) if self.valid_pairs.numel() else {}
                self.state.elapsed = time.time() - started
                record = {
                    "epoch": epoch,
                    "time_s": round(self.state.elapsed, 2),
                    "loss": {k: round(v, 6) for k, v in losses.items()},
                    "valid": {k: round(v, 6) for k, v in valid.items() if "/" not in k},
                    "valid_ranked_among": self.valid_targets,
                    "pseudo_seeds": 0 if self.pseudo_pairs is None else int(self.pseudo_pairs.size(1)),
                }
                self.state.history.append(record)
                improved = not valid or valid["mrr"] > self.state.best_valid_mrr
                if improved:
                    self.state.best_valid_mrr, self.state.best_epoch = valid.get("mrr", -math.inf), epoch
                    waited = 0
                else:
                    waited += 1
                record["best_epoch"] = self.state.best_epoch
                self._log(record)
                self._save(valid if improved else None)
                if cfg.patience and waited >= cfg.patience:
                    break
        if bar is not None:
            bar.close()
        return self.state

    def _fit_without_training(self) -> TrainState:
        """Models without a gradient step (LightEA): one call of ``model.fit`` on the training pairs,
        then the same validation record and checkpoints as an epoch of training."""
        started = time.time()
        rounds = self.model.fit(self.train_pairs, chunk_size=self.config.eval.chunk_size)
        self.state.epoch = 1
        valid = self.evaluate(self.valid_pairs) if self.valid_pairs.numel() else {}
        self.state.elapsed = time.time() - started
        self.state.best_valid_mrr, self.state.best_epoch = valid.get("mrr", -math.inf), 1
        record = {
            "epoch": 1,
            "time_s": round(self.state.elapsed, 2),
            "loss": {},
            "valid": {k: round(v, 6) for k, v in valid.items() if "/" not in k},
            "valid_ranked_among": self.valid_targets,
            "pseudo_seeds": int(self.model.pseudo.size(1)),
            "rounds": rounds,
            "best_epoch": 1,
        }
        self.state.history.append(record)
        self._log(record)
        self._save(valid)
        return self.state
