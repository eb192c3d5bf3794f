r"""Loss terms of CLAMEA (Eq. 16-18, 23-28, 30, 35; Appendix E).

.. math::
    \mathcal{L}_{all} = \mathcal{L}_{TransE} + \mathcal{L}_{vae} + \alpha \mathcal{L}_m
    + \beta \mathcal{L}_s + \mathcal{L}_{mcl}

Every function is a plain function of tensors and returns a scalar unless stated. A term computed
over an empty selection (a mask with no True entry) is a zero that is still attached to the inputs'
graph, so that ``backward()`` works and gives zero gradients, never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "contrastive_alignment_loss",
    "gaussian_kl",
    "infonce_alignment_loss",
    "latent_alignment_loss",
    "multimodal_contrastive_loss",
    "orthogonality_loss",
    "transe_margin_loss",
    "vae_elbo_loss",
]


def _zero_like_graph(*tensors: Tensor) -> Tensor:
    """A scalar zero attached to ``tensors``' graph: ``backward()`` works, gradients are 0 (never NaN).

    Summing an empty slice (rather than multiplying a sum by 0) stays 0 even if the inputs hold NaN.
    """
    return sum(t.flatten()[:0].sum() for t in tensors)


def _rows(x: Tensor) -> Tensor:
    """View ``x`` as ``[N, F]`` (token tensors ``[N, T, d_t]`` become ``[N, T * d_t]``)."""
    return x.reshape(x.size(0), -1)


#: The logit of a pair outside an InfoNCE mask: exp(fill - anything finite) is exactly 0 in float32.
_MASKED_LOGIT = -1e9


def _zero_outside(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` :math:`(N, *)` with the rows outside bool ``mask`` :math:`(N,)` set to 0, by
    :func:`torch.where`: a NaN there neither reaches the loss nor its gradient (exactly 0)."""
    return torch.where(mask.view(-1, *([1] * (x.dim() - 1))), x, x.new_zeros(()))


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """The mean of ``values`` :math:`(N,)` over the rows of bool ``mask`` :math:`(N,)`, an attached 0
    when it selects none. Computed with the mask as weights: no boolean indexing, whose output size
    the host would have to read."""
    count = mask.sum().clamp_min(1).to(values.dtype)
    return torch.where(mask, values, values.new_zeros(())).sum() / count


def _check_mask(mask: Tensor | None, n: int, name: str) -> Tensor | None:
    if mask is None:
        return None
    if mask.shape != (n,):
        raise ValueError(f"{name}: mask must have shape [{n}], got {tuple(mask.shape)}.")
    return mask.to(torch.bool)


def transe_margin_loss(
    pos_score: Tensor, neg_score: Tensor, margin: float = 1.0, reduction: str = "sum"
) -> Tensor:
    r"""Margin ranking loss of TransE, Eq. 30 (one negative per positive).

    .. math::
        \mathcal{L}_{TransE} = \sum_{i=1}^{B} \max\bigl(0, \gamma + f(\tau_i) - f(\tau_i^-)\bigr)

    Args:
        pos_score (torch.Tensor): Distances :math:`f(\tau)` of the positives, shape :math:`(B,)`.
        neg_score (torch.Tensor): Distances :math:`f(\tau^-)` of their negatives, shape :math:`(B,)`.
        margin (float, optional): :math:`\gamma`. (default: :obj:`1.0`)
        reduction (str, optional): ``'sum'`` (Eq. 30), ``'mean'`` or ``'none'`` (shape :math:`(B,)`).
    """
    if pos_score.shape != neg_score.shape:
        raise ValueError(
            f"transe_margin_loss: pos_score {tuple(pos_score.shape)} and neg_score "
            f"{tuple(neg_score.shape)} must have the same shape."
        )
    loss = F.relu(margin + pos_score - neg_score)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else _zero_like_graph(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"transe_margin_loss: reduction must be 'sum', 'mean' or 'none', got {reduction!r}.")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    r"""KL divergence of a diagonal Gaussian posterior from :math:`\mathcal{N}(0, I)`, per row.

    .. math::
        D_{KL}\bigl(\mathcal{N}(\mu, \sigma^2) \,\Vert\, \mathcal{N}(0, I)\bigr)
        = -\tfrac12 \sum_{j} \bigl(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\bigr)

    Args:
        mu (torch.Tensor): Posterior means, shape :math:`(N, L)` (or :math:`(N, *)`).
        logvar (torch.Tensor): Posterior log-variances, same shape.

    Returns:
        Shape :math:`(N,)`: the KL summed over all latent dimensions of each row.
    """
    if mu.shape != logvar.shape:
        raise ValueError(f"gaussian_kl: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ.")
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())
    return _rows(kl).sum(dim=-1)


