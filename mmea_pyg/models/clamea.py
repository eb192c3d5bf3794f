r"""CLAMEA: Capturing Latent Modal Association for Multimodal Entity Alignment (Ji et al., Findings of
EMNLP 2025), composed from the modules of :mod:`mmea_pyg.nn` as ``docs/CLAMEA.md`` reads the paper."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.errors import ConfigError
from mmea_pyg.losses import infonce_alignment_loss, multimodal_contrastive_loss
from mmea_pyg.models.base import register_model
from mmea_pyg.models.knowledge import KnowledgeEncoder, KnowledgeModel
from mmea_pyg.models.modalities import MODALITIES, available_modalities, check_heads_divide, kept_modalities
from mmea_pyg.nn.association import CrossModalAssociationExtraction
from mmea_pyg.nn.attention_flow import ModalAttentionFlowFusion
from mmea_pyg.nn.enhancement import ModalFeatureEnhancement
from mmea_pyg.nn.generation import DynamicMissingModalityGeneration, generation_sources
from mmea_pyg.nn.mke import Tokenizer

FUSED_PAIRS = (("a", "r"), ("v", "r"), ("a", "v"))  # h^{ar}, h^{vr}, h^{av}


@register_model("clamea")
class CLAMEA(KnowledgeModel):
    r"""The CLAMEA model (Section 4 of the paper).

    For the entities of one KG (both KGs share every module but the relational encoder):

    .. math::
        \mathbf{h}_o^{r,a,v} \xrightarrow{\text{MKE}} \text{tokens}
        \xrightarrow{\text{MFE}} \mathbf{h}^{r,a,v}
        \xrightarrow{\text{DMAFF}} \mathbf{h}^{ar}, \mathbf{h}^{vr}, \mathbf{h}^{av}
        \xrightarrow{\text{DMMG}} \text{missing } \mathbf{h}^{a}, \mathbf{h}^{v} \text{ generated}
        \xrightarrow{\text{CMAE}} \hat{\mathbf{h}}^{r,a,v}
        \xrightarrow{} \mathbf{h}^M = [\hat{\mathbf{h}}^v, \hat{\mathbf{h}}^r, \hat{\mathbf{h}}^a]

    and the losses :math:`\mathcal{L}_{TransE}` (per KG, Eq. 29-30), :math:`\mathcal{L}_{vae}` (Eq. 17),
    :math:`\mathcal{L}_m` (Eq. 18), :math:`\mathcal{L}_s` (Eq. 23) and :math:`\mathcal{L}_{mcl}` (Eq. 27)
    over :math:`\mathbf{h}^M, \mathbf{h}^r, \mathbf{h}^a, \mathbf{h}^v`; the trainer weights them as in
    Eq. 28. Each modality is L2-normalised before the concatenation of Eq. 26, so that no modality
    dominates the cosine similarity by its scale alone (the paper leaves the scale open).

    Modality embeddings are sequences of ``num_tokens`` tokens of width ``dim / num_tokens``; all
    attention runs over the tokens of one entity, so an entity's embedding never depends on the rest
    of its batch.

    Args:
        knowledge: The Multimodal Knowledge Encoder (App. B):
            :class:`~mmea_pyg.models.knowledge.KnowledgeEncoder` with the relational encoder of
            ``model.structure`` (``"transe"``, the paper's; ``"gat"``; or ``"gat-attr"``, an
            inductive GAT over the attribute features with optional seed anchors and relation-type
            context) and the linear projections of Eq. 31-32.
        dim: Width d of each modality embedding (App. F: 100).
        num_tokens: Tokens T per modality.
        heads: Heads of MFE, DMAFF and CMAE (App. F: 2).
        dsum_heads: Heads N_h of the Dsum weights (App. F: 5).
        latent_dim: VAE latent size (App. F: 64).
        contrastive: ``"msnea"`` (Eq. 35 as MSNEA computes it) or ``"infonce"``.
        cl_margin: gamma_cl of Eq. 35 (App. F: 2).
        temperature: Temperature of the InfoNCE alternative.
        ablations: Table 2 switches (canonical names, see :data:`mmea_pyg.config.ABLATIONS`).
        available: The modalities the data has (:func:`~mmea_pyg.models.modalities.available_modalities`):
            a modality that no entity has takes no part in any module or loss.
        detach_vae_targets: DMMG reconstructs detached embeddings (``model.detach_vae_targets``).
        cmae_query: Which side of each CMAE association gives the query (``model.cmae_query``, see
            :class:`~mmea_pyg.nn.association.CrossModalAssociationExtraction`).
        identity_init: The stack starts as the identity on the encoder's embeddings
            (``model.identity_init``): tokenizers at W = I, the output projections of the attention
            blocks of MFE and CMAE at zero.
    """

    def __init__(
        self,
        knowledge: KnowledgeEncoder,
        dim: int = 100,
        num_tokens: int = 4,
        heads: int = 2,
        dsum_heads: int = 5,
        latent_dim: int = 64,
        contrastive: str = "msnea",
        cl_margin: float = 2.0,
        temperature: float = 0.1,
        ablations: Iterable[str] = (),
        available: Iterable[str] = MODALITIES,
        detach_vae_targets: bool = False,
        cmae_query: str = "source",
        identity_init: bool = False,
    ) -> None:
        super().__init__()
        if dim % num_tokens:
            raise ConfigError(f"model.dim={dim} must be divisible by model.num_tokens={num_tokens}")
        if cmae_query not in ("source", "target"):
            raise ConfigError(f"model.cmae_query must be 'source' or 'target', got {cmae_query!r}")
        if contrastive not in ("msnea", "infonce"):
            raise ConfigError(f"train.contrastive must be 'msnea' or 'infonce', got {contrastive!r}")
        self.ablations = frozenset(ablations)
        self.dim, self.num_tokens, self.token_dim = dim, num_tokens, dim // num_tokens
        self.contrastive, self.cl_margin, self.temperature = contrastive, cl_margin, temperature
        self.kept = kept_modalities(self.ablations, available=tuple(available))
        kept = self.kept

        # Multimodal Knowledge Encoder (App. B): relational encoder and projections.
        self.knowledge = knowledge
        self.tokenize = nn.ModuleDict({m: Tokenizer(dim, num_tokens, identity_init) for m in kept})

        token = dict(num_tokens=num_tokens, token_dim=self.token_dim)
        self.mfe = None
        if "w/o MFE" not in self.ablations:
            self.mfe = nn.ModuleDict(
                {
                    m: ModalFeatureEnhancement(self.token_dim, heads=heads, zero_init=identity_init)
                    for m in kept
                }
            )
        #: The DMAFF pairs that a later module reads: the generating pairs of DMMG (h^{vr} for a,
        #: h^{ar} for v) and, with three modalities, the fused sources of CMAE (Eq. 20-22). With two
        #: modalities (no image anywhere, or an ablated one) no module reads a fused pair: no DMAFF.
        sources = generation_sources(kept) if "w/o DMMG" not in self.ablations else {}
        read = {y for ys in sources.values() for y in ys if len(y) == 2}
        if "w/o CMAE" not in self.ablations and len(kept) == 3:
            read |= {"av", "vr", "ar"}
        self.pairs = tuple((x, y) for x, y in FUSED_PAIRS if x + y in read)
        # Dsum (Eq. 15, 19) weighs the tokens of a full embedding, so its heads must divide model.dim; it
        # is built only for a DMAFF pair or a modality DMMG generates from two sources. Checked only
        # then: a model without one (e.g. no image anywhere) never splits anything by dsum_heads, and
        # its checkpoints load whatever dsum_heads they record.
        build_dmaff = "w/o DMAFF" not in self.ablations and bool(self.pairs)
        if build_dmaff or any(len(ys) > 1 for ys in sources.values()):
            check_heads_divide(dim, dsum_heads=dsum_heads)
        self.dmaff = None
        if build_dmaff:
            self.dmaff = nn.ModuleDict(
                {
                    x + y: ModalAttentionFlowFusion(
                        **token,
                        heads=heads,
                        dsum_heads=dsum_heads,
                        use_flow="w/o MAF" not in self.ablations,
                        use_gate="w/o G" not in self.ablations,
                    )
                    for x, y in self.pairs
                }
            )
        self.dmmg = None
        if "w/o DMMG" not in self.ablations:
            dmmg = DynamicMissingModalityGeneration(
                **token,
                latent_dim=latent_dim,
                dsum_heads=dsum_heads,
                modalities=kept,
                detach_targets=detach_vae_targets,
            )
            self.dmmg = dmmg if dmmg.enabled else None  # nothing to generate from what is kept
        self.cmae = None
        if "w/o CMAE" not in self.ablations and len(kept) >= 2:
            self.cmae = CrossModalAssociationExtraction(
                self.token_dim, heads=heads, modalities=kept, query=cmae_query, zero_init=identity_init
            )
        self.reset_parameters()

    @classmethod
    def from_config(cls, config, data: HeteroData) -> CLAMEA:
        """Build from a :class:`~mmea_pyg.config.Config` and the dataset's graphs."""
        m, t = config.model, config.train
        return cls(
            KnowledgeEncoder.from_config(config, data),
            dim=m.dim,
            num_tokens=m.num_tokens,
            heads=m.heads,
            dsum_heads=m.dsum_heads,
            latent_dim=m.latent_dim,
            contrastive=t.contrastive,
            cl_margin=t.cl_margin,
            temperature=t.temperature,
            ablations=config.ablations,
            available=available_modalities(data),
            detach_vae_targets=m.detach_vae_targets,
            cmae_query=m.cmae_query,
            identity_init=m.identity_init,
        )

    def reset_parameters(self) -> None:
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for child in module.children():
                    child.reset_parameters()

    def encode(self, data: HeteroData, side: str, index: Tensor, structure: Tensor) -> dict[str, Tensor]:
        h, masks = self.knowledge(data, side, index, structure)
        tokens = {m: self.tokenize[m](h[m]) for m in self.kept}  # [B, T, d_t]
        if self.mfe is not None:
            tokens = {m: self.mfe[m](x) for m, x in tokens.items()}

        # DMAFF: fused pairs h^{ar}, h^{vr}, h^{av} of the kept modalities (Eq. 4-15). A pair is
        # evidence for an entity that has at least one of its two modalities.
        fused, present = {}, {m: masks[m] for m in self.kept}
        out: dict[str, Tensor] = {}
        for x, y in self.pairs:
            if self.dmaff is None:
                fused[x + y] = (tokens[x] + tokens[y]) / 2
            else:
                flow = self.dmaff[x + y](tokens[x], tokens[y], masks[x], masks[y])
                fused[x + y], out[f"dsum_{x}{y}"] = flow["fused"], flow["weights"]  # [B, T, d_t], [B, 2]
            present[x + y] = masks[x] | masks[y]

        if self.dmmg is not None:  # DMMG (Eq. 16-19): missing a / v generated, then present
            generated = self.dmmg(tokens, fused, masks)
            for x in self.dmmg.sources:
                tokens[x], present[x] = generated[x], torch.ones_like(masks[x])
            out["loss_vae"], out["loss_m"] = generated["loss_vae"], generated["loss_m"]

        if self.cmae is not None:  # CMAE (Eq. 20-25)
            inputs = {f"h_{name}": value for name, value in {**tokens, **fused}.items()}
            extracted = self.cmae(**inputs, masks=present)
            tokens = {m: extracted[m] for m in self.kept}
            out["loss_s"] = extracted["loss_s"]

        for m in self.kept:
            out[m] = Tokenizer.flatten(tokens[m])
        out["M"] = torch.cat([F.normalize(out[m], dim=-1) for m in self.kept], dim=-1)
        return out

    def weight_outputs(self, out: dict[str, Tensor]) -> dict[str, Tensor]:
        """DMAFF's Dsum weights (Eq. 15) of each fused pair: ``"Dsum ar: w_a"`` and ``"Dsum ar: w_r"``."""
        weights = {}
        for x, y in self.pairs:
            if f"dsum_{x}{y}" in out:
                weights[f"Dsum {x}{y}: w_{x}"] = out[f"dsum_{x}{y}"][:, 0]
                weights[f"Dsum {x}{y}: w_{y}"] = out[f"dsum_{x}{y}"][:, 1]
        return weights

    # ----------------------------------------------------------------------------------- losses
    def alignment_loss(self, src: dict[str, Tensor], tgt: dict[str, Tensor]) -> Tensor:
        """L_mcl (Eq. 27): the contrastive loss summed over h^M and each kept modality
        (:func:`~mmea_pyg.losses.multimodal_contrastive_loss`), or with ``train.contrastive=infonce`` the
        InfoNCE loss summed the same way."""
        keys = ("M", *self.kept)
        if self.contrastive == "msnea":
            return multimodal_contrastive_loss(src, tgt, keys=keys, margin=self.cl_margin)
        total = src["M"].new_zeros(())
        for key in keys:
            total = total + infonce_alignment_loss(src[key], tgt[key], temperature=self.temperature)
        return total

    def __repr__(self) -> str:
        ablations = f", ablations={sorted(self.ablations)}" if self.ablations else ""
        return (
            f"{self.__class__.__name__}(dim={self.dim}, tokens={self.num_tokens}, "
            f"{self.knowledge}{ablations})"
        )
