"""Parsers for the files of the MMKG release (`mniepert/mmkb <https://github.com/mniepert/mmkb>`_).

Formats, one record per line (UTF-8):

* ``*_EntityTriples.txt``: ``<head> <relation> <tail> .`` (DB15K/YAGO15K URIs in angle brackets,
  FB15K MIDs and relation paths bare: ``/m/027rn /location/country/form_of_government /m/06cx9 .``).
* ``*_NumericalTriples.txt``: DB15K/YAGO15K ``<entity> <predicate> "value"^^<datatype> .``;
  FB15K tab-separated ``/m/06rf7<TAB><http://rdf.freebase.com/ns/location.geocode.longitude><TAB>9.7``.
* ``*_ImageIndex.txt``: ``entity<TAB>image id`` (``<http://dbpedia.org/resource/Andy_Griffith>	DBIMG00001``).
* ``*_SameAsLink.txt``: ``/m/01m4kpp <SameAs> <http://dbpedia.org/resource/Andy_Griffith> .``
* ``FB15K_mid2name.txt`` (optional extra): ``MID<TAB>name``.

Identifiers are returned without angle brackets. Every parser raises
:class:`~mmea_pyg.errors.DataFormatError` naming the file and line of the first malformed record.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmea_pyg.errors import DataFormatError

_REDOWNLOAD = "delete it and run `mmea download` again (or fix the line)"
_LITERAL = re.compile(r'^(\S+)\s+(\S+)\s+"(.*)"(?:\^\^<[^>]*>|@[A-Za-z-]+)?\s*\.\s*$')


def _strip(term: str) -> str:
    return term[1:-1] if term.startswith("<") and term.endswith(">") else term


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, stripped line)`` for the non-empty lines of ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.strip()
                if line:
                    yield number, line
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not valid UTF-8 ({exc}); {_REDOWNLOAD}") from exc
    except FileNotFoundError as exc:
        raise DataFormatError(path, "file not found; run `mmea download NAME` first") from exc


def parse_entity_triples(path: str | Path) -> list[tuple[str, str, str]]:
    """Parse ``*_EntityTriples.txt`` into ``(head, relation, tail)`` tuples, in file order with repeats."""
    path = Path(path)
    triples = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 4 or parts[3] != ".":
            raise DataFormatError(
                path, f"expected '<head> <relation> <tail> .', got {line[:120]!r}; {_REDOWNLOAD}", number
            )
        triples.append((_strip(parts[0]), _strip(parts[1]), _strip(parts[2])))
    return triples


def parse_numerical_triples(path: str | Path) -> list[tuple[str, str, str]]:
    """Parse ``*_NumericalTriples.txt`` into ``(entity, predicate, value)`` tuples in file order.

    Both the N-Triples form (DB15K, YAGO15K) and the tab-separated FB15K form are accepted; the
    datatype of an N-Triples literal is dropped (the value text is kept verbatim).
    """
    path = Path(path)
    triples = []
    for number, line in _lines(path):
        if "\t" in line:
            parts = line.split("\t")
            if len(parts) != 3 or not all(p.strip() for p in parts):
                raise DataFormatError(
                    path,
                    f"expected 'entity<TAB>predicate<TAB>value', got {line[:120]!r}; {_REDOWNLOAD}",
                    number,
                )
            entity, predicate, value = (p.strip() for p in parts)
            triples.append((_strip(entity), _strip(predicate), value.strip('"')))
            continue
        match = _LITERAL.match(line)
        if match is None:
            raise DataFormatError(
                path,
                f"expected '<entity> <predicate> \"value\"^^<type> .', got {line[:120]!r}; {_REDOWNLOAD}",
                number,
            )
        entity, predicate, value = match.groups()
        triples.append((_strip(entity), _strip(predicate), value))
    return triples


def parse_image_index(path: str | Path) -> dict[str, str]:
    """Parse ``*_ImageIndex.txt`` into ``{entity: image id}`` (the first image id of an entity wins)."""
    path = Path(path)
    index: dict[str, str] = {}
    for number, line in _lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 2:
            raise DataFormatError(
                path, f"expected 'entity<TAB>image id', got {line[:120]!r}; {_REDOWNLOAD}", number
            )
        index.setdefault(_strip(parts[0].strip()), parts[1].strip())
    return index


def parse_same_as(path: str | Path) -> list[tuple[str, str]]:
    """Parse ``*_SameAsLink.txt`` into ``(FB15K MID, other entity)`` pairs in file order."""
    path = Path(path)
    pairs = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 4 or parts[3] != "." or _strip(parts[1]).lower() != "sameas":
            raise DataFormatError(
                path, f"expected '<mid> <SameAs> <entity> .', got {line[:120]!r}; {_REDOWNLOAD}", number
            )
        pairs.append((_strip(parts[0]), _strip(parts[2])))
    return pairs


def parse_names(path: str | Path) -> dict[str, str]:
    """Parse ``FB15K_mid2name.txt`` into ``{MID: display name}`` (underscores become spaces)."""
    path = Path(path)
    names: dict[str, str] = {}
    for number, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataFormatError(path, f"expected 'MID<TAB>name', got {line[:120]!r}; {_REDOWNLOAD}", number)
        names.setdefault(parts[0].strip(), parts[1].strip().replace("_", " "))
    return names


def local_name(identifier: str) -> str:
    """The last component of a URI or Freebase path (``http://dbpedia.org/ontology/birthYear`` -> ``birthYear``,
    ``http://rdf.freebase.com/ns/location.geocode.latitude`` -> ``location.geocode.latitude``)."""
    identifier = _strip(identifier).rstrip("/")
    return re.split(r"[/#]", identifier)[-1] or identifier


def attribute_name(predicate: str) -> str:
    """The short name of an attribute predicate as it appears in an attribute sentence: the URI's local
    name, and of a dotted Freebase path only its last part (``.../location.geocode.latitude`` ->
    ``latitude``, ``.../ontology/birthYear`` -> ``birthYear``), as the paper's example names them
    ("birthday is 1946-6-14, age is 79", App. B.3)."""
    return local_name(predicate).split(".")[-1]


_INTEGRAL_DECIMAL = re.compile(r"^(-?\d+)\.0+$")


def normalize_value(value: str) -> str:
    """A literal as it appears in an attribute sentence: integral decimals lose their zero fraction
    (FB15K writes years as ``1946.0``, YAGO15K as ``1905.0000``, DBpedia as ``1946``); everything else is
    kept verbatim."""
    match = _INTEGRAL_DECIMAL.match(value.strip())
    return match.group(1) if match else value


def display_name(identifier: str) -> str:
    """Human-readable name of an entity identifier (URI local name, underscores as spaces)."""
    return local_name(identifier).replace("_", " ")


@dataclass
class KnowledgeGraph:
    """The parsed files of one KG of the release.

    Attributes:
        name: ``"FB15K"``, ``"DB15K"`` or ``"YAGO15K"``.
        triples: Relation triples in file order (repeats kept; the dataset deduplicates).
        attributes: Numerical/literal attribute triples ``(entity, predicate, value)``.
        images: ``{entity: image id}``.
        names: Optional ``{entity: display name}`` (FB15K mid2name).
    """

    name: str
    triples: list[tuple[str, str, str]]
    attributes: list[tuple[str, str, str]]
    images: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)

    def entities(self, extra: list[str] = ()) -> list[str]:
        """Every entity of the KG: those of the relation triples in first-seen order, then those that
        appear only in the attribute triples, the image index or ``extra`` (e.g. the sameAs links)."""
        seen: dict[str, None] = {}
        for head, _, tail in self.triples:
            seen.setdefault(head)
            seen.setdefault(tail)
        for entity, _, _ in self.attributes:
            seen.setdefault(entity)
        for entity in self.images:
            seen.setdefault(entity)
        for entity in extra:
            seen.setdefault(entity)
        return list(seen)


def load_kg(root: str | Path, card) -> KnowledgeGraph:
    """Parse the files of the KG described by ``card`` (a :class:`~mmea_pyg.data.registry.KGCard`)
    from ``root`` (the raw directory in the upstream layout)."""
    root = Path(root)
    names: dict[str, str] = {}
    if card.names is not None and (root / card.names.path).exists():
        names = parse_names(root / card.names.path)
    return KnowledgeGraph(
        name=card.name,
        triples=parse_entity_triples(root / card.entity_triples.path),
        attributes=parse_numerical_triples(root / card.numerical_triples.path),
        images=parse_image_index(root / card.image_index.path),
        names=names,
    )
