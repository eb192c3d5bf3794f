"""Any two knowledge graphs in one of the entity-alignment file layouts, as the same ``HeteroData`` the
MMKG benchmarks build (:class:`~mmea_pyg.data.mmkg.MMKGDataset`), so every model trains on it
unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES, SafeInMemoryDataset, graph_statistics
from mmea_pyg.data.features.attributes import attribute_cache_file, encode_attribute_sentences
from mmea_pyg.data.formats import KNOWN, NO_SPLIT, TEST, TRAIN, VALID, GraphPair, KGData
from mmea_pyg.data.formats.mmkg import attribute_name, display_name, normalize_value
from mmea_pyg.data.splits import check_known_ratios, draw_split_by_count, split_known_pairs
from mmea_pyg.errors import ConfigError

#: Bumped whenever :meth:`GraphPairDataset.process` changes what it writes or how its file is keyed.
PROCESS_VERSION = 1
#: Sub-directory of the data root that holds the processed graph pairs and their feature caches.
WORK_DIRNAME = "graph_pairs"


def attribute_sentences(kg: KGData) -> tuple[list[str], torch.Tensor]:
    """The attribute sentence of every entity that has attributes, in entity order, and the ``[N]`` mask.

    ``(attribute, value)`` pairs read "attr is value" (as in :class:`~mmea_pyg.data.mmkg.MMKGDataset`);
    attribute names without a value (JAPE ``training_attrs``) read "attr": "birth date, spouse, name".
    Attribute names are the predicate's local name made readable (``birthDate`` -> ``birth date``)."""
    from mmea_pyg.data.features.text import humanize_attribute

    items: dict[int, list[str]] = {}
    for entity, predicate, value in kg.attributes:
        name = humanize_attribute(attribute_name(predicate)) or predicate
        text = name if value is None else f"{name} is {normalize_value(value).strip()}"
        items.setdefault(entity, []).append(text)
    mask = torch.zeros(kg.num_entities, dtype=torch.bool)
    if items:
        mask[torch.tensor(sorted(items), dtype=torch.long)] = True
    return [", ".join(items[e]) for e in sorted(items)], mask


def _distinct_rows(triples: np.ndarray) -> np.ndarray:
    """The distinct rows of ``[T, 3]`` in first-seen order."""
    if len(triples) == 0:
        return triples.reshape(0, 3)
    _, first = np.unique(triples, axis=0, return_index=True)
    return triples[np.sort(first)]