def vae_elbo_loss(
    recon: Tensor,
    target: Tensor,
    mu: Tensor,
    logvar: Tensor,
    mask: Tensor | None = None,
    kl_weight: float = 1.0,
) -> Tensor:
    r"""Negative ELBO of one VAE, Eq. 16 (to be minimised; :math:`\mathcal{L}_{vae}` sums them, Eq. 17).

    With a Gaussian decoder of fixed variance, :math:`-\log p_\theta(\mathbf{h} \mid \mathbf{z})` is
    the squared error up to constants, so

    .. math::
        \mathcal{L} = \frac{1}{|S|} \sum_{i \in S} \Bigl[ \frac{1}{F} \sum_{k=1}^{F}
        (\hat{h}_{ik} - h_{ik})^2 + \lambda_{KL}\, D_{KL}\bigl(q(\mathbf{z}_i \mid \mathbf{h}_i)
        \,\Vert\, \mathcal{N}(0, I)\bigr) \Bigr],

    i.e. reconstruction = mean over rows and feature dims (MSE), KL = mean over rows of the KL
    summed over latent dims, weighted by :math:`\lambda_{KL}` (``kl_weight``, 1 by default: the plain
    ELBO of Eq. 16 at unit decoder variance, up to a factor ``F`` on the reconstruction). :math:`S`
    are the rows selected by ``mask`` (entities that have the modality). ``target`` is used as given;
    detach it in the caller if the encoder that produced it should not be trained by this term.

    Args:
        recon (torch.Tensor): Decoder output :math:`(N, F)` or :math:`(N, T, d_t)`.
        target (torch.Tensor): Embedding being reconstructed, same shape as ``recon``.
        mu (torch.Tensor): Posterior means :math:`(N, L)`.
        logvar (torch.Tensor): Posterior log-variances :math:`(N, L)`.
        mask (torch.Tensor, optional): Bool :math:`(N,)`; rows to include (all if None).
        kl_weight (float, optional): :math:`\lambda_{KL}`. (default: :obj:`1.0`)
    """
    if recon.shape != target.shape:
        raise ValueError(
            f"vae_elbo_loss: recon {tuple(recon.shape)} and target {tuple(target.shape)} differ."
        )
    if mu.size(0) != recon.size(0):
        raise ValueError(f"vae_elbo_loss: mu has {mu.size(0)} rows, recon has {recon.size(0)}.")
    mask = _check_mask(mask, recon.size(0), "vae_elbo_loss")
    if recon.size(0) == 0:
        return _zero_like_graph(recon, target, mu, logvar)
    if mask is not None:
        recon, target, mu, logvar = (_zero_outside(x, mask) for x in (recon, target, mu, logvar))
    per_row = (_rows(recon) - _rows(target)).pow(2).mean(dim=1) + kl_weight * gaussian_kl(mu, logvar)
    if mask is None:
        return per_row.mean()
    return _masked_mean(per_row, mask)


