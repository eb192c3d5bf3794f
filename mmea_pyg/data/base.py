"""What every dataset of the package shares: the two sides of a graph pair (:data:`SIDES`), the safe
loading of cached tensors (``weights_only=True``, never arbitrary unpickling), the base class of the
datasets (:class:`SafeInMemoryDataset`) and the counts of a built graph pair (:func:`graph_statistics`).

:class:`SafeInMemoryDataset` overrides two private methods of PyG's
:class:`~torch_geometric.data.Dataset`, because PyG offers no public hook for what they do:
``_process`` (PyG's reads ``pre_transform.pt`` / ``pre_filter.pt`` with ``weights_only=False``) and, in
the subclasses, ``_download`` (to wait for another process's download, or to create nothing). It
writes the ``pre_transform.pt`` / ``pre_filter.pt`` files with PyG's ``_repr`` so that PyG's own
checks read them as PyG writes them. ``tests/data/test_base.py`` pins the PyG behaviour this relies on.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import HeteroData, InMemoryDataset

# Private in PyG (no public equivalent): the text PyG writes to pre_transform.pt / pre_filter.pt and its
# test for existing processed files. Their behaviour is pinned by tests/data/test_base.py.
from torch_geometric.data.dataset import _repr, files_exist

from mmea_pyg.errors import MMEAError
from mmea_pyg.io import (
    UnreadableFileError,
    atomic_torch_save,
    check_writable_dir,
    made_dirs,
    safe_torch_load,
)

__all__ = ["SIDES", "SafeInMemoryDataset", "UnreadableCacheError", "graph_statistics", "load_tensors"]

log = logging.getLogger(__name__)

#: The two knowledge graphs of a pair, as ``HeteroData`` node types: the first KG and the second.
SIDES = ("source", "target")


def graph_statistics(data: HeteroData) -> dict[str, Any]:
    """Counts of a graph pair in the dataset layout: per KG (entities, relations, distinct triples and
    triple lines, attribute triples and names, entities with attributes / images / image features,
    entities in no relation triple, feature widths), the number of links and the split sizes."""
    stats: dict[str, Any] = {}
    for side in SIDES:
        store = data[side]
        edges = data[side, "relation", side]
        connected = torch.zeros(int(store.num_nodes), dtype=torch.bool)
        connected[edges.edge_index.reshape(-1)] = True
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
            "entities_without_triples": int((~connected).sum()),
            "attribute_dim": int(store.x_attr.size(1)),
            "image_dim": int(store.x_img.size(1)),
        }
    aligned = data["source", "aligned", "target"]
    stats["pairs"] = int(aligned.edge_index.size(1))
    stats["split"] = {
        "train": int(aligned.train_mask.sum()),
        "valid": int(aligned.valid_mask.sum()),
        "test": int(aligned.test_mask.sum()),
    }
    return stats


class UnreadableCacheError(Exception):
    """A cache file that cannot be loaded safely; the message is the reason."""


def load_tensors(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors, containers, plain values and the PyG data classes
    PyG allowlists; never arbitrary unpickling (unlike PyG's ``fs.torch_load``, which falls back to
    ``weights_only=False``).

    Raises:
        UnreadableCacheError: Truncated, not a torch file, or a pickle that needs other objects (it could
            run code).
    """
    try:
        return safe_torch_load(path, "cpu", what="cache file")
    except UnreadableFileError as exc:
        raise UnreadableCacheError(exc.reason) from None


def _read_processed(path: Path) -> tuple[HeteroData, dict | None]:
    """The graph and slices of a processed file written by :meth:`SafeInMemoryDataset.save_graph`.

    Raises:
        UnreadableCacheError: Unreadable, unsafe, or not a processed MMKG graph.
    """
    if not path.is_file():
        raise UnreadableCacheError("file not found")
    out = load_tensors(path)
    if not (
        isinstance(out, tuple)
        and len(out) == 3
        and isinstance(out[0], dict)
        and (out[1] is None or isinstance(out[1], dict))
        and out[2] is HeteroData
    ):
        raise UnreadableCacheError(f"it holds a {type(out).__name__}, not a processed HeteroData graph")
    try:
        data = HeteroData.from_dict(out[0])
    except Exception as exc:  # noqa: BLE001 - whatever the dict holds
        raise UnreadableCacheError(
            f"not a processed HeteroData graph ({type(exc).__name__}: {exc})"
        ) from None
    if (
        not {"source", "target"} <= set(data.node_types)
        or ("source", "aligned", "target") not in data.edge_types
    ):
        raise UnreadableCacheError("the graph lacks the source/target node types or the aligned pairs")
    return data, out[1]


