r"""MIMEA: Leveraging Intra-modal and Inter-modal Interaction for Multi-Modal Entity Alignment (Hu et
al.), on the toolkit's shared encoder, trainer and evaluator.

Only the abstract and summary are available to us (``../shared/seeds/003_83e0ed85ba117153.txt``);
every choice they leave open is written in the class docstring.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES
from mmea_pyg.errors import ConfigError
from mmea_pyg.models.base import register_model
from mmea_pyg.models.knowledge import KnowledgeEncoder, KnowledgeModel
from mmea_pyg.models.modalities import (
    MODALITIES,
    available_modalities,
    check_heads_divide,
    kept_modalities,
    modal_infonce,
    weighted_concat,
)
from mmea_pyg.nn.optimal_transport import OptimalTransportModalAlignment
from mmea_pyg.nn.probabilistic_fusion import ProbabilisticModalFusion

#: Range of the learned per-modality temperatures of the modal-adaptive contrastive loss.
TEMPERATURE_RANGE = (0.01, 1.0)


@register_model("mimea")
class MIMEA(KnowledgeModel):
    r"""MIMEA on the shared Multimodal Knowledge Encoder.

    Its four modules, with the sentence of the abstract each implements and our reading:

    1. "a Multi-modal Knowledge Embedding module, which extracts modality-specific representations
       with multiple individual encoders" ("via GAT and MLPs"): the relational encoder of
       ``model.structure`` (a GAT for ``gat`` / ``gat-attr``) and a two-layer MLP (hidden width
       :math:`d`) per feature modality, from :class:`~mmea_pyg.models.knowledge.KnowledgeEncoder`.
    2. "a Probability-guided Modal Fusion module [...] while considering the interaction between
       uni-modal representations" ("Beta distributions"): modality weights
       :math:`p_m \sim \mathrm{Beta}(\alpha_m, \beta_m)` predicted after attention over the entity's
       modalities, with a KL term to :math:`\mathrm{Beta}(1, 1)`
       (:class:`~mmea_pyg.nn.probabilistic_fusion.ProbabilisticModalFusion`). The final embedding
       is the weighted concatenation :math:`[w_m \mathbf{h}^m / \lVert \mathbf{h}^m \rVert]_m`; the
       joint embedding :math:`\mathbf{h}^J = \sum_m w_m \mathbf{h}^m / \lVert \mathbf{h}^m \rVert`
       feeds module 3.
    3. "an Optimal Transport Modal Alignment module, which introduces an optimal transport mechanism
       to encourage the interaction between uni-modal and joint-modal embeddings": the entropic OT
       cost between each modality's embeddings of the batch and their joint embeddings
       (:class:`~mmea_pyg.nn.optimal_transport.OptimalTransportModalAlignment`, POT's Sinkhorn),
       loss ``ot`` weighted by ``train.ot_weight``.
    4. "a Modal-adaptive Contrastive Learning module, which distinguishes the embeddings of equivalent
       entities from those of non-equivalent ones, for each modality": symmetric InfoNCE per modality
       (pairs whose two entities both have it) with a *learned temperature per modality* (the
       adaptive part; clamped to :data:`TEMPERATURE_RANGE`), plus InfoNCE on the final embedding at
       the configured temperature.

    Ablations: ``w/o R``, ``w/o V``, ``w/o A`` (drop a modality), ``w/o IT``.

    Args:
        knowledge: The shared encoder of the per-modality embeddings (built with MLP projections).
        dim: Width :math:`d` of each modality embedding.
        heads: Heads of the fusion attention (must divide ``dim``).
        temperature: InfoNCE temperature of the final embedding, and the initial per-modality ones.
        ot_reg: Entropic regularisation of the Sinkhorn plan.
        ot_max_iter: Sinkhorn iterations of the plan.
        ablations: Canonical Table 2 names among those above.
        available: The modalities the data has (:func:`~mmea_pyg.models.modalities.available_modalities`);
            the others are left out.
    """

    def __init__(
        self,
        knowledge: KnowledgeEncoder,
        dim: int = 100,
        heads: int = 2,
        temperature: float = 0.05,
        ot_reg: float = 0.05,
        ot_max_iter: int = 100,
        ablations: Iterable[str] = (),
        available: Iterable[str] = MODALITIES,
    ) -> None:
        super().__init__()
        if ot_reg <= 0 or ot_max_iter < 1:
            raise ConfigError(
                f"MIMEA needs model.ot_reg > 0 and model.ot_max_iter >= 1, got {ot_reg} and {ot_max_iter}"
            )
        check_heads_divide(dim, heads=heads)
        self.ablations = frozenset(ablations)
        self.kept = kept_modalities(self.ablations, "mimea", tuple(available))
        self.dim = dim
        self.temperature = temperature
        self.knowledge = knowledge
        self.fusion = ProbabilisticModalFusion(dim, heads=heads)
        self.transport = OptimalTransportModalAlignment(reg=ot_reg, max_iter=ot_max_iter)
        self.log_temperature = nn.Parameter(torch.empty(len(self.kept)))
        self.reset_parameters()

    @classmethod
    def from_config(cls, config, data: HeteroData) -> MIMEA:
        m = config.model
        return cls(
            KnowledgeEncoder.from_config(config, data, mlp_hidden=m.dim),
            dim=m.dim,
            heads=m.heads,
            temperature=config.train.temperature,
            ot_reg=m.ot_reg,
            ot_max_iter=m.ot_max_iter,
            ablations=config.ablations,
            available=available_modalities(data),
        )

    def reset_parameters(self) -> None:
        self.knowledge.reset_parameters()
        self.fusion.reset_parameters()
        nn.init.constant_(self.log_temperature, math.log(self.temperature))

    def encode(self, data: HeteroData, side: str, index: Tensor, structure: Tensor) -> dict[str, Tensor]:
        h, masks = self.knowledge(data, side, index, structure)
        x = torch.stack([h[m] for m in self.kept], dim=1)  # [B, M, d]
        mask = torch.stack([masks[m] for m in self.kept], dim=1)  # [B, M]
        fused = self.fusion(x, mask)
        return {
            "M": weighted_concat(h, fused["weights"], self.kept),
            **h,
            **{f"mask_{m}": masks[m] for m in self.kept},
            "joint": fused["joint"],
            "weights": fused["weights"],
            "loss_kl": fused["loss_kl"],
        }

    def modality_temperatures(self) -> Tensor:
        """The learned temperature of each kept modality, :math:`(|\\text{kept}|,)`."""
        return self.log_temperature.exp().clamp(*TEMPERATURE_RANGE)

    def weight_outputs(self, out: dict[str, Tensor]) -> dict[str, Tensor]:
        return {f"Beta weight of {m}": out["weights"][:, i] for i, m in enumerate(self.kept)}

    def alignment_loss(self, src: dict[str, Tensor], tgt: dict[str, Tensor]) -> Tensor:
        return modal_infonce(src, tgt, self.kept, self.temperature, self.modality_temperatures())

    def _transport(self, out: dict[str, Tensor]) -> Tensor:
        uni = torch.stack([out[m] for m in self.kept], dim=1)
        mask = torch.stack([out[f"mask_{m}"] for m in self.kept], dim=1)
        return self.transport(uni, out["joint"], mask)

    def batch_losses(self, seed: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
        """The optimal-transport modal alignment term ``ot`` over the seed entities of both KGs."""
        return {"ot": sum(self._transport(seed[side]) for side in SIDES) / len(SIDES)}

    def __repr__(self) -> str:
        ablations = f", ablations={sorted(self.ablations)}" if self.ablations else ""
        return f"{self.__class__.__name__}(dim={self.dim}, {self.knowledge}{ablations})"
