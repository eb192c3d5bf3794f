"""Helpers every format reader shares: line reading with file/line errors, per-KG builders, links.

Readers only parse and validate. Every problem a user can fix is a
:class:`~mmea_pyg.errors.DataFormatError` (``"<file>, line N: <what> ; <fix>"``) raised before anything is
written; recoverable oddities (duplicate links, links to entities without triples, attribute lines of
unknown entities) are one logging WARNING per file and kind, with a count and the first example.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmea_pyg.errors import DataFormatError

log = logging.getLogger("mmea_pyg.data.formats")

#: Split codes of :attr:`GraphPair.link_split`.
NO_SPLIT, TRAIN, VALID, TEST, KNOWN = -1, 0, 1, 2, 3
SPLIT_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test", KNOWN: "train or valid"}


# ------------------------------------------------------------------------------------------- lines
def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)`` for the non-blank lines of a UTF-8 file.

    Line endings ``\\n`` and ``\\r\\n`` are both accepted (the ``\\r`` is dropped), as is a UTF-8 byte-order
    mark; fields inside a line are left untouched (the caller splits them).

    Raises:
        DataFormatError: The file is missing, unreadable or not valid UTF-8 (naming the line).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except OSError as exc:
        raise DataFormatError(
            path, f"cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        raise DataFormatError(
            path,
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start - start + 1}); save the file "
            "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)",
            line,
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if line.strip():
            yield number, line


def fields(path: Path, number: int, text: str, count: int, layout: str) -> list[str]:
    """Split a tab-separated line into exactly ``count`` non-empty fields (surrounding spaces stripped).

    Args:
        layout: The expected line, e.g. ``"head<TAB>relation<TAB>tail"``, for the message.
    """
    parts = [p.strip() for p in text.split("\t")]
    if len(parts) != count or not all(parts):
        raise DataFormatError(
            path,
            f"expected {count} tab-separated fields '{layout}', got {len(parts)}: {_show(text)}; fix the line",
            number,
        )
    return parts


def id_fields(path: Path, number: int, text: str, count: int, layout: str) -> list[int]:
    """Split a line of integer ids separated by tabs or spaces into exactly ``count`` integers."""
    parts = text.split()
    if len(parts) != count:
        raise DataFormatError(
            path,
            f"expected {count} ids '{layout}' separated by tabs or spaces, got {len(parts)} field(s): "
            f"{_show(text)}; fix the line",
            number,
        )
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise DataFormatError(
            path, f"expected integer ids '{layout}', got {_show(text)}; fix the line", number
        ) from None
    for ident in ids:
        check_id(path, number, ident)
    return ids


#: Ids are stored as int64.
MAX_ID = 2**63 - 1


def check_id(path: Path, number: int, ident: int) -> int:
    """``ident`` when it is a valid id (``0 <= ident <= MAX_ID``); else a :class:`DataFormatError` naming
    the file and line, so that a negative id is not taken for another one counted from the end."""
    if ident < 0 or ident > MAX_ID:
        raise DataFormatError(
            path,
            f"id {ident} is out of range: ids are integers from 0 to {MAX_ID}; fix the line",
            number,
        )
    return ident


def _show(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def where(path: Path, number: int) -> str:
    return f"{path}, line {number}"


# --------------------------------------------------------------------------------------- warnings
class WarnOnce:
    """Counts one kind of oddity in one file and logs a single WARNING line for it.

    Args:
        path: The file.
        what: What happened, as ``"{count} <what>"`` reads (e.g. ``"duplicate link(s) dropped"``).
        consequence: What that means and what to do.
        plural: ``what`` for a count above one (default: ``what``).
    """

    def __init__(self, path: Path, what: str, consequence: str, plural: str | None = None) -> None:
        self.path, self.what, self.consequence, self.plural = path, what, consequence, plural or what
        self.count = 0
        self.first: str | None = None

    def add(self, example: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = example

    def emit(self) -> None:
        if self.count:
            what = self.what if self.count == 1 else self.plural
            log.warning(
                "%s: %d %s (first: %s); %s", self.path, self.count, what, self.first, self.consequence
            )


# ------------------------------------------------------------------------------------------ graphs
@dataclass
class KGData:
    """One parsed knowledge graph.

    Attributes:
        name: Display name of the KG (``"KG1"``, ``"KG2"``).
        entities: Entity identifiers (URIs, or ids as written where a layout has no URIs), index order.
        relations: Relation names; a triple's relation is an index into this list.
        triples: ``[T, 3]`` int64 (head, relation, tail) indices in file order, repeats kept (the dataset
            keeps distinct triples).
        attributes: ``(entity index, attribute, value)``; ``value`` is ``None`` where the layout lists
            attribute names only (JAPE/DBP15K ``training_attrs``).
        labels: Display labels by entity index (``rdfs:label`` / ``skos:prefLabel`` of plain files).
        image_index: ``[K]`` entity indices that have an image-feature vector.
        image_features: ``[K, D]`` float32 vectors of those entities (``None``: no image features).
    """

    name: str
    entities: list[str]
    relations: list[str]
    triples: np.ndarray
    attributes: list[tuple[int, str, str | None]] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    image_index: np.ndarray | None = None
    image_features: np.ndarray | None = None

    @property
    def num_entities(self) -> int:
        return len(self.entities)


class EntityTable:
    """Entity identifiers of one KG in first-seen order."""

    def __init__(self, entities: list[str] | None = None) -> None:
        self.index: dict[str, int] = {}
        self.entities: list[str] = []
        for entity in entities or ():
            self.add(entity)

    def add(self, entity: str) -> int:
        found = self.index.get(entity)
        if found is None:
            found = self.index[entity] = len(self.entities)
            self.entities.append(entity)
        return found

    def __contains__(self, entity: str) -> bool:
        return entity in self.index

    def __len__(self) -> int:
        return len(self.entities)


class TripleBuffer:
    """(head, relation, tail) indices collected without a Python tuple per triple."""

    def __init__(self) -> None:
        self.values = array("q")

    def add(self, head: int, relation: int, tail: int) -> None:
        self.values.extend((head, relation, tail))

    def __len__(self) -> int:
        return len(self.values) // 3

    def to_numpy(self) -> np.ndarray:
        return np.frombuffer(self.values, dtype=np.int64).reshape(-1, 3).copy()


def require_triples(path: Path, kg: str, count: int) -> None:
    """An empty graph is an error: nothing could propagate over it."""
    if count == 0:
        raise DataFormatError(
            path,
            f"{kg} has no relation triples; a graph pair needs relation triples in both KGs (check that this "
            "is the right file and that it is not truncated)",
        )


# ------------------------------------------------------------------------------------------- links
@dataclass
class LinkSet:
    """Links (source index, target index) with their split code, de-duplicated as they are added.

    * The same pair twice in one file: a WARNING, the repeat is dropped.
    * The same pair in two files with different splits (e.g. train and test): an error, since the split
      would leak.
    * An entity linked to two counterparts (one source to two targets or the reverse): a WARNING; both
      links are kept as gold counterparts (the evaluator ranks each pair on its own and the seeded split
      keeps such pairs in one part).
    """

    pairs: list[tuple[int, int]] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    _seen: dict[tuple[int, int], tuple[int, Path, int]] = field(default_factory=dict)
    _src: dict[int, int] = field(default_factory=dict)
    _tgt: dict[int, int] = field(default_factory=dict)

    def reader(self, path: Path) -> _LinkFile:
        return _LinkFile(self, path)

    def array(self) -> np.ndarray:
        return np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)

    def split(self) -> np.ndarray:
        return np.asarray(self.codes, dtype=np.int8)


class _LinkFile:
    """Adds the links of one file to a :class:`LinkSet`; :meth:`close` logs this file's warnings."""

    def __init__(self, links: LinkSet, path: Path) -> None:
        self.links, self.path = links, path
        self.duplicates = WarnOnce(path, "duplicate link(s) dropped", "each pair is kept once")
        self.conflicts = WarnOnce(
            path,
            "link(s) give an entity a second counterpart",
            "all are kept as gold counterparts (each pair is ranked on its own in evaluation); remove the "
            "wrong lines if an entity has only one counterpart",
        )

    def add(self, number: int, source: int, target: int, code: int, shown: str) -> None:
        pair = (source, target)
        seen = self.links._seen.get(pair)
        if seen is not None:
            old_code, old_path, old_line = seen
            if old_code != code:
                raise DataFormatError(
                    self.path,
                    f"link {shown} is already a {SPLIT_NAMES.get(old_code, 'link')} link in "
                    f"{where(old_path, old_line)}; a link belongs to one split, remove one of the lines",
                    number,
                )
            self.duplicates.add(f"line {number}, {shown}, as on line {old_line}")
            return
        if source in self.links._src or target in self.links._tgt:
            self.conflicts.add(f"line {number}, {shown}")
        self.links._seen[pair] = (code, self.path, number)
        self.links._src[source] = self.links._src.get(source, 0) + 1
        self.links._tgt[target] = self.links._tgt.get(target, 0) + 1
        self.links.pairs.append(pair)
        self.links.codes.append(code)

    def close(self) -> None:
        self.duplicates.emit()
        self.conflicts.emit()


