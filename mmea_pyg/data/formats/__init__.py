"""Readers of the entity-alignment file layouts, one small module per layout, and their common result.

Every reader parses one folder into a :class:`GraphPair`: per KG the entity identifiers (ordered), the
relation triples as index arrays with the relation names, attribute triples (or attribute-name lists),
display labels and optional image-feature vectors; the links, with the split the layout ships where it
ships one. Readers only parse and validate: they never encode text or draw splits
(:class:`~mmea_pyg.data.graph_pair.GraphPairDataset` does both, once).

Layouts (:data:`LAYOUTS`, detected in this order by :func:`detect_format`):

============  ===========================================================================================
``contea``    ContEA snapshots: ``rel_dict``, ``base/{triples_1,triples_2,train_links,valid_links,test_links}``,
              ``batchK/{new_triples_1,new_triples_2,new_test_links[,all_test_links]}`` (ids only)
``meaformer`` MEAformer / MCLEA: ``ent_ids_1/2``, ``triples_1/2``, ``ill_ent_ids``, ``training_attrs_1/2``,
              ``*_id_img_feature_dict.{npz,pkl}``
``jape``      JAPE / DBP15K / SRPRS: ``ent_ids_1/2``, ``triples_1/2``, ``ref_ent_ids`` [, ``sup_ent_ids``,
              ``rel_ids_1/2``, ``training_attrs_1/2``]
``openea``    OpenEA: ``rel_triples_1/2``, ``ent_links`` [, ``attr_triples_1/2``, ``721_5fold/K/...``]
``plain``     ``triples_1.{nt,tsv}``, ``triples_2.{nt,tsv}`` [, ``attr_triples_1/2.tsv``, ``links.tsv``]
============  ===========================================================================================

Each module's docstring states its exact rules.

The files of the MMKG release (registered benchmarks, not a folder layout: no reader here) are parsed by
:mod:`mmea_pyg.data.formats.mmkg` for :class:`~mmea_pyg.data.mmkg.MMKGDataset`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from mmea_pyg.data.formats._common import KNOWN, NO_SPLIT, TEST, TRAIN, VALID, GraphPair, KGData
from mmea_pyg.errors import ConfigError, MMEAError

__all__ = [
    "KNOWN",
    "LAYOUTS",
    "NO_SPLIT",
    "TEST",
    "TRAIN",
    "VALID",
    "GraphPair",
    "KGData",
    "detect_format",
    "input_files",
    "layout_help",
    "read_graph_pair",
]


def _layouts() -> dict[str, ModuleType]:
    from mmea_pyg.data.formats import contea, jape, meaformer, openea, plain

    return {m.NAME: m for m in (contea, meaformer, jape, openea, plain)}


#: Layout name -> reader module, in detection order.
LAYOUTS: tuple[str, ...] = ("contea", "meaformer", "jape", "openea", "plain")


def _present(folder: Path, alternatives: tuple[str, ...]) -> bool:
    return any((folder / name).is_file() for name in alternatives)


def _missing(folder: Path, module: ModuleType) -> list[str]:
    return ["|".join(alt) for alt in module.REQUIRED if not _present(folder, alt)]


def layout_help() -> str:
    """One line naming the files each layout needs."""
    modules = _layouts()
    return "; ".join(
        f"{name} needs {', '.join('|'.join(alt) for alt in modules[name].REQUIRED)}" for name in LAYOUTS
    )


def _found(folder: Path, limit: int = 12) -> str:
    entries = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.name != "MANIFEST.json"
    )
    if not entries:
        return "nothing"
    shown = ", ".join(entries[:limit])
    return shown + (f" and {len(entries) - limit} more" if len(entries) > limit else "")


def _check_folder(folder: str | os.PathLike) -> Path:
    path = Path(folder).expanduser()
    if not path.exists():
        raise MMEAError(f"{path}: no such folder; pass a folder that holds a graph pair ({layout_help()})")
    if not path.is_dir():
        raise MMEAError(f"{path}: not a folder; pass the folder that holds the files ({layout_help()})")
    return path


def detect_format(folder: str | os.PathLike) -> str:
    """The layout of ``folder``: the first of :data:`LAYOUTS` whose required files are all present.

    Raises:
        MMEAError: The folder does not exist, or no layout's files are all there (the message lists what
            was found and what each layout needs).
    """
    path = _check_folder(folder)
    modules = _layouts()
    for name in LAYOUTS:
        if not _missing(path, modules[name]):
            return name
    present = {n: len(modules[n].REQUIRED) - len(_missing(path, modules[n])) for n in LAYOUTS}
    best = max(present.values())
    hint = ""
    if best:
        closest = [
            f"{n}, which lacks {', '.join(_missing(path, modules[n]))}" for n in LAYOUTS if present[n] == best
        ]
        hint = f" (closest: {'; or '.join(closest)})"
    raise MMEAError(
        f"{path}: no known graph-pair layout{hint}; found {_found(path)}. {layout_help()}; add the missing "
        "files"
    )


def _resolve(folder: str | os.PathLike, format: str) -> tuple[Path, ModuleType]:
    path = _check_folder(folder)
    name = format.strip().lower()
    modules = _layouts()
    if name == "auto":
        name = detect_format(path)
    if name not in modules:
        raise ConfigError(f"unknown layout {format!r}; choose auto or one of: {', '.join(LAYOUTS)}")
    module = modules[name]
    missing = _missing(path, module)
    if missing:
        raise MMEAError(
            f"{path}: the {name} layout needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"missing; found {_found(path)}. Add the file(s) or name another layout with --layout (format= in "
            f"Python): {layout_help()}"
        )
    return path, module


def _check_options(name: str, fold: int, snapshot: int | None) -> None:
    if fold != 1 and name != "openea":
        raise ConfigError(f"--fold {fold} applies to OpenEA folders only (this folder is {name}); drop it")
    if snapshot is not None and name != "contea":
        raise ConfigError(
            f"--snapshot {snapshot} applies to ContEA folders only (this folder is {name}); drop it"
        )


def resolve_format(folder: str | os.PathLike, format: str = "auto") -> str:
    """The layout name ``format`` stands for in ``folder`` (``"auto"``: :func:`detect_format`), checked to
    have its required files."""
    return _resolve(folder, format)[1].NAME


def input_files(
    folder: str | os.PathLike, format: str = "auto", *, fold: int = 1, snapshot: int | None = None
) -> list[Path]:
    """The files :func:`read_graph_pair` would read (existing ones), without parsing them: what a cache
    of the parsed result must be keyed on."""
    path, module = _resolve(folder, format)
    _check_options(module.NAME, fold, snapshot)
    return module.input_files(path, fold=fold, snapshot=snapshot)


def read_graph_pair(
    folder: str | os.PathLike,
    format: str = "auto",
    *,
    fold: int = 1,
    snapshot: int | None = None,
    trust_pickle: bool = False,
) -> GraphPair:
    """Parse the graph pair in ``folder``.

    Args:
        folder: The folder with the files (read only; nothing is written there).
        format: ``"auto"`` (:func:`detect_format`) or one of :data:`LAYOUTS`.
        fold: OpenEA fold (``721_5fold/<fold>/``).
        snapshot: ContEA snapshot (0 = base, K = base + batches 1..K); ``None``: the base.
        trust_pickle: Allow a MEAformer ``.pkl`` image-feature dictionary to be unpickled (unpickling
            can run code; prefer the ``.npz`` form).

    Raises:
        MMEAError: Unknown layout, missing file, malformed line (as :class:`~mmea_pyg.errors.DataFormatError`
            with file and line), a pickle without ``trust_pickle``.
    """
    path, module = _resolve(folder, format)
    _check_options(module.NAME, fold, snapshot)
    return module.read(path, fold=fold, snapshot=snapshot, trust_pickle=trust_pickle)
