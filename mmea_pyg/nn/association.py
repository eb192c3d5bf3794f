r"""Cross-modal Association Extraction (CMAE, Section 4.5 and App. D of the CLAMEA paper)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmea_pyg.losses import orthogonality_loss
from mmea_pyg.nn.attention import TokenAttention

#: The DMAFF fused pair made of the two modalities other than the key (Eq. 20-22).
FUSED_PAIR = {"r": "av", "a": "vr", "v": "ar"}


def _both(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    return a & b


class CrossModalAssociationExtraction(nn.Module):
    r"""Cross-modal Association Extraction (Eq. 20-25).

    For each target modality :math:`x` with the other two :math:`y, z`
    (:math:`x, y, z \in \{r, a, v\}`):

    .. math::
        \hat{\mathbf{h}}^x = w^x_x \mathbf{h}^x + w^x_y \mathrm{MH}_{xy}(\mathbf{h}^y, \mathbf{h}^x)
        + w^x_z \mathrm{MH}_{xz}(\mathbf{h}^z, \mathbf{h}^x)
        + w^x_{yz} \mathrm{MH}_{x,yz}(\mathbf{h}^{yz}, \mathbf{h}^x),

    where :math:`\mathrm{MH}_{xy}(\mathbf{h}^y, \mathbf{h}^x)` is a 2-head
    :class:`~mmea_pyg.nn.attention.TokenAttention` over the tokens of one entity. With
    ``query="source"`` (the default) it reads its arguments in the order of multi-head attention,
    :math:`\mathrm{MH}(Q, K{=}V)`: the **query from the source** :math:`\mathbf{h}^y` and keys/values
    from the target :math:`\mathbf{h}^x`, so the association is *the part of* :math:`\mathbf{h}^x`
    *that* :math:`\mathbf{h}^y` *selects*, expressed in :math:`\mathbf{h}^x`'s own values. That is what
    Eq. 25 needs: the residual :math:`\mathbf{h}^x - \mathrm{MH}_{xy}(\mathbf{h}^y, \mathbf{h}^x)`
    "reflects the part [of :math:`\mathbf{h}^x`] uncorrelated with :math:`\mathbf{h}^y`". With
    ``query="target"`` (the earlier reading of ``docs/CLAMEA.md``) the query comes from
    :math:`\mathbf{h}^x` and keys/values from :math:`\mathbf{h}^y`, which writes the source's content
    into the target (``docs/clamea.md`` measures both).
    :math:`\mathbf{h}^{yz}` is the DMAFF fused pair of the other two modalities
    (:math:`\mathbf{h}^{av}` for :math:`r`, :math:`\mathbf{h}^{vr}` for :math:`a`,
    :math:`\mathbf{h}^{ar}` for :math:`v`), and :math:`(w^x_x, w^x_y, w^x_z, w^x_{yz}) =
    \mathrm{softmax}(\boldsymbol{\theta}^x)` are learnable weights, separate per target
    (initialised uniform). Every :math:`\mathrm{MH}` has its own parameters.

    The orthogonality loss (Eq. 23-25) asks the residual of each association to be orthogonal
    to the source modality, for the 6 ordered pairs of distinct single modalities (the fused
    pairs are not in it, App. D):

    .. math::
        \mathcal{L}_s = \sum_{x \neq y} \frac{1}{N} \sum_{e=1}^{N}
        \Big(\big(\mathbf{h}^x_e - \mathrm{MH}_{xy}(\mathbf{h}^y, \mathbf{h}^x)_e\big)^\top
        \mathbf{h}^y_e\Big)^2,

    with every embedding flattened to :math:`T d_t` per entity; the :math:`\mathrm{MH}` are the
    same modules (and outputs) as in the fusion above.

    With a subset of modalities (e.g. ``modalities=("r", "a")`` for ``w/o V``) only the
    associations among those are built: with two modalities there is no fused-pair term, each
    target has 2 weights, and :math:`\mathcal{L}_s` has 2 terms.

    Args:
        token_dim (int): Width :math:`d_t` of each token. (default: :obj:`25`)
        heads (int, optional): Heads of each :math:`\mathrm{MH}` (App. F: 2).
            (default: :obj:`2`)
        head_dim (int, optional): Width of each head; :obj:`None` means :obj:`token_dim`.
            (default: :obj:`None`)
        modalities (Sequence[str], optional): The modalities used, at least two of
            ``"r"``, ``"a"``, ``"v"``. (default: :obj:`("r", "a", "v")`)
        dropout (float, optional): Dropout on the attention weights during training.
            (default: :obj:`0.0`)
        query (str, optional): ``"source"``: the query of :math:`\mathrm{MH}_{xy}` comes from
            :math:`\mathbf{h}^y`; ``"target"``: from :math:`\mathbf{h}^x`. (default: ``"source"``)
        zero_init (bool, optional): Start the output projection of every :math:`\mathrm{MH}` at
            zero, so that each association term starts at :math:`\mathbf{0}` and
            :math:`\hat{\mathbf{h}}^x` starts as :math:`w^x_x \mathbf{h}^x`, a rescaled
            :math:`\mathbf{h}^x` (:class:`~mmea_pyg.nn.attention.TokenAttention`'s ``zero_output``).
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`\mathbf{h}^r, \mathbf{h}^a, \mathbf{h}^v, \mathbf{h}^{av},
          \mathbf{h}^{vr}, \mathbf{h}^{ar}` each :math:`(N, T, d_t)` (those of unused
          modalities may be :obj:`None`)
        - **output:** dict with :math:`\hat{\mathbf{h}}^x` :math:`(N, T, d_t)` under the key
          ``x`` of each used modality, and the scalar ``loss_s``
    """

    def __init__(
        self,
        token_dim: int = 25,
        heads: int = 2,
        head_dim: int | None = None,
        modalities: Sequence[str] = ("r", "a", "v"),
        dropout: float = 0.0,
        query: str = "source",
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        if query not in ("source", "target"):
            raise ValueError(f"query must be 'source' or 'target', got {query!r}")
        self.query = query
        modalities = tuple(modalities)
        if (
            len(set(modalities)) != len(modalities)
            or not set(modalities) <= {"r", "a", "v"}
            or len(modalities) < 2
        ):
            raise ValueError(f"modalities must be at least two distinct of 'r', 'a', 'v', got {modalities!r}")
        self.token_dim = token_dim
        self.heads = heads
        self.modalities = modalities
        self.use_fused = len(modalities) == 3
        self.mh = nn.ModuleDict()
        self.logits = nn.ParameterDict()
        for x in modalities:
            for y in self.sources(x):
                self.mh[f"{x}_{y}"] = TokenAttention(
                    token_dim, heads=heads, head_dim=head_dim, dropout=dropout, zero_output=zero_init
                )
            self.logits[x] = nn.Parameter(torch.empty(1 + len(self.sources(x))))
        self.reset_parameters()

    def sources(self, x: str) -> tuple[str, ...]:
        r"""The key/value sources of target :obj:`x`, in the order of its weights after
        :math:`w^x_x`: the other single modalities, then the fused pair (if used)."""
        others = tuple(y for y in self.modalities if y != x)
        return (*others, FUSED_PAIR[x]) if self.use_fused else others

    def reset_parameters(self) -> None:
        r"""Re-initialises every MH and sets the fusion weights to uniform."""
        for mh in self.mh.values():
            mh.reset_parameters()
        for theta in self.logits.values():
            nn.init.zeros_(theta)

    def weights(self) -> dict[str, Tensor]:
        r"""The softmax-normalised fusion weights per target, ordered as ``(x, *sources(x))``."""
        return {x: theta.softmax(dim=0) for x, theta in self.logits.items()}

    def forward(
        self,
        h_r: Tensor | None = None,
        h_a: Tensor | None = None,
        h_v: Tensor | None = None,
        h_av: Tensor | None = None,
        h_vr: Tensor | None = None,
        h_ar: Tensor | None = None,
        masks: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        r"""Extracts cross-modal associations.

        Args:
            h_r (torch.Tensor, optional): Relational tokens :math:`(N, T, d_t)`.
            h_a (torch.Tensor, optional): Attribute tokens :math:`(N, T, d_t)`.
            h_v (torch.Tensor, optional): Visual tokens :math:`(N, T, d_t)`.
            h_av (torch.Tensor, optional): DMAFF fusion of :math:`a, v` (source for :math:`r`).
            h_vr (torch.Tensor, optional): DMAFF fusion of :math:`v, r` (source for :math:`a`).
            h_ar (torch.Tensor, optional): DMAFF fusion of :math:`a, r` (source for :math:`v`).
            masks (Mapping[str, torch.Tensor], optional): Per input name (``"a"``, ``"av"``, ...),
                :math:`(N,)` bool, :obj:`False` where that input is no evidence for the entity (a
                modality it lacks and nothing generated, a fused pair of two such modalities). Such
                a source gets weight 0 for that entity (the weights of the others are renormalised)
                and such an entity is left out of the :math:`\mathcal{L}_s` terms of that input.
                Missing names are present everywhere.

        Returns:
            dict[str, torch.Tensor]: :math:`\hat{\mathbf{h}}^x` :math:`(N, T, d_t)` per used
            modality and the scalar ``loss_s``.
        """
        given = {"r": h_r, "a": h_a, "v": h_v, "av": h_av, "vr": h_vr, "ar": h_ar}
        needed = list(self.modalities) + ([FUSED_PAIR[x] for x in self.modalities] if self.use_fused else [])
        ref = given[self.modalities[0]]
        for name in needed:
            h = given[name]
            if h is None:
                raise ValueError(
                    f"CrossModalAssociationExtraction with modalities {self.modalities} needs h_{name}"
                )
            if h.dim() != 3 or h.size(-1) != self.token_dim or (ref is not None and h.shape != ref.shape):
                raise ValueError(
                    f"CrossModalAssociationExtraction expects h_{name} of shape [N, T, {self.token_dim}] "
                    f"like the others, got {tuple(h.shape)}"
                )
        masks = dict(masks or {})
        present = {name: masks[name].to(torch.bool) if name in masks else None for name in needed}

        weights = self.weights()
        out: dict[str, Tensor] = {}
        loss_s = ref.new_zeros(())
        for x in self.modalities:
            h_x = given[x]
            terms = [h_x]
            for y in self.sources(x):
                mh = self.mh[f"{x}_{y}"]
                assoc = mh(given[y], h_x) if self.query == "source" else mh(h_x, given[y])
                terms.append(assoc)
                if y in self.modalities:  # single modality: a term of L_s (Eq. 23-25)
                    both = _both(present[x], present[y])
                    loss_s = loss_s + orthogonality_loss(h_x - assoc, given[y], mask=both)  # S_d(h^x, h^y)
            w = weights[x].expand(h_x.size(0), -1)  # [N, 1 + S]
            use = [present[x]] + [present[y] for y in self.sources(x)]
            if any(m is not None for m in use[1:]):
                keep = torch.stack(
                    [torch.ones_like(w[:, 0], dtype=torch.bool) if m is None else m for m in use], -1
                )
                keep[:, 0] = True  # the target itself always counts
                w = w * keep
                w = w / w.sum(dim=-1, keepdim=True)
            out[x] = sum(w[:, k, None, None] * term for k, term in enumerate(terms))
        out["loss_s"] = loss_s
        return out

    def __repr__(self) -> str:
        query = "" if self.query == "source" else ", query='target'"
        return (
            f"{self.__class__.__name__}({self.token_dim}, heads={self.heads}, "
            f"modalities={self.modalities!r}{query})"
        )
