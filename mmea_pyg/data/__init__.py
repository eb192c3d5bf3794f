"""Datasets: the MMKG benchmarks, registered entity-alignment benchmarks and any graph-pair folder as PyG
datasets (download, parse, build, split), opened by name or path with :func:`open_dataset`.

The dataset classes are imported lazily, so that ``mmea download`` does not pay for importing PyG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["FB15KDB15K", "FB15KYAGO15K", "GraphPairDataset", "MMKGDataset", "content_key", "open_dataset"]

_LAZY = {
    "FB15KDB15K": "mmkg",
    "FB15KYAGO15K": "mmkg",
    "MMKGDataset": "mmkg",
    "GraphPairDataset": "graph_pair",
}


def content_key(data: Any) -> str:
    """SHA-256 of what a trained model depends on in a graph pair: the entity URIs and relation
    triples of both graphs and the links with their split. The same graphs give the same key whatever
    path or copy they were read from; checkpoints record it (``dataset_key``)."""
    import hashlib

    digest = hashlib.sha256()
    for side in ("source", "target"):
        digest.update("\n".join(map(str, getattr(data[side], "uri", ()) or ())).encode("utf-8"))
        digest.update(str(int(data[side].num_nodes)).encode())
        edges = data[side, "relation", side]
        for tensor in (edges.edge_index, edges.edge_type):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    aligned = data["source", "aligned", "target"]
    for name in ("edge_index", "train_mask", "valid_mask", "test_mask"):
        if name in aligned:
            digest.update(aligned[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"mmea_pyg.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_dataset(
    name_or_folder: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    format: str = "auto",
    ratio: float | None = None,
    split_seed: int = 0,
    valid_ratio: float | None = None,
    fold: int = 1,
    snapshot: int | None = None,
    text_model: str | None = None,
    mirror: str | None = None,
    trust_pickle: bool = False,
    log: bool = True,
) -> Any:
    """Open a dataset by registered name or by folder.

    * An MMKG benchmark name (``fb15k-db15k``, ``fb15k-yago15k``): :class:`~mmea_pyg.data.mmkg.MMKGDataset`
      (downloaded into ``<root>/mmkg`` when missing, mirror ``$MMEA_MIRROR``).
    * A registered entity-alignment name (``dbp15k-zh-en``, ``dbp15k-ja-en``, ``dbp15k-fr-en``,
      ``srprs-en-de``, ``srprs-en-fr``, ``openea-d-y-15k-v1``):
      :class:`~mmea_pyg.data.graph_pair.GraphPairDataset` over ``<root>/ea/<name>``, downloaded and verified
      first when a required file is missing (mirror ``$MMEA_EA_MIRROR``).
    * Any other existing folder: :class:`~mmea_pyg.data.graph_pair.GraphPairDataset` over it, in
      ``format`` (``"auto"``: detected). Registered names win over a folder of the same name; pass
      ``./name`` for the folder.

    Args:
        name_or_folder: A registered name (case-insensitive) or a folder.
        root: Data root (default ``$MMEA_DATA`` or ``./datasets``).
        format: Layout of a folder (``"auto"``, ``openea``, ``jape``, ``meaformer``, ``plain``, ``contea``).
        ratio: The dataset's split ratio, ``None`` for its default. **Its meaning is the dataset's**: for
            the MMKG benchmarks the training fraction (default 0.2); for graph pairs the fraction of the links
            known to the model, training + validation (default 0.3, i.e. 20% train / 10% valid / 70% test).
            Layouts that ship a split ignore it.
        split_seed: Seed of the split.
        valid_ratio: Fraction of all links used for validation (default 0.1).
        fold: OpenEA fold.
        snapshot: ContEA snapshot (0 = base).
        text_model: Text encoder of the attribute sentences.
        mirror: Mirror folder or URL for a download (``None``: the environment default).
        trust_pickle: Allow a MEAformer ``.pkl`` image-feature dictionary to be unpickled.
        log: Progress messages.

    Raises:
        MMEAError: An unknown name that is not a folder (the message lists the registered names and the
            layouts a folder may have), or any problem of the files.
    """
    from mmea_pyg.data import registry

    text = os.fspath(name_or_folder)
    key = text.strip().lower()
    valid = 0.1 if valid_ratio is None else valid_ratio
    if key in registry.DATASETS:
        _check_mmkg_options(key, format, fold, snapshot)
        return _open_mmkg(key, root, ratio, split_seed, valid, text_model, mirror, log)
    options = {
        "root": root,
        "split_ratio": 0.3 if ratio is None else ratio,
        "split_seed": split_seed,
        "valid_ratio": valid,
        "fold": fold,
        "snapshot": snapshot,
        "text_model": text_model,
        "trust_pickle": trust_pickle,
        "log": log,
    }
    if key in registry.EA_DATASETS:
        return _open_registered_pair(key, registry.EA_DATASETS[key], format, mirror, options)
    return _open_folder(text, format, options)


def _check_mmkg_options(key: str, format: str, fold: int, snapshot: int | None) -> None:
    """The options of a graph-pair folder do not apply to an MMKG benchmark."""
    from mmea_pyg.errors import ConfigError

    if format not in ("auto", "mmkg") or snapshot is not None or fold != 1:
        raise ConfigError(
            f"{key} is an MMKG benchmark: --layout, --fold and --snapshot do not apply to it; drop them"
        )


def _open_mmkg(
    key: str,
    root: str | os.PathLike | None,
    ratio: float | None,
    split_seed: int,
    valid: float,
    text_model: str | None,
    mirror: str | None,
    log: bool,
) -> Any:
    """The MMKG benchmark ``key`` (training fraction ``ratio``, default 0.2)."""
    from mmea_pyg.data.mmkg import MMKGDataset

    return MMKGDataset(
        root,
        name=key,
        split_ratio=0.2 if ratio is None else ratio,
        split_seed=split_seed,
        valid_ratio=valid,
        text_model=text_model,
        mirror=mirror,
        log=log,
    )


def _open_registered_pair(
    key: str, card: Any, format: str, mirror: str | None, options: dict[str, Any]
) -> Any:
    """The registered entity-alignment benchmark ``key`` (its ``card``), downloaded first when a file is missing."""
    from mmea_pyg.data.graph_pair import GraphPairDataset
    from mmea_pyg.errors import ConfigError

    if format not in ("auto", card.layout):
        raise ConfigError(f"{key} is in the {card.layout} layout; drop --layout {format}")
    folder = _ensure_downloaded(card, options["root"], mirror, options["log"])
    return GraphPairDataset(folder, card.layout, name=card.name, kg_names=card.kg_names, **options)


def _open_folder(text: str, format: str, options: dict[str, Any]) -> Any:
    """The graph-pair folder ``text``; an error naming the registered datasets and layouts otherwise."""
    from mmea_pyg.data import registry
    from mmea_pyg.errors import ConfigError

    folder = Path(text).expanduser()
    if folder.is_dir():
        from mmea_pyg.data.graph_pair import GraphPairDataset

        return GraphPairDataset(folder, format, **options)
    from mmea_pyg.data.formats import layout_help

    raise ConfigError(
        f"{text!r} is neither a registered dataset nor a folder; registered: "
        f"{', '.join(registry.registered_names())}; a folder may hold one of these layouts: {layout_help()}"
    )


def _ensure_downloaded(card: Any, root: str | os.PathLike | None, mirror: str | None, log: bool) -> Path:
    """``<root>/ea/<name>``, downloaded and verified first when a required file is missing; a download
    into the same root by another process is waited for."""
    from mmea_pyg.data import download as dl
    from mmea_pyg.data.files import ea_dir

    directory = ea_dir(root)
    dl.wait_for_downloads(directory)
    if not all((directory / path).is_file() for path in card.required):
        dl.download_dataset(card.name, root=root, mirror=mirror, progress=log)
    return directory / card.name
