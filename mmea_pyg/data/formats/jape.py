"""JAPE layout (Sun et al., ISWC 2017): DBP15K, SRPRS and most id-based EA releases.

Files (UTF-8, ``\\n`` or ``\\r\\n`` line endings):

* ``ent_ids_1``, ``ent_ids_2`` (required): ``id<TAB>URI``. The ids of the two KGs share one id space and
  may interleave (SRPRS: KG1 has 0..10499 and 21000..25499); an id may be defined once.
* ``triples_1``, ``triples_2`` (required): ``head relation tail`` ids, separated by tabs or spaces. Head
  and tail must be ids of that KG's ``ent_ids`` file.
* ``ref_ent_ids`` (required): ``KG1 id<TAB>KG2 id`` links. Without ``sup_ent_ids`` these are all the
  links and get the dataset's seeded split.
* ``sup_ent_ids`` (optional): training links; then ``ref_ent_ids`` are the test links, and validation
  links are carved out of ``sup_ent_ids`` by the dataset (``valid_ratio`` of all links, seeded).
* ``rel_ids_1``, ``rel_ids_2`` (optional): ``id<TAB>relation URI``; with them a triple's relation id
  must be defined there, without them a relation is named by its id.
* ``training_attrs_1``, ``training_attrs_2`` (optional): ``URI<TAB>attribute<TAB>attribute...``
  (attribute names without values); lines of URIs that ``ent_ids`` does not define are skipped with a
  warning (DBP15K lists some).

Entities are numbered in the order of their ``ent_ids`` file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmea_pyg.data.formats._common import (
    KNOWN,
    NO_SPLIT,
    TEST,
    GraphPair,
    KGData,
    LinkSet,
    TripleBuffer,
    WarnOnce,
    check_id,
    id_fields,
    log,
    read_lines,
    require_triples,
    triple_entities,
    warn_unconnected,
)
from mmea_pyg.errors import DataFormatError

NAME = "jape"
TITLE = "JAPE / DBP15K / SRPRS"
REQUIRED: tuple[tuple[str, ...], ...] = (
    ("ent_ids_1",),
    ("ent_ids_2",),
    ("triples_1",),
    ("triples_2",),
    ("ref_ent_ids",),
)
OPTIONAL = ("sup_ent_ids", "rel_ids_1", "rel_ids_2", "training_attrs_1", "training_attrs_2")


def id_name(path: Path, number: int, line: str, what: str) -> tuple[int, str]:
    """``(id, name)`` of line ``number`` of an ``<id><TAB><name>`` file (JAPE ``ent_ids``, ContEA
    ``rel_dict``); a malformed line raises :class:`~mmea_pyg.errors.DataFormatError` naming ``what`` it
    should hold."""
    parts = line.split("\t") if "\t" in line else line.split(None, 1)
    parts = [p.strip() for p in parts]
    if len(parts) != 2 or not parts[1]:
        raise DataFormatError(
            path,
            f"expected 2 tab-separated fields 'id<TAB>{what}', got {len(parts)}: {line[:120]!r}; fix the line",
            number,
        )
    try:
        ident = int(parts[0])
    except ValueError:
        raise DataFormatError(
            path, f"expected an integer id before the {what}, got {parts[0][:40]!r}; fix the line", number
        ) from None
    return check_id(path, number, ident), parts[1]


class IdSpace:
    """The ``ent_ids`` (or ``rel_ids``) files of both KGs: id -> (KG number, index), one shared space."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.owner: dict[int, tuple[int, int, Path, int]] = {}  # id -> (kg 0/1, index, file, line)
        self.names: tuple[list[str], list[str]] = ([], [])
        self.by_name: tuple[dict[str, int], dict[str, int]] = ({}, {})

    def read(self, path: Path, kg: int) -> None:
        names, by_name = self.names[kg], self.by_name[kg]
        for number, line in read_lines(path):
            ident, name = id_name(path, number, line, self.what)
            if ident in self.owner:
                _, _, old_path, old_line = self.owner[ident]
                raise DataFormatError(
                    path,
                    f"id {ident} is already defined in {old_path}, line {old_line}; every id may be defined "
                    "once (the two KGs share one id space)",
                    number,
                )
            if self.what == "URI" and name in by_name:
                raise DataFormatError(
                    path, f"URI {name!r} already has id {by_name[name]}; give every entity one id", number
                )
            self.owner[ident] = (kg, len(names), path, number)
            by_name.setdefault(name, ident)
            names.append(name)

    def index(self, ident: int, kg: int, path: Path, number: int, role: str) -> int:
        """The index of ``ident`` in KG ``kg``; an error naming the file and line when it is not one."""
        found = self.owner.get(ident)
        if found is None:
            raise DataFormatError(
                path,
                f"{role} id {ident} is not defined by any {self._files()} file; add it there or remove the line",
                number,
            )
        if found[0] != kg:
            raise DataFormatError(
                path,
                f"{role} id {ident} belongs to KG{found[0] + 1} ({found[2].name}), not KG{kg + 1}; check the "
                "column order and the file",
                number,
            )
        return found[1]

    def _files(self) -> str:
        return "ent_ids_1/ent_ids_2" if self.what == "URI" else "rel_ids_1/rel_ids_2"


