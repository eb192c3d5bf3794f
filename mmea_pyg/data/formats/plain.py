"""Plain files: one triples file per KG, N-Triples or tab-separated, optional attributes and links.

Files (UTF-8, ``\\n`` or ``\\r\\n`` line endings):

* ``triples_1.nt`` or ``triples_1.tsv``, and ``triples_2.nt`` or ``triples_2.tsv`` (required; one of the two
  forms per KG):

  - **N-Triples** (``.nt``): ``<subject> <predicate> <object> .`` with IRIs, blank nodes (``_:b1``) or,
    as object, literals (``"text"``, ``"text"@en``, ``"1"^^<xsd:int>``); ``#`` comment lines are
    skipped. An IRI or blank-node object makes a **relation triple**; a literal object an **attribute
    triple** ``(subject, predicate, value)``, except that a literal of ``rdfs:label`` or
    ``skos:prefLabel`` is the subject's **name** (the first one wins) and not an attribute.
  - **TSV** (``.tsv``): ``head<TAB>relation<TAB>tail``; every line is a relation triple between two
    entities (``<...>`` brackets are dropped). Attributes come from the separate file below.

* ``attr_triples_1.tsv``, ``attr_triples_2.tsv`` (optional): ``entity<TAB>attribute<TAB>value`` (a quoted
  value loses its quotes, datatype and language tag); ``rdfs:label`` / ``skos:prefLabel`` rows give names
  as above.
* ``links.tsv`` (optional): ``source<TAB>target`` entity identifiers (KG1 first). The links get the
  dataset's seeded split. Without it the pair has no links (a warning: models need some to train).

Entities are numbered in first-seen order: relation triples, then attribute (and name) triples, then
links (a linked entity in no relation triple is kept, with a warning).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmea_pyg.data.formats._common import (
    NO_SPLIT,
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
    unescape,
)
from mmea_pyg.errors import DataFormatError

NAME = "plain"
TITLE = "plain N-Triples / TSV"
REQUIRED: tuple[tuple[str, ...], ...] = (("triples_1.nt", "triples_1.tsv"), ("triples_2.nt", "triples_2.tsv"))
LINKS = "links.tsv"
#: Predicates whose literal is an entity's display name, not an attribute.
LABELS = frozenset(
    {
        "http://www.w3.org/2000/01/rdf-schema#label",
        "http://www.w3.org/2004/02/skos/core#prefLabel",
        "rdfs:label",
        "skos:prefLabel",
    }
)

_IRI = r"<[^>]*>"
_BLANK = r"_:[A-Za-z0-9_.\-]+"
_LITERAL = r'"(?:[^"\\]|\\.)*"(?:@[A-Za-z]+(?:-[A-Za-z0-9]+)*|\^\^<[^>]*>)?'
_STATEMENT = re.compile(rf"^\s*({_IRI}|{_BLANK})\s+({_IRI})\s+({_IRI}|{_BLANK}|{_LITERAL})\s*\.\s*(?:#.*)?$")


def _triples_file(folder: Path, kg: int) -> Path:
    nt, tsv = folder / f"triples_{kg}.nt", folder / f"triples_{kg}.tsv"
    if nt.is_file() and tsv.is_file():
        raise DataFormatError(
            folder, f"both triples_{kg}.nt and triples_{kg}.tsv exist; keep one of them for KG{kg}"
        )
    return nt if nt.is_file() else tsv


def input_files(folder: Path, *, fold: int = 1, snapshot: int | None = None) -> list[Path]:
    del fold, snapshot
    files = [_triples_file(folder, 1), _triples_file(folder, 2)]
    files += [folder / n for n in ("attr_triples_1.tsv", "attr_triples_2.tsv") if (folder / n).is_file()]
    return files + ([folder / LINKS] if (folder / LINKS).is_file() else [])


class _KG:
    def __init__(self, name: str) -> None:
        self.name = name
        self.table = EntityTable()
        self.relations: dict[str, int] = {}
        self.triples = TripleBuffer()
        self.literals: list[tuple[str, str, str]] = []  # (subject, predicate, value) in file order

    def relation(self, head: str, rel: str, tail: str) -> None:
        r = self.relations.setdefault(rel, len(self.relations))
        self.triples.add(self.table.add(head), r, self.table.add(tail))

    def finish(self) -> tuple[int, KGData]:
        """Entities of relation triples first, then those of literals; labels become names."""
        connected = len(self.table)
        attributes: list[tuple[int, str, str | None]] = []
        labels: dict[int, str] = {}
        for subject, predicate, value in self.literals:
            index = self.table.add(subject)
            if predicate in LABELS:
                labels.setdefault(index, value)
            else:
                attributes.append((index, predicate, value))
        triples = self.triples.to_numpy() if len(self.triples) else np.zeros((0, 3), dtype=np.int64)
        kg = KGData(self.name, self.table.entities, list(self.relations), triples, attributes, labels)
        return connected, kg


def _read_ntriples(path: Path, kg: _KG) -> None:
    for number, line in read_lines(path):
        if line.lstrip().startswith("#"):
            continue
        match = _STATEMENT.match(line)
        if match is None:
            raise DataFormatError(
                path,
                "expected an N-Triples statement '<subject> <predicate> <object> .' (object: <IRI>, _:blank "
                f'or "literal"), got {line[:120]!r}; fix the line',
                number,
            )
        subject, predicate, obj = (strip_brackets(t) for t in match.groups())
        if obj.startswith('"'):
            end = obj.rfind('"')
            kg.literals.append((subject, predicate, unescape(obj[1:end])))
        else:
            kg.relation(subject, predicate, obj)


def _read_tsv(path: Path, kg: _KG) -> None:
    for number, line in read_lines(path):
        head, rel, tail = (
            strip_brackets(p) for p in fields(path, number, line, 3, "head<TAB>relation<TAB>tail")
        )
        kg.relation(head, rel, tail)


def _read_attributes(path: Path, kg: _KG) -> None:
    for number, line in read_lines(path):
        parts = line.split("\t", 2)
        if len(parts) != 3 or not parts[0].strip() or not parts[1].strip():
            raise DataFormatError(
                path,
                f"expected 3 tab-separated fields 'entity<TAB>attribute<TAB>value', got {line[:120]!r}; "
                "fix the line",
                number,
            )
        kg.literals.append((strip_brackets(parts[0]), strip_brackets(parts[1]), clean_literal(parts[2])))


def read(folder: Path, *, fold: int = 1, snapshot: int | None = None, trust_pickle: bool = False):
    del fold, snapshot, trust_pickle
    parsed = []
    for number in (1, 2):
        kg = _KG(f"KG{number}")
        path = _triples_file(folder, number)
        (_read_ntriples if path.suffix == ".nt" else _read_tsv)(path, kg)
        require_triples(path, kg.name, len(kg.triples))
        attrs = folder / f"attr_triples_{number}.tsv"
        if attrs.is_file():
            _read_attributes(attrs, kg)
        parsed.append(kg)
    (connected1, source), (connected2, target) = (kg.finish() for kg in parsed)

    links = LinkSet()
    if (folder / LINKS).is_file():
        tables = (EntityTable(source.entities), EntityTable(target.entities))
        read_uri_links(folder / LINKS, links, NO_SPLIT, tables[0], tables[1], connected1, connected2)
        source.entities, target.entities = tables[0].entities, tables[1].entities
    else:
        log.warning(
            "%s: no %s, so the pair has no links; add one, or let `mmea align --names` start from name matches",
            folder,
            LINKS,
        )
    return GraphPair(
        format=NAME,
        folder=folder,
        source=source,
        target=target,
        links=links.array(),
        link_split=links.split(),
        split_source=None,
        files=input_files(folder),
    )