def latent_alignment_loss(z_pairs: Iterable[tuple[Tensor, Tensor, Tensor | None]]) -> Tensor:
    r"""Latent alignment :math:`\mathcal{L}_m` of Eq. 18.

    .. math::
        \mathcal{L}_m = \sum_{(\mathbf{z}_1, \mathbf{z}_2, S)} \frac{1}{|S|\,L}
        \sum_{i \in S} \lVert \mathbf{z}_{1,i} - \mathbf{z}_{2,i} \rVert_2^2

    e.g. pairs :math:`(\mathbf{z}^a, \mathbf{z}^{vr})`, :math:`(\mathbf{z}^v, \mathbf{z}^{ar})`,
    :math:`(\mathbf{z}^a, \mathbf{z}^r)`, :math:`(\mathbf{z}^v, \mathbf{z}^r)` with :math:`S` the
    entities that have the modality being generated.

    Args:
        z_pairs: Triples ``(z1 [N, L], z2 [N, L], mask [N] or None)``; a pair whose mask selects no
            row contributes an attached zero. An empty iterable gives a (detached) zero.
    """
    total: Tensor | None = None
    for z1, z2, mask in z_pairs:
        if z1.shape != z2.shape:
            raise ValueError(f"latent_alignment_loss: z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)} differ.")
        mask = _check_mask(mask, z1.size(0), "latent_alignment_loss")
        if mask is not None:
            z1, z2 = z1[mask], z2[mask]
        term = F.mse_loss(z1, z2, reduction="mean") if z1.numel() > 0 else _zero_like_graph(z1, z2)
        total = term if total is None else total + term
    return torch.zeros(()) if total is None else total


