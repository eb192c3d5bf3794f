"""ContEA snapshots (Wang et al., "Facing Changes: Continual Entity Alignment for Growing Knowledge
Graphs", ISWC 2022), e.g. ``JA-EN/``: a DBP15K pair that grows in batches.

Files (ids only; UTF-8, ids separated by tabs or spaces):

* ``rel_dict``: ``id<TAB>relation URI``, one relation id space for both KGs.
* ``base/triples_1``, ``base/triples_2``: ``head relation tail`` ids of the base KGs.
* ``base/train_links``, ``base/valid_links``, ``base/test_links``: ``KG1 id<TAB>KG2 id``.
* ``batchK/new_triples_1``, ``batchK/new_triples_2``: triples added by batch ``K`` (1, 2, ...), which may
  repeat earlier ones; ``batchK/new_test_links``: links among the new entities;
  ``batchK/all_test_links`` (optional): the test links of snapshot ``K``, used as a cross-check.

There are no ``ent_ids`` files: an entity is its id (``uri`` and ``name`` are the id as written). The
entity ids of the two KGs share one space and are disjoint (an id used by both KGs is an error).
Snapshot ``k`` (0 = base) is the union of ``base`` and ``batch1`` .. ``batchk``: its entities are those of
its triples, numbered in first-seen order (base first, so snapshot ``k``'s numbering extends snapshot
``k - 1``'s), its relations those its triples use, in id order; training and validation links are
``base/train_links`` and ``base/valid_links``, test links ``base/test_links`` plus ``new_test_links`` of
batches 1..k. When ``batchk/all_test_links`` lists other links a warning counts the difference.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmea_pyg.data.formats._common import (
    TEST,
    TRAIN,
    VALID,
    GraphPair,
    KGData,
    LinkSet,
    TripleBuffer,
    id_fields,
    log,
    read_lines,
    require_triples,
    warn_unconnected,
)
from mmea_pyg.data.formats.jape import id_name
from mmea_pyg.errors import DataFormatError

NAME = "contea"
TITLE = "ContEA snapshots"
REQUIRED: tuple[tuple[str, ...], ...] = (
    ("rel_dict",),
    ("base/triples_1",),
    ("base/triples_2",),
    ("base/train_links",),
    ("base/valid_links",),
    ("base/test_links",),
)
BATCH_FILES = ("new_triples_1", "new_triples_2", "new_test_links")


def batches(folder: Path) -> list[int]:
    """The batch numbers present (``batch1``, ``batch2``, ...), sorted."""
    found = []
    for path in folder.iterdir():
        match = re.fullmatch(r"batch(\d+)", path.name)
        if match and path.is_dir():
            found.append(int(match.group(1)))
    return sorted(found)


def _check_snapshot(folder: Path, snapshot: int | None) -> int:
    k = 0 if snapshot is None else int(snapshot)
    present = batches(folder)
    if k < 0 or any(j not in present for j in range(1, k + 1)):
        last = 0
        while last + 1 in present:
            last += 1
        raise DataFormatError(
            folder,
            f"snapshot {k} does not exist (it needs batch1 .. batch{k}; this folder has snapshots 0 .. {last}); "
            "pass --snapshot with one of them",
        )
    for j in range(1, k + 1):
        for name in BATCH_FILES:
            if not (folder / f"batch{j}" / name).is_file():
                raise DataFormatError(
                    folder / f"batch{j}" / name,
                    f"file not found; snapshot {k} needs it (or pick an earlier one)",
                )
    return k


def input_files(folder: Path, *, fold: int = 1, snapshot: int | None = None) -> list[Path]:
    del fold
    k = _check_snapshot(folder, snapshot)
    files = [folder / "rel_dict", folder / "base" / "triples_1", folder / "base" / "triples_2"]
    for j in range(1, k + 1):
        files += [folder / f"batch{j}" / "new_triples_1", folder / f"batch{j}" / "new_triples_2"]
    files += [folder / "base" / n for n in ("train_links", "valid_links", "test_links")]
    files += [folder / f"batch{j}" / "new_test_links" for j in range(1, k + 1)]
    check = folder / f"batch{k}" / "all_test_links"
    if k and check.is_file():
        files.append(check)
    return files


class _Side:
    def __init__(self, kg: int) -> None:
        self.kg = kg
        self.index: dict[int, int] = {}
        self.first: dict[int, tuple[Path, int]] = {}
        self.ids: list[int] = []
        self.triples = TripleBuffer()
        self.relations: set[int] = set()

    def add(self, ident: int, path: Path, number: int, other: _Side) -> int:
        found = self.index.get(ident)
        if found is not None:
            return found
        if ident in other.index:
            where_path, where_line = other.first[ident]
            raise DataFormatError(
                path,
                f"id {ident} is an entity of KG{other.kg} (first in {where_path}, line {where_line}); the two "
                "KGs share one id space, so an id belongs to one KG; check the column order and the file",
                number,
            )
        self.index[ident] = len(self.ids)
        self.first[ident] = (path, number)
        self.ids.append(ident)
        return self.index[ident]


def _read_triples(path: Path, side: _Side, other: _Side, relations: dict[int, str]) -> None:
    for number, line in read_lines(path):
        head, rel, tail = id_fields(path, number, line, 3, "head relation tail")
        if rel not in relations:
            raise DataFormatError(
                path, f"relation id {rel} is not defined in rel_dict; add it there or remove the line", number
            )
        h = side.add(head, path, number, other)
        t = side.add(tail, path, number, other)
        side.relations.add(rel)
        side.triples.add(h, rel, t)


def _read_links(path: Path, code: int, sides: tuple[_Side, _Side], links: LinkSet) -> None:
    reader = links.reader(path)
    seen: tuple[list, list] = ([], [])
    connected = (len(sides[0].ids), len(sides[1].ids))
    for number, line in read_lines(path):
        a, b = id_fields(path, number, line, 2, "KG1 id<TAB>KG2 id")
        s = sides[0].add(a, path, number, sides[1])
        t = sides[1].add(b, path, number, sides[0])
        seen[0].append((s, f"line {number}, id {a}"))
        seen[1].append((t, f"line {number}, id {b}"))
        reader.add(number, s, t, code, f"{a} -> {b}")
    reader.close()
    warn_unconnected(path, seen[0], range(connected[0]), "KG1")
    warn_unconnected(path, seen[1], range(connected[1]), "KG2")


def read(folder: Path, *, fold: int = 1, snapshot: int | None = None, trust_pickle: bool = False):
    del fold, trust_pickle
    k = _check_snapshot(folder, snapshot)
    relations: dict[int, str] = {}
    rel_path = folder / "rel_dict"
    for number, line in read_lines(rel_path):
        ident, name = id_name(rel_path, number, line, "relation URI")
        if ident in relations:
            raise DataFormatError(rel_path, f"relation id {ident} is defined twice; keep one line", number)
        relations[ident] = name

    sides = (_Side(1), _Side(2))
    parts = [("base", "triples_{}")] + [(f"batch{j}", "new_triples_{}") for j in range(1, k + 1)]
    for directory, pattern in parts:
        for i in (0, 1):
            _read_triples(folder / directory / pattern.format(i + 1), sides[i], sides[1 - i], relations)
    for i, side in enumerate(sides):
        require_triples(folder / "base" / f"triples_{i + 1}", f"KG{i + 1}", len(side.triples))

    links = LinkSet()
    for name, code in (("train_links", TRAIN), ("valid_links", VALID), ("test_links", TEST)):
        _read_links(folder / "base" / name, code, sides, links)
    for j in range(1, k + 1):
        _read_links(folder / f"batch{j}" / "new_test_links", TEST, sides, links)
    if k:
        _cross_check(folder / f"batch{k}" / "all_test_links", links, sides)

    kgs = []
    for i, side in enumerate(sides):
        used = sorted(side.relations)
        triples = side.triples.to_numpy()
        if len(triples):  # relation ids -> 0..R-1 by rank: memory of R, whatever the ids' size
            triples[:, 1] = np.searchsorted(np.asarray(used, dtype=np.int64), triples[:, 1])
        ids = [str(e) for e in side.ids]
        kgs.append(KGData(f"KG{i + 1}", ids, [relations[r] for r in used], triples))
    return GraphPair(
        format=NAME,
        folder=folder,
        source=kgs[0],
        target=kgs[1],
        links=links.array(),
        link_split=links.split(),
        split_source="base train/valid/test" + (f" + new_test_links of batch1..batch{k}" if k else ""),
        files=input_files(folder, snapshot=k),
    )


def _cross_check(path: Path, links: LinkSet, sides: tuple[_Side, _Side]) -> None:
    if not path.is_file():
        return
    listed: set[tuple[int, int]] = set()
    for number, line in read_lines(path):
        a, b = id_fields(path, number, line, 2, "KG1 id<TAB>KG2 id")
        listed.add((a, b))
    ids = (sides[0].ids, sides[1].ids)
    tests = {(ids[0][s], ids[1][t]) for (s, t), c in zip(links.pairs, links.codes, strict=True) if c == TEST}
    if listed != tests:
        log.warning(
            "%s: lists %d test link(s) that base/test_links and the new_test_links do not, and misses %d of "
            "theirs; the base and new_test_links files are used",
            path,
            len(listed - tests),
            len(tests - listed),
        )
