r"""Multimodal Knowledge Encoder (MKE, CLAMEA Appendix B): the paper's encoders, and only those.

The MKE turns the raw inputs of one knowledge graph into one :math:`d`-dimensional embedding per
modality (:math:`d = 100` in the paper):

* relational :math:`\mathbf{h}_o^r`: :class:`TransE` (Eq. 29-30) with the uniform negatives of
  :func:`corrupt_triples`; the relational encoders of our own (GAT, inductive GAT / GCN, seed
  propagation) live in :mod:`mmea_pyg.nn.structure`;
* visual :math:`\mathbf{h}_o^v` and attribute :math:`\mathbf{h}_o^a`: :class:`ModalityProjection`
  (Eq. 31-32), a linear map of frozen, cached image / sentence features with a learned vector for
  entities that lack the modality (missing modalities are masks, never noise);
* :class:`Tokenizer` turns a :math:`d`-vector into the :math:`T` tokens the attention stack of CLAMEA
  works on (``docs/CLAMEA.md``, "Modality tokens").

Both knowledge graphs go through the same module classes; whether weights are shared is the model's
choice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmea_pyg.losses import transe_margin_loss

__all__ = ["ModalityProjection", "Tokenizer", "TransE", "corrupt_triples"]


def _random_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    """The device random numbers must be drawn on so that ``generator`` can be used."""
    return generator.device if generator is not None else fallback


def corrupt_triples(
    head: Tensor,
    rel: Tensor,
    tail: Tensor,
    num_entities: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Uniform negative sampling of Bordes et al. (2013), one negative per positive (Eq. 30).

    For every triple a fair coin decides whether the head or the tail is replaced; the replacement is
    drawn uniformly from the *other* :math:`N - 1` entities, so each negative differs from its
    positive in exactly one of head / tail. Negatives are not filtered against the known triples
    (the "unif" setting of TransE).

    Args:
        head (torch.Tensor): Head entity ids, shape :math:`(B,)`.
        rel (torch.Tensor): Relation ids, shape :math:`(B,)` (returned unchanged).
        tail (torch.Tensor): Tail entity ids, shape :math:`(B,)`.
        num_entities (int): Number of entities :math:`N` (ids are ``0..N-1``); at least 2.
        generator (torch.Generator, optional): Source of randomness; a seeded generator makes the
            negatives reproducible. Numbers are drawn on the generator's device and moved to
            ``head.device``.

    Returns:
        ``(neg_head, rel, neg_tail)``, each of shape :math:`(B,)`.
    """
    if num_entities < 2:
        raise ValueError(
            f"corrupt_triples needs at least 2 entities to corrupt a triple, got {num_entities}."
        )
    if head.shape != tail.shape or head.shape != rel.shape or head.dim() != 1:
        raise ValueError(
            "corrupt_triples expects 1-d head, rel and tail of equal length, got shapes "
            f"{tuple(head.shape)}, {tuple(rel.shape)}, {tuple(tail.shape)}."
        )
    device = _random_device(generator, head.device)
    n = head.numel()
    corrupt_head = torch.rand(n, generator=generator, device=device).lt(0.5).to(head.device)
    # Uniform over the N - 1 entities other than the original: draw from 0..N-2, skip the original.
    draw = torch.randint(0, num_entities - 1, (n,), generator=generator, device=device).to(head.device)
    original = torch.where(corrupt_head, head, tail)
    replacement = draw + (draw >= original).long()
    neg_head = torch.where(corrupt_head, replacement, head)
    neg_tail = torch.where(corrupt_head, tail, replacement)
    return neg_head, rel, neg_tail