class GraphPairDataset(SafeInMemoryDataset):
    r"""Two knowledge graphs and the links between them, read from a folder in one of the layouts of
    :mod:`mmea_pyg.data.formats` (OpenEA, JAPE/DBP15K, MEAformer, plain N-Triples/TSV, ContEA snapshots),
    as one :class:`~torch_geometric.data.HeteroData` with the interface of
    :class:`~mmea_pyg.data.mmkg.MMKGDataset`:

    * ``data[side].uri`` / ``.name`` (``side`` is ``source`` for the ``*_1`` files, ``target`` for
      ``*_2``): identifiers as in the files (ContEA: the ids), and display labels (``rdfs:label`` /
      ``skos:prefLabel`` of plain files, else the URI's local name); ``.kg_name``; ``num_nodes``.
    * ``data[side].x_attr`` ``[N, D_a]`` + ``attr_mask`` ``[N]``: every entity's attributes as one sentence
      ("attr is value, ..."; "attr, attr, ..." for attribute-name lists) encoded by the text model exactly
      as the MMKG datasets do, zeros where ``attr_mask`` is ``False``. When neither KG has attributes,
      ``D_a = 0`` and no text model is loaded (the attribute modality is then simply absent).
    * ``data[side].x_img`` ``[N, D_v]`` + ``img_mask`` ``[N]`` (and ``has_image``, the same): MEAformer image
      features; ``D_v = 0`` and all ``False`` without them, never random vectors.
    * ``data[side, 'relation', side].edge_index`` ``[2, E]``, ``.edge_type`` ``[E]``, ``.relation_names``:
      the distinct relation triples (first-seen order).
    * ``data['source', 'aligned', 'target'].edge_index`` ``[2, P]``: the links, **sorted by (source URI,
      target URI)** so that the order, and with it the seeded split, depends neither on the files' line
      order nor on numeric ids; ``given_split`` ``[P]`` holds the split the layout ships (``-1`` none,
      ``0``/``1``/``2`` train/valid/test, ``3`` train or valid); ``train_mask`` / ``valid_mask`` /
      ``test_mask`` are set at load time (:meth:`resplit`, no reprocessing).

    **Splits.** Where the layout ships one it is used: the OpenEA fold, ContEA's base train/valid/test
    (plus the batches' test links), JAPE ``sup_ent_ids`` / ``ref_ent_ids`` (then ``split_ratio`` is not
    used; validation is ``valid_ratio`` of *all* links, carved out of ``sup_ent_ids`` with ``split_seed``,
    and ``ref_ent_ids`` stay the test set). Otherwise ``split_ratio`` of the links are known to the model
    and ``valid_ratio`` of all links are carved out of them for validation (0.3 / 0.1: 20% train, 10%
    valid, 70% test), seeded by ``split_seed``; pairs that share an entity stay in one part
    (:func:`~mmea_pyg.data.splits.split_known_pairs`). Test links are never used for validation.

    **Files.** Nothing is written into ``source_folder`` (it may be read-only). The processed graph goes to
    ``<root>/graph_pairs/<folder name>-<hash of its absolute path>/processed/data_<key>.pt``, keyed on
    :data:`PROCESS_VERSION`, the layout, the fold / snapshot, the text model and the SHA-256 of every
    input file the reader reads (content, not modification times); attribute features are cached in
    ``.../cache/``. A processed file or cache that cannot be loaded safely (truncated, other content, a
    pickle that would run code) is reported in one line and rebuilt.

    Args:
        source_folder: The folder with the two KGs.
        format: ``"auto"`` (:func:`~mmea_pyg.data.formats.detect_format`) or a layout name.
        root: Data root (default: ``MMEA_DATA`` or ``./datasets``).
        split_ratio: Fraction of the links known to the model (training + validation) in a seeded split.
        split_seed: Seed of the split.
        valid_ratio: Fraction of all links used for validation.
        fold: OpenEA fold (``721_5fold/<fold>``).
        snapshot: ContEA snapshot (0 = base; ``None``: 0).
        text_model: Text encoder of the attribute sentences (default: the packaged all-MiniLM-L6-v2).
        trust_pickle: Allow a MEAformer ``.pkl`` image-feature dictionary to be unpickled (it could run code).
        log: Progress messages.
        name: The dataset's name (``data.dataset_name``; default: the folder's name).
        text_max_length, text_batch_size, device: Of the text encoder while processing.
        kg_names: Display names of the two KGs (default ``KG1``, ``KG2``).
        transform, pre_transform, force_reload: As in :class:`~torch_geometric.data.InMemoryDataset`.

    Raises:
        MMEAError: Unknown layout, missing file, malformed line (naming file and line), a pickle without
            ``trust_pickle``, an empty graph, bad split options.
    """

    def __init__(
        self,
        source_folder: str | os.PathLike,
        format: str = "auto",
        root: str | os.PathLike | None = None,
        split_ratio: float = 0.3,
        split_seed: int = 0,
        valid_ratio: float = 0.1,
        fold: int = 1,
        snapshot: int | None = None,
        text_model: str | None = None,
        trust_pickle: bool = False,
        log: bool = True,
        name: str | None = None,
        *,
        text_max_length: int = 128,
        text_batch_size: int = 128,
        device: str = "cpu",
        kg_names: tuple[str, str] | None = None,
        transform: Any = None,
        pre_transform: Any = None,
        force_reload: bool = False,
    ) -> None:
        from mmea_pyg.data.features.text import DEFAULT_TEXT_MODEL
        from mmea_pyg.data.files import default_root
        from mmea_pyg.data.formats import input_files, resolve_format

        self.folder = Path(source_folder).expanduser().resolve()
        self.format = resolve_format(self.folder, format)
        self.fold = int(fold)
        self.snapshot = (0 if snapshot is None else int(snapshot)) if self.format == "contea" else snapshot
        self.inputs = input_files(self.folder, self.format, fold=self.fold, snapshot=snapshot)
        self.name = name or self.folder.name
        self.trust_pickle = trust_pickle
        self.text_model = text_model or DEFAULT_TEXT_MODEL
        self.text_max_length = text_max_length
        self.text_batch_size = text_batch_size
        self.device = device
        self.kg_names = kg_names
        self._show_progress = log
        self._options_key: str | None = None
        check_known_ratios(split_ratio, valid_ratio)  # before a long build, not after it
        self.split_ratio, self.split_seed, self.valid_ratio = split_ratio, split_seed, valid_ratio
        super().__init__(
            str(root or default_root()), transform, pre_transform, force_reload=force_reload, log=log
        )
        self._load_processed()
        self.resplit(split_ratio, split_seed, valid_ratio)

    # ----------------------------------------------------------------------------------------- paths
    @property
    def raw_dir(self) -> str:
        return str(self.folder)

    @property
    def raw_file_names(self) -> list[str]:
        return [p.relative_to(self.folder).as_posix() for p in self.inputs]

    @property
    def work_dir(self) -> Path:
        """``<root>/graph_pairs/<folder name>-<hash of the folder's absolute path>``."""
        tag = hashlib.sha256(str(self.folder).encode()).hexdigest()[:8]
        return Path(self.root) / WORK_DIRNAME / f"{self.folder.name}-{tag}"

    @property
    def processed_dir(self) -> str:
        return str(self.work_dir / "processed")

    @property
    def processed_file_names(self) -> list[str]:
        return [f"data_{self.options_key()}.pt"]

    # Overrides PyG's private Dataset._download, which __init__ calls (pinned by tests/data/test_base.py).
    def _download(self) -> None:
        """Nothing to fetch (registered datasets are downloaded by :func:`~mmea_pyg.data.open_dataset`),
        and nothing is created in the input folder (PyG's default would create it)."""

    def download(self) -> None:  # pragma: no cover - never called, see _download
        pass

    def options_key(self) -> str:
        """Hash of everything the processed graph depends on: :data:`PROCESS_VERSION`, the layout, the fold
        or snapshot, the text model and its token limit, and the SHA-256 of every input file (by path
        relative to the folder). Computed once per instance."""
        if self._options_key is None:
            from mmea_pyg.data.files import sha256sum

            key = {
                "version": PROCESS_VERSION,
                "format": self.format,
                "fold": self.fold if self.format == "openea" else None,
                "snapshot": self.snapshot if self.format == "contea" else None,
                "text_model": self.text_model,
                "text_max_length": self.text_max_length,
                "inputs": [[rel, sha256sum(self.folder / rel)] for rel in self.raw_file_names],
            }
            self._options_key = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        return self._options_key

    # ----------------------------------------------------------------------------------- process
    def process(self) -> None:
        from mmea_pyg.data.formats import read_graph_pair

        pair = read_graph_pair(
            self.folder, self.format, fold=self.fold, snapshot=self.snapshot, trust_pickle=self.trust_pickle
        )
        self.save_graph(self.build(pair))

    def build(self, pair: GraphPair) -> HeteroData:
        """The ``HeteroData`` of a parsed pair (attribute sentences encoded, links sorted)."""
        data = HeteroData()
        kgs = (pair.source, pair.target)
        names = self.kg_names or (pair.source.name, pair.target.name)
        for side, kg, kg_name in zip(SIDES, kgs, names, strict=True):
            self._build_side(data, side, kg, kg_name)
        self._attribute_features(data, kgs)
        self._image_features(data, kgs)

        links = pair.links
        if len(links):
            src_uri, tgt_uri = pair.source.entities, pair.target.entities
            order = sorted(range(len(links)), key=lambda i: (src_uri[links[i, 0]], tgt_uri[links[i, 1]]))
            links, codes = links[order], pair.link_split[order]
        else:
            codes = pair.link_split
        store = data["source", "aligned", "target"]
        store.edge_index = torch.as_tensor(links, dtype=torch.long).reshape(-1, 2).t().contiguous()
        store.given_split = torch.as_tensor(codes, dtype=torch.long).reshape(-1)
        data.dataset_name = self.name
        data.layout = pair.format
        data.split_source = pair.split_source or ""
        return data

    def _build_side(self, data: HeteroData, side: str, kg: KGData, kg_name: str) -> None:
        store = data[side]
        store.num_nodes = kg.num_entities
        store.uri = list(kg.entities)
        store.name = [
            kg.labels.get(i) or (e if e.startswith("_:") else display_name(e))
            for i, e in enumerate(kg.entities)
        ]
        store.kg_name = kg_name
        distinct = torch.as_tensor(_distinct_rows(kg.triples), dtype=torch.long).reshape(-1, 3)
        edges = data[side, "relation", side]
        edges.edge_index = distinct[:, [0, 2]].t().contiguous()
        edges.edge_type = distinct[:, 1].contiguous()
        edges.relation_names = list(kg.relations)
        store.num_triple_lines = int(len(kg.triples))
        store.num_attr_triples = len(kg.attributes)
        store.num_attr_names = len({p for _, p, _ in kg.attributes})

    def _attribute_features(self, data: HeteroData, kgs: tuple[KGData, KGData]) -> None:
        """Encode both KGs' attribute sentences; width 0 (and no text model) when neither has any."""
        parts = [attribute_sentences(kg) for kg in kgs]
        if not any(sentences for sentences, _ in parts):
            for side, kg in zip(SIDES, kgs, strict=True):
                data[side].x_attr = torch.zeros((kg.num_entities, 0))
                data[side].attr_mask = torch.zeros(kg.num_entities, dtype=torch.bool)
            return
        encoders: dict[str, Any] = {}
        for side, (sentences, mask) in zip(SIDES, parts, strict=True):
            cache = attribute_cache_file(
                self.work_dir / "cache", side, self.text_model, self.text_max_length, sentences
            )
            data[side].x_attr = encode_attribute_sentences(
                sentences,
                mask,
                cache,
                text_model=self.text_model,
                max_length=self.text_max_length,
                batch_size=self.text_batch_size,
                device=self.device,
                progress=self._show_progress,
                label=f"{self.name} {side}",
                encoders=encoders,
            )
            data[side].attr_mask = mask

    def _image_features(self, data: HeteroData, kgs: tuple[KGData, KGData]) -> None:
        dims = {kg.image_features.shape[1] for kg in kgs if kg.image_features is not None}
        dim = dims.pop() if dims else 0
        for side, kg in zip(SIDES, kgs, strict=True):
            x = torch.zeros((kg.num_entities, dim))
            mask = torch.zeros(kg.num_entities, dtype=torch.bool)
            if kg.image_features is not None and len(kg.image_index):
                index = torch.as_tensor(kg.image_index, dtype=torch.long)
                x[index] = torch.as_tensor(kg.image_features, dtype=torch.float32)
                mask[index] = True
            data[side].x_img, data[side].img_mask, data[side].has_image = x, mask, mask.clone()

    # ------------------------------------------------------------------------------------ splits
    def resplit(self, split_ratio: float = 0.3, split_seed: int = 0, valid_ratio: float = 0.1) -> None:
        """Set the train/valid/test masks of the links (no reprocessing); see the class docstring for the
        shipped-split rules."""
        store = self._data["source", "aligned", "target"]
        codes = store.given_split
        pairs = store.edge_index
        if bool((codes == NO_SPLIT).all()):
            check_known_ratios(split_ratio, valid_ratio)
            train, valid, test = split_known_pairs(pairs, split_ratio, valid_ratio, split_seed)
        else:
            train, valid, test = codes == TRAIN, codes == VALID, codes == TEST
            known = codes == KNOWN
            if bool(known.any()):
                num_known = int(known.sum())
                num_valid = round(valid_ratio * pairs.size(1))
                if not 0.0 <= valid_ratio < 1.0 or num_valid >= num_known:
                    raise ConfigError(
                        f"validation ratio {valid_ratio} asks for {num_valid} validation links, but the "
                        f"folder ships only {num_known} training links to carve them from; lower it "
                        "(0.1 of all links by default)"
                    )
                sub_train, sub_valid, _ = draw_split_by_count(
                    pairs[:, known], num_known - num_valid, num_valid, split_seed
                )
                train, valid = train.clone(), valid.clone()
                train[known], valid[known] = sub_train, sub_valid
        store.train_mask, store.valid_mask, store.test_mask = train, valid, test
        self.split_ratio, self.split_seed, self.valid_ratio = split_ratio, split_seed, valid_ratio
        self._data_list = None

    @property
    def split_given(self) -> bool:
        """Whether the layout shipped the split (the ratio is then not used)."""
        return not bool((self._data["source", "aligned", "target"].given_split == NO_SPLIT).all())

    # -------------------------------------------------------------------------------- statistics
    def statistics(self) -> dict[str, Any]:
        """Counts per KG (entities, relations, distinct triples and triple lines, attribute triples and
        names, entities with attributes / image features, feature widths, entities in no relation
        triple), links and the current split, as in :meth:`MMKGDataset.statistics
        <mmea_pyg.data.mmkg.MMKGDataset.statistics>`."""
        data = self._data
        stats: dict[str, Any] = {
            "dataset": self.name,
            "folder": str(self.folder),
            "layout": self.format,
        }
        if self.format == "openea":
            stats["fold"] = self.fold
        if self.format == "contea":
            stats["snapshot"] = self.snapshot
        stats.update(graph_statistics(data))
        stats["split"] = {
            "ratio": self.split_ratio,
            "valid_ratio": self.valid_ratio,
            "seed": self.split_seed,
            "given": data.split_source or None,
            **stats["split"],
        }
        stats["text_model"] = self.text_model
        return stats

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name}, layout={self.format}, split_ratio={self.split_ratio}, split_seed={self.split_seed})"
