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

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES
from mmea_pyg.errors import ConfigError
from mmea_pyg.models.base import AlignmentModel
from mmea_pyg.nn.label_propagation import AnchorPropagation
from mmea_pyg.nn.mke import ModalityProjection, TransE
from mmea_pyg.nn.structure import (
    GATEncoder,
    InductiveGATEncoder,
    InductiveGCNEncoder,
    RelationContext,
    SeedAnchors,
    SeedPropagationEncoder,
)

#: Relational encoders: TransE (the paper), GAT over free entity embeddings, GAT over attribute features.
STRUCTURES = ("transe", "gat", "gat-attr", "gcn-attr", "propagation")
#: The inductive relational encoders (no per-entity parameters; take seed anchors and relation context).
INDUCTIVE = ("gat-attr", "gcn-attr", "propagation")


def train_seeds(data: HeteroData) -> Tensor:
    """The training seed pairs ``[2, K]`` of the split held by ``data``."""
    aligned = data["source", "aligned", "target"]
    return aligned.edge_index[:, aligned.train_mask]


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
        num_entities: Entities per KG side, ``{"source": N1, "target": N2}``.
        num_relations: Relation types per KG side.
        attr_dim: Width of the attribute features (also the input of ``"gat-attr"``).
        img_dim: Width of the image features (0: none; every entity then lacks the visual modality).
        dim: Embedding width :math:`d`.
        mlp_hidden: Hidden width of the attribute / image MLPs (0: linear projections).
        structure: ``"transe"``, ``"gat"``, ``"gat-attr"``, ``"gcn-attr"`` or ``"propagation"``.
        heads: GAT heads of ``"gat"``.
        gat_layers: Layers of ``"gat"``, ``"gat-attr"`` and ``"gcn-attr"``.
        transe_margin, transe_batch_size, transe_reduction: TransE's margin loss (Eq. 29-30).
        anchors, anchor_pseudo, relation_context: the inputs of the inductive encoders above.
        anchor_features: ``"learned"`` (:class:`~mmea_pyg.nn.structure.SeedAnchors`) or
            ``"propagated"`` (:class:`~mmea_pyg.nn.label_propagation.AnchorPropagation`, with ``anchor_dim``
            and ``anchor_hops``).
        anchor_holdout: Fraction of a step's seed pairs whose anchor codes are hidden (and on which
            the alignment loss is computed), see :meth:`hide`.

    Shapes:
        - :meth:`structure`: ``data``, ``side`` and an optional source-entity mask :math:`(N_1,)` of
          hidden anchors :math:`\to (N_{side}, d)`
        - :meth:`forward`: ``data``, ``side``, entity indices :math:`(B,)` and the output of
          :meth:`structure` :math:`\to` ``({m: (B, d)}, {m: (B,) bool})`` for ``m`` in ``r, a, v``
    """

    #: Buffers whose size a checkpoint decides (the pseudo anchors grow during training): their
    #: number of dimensions is checked when a checkpoint is loaded, not their shape.
    variable_buffers = ("pseudo_anchors",)

    def __init__(
        self,
        num_entities: dict[str, int],
        num_relations: dict[str, int],
        attr_dim: int,
        img_dim: int = 0,
        dim: int = 100,
        mlp_hidden: int = 0,
        structure: str = "transe",
        heads: int = 2,
        gat_layers: int = 2,
        transe_margin: float = 1.0,
        transe_batch_size: int = 5000,
        transe_reduction: str = "sum",
        anchors: bool = False,
        anchor_features: str = "learned",
        anchor_dim: int = 512,
        anchor_hops: int = 2,
        anchor_pseudo: bool = False,
        relation_context: bool = False,
        anchor_holdout: float = 0.5,
    ) -> None:
        super().__init__()
        if structure not in STRUCTURES:
            raise ConfigError(f"model.structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
        for flag, on in (
            ("anchors", anchors),
            ("relation_context", relation_context),
        ):
            if on and structure not in INDUCTIVE:
                raise ConfigError(
                    f"model.{flag}=true needs an inductive encoder: model.structure={' or '.join(INDUCTIVE)}"
                )
        if anchor_features not in ("learned", "propagated"):
            raise ConfigError(
                f"model.anchor_features must be 'learned' or 'propagated', got {anchor_features!r}"
            )
        if anchor_pseudo and not anchors:
            raise ConfigError("model.anchor_pseudo=true needs model.anchors=true")
        if not 0.0 < anchor_holdout < 1.0:
            raise ConfigError(f"train.anchor_holdout must lie strictly between 0 and 1, got {anchor_holdout}")
        self.kind = structure
        self.transe_batch_size = transe_batch_size
        self.transe_reduction = transe_reduction
        self.anchor_holdout = anchor_holdout
        self.anchor_pseudo = anchor_pseudo
        relations = {side: max(num_relations[side], 1) for side in SIDES}
        if structure == "transe":
            self.encoder = nn.ModuleDict(
                {side: TransE(num_entities[side], relations[side], dim, transe_margin) for side in SIDES}
            )
        elif structure == "gat-attr":
            # One inductive encoder shared by both KGs (no per-entity parameters).
            self.encoder = InductiveGATEncoder(attr_dim, dim, num_layers=gat_layers)
        elif structure == "gcn-attr":
            self.encoder = InductiveGCNEncoder(attr_dim, dim, num_layers=gat_layers)
        elif structure == "propagation":
            if not anchors or anchor_features != "learned":
                raise ConfigError(
                    "model.structure=propagation propagates the seed codes: it needs model.anchors=true "
                    "with model.anchor_features=learned"
                )
            self.encoder = SeedPropagationEncoder(code_dim=anchor_dim, dim=dim, hops=anchor_hops)
        else:
            self.encoder = nn.ModuleDict(
                {
                    side: GATEncoder(
                        num_entities[side],
                        dim,
                        num_layers=gat_layers,
                        heads=heads,
                        num_relations=relations[side],
                    )
                    for side in SIDES
                }
            )
        self.anchors: nn.Module | None = None
        if anchors and anchor_features == "learned":
            self.anchors = SeedAnchors(
                num_entities["source"], anchor_dim if structure == "propagation" else dim
            )
        elif anchors:
            self.anchors = AnchorPropagation(
                num_entities["source"], dim, code_dim=anchor_dim, hops=anchor_hops
            )
        self.relation_context = None
        if relation_context:
            self.relation_context = nn.ModuleDict(
                {side: RelationContext(relations[side], dim) for side in SIDES}
            )
        self.project = nn.ModuleDict(
            {
                "a": ModalityProjection(attr_dim, dim, hidden=mlp_hidden),
                "v": ModalityProjection(img_dim, dim, hidden=mlp_hidden),
            }
        )
        empty = torch.zeros(2, 0, dtype=torch.long)
        self.register_buffer("pseudo_anchors", empty if anchor_pseudo else None)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config, data: HeteroData, mlp_hidden: int = 0) -> KnowledgeEncoder:
        """Build from a :class:`~mmea_pyg.config.Config` and the dataset's graphs."""
        m, t = config.model, config.train
        return cls(
            num_entities={side: data[side].num_nodes for side in SIDES},
            num_relations={side: len(data[side, "relation", side].relation_names) for side in SIDES},
            attr_dim=data["source"].x_attr.size(1),
            img_dim=data["source"].x_img.size(1),
            dim=m.dim,
            mlp_hidden=mlp_hidden,
            structure=m.structure,
            heads=m.heads,
            gat_layers=m.gat_layers,
            transe_margin=m.transe_margin,
            transe_batch_size=t.transe_batch_size,
            transe_reduction=t.transe_reduction,
            anchors=m.anchors,
            anchor_features=m.anchor_features,
            anchor_dim=m.anchor_dim,
            anchor_hops=m.anchor_hops,
            anchor_pseudo=m.anchor_pseudo,
            relation_context=m.relation_context,
            anchor_holdout=t.anchor_holdout,
        )

    def reset_parameters(self) -> None:
        encoders = self.encoder.values() if isinstance(self.encoder, nn.ModuleDict) else [self.encoder]
        for module in encoders:
            module.reset_parameters()
        if self.anchors is not None:
            self.anchors.reset_parameters()
        if self.relation_context is not None:
            for module in self.relation_context.values():
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

    def structure(self, data: HeteroData, side: str, hidden: Tensor | None = None) -> Tensor:
        """Relational embeddings :math:`(N, d)` of ``side``. With seed anchors, every training seed
        pair (and pseudo seed, with ``anchor_pseudo``) is an anchor except those whose source entity
        is flagged in ``hidden`` :math:`(N_1,)`."""
        edges = data[side, "relation", side]
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
        if self.relation_context is not None:
            relation = self.relation_context[side](edges.edge_index, edges.edge_type, data[side].num_nodes)
            context = relation if context is None else context + relation
        if codes is not None:  # the propagation encoder reads the relation graph only
            return self.encoder(edges.edge_index, codes, context)
        return self.encoder(data[side].x_attr, data[side].attr_mask, edges.edge_index, context)

    def anchor_pairs(self, data: HeteroData, pseudo: bool = True) -> Tensor:
        """The training seed pairs and, with ``pseudo``, the kept pseudo seeds: :math:`(2, K)`."""
        seeds = train_seeds(data)
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
        extras = [name for name in ("anchors", "relation_context") if getattr(self, name) is not None]
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

    def structure(self, data: HeteroData, side: str, hidden: Tensor | None = None) -> Tensor:
        return self.knowledge.structure(data, side, hidden)

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
