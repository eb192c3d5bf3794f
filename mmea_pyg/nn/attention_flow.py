r"""Dynamic Modal Attention Flow Fusion (DMAFF, Section 4.3 and App. C of the CLAMEA paper)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmea_pyg.nn.attention import DynamicWeightedSum, TokenAttention


class ModalAttentionFlowFusion(nn.Module):
    r"""Dynamic Modal Attention Flow Fusion of one modality pair :math:`(A, B)` (Eq. 4-15).

    All attention runs over the :math:`T` tokens of one entity. **Inter-modal flow**
    (Eq. 4-7), each direction a cross :class:`~mmea_pyg.nn.attention.TokenAttention` with the
    query from the updated modality:

    .. math::
        \mathbf{A}_{update} = \mathrm{softmax}\left(\frac{\mathbf{Q}_A \mathbf{K}_B^\top}
        {\sqrt{d}}\right)\mathbf{V}_B, \qquad
        \mathbf{A}_s = \mathrm{Linear}([\mathbf{A}, \mathbf{A}_{update}]),

    and symmetrically :math:`\mathbf{B}_{update}` and :math:`\mathbf{B}_s`
    (the concatenation is along the token width). **Dynamic intra-modal flow** (Eq. 8-14):
    a gate from the other modality, pooled over its tokens, scales the queries and keys of a
    self-attention (values are not gated):

    .. math::
        \mathbf{G}_{A_s \leftarrow B_s} = \sigma\big(\mathrm{Linear}(\mathrm{mean}_T(\mathbf{B}_s))\big),
        \qquad \hat{\mathbf{A}}_{update} = \mathrm{softmax}\left(
        \frac{\big((\mathbf{1} + \mathbf{G})\odot\mathbf{Q}_{A_s}\big)
        \big((\mathbf{1} + \mathbf{G})\odot\mathbf{K}_{A_s}\big)^\top}{\sqrt{d}}\right)
        \mathbf{V}_{A_s},

    .. math::
        \mathbf{h}^A = \mathrm{Linear}(\mathbf{A}_s + \hat{\mathbf{A}}_{update}),

    and symmetrically :math:`\mathbf{h}^B`. **Fusion** (Eq. 15): the flattened
    :math:`\mathbf{h}^A, \mathbf{h}^B \in \mathbb{R}^{T d_t}` are combined by
    :class:`~mmea_pyg.nn.attention.DynamicWeightedSum`,
    :math:`\mathbf{h}^{AB} = w_A \mathbf{h}^A + w_B \mathbf{h}^B`, and reshaped back to tokens.

    Every attention block ends with its own output projection :math:`\mathbf{W}_h, \mathbf{b}_h`
    (as in Eq. 1), which the paper leaves implicit in Eq. 4-5 and 13-14. Each direction has its
    own projections (the two flows share no weights).

    Ablations: ``use_flow=False`` (``w/o MAF``) removes both flows, :math:`\mathbf{h}^A =
    \mathbf{A}`, :math:`\mathbf{h}^B = \mathbf{B}` and the output is the plain Dsum of the
    inputs; ``use_gate=False`` (``w/o G``) sets :math:`\mathbf{G} = \mathbf{0}`. Submodules a
    switch turns off are not built, so every parameter of the module is used (without flows
    there is no gate either: ``use_flow=False`` implies ``use_gate=False``).

    Args:
        num_tokens (int): Number of tokens :math:`T` per modality. (default: :obj:`4`)
        token_dim (int): Width :math:`d_t` of each token. (default: :obj:`25`)
        heads (int, optional): Heads of the flow attentions. (default: :obj:`2`)
        head_dim (int, optional): Width of each flow head; :obj:`None` means
            :obj:`token_dim`. (default: :obj:`None`)
        dsum_heads (int, optional): Heads :math:`N_h` of the Dsum weights (App. F: 5); must
            divide :math:`T d_t`. (default: :obj:`5`)
        use_flow (bool, optional): Use the attention flows. (default: :obj:`True`)
        use_gate (bool, optional): Use the gate :math:`\mathbf{G}`. (default: :obj:`True`)
        dropout (float, optional): Dropout on the attention weights during training.
            (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`\mathbf{A}` :math:`(N, T, d_t)`, :math:`\mathbf{B}`
          :math:`(N, T, d_t)`, masks :math:`(N,)` *(optional, bool)*
        - **output:** dict with ``fused`` :math:`(N, T, d_t)`, ``a`` :math:`(N, T, d_t)`
          (:math:`\mathbf{h}^A`), ``b`` :math:`(N, T, d_t)` (:math:`\mathbf{h}^B`) and
          ``weights`` :math:`(N, 2)` (:math:`w_A, w_B`)
    """

    def __init__(
        self,
        num_tokens: int = 4,
        token_dim: int = 25,
        heads: int = 2,
        head_dim: int | None = None,
        dsum_heads: int = 5,
        use_flow: bool = True,
        use_gate: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.token_dim = token_dim
        self.heads = heads
        self.use_flow = use_flow
        self.use_gate = use_gate and use_flow
        if use_flow:
            # Inter-modal flow (Eq. 4-7).
            self.inter_a = TokenAttention(token_dim, heads=heads, head_dim=head_dim, dropout=dropout)
            self.inter_b = TokenAttention(token_dim, heads=heads, head_dim=head_dim, dropout=dropout)
            self.lin_a = nn.Linear(2 * token_dim, token_dim)
            self.lin_b = nn.Linear(2 * token_dim, token_dim)
            # Dynamic intra-modal flow (Eq. 8-14).
            self.intra_a = TokenAttention(token_dim, heads=heads, head_dim=head_dim, dropout=dropout)
            self.intra_b = TokenAttention(token_dim, heads=heads, head_dim=head_dim, dropout=dropout)
            if self.use_gate:
                self.gate_a = nn.Linear(token_dim, self.intra_a.inner_dim)  # G_{As <- Bs}
                self.gate_b = nn.Linear(token_dim, self.intra_b.inner_dim)  # G_{Bs <- As}
            self.out_a = nn.Linear(token_dim, token_dim)
            self.out_b = nn.Linear(token_dim, token_dim)
        self.dsum = DynamicWeightedSum(num_tokens * token_dim, heads=dsum_heads)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises all submodules."""
        for module in self.children():
            module.reset_parameters()

    def forward(
        self,
        a: Tensor,
        b: Tensor,
        mask_a: Tensor | None = None,
        mask_b: Tensor | None = None,
    ) -> dict[str, Tensor]:
        r"""Fuses the modality pair :math:`(A, B)`.

        Args:
            a (torch.Tensor): Tokens of modality :math:`A`, :math:`(N, T, d_t)`.
            b (torch.Tensor): Tokens of modality :math:`B`, :math:`(N, T, d_t)`.
            mask_a (torch.Tensor, optional): :math:`(N,)` bool, :obj:`False` where the entity
                lacks :math:`A`; such a modality gets Dsum weight 0 (the flows still run on its
                placeholder tokens). :obj:`None` means present everywhere.
            mask_b (torch.Tensor, optional): The same for :math:`B`.

        Returns:
            dict[str, torch.Tensor]: ``fused``, ``a``, ``b`` :math:`(N, T, d_t)` and
            ``weights`` :math:`(N, 2)`.
        """
        expected = (self.num_tokens, self.token_dim)
        if a.dim() != 3 or b.shape != a.shape or tuple(a.shape[1:]) != expected:
            raise ValueError(
                f"ModalAttentionFlowFusion expects A and B of shape [N, {self.num_tokens}, {self.token_dim}], "
                f"got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        if self.use_flow:
            a_s = self.lin_a(torch.cat([a, self.inter_a(a, b)], dim=-1))  # Eq. 4, 6
            b_s = self.lin_b(torch.cat([b, self.inter_b(b, a)], dim=-1))  # Eq. 5, 7
            gate_a = gate_b = None
            if self.use_gate:
                gate_a = torch.sigmoid(self.gate_a(b_s.mean(dim=1)))  # Eq. 8
                gate_b = torch.sigmoid(self.gate_b(a_s.mean(dim=1)))  # Eq. 9
            h_a = self.out_a(a_s + self.intra_a(a_s, gate=gate_a))  # Eq. 10, 11, 13
            h_b = self.out_b(b_s + self.intra_b(b_s, gate=gate_b))  # Eq. 10, 12, 14
        else:
            h_a, h_b = a, b

        mask = None
        if mask_a is not None or mask_b is not None:
            ones = torch.ones(a.size(0), dtype=torch.bool, device=a.device)
            mask = torch.stack(
                [ones if mask_a is None else mask_a, ones if mask_b is None else mask_b], dim=-1
            )
        fused, weights = self.dsum([h_a.flatten(1), h_b.flatten(1)], mask=mask)  # Eq. 15
        return {"fused": fused.view_as(a), "a": h_a, "b": h_b, "weights": weights}

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_tokens={self.num_tokens}, token_dim={self.token_dim}, "
            f"heads={self.heads}, use_flow={self.use_flow}, use_gate={self.use_gate})"
        )
