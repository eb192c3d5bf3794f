r"""Attention primitives shared by the CLAMEA modules.

Two building blocks live here:

* :class:`TokenAttention`: multi-head (cross-)attention over the :math:`T` tokens of *one*
  entity (Eq. 1-2 of the paper), with an optional multiplicative gate on queries and keys
  (Eq. 10). MFE, the attention flows of DMAFF and the MH blocks of CMAE are all instances.
* :class:`DynamicWeightedSum`: the dynamic weighted sum ``Dsum`` (Eq. 15, 19 and App. C,
  Eq. 33-34) that fuses a set of modality vectors with per-entity softmax weights.

Neither ever attends over the batch dimension: an entity's output depends only on its own
tokens, so it does not change with the other entities that share its batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TokenAttention(nn.Module):
    r"""Multi-head attention over the tokens of each entity (Eq. 1-3).

    For an entity with query tokens :math:`\mathbf{X} \in \mathbb{R}^{T_q \times d}` and
    key/value tokens :math:`\mathbf{Y} \in \mathbb{R}^{T_k \times d_{kv}}`
    (:math:`\mathbf{Y} = \mathbf{X}` for self-attention):

    .. math::
        \mathbf{h} = \mathrm{Concat}(head_1, \dots, head_\eta)\mathbf{W}_h + \mathbf{b}_h,

    .. math::
        head_i = \mathrm{softmax}\left(
        \frac{\big((\mathbf{1} + \mathbf{G}_i) \odot \mathbf{X}\mathbf{W}_i^Q\big)
        \big((\mathbf{1} + \mathbf{G}_i) \odot \mathbf{Y}\mathbf{W}_i^K\big)^\top}
        {\sqrt{d_k}}\right) \mathbf{Y}\mathbf{W}_i^V,

    where :math:`\mathbf{W}_i^{Q,K,V}` are separate per-head projections of width
    :math:`d_k` (``head_dim``), :math:`\mathbf{G}_i` is the :math:`i`-th head's slice of an
    optional gate :math:`\mathbf{G} \in \mathbb{R}^{\eta d_k}` (one per entity, broadcast over
    tokens; :math:`\mathbf{G} = \mathbf{0}` when no gate is given), and the output projection
    :math:`\mathbf{W}_h, \mathbf{b}_h` maps back to the query width :math:`d`.
    The gate is DMAFF's Eq. 10; values are never gated (Eq. 13-14).

    The softmax runs over the :math:`T_k` key tokens of the same entity only. With
    :math:`T_k = 1` it is identically 1 and the output ignores the query, which is why every
    modality embedding is a sequence of :math:`T > 1` tokens in this project.
    Heads are computed with :func:`torch.nn.functional.scaled_dot_product_attention`, so
    ``head_dim`` need not divide ``dim`` (the default :math:`d_t = 25` with 2 heads does not).

    Args:
        dim (int): Width :math:`d` of each query token, and of each output token.
        heads (int, optional): Number of heads :math:`\eta`. (default: :obj:`2`)
        head_dim (int, optional): Width :math:`d_k` of each head's query, key and value.
            :obj:`None` means :obj:`dim`. (default: :obj:`None`)
        kv_dim (int, optional): Width of each key/value token. :obj:`None` means
            :obj:`dim`. (default: :obj:`None`)
        qkv_bias (bool, optional): Add a bias to the Q and V projections (Eq. 2 has none).
            K never has one: it would shift all scores of a query equally and cancel in the
            softmax. (default: :obj:`False`)
        dropout (float, optional): Dropout probability on the attention weights during
            training. (default: :obj:`0.0`)
        zero_output (bool, optional): Start the output projection :math:`\mathbf{W}_h,
            \mathbf{b}_h` at zero, so that the block outputs :math:`\mathbf{0}` until it has
            learnt something: a residual branch built on it starts as the identity (the
            ``zero_init_residual`` of torchvision's ResNets). Q, K and V keep their Xavier
            initialisation, and gradients reach them once :math:`\mathbf{W}_h` moves.
            (default: :obj:`False`)

    Shapes:
        - **input:** query :math:`(N, T_q, d)`, key/value :math:`(N, T_k, d_{kv})`
          *(optional, defaults to the query)*, gate :math:`(N, \eta d_k)` *(optional)*
        - **output:** :math:`(N, T_q, d)`
    """

    def __init__(
        self,
        dim: int,
        heads: int = 2,
        head_dim: int | None = None,
        kv_dim: int | None = None,
        qkv_bias: bool = False,
        dropout: float = 0.0,
        zero_output: bool = False,
    ) -> None:
        super().__init__()
        if dim <= 0 or heads <= 0:
            raise ValueError(f"TokenAttention needs dim > 0 and heads > 0, got dim={dim}, heads={heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim if head_dim is None else head_dim
        self.kv_dim = dim if kv_dim is None else kv_dim
        self.dropout = dropout
        self.zero_output = zero_output
        inner = self.heads * self.head_dim
        self.inner_dim = inner
        self.q_proj = nn.Linear(dim, inner, bias=qkv_bias)
        self.k_proj = nn.Linear(self.kv_dim, inner, bias=False)
        self.v_proj = nn.Linear(self.kv_dim, inner, bias=qkv_bias)
        self.out_proj = nn.Linear(inner, dim)  # W_h, b_h
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises all projections (the output projection at zero with ``zero_output``)."""
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        if self.zero_output:
            nn.init.zeros_(self.out_proj.weight)

    def _split(self, x: Tensor) -> Tensor:
        # [N, T, heads * head_dim] -> [N, heads, T, head_dim]
        n, t, _ = x.shape
        return x.view(n, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key_value: Tensor | None = None, gate: Tensor | None = None) -> Tensor:
        r"""Attends from the query tokens to the key/value tokens of the same entity.

        Args:
            query (torch.Tensor): Query tokens :math:`(N, T_q, d)`.
            key_value (torch.Tensor, optional): Key/value tokens :math:`(N, T_k, d_{kv})`;
                :obj:`None` for self-attention on :obj:`query`.
            gate (torch.Tensor, optional): Gate :math:`\mathbf{G}` of shape
                :math:`(N, \eta d_k)`; queries and keys are scaled by :math:`1 + \mathbf{G}`.

        Returns:
            torch.Tensor: :math:`(N, T_q, d)`.
        """
        kv = query if key_value is None else key_value
        if query.dim() != 3 or kv.dim() != 3 or kv.size(0) != query.size(0):
            raise ValueError(
                "TokenAttention expects query [N, T_q, d] and key_value [N, T_k, d_kv] with the same N, "
                f"got {tuple(query.shape)} and {tuple(kv.shape)}"
            )
        q = self.q_proj(query)
        k = self.k_proj(kv)
        v = self.v_proj(kv)
        if gate is not None:
            if gate.shape != (query.size(0), self.inner_dim):
                raise ValueError(
                    f"gate must have shape [N, heads * head_dim] = [{query.size(0)}, {self.inner_dim}], "
                    f"got {tuple(gate.shape)}"
                )
            scale = (1.0 + gate).unsqueeze(1)  # broadcast over tokens
            q = scale * q
            k = scale * k
        out = F.scaled_dot_product_attention(
            self._split(q),
            self._split(k),
            self._split(v),
            dropout_p=self.dropout if self.training else 0.0,
        )  # [N, heads, T_q, head_dim], softmax scale 1 / sqrt(head_dim)
        out = out.transpose(1, 2).reshape(query.size(0), query.size(1), self.inner_dim)
        return self.out_proj(out)

    def __repr__(self) -> str:
        kv = f", kv_dim={self.kv_dim}" if self.kv_dim != self.dim else ""
        return f"{self.__class__.__name__}({self.dim}{kv}, heads={self.heads}, head_dim={self.head_dim})"


class DynamicWeightedSum(nn.Module):
    r"""Dynamic weighted sum ``Dsum`` of a set of modality vectors (Eq. 15, 19; App. C).

    Each modality :math:`j \in \mathcal{M}` of an entity, as one flattened vector
    :math:`\mathbf{h}^j \in \mathbb{R}^d`, is one token. With :math:`N_h` heads of width
    :math:`d_h = d / N_h`, head :math:`i` computes the attention between modalities (Eq. 34)

    .. math::
        \beta^{(i)}_{mj} = \frac{\exp\big(\mathbf{Q}_m^{(i)\top} \mathbf{K}_j^{(i)} / \sqrt{d_h}\big)}
        {\sum_{n \in \mathcal{M}} \exp\big(\mathbf{Q}_m^{(i)\top} \mathbf{K}_n^{(i)} / \sqrt{d_h}\big)},

    and the weight of modality :math:`j` is the attention it *receives*, summed over the
    querying modalities :math:`m` and the heads:

    .. math::
        w_j = \mathrm{softmax}_j\left(\frac{\sum_{m \in \mathcal{M}} \sum_{i=1}^{N_h}
        \beta^{(i)}_{mj}}{\sqrt{|\mathcal{M}| \cdot N_h}}\right), \qquad
        \mathbf{h} = \sum_{j \in \mathcal{M}} w_j \mathbf{h}^j .

    Eq. 33 as printed sums :math:`\beta_{mj}` over :math:`j`, which equals :math:`N_h` for
    every :math:`m` (each softmax row sums to 1), so the weights would be constant. This is the
    non-degenerate reading of MEAformer, where the formula comes from (its ``MformerFusion``
    sums the attention probabilities over heads and over the query axis).

    An optional boolean mask marks the modalities an entity has: a masked-out modality is
    neither a query nor a key and gets weight 0. An entity with no modality at all gets all-zero
    weights and a zero output.

    Args:
        dim (int): Width :math:`d` of each modality vector. (default: :obj:`100`)
        heads (int, optional): Number of heads :math:`N_h`; must divide :obj:`dim`.
            (default: :obj:`5`)
        bias (bool, optional): Add a bias to the query projection. The key projection has
            none: it would shift all scores of a query equally and cancel in the softmax.
            (default: :obj:`True`)

    Shapes:
        - **input:** a list of :math:`|\mathcal{M}|` tensors :math:`(N, d)`, or one tensor
          :math:`(N, |\mathcal{M}|, d)`; mask :math:`(N, |\mathcal{M}|)` *(optional, bool)*
        - **output:** fused :math:`(N, d)`, weights :math:`(N, |\mathcal{M}|)`
    """

    def __init__(self, dim: int = 100, heads: int = 5, bias: bool = True) -> None:
        super().__init__()
        if dim <= 0 or heads <= 0 or dim % heads != 0:
            raise ValueError(f"DynamicWeightedSum needs heads to divide dim, got dim={dim}, heads={heads}")
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the query and key projections."""
        for lin in (self.q_proj, self.k_proj):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def forward(self, xs: Sequence[Tensor] | Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Fuses the modality vectors of each entity.

        Args:
            xs (list[torch.Tensor] or torch.Tensor): :math:`|\mathcal{M}|` tensors
                :math:`(N, d)` or one tensor :math:`(N, |\mathcal{M}|, d)`.
            mask (torch.Tensor, optional): :math:`(N, |\mathcal{M}|)` bool, :obj:`True` where
                the entity has the modality. :obj:`None` means all present.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: the fused vectors :math:`(N, d)` and the
            weights :math:`(N, |\mathcal{M}|)` (non-negative, each row sums to 1).
        """
        x = torch.stack(list(xs), dim=1) if not isinstance(xs, Tensor) else xs
        if x.dim() != 3 or x.size(-1) != self.dim:
            raise ValueError(
                f"DynamicWeightedSum expects modality vectors of width {self.dim} as [N, M, d] "
                f"or a list of [N, d], got shape {tuple(x.shape)}"
            )
        n, m, _ = x.shape
        q = self.q_proj(x).view(n, m, self.heads, self.head_dim).transpose(1, 2)  # [N, H, M, d_h]
        k = self.k_proj(x).view(n, m, self.heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # [N, H, M(query), M(key)]

        if mask is None:
            beta = scores.softmax(dim=-1)
            received = beta.sum(dim=(1, 2))  # sum over heads and querying modalities -> [N, M]
            weights = (received / math.sqrt(m * self.heads)).softmax(dim=-1)
        else:
            if mask.shape != (n, m) or mask.dtype != torch.bool:
                raise ValueError(
                    f"mask must be a bool tensor of shape [{n}, {m}], got {mask.dtype} {tuple(mask.shape)}"
                )
            has_any = mask.any(dim=-1, keepdim=True)  # [N, 1]
            safe = mask | ~has_any  # rows without any modality: compute on all, zero at the end
            beta = scores.masked_fill(~safe[:, None, None, :], float("-inf")).softmax(dim=-1)
            beta = beta * safe[:, None, :, None].to(beta.dtype)  # masked modalities do not query
            received = beta.sum(dim=(1, 2))
            logits = (received / math.sqrt(m * self.heads)).masked_fill(~safe, float("-inf"))
            weights = logits.softmax(dim=-1) * has_any.to(x.dtype)
        fused = (weights.unsqueeze(-1) * x).sum(dim=1)
        return fused, weights

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"


def modality_self_attention(
    attention: nn.MultiheadAttention, x: Tensor, mask: Tensor | None, name: str
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Self-attention over the modalities of each entity, missing modalities masked as keys.

    Args:
        attention (torch.nn.MultiheadAttention): A ``batch_first`` attention of width :math:`d`.
        x (torch.Tensor): Modality embeddings :math:`(N, |\mathcal{M}|, d)`; one entity per row, so
            no entity attends to another.
        mask (torch.Tensor, optional): :math:`(N, |\mathcal{M}|)` bool, :obj:`True` where the entity
            has the modality (:obj:`None`: all present).
        name (str): The calling module, for error messages.

    Returns:
        ``(out, safe, has_any)``: the attention outputs :math:`(N, |\mathcal{M}|, d)`, the key mask
        actually used :math:`(N, |\mathcal{M}|)` (an entity without any modality attends over all,
        so that no row is all-masked) and whether each entity has any modality :math:`(N, 1)`.
    """
    if x.dim() != 3 or x.size(-1) != attention.embed_dim:
        raise ValueError(f"{name} expects [N, M, {attention.embed_dim}], got {tuple(x.shape)}.")
    n, m, _ = x.shape
    if mask is None:
        mask = torch.ones(n, m, dtype=torch.bool, device=x.device)
    elif mask.shape != (n, m) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape [{n}, {m}], got {mask.dtype} {tuple(mask.shape)}."
        )
    has_any = mask.any(dim=-1, keepdim=True)
    safe = mask | ~has_any
    out, _ = attention(x, x, x, key_padding_mask=~safe, need_weights=False)
    return out, safe, has_any
