"""The MMKG ``.h5`` image-feature format.

The MMKG release ships VGG16 features as one HDF5 file per KG (``<KG>_ImageData.h5``) holding **one
dataset per image id** (``f["DBIMG00039"]``, shape ``(4096,)`` or ``(1, 4096)``).
:func:`read_h5_features` reads that format (missing ids become masked zero rows, never noise) and
:func:`write_h5_features` writes it atomically (what :func:`~mmea_pyg.data.features.image.featurize_folder`
produces).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmea_pyg.errors import DataFormatError, MMEAError
from mmea_pyg.io import atomic_write

__all__ = ["read_h5_features", "write_h5_features"]

_H5_FIX = (
    "delete it and re-download it (`mmea download NAME --with-images`), or re-create it with "
    "`mmea featurize-images IMAGE_DIR --kg KG`"
)


def read_h5_features(path: str | os.PathLike, keys: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the feature vectors of ``keys`` from an MMKG-style ``.h5`` file.

    Args:
        path: HDF5 file with one dataset per image id (values of shape ``(D,)`` or ``(1, D)``).
        keys: ``N`` image ids; an empty string or an id absent from the file is *missing*.

    Returns:
        ``(features, mask)``: ``FloatTensor [N, D]`` (zeros in missing rows, never random) and
        ``BoolTensor [N]`` (``True`` where the key was found).

    Raises:
        DataFormatError: The file does not exist, is not readable HDF5 (truncated or corrupt), holds no
            feature vectors, or a vector is not numeric / has a different dimension / is not finite
            (the message names the key).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, f"image feature file not found; {_H5_FIX}")
    try:
        with h5py.File(path, "r") as f:
            return _read_open_h5(f, path, list(keys))
    except DataFormatError:
        raise
    except Exception as exc:  # OSError from HDF5 for truncated/corrupt files, KeyError for broken links
        raise DataFormatError(
            path,
            f"cannot be read as HDF5 ({type(exc).__name__}: {exc}); the file is probably corrupt: {_H5_FIX}",
        ) from exc


def _vector(dataset: Any, key: str, path: Path) -> np.ndarray:
    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise DataFormatError(
            path, f"entry {key!r} is a {type(dataset).__name__}, not a feature vector; {_H5_FIX}"
        )
    if dataset.dtype.kind not in "fiu":
        raise DataFormatError(path, f"feature {key!r} has non-numeric dtype {dataset.dtype}; {_H5_FIX}")
    return np.asarray(dataset[()], dtype=np.float32).reshape(-1)


def _read_open_h5(f: Any, path: Path, keys: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    present = [bool(k) and k in f for k in keys]
    # The dimension: from the first requested vector, else the file's `dim` attribute, else any vector.
    first = next((k for k, p in zip(keys, present, strict=True) if p), None)
    if first is None and "dim" in f.attrs:
        dim = int(np.asarray(f.attrs["dim"]).reshape(-1)[0])
    else:
        if first is None:
            first = next(iter(f.keys()), None)
        if first is None:
            raise DataFormatError(path, f"the file holds no feature vectors; {_H5_FIX}")
        dim = _vector(f[first], first, path).size

    features = np.zeros((len(keys), dim), dtype=np.float32)
    cache: dict[str, np.ndarray] = {}
    for row, (key, found) in enumerate(zip(keys, present, strict=True)):
        if not found:
            continue
        vector = cache.get(key)
        if vector is None:
            vector = _vector(f[key], key, path)
            if vector.size != dim:
                raise DataFormatError(
                    path,
                    f"feature {key!r} has {vector.size} values, expected {dim} like the others; {_H5_FIX}",
                )
            if not np.isfinite(vector).all():
                raise DataFormatError(path, f"feature {key!r} contains NaN or infinite values; {_H5_FIX}")
            cache[key] = vector
        features[row] = vector
    return torch.from_numpy(features), torch.tensor(present, dtype=torch.bool)


def write_h5_features(
    path: str | os.PathLike,
    features: Mapping[str, np.ndarray | torch.Tensor],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write feature vectors in the MMKG ``.h5`` format, atomically.

    The HDF5 file is built in memory and written with :func:`mmea_pyg.io.atomic_write` (a unique
    temporary file in the same directory, moved into place with :func:`os.replace`), so a reader never
    sees a half-written file.

    Args:
        path: Output file (parent directories are created).
        features: Image id -> vector of ``D`` values (any shape with ``D`` elements; stored as
            ``float32 (D,)``). All vectors must have the same ``D``.
        attrs: File-level attributes (e.g. ``{"model": "efficientnet-lite0"}``); ``dim`` and ``count`` are
            added.

    Returns:
        The path written.

    Raises:
        MMEAError: ``features`` is empty.
        DataFormatError: Vectors of different dimensions, an empty key, or non-numeric values.
    """
    import h5py

    path = Path(path)
    if not features:
        raise MMEAError(f"{path}: no feature vectors to write")
    arrays: dict[str, np.ndarray] = {}
    dim: int | None = None
    for key, value in features.items():
        if not key or not isinstance(key, str):
            raise DataFormatError(path, f"invalid image id {key!r}: ids must be non-empty strings")
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        try:
            array = np.asarray(value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(path, f"feature {key!r} is not numeric ({exc})") from exc
        if dim is None:
            dim = array.size
        elif array.size != dim:
            raise DataFormatError(
                path, f"feature {key!r} has {array.size} values, expected {dim} like the others"
            )
        arrays[key] = array

    buffer = io.BytesIO()  # h5py writes to file-like objects; the bytes then go through atomic_write
    with h5py.File(buffer, "w") as f:
        for key, array in arrays.items():
            f.create_dataset(key, data=array)
        for name, value in (attrs or {}).items():
            f.attrs[name] = value if isinstance(value, (int, float, str, bool, np.ndarray)) else str(value)
        f.attrs["dim"] = int(dim or 0)
        f.attrs["count"] = len(arrays)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getbuffer())
    return path