def read_triples(
    path: Path, kg: int, entities: IdSpace, relations: IdSpace | None
) -> tuple[list[str], np.ndarray]:
    """``head relation tail`` ids -> (relation names, ``[T, 3]`` indices)."""
    buffer = TripleBuffer()
    local: dict[int, int] = {}  # relation id -> index, without rel_ids files
    for number, line in read_lines(path):
        head, rel, tail = id_fields(path, number, line, 3, "head relation tail")
        h = entities.index(head, kg, path, number, "head")
        t = entities.index(tail, kg, path, number, "tail")
        if relations is None:
            r = local.setdefault(rel, len(local))
        else:
            r = relations.index(rel, kg, path, number, "relation")
        buffer.add(h, r, t)
    require_triples(path, f"KG{kg + 1}", len(buffer))
    names = [str(r) for r in local] if relations is None else list(relations.names[kg])
    return names, buffer.to_numpy()


def read_links(path: Path, code: int, entities: IdSpace, links: LinkSet, connected: tuple[set, set]) -> None:
    """``KG1 id<TAB>KG2 id`` links of one file."""
    reader = links.reader(path)
    seen: tuple[list, list] = ([], [])
    for number, line in read_lines(path):
        a, b = id_fields(path, number, line, 2, "KG1 id<TAB>KG2 id")
        s = entities.index(a, 0, path, number, "source (KG1)")
        t = entities.index(b, 1, path, number, "target (KG2)")
        seen[0].append((s, f"line {number}, id {a}"))
        seen[1].append((t, f"line {number}, id {b}"))
        reader.add(number, s, t, code, f"{a} -> {b}")
    reader.close()
    warn_unconnected(path, seen[0], connected[0], "KG1")
    warn_unconnected(path, seen[1], connected[1], "KG2")


def read_attribute_names(path: Path, kg: int, entities: IdSpace) -> list[tuple[int, str, str | None]]:
    """``URI<TAB>attribute<TAB>attribute...`` -> ``(entity index, attribute, None)``."""
    out: list[tuple[int, str, str | None]] = []
    if not path.is_file():
        return out
    by_name = entities.by_name[kg]
    unknown = WarnOnce(
        path,
        f"line(s) name an entity that ent_ids_{kg + 1} does not define",
        "their attributes are skipped",
    )
    for number, line in read_lines(path):
        parts = [p.strip() for p in line.split("\t")]
        ident = by_name.get(parts[0])
        if ident is None:
            unknown.add(f"line {number}, {parts[0][:80]!r}")
            continue
        index = entities.owner[ident][1]
        out.extend((index, attr, None) for attr in parts[1:] if attr)
    unknown.emit()
    return out


def read_common(
    folder: Path, link_files: list[tuple[str, int]]
) -> tuple[IdSpace, KGData, KGData, LinkSet, list[Path]]:
    """The parts JAPE and MEAformer folders share: ids, triples, attribute names, the given link files."""
    entities = IdSpace("URI")
    entities.read(folder / "ent_ids_1", 0)
    entities.read(folder / "ent_ids_2", 1)
    files = [folder / "ent_ids_1", folder / "ent_ids_2"]
    relations: IdSpace | None = None
    present = [n for n in ("rel_ids_1", "rel_ids_2") if (folder / n).is_file()]
    if len(present) == 1:
        log.warning(
            "%s: only %s is present, so it is not used and relations are named by their ids; add %s",
            folder,
            present[0],
            "rel_ids_2" if present[0] == "rel_ids_1" else "rel_ids_1",
        )
    if len(present) == 2:
        relations = IdSpace("relation")
        relations.read(folder / "rel_ids_1", 0)
        relations.read(folder / "rel_ids_2", 1)
        files += [folder / "rel_ids_1", folder / "rel_ids_2"]
    rel1, triples1 = read_triples(folder / "triples_1", 0, entities, relations)
    rel2, triples2 = read_triples(folder / "triples_2", 1, entities, relations)
    files += [folder / "triples_1", folder / "triples_2"]
    attrs = []
    for kg in (0, 1):
        path = folder / f"training_attrs_{kg + 1}"
        attrs.append(read_attribute_names(path, kg, entities))
        if path.is_file():
            files.append(path)
    links = LinkSet()
    connected = (triple_entities(triples1), triple_entities(triples2))
    for name, code in link_files:
        read_links(folder / name, code, entities, links, connected)
        files.append(folder / name)
    source = KGData("KG1", list(entities.names[0]), rel1, triples1, attrs[0])
    target = KGData("KG2", list(entities.names[1]), rel2, triples2, attrs[1])
    return entities, source, target, links, files


def link_files(folder: Path) -> list[tuple[str, int]]:
    if (folder / "sup_ent_ids").is_file():
        return [("sup_ent_ids", KNOWN), ("ref_ent_ids", TEST)]
    return [("ref_ent_ids", NO_SPLIT)]


def input_files(folder: Path, *, fold: int = 1, snapshot: int | None = None) -> list[Path]:
    del fold, snapshot
    files = [folder / "ent_ids_1", folder / "ent_ids_2"]
    if (folder / "rel_ids_1").is_file() and (folder / "rel_ids_2").is_file():
        files += [folder / "rel_ids_1", folder / "rel_ids_2"]
    files += [folder / "triples_1", folder / "triples_2"]
    files += [folder / n for n in ("training_attrs_1", "training_attrs_2") if (folder / n).is_file()]
    return files + [folder / name for name, _ in link_files(folder)]


def read(folder: Path, *, fold: int = 1, snapshot: int | None = None, trust_pickle: bool = False):
    del fold, snapshot, trust_pickle
    specs = link_files(folder)
    _, source, target, links, files = read_common(folder, specs)
    return GraphPair(
        format=NAME,
        folder=folder,
        source=source,
        target=target,
        links=links.array(),
        link_split=links.split(),
        split_source="sup_ent_ids (train + valid), ref_ent_ids (test)" if specs[0][1] == KNOWN else None,
        files=files,
    )
