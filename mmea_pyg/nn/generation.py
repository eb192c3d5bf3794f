r"""Dynamic Missing Modality Generation (DMMG, Section 4.4 of the CLAMEA paper)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmea_pyg.nn.attention import DynamicWeightedSum


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    r"""Mean of the per-row ``values`` :math:`(N,)` over the rows where ``mask`` is :obj:`True`.

    Returns a zero that keeps the autograd graph (all-zero gradients) when no row is selected.
    """
    if mask is None:
        return values.mean()
    selected = torch.where(mask, values, torch.zeros_like(values))
    return selected.sum() / mask.sum().clamp_min(1).to(values.dtype)


def _check_mask(mask: Tensor | None, n: int, name: str) -> None:
    if mask is not None and (mask.shape != (n,) or mask.dtype != torch.bool):
        raise ValueError(f"{name} must be a bool tensor of shape [{n}], got {mask.dtype} {tuple(mask.shape)}")


class ModalityVAE(nn.Module):
    r"""A variational autoencoder for one target embedding :math:`\mathbf{h}^x` (Eq. 16).

    Encoder :math:`q_\phi(\mathbf{z}^x \mid \mathbf{h}^x) = \mathcal{N}(\boldsymbol{\mu},
    \mathrm{diag}(e^{\boldsymbol{\ell}}))` with
    :math:`[\boldsymbol{\mu}, \boldsymbol{\ell}] = \mathrm{MLP}_\phi(\mathbf{h}^x)`;
    decoder :math:`\hat{\mathbf{h}}^x = \mathrm{MLP}_\theta(\mathbf{z}^x)` (a Gaussian with fixed
    variance, so the log-likelihood is a squared error). The latent code is the
    reparameterised sample :math:`\mathbf{z} = \boldsymbol{\mu} + e^{\boldsymbol{\ell}/2} \odot
    \boldsymbol{\epsilon}` in training mode and :math:`\boldsymbol{\mu}` in evaluation mode.
    The negative ELBO of an entity is

    .. math::
        \mathcal{L}(\mathbf{h}^x) = \frac{1}{d}\lVert \mathbf{h}^x - \hat{\mathbf{h}}^x \rVert^2
        + \frac{1}{d_z} \sum_{k=1}^{d_z} \tfrac{1}{2}\left(\mu_k^2 + e^{\ell_k} - \ell_k - 1\right),

    averaged over the selected entities. Both terms are per-dimension means, so the loss stays
    :math:`O(1)` next to the other loss terms; relative to the summed ELBO this is a
    :math:`\beta`-VAE with :math:`\beta = d / d_z`.

    The paper's App. F lists 2 attention heads for the VAE but describes no attention inside
    it; this project's reading is a plain MLP VAE (``dim -> hidden -> (mu, logvar)``,
    ``latent -> hidden -> dim``, ReLU).

    Args:
        dim (int): Width :math:`d` of the target embedding. (default: :obj:`100`)
        hidden_dim (int, optional): Hidden width of encoder and decoder. (default: :obj:`128`)
        latent_dim (int, optional): Latent width :math:`d_z` (App. F: 64). (default: :obj:`64`)

    Shapes:
        - **input:** :math:`(N, d)`, mask :math:`(N,)` *(optional, bool)*
        - **output:** :meth:`forward`: reconstruction :math:`(N, d)`, :math:`\boldsymbol{\mu},
          \boldsymbol{\ell}, \mathbf{z}` :math:`(N, d_z)`
    """

    def __init__(self, dim: int = 100, hidden_dim: int = 128, latent_dim: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises encoder and decoder."""
        for module in (*self.encoder, *self.decoder):
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Returns the posterior mean and log-variance, each :math:`(N, d_z)`."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def sample(self, mu: Tensor, logvar: Tensor) -> Tensor:
        r"""Reparameterised sample in training mode, :obj:`mu` in evaluation mode."""
        if not self.training:
            return mu
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: Tensor) -> Tensor:
        r"""Maps latent codes :math:`(N, d_z)` to embeddings :math:`(N, d)`."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Encodes, samples and decodes.

        Args:
            x (torch.Tensor): Target embeddings :math:`(N, d)`.

        Returns:
            tuple[torch.Tensor, ...]: reconstruction :math:`(N, d)`, ``mu``, ``logvar`` and
            the latent code ``z``, each :math:`(N, d_z)`.
        """
        if x.dim() != 2 or x.size(-1) != self.dim:
            raise ValueError(f"ModalityVAE expects [N, {self.dim}], got {tuple(x.shape)}")
        mu, logvar = self.encode(x)
        z = self.sample(mu, logvar)
        return self.decode(z), mu, logvar, z

    def elbo_terms(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        r"""Negative ELBO of Eq. 16, averaged over the rows where ``mask`` is :obj:`True`.

        Args:
            x (torch.Tensor): Target embeddings :math:`(N, d)`.
            mask (torch.Tensor, optional): :math:`(N,)` bool; :obj:`None` selects all rows.
                With no row selected every loss is a zero that keeps the autograd graph.

        Returns:
            dict[str, torch.Tensor]: scalars ``loss`` (= ``rec`` + ``kl``), ``rec`` (MSE)
            and ``kl``; and, for all rows, ``mu``, ``logvar``, ``z`` :math:`(N, d_z)`.
        """
        _check_mask(mask, x.size(0), "mask")
        x_hat, mu, logvar, z = self(x)
        rec = _masked_mean((x_hat - x).pow(2).mean(dim=-1), mask)
        kl = _masked_mean(0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).mean(dim=-1), mask)
        return {"loss": rec + kl, "rec": rec, "kl": kl, "mu": mu, "logvar": logvar, "z": z}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, hidden_dim={self.hidden_dim}, latent_dim={self.latent_dim})"


