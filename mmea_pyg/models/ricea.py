r"""RICEA: Probing Relative Interaction and Dynamic Calibration in Multi-modal Entity Alignment (Li et al.,
ACL 2025), on the toolkit's shared encoder, trainer and evaluator.

Only the abstract is available to us (``../shared/seeds/002_fc2eb0ba8bfb6fee.txt``); every choice the
abstract leaves open is written in the class docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

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
from mmea_pyg.nn.attention import DynamicWeightedSum
from mmea_pyg.nn.calibration import AttentionDynamicCalibration


@register_model("ricea")
class RICEA(KnowledgeModel):
    r"""RICEA on the shared Multimodal Knowledge Encoder.

    Sentences of the abstract and how they are implemented:

    * "dynamically computes weights based on the relative interaction": the weight of modality
      :math:`m` of an entity is the attention it receives from the entity's other modalities,
      :math:`\mathbf{w} = \mathrm{Dsum}(\mathbf{h}^r, \mathbf{h}^a, \mathbf{h}^v)` with missing
      modalities masked (:class:`~mmea_pyg.nn.attention.DynamicWeightedSum`, the MEAformer reading).
    * "recalibrates the weights according to their uncertainties [...] ADC utilizes attention
      mechanisms to perceive the uncertainty of the weight for each modality": attention over the
      entity's modalities yields a log-variance per modality, and
      :math:`\tilde{w}_m \propto w_m / \sigma^2_m` (:class:`~mmea_pyg.nn.calibration.AttentionDynamicCalibration`).
    * The joint embedding is the weighted concatenation
      :math:`\mathbf{h}^M = [\tilde{w}_m \mathbf{h}^m / \lVert \mathbf{h}^m \rVert]_m` (as MEAformer, which
      RICEA's weighting refines); the abstract does not name the loss, so training uses the symmetric
      InfoNCE of the toolkit on :math:`\mathbf{h}^M` and on each modality (pairs whose two entities
      both have it), plus the pseudo-seed term of the iterative strategy.

    The per-modality embeddings come from :class:`~mmea_pyg.models.knowledge.KnowledgeEncoder`
    (``model.structure`` and its options, as for CLAMEA). Attention runs over the modalities of one
    entity only. Ablations: ``w/o R``, ``w/o V``, ``w/o A`` (drop a modality), ``w/o IT``.

    Args:
        knowledge: The shared encoder of the per-modality embeddings.
        dim: Width :math:`d` of each modality embedding.
        heads: Heads of the ADC attention (must divide ``dim``).
        dsum_heads: Heads of the relative-interaction weights (must divide ``dim``).
        temperature: InfoNCE temperature.
        ablations: Canonical Table 2 names among those above.
        available: The modalities the data has (:func:`~mmea_pyg.models.modalities.available_modalities`);
            the others are left out.
    """

    def __init__(
        self,
        knowledge: KnowledgeEncoder,
        dim: int = 100,
        heads: int = 2,
        dsum_heads: int = 5,
        temperature: float = 0.05,
        ablations: Iterable[str] = (),
        available: Iterable[str] = MODALITIES,
    ) -> None:
        super().__init__()
        check_heads_divide(dim, heads=heads, dsum_heads=dsum_heads)
        self.ablations = frozenset(ablations)
        self.kept = kept_modalities(self.ablations, "ricea", tuple(available))
        self.dim = dim
        self.temperature = temperature
        self.knowledge = knowledge
        self.interaction = DynamicWeightedSum(dim, heads=dsum_heads)
        self.calibration = AttentionDynamicCalibration(dim, heads=heads)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config, data: HeteroData) -> RICEA:
        m = config.model
        return cls(
            KnowledgeEncoder.from_config(config, data),
            dim=m.dim,
            heads=m.heads,
            dsum_heads=m.dsum_heads,
            temperature=config.train.temperature,
            ablations=config.ablations,
            available=available_modalities(data),
        )

    def reset_parameters(self) -> None:
        self.knowledge.reset_parameters()
        self.interaction.reset_parameters()
        self.calibration.reset_parameters()

    def encode(self, data: HeteroData, side: str, index: Tensor, structure: Tensor) -> dict[str, Tensor]:
        h, masks = self.knowledge(data, side, index, structure)
        x = torch.stack([h[m] for m in self.kept], dim=1)  # [B, M, d]
        mask = torch.stack([masks[m] for m in self.kept], dim=1)  # [B, M]
        _, relative = self.interaction(x, mask)
        weights, log_var = self.calibration(x, relative, mask)
        return {
            "M": weighted_concat(h, weights, self.kept),
            **h,
            **{f"mask_{m}": masks[m] for m in self.kept},
            "weights": weights,
            "log_var": log_var,
        }

    def weight_outputs(self, out: dict[str, Tensor]) -> dict[str, Tensor]:
        return {f"calibrated weight of {m}": out["weights"][:, i] for i, m in enumerate(self.kept)}

    def alignment_loss(self, src: dict[str, Tensor], tgt: dict[str, Tensor]) -> Tensor:
        return modal_infonce(src, tgt, self.kept, self.temperature)

    def __repr__(self) -> str:
        ablations = f", ablations={sorted(self.ablations)}" if self.ablations else ""
        return f"{self.__class__.__name__}(dim={self.dim}, {self.knowledge}{ablations})"
