"""The Multimodal Knowledge Encoder (MKE), shared by every model of the toolkit.

CLAMEA, RICEA and MIMEA all start from the same per-modality embeddings: the relation graph of each KG
through one of the relational encoders (``model.structure``: the paper's TransE of :mod:`mmea_pyg.nn.mke`,
or one of ours in :mod:`mmea_pyg.nn.structure`: GAT over free entity rows, the inductive GAT over
attribute features with optional seed anchors and relation-type context, seed propagation), and the frozen attribute and image features through projections with a learned "missing"
vector. :class:`KnowledgeEncoder` owns those choices and everything that comes with them (TransE's own
loss, the anchors hidden in a training step, the pseudo-seed anchors a checkpoint must carry), so the
three models differ only in what they do with the per-modality embeddings.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.config import Config, ModelConfig, TrainConfig
from mmea_pyg.data.base import SIDES
from mmea_pyg.data.splits import pairs_of
from mmea_pyg.errors import ConfigError
from mmea_pyg.models.base import AlignmentModel
from mmea_pyg.nn.label_propagation import AnchorPropagation
from mmea_pyg.nn.mke import ModalityProjection, TransE
from mmea_pyg.nn.structure import (
    GATEncoder,
    InductiveGATEncoder,
    InductiveGCNEncoder,
    RelationContext,
    RelationReflection,
    SeedAnchors,
    SeedPropagationEncoder,
)

#: Relational encoders: TransE (the paper), GAT over free entity embeddings, GAT over attribute features.
STRUCTURES = ("transe", "gat", "gat-attr", "gcn-attr", "propagation")
#: The inductive relational encoders (no per-entity parameters; take seed anchors and relation context).
INDUCTIVE = ("gat-attr", "gcn-attr", "propagation")


@dataclass(frozen=True)
class GraphSizes:
    """What :class:`KnowledgeEncoder` needs to know of the data: entities and relation types per KG side
    (``{"source": N1, "target": N2}``) and the widths of the attribute and image features (0: none; every
    entity then lacks the modality)."""

    num_entities: dict[str, int]
    num_relations: dict[str, int]
    attr_dim: int
    img_dim: int = 0

    @classmethod
    def of(cls, data: HeteroData) -> GraphSizes:
        """The sizes of a graph pair in the dataset layout."""
        return cls(
            num_entities={side: data[side].num_nodes for side in SIDES},
            num_relations={side: len(data[side, "relation", side].relation_names) for side in SIDES},
            attr_dim=data["source"].x_attr.size(1),
            img_dim=data["source"].x_img.size(1),
        )


def _check_options(model: ModelConfig, train: TrainConfig) -> None:
    """Reject combinations of the encoder's options that cannot be built, with the fix."""
    if model.structure not in STRUCTURES:
        raise ConfigError(f"model.structure must be one of {', '.join(STRUCTURES)}, got {model.structure!r}")
    for flag, on in (
        ("anchors", model.anchors),
        ("relation_context", model.relation_context),
    ):
        if on and model.structure not in INDUCTIVE:
            raise ConfigError(
                f"model.{flag}=true needs an inductive encoder: model.structure={' or '.join(INDUCTIVE)}"
            )
    if model.anchor_features not in ("learned", "propagated"):
        raise ConfigError(
            f"model.anchor_features must be 'learned' or 'propagated', got {model.anchor_features!r}"
        )
    if model.relation_reflection and model.structure != "propagation":
        raise ConfigError("model.relation_reflection=true needs model.structure=propagation")
    if model.relation_view and model.structure != "propagation":
        raise ConfigError(
            f"model.relation_view={model.relation_view} needs model.structure=propagation (or set it to 0)"
        )
    if model.anchor_self > 0 and (model.structure != "propagation" or model.anchor_dim != model.dim):
        raise ConfigError(
            f"model.anchor_self={model.anchor_self} adds an anchor's own code to its embedding: it needs "
            f"model.structure=propagation and model.anchor_dim equal to model.dim ({model.dim}), got "
            f"structure={model.structure}, anchor_dim={model.anchor_dim}"
        )
    if model.anchor_pseudo and not model.anchors:
        raise ConfigError("model.anchor_pseudo=true needs model.anchors=true")
    if not 0.0 < train.anchor_holdout < 1.0:
        raise ConfigError(
            f"train.anchor_holdout must lie strictly between 0 and 1, got {train.anchor_holdout}"
        )
    if model.structure == "propagation" and (not model.anchors or model.anchor_features != "learned"):
        raise ConfigError(
            "model.structure=propagation propagates the seed codes: it needs model.anchors=true "
            "with model.anchor_features=learned"
        )


