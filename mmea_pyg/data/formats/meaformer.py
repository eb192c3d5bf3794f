"""MEAformer / MCLEA layout (multimodal DBP15K and friends).

Files: as :mod:`~mmea_pyg.data.formats.jape` (``ent_ids_1/2``, ``triples_1/2``, optional ``rel_ids_1/2``
and ``training_attrs_1/2``), with

* ``ill_ent_ids`` (required): ``KG1 id<TAB>KG2 id``, all the links (the dataset draws a seeded split);
* an image-feature dictionary in the folder (optional): entity id -> feature vector, either
  ``<anything>_id_img_feature_dict.npz`` (``numpy.savez`` with entity ids as keys, read with
  ``allow_pickle=False``) or MEAformer's ``<anything>_id_img_feature_dict.pkl``. **A pickle can run code
  when it is loaded**: it is refused unless ``trust_pickle=True`` (``--trust-pickle``); when both forms
  are present the ``.npz`` is used. Vectors of ids that ``ent_ids`` does not define are skipped with a
  warning; entities without a vector get ``img_mask = False`` (never a random vector).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from mmea_pyg.data.formats._common import NO_SPLIT, GraphPair, WarnOnce, log
from mmea_pyg.data.formats.jape import IdSpace, read_common
from mmea_pyg.errors import DataFormatError, MMEAError

NAME = "meaformer"
TITLE = "MEAformer / MCLEA"
REQUIRED: tuple[tuple[str, ...], ...] = (
    ("ent_ids_1",),
    ("ent_ids_2",),
    ("triples_1",),
    ("triples_2",),
    ("ill_ent_ids",),
)
SUFFIX = "_id_img_feature_dict"


def image_dictionary(folder: Path) -> Path | None:
    """The image-feature dictionary of ``folder`` (``.npz`` preferred over ``.pkl``), ``None`` if none."""
    found: dict[str, list[Path]] = {}
    for ext in (".npz", ".pkl"):
        found[ext] = sorted(p for p in folder.glob(f"*{SUFFIX}{ext}") if p.is_file())
    for ext in (".npz", ".pkl"):
        if len(found[ext]) > 1:
            names = ", ".join(p.name for p in found[ext])
            raise DataFormatError(
                folder, f"several image-feature dictionaries ({names}); keep one of them in the folder"
            )
    if found[".npz"]:
        if found[".pkl"]:
            log.info("%s: using %s, not the pickle %s", folder, found[".npz"][0].name, found[".pkl"][0].name)
        return found[".npz"][0]
    return found[".pkl"][0] if found[".pkl"] else None


def input_files(folder: Path, *, fold: int = 1, snapshot: int | None = None) -> list[Path]:
    del fold, snapshot
    files = [folder / "ent_ids_1", folder / "ent_ids_2"]
    if (folder / "rel_ids_1").is_file() and (folder / "rel_ids_2").is_file():
        files += [folder / "rel_ids_1", folder / "rel_ids_2"]
    files += [folder / "triples_1", folder / "triples_2"]
    files += [folder / n for n in ("training_attrs_1", "training_attrs_2") if (folder / n).is_file()]
    files.append(folder / "ill_ent_ids")
    images = image_dictionary(folder)
    return files + ([images] if images is not None else [])


def _load_npz(path: Path) -> dict[Any, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle
        raise DataFormatError(
            path,
            f"cannot be read without unpickling ({exc}); store plain float arrays (numpy.savez with entity "
            "ids as keys)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - not a zip, truncated, ...
        raise DataFormatError(path, f"not a readable .npz file ({type(exc).__name__}: {exc})") from None


def _load_pickle(path: Path, trust_pickle: bool) -> dict[Any, Any]:
    if not trust_pickle:
        raise MMEAError(
            f"{path}: refused to load this pickle: unpickling can run code; pass --trust-pickle "
            f"(trust_pickle=True) only if you trust its source, or convert it to {path.stem}.npz "
            "(numpy.savez with entity ids as keys), which loads without running code"
        )
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle)  # noqa: S301 - the user vouched for this file (trust_pickle)
    except Exception as exc:  # noqa: BLE001 - truncated, wrong protocol, missing module, ...
        raise DataFormatError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise DataFormatError(
            path, f"holds a {type(data).__name__}, not a dictionary of entity id -> feature vector"
        )
    return data


def read_images(
    path: Path, entities: IdSpace, trust_pickle: bool
) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """Per KG ``(entity indices [K], features [K, D])`` from an image-feature dictionary."""
    raw = _load_npz(path) if path.suffix == ".npz" else _load_pickle(path, trust_pickle)
    unknown = WarnOnce(path, "vector(s) of ids that ent_ids_1/ent_ids_2 do not define", "they are skipped")
    rows: tuple[list[int], list[int]] = ([], [])
    vectors: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    dim: int | None = None
    for key, value in raw.items():
        try:
            ident = int(key)
        except (TypeError, ValueError):
            raise DataFormatError(
                path, f"key {key!r} is not an entity id; the keys must be the integer ids of ent_ids_1/2"
            ) from None
        try:
            vector = np.asarray(value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise DataFormatError(path, f"the value of id {ident} is not a numeric vector") from None
        if dim is None:
            dim = vector.size
        if vector.size != dim or dim == 0:
            raise DataFormatError(
                path, f"the vector of id {ident} has {vector.size} values where the others have {dim}"
            )
        if not np.isfinite(vector).all():
            raise DataFormatError(
                path,
                f"the vector of id {ident} contains NaN or infinite values; replace them (numpy.nan_to_num) "
                "or leave the id out",
            )
        owner = entities.owner.get(ident)
        if owner is None:
            unknown.add(f"id {ident}")
            continue
        rows[owner[0]].append(owner[1])
        vectors[owner[0]].append(vector)
    unknown.emit()
    out = []
    for kg in (0, 1):
        if dim is None:
            out.append((None, None))
            continue
        matrix = np.stack(vectors[kg]) if vectors[kg] else np.zeros((0, dim), dtype=np.float32)
        out.append((np.asarray(rows[kg], dtype=np.int64), matrix))
    return out


def read(folder: Path, *, fold: int = 1, snapshot: int | None = None, trust_pickle: bool = False):
    del fold, snapshot
    images = image_dictionary(folder)
    if images is not None and images.suffix == ".pkl" and not trust_pickle:
        _load_pickle(images, trust_pickle)  # refuse before parsing anything else
    entities, source, target, links, files = read_common(folder, [("ill_ent_ids", NO_SPLIT)])
    if images is not None:
        for kg, (index, features) in zip(
            (source, target), read_images(images, entities, trust_pickle), strict=True
        ):
            kg.image_index, kg.image_features = index, features
        files.append(images)
    return GraphPair(
        format=NAME,
        folder=folder,
        source=source,
        target=target,
        links=links.array(),
        link_split=links.split(),
        split_source=None,
        files=files,
    )
