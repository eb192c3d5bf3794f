r"""Dynamic Missing Modality Generation (DMMG, Section 4.4 of the CLAMEA paper)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmea_pyg.losses import latent_alignment_loss, vae_elbo_loss
from mmea_pyg.nn.attention import DynamicWeightedSum


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
    Its negative ELBO (Eq. 16) is :func:`~mmea_pyg.losses.vae_elbo_loss`, which
    :class:`DynamicMissingModalityGeneration` calls with ``kl_weight = 1 / d_z``:

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

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, hidden_dim={self.hidden_dim}, latent_dim={self.latent_dim})"


#: The DMAFF fused pair that generates each missing modality (Eq. 19), besides :math:`\mathbf{h}^r`.
GENERATING_PAIR = {"a": "vr", "v": "ar"}


def generation_sources(modalities: Sequence[str]) -> dict[str, tuple[str, ...]]:
    r"""Which embeddings generate each missing modality when only ``modalities`` take part.

    The paper generates :math:`\mathbf{g}^a` from :math:`\mathbf{z}^{vr}, \mathbf{z}^{r}` and
    :math:`\mathbf{g}^v` from :math:`\mathbf{z}^{ar}, \mathbf{z}^{r}` (Eq. 19). A source is used only
    when every modality it is made of takes part (the fused pair :math:`vr` needs both :math:`v` and
    :math:`r`); a modality with no source left is not generated. ``("r", "a", "v")`` gives
    ``{"a": ("vr", "r"), "v": ("ar", "r")}``; ``("r", "a")`` (no image anywhere, or ``w/o V``) gives
    ``{"a": ("r",)}``; ``("a", "v")`` (``w/o R``) gives ``{}``.
    """
    present = set(modalities)
    out = {}
    for x, pair in GENERATING_PAIR.items():
        if x not in present:
            continue
        sources = tuple(y for y in (pair, "r") if set(y) <= present)
        if sources:
            out[x] = sources
    return out


class DynamicMissingModalityGeneration(nn.Module):
    r"""Dynamic Missing Modality Generation: fills missing attribute and visual embeddings
    from the other modalities (Eq. 16-19).

    With all three modalities, five :class:`ModalityVAE` s, for the targets
    :math:`\mathbf{h}^a, \mathbf{h}^v, \mathbf{h}^r, \mathbf{h}^{vr}, \mathbf{h}^{ar}` (each flattened
    to :math:`T d_t`), give latent codes :math:`\mathbf{z}^x`. The losses are

    .. math::
        \mathcal{L}_{vae} = \mathcal{L}(\mathbf{h}^a) + \mathcal{L}(\mathbf{h}^v)
        + \mathcal{L}(\mathbf{h}^r) + \mathcal{L}(\mathbf{h}^{vr}) + \mathcal{L}(\mathbf{h}^{ar}),

    .. math::
        \mathcal{L}_m = \mathrm{MSE}(\boldsymbol{\mu}^a, \boldsymbol{\mu}^{vr})
        + \mathrm{MSE}(\boldsymbol{\mu}^v, \boldsymbol{\mu}^{ar})
        + \mathrm{MSE}(\boldsymbol{\mu}^a, \boldsymbol{\mu}^{r})
        + \mathrm{MSE}(\boldsymbol{\mu}^v, \boldsymbol{\mu}^{r}),

    computed by :func:`~mmea_pyg.losses.vae_elbo_loss` (per-dimension means: reconstruction MSE
    plus the KL divided by the latent width) and :func:`~mmea_pyg.losses.latent_alignment_loss`.
    :math:`\mathcal{L}(\mathbf{h}^a)` and the :math:`a` terms of :math:`\mathcal{L}_m` average over
    the entities that have attributes, the :math:`v` ones over the entities that have an image, and
    the others over all entities (a term with no such entity is 0). Missing embeddings are generated
    with the target's decoder from the other latent codes and fused by a
    :class:`~mmea_pyg.nn.attention.DynamicWeightedSum` (Eq. 19):

    .. math::
        \mathbf{g}^a = w_1 \cdot p_\theta^a(\mathbf{z}^{vr}) + w_2 \cdot p_\theta^a(\mathbf{z}^{r}),
        \qquad
        \mathbf{g}^v = w_1 \cdot p_\theta^v(\mathbf{z}^{ar}) + w_2 \cdot p_\theta^v(\mathbf{z}^{r}).

    An entity that has the modality keeps its own embedding exactly; one that lacks it gets
    :math:`\mathbf{g}`. The latent codes fed to the decoders are the VAEs' codes (sampled in
    training, means in evaluation). The VAEs are MLPs (see :class:`ModalityVAE`).

    **Fewer modalities.** Only the modalities in ``modalities`` take part (an ablated modality, or
    one that no entity of the dataset has: a decoder that never sees a real target would output
    untrained noise). :func:`generation_sources` says what generates what; the VAEs, loss terms and
    Dsum weights of the rest are not built (nor the Dsum of a modality with a single source, whose
    weight would be 1). Without images, for instance, :math:`\mathbf{g}^a =
    p_\theta^a(\mathbf{z}^r)` and :math:`\mathcal{L}_m = \mathrm{MSE}(\boldsymbol{\mu}^a,
    \boldsymbol{\mu}^r)`. With nothing to generate (or ``enabled=False``, the ``w/o DMMG``
    ablation) the module has no parameters and returns only the two losses, as zeros; the caller
    keeps its embeddings.

    Args:
        num_tokens (int): Number of tokens :math:`T` per modality. (default: :obj:`4`)
        token_dim (int): Width :math:`d_t` of each token. (default: :obj:`25`)
        hidden_dim (int, optional): Hidden width of the VAEs. (default: :obj:`128`)
        latent_dim (int, optional): Latent width of the VAEs (App. F: 64). (default: :obj:`64`)
        dsum_heads (int, optional): Heads :math:`N_h` of the Dsum weights (App. F: 5).
            (default: :obj:`5`)
        modalities (Sequence[str], optional): The modalities that take part. (default: all three)
        detach_targets (bool, optional): Reconstruct detached targets, so that :math:`\mathcal{L}_{vae}`
            trains the VAEs but does not pull the embeddings towards what a VAE reconstructs easily.
            (default: :obj:`False`, the paper's joint training)
        enabled (bool, optional): :obj:`False` turns the module into the identity.
            (default: :obj:`True`)

    Shapes:
        - **input:** ``tokens`` (``a``, ``v``, ``r`` of the taking-part modalities) and ``fused``
          (``vr``, ``ar`` where used), each :math:`(N, T, d_t)`; ``masks``: ``a``, ``v``
          :math:`(N,)` bool, :obj:`True` where the entity has the modality
        - **output:** dict with the completed ``a`` / ``v`` :math:`(N, T, d_t)` of each generated
          modality, scalars ``loss_vae`` and ``loss_m``, and the generation weights ``weights_a``
          / ``weights_v`` :math:`(N, S)` (one column per source)
    """

    def __init__(
        self,
        num_tokens: int = 4,
        token_dim: int = 25,
        hidden_dim: int = 128,
        latent_dim: int = 64,
        dsum_heads: int = 5,
        modalities: Sequence[str] = ("r", "a", "v"),
        detach_targets: bool = False,
        enabled: bool = True,
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.token_dim = token_dim
        self.dim = num_tokens * token_dim
        self.latent_dim = latent_dim
        self.detach_targets = detach_targets
        self.sources = generation_sources(modalities) if enabled else {}
        self.enabled = bool(self.sources)
        targets = [*self.sources, *(y for ys in self.sources.values() for y in ys)]
        self.targets = tuple(dict.fromkeys(targets))  # generated modalities first, no repeats
        self.vae = nn.ModuleDict(
            {x: ModalityVAE(self.dim, hidden_dim=hidden_dim, latent_dim=latent_dim) for x in self.targets}
        )
        # Dsum weights (Eq. 19) where a modality has two sources; one source is used as it is.
        self.dsum = nn.ModuleDict(
            {
                x: DynamicWeightedSum(self.dim, heads=dsum_heads)
                for x, ys in self.sources.items()
                if len(ys) > 1
            }
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Re-initialises the VAEs and the Dsum weights."""
        for module in (*self.vae.values(), *self.dsum.values()):
            module.reset_parameters()

    def forward(
        self, tokens: Mapping[str, Tensor], fused: Mapping[str, Tensor], masks: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        r"""Completes the missing embeddings of the generated modalities.

        Args:
            tokens (Mapping[str, torch.Tensor]): Single-modality tokens :math:`(N, T, d_t)`.
            fused (Mapping[str, torch.Tensor]): DMAFF fused pairs :math:`(N, T, d_t)`.
            masks (Mapping[str, torch.Tensor]): ``a`` / ``v`` :math:`(N,)` bool, :obj:`True` where
                the entity has the modality.

        Returns:
            dict[str, torch.Tensor]: see Shapes.
        """
        inputs = {**tokens, **fused}
        if not inputs:
            raise ValueError("DynamicMissingModalityGeneration needs at least one input embedding")
        shape = next(iter(inputs.values())).shape
        for name in self.targets:
            h = inputs.get(name)
            if h is None:
                raise ValueError(f"DynamicMissingModalityGeneration needs h_{name}")
            if h.dim() != 3 or h.shape != shape or tuple(h.shape[1:]) != (self.num_tokens, self.token_dim):
                raise ValueError(
                    f"DynamicMissingModalityGeneration expects h_{name} of shape "
                    f"[N, {self.num_tokens}, {self.token_dim}] like the others, got {tuple(h.shape)}"
                )
        for x in self.sources:
            _check_mask(masks.get(x), shape[0], f"{'attr' if x == 'a' else 'img'}_mask")
        zero = next(iter(inputs.values())).new_zeros(())
        if not self.enabled:
            return {"loss_vae": zero, "loss_m": zero}

        encoded = {}
        loss_vae = zero
        for x in self.targets:
            target = inputs[x].flatten(1)
            recon, mu, logvar, z = self.vae[x](target)
            encoded[x] = (mu, z)  # L_m and the generation see the live embeddings
            if self.detach_targets:  # the ELBO trains the VAE alone: a second pass on a constant
                target = target.detach()
                recon, mu, logvar, _ = self.vae[x](target)
            loss_vae = loss_vae + vae_elbo_loss(
                recon, target, mu, logvar, masks.get(x), kl_weight=1.0 / self.latent_dim
            )
        loss_m = latent_alignment_loss(
            (encoded[x][0], encoded[y][0], masks[x]) for x, ys in self.sources.items() for y in ys
        )

        out: dict[str, Tensor] = {"loss_vae": loss_vae, "loss_m": loss_m}
        for x, ys in self.sources.items():
            decoded = [self.vae[x].decode(encoded[y][1]) for y in ys]
            if x in self.dsum:
                generated, weights = self.dsum[x](decoded)
            else:
                generated, weights = decoded[0], decoded[0].new_ones(decoded[0].size(0), 1)
            out[x] = torch.where(masks[x][:, None, None], inputs[x], generated.view(shape))
            out[f"weights_{x}"] = weights
        return out

    def __repr__(self) -> str:
        generated = ", ".join(f"{x}<-{'+'.join(ys)}" for x, ys in self.sources.items()) or "nothing"
        return (
            f"{self.__class__.__name__}(num_tokens={self.num_tokens}, token_dim={self.token_dim}, "
            f"latent_dim={self.latent_dim}, generates={generated})"
        )