class SafeInMemoryDataset(InMemoryDataset):
    """:class:`~torch_geometric.data.InMemoryDataset` whose files are only ever loaded with
    ``weights_only=True`` and written atomically: the processed graph (an unreadable one is reported in
    one line, deleted and rebuilt) and PyG's ``pre_transform.pt`` / ``pre_filter.pt``. Subclasses implement
    ``process`` (writing ``processed_paths[0]`` as :meth:`save_graph` does) and call
    :meth:`_load_processed` at the end of ``__init__``."""

    def save_graph(self, data: HeteroData) -> None:
        """Apply ``pre_transform`` and write ``data`` to ``processed_paths[0]`` atomically (the format of
        :meth:`InMemoryDataset.save <torch_geometric.data.InMemoryDataset.save>`)."""
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        collated, slices = self.collate([data])
        atomic_torch_save((collated.to_dict(), slices, collated.__class__), self.processed_paths[0])

    def _load_processed(self) -> None:
        """Load the processed graph; a file that cannot be loaded safely (truncated, corrupted, another
        content, or a pickle that would run code) is reported in one line, deleted and rebuilt."""
        path = Path(self.processed_paths[0])
        try:
            data, slices = _read_processed(path)
        except UnreadableCacheError as exc:
            log.warning("%s: processed dataset is unreadable (%s); rebuilding", path, exc)
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                raise MMEAError(
                    f"{path}: processed dataset is unreadable ({exc}) and cannot be removed "
                    f"({error.strerror}); delete it, or make {path.parent} writable"
                ) from None
            self._process()
            try:
                data, slices = _read_processed(path)
            except UnreadableCacheError as again:
                raise MMEAError(
                    f"{path}: the rebuilt processed dataset is unreadable ({again}); check the disk and "
                    f"delete {path.parent}"
                ) from None
        # What InMemoryDataset.load sets (PyG's load falls back to weights_only=False, so it is not used).
        self._data, self.slices, self._data_list = data, slices, None

    # PyG's Dataset.__init__ calls self._process() when the subclass defines process(); there is no
    # public hook to replace how it reads pre_transform.pt / pre_filter.pt (weights_only=False), so this
    # override does what PyG's does with safe reads and atomic writes (pinned by tests/data/test_base.py).
    def _process(self) -> None:
        """:meth:`InMemoryDataset._process <torch_geometric.data.Dataset._process>` without arbitrary
        unpickling: PyG reads ``pre_transform.pt`` / ``pre_filter.pt`` with ``weights_only=False``; here they
        are read with ``weights_only=True`` (an unreadable one is reported and rewritten) and every file is
        written atomically."""
        processed = Path(self.processed_dir)
        for name, current in (("pre_transform.pt", self.pre_transform), ("pre_filter.pt", self.pre_filter)):
            path = processed / name
            if self.force_reload or not path.is_file():
                continue
            try:
                stored = load_tensors(path)
            except UnreadableCacheError as exc:
                log.warning("%s: unreadable (%s); rewriting it", path, exc)
                path.unlink(missing_ok=True)
                atomic_torch_save(_repr(current), path)
                continue
            if stored != _repr(current):
                warnings.warn(
                    f"The `{name[:-3]}` argument differs from the one used in the pre-processed version of "
                    "this dataset. If you want to make use of another pre-processing technique, pass "
                    "`force_reload=True` explicitly to reload the dataset.",
                    stacklevel=2,
                )
        if not self.force_reload and files_exist(self.processed_paths):
            return
        if self.log and "PYTEST_CURRENT_TEST" not in os.environ:
            print("Processing...", file=sys.stderr)
        check_writable_dir(
            processed, "processed dataset folder", "make it writable or pass another --root / $MMEA_DATA"
        )
        with made_dirs(processed):  # a failed build leaves no empty folder
            self.process()
            atomic_torch_save(_repr(self.pre_transform), processed / "pre_transform.pt")
            atomic_torch_save(_repr(self.pre_filter), processed / "pre_filter.pt")
        if self.log and "PYTEST_CURRENT_TEST" not in os.environ:
            print("Done!", file=sys.stderr)