def orthogonality_loss(residual: Tensor, other: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Orthogonality constraint :math:`S_{rth}` of Eq. 24, averaged over entities.

    .. math::
        S_{rth}(\mathbf{x}, \mathbf{z}) = \frac{1}{N} \sum_{i=1}^{N} (\mathbf{x}_i \cdot \mathbf{z}_i)^2

    with :math:`\mathbf{x} = S_d(\mathbf{h}^*, \mathbf{h}^\#) = \mathbf{h}^* - MH_{*\#}(\mathbf{h}^\#,
    \mathbf{h}^*)` (Eq. 25). :math:`\mathcal{L}_s` (Eq. 23) sums six of these.

    Args:
        residual (torch.Tensor): :math:`(N, d)` or token tensor :math:`(N, T, d_t)` (flattened).
        other (torch.Tensor): Same shape.
        mask (torch.Tensor, optional): Bool :math:`(N,)`; entities to average over (all if None).
    """
    if residual.shape != other.shape:
        raise ValueError(
            f"orthogonality_loss: residual {tuple(residual.shape)} and other {tuple(other.shape)} differ."
        )
    mask = _check_mask(mask, residual.size(0), "orthogonality_loss")
    if mask is not None:
        residual, other = residual[mask], other[mask]
    if residual.size(0) == 0:
        return _zero_like_graph(residual, other)
    dots = (_rows(residual) * _rows(other)).sum(dim=-1)
    return dots.pow(2).mean()


def contrastive_alignment_loss(h1: Tensor, h2: Tensor, margin: float = 2.0) -> Tensor:
    r"""Contrastive alignment loss :math:`\mathcal{L}_{cl}` of Eq. 35, as MSNEA's code computes it.

    Row :math:`i` of ``h1`` and ``h2`` is the :math:`i`-th seed pair. With
    :math:`\mathbf{S} = \bar{\mathbf{H}}_1 \bar{\mathbf{H}}_2^\top` the cosine similarities of the
    L2-normalised rows and :math:`\mathbf{Y} = I` (aligned on the diagonal):

    .. math::
        \mathcal{L}_{cl} = \frac{1}{B^2} \sum_{i,j} (1 - Y_{ij})\, S_{ij}^2
        + Y_{ij} \max(\gamma_{cl} - S_{ij}, 0)^2

    Args:
        h1 (torch.Tensor): Embeddings of the source entities of the batch, :math:`(B, D)`.
        h2 (torch.Tensor): Embeddings of their aligned target entities, :math:`(B, D)`.
        margin (float, optional): :math:`\gamma_{cl}`. (default: :obj:`2.0`)
    """
    if h1.shape != h2.shape:
        raise ValueError(f"contrastive_alignment_loss: h1 {tuple(h1.shape)} and h2 {tuple(h2.shape)} differ.")
    if h1.size(0) == 0:
        return _zero_like_graph(h1, h2)
    sim = F.normalize(_rows(h1), p=2.0, dim=-1) @ F.normalize(_rows(h2), p=2.0, dim=-1).t()
    y = torch.eye(sim.size(0), dtype=sim.dtype, device=sim.device)
    loss = (1.0 - y) * sim.pow(2) + y * F.relu(margin - sim).pow(2)
    return loss.mean()


def multimodal_contrastive_loss(
    emb1: Mapping[str, Tensor],
    emb2: Mapping[str, Tensor],
    keys: Sequence[str] = ("M", "r", "a", "v"),
    margin: float = 2.0,
) -> Tensor:
    r"""Multimodal contrastive loss :math:`\mathcal{L}_{mcl}`, Eq. 27.

    .. math::
        \mathcal{L}_{mcl} = \sum_{* \in \text{keys}} \mathcal{L}_{cl}(\mathbf{h}_1^*, \mathbf{h}_2^*)

    Keys absent from both dicts are skipped (an ablated modality, e.g. ``w/o V``).

    Args:
        emb1 (dict): Modality name -> :math:`(B, D_*)` embeddings of the batch's source entities.
        emb2 (dict): Modality name -> :math:`(B, D_*)` embeddings of their aligned targets.
        keys (sequence of str, optional): Modalities to sum over. (default: ``("M", "r", "a", "v")``)
        margin (float, optional): :math:`\gamma_{cl}`. (default: :obj:`2.0`)
    """
    total: Tensor | None = None
    for key in keys:
        if (key in emb1) != (key in emb2):
            raise ValueError(f"multimodal_contrastive_loss: modality {key!r} is present on one side only.")
        if key not in emb1:
            continue
        term = contrastive_alignment_loss(emb1[key], emb2[key], margin=margin)
        total = term if total is None else total + term
    if total is None:
        raise ValueError(
            f"multimodal_contrastive_loss: none of the keys {tuple(keys)} is in the embeddings "
            f"(got {sorted(emb1)})."
        )
    return total


def infonce_alignment_loss(
    h1: Tensor, h2: Tensor, temperature: float | Tensor = 0.1, mask: Tensor | None = None
) -> Tensor:
    r"""Symmetric InfoNCE with in-batch negatives: an alternative to :func:`contrastive_alignment_loss`.

    Not part of the paper; a documented lever if the MSNEA-style loss underperforms. With
    :math:`\mathbf{S}` the cosine-similarity matrix of the :math:`B` seed pairs:

    .. math::
        \mathcal{L} = -\frac{1}{2B} \sum_{i=1}^{B} \Bigl[
        \log \frac{e^{S_{ii}/\tau}}{\sum_j e^{S_{ij}/\tau}}
        + \log \frac{e^{S_{ii}/\tau}}{\sum_j e^{S_{ji}/\tau}} \Bigr]

    Args:
        h1 (torch.Tensor): :math:`(B, D)`.
        h2 (torch.Tensor): :math:`(B, D)`, row :math:`i` aligned with row :math:`i` of ``h1``.
        temperature (float or torch.Tensor, optional): :math:`\tau > 0`; a scalar tensor makes it
            learnable. (default: :obj:`0.1`)
        mask (torch.Tensor, optional): :math:`(B,)` bool: only these pairs take part (e.g. the pairs
            whose two entities both have a modality). (default: :obj:`None`)
    """
    if h1.shape != h2.shape:
        raise ValueError(f"infonce_alignment_loss: h1 {tuple(h1.shape)} and h2 {tuple(h2.shape)} differ.")
    if not isinstance(temperature, Tensor) and float(temperature) <= 0:
        # A learnable (tensor) temperature is not read on the host: that would stop a GPU step.
        raise ValueError(f"infonce_alignment_loss: temperature must be > 0, got {temperature}.")
    mask = _check_mask(mask, h1.size(0), "mask")
    if h1.size(0) == 0:
        return _zero_like_graph(h1, h2)
    if mask is not None:
        h1, h2 = _zero_outside(h1, mask), _zero_outside(h2, mask)
    logits = F.normalize(_rows(h1), p=2.0, dim=-1) @ F.normalize(_rows(h2), p=2.0, dim=-1).t()
    logits = logits / temperature
    labels = torch.arange(logits.size(0), device=logits.device)
    if mask is None:
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    # Pairs outside the mask take no part: their columns are out of every softmax and their rows out of
    # the mean. A finite fill (not -inf) keeps an all-masked batch at an attached 0 with 0 gradients.
    logits = logits.masked_fill(~(mask.unsqueeze(0) & mask.unsqueeze(1)), _MASKED_LOGIT)
    ce = F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(
        logits.t(), labels, reduction="none"
    )
    return 0.5 * _masked_mean(ce, mask)