def _relational_encoder(model: ModelConfig, sizes: GraphSizes, relations: dict[str, int]) -> nn.Module:
    """The relational encoder of ``model.structure``: one per KG (TransE, GAT over free entity rows) or
    one shared by both KGs (the inductive encoders)."""
    dim, structure = model.dim, model.structure
    if structure == "transe":
        return nn.ModuleDict(
            {
                side: TransE(sizes.num_entities[side], relations[side], dim, model.transe_margin)
                for side in SIDES
            }
        )
    if structure == "gat-attr":
        # One inductive encoder shared by both KGs (no per-entity parameters).
        return InductiveGATEncoder(sizes.attr_dim, dim, num_layers=model.gat_layers)
    if structure == "gcn-attr":
        return InductiveGCNEncoder(sizes.attr_dim, dim, num_layers=model.gat_layers)
    if structure == "propagation":
        return SeedPropagationEncoder(
            code_dim=model.anchor_dim,
            dim=dim,
            hops=model.anchor_hops,
            self_weight=model.anchor_self,
            relation_view=model.relation_view,
        )
    return nn.ModuleDict(
        {
            side: GATEncoder(
                sizes.num_entities[side],
                dim,
                num_layers=model.gat_layers,
                heads=model.heads,
                num_relations=relations[side],
            )
            for side in SIDES
        }
    )


def _anchor_codes(model: ModelConfig, sizes: GraphSizes) -> nn.Module | None:
    """The seed-anchor codes with ``model.anchors``: learned (of width ``anchor_dim`` for the propagation
    encoder, ``dim`` for the others) or LightEA's propagated labels projected to ``dim``."""
    if not model.anchors:
        return None
    num_source = sizes.num_entities["source"]
    if model.anchor_features == "learned":
        return SeedAnchors(num_source, model.anchor_dim if model.structure == "propagation" else model.dim)
    return AnchorPropagation(num_source, model.dim, code_dim=model.anchor_dim, hops=model.anchor_hops)


def _relation_reflections(model: ModelConfig, relations: dict[str, int]) -> nn.ModuleDict | None:
    """One :class:`~mmea_pyg.nn.structure.RelationReflection` per KG with ``model.relation_reflection``."""
    if not model.relation_reflection:
        return None
    return nn.ModuleDict({side: RelationReflection(relations[side], model.anchor_dim) for side in SIDES})


def _relation_contexts(model: ModelConfig, relations: dict[str, int]) -> nn.ModuleDict | None:
    """One :class:`~mmea_pyg.nn.structure.RelationContext` per KG with ``model.relation_context``."""
    if not model.relation_context:
        return None
    return nn.ModuleDict({side: RelationContext(relations[side], model.dim) for side in SIDES})