class DynamicMissingModalityGeneration(nn.Module):
    r"""Dynamic Missing Modality Generation: fills missing attribute and visual embeddings
    from the other modalities (Eq. 16-19).

    Five :class:`ModalityVAE` s, for the targets :math:`\mathbf{h}^a, \mathbf{h}^v,
    \mathbf{h}^r, \mathbf{h}^{vr}, \mathbf{h}^{ar}` (each flattened to :math:`T d_t`), give
    latent codes :math:`\mathbf{z}^x` (means :math:`\boldsymbol{\mu}^x`). The losses are

    .. math::
        \mathcal{L}_{vae} = \mathcal{L}(\mathbf{h}^a) + \mathcal{L}(\mathbf{h}^v)
        + \mathcal{L}(\mathbf{h}^r) + \mathcal{L}(\mathbf{h}^{vr}) + \mathcal{L}(\mathbf{h}^{ar}),

    .. math::
        \mathcal{L}_m = \mathrm{MSE}(\boldsymbol{\mu}^a, \boldsymbol{\mu}^{vr})
        + \mathrm{MSE}(\boldsymbol{\mu}^v, \boldsymbol{\mu}^{ar})
        + \mathrm{MSE}(\boldsymbol{\mu}^a, \boldsymbol{\mu}^{r})
        + \mathrm{MSE}(\boldsymbol{\mu}^v, \boldsymbol{\mu}^{r}),

    where :math:`\mathcal{L}(\mathbf{h}^a)` and the :math:`a` terms of :math:`\mathcal{L}_m`
    average over the entities that have attributes, the :math:`v` ones over the entities that
    have an image, and the others over all entities (a term with no such entity is 0). Missing
    embeddings are generated with the target's decoder from the other latent codes and fused by
    a :class:`~mmea_pyg.nn.attention.DynamicWeightedSum` (Eq. 19):

    .. math::
        \mathbf{g}^a = w_1 \cdot p_\theta^a(\mathbf{z}^{vr}) + w_2 \cdot p_\theta^a(\mathbf{z}^{r}),
        \qquad
        \mathbf{g}^v = w_1 \cdot p_\theta^v(\mathbf{z}^{ar}) + w_2 \cdot p_\theta^v(\mathbf{z}^{r}).

    An entity that has the modality keeps its own embedding exactly; one that lacks it gets
    :math:`\mathbf{g}`. The latent codes fed to the decoders are the VAEs' codes (sampled in
    training, means in evaluation). The VAEs are MLPs (see :class:`ModalityVAE`).

    With ``enabled=False`` (the ``w/o DMMG`` ablation) the module builds no parameters and
    :meth:`forward` returns the inputs unchanged with zero losses, so the model can call it
    either way.

    Args:
        num_tokens (int): Number of tokens :math:`T` per modality. (default: :obj:`4`)
        token_dim (int): Width :math:`d_t` of each token. (default: :obj:`25`)
        hidden_dim (int, optional): Hidden width of the VAEs. (default: :obj:`128`)
        latent_dim (int, optional): Latent width of the VAEs (App. F: 64). (default: :obj:`64`)
        dsum_heads (int, optional): Heads :math:`N_h` of the Dsum weights (App. F: 5).
            (default: :obj:`5`)
        enabled (bool, optional): :obj:`False` turns the module into the identity.
            (default: :obj:`True`)

    Shapes:
        - **input:** :math:`\mathbf{h}^a, \mathbf{h}^v, \mathbf{h}^r, \mathbf{h}^{vr},
          \mathbf{h}^{ar}` each :math:`(N, T, d_t)`, ``attr_mask`` and ``img_mask``
          :math:`(N,)` bool
        - **output:** dict with ``a``, ``v`` :math:`(N, T, d_t)` (completed), scalars
          ``loss_vae`` and ``loss_m``, and the generation weights ``weights_a``,
          ``weights_v`` :math:`(N, 2)` (absent when disabled)
    """

    TARGETS = ("a", "v", "r", "vr", "ar")

    def __init__(
        self,
        num_tokens: int = 4,
        token_dim: int = 25,
        hidden_dim: int = 128,
        latent_dim: int = 64,
        dsum_heads: int = 5,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.token_dim = token_dim
        self.dim = num_tokens * token_dim
        self.latent_dim = latent_dim
        self.enabled = enabled
        if enabled:
            self.vae = nn.ModuleDict(
                {x: ModalityVAE(self.dim, hidden_dim=hidden_dim, latent_dim=latent_dim) for x in self.TARGETS}
            )
            self.dsum_a = DynamicWeightedSum(self.dim, heads=dsum_heads)
            self.dsum_v = DynamicWeightedSum(self.dim, heads=dsum_heads)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the VAEs and the Dsum weights."""
        if self.enabled:
            for vae in self.vae.values():
                vae.reset_parameters()
            self.dsum_a.reset_parameters()
            self.dsum_v.reset_parameters()

    def forward(
        self,
        h_a: Tensor,
        h_v: Tensor,
        h_r: Tensor,
        h_vr: Tensor,
        h_ar: Tensor,
        attr_mask: Tensor,
        img_mask: Tensor,
    ) -> dict[str, Tensor]:
        r"""Completes the attribute and visual embeddings.

        Args:
            h_a (torch.Tensor): Attribute tokens :math:`(N, T, d_t)`.
            h_v (torch.Tensor): Visual tokens :math:`(N, T, d_t)`.
            h_r (torch.Tensor): Relational tokens :math:`(N, T, d_t)`.
            h_vr (torch.Tensor): DMAFF fusion of :math:`v` and :math:`r`, :math:`(N, T, d_t)`.
            h_ar (torch.Tensor): DMAFF fusion of :math:`a` and :math:`r`, :math:`(N, T, d_t)`.
            attr_mask (torch.Tensor): :math:`(N,)` bool, :obj:`True` where the entity has
                attributes.
            img_mask (torch.Tensor): :math:`(N,)` bool, :obj:`True` where the entity has an
                image.

        Returns:
            dict[str, torch.Tensor]: see Shapes.
        """
        inputs = {"a": h_a, "v": h_v, "r": h_r, "vr": h_vr, "ar": h_ar}
        shape = h_a.shape
        for name, h in inputs.items():
            if h.dim() != 3 or h.shape != shape or tuple(h.shape[1:]) != (self.num_tokens, self.token_dim):
                raise ValueError(
                    f"DynamicMissingModalityGeneration expects h_{name} of shape "
                    f"[N, {self.num_tokens}, {self.token_dim}] like h_a, got {tuple(h.shape)}"
                )
        n = shape[0]
        _check_mask(attr_mask, n, "attr_mask")
        _check_mask(img_mask, n, "img_mask")
        if not self.enabled:
            zero = h_a.new_zeros(())
            return {"a": h_a, "v": h_v, "loss_vae": zero, "loss_m": zero}

        masks = {"a": attr_mask, "v": img_mask, "r": None, "vr": None, "ar": None}
        out = {x: self.vae[x].elbo_terms(inputs[x].flatten(1), masks[x]) for x in self.TARGETS}
        loss_vae = sum((out[x]["loss"] for x in self.TARGETS), h_a.new_zeros(()))

        def latent_mse(x: str, y: str, mask: Tensor) -> Tensor:
            return _masked_mean((out[x]["mu"] - out[y]["mu"]).pow(2).mean(dim=-1), mask)

        loss_m = (
            latent_mse("a", "vr", attr_mask)
            + latent_mse("v", "ar", img_mask)
            + latent_mse("a", "r", attr_mask)
            + latent_mse("v", "r", img_mask)
        )

        dec_a, dec_v = self.vae["a"].decode, self.vae["v"].decode
        g_a, w_a = self.dsum_a([dec_a(out["vr"]["z"]), dec_a(out["r"]["z"])])
        g_v, w_v = self.dsum_v([dec_v(out["ar"]["z"]), dec_v(out["r"]["z"])])
        a = torch.where(attr_mask[:, None, None], h_a, g_a.view(shape))
        v = torch.where(img_mask[:, None, None], h_v, g_v.view(shape))
        return {"a": a, "v": v, "loss_vae": loss_vae, "loss_m": loss_m, "weights_a": w_a, "weights_v": w_v}

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(num_tokens={self.num_tokens}, token_dim={self.token_dim}, "
            f"latent_dim={self.latent_dim}, enabled={self.enabled})"
        )