class TransE(nn.Module):
    r"""TransE relational encoder of CLAMEA's MKE (Bordes et al., 2013; Appendix B.1).

    .. math::
        f(h, r, t) = \lVert \bar{\mathbf{h}}_h + \bar{\mathbf{r}} - \bar{\mathbf{h}}_t \rVert_2^2,
        \qquad
        \mathcal{L}_{TransE} = \sum_{\tau \in T^R} \max\bigl(0, \gamma + f(\tau) - f(\tau^-)\bigr),

    where :math:`\bar{\cdot}` denotes an L2-normalised row (as TMEA / MSNEA normalise entity and
    relation embeddings) and :math:`\tau^-` is one uniformly corrupted triple per positive
    (:func:`corrupt_triples`). The entity embedding :math:`\mathbf{h}_o^r` handed to the rest of the
    model is the L2-normalised entity row.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relation types :math:`R`.
        dim (int, optional): Embedding size :math:`d`. (default: :obj:`100`)
        margin (float, optional): Margin :math:`\gamma`. (default: :obj:`1.0`)
        p_norm (int, optional): :obj:`2` scores with the squared L2 distance (Eq. 29); :obj:`1`
            with the L1 distance. (default: :obj:`2`)

    Shapes:
        - **forward:** optional entity ids :math:`(B,)` ->
          entity embeddings :math:`(N, d)` or :math:`(B, d)`
        - **score:** ids :math:`(B,)`, :math:`(B,)`, :math:`(B,)` -> :math:`(B,)`
        - **loss:** edge indices :math:`(2, |\mathcal{E}|)`, edge types :math:`(|\mathcal{E}|,)`
          -> scalar
    """

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        dim: int = 100,
        margin: float = 1.0,
        p_norm: int = 2,
    ) -> None:
        super().__init__()
        if num_entities < 1 or num_relations < 1 or dim < 1:
            raise ValueError(
                "TransE needs num_entities, num_relations and dim >= 1, got "
                f"{num_entities}, {num_relations}, {dim}."
            )
        if p_norm not in (1, 2):
            raise ValueError(f"TransE p_norm must be 1 or 2, got {p_norm}.")
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.dim = dim
        self.margin = margin
        self.p_norm = p_norm
        self.entity = nn.Embedding(num_entities, dim)
        self.relation = nn.Embedding(num_relations, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Xavier-uniform entity and relation rows (scale is irrelevant: rows are normalised)."""
        nn.init.xavier_uniform_(self.entity.weight)
        nn.init.xavier_uniform_(self.relation.weight)

    def forward(self, index: Tensor | None = None) -> Tensor:
        """L2-normalised entity embeddings, all of them or the rows ``index``."""
        weight = self.entity.weight if index is None else self.entity(index)
        return F.normalize(weight, p=2.0, dim=-1)

    def score(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        r"""Distance :math:`f(h, r, t)` of Eq. 29 (lower is more plausible), shape :math:`(B,)`."""
        h = F.normalize(self.entity(head), p=2.0, dim=-1)
        r = F.normalize(self.relation(rel), p=2.0, dim=-1)
        t = F.normalize(self.entity(tail), p=2.0, dim=-1)
        diff = h + r - t
        if self.p_norm == 2:
            return diff.pow(2).sum(dim=-1)
        return diff.abs().sum(dim=-1)

    def sample_triples(
        self,
        num_triples: int,
        batch_size: int = 5000,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Tensor:
        """Ids of ``min(batch_size, num_triples)`` triples drawn without replacement."""
        device = torch.device("cpu") if device is None else device
        if batch_size >= num_triples:
            return torch.arange(num_triples, device=device)
        perm = torch.randperm(num_triples, generator=generator, device=_random_device(generator, device))
        return perm[:batch_size].to(device)

    def loss(
        self,
        edge_index: Tensor,
        edge_type: Tensor,
        batch_size: int = 5000,
        generator: torch.Generator | None = None,
        reduction: str = "sum",
        index: Tensor | None = None,
    ) -> Tensor:
        r"""Margin loss Eq. 30 on a batch of triples, one corrupted triple per positive.

        Args:
            edge_index (torch.Tensor): Relation triples head -> tail, shape :math:`(2, E)`.
            edge_type (torch.Tensor): Relation id of each triple, shape :math:`(E,)`.
            batch_size (int, optional): Number of positive triples drawn without replacement
                (all of them when :math:`E \le` ``batch_size``). (default: :obj:`5000`)
            generator (torch.Generator, optional): Makes batch and negatives reproducible.
            reduction (str, optional): ``'sum'`` (Eq. 30, the paper's and TMEA's) or ``'mean'``.
            index (torch.Tensor, optional): Explicit triple ids :math:`(B,)` to use instead of a
                random batch, e.g. for a trainer that walks an epoch of shuffled batches.

        Returns:
            Scalar loss.
        """
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_type.shape != (edge_index.size(1),):
            raise ValueError(
                "TransE.loss expects edge_index [2, E] and edge_type [E], got "
                f"{tuple(edge_index.shape)} and {tuple(edge_type.shape)}."
            )
        if index is None:
            index = self.sample_triples(edge_index.size(1), batch_size, generator, edge_index.device)
        head, tail, rel = edge_index[0, index], edge_index[1, index], edge_type[index]
        neg_head, neg_rel, neg_tail = corrupt_triples(head, rel, tail, self.num_entities, generator)
        pos = self.score(head, rel, tail)
        neg = self.score(neg_head, neg_rel, neg_tail)
        return transe_margin_loss(pos, neg, margin=self.margin, reduction=reduction)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.num_entities}, {self.num_relations}, dim={self.dim})"


class ModalityProjection(nn.Module):
    r"""Linear projection of a frozen modality feature, Eq. 31 (visual) and Eq. 32 (attribute).

    .. math::
        \mathbf{h}_o = \begin{cases}
            \mathbf{W}\mathbf{x} + \mathbf{b} & \text{if the entity has the modality,} \\
            \mathbf{m} & \text{otherwise,}
        \end{cases}

    where :math:`\mathbf{m}` is a learned "missing" vector shared by all entities that lack the
    modality (like BERT's ``[MASK]`` embedding): a missing modality never becomes random noise. With
    ``in_dim == 0`` (a benchmark without the modality) there is no linear map and every row is
    :math:`\mathbf{m}`. Features of masked-out rows are never read (they may hold NaN).

    With ``hidden > 0`` the linear map becomes a two-layer MLP
    :math:`\mathbf{W}_2\,\mathrm{ReLU}(\mathbf{W}_1\mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2` (MIMEA's
    "MLP encoders").

    Args:
        in_dim (int): Feature size :math:`D` (may be :obj:`0`).
        dim (int, optional): Output size :math:`d`. (default: :obj:`100`)
        hidden (int, optional): Hidden width of the MLP; :obj:`0` for the linear map.
            (default: :obj:`0`)

    Shapes:
        - **input:** features :math:`(N, D)`, optional mask :math:`(N,)` (bool, all True if None)
        - **output:** :math:`(N, d)`
    """

    def __init__(self, in_dim: int, dim: int = 100, hidden: int = 0) -> None:
        super().__init__()
        if in_dim < 0 or dim < 1 or hidden < 0:
            raise ValueError(
                f"ModalityProjection needs in_dim >= 0, dim >= 1 and hidden >= 0, got {in_dim}, {dim}, {hidden}."
            )
        self.in_dim = in_dim
        self.dim = dim
        self.hidden = hidden
        self.lin: nn.Module | None = None
        if in_dim > 0:
            self.lin = nn.Linear(in_dim, dim)
            if hidden:
                self.lin = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.missing = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Default :class:`~torch.nn.Linear` init; missing vector :math:`\sim \mathcal{N}(0, 1/d)`."""
        for module in () if self.lin is None else self.lin.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        nn.init.normal_(self.missing, std=1.0 / math.sqrt(self.dim))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_dim:
            raise ValueError(
                f"ModalityProjection expects features of shape [N, {self.in_dim}], got {tuple(x.shape)}."
            )
        n = x.size(0)
        missing = self.missing.unsqueeze(0).expand(n, self.dim)
        if self.lin is None:
            return missing.clone()
        if mask is None:
            return self.lin(x)
        if mask.shape != (n,):
            raise ValueError(f"ModalityProjection expects a mask of shape [{n}], got {tuple(mask.shape)}.")
        mask = mask.to(torch.bool).unsqueeze(-1)
        # Zero the rows that are not read so that NaN/Inf in them cannot leak into W's gradient.
        projected = self.lin(x.masked_fill(~mask, 0.0))
        return torch.where(mask, projected, missing)

    def __repr__(self) -> str:
        hidden = f", hidden={self.hidden}" if self.hidden else ""
        return f"{self.__class__.__name__}({self.in_dim}, {self.dim}{hidden})"


class Tokenizer(nn.Module):
    r"""Learned map of a :math:`d`-vector to :math:`T` modality tokens of size :math:`d_t = d / T`.

    .. math::
        \mathbf{X} = \operatorname{reshape}_{T \times d_t}(\mathbf{W}\mathbf{h} + \mathbf{b})

    Attention blocks of CLAMEA attend over these tokens inside one entity (``docs/CLAMEA.md``).

    Args:
        dim (int, optional): Input size :math:`d`. (default: :obj:`100`)
        num_tokens (int, optional): Number of tokens :math:`T`; must divide :math:`d`.
            (default: :obj:`4`)
        identity_init (bool, optional): Start at :math:`\mathbf{W} = \mathbf{I}, \mathbf{b} =
            \mathbf{0}` (the tokens are the input, cut into :math:`T` pieces) instead of
            :class:`torch.nn.Linear`'s random start, whose small singular values squash some
            directions of the input before anything is learnt. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(*, d)`
        - **output:** :math:`(*, T, d / T)`
    """

    def __init__(self, dim: int = 100, num_tokens: int = 4, identity_init: bool = False) -> None:
        super().__init__()
        if num_tokens < 1 or dim < 1 or dim % num_tokens != 0:
            raise ValueError(
                f"Tokenizer: num_tokens ({num_tokens}) must be >= 1 and divide dim ({dim}); "
                "choose e.g. dim=100 with num_tokens in {1, 2, 4, 5, 10}."
            )
        self.dim = dim
        self.num_tokens = num_tokens
        self.token_dim = dim // num_tokens
        self.identity_init = identity_init
        self.lin = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.identity_init:
            nn.init.eye_(self.lin.weight)
            nn.init.zeros_(self.lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.size(-1) != self.dim:
            raise ValueError(f"Tokenizer expects last dimension {self.dim}, got shape {tuple(x.shape)}.")
        return self.lin(x).unflatten(-1, (self.num_tokens, self.token_dim))

    @staticmethod
    def flatten(tokens: Tensor) -> Tensor:
        r"""Concatenate the tokens: :math:`(*, T, d_t) \to (*, T \cdot d_t)`."""
        return tokens.flatten(start_dim=-2)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, num_tokens={self.num_tokens})"
