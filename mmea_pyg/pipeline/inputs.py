r"""A run's inputs: its config (:func:`make_config`: preset < file < arguments < ``--set``) and its
data (:func:`load_dataset`: the graph pair with the run's split)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from torch_geometric.data import HeteroData

from mmea_pyg.config import Config
from mmea_pyg.errors import ConfigError
from mmea_pyg.runs import default_out

__all__ = ["default_ratio", "load_dataset", "make_config"]


def default_ratio(dataset: str) -> float:
    """The split ratio a dataset reads by default: 0.2 (training share) for the MMKG benchmarks, 0.3
    (known share: training + validation) for graph pairs (:class:`~mmea_pyg.config.DataConfig`)."""
    from mmea_pyg.data.registry import DATASETS

    return 0.2 if dataset.strip().lower() in DATASETS else 0.3


def make_config(
    model: str | None = None,
    dataset: str | None = None,
    config: str | os.PathLike | Config | None = None,
    overrides: Iterable[str] = (),
    ablations: Iterable[str] = (),
    out: str | os.PathLike | None = None,
    **options: Any,
) -> Config:
    """The config of a run: ``config`` (a :class:`Config`, YAML file or preset name; default the
    model's validated preset) < explicit arguments < ``overrides`` (``"section.key=value"``).

    Args:
        model: ``clamea``, ``ricea`` or ``mimea``.
        dataset: A registered dataset name.
        config: Base config.
        overrides: ``--set`` assignments, applied last.
        ablations: Table 2 switches (``"w/o V"``, ``"wo_v"`` ...).
        out: Run folder (default :func:`default_out`).
        **options: Shortcuts ``ratio``, ``epochs``, ``seed``, ``device``, ``root``, ``mirror``
            (:obj:`None` values are ignored).
    """
    keys = {
        "ratio": "data.ratio",
        "epochs": "train.epochs",
        "seed": "train.seed",
        "device": "train.device",
        "root": "data.root",
        "mirror": "data.mirror",
    }
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    if isinstance(config, Config):
        base, from_file = Config.from_dict(config.to_dict()), True
    elif config is not None:
        base, from_file = Config.load(config), True
    else:
        base, from_file = Config.recommended(model or Config().model.name), False
    # Explicit arguments are values, never YAML: a folder named 2024, on or "my graphs" stays a string.
    explicit: dict[str, Any] = {"data.dataset": str(dataset)} if dataset is not None else {}
    explicit |= {"model.name": model} if model is not None else {}
    explicit |= {
        keys[k]: str(v) if k in ("root", "mirror") else v for k, v in options.items() if v is not None
    }
    ablations = list(ablations)
    if ablations:
        explicit["model.ablations"] = ablations
    result = base.with_values(explicit).override(list(overrides))
    result.model.ablations = sorted(result.ablations)  # canonical Table 2 names (validated)
    if result.data.ratio is None:
        result.data.ratio = default_ratio(result.data.dataset)
    if out is not None:
        result.out = str(out)
    elif not (from_file and result.out != Config().out):
        result.out = default_out(result)
    return result


def load_dataset(config: Config, progress: bool = True, root: str | os.PathLike | None = None) -> HeteroData:
    """The graph pair of ``config.data`` (a registered name or a folder, :func:`mmea_pyg.data.open_dataset`)
    with the run's split, built and cached on first use."""
    from mmea_pyg.data import open_dataset

    d = config.data
    dataset = open_dataset(
        d.dataset,
        root=root or d.root,
        format=d.format,
        ratio=d.ratio,
        split_seed=config.split_seed,
        valid_ratio=d.valid_ratio,
        fold=d.fold,
        snapshot=d.snapshot,
        text_model=d.text_model,
        mirror=d.mirror,
        trust_pickle=d.trust_pickle,
        log=progress,
    )
    if d.valid_in_train:
        from mmea_pyg.data.splits import with_valid_in_train

        return with_valid_in_train(dataset[0])
    return dataset[0]