class KnowledgeEncoder(nn.Module):
    r"""Per-modality embeddings :math:`\mathbf{h}^r, \mathbf{h}^a, \mathbf{h}^v` of both KGs (CLAMEA
    App. B, Eq. 29-32, and the alternatives of the relational encoder).

    Attribute and image features go through one :class:`~mmea_pyg.nn.mke.ModalityProjection`
    each, shared by both KGs (a linear map, Eq. 31-32, or a two-layer MLP with ``mlp_hidden > 0``);
    an entity without the modality gets the learned missing vector and a ``False`` mask. The
    relational encoder (``structure``) is one of:

    * ``"transe"``: one :class:`~mmea_pyg.nn.mke.TransE` per KG, trained by its margin loss
      (:meth:`losses`);
    * ``"gat"``: one :class:`~mmea_pyg.nn.structure.GATEncoder` per KG (free entity rows plus
      relation-type context);
    * ``"gat-attr"``: one :class:`~mmea_pyg.nn.structure.InductiveGATEncoder` shared by both KGs, over
      the attribute features, with optional additive inputs: seed anchors
      (:class:`~mmea_pyg.nn.structure.SeedAnchors`, ``anchors``; the latest pseudo seeds too with
      ``anchor_pseudo``) and per-KG relation-type context
      (:class:`~mmea_pyg.nn.structure.RelationContext`, ``relation_context``);
    * ``"gcn-attr"``: the same with :class:`~mmea_pyg.nn.structure.InductiveGCNEncoder` (graph
      convolutions: one cached sparse product per layer);
    * ``"propagation"`` (the validated presets): one
      :class:`~mmea_pyg.nn.structure.SeedPropagationEncoder` shared by both KGs, which propagates the
      learned seed-pair codes of :class:`~mmea_pyg.nn.structure.SeedAnchors` (width ``anchor_dim``,
      ``anchor_hops`` steps; needs ``anchors``) over each relation graph and reads them out with the
      optional relation-type context. It reads no attribute or image feature.

    Args:
        config: The run's configuration; the encoder reads ``model.dim``, ``model.structure``,
            ``model.heads`` (GAT heads of ``"gat"``), ``model.gat_layers`` (layers of ``"gat"``,
            ``"gat-attr"`` and ``"gcn-attr"``), ``model.transe_margin`` with ``train.transe_batch_size``
            and ``train.transe_reduction`` (TransE's margin loss, Eq. 29-30), the inputs of the inductive
            encoders above (``model.anchors``, ``model.anchor_pseudo``, ``model.relation_context``;
            ``model.anchor_features``: ``"learned"``, :class:`~mmea_pyg.nn.structure.SeedAnchors`, or
            ``"propagated"``, :class:`~mmea_pyg.nn.label_propagation.AnchorPropagation`, with
            ``model.anchor_dim`` and ``model.anchor_hops``) and ``train.anchor_holdout`` (the fraction of
            a step's seed pairs whose anchor codes are hidden, see :meth:`hide`).
        sizes: The entity and relation counts and the feature widths of the data (:class:`GraphSizes`).
        mlp_hidden: Hidden width of the attribute / image MLPs (0: linear projections).

    Shapes:
        - :meth:`structure`: ``data``, ``side`` and an optional source-entity mask :math:`(N_1,)` of
          hidden anchors :math:`\to (N_{side}, d)`
        - :meth:`forward`: ``data``, ``side``, entity indices :math:`(B,)` and the output of
          :meth:`structure` :math:`\to` ``({m: (B, d)}, {m: (B,) bool})`` for ``m`` in ``r, a, v``
    """

    #: Buffers whose size a checkpoint decides (the pseudo anchors grow during training): their
    #: number of dimensions is checked when a checkpoint is loaded, not their shape.
    variable_buffers = ("pseudo_anchors",)

    def __init__(self, config: Config, sizes: GraphSizes, mlp_hidden: int = 0) -> None:
        super().__init__()
        model, train = config.model, config.train
        _check_options(model, train)
        self.kind = model.structure
        self.transe_batch_size = train.transe_batch_size
        self.transe_reduction = train.transe_reduction
        self.anchor_holdout = train.anchor_holdout
        self.anchor_pseudo = model.anchor_pseudo
        # Built in this order (each module draws its initial weights from the global RNG).
        relations = {side: max(sizes.num_relations[side], 1) for side in SIDES}
        self.encoder = _relational_encoder(model, sizes, relations)
        self.anchors: nn.Module | None = _anchor_codes(model, sizes)
        self.relation_context = _relation_contexts(model, relations)
        self.reflection = _relation_reflections(model, relations)
        self.project = nn.ModuleDict(
            {
                "a": ModalityProjection(sizes.attr_dim, model.dim, hidden=mlp_hidden),
                "v": ModalityProjection(sizes.img_dim, model.dim, hidden=mlp_hidden),
            }
        )
        empty = torch.zeros(2, 0, dtype=torch.long)
        self.register_buffer("pseudo_anchors", empty if model.anchor_pseudo else None)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: Config, data: HeteroData, mlp_hidden: int = 0) -> KnowledgeEncoder:
        """Build from a :class:`~mmea_pyg.config.Config` and the dataset's graphs."""
        return cls(config, GraphSizes.of(data), mlp_hidden)

    def reset_parameters(self) -> None:
        encoders = self.encoder.values() if isinstance(self.encoder, nn.ModuleDict) else [self.encoder]
        for module in encoders:
            module.reset_parameters()
        if self.anchors is not None:
            self.anchors.reset_parameters()
        for table in (self.relation_context, self.reflection):
            for module in table.values() if table is not None else ():
                module.reset_parameters()
        for module in self.project.values():
            module.reset_parameters()
        if self.pseudo_anchors is not None:  # a fresh model has no pseudo seeds yet
            self.pseudo_anchors = self.pseudo_anchors.new_zeros(2, 0)

    def forward(
        self, data: HeteroData, side: str, index: Tensor, structure: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Embeddings and masks of the entities ``index`` of ``side`` for every modality; the relational
        rows are taken from ``structure`` (the output of :meth:`structure` for ``side``)."""
        store = data[side]
        attr_mask, img_mask = store.attr_mask[index], store.img_mask[index]
        h = {
            "r": structure[index],
            "a": self.project["a"](store.x_attr[index], attr_mask),
            "v": self.project["v"](store.x_img[index], img_mask),
        }
        return h, {"r": torch.ones_like(attr_mask), "a": attr_mask, "v": img_mask}

    @property
    def partial_structure(self) -> bool:
        """Whether :meth:`structure` can compute a few entities' rows alone (the propagation encoder:
        over their neighbourhood; the others need the whole graph)."""
        return self.kind == "propagation"

    def structure(
        self, data: HeteroData, side: str, hidden: Tensor | None = None, rows: Tensor | None = None
    ) -> Tensor:
        """Relational embeddings :math:`(N, d)` of ``side``. With seed anchors, every training seed
        pair (and pseudo seed, with ``anchor_pseudo``) is an anchor except those whose source entity
        is flagged in ``hidden`` :math:`(N_1,)`. With ``rows`` (sorted, distinct ids :math:`(R,)`;
        :attr:`partial_structure` encoders only), their rows :math:`(R, d)`, the same values."""
        edges = data[side, "relation", side]
        if rows is not None and not self.partial_structure:
            raise ValueError(f"the {self.kind} encoder computes every entity: call structure without rows")
        if self.kind == "transe":
            return self.encoder[side]()
        if self.kind == "gat":
            return self.encoder[side](edges.edge_index, edges.edge_type)
        context = codes = None
        if self.anchors is not None:
            seeds = self.anchor_pairs(data, pseudo=self.anchor_pseudo)
            if hidden is not None:
                seeds = seeds[:, ~hidden[seeds[0]]]
            if isinstance(self.anchors, AnchorPropagation):
                codes = self.anchors(seeds, SIDES.index(side), edges.edge_index, data[side].num_nodes)
            else:
                sizes = (data["source"].num_nodes, data["target"].num_nodes)
                codes = self.anchors(seeds, sizes)[SIDES.index(side)]
        if not isinstance(self.encoder, SeedPropagationEncoder):
            context, codes = codes, None  # the GAT / GCN encoders add the codes at their input
        relation = None
        if self.relation_context is not None:
            relation = self.relation_context[side](
                edges.edge_index, edges.edge_type, data[side].num_nodes, rows
            )
        if codes is not None:  # the propagation encoder reads the relation graph only
            reflection = None if self.reflection is None else self.reflection[side]
            return self.encoder(edges.edge_index, codes, relation, reflection, edges.edge_type, rows)
        if relation is not None:
            context = relation if context is None else context + relation
        return self.encoder(data[side].x_attr, data[side].attr_mask, edges.edge_index, context)

    def anchor_pairs(self, data: HeteroData, pseudo: bool = True) -> Tensor:
        """The training seed pairs and, with ``pseudo``, the kept pseudo seeds: :math:`(2, K)`."""
        seeds = pairs_of(data, "train")
        if pseudo and self.pseudo_anchors is not None and self.pseudo_anchors.numel():
            seeds = torch.cat([seeds, self.pseudo_anchors.to(seeds.device)], dim=1)
        return seeds

    def hide(
        self, data: HeteroData, pairs: Tensor, pseudo_pairs: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """The seed pairs a training step scores, and the anchors it hides.

        Without anchors: ``(pairs, None)``. With anchors, a random ``anchor_holdout`` share of
        ``pairs`` :math:`(2, B)` (at least one pair) is kept and returned with a source-entity mask
        :math:`(N_1,)` that hides their codes and those of ``pseudo_pairs``: the step must align
        them from their context, not from a code both sides share.
        """
        if self.anchors is None:
            return pairs, None
        hide = torch.rand(pairs.size(1), generator=generator) < self.anchor_holdout
        hide[torch.randint(pairs.size(1), (1,), generator=generator)] = True  # never empty
        pairs = pairs[:, hide.to(pairs.device)]
        hidden = torch.zeros(data["source"].num_nodes, dtype=torch.bool, device=pairs.device)
        hidden[pairs[0]] = True
        if pseudo_pairs is not None:
            hidden[pseudo_pairs[0]] = True
        return pairs, hidden

    def losses(self, data: HeteroData, generator: torch.Generator) -> dict[str, Tensor]:
        """The encoder's own loss terms: ``{"transe": L_TransE of both KGs}`` for TransE, else none."""
        if self.kind != "transe":
            return {}
        total = 0
        for side in SIDES:
            edges = data[side, "relation", side]
            total = total + self.encoder[side].loss(
                edges.edge_index, edges.edge_type, self.transe_batch_size, generator, self.transe_reduction
            )
        return {"transe": total}

    def update_pseudo_seeds(self, pairs: Tensor) -> None:
        """Keep ``pairs`` :math:`(2, K)` as pseudo anchors (with ``anchor_pseudo``; else a no-op)."""
        if self.pseudo_anchors is not None:
            self.pseudo_anchors = pairs.detach().to(self.pseudo_anchors.device, torch.long)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # The number of pseudo anchors changes during training: take the checkpoint's.
        key = prefix + "pseudo_anchors"
        if key in state_dict and self.pseudo_anchors is not None:
            self.pseudo_anchors = torch.empty_like(state_dict[key], device=self.pseudo_anchors.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        extras = [
            name for name in ("anchors", "relation_context", "reflection") if getattr(self, name) is not None
        ]
        if self.project["a"].hidden:
            extras.append(f"mlp_hidden={self.project['a'].hidden}")
        return f"{self.__class__.__name__}({self.kind}{''.join(', ' + e for e in extras)})"


class KnowledgeModel(AlignmentModel):
    """An alignment model on a :class:`KnowledgeEncoder` (``self.knowledge``) that outputs one
    ``self.dim``-wide block per kept modality (``self.kept``): the relational pass, the pseudo-seed
    hook and the training step are shared; subclasses define :meth:`encode` and :meth:`alignment_loss`,
    and may add loss terms over a batch with :meth:`batch_losses`."""

    knowledge: KnowledgeEncoder
    kept: tuple[str, ...]
    dim: int

    @property
    def output_dim(self) -> int:
        return self.dim * len(self.kept)

    @property
    def num_blocks(self) -> int:
        return len(self.kept)

    @property
    def partial_structure(self) -> bool:
        return self.knowledge.partial_structure

    def structure(
        self, data: HeteroData, side: str, hidden: Tensor | None = None, rows: Tensor | None = None
    ) -> Tensor:
        return self.knowledge.structure(data, side, hidden, rows)

    def update_pseudo_seeds(self, pairs: Tensor) -> None:
        self.knowledge.update_pseudo_seeds(pairs)

    @abstractmethod
    def alignment_loss(self, src: dict[str, Tensor], tgt: dict[str, Tensor]) -> Tensor:
        """The contrastive alignment loss of aligned rows of ``src`` and ``tgt`` (outputs of :meth:`encode`)."""

    def batch_losses(self, seed: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
        """Extra loss terms over the encoded seed pairs of a step (``seed[side]``); none by default."""
        return {}

    def training_losses(
        self, data: HeteroData, pairs: Tensor, pseudo_pairs: Tensor | None, generator: torch.Generator
    ) -> dict[str, Tensor]:
        pairs, hidden = self.knowledge.hide(data, pairs, pseudo_pairs, generator)
        seed, pseudo, terms = self.encode_pairs(data, pairs, pseudo_pairs, hidden)
        losses = {**self.knowledge.losses(data, generator), **terms}
        losses["mcl"] = self.alignment_loss(seed["source"], seed["target"])
        losses.update(self.batch_losses(seed))
        if pseudo is not None:
            losses["pseudo"] = self.alignment_loss(pseudo["source"], pseudo["target"])
        return losses
