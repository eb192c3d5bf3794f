r"""CLAMEA: Capturing Latent Modal Association for Multimodal Entity Alignment (Ji et al., Findings of
EMNLP 2025), composed from the modules of :mod:`mmea_pyg.nn` as ``docs/CLAMEA.md`` reads the paper."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import HeteroData

from mmea_pyg.errors import ConfigError
from mmea_pyg.losses import contrastive_alignment_loss, infonce_alignment_loss
from mmea_pyg.models.base import SIDES, AlignmentModel, register_model
from mmea_pyg.nn.association import CrossModalAssociationExtraction
from mmea_pyg.nn.attention_flow import ModalAttentionFlowFusion
from mmea_pyg.nn.encoders import GATEncoder, InductiveGATEncoder, ModalityProjection, Tokenizer, TransE
from mmea_pyg.nn.enhancement import ModalFeatureEnhancement
from mmea_pyg.nn.generation import DynamicMissingModalityGeneration

MODALITIES = ("v", "r", "a")  # the order of the final concatenation, Eq. 26
FUSED_PAIRS = (("a", "r"), ("v", "r"), ("a", "v"))  # h^{ar}, h^{vr}, h^{av}
_ABLATION_MODALITY = {"w/o R": "r", "w/o V": "v", "w/o A": "a"}
#: Relational encoders: TransE (the paper), GAT over free entity embeddings, GAT over attribute features.
STRUCTURES = ("transe", "gat", "gat-attr")


@register_model("clamea")
class CLAMEA(AlignmentModel):
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
        num_entities: Entities per KG side, ``{"source": N1, "target": N2}``.
        num_relations: Relation types per KG side.
        attr_dim: Width of the attribute features (0: none).
        img_dim: Width of the image features (0: none; every entity then has a generated visual
            embedding).
        dim: Width d of each modality embedding (App. F: 100).
        num_tokens: Tokens T per modality.
        heads: Heads of MFE, DMAFF and CMAE (App. F: 2).
        dsum_heads: Heads N_h of the Dsum weights (App. F: 5).
        latent_dim: VAE latent size (App. F: 64).
        structure: ``"transe"`` (the paper), ``"gat"`` (GAT over free entity embeddings with
            relation-type context) or ``"gat-attr"`` (an inductive GAT over the attribute features,
            shared by both KGs: no per-entity parameters, see
            :class:`~mmea_pyg.nn.encoders.InductiveGATEncoder`).
        transe_margin: TransE margin gamma (App. F: 1).
        transe_batch_size: Triples per TransE step and KG (App. F: 5000).
        transe_reduction: ``"sum"`` (Eq. 30) or ``"mean"``.
        gat_layers: GAT layers for ``structure="gat"``.
        contrastive: ``"msnea"`` (Eq. 35 as MSNEA computes it) or ``"infonce"``.
        cl_margin: gamma_cl of Eq. 35 (App. F: 2).
        temperature: Temperature of the InfoNCE alternative.
        ablations: Table 2 switches (canonical names, see :data:`mmea_pyg.config.ABLATIONS`).
    """

    def __init__(
        self,
        num_entities: dict[str, int],
        num_relations: dict[str, int],
        attr_dim: int,
        img_dim: int,
        dim: int = 100,
        num_tokens: int = 4,
        heads: int = 2,
        dsum_heads: int = 5,
        latent_dim: int = 64,
        structure: str = "transe",
        transe_margin: float = 1.0,
        transe_batch_size: int = 5000,
        transe_reduction: str = "sum",
        gat_layers: int = 2,
        contrastive: str = "msnea",
        cl_margin: float = 2.0,
        temperature: float = 0.1,
        ablations: Iterable[str] = (),
    ) -> None:
        super().__init__()
        if dim % num_tokens:
            raise ConfigError(f"model.dim={dim} must be divisible by model.num_tokens={num_tokens}")
        if structure not in STRUCTURES:
            raise ConfigError(f"model.structure must be one of {', '.join(STRUCTURES)}, got {structure!r}")
        if contrastive not in ("msnea", "infonce"):
            raise ConfigError(f"train.contrastive must be 'msnea' or 'infonce', got {contrastive!r}")
        self.ablations = frozenset(ablations)
        self.dim, self.num_tokens, self.token_dim = dim, num_tokens, dim // num_tokens
        self.structure_kind = structure
        self.transe_batch_size = transe_batch_size
        self.transe_reduction = transe_reduction
        self.contrastive, self.cl_margin, self.temperature = contrastive, cl_margin, temperature
        self.kept = tuple(m for m in MODALITIES if _modality_ablation(m) not in self.ablations)
        if not self.kept:
            raise ConfigError("the ablations drop every modality; keep at least one of R, V, A")

        # Multimodal Knowledge Encoder (App. B): per-KG relational encoder, shared projections.
        if structure == "transe":
            self.relational = nn.ModuleDict(
                {
                    side: TransE(num_entities[side], max(num_relations[side], 1), dim, transe_margin)
                    for side in SIDES
                }
            )
        elif structure == "gat-attr":
            # One inductive encoder shared by both KGs (no per-entity parameters).
            self.relational = InductiveGATEncoder(attr_dim, dim, num_layers=gat_layers)
        else:
            self.relational = nn.ModuleDict(
                {
                    side: GATEncoder(
                        num_entities[side],
                        dim,
                        num_layers=gat_layers,
                        heads=heads,
                        num_relations=max(num_relations[side], 1),
                    )
                    for side in SIDES
                }
            )
        self.project = nn.ModuleDict(
            {"a": ModalityProjection(attr_dim, dim), "v": ModalityProjection(img_dim, dim)}
        )
        self.tokenize = nn.ModuleDict({m: Tokenizer(dim, num_tokens) for m in MODALITIES})

        token = dict(num_tokens=num_tokens, token_dim=self.token_dim)
        self.mfe = None
        if "w/o MFE" not in self.ablations:
            self.mfe = nn.ModuleDict(
                {m: ModalFeatureEnhancement(self.token_dim, heads=heads) for m in MODALITIES}
            )
        self.dmaff = None
        if "w/o DMAFF" not in self.ablations:
            self.dmaff = nn.ModuleDict(
                {
                    x + y: ModalAttentionFlowFusion(
                        **token,
                        heads=heads,
                        dsum_heads=dsum_heads,
                        use_flow="w/o MAF" not in self.ablations,
                        use_gate="w/o G" not in self.ablations,
                    )
                    for x, y in FUSED_PAIRS
                }
            )
        self.dmmg = None
        if "w/o DMMG" not in self.ablations:
            self.dmmg = DynamicMissingModalityGeneration(
                **token, latent_dim=latent_dim, dsum_heads=dsum_heads
            )
        self.cmae = None
        if "w/o CMAE" not in self.ablations:
            self.cmae = CrossModalAssociationExtraction(self.token_dim, heads=heads)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config, data: HeteroData) -> CLAMEA:
        """Build from a :class:`~mmea_pyg.config.Config` and the dataset's graphs."""
        m, t = config.model, config.train
        return cls(
            num_entities={side: data[side].num_nodes for side in SIDES},
            num_relations={side: len(data[side, "relation", side].relation_names) for side in SIDES},
            attr_dim=data["source"].x_attr.size(1),
            img_dim=data["source"].x_img.size(1),
            dim=m.dim,
            num_tokens=m.num_tokens,
            heads=m.heads,
            dsum_heads=m.dsum_heads,
            latent_dim=m.latent_dim,
            structure=m.structure,
            transe_margin=m.transe_margin,
            transe_batch_size=t.transe_batch_size,
            transe_reduction=t.transe_reduction,
            gat_layers=m.gat_layers,
            contrastive=t.contrastive,
            cl_margin=t.cl_margin,
            temperature=t.temperature,
            ablations=config.ablations,
        )

    def reset_parameters(self) -> None:
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for child in module.children():
                    child.reset_parameters()

    @property
    def output_dim(self) -> int:
        return self.dim * len(self.kept)

    # ------------------------------------------------------------------------------- embeddings
    def structure(self, data: HeteroData, side: str) -> Tensor:
        edges = data[side, "relation", side]
        if self.structure_kind == "gat-attr":
            return self.relational(data[side].x_attr, data[side].attr_mask, edges.edge_index)
        encoder = self.relational[side]
        if self.structure_kind == "transe":
            return encoder()
        return encoder(edges.edge_index, edges.edge_type)

    def encode(self, data: HeteroData, side: str, index: Tensor, structure: Tensor) -> dict[str, Tensor]:
        store = data[side]
        attr_mask, img_mask = store.attr_mask[index], store.img_mask[index]
        masks = {"r": torch.ones_like(attr_mask), "a": attr_mask, "v": img_mask}
        h = {
            "r": structure[index],
            "a": self.project["a"](store.x_attr[index], attr_mask),
            "v": self.project["v"](store.x_img[index], img_mask),
        }
        tokens = {m: self.tokenize[m](x) for m, x in h.items()}  # [B, T, d_t]
        if self.mfe is not None:
            tokens = {m: self.mfe[m](x) for m, x in tokens.items()}

        fused = {}
        for x, y in FUSED_PAIRS:
            if self.dmaff is None:
                fused[x + y] = (tokens[x] + tokens[y]) / 2
            else:
                fused[x + y] = self.dmaff[x + y](tokens[x], tokens[y], masks[x], masks[y])["fused"]

        out: dict[str, Tensor] = {}
        if self.dmmg is not None:
            generated = self.dmmg(
                tokens["a"], tokens["v"], tokens["r"], fused["vr"], fused["ar"], attr_mask, img_mask
            )
            tokens["a"], tokens["v"] = generated["a"], generated["v"]
            out["loss_vae"], out["loss_m"] = generated["loss_vae"], generated["loss_m"]

        if self.cmae is not None:
            extracted = self.cmae(
                h_r=tokens["r"],
                h_a=tokens["a"],
                h_v=tokens["v"],
                h_av=fused["av"],
                h_vr=fused["vr"],
                h_ar=fused["ar"],
            )
            tokens = {m: extracted[m] for m in MODALITIES}
            out["loss_s"] = extracted["loss_s"]

        for m in MODALITIES:
            out[m] = Tokenizer.flatten(tokens[m])
        out["M"] = torch.cat([F.normalize(out[m], dim=-1) for m in self.kept], dim=-1)
        return out

    # ----------------------------------------------------------------------------------- losses
    def _alignment(self, src: dict[str, Tensor], tgt: dict[str, Tensor]) -> Tensor:
        """L_mcl (Eq. 27): the contrastive loss summed over h^M and each kept modality."""
        total = src["M"].new_zeros(())
        for key in ("M", *self.kept):
            if self.contrastive == "msnea":
                total = total + contrastive_alignment_loss(src[key], tgt[key], margin=self.cl_margin)
            else:
                total = total + infonce_alignment_loss(src[key], tgt[key], temperature=self.temperature)
        return total

    def training_losses(
        self, data: HeteroData, pairs: Tensor, pseudo_pairs: Tensor | None, generator: torch.Generator
    ) -> dict[str, Tensor]:
        losses: dict[str, Tensor] = {}
        num_seed = pairs.size(1)
        if pseudo_pairs is not None and pseudo_pairs.numel():
            pairs = torch.cat([pairs, pseudo_pairs], dim=1)
        outs = {}
        for i, side in enumerate(SIDES):
            structure = self.structure(data, side)
            outs[side] = self.encode(data, side, pairs[i], structure)
            if self.structure_kind == "transe":
                edges = data[side, "relation", side]
                loss = self.relational[side].loss(
                    edges.edge_index,
                    edges.edge_type,
                    self.transe_batch_size,
                    generator,
                    self.transe_reduction,
                )
                losses["transe"] = losses.get("transe", 0) + loss
        for name in ("vae", "m", "s"):
            key = f"loss_{name}"
            if key in outs["source"]:
                losses[name] = (outs["source"][key] + outs["target"][key]) / 2
        seed = {
            side: {k: v[:num_seed] for k, v in outs[side].items() if not k.startswith("loss_")}
            for side in SIDES
        }
        losses["mcl"] = self._alignment(seed["source"], seed["target"])
        if pairs.size(1) > num_seed:
            pseudo = {
                side: {k: v[num_seed:] for k, v in outs[side].items() if not k.startswith("loss_")}
                for side in SIDES
            }
            losses["pseudo"] = self._alignment(pseudo["source"], pseudo["target"])
        return losses

    def __repr__(self) -> str:
        ablations = f", ablations={sorted(self.ablations)}" if self.ablations else ""
        return (
            f"{self.__class__.__name__}(dim={self.dim}, tokens={self.num_tokens}, "
            f"structure={self.structure_kind}{ablations})"
        )


def _modality_ablation(modality: str) -> str:
    return {v: k for k, v in _ABLATION_MODALITY.items()}[modality]
