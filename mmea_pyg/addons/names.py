r"""Entity names as an optional add-on (``mmea align --names``): not part of any model.

Every entity gets a label (``data[side].name``: an ``rdfs:label``/``skos:prefLabel`` or names file
where the layout has one, else the last segment of its URI, URL-decoded, with ``_`` as spaces). Two
views of a label are compared:

* **character n-grams** (:func:`char_ngram_vectors`): the label's character 3-grams hashed with a
  random sign into ``buckets`` dimensions (feature hashing, a random projection of the n-gram counts)
  and L2-normalised; its cosine carries across languages that share an alphabet (``Berlin`` /
  ``Berlín``);
* **text embedding** (optional, ``text_model``): the label encoded by the text encoder of the
  attribute features (all-MiniLM-L6-v2 by default).

:class:`NameAddOn` appends them to a trained model's embedding,

.. math::
    \mathbf{e}_i = \Bigl[\frac{\mathbf{m}_i}{\lVert \mathbf{m}_i \rVert} \,\Big\|\, w\,\mathbf{n}_i\Bigr],
    \qquad \mathbf{n}_i = \frac{[\mathbf{c}_i \,\|\, \mathbf{t}_i]}{\lVert [\mathbf{c}_i \,\|\, \mathbf{t}_i]\rVert},

so that the cosine of two entities is :math:`(\cos_M + w^2 \cos_N) / (1 + w^2)`. :func:`name_pivots`
induces seed pairs from names alone (mutual best name matches above a confidence cut) for graphs that
come without any link.
"""

from __future__ import annotations

import re
import urllib.parse
import zlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES
from mmea_pyg.similarity import mutual_nearest_neighbours

_SPACES = re.compile(r"\s+")
_PUNCTUATION = re.compile(r"[^\w]+")


def normalise_label(label: str) -> str:
    """A label for comparison: the last segment of a URI (after ``/`` or ``#``), URL-decoded,
    punctuation and ``_`` as spaces, case-folded, single spaces."""
    text = label.strip()
    if "://" in text or text.startswith("<"):
        text = re.split(r"[/#]", text.strip("<>").rstrip("/"))[-1]
    text = _PUNCTUATION.sub(" ", urllib.parse.unquote(text).replace("_", " "))
    return _SPACES.sub(" ", text).strip().casefold()


def char_ngram_vectors(labels: Sequence[str], n: int = 3, buckets: int = 512) -> Tensor:
    """Signed feature hashing of each label's character ``n``-grams (with ``#`` padding), L2-normalised:
    :math:`(N, \\text{buckets})`. An empty label gives a zero row. Hashes are CRC32 (stable across
    processes)."""
    rows, cols, vals = [], [], []
    for i, label in enumerate(labels):
        text = f"#{normalise_label(label)}#"
        if len(text) <= 2:
            continue
        for j in range(max(1, len(text) - n + 1)):
            h = zlib.crc32(text[j : j + n].encode("utf-8"))
            rows.append(i)
            cols.append(h % buckets)
            vals.append(1.0 if (h >> 31) & 1 else -1.0)
    out = torch.zeros(len(labels), buckets)
    if rows:
        out.index_put_((torch.tensor(rows), torch.tensor(cols)), torch.tensor(vals), accumulate=True)
    return F.normalize(out, dim=-1)


def name_vectors(
    data: HeteroData,
    side: str,
    text_model: str | None = None,
    buckets: int = 512,
    device: str = "cpu",
    progress: bool = False,
) -> Tensor:
    """The name view :math:`\\mathbf{n}` of every entity of ``side``, :math:`(N, D)`: character n-grams,
    plus the text embedding when ``text_model`` is given (each half L2-normalised, then the whole)."""
    labels = list(data[side].name)
    parts = [char_ngram_vectors(labels, buckets=buckets)]
    if text_model is not None:
        from mmea_pyg.data.features.text import TextEncoder

        encoder = TextEncoder(text_model, device=device)
        labels = [normalise_label(x) for x in labels]
        parts.append(F.normalize(encoder.encode(labels, progress=progress), dim=-1))
    return F.normalize(torch.cat(parts, dim=-1), dim=-1)


class NameAddOn(nn.Module):
    """A trained model with the entities' name vectors appended to its embedding (an add-on).

    Args:
        model: Any :class:`~mmea_pyg.models.base.AlignmentModel` (or another add-on).
        names: ``{"source": (N1, D), "target": (N2, D)}`` from :func:`name_vectors`.
        weight: :math:`w`, the norm of the name block against the model block's 1.
    """

    #: How evaluations name this embedding.
    embedding_name = "model + names"

    def __init__(self, model: nn.Module, names: dict[str, Tensor], weight: float = 1.0) -> None:
        super().__init__()
        if weight <= 0:
            from mmea_pyg.errors import ConfigError

            raise ConfigError(f"the names weight must be > 0, got {weight}")
        self.model = model
        self.names = names
        self.weight = weight

    def embed(
        self, data: HeteroData, side: str, index: Tensor | None = None, chunk_size: int = 4096
    ) -> Tensor:
        own = F.normalize(self.model.embed(data, side, index, chunk_size), dim=-1)
        names = self.names[side].to(own.device)
        names = names if index is None else names[index]
        return torch.cat([own, self.weight * names], dim=-1)

    def forward(self, data: HeteroData) -> dict[str, Tensor]:
        return {side: self.embed(data, side) for side in SIDES}


def with_pivots(data: HeteroData, pivots: Tensor, valid_fraction: float = 0.1, seed: int = 0) -> HeteroData:
    """A copy of ``data`` whose training and validation links are ``pivots`` :math:`(2, K)` (a
    seeded ``valid_fraction`` of them for validation, at least one), appended to its links (which then
    stay test links, if there are any)."""
    data = data.clone()
    aligned = data["source", "aligned", "target"]
    count = pivots.size(1)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    valid = torch.zeros(count, dtype=torch.bool)
    valid[order[: max(1, int(round(valid_fraction * count)))]] = True
    old = aligned.edge_index if "edge_index" in aligned else torch.empty(2, 0, dtype=torch.long)
    zeros = torch.zeros(old.size(1), dtype=torch.bool)
    test = aligned.test_mask if "test_mask" in aligned else zeros
    aligned.edge_index = torch.cat([old, pivots.to(old.device)], dim=1)
    aligned.train_mask = torch.cat([zeros, ~valid])
    aligned.valid_mask = torch.cat([zeros, valid])
    aligned.test_mask = torch.cat([test.cpu(), torch.zeros(count, dtype=torch.bool)])
    return data


def name_pivots(names: dict[str, Tensor], min_score: float = 0.9, chunk_size: int = 2048) -> Tensor:
    """Seed pairs induced from names alone: mutual best name matches whose cosine is at least
    ``min_score``, :math:`(2, K)`."""
    src, tgt = names["source"], names["target"]
    pairs = mutual_nearest_neighbours(
        src, tgt, torch.arange(src.size(0)), torch.arange(tgt.size(0)), chunk_size=chunk_size
    )
    if pairs.numel() == 0:
        return pairs
    score = (F.normalize(src[pairs[0]], dim=-1) * F.normalize(tgt[pairs[1]], dim=-1)).sum(-1)
    return pairs[:, score >= min_score]
