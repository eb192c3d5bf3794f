"""Attribute sentences -> cached text features: the encoded matrix of a KG's attribute sentences, kept
under a file named after the text model, the token limit and the sentences, so that it is encoded once
(:func:`attribute_cache_file`, :func:`encode_attribute_sentences`). Both dataset families use it
(:class:`~mmea_pyg.data.mmkg.MMKGDataset`, :class:`~mmea_pyg.data.graph_pair.GraphPairDataset`)."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from mmea_pyg.data.base import UnreadableCacheError, load_tensors
from mmea_pyg.io import atomic_torch_save, resolve_device

__all__ = ["attribute_cache_file", "encode_attribute_sentences"]

log = logging.getLogger(__name__)


def attribute_cache_file(
    cache_dir: Path, tag: str, text_model: str, max_length: int, sentences: list[str]
) -> Path:
    """The feature cache of ``sentences`` under ``cache_dir``: ``text_<tag>_<digest>.pt``, the digest over
    the text model, the token limit and the sentences (so any change of them is a new file)."""
    digest = hashlib.sha256(json.dumps([text_model, max_length, sentences]).encode()).hexdigest()[:16]
    return cache_dir / f"text_{tag}_{digest}.pt"


def encode_attribute_sentences(
    sentences: list[str],
    mask: torch.Tensor,
    cache_file: Path,
    *,
    text_model: str,
    max_length: int = 128,
    batch_size: int = 128,
    device: str = "cpu",
    progress: bool = True,
    label: str = "",
    encoders: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Attribute features ``[N, D]`` of the entities whose ``mask`` is ``True``, zeros elsewhere.

    ``sentences`` holds one sentence per masked entity, in entity order. The encoded matrix is cached in
    ``cache_file`` (see :func:`attribute_cache_file`); a cache that cannot be loaded safely (truncated,
    other content, a pickle that would run code) is reported in one line and recomputed. The text model is
    loaded only when the cache misses.

    Args:
        sentences: The masked entities' attribute sentences.
        mask: ``[N]`` bool, which entities have attributes.
        cache_file: Where the ``[len(sentences), D]`` features are cached.
        text_model, max_length, batch_size, device: Of the :class:`~mmea_pyg.data.features.text.TextEncoder`.
        progress: Print what is encoded and show a progress bar.
        label: What is encoded, for the progress line (e.g. the KG's name).
        encoders: A dict in which a loaded encoder is kept for the next call (one model load per build).
    """
    if cache_file.exists():
        try:
            features = load_tensors(cache_file)
            if not (
                isinstance(features, torch.Tensor) and features.dim() == 2 and features.is_floating_point()
            ):
                raise UnreadableCacheError(f"it holds a {type(features).__name__}, not a feature matrix")
        except UnreadableCacheError as exc:
            log.warning("%s: attribute-feature cache is unreadable (%s); recomputing", cache_file, exc)
            cache_file.unlink(missing_ok=True)
        else:
            if features.size(0) == len(sentences):
                return _scatter_rows(features, mask)
    from mmea_pyg.data.features.text import TextEncoder

    encoder = None if encoders is None else encoders.get(text_model)
    if encoder is None:
        encoder = TextEncoder(text_model, device=resolve_device(device))
        if encoders is not None:
            encoders[text_model] = encoder
    if progress:
        print(
            f"Encoding {len(sentences):,} attribute sentences of {label} with {text_model}", file=sys.stderr
        )
    features = (
        encoder.encode(sentences, batch_size=batch_size, max_length=max_length, progress=progress)
        .float()
        .cpu()
    )
    atomic_torch_save(features, cache_file)
    return _scatter_rows(features, mask)


def _scatter_rows(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = features.new_zeros((mask.numel(), features.size(1)))
    out[mask] = features
    return out
