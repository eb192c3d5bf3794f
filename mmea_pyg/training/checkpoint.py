"""Checkpoints of a run: reading one safely (:func:`load_checkpoint`), checking its weights against the
model its config builds for the data (:func:`check_state_fits`) and rebuilding that model
(:func:`load_model`). :class:`~mmea_pyg.training.trainer.Trainer` writes them (format
:data:`CHECKPOINT_FORMAT`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.config import Config
from mmea_pyg.errors import MMEAError
from mmea_pyg.io import UnsafeFileError, resolve_device, safe_torch_load
from mmea_pyg.models import build_model
from mmea_pyg.models.base import AlignmentModel

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "check_state_fits", "load_checkpoint", "load_model"]

#: Version of the checkpoint layout; :func:`load_checkpoint` refuses any other.
CHECKPOINT_FORMAT = 1


class CheckpointError(MMEAError):
    """A checkpoint cannot be read or does not fit the data."""


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :class:`~mmea_pyg.training.trainer.Trainer` without running code:
    ``torch.load`` with ``weights_only=True`` (tensors, containers and plain values; the config is stored
    as a plain dict).

    Raises:
        CheckpointError: The file is missing, unreadable, or not an mmea-pyg checkpoint.
        UnsafeFileError: The file needs more than tensors and plain data (it could run code).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found; train first (`mmea train --out {path.parent}`)")
    try:
        checkpoint = safe_torch_load(path, map_location, what="checkpoint")
    except UnsafeFileError:
        raise
    except MMEAError as exc:
        raise CheckpointError(str(exc)) from None
    missing = [
        key
        for key in ("config", "model", "epoch")
        if not isinstance(checkpoint, dict) or key not in checkpoint
    ]
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT or missing:
        raise CheckpointError(
            f"{path}: not an mmea-pyg checkpoint (format {CHECKPOINT_FORMAT}"
            + (f"; missing {', '.join(missing)}" if isinstance(checkpoint, dict) and missing else "")
            + "); pass the best.pt or last.pt of a run folder"
        )
    if not isinstance(checkpoint["config"], dict):
        raise CheckpointError(
            f"{path}: its config is not a mapping; pass the best.pt or last.pt of a run folder"
        )
    return checkpoint


def check_state_fits(model: torch.nn.Module, state: Any, path: str | os.PathLike, dataset: Any) -> None:
    """Check a checkpoint's model weights against the model built for the data, tensor by tensor,
    before :meth:`~torch.nn.Module.load_state_dict` (whose error lists every tensor over many lines).

    A module's ``variable_buffers`` (names of buffers whose size the checkpoint decides, such as the
    pseudo anchors) are checked for their number of dimensions only.

    Raises:
        CheckpointError: ``state`` is not a mapping, or the first tensor (in the model's order) that is
            missing, not a tensor, or of another shape; then the first tensor the model does not have.
    """
    fix = f"evaluate it on the data it was trained on (dataset {dataset!r}) or retrain"
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: its model weights are a {type(state).__name__}, not tensors by name; {fix}"
        )
    wanted = model.state_dict()
    variable = {
        f"{prefix}.{buffer}" if prefix else buffer
        for prefix, module in model.named_modules()
        for buffer in getattr(module, "variable_buffers", ())
    }
    for name, expected in wanted.items():
        if name not in state:
            raise CheckpointError(f"{path}: tensor {name} is missing; {fix}")
        value = state[name]
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: {name} is a {type(value).__name__}, not a tensor; {fix}")
        if value.shape != expected.shape and not (name in variable and value.dim() == expected.dim()):
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(value.shape)}, the model built from its config for "
                f"this data needs {tuple(expected.shape)}; {fix}"
            )
    unexpected = [name for name in state if name not in wanted]
    if unexpected:
        raise CheckpointError(
            f"{path}: tensor {unexpected[0]} is not part of the model its config builds; {fix}"
        )


def load_model(
    path: str | os.PathLike, data: HeteroData, device: str = "auto", checkpoint: dict | None = None
) -> tuple[AlignmentModel, Config, dict]:
    """Rebuild the model of a checkpoint for ``data``; returns ``(model, config, checkpoint)``.
    ``checkpoint``: the file's content when the caller has already read it (:func:`load_checkpoint`)."""
    checkpoint = load_checkpoint(path, "cpu") if checkpoint is None else checkpoint
    config = Config.from_dict(checkpoint["config"], source=str(path))
    dev = resolve_device(device)
    model = build_model(config, data)
    check_state_fits(model, checkpoint["model"], path, checkpoint.get("dataset"))
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "state dict mismatch"
        raise CheckpointError(
            f"{path} does not fit dataset {checkpoint.get('dataset')!r} ({reason}); evaluate it on the data "
            "it was trained on"
        ) from None
    return model.to(dev).eval(), config, checkpoint