def warn_unconnected(path: Path, links: list[tuple[int, str]], connected: Container[int], kg: str) -> None:
    """One WARNING for the linked entities of ``kg`` that appear in no relation triple.

    Args:
        path: The links file.
        links: ``(entity index, shown entity)`` of the entities this file links, in file order.
        connected: Entity indices that occur in a relation triple.
    """
    warn = WarnOnce(
        path,
        f"linked entity of {kg} appears in no relation triple",
        "only its attributes or name can align it",
        plural=f"linked entities of {kg} appear in no relation triple",
    )
    seen: set[int] = set()
    for index, shown in links:
        if index not in connected and index not in seen:
            seen.add(index)
            warn.add(shown)
    warn.emit()


def triple_entities(triples: np.ndarray) -> set[int]:
    """Entity indices that occur as head or tail of ``triples`` ``[T, 3]``."""
    if triples.size == 0:
        return set()
    return set(np.unique(triples[:, [0, 2]]).tolist())


# ---------------------------------------------------------------------------------------- literals
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def unescape(text: str) -> str:
    """Undo N-Triples string escapes (``\\"``, ``\\n``, ``\\uXXXX``, ``\\UXXXXXXXX``)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            width = {"u": 4, "U": 8}.get(nxt)
            if width and i + 2 + width <= len(text):
                try:
                    out.append(chr(int(text[i + 2 : i + 2 + width], 16)))
                    i += 2 + width
                    continue
                except ValueError:
                    pass
        out.append(ch)
        i += 1
    return "".join(out)


def clean_literal(value: str) -> str:
    """A literal as written in OpenEA-style attribute files, without quotes, datatype or language tag
    (``"1946-06-14"^^<http://www.w3.org/2001/XMLSchema#date>`` -> ``1946-06-14``); other text verbatim."""
    value = value.strip()
    if value.startswith('"'):
        end = value.rfind('"')
        if end > 0:
            rest = value[end + 1 :]
            if not rest or rest.startswith("^^") or rest.startswith("@"):
                return unescape(value[1:end])
    return value


def strip_brackets(term: str) -> str:
    """``<http://x>`` -> ``http://x``; other terms unchanged."""
    term = term.strip()
    return term[1:-1] if term.startswith("<") and term.endswith(">") else term


def read_uri_links(
    path: Path,
    links: LinkSet,
    code: int,
    source: EntityTable,
    target: EntityTable,
    source_connected: int,
    target_connected: int,
    names: tuple[str, str] = ("KG1", "KG2"),
) -> None:
    """Add the ``source<TAB>target`` URI links of ``path`` to ``links``.

    A linked entity that no file of its KG mentions becomes an entity of that KG (with no triple); linked
    entities outside the first ``*_connected`` indices of their table (those met in relation triples) get
    one WARNING per file and KG.
    """
    reader = links.reader(path)
    seen_src: list[tuple[int, str]] = []
    seen_tgt: list[tuple[int, str]] = []
    for number, line in read_lines(path):
        src, tgt = (strip_brackets(p) for p in fields(path, number, line, 2, "source<TAB>target"))
        s, t = source.add(src), target.add(tgt)
        seen_src.append((s, f"line {number}, {src!r}"))
        seen_tgt.append((t, f"line {number}, {tgt!r}"))
        reader.add(number, s, t, code, f"{src} -> {tgt}")
    reader.close()
    warn_unconnected(path, seen_src, range(source_connected), names[0])
    warn_unconnected(path, seen_tgt, range(target_connected), names[1])


@dataclass
class GraphPair:
    """Two parsed knowledge graphs and the links between them.

    Attributes:
        format: The layout it was read from (a key of :data:`LAYOUTS`).
        folder: The folder it was read from.
        source: The first KG (``*_1`` files): ``HeteroData['source']``.
        target: The second KG (``*_2`` files): ``HeteroData['target']``.
        links: ``[P, 2]`` int64 (source index, target index), without repeats, in file order.
        link_split: ``[P]`` int8 split codes: ``-1`` none shipped (the dataset draws a seeded split),
            ``0`` train, ``1`` valid, ``2`` test, ``3`` train or valid (the dataset carves validation
            out of them, e.g. JAPE ``sup_ent_ids``).
        split_source: Where a shipped split comes from (``"721_5fold/1"``), ``None`` without one.
        files: Every file the reader read, in reading order.
    """

    format: str
    folder: Path
    source: KGData
    target: KGData
    links: np.ndarray
    link_split: np.ndarray
    split_source: str | None
    files: list[Path]
