"""OpenEA layout (Sun et al., VLDB 2020), e.g. ``D_Y_15K_V1/``.

Files (UTF-8, tab-separated, ``\\n`` or ``\\r\\n`` line endings):

* ``rel_triples_1``, ``rel_triples_2`` (required): ``head<TAB>relation<TAB>tail`` URIs.
* ``attr_triples_1``, ``attr_triples_2`` (optional, may be empty): ``entity<TAB>attribute<TAB>value``; a
  quoted value loses its quotes, datatype and language tag.
* ``ent_links`` (required): ``source<TAB>target``, every link.
* ``721_5fold/<fold>/{train_links,valid_links,test_links}`` (optional): the shipped split of fold
  ``fold`` (default 1; ``valid_links`` may be absent). Without a ``721_5fold`` folder the links of
  ``ent_links`` get the dataset's seeded split. When the fold's files and ``ent_links`` disagree, the
  fold's links are used and a warning counts the difference.

Entities are numbered in first-seen order: relation triples of the KG, then attribute triples, then
links (a linked entity in no triple is kept, with a warning).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmea_pyg.data.formats._common import (
    NO_SPLIT,
    TEST,
    TRAIN,
    VALID,
    EntityTable,
    GraphPair,
    KGData,
    LinkSet,
    TripleBuffer,
    clean_literal,
    fields,
    log,
    read_lines,
    read_uri_links,
    require_triples,
    strip_brackets,
)
from mmea_pyg.errors import DataFormatError

NAME = "openea"
TITLE = "OpenEA (Sun et al., VLDB 2020)"
REQUIRED: tuple[tuple[str, ...], ...] = (("rel_triples_1",), ("rel_triples_2",), ("ent_links",))
FOLDS = "721_5fold"
SPLIT_FILES = (("train_links", TRAIN), ("valid_links", VALID), ("test_links", TEST))


def _fold_dir(folder: Path, fold: int) -> Path | None:
    """The fold's folder, ``None`` without any ``721_5fold``; an error for a fold that does not exist."""
    folds = folder / FOLDS
    if not folds.is_dir():
        if fold != 1:
            raise DataFormatError(
                folds,
                f"no such folder, so fold {fold} does not exist; drop --fold (the seeded split is used)",
            )
        return None
    chosen = folds / str(fold)
    if not chosen.is_dir():
        found = sorted(p.name for p in folds.iterdir() if p.is_dir())
        raise DataFormatError(
            chosen, f"no such fold (found {', '.join(found) or 'none'}); pass --fold with one of them"
        )
    for name in ("train_links", "test_links"):
        if not (chosen / name).is_file():
            raise DataFormatError(chosen / name, "file not found; a fold needs train_links and test_links")
    return chosen


def input_files(folder: Path, *, fold: int = 1, snapshot: int | None = None) -> list[Path]:
    del snapshot
    files = [folder / "rel_triples_1", folder / "rel_triples_2"]
    files += [folder / n for n in ("attr_triples_1", "attr_triples_2") if (folder / n).is_file()]
    chosen = _fold_dir(folder, fold)
    if chosen is not None:
        files += [chosen / n for n, _ in SPLIT_FILES if (chosen / n).is_file()]
    files.append(folder / "ent_links")
    return files


def _read_triples(path: Path, table: EntityTable, kg: str) -> tuple[list[str], np.ndarray]:
    relations: dict[str, int] = {}
    buffer = TripleBuffer()
    for number, line in read_lines(path):
        head, rel, tail = fields(path, number, line, 3, "head<TAB>relation<TAB>tail")
        r = relations.setdefault(rel, len(relations))
        buffer.add(table.add(head), r, table.add(tail))
    require_triples(path, kg, len(buffer))
    return list(relations), buffer.to_numpy()


def _read_attributes(path: Path, table: EntityTable) -> list[tuple[int, str, str | None]]:
    out: list[tuple[int, str, str | None]] = []
    if not path.is_file():
        return out
    for number, line in read_lines(path):
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
            raise DataFormatError(
                path,
                f"expected 3 tab-separated fields 'entity<TAB>attribute<TAB>value', got {line[:120]!r}; "
                "fix the line",
                number,
            )
        out.append((table.add(parts[0].strip()), parts[1].strip(), clean_literal(parts[2])))
    return out


def read(folder: Path, *, fold: int = 1, snapshot: int | None = None, trust_pickle: bool = False):
    del snapshot, trust_pickle
    chosen = _fold_dir(folder, fold)
    source, target = EntityTable(), EntityTable()
    rel1, triples1 = _read_triples(folder / "rel_triples_1", source, "KG1")
    rel2, triples2 = _read_triples(folder / "rel_triples_2", target, "KG2")
    connected = (len(source), len(target))
    attrs1 = _read_attributes(folder / "attr_triples_1", source)
    attrs2 = _read_attributes(folder / "attr_triples_2", target)

    links = LinkSet()
    files = input_files(folder, fold=fold)
    if chosen is None:
        read_uri_links(folder / "ent_links", links, NO_SPLIT, source, target, *connected)
        split_source = None
    else:
        for name, code in SPLIT_FILES:
            if (chosen / name).is_file():
                read_uri_links(chosen / name, links, code, source, target, *connected)
        split_source = f"{FOLDS}/{fold}"
        _cross_check(folder / "ent_links", links, source, target)

    return GraphPair(
        format=NAME,
        folder=folder,
        source=KGData("KG1", source.entities, rel1, triples1, attrs1),
        target=KGData("KG2", target.entities, rel2, triples2, attrs2),
        links=links.array(),
        link_split=links.split(),
        split_source=split_source,
        files=files,
    )


def _cross_check(path: Path, links: LinkSet, source: EntityTable, target: EntityTable) -> None:
    """Warn when ``ent_links`` and the fold's files do not hold the same links."""
    listed: set[tuple[str, str]] = set()
    for number, line in read_lines(path):
        src, tgt = fields(path, number, line, 2, "source<TAB>target")
        listed.add((strip_brackets(src), strip_brackets(tgt)))
    in_fold = {(source.entities[s], target.entities[t]) for s, t in links.pairs}
    only_listed, only_fold = len(listed - in_fold), len(in_fold - listed)
    if only_listed or only_fold:
        log.warning(
            "%s: %d link(s) are in no file of the fold and the fold has %d link(s) not listed here; the "
            "fold's links are used",
            path,
            only_listed,
            only_fold,
        )
