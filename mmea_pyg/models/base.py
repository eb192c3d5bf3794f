"""The interface every alignment model of the toolkit implements, and the model registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES


class AlignmentModel(nn.Module, ABC):
    r"""Base class of the alignment models (CLAMEA, RICEA, MIMEA).

    A model maps the two knowledge graphs of a :class:`~torch_geometric.data.HeteroData` to entity
    embeddings, and a batch of seed pairs to a dict of *unweighted* named loss terms; the trainer
    weights, sums and logs them. Embeddings of an entity never depend on the other entities of a
    batch, so that training can run on the entities of a batch of pairs and evaluation in chunks.

    Subclasses implement :meth:`structure` (the per-KG part that needs the whole graph, e.g. TransE
    rows or a GAT pass), :meth:`encode` (everything else, on any subset of entities) and
    :meth:`training_losses`.
    """

    #: Whether :meth:`structure` takes ``rows`` and computes only those entities (over their
    #: neighbourhood): a training step then costs what its batch reaches, not the whole graph.
    partial_structure: bool = False

    @abstractmethod
    def structure(self, data: HeteroData, side: str, hidden: Tensor | None = None) -> Tensor:
        """Relational embeddings of every entity of ``side``, :math:`(N, d)`; ``hidden`` :math:`(N_1,)`
        flags the source entities whose seed anchors a training step hides (models with anchors).
        Models with :attr:`partial_structure` also take ``rows`` (sorted, distinct ids :math:`(R,)`)
        and return those rows :math:`(R, d)`."""

    @abstractmethod
    def encode(self, data: HeteroData, side: str, index: Tensor, structure: Tensor) -> dict[str, Tensor]:
        """Embeddings of the entities ``index`` :math:`(B,)` of ``side``.

        Returns:
            ``{"M": [B, D]}`` (the final embedding) plus whatever per-modality embeddings and loss
            terms (names starting with ``loss_``) the model defines.
        """

    @abstractmethod
    def training_losses(
        self, data: HeteroData, pairs: Tensor, pseudo_pairs: Tensor | None, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Unweighted loss terms for one step on the seed pairs ``pairs`` :math:`(2, B)` and the
        pseudo seeds ``pseudo_pairs`` :math:`(2, B')` (global entity indices)."""

    def encode_pairs(
        self,
        data: HeteroData,
        pairs: Tensor,
        pseudo_pairs: Tensor | None = None,
        hidden: Tensor | None = None,
    ) -> tuple[dict[str, dict[str, Tensor]], dict[str, dict[str, Tensor]] | None, dict[str, Tensor]]:
        """Encode the entities of the seed pairs :math:`(2, B)` and pseudo seeds :math:`(2, B')` of a
        training step, one pass per KG side.

        Returns:
            ``(seed, pseudo, terms)``: ``seed[side]`` and ``pseudo[side]`` are the outputs of
            :meth:`encode` restricted to the rows of the seed and pseudo pairs (``pseudo`` is
            :obj:`None` without pseudo seeds); ``terms`` holds the ``loss_*`` outputs, averaged over the
            two sides, without the prefix.
        """
        num_seed = pairs.size(1)
        if pseudo_pairs is not None and pseudo_pairs.numel():
            pairs = torch.cat([pairs, pseudo_pairs], dim=1)
        outs = {
            side: self.encode(data, side, pairs[i], self._structure_of(data, side, pairs[i], hidden))
            for i, side in enumerate(SIDES)
        }
        terms = {
            key.removeprefix("loss_"): (outs["source"][key] + outs["target"][key]) / 2
            for key in outs["source"]
            if key.startswith("loss_")
        }

        def rows(part: slice) -> dict[str, dict[str, Tensor]]:
            return {
                side: {k: v[part] for k, v in outs[side].items() if not k.startswith("loss_")}
                for side in SIDES
            }

        pseudo = rows(slice(num_seed, None)) if pairs.size(1) > num_seed else None
        return rows(slice(0, num_seed)), pseudo, terms

    def _structure_of(self, data: HeteroData, side: str, index: Tensor, hidden: Tensor | None):
        """What :meth:`encode` reads the relational rows of ``index`` from: the whole :meth:`structure`,
        or with :attr:`partial_structure` the rows of ``index``'s entities alone (:class:`StructureRows`)."""
        if not self.partial_structure:
            return self.structure(data, side, hidden)
        rows = torch.unique(index)
        return StructureRows(rows, self.structure(data, side, hidden, rows=rows))

    def update_pseudo_seeds(self, pairs: Tensor) -> None:
        """Called by the trainer with each new set of pseudo seeds :math:`(2, K)`. Models whose
        embeddings depend on them (e.g. CLAMEA with ``model.anchor_pseudo``) keep them in a buffer,
        so that checkpoints carry them; the default ignores them."""

    def forward(self, data: HeteroData) -> dict[str, Tensor]:
        """Final embeddings of every entity: ``{"source": [N1, D], "target": [N2, D]}``."""
        return {side: self.embed(data, side) for side in SIDES}

    def embed(
        self, data: HeteroData, side: str, index: Tensor | None = None, chunk_size: int = 4096
    ) -> Tensor:
        """Final embeddings of ``index`` (default: all entities of ``side``), computed in chunks."""
        structure = self.structure(data, side)
        if index is None:
            index = torch.arange(data[side].num_nodes, device=structure.device)
        # An empty index would split into one empty part.
        parts = index.split(chunk_size) if index.numel() else ()
        chunks = [self.encode(data, side, part, structure)["M"] for part in parts]
        return torch.cat(chunks) if chunks else structure.new_zeros((0, self.output_dim))

    @torch.no_grad()
    def modality_weights(
        self, data: HeteroData, side: str, index: Tensor | None = None, chunk_size: int = 4096
    ) -> dict[str, Tensor]:
        """The per-entity modality weights the model learns (CLAMEA's Dsum weights, RICEA's calibrated
        weights, MIMEA's normalised Beta means) of ``index`` (default: every entity of ``side``).

        Returns:
            ``{label: weights}`` with ``weights`` :math:`(B,)` in :math:`[0, 1]`, one entry per weighted
            modality (e.g. ``"calibrated weight of a"``); empty for a model (or configuration) that
            weighs no modality.
        """
        structure = self.structure(data, side)
        if index is None:
            index = torch.arange(data[side].num_nodes, device=structure.device)
        parts: dict[str, list[Tensor]] = {}
        for part in index.split(chunk_size) if index.numel() else ():
            for label, value in self.weight_outputs(self.encode(data, side, part, structure)).items():
                parts.setdefault(label, []).append(value)
        return {label: torch.cat(values) for label, values in parts.items()}

    def weight_outputs(self, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """The modality weights among the outputs of :meth:`encode`, ``{label: (B,)}``; the default
        model has none."""
        return {}

    @property
    def num_blocks(self) -> int:
        """How many L2-normalised blocks the final embedding concatenates (its cosine is their mean, or
        a weighted mean); 1 unless a model says otherwise."""
        return 1

    @property
    @abstractmethod
    def output_dim(self) -> int:
        """Width D of the final embedding."""


MODELS: dict[str, Callable[..., AlignmentModel]] = {}


class StructureRows:
    """The relational rows of some entities, indexed by entity id as the whole :math:`(N, d)` matrix of
    :meth:`AlignmentModel.structure` is: ``rows`` (sorted, distinct ids :math:`(R,)`), ``values``
    :math:`(R, d)`. ``self[index]`` is :math:`(B, d)` for ids ``index`` :math:`(B,)` among ``rows``."""

    def __init__(self, rows: Tensor, values: Tensor) -> None:
        self.rows, self.values = rows, values

    def __getitem__(self, index: Tensor) -> Tensor:
        return self.values[torch.searchsorted(self.rows, index)]


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: make a model buildable by name (``mmea train --model NAME``)."""

    def decorator(cls: type) -> type:
        MODELS[name] = cls
        return cls

    return decorator
