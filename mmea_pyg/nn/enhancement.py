r"""Modal Feature Enhancement (MFE, Section 4.2 of the CLAMEA paper)."""

from __future__ import annotations

from torch import Tensor, nn

from mmea_pyg.nn.attention import TokenAttention


class ModalFeatureEnhancement(nn.Module):
    r"""Modal Feature Enhancement: multi-head self-attention over the tokens of one modality
    (Eq. 1-3), with a residual connection.

    For the :math:`T` tokens :math:`\mathbf{h}_o^m \in \mathbb{R}^{T \times d_t}` of modality
    :math:`m \in \{a, r, v\}` of one entity:

    .. math::
        \mathbf{h}^m = \mathbf{h}_o^m + \mathrm{Concat}(head_1, \dots, head_\eta)\mathbf{W}_h
        + \mathbf{b}_h,

    .. math::
        head_i = \mathrm{softmax}\left(\frac{\mathbf{h}_o^m\mathbf{W}_i^Q
        (\mathbf{h}_o^m\mathbf{W}_i^K)^\top}{\sqrt{d_k}}\right)\mathbf{h}_o^m\mathbf{W}_i^V .

    The paper's Eq. 1 has no residual; the project keeps one (``h = x + MHSA(x)``) so that the
    enhancement refines rather than replaces the encoder output. Attention runs over the tokens
    of one entity, never across the batch. The model builds one instance per modality.

    Args:
        token_dim (int): Width :math:`d_t` of each token. (default: :obj:`25`)
        heads (int, optional): Number of heads :math:`\eta` (App. F: 2). (default: :obj:`2`)
        head_dim (int, optional): Width of each head; :obj:`None` means :obj:`token_dim`.
            (default: :obj:`None`)
        dropout (float, optional): Dropout on the attention weights during training.
            (default: :obj:`0.0`)
        zero_init (bool, optional): Start :math:`\mathbf{W}_h, \mathbf{b}_h` at zero, so that the
            block starts as the identity (:class:`~mmea_pyg.nn.attention.TokenAttention`'s
            ``zero_output``). (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(N, T, d_t)`
        - **output:** :math:`(N, T, d_t)`
    """

    def __init__(
        self,
        token_dim: int = 25,
        heads: int = 2,
        head_dim: int | None = None,
        dropout: float = 0.0,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.token_dim = token_dim
        self.heads = heads
        self.attn = TokenAttention(
            token_dim, heads=heads, head_dim=head_dim, dropout=dropout, zero_output=zero_init
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the attention projections."""
        self.attn.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        r"""Enhances the tokens of one modality.

        Args:
            x (torch.Tensor): Modality tokens :math:`(N, T, d_t)`.

        Returns:
            torch.Tensor: Enhanced tokens :math:`(N, T, d_t)`.
        """
        if x.dim() != 3 or x.size(-1) != self.token_dim:
            raise ValueError(
                f"ModalFeatureEnhancement expects [N, T, {self.token_dim}], got {tuple(x.shape)}"
            )
        return x + self.attn(x)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.token_dim}, heads={self.heads})"
