"""The modalities of an entity and what every model does with them the same way: their order
(:data:`MODALITIES`), which of them the data has (:func:`available_modalities`) and the ablations keep
(:func:`kept_modalities`, the Table 2 switches), the final weighted concatenation
(:func:`weighted_concat`) and the per-modality InfoNCE of RICEA and MIMEA (:func:`modal_infonce`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES
from mmea_pyg.errors import ConfigError
from mmea_pyg.losses import infonce_alignment_loss

__all__ = [
    "check_heads_divide",
    "GENERIC_ABLATIONS",
    "MODALITIES",
    "MODALITY_ABLATIONS",
    "available_modalities",
    "kept_modalities",
    "modal_infonce",
    "weighted_concat",
]

#: Modalities in the order of CLAMEA's final concatenation (Eq. 26): visual, relational, attribute.
MODALITIES = ("v", "r", "a")
#: The Table 2 switch that drops each modality.
MODALITY_ABLATIONS = {"r": "w/o R", "v": "w/o V", "a": "w/o A"}
#: The Table 2 switches that make sense for a model without CLAMEA's fusion stack.
GENERIC_ABLATIONS = frozenset({*MODALITY_ABLATIONS.values(), "w/o IT"})


def check_heads_divide(dim: int, **heads: int) -> None:
    """Raise a :class:`~mmea_pyg.errors.ConfigError` naming the option unless every ``model.<name>``
    in ``heads`` divides ``model.dim`` (attention heads split the embedding evenly)."""
    for name, count in heads.items():
        if count < 1 or dim % count:
            fits = next(h for h in range(max(1, min(count, dim)), 0, -1) if dim % h == 0)  # 1 always fits
            raise ConfigError(
                f"model.{name}={count} must divide model.dim={dim} (its attention splits the embedding "
                f"into {count} heads); e.g. --set model.{name}={fits}"
            )


def available_modalities(data: HeteroData) -> tuple[str, ...]:
    """The modalities that at least one entity of either KG has, in the order of :data:`MODALITIES`:
    ``r`` always; ``a`` / ``v`` where some entity has attribute / image features. A model leaves the
    others out entirely (a branch with nothing to read or reconstruct would only learn noise)."""
    have = {"r"}
    for m, feature, mask in (("a", "x_attr", "attr_mask"), ("v", "x_img", "img_mask")):
        if any(data[side][feature].size(1) > 0 and bool(data[side][mask].any()) for side in SIDES):
            have.add(m)
    return tuple(m for m in MODALITIES if m in have)


def kept_modalities(
    ablations: frozenset[str], model_name: str | None = None, available: Sequence[str] = MODALITIES
) -> tuple[str, ...]:
    """The modalities a model runs on (in the order of :data:`MODALITIES`): those of ``available``
    (:func:`available_modalities`) that ``ablations`` keep. With ``model_name``, switches other than
    :data:`GENERIC_ABLATIONS` are rejected: that model lacks CLAMEA's modules."""
    unknown = sorted(ablations - GENERIC_ABLATIONS) if model_name is not None else []
    if unknown:
        raise ConfigError(
            f"ablations {', '.join(unknown)} are CLAMEA modules that model {model_name} does not have; "
            f"{model_name} supports {', '.join(sorted(GENERIC_ABLATIONS))}"
        )
    kept = tuple(m for m in MODALITIES if MODALITY_ABLATIONS[m] not in ablations and m in available)
    if not kept:
        raise ConfigError(
            f"the ablations drop every modality that the data has ({', '.join(available)}); "
            "keep at least one of them"
        )
    return kept


def weighted_concat(h: dict[str, Tensor], weights: Tensor, kept: tuple[str, ...]) -> Tensor:
    r"""The final embedding :math:`[w_m \mathbf{h}^m / \lVert \mathbf{h}^m \rVert]_{m}` over the kept
    modalities, ``weights`` :math:`(B, |\text{kept}|)`."""
    return torch.cat([weights[:, i : i + 1] * F.normalize(h[m], dim=-1) for i, m in enumerate(kept)], dim=-1)


def modal_infonce(
    src: dict[str, Tensor],
    tgt: dict[str, Tensor],
    kept: tuple[str, ...],
    temperature: float,
    modality_temperatures: Sequence[Tensor | float] | None = None,
) -> Tensor:
    """Symmetric InfoNCE on the final embeddings ``M`` plus one term per kept modality, each over the
    pairs whose two entities have it (``mask_<m>`` outputs), at ``temperature`` or the per-modality
    ``modality_temperatures``."""
    total = infonce_alignment_loss(src["M"], tgt["M"], temperature)
    temperatures = modality_temperatures if modality_temperatures is not None else [temperature] * len(kept)
    for tau, m in zip(temperatures, kept, strict=True):
        both = src[f"mask_{m}"] & tgt[f"mask_{m}"]
        total = total + infonce_alignment_loss(src[m], tgt[m], tau, mask=both)
    return total
