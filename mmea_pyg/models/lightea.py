r"""LightEA (Mao et al., "LightEA: A Scalable, Robust, and Interpretable Entity Alignment Framework via
Three-view Label Propagation", EMNLP 2022 Findings), following its public code's algorithm.

No parameter is trained. Each round:

1. **Labels.** Every known pair gets one random unit vector of width ``ent_dim`` (both of its
   entities get the same one); every other entity starts at 0.
2. **Joined graph.** The two graphs are one graph of :math:`N_1 + N_2` entities with their relations
   kept apart, and every triple :math:`(h, r, t)` also gives the inverse :math:`(t, r^{-1}, h)`. The
   entity view :math:`\mathbf{A}` counts, for each ordered pair, the triples between them, and each
   entity's diagonal its triples twice (as LightEA's ``ent_ent`` does); :math:`\mathbf{R}_{rh}` marks
   the relations leaving an entity, :math:`\mathbf{T}_{tr}` those reaching it.
3. **Propagation** (``depth`` steps, each row L2-normalised):
   :math:`\mathbf{r}' = \mathrm{norm}(\mathbf{R}\mathbf{e})`,
   :math:`\mathbf{e}' = \mathrm{norm}(\mathbf{A}\mathbf{e} + \mathbf{T}\mathbf{r})`; the steps are
   concatenated and normalised, for entities and relations.
4. **Relation view.** The relation features are randomly projected to ``rel_dim`` columns; every
   (head, tail) pair of the graph gets the sum of its relations' projections. Column :math:`j` of that
   weights an adjacency :math:`\mathbf{A}_j`, which propagates its own random projection of the entity
   features to ``mini_dim`` columns: the features are
   :math:`[\mathbf{A}_1 \mathbf{E}\mathbf{P}_1 \,\|\, \dots \,\|\, \mathbf{A}_{rel\_dim}
   \mathbf{E}\mathbf{P}_{rel\_dim}]`, L2-normalised, of width ``rel_dim * mini_dim``.
5. **Bootstrapping** (between rounds): the sparse Sinkhorn (:func:`mmea_pyg.similarity.sparse_sinkhorn`,
   ``top_k`` candidates, ``sinkhorn_iters`` iterations, temperature ``tau``) of the candidates still in
   the pool; a query whose best probability exceeds ``threshold`` becomes a pseudo pair with that
   candidate, and both leave the pool. The normalisation runs both ways, so such pairs are one-to-one.

Differences from the notebook, each kept deliberately:

* **The pool.** The notebook bootstraps among the *test* entities; here the pool is every entity
  without a known pair (:func:`mmea_pyg.data.splits.unpaired_entities`), so nothing looks at
  the test links (LightEA's own protocol is :func:`lightea_protocol`, for reproducing its figures).
* **Random numbers.** A :class:`torch.Generator` seeded with ``train.seed`` draws the codes and
  projections afresh for every set of known pairs, so the embedding is a function of the seed and the pairs
  and a checkpoint only stores the pairs (the notebook draws from TensorFlow's global generator).
* **Memory.** The heads are projected ``head_chunk`` at a time and summed with ``index_add_`` instead of
  one sparse matrix per head; the top-k search is exact and blocked (the notebook's faiss ``Flat``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg.data.base import SIDES
from mmea_pyg.data.splits import unpaired_entities
from mmea_pyg.errors import MMEAError
from mmea_pyg.models.base import AlignmentModel, register_model
from mmea_pyg.similarity import sinkhorn_best, sinkhorn_top_k

__all__ = [
    "LightEA",
    "LightEAGraph",
    "bootstrap_pairs",
    "label_views",
    "lightea_features",
    "lightea_protocol",
]


def _csr(rows: Tensor, cols: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """A sparse CSR matrix from COO entries (duplicates summed)."""
    import warnings

    matrix = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values, size, check_invariants=True
    ).coalesce()
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return matrix.to_sparse_csr()


def _unique_pairs(a: Tensor, b: Tensor, width: int) -> tuple[Tensor, Tensor]:
    key = torch.unique(a * width + b)
    return key // width, key % width


@dataclass
class LightEAGraph:
    """The joined graph of both KGs with inverse relations (LightEA's ``load_graph``).

    Attributes:
        num_entities: :math:`N = N_1 + N_2` (target entity ``j`` is row ``N_1 + j``).
        num_relations: :math:`2 (R_1 + R_2)`: relation ``r`` is column ``2r``, its inverse ``2r + 1``.
        ent_ent: :math:`(N, N)` CSR, triples between each ordered pair, degree terms on the diagonal.
        rel_ent: :math:`(2R, N)` CSR, 1 where relation ``r`` leaves entity ``h``.
        ent_rel: :math:`(N, 2R)` CSR, 1 where relation ``r`` reaches entity ``t``.
        tuples: :math:`(2, T)` the distinct (head, tail) pairs of the triples, sorted.
        tuple_rel: :math:`(T, 2R)` CSR, 1 where the pair's triples hold relation ``r``.
        offset: :math:`N_1`.
    """

    num_entities: int
    num_relations: int
    ent_ent: Tensor
    rel_ent: Tensor
    ent_rel: Tensor
    tuples: Tensor
    tuple_rel: Tensor
    offset: int

    @classmethod
    def from_data(cls, data: HeteroData) -> LightEAGraph:
        heads, tails, rels = [], [], []
        ent_offset = rel_offset = 0
        for side in SIDES:
            edges = data[side, "relation", side]
            heads.append(edges.edge_index[0].cpu() + ent_offset)
            tails.append(edges.edge_index[1].cpu() + ent_offset)
            rels.append(edges.edge_type.cpu() + rel_offset)
            ent_offset += data[side].num_nodes
            rel_offset += max(len(getattr(edges, "relation_names", ())), int(edges.edge_type.max()) + 1)
        h, t, r = torch.cat(heads), torch.cat(tails), torch.cat(rels)
        n, num_rel = ent_offset, 2 * rel_offset
        # Every triple and its inverse, once each, sorted by (head, tail, relation).
        triples = torch.unique(
            torch.cat([torch.stack([h, t, 2 * r]), torch.stack([t, h, 2 * r + 1])], dim=1), dim=1
        )
        h, t, r = triples
        loops = torch.arange(n)
        ent_ent = _csr(
            torch.cat([h, t, h, loops]),
            torch.cat([h, t, t, loops]),
            torch.cat([torch.ones(3 * h.numel()), torch.zeros(n)]),
            (n, n),
        )
        r_h, h_r = _unique_pairs(r, h, n)
        rel_ent = _csr(r_h, h_r, torch.ones(r_h.numel()), (num_rel, n))
        t_r, r_t = _unique_pairs(t, r, num_rel)
        ent_rel = _csr(t_r, r_t, torch.ones(t_r.numel()), (n, num_rel))
        pair_key, tuple_of = torch.unique_consecutive(h * n + t, return_inverse=True)
        tuples = torch.stack([pair_key // n, pair_key % n])
        tuple_rel = _csr(tuple_of, r, torch.ones(r.numel()), (tuples.size(1), num_rel))
        return cls(n, num_rel, ent_ent, rel_ent, ent_rel, tuples, tuple_rel, data["source"].num_nodes)

    def joined(self, pairs: Tensor) -> Tensor:
        """(source, target) pairs :math:`(2, K)` as rows of the joined graph."""
        return torch.stack([pairs[0].cpu(), pairs[1].cpu() + self.offset])


def _random_projection(x: Tensor, out_dim: int, generator: torch.Generator) -> Tensor:
    """``x @ P`` with ``P`` :math:`(D, out)` a Gaussian matrix whose rows are unit vectors."""
    proj = F.normalize(torch.randn(x.size(1), out_dim, generator=generator), dim=-1)
    return x @ proj


@torch.no_grad()
def label_views(
    graph: LightEAGraph, seeds: Tensor, *, ent_dim: int = 1024, depth: int = 2, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    r"""LightEA's propagated labels (steps 1 and 3 of the module docstring): the entity features
    :math:`(N, (depth + 1) \cdot ent\_dim)` and relation features :math:`(2R, (depth + 1) \cdot
    ent\_dim)`, each the L2-normalised concatenation of its steps. ``seeds``: joined rows :math:`(2, K)`;
    the codes are drawn from ``generator``."""
    codes = F.normalize(torch.randn(seeds.size(1), ent_dim, generator=generator), dim=-1)
    ent = torch.zeros(graph.num_entities, ent_dim)
    ent[seeds[0]], ent[seeds[1]] = codes, codes
    rel = torch.zeros(graph.num_relations, ent_dim)
    ents, rels = [ent], [rel]
    for _ in range(depth):
        new_rel = F.normalize(graph.rel_ent @ ent, dim=-1)
        ent = F.normalize(graph.ent_ent @ ent + graph.ent_rel @ rel, dim=-1)
        rel = new_rel
        ents.append(ent)
        rels.append(rel)
    return F.normalize(torch.cat(ents, dim=1), dim=-1), F.normalize(torch.cat(rels, dim=1), dim=-1)


@torch.no_grad()
def lightea_features(
    graph: LightEAGraph,
    seeds: Tensor,
    *,
    ent_dim: int = 1024,
    depth: int = 2,
    rel_dim: int = 512,
    mini_dim: int = 16,
    generator: torch.Generator | None = None,
    head_chunk: int = 32,
) -> Tensor:
    """LightEA's features of every entity of the joined graph (LightEA's ``get_features``).

    Args:
        graph: The joined graph.
        seeds: Known pairs :math:`(2, K)` as joined rows (:meth:`LightEAGraph.joined`).
        generator: Random numbers of the codes and projections (CPU).

    Returns:
        :math:`(N, rel\\_dim \\cdot mini\\_dim)`, rows of unit norm (zero for an entity with nothing
        to propagate).
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    n = graph.num_entities
    ent, rel = label_views(graph, seeds, ent_dim=ent_dim, depth=depth, generator=generator)
    rel = _random_projection(rel, rel_dim, generator)
    weight = graph.tuple_rel @ rel  # (T, rel_dim): each (head, tail) pair's summed relation projections
    heads, tails = graph.tuples
    out = torch.zeros(n, rel_dim * mini_dim)
    for start in range(0, rel_dim, head_chunk):
        count = min(head_chunk, rel_dim - start)
        # One projection per head, each (D, mini_dim) with unit rows, as the notebook draws them.
        proj = torch.cat(
            [
                F.normalize(torch.randn(ent.size(1), mini_dim, generator=generator), dim=-1)
                for _ in range(count)
            ],
            dim=1,
        )
        projected = ent @ proj  # (N, count * mini_dim)
        w = weight[:, start : start + count].repeat_interleave(mini_dim, dim=1)
        block = out[:, start * mini_dim : (start + count) * mini_dim]
        block.index_add_(0, heads, w * projected[tails])
    return F.normalize(out, dim=-1)


@torch.no_grad()
def bootstrap_pairs(
    query: Tensor,
    cand: Tensor,
    *,
    top_k: int = 500,
    iters: int = 15,
    tau: float = 0.02,
    threshold: float = 0.5,
    chunk_size: int = 2048,
) -> Tensor:
    """LightEA's bootstrapping step: rows ``(query_row, cand_row)`` :math:`(2, M)` whose best sparse
    Sinkhorn probability exceeds ``threshold``. Query :math:`(Q, D)`, candidates :math:`(C, D)`."""
    if query.size(0) == 0 or cand.size(0) == 0:
        return torch.empty(2, 0, dtype=torch.long)
    prob, best = sinkhorn_best(query, cand, top_k, iters=iters, tau=tau, chunk_size=chunk_size)
    rows = (prob > threshold).nonzero().view(-1)
    return torch.stack([rows, best[rows]])


def _features_with(graph: LightEAGraph, pairs: Tensor, s, generator: torch.Generator) -> Tensor:
    """:func:`lightea_features` of the (source, target) ``pairs`` with the settings ``s``
    (:class:`~mmea_pyg.config.LightEAConfig`)."""
    return lightea_features(
        graph,
        graph.joined(pairs),
        ent_dim=s.ent_dim,
        depth=s.depth,
        rel_dim=s.relation_dim,
        mini_dim=s.mini_dim,
        generator=generator,
        head_chunk=s.head_chunk,
    )


def _bootstrap_with(query: Tensor, cand: Tensor, s, chunk_size: int = 2048) -> Tensor:
    """:func:`bootstrap_pairs` with the settings ``s`` (:class:`~mmea_pyg.config.LightEAConfig`)."""
    return bootstrap_pairs(
        query,
        cand,
        top_k=s.top_k,
        iters=s.sinkhorn_iters,
        tau=s.tau,
        threshold=s.threshold,
        chunk_size=chunk_size,
    )


@register_model("lightea")
class LightEA(AlignmentModel):
    """LightEA as a model of the toolkit: :meth:`fit` computes its features (no gradient step),
    :meth:`embed` returns them. See the module docstring for the algorithm.

    The known pairs (training links and the pseudo pairs of the last bootstrapping) are a buffer, so
    checkpoints carry them and the features are rebuilt from them on load.

    Shapes:
        - :meth:`embed`: ``data``, ``side``, optional entity indices :math:`(B,)` :math:`\\to (B, D)`,
          :math:`D` = ``rel_dim * mini_dim``.
    """

    trainable = False
    #: The pairs' count is the checkpoint's (checked for shape ``(2, K)`` and range on load).
    variable_buffers = ("seeds", "pseudo")

    def __init__(self, graph: LightEAGraph, config, seed: int = 0) -> None:
        super().__init__()
        self.graph = graph
        self.settings = config
        self.seed = seed
        self.register_buffer("seeds", torch.empty(2, 0, dtype=torch.long))
        self.register_buffer("pseudo", torch.empty(2, 0, dtype=torch.long))
        self._features: Tensor | None = None
        self._features_key: tuple | None = None

    @classmethod
    def from_config(cls, config, data: HeteroData) -> LightEA:
        if not all(data[side, "relation", side].edge_index.numel() for side in SIDES):
            raise MMEAError("LightEA aligns from relation triples, and one graph has none")
        return cls(LightEAGraph.from_data(data), config.lightea, seed=config.train.seed)

    def reset_parameters(self) -> None:
        """Forget the known pairs (there are no parameters)."""
        self.seeds = self.seeds.new_empty(2, 0)
        self.pseudo = self.pseudo.new_empty(2, 0)
        self._features = None

    @property
    def output_dim(self) -> int:
        return self.settings.relation_dim * self.settings.mini_dim

    def _key(self) -> tuple:
        return (
            self.seeds.data_ptr(),
            tuple(self.seeds.shape),
            self.pseudo.data_ptr(),
            tuple(self.pseudo.shape),
        )

    def _compute(self, pairs: Tensor) -> Tensor:
        """The features from ``pairs``: a function of the pairs and ``train.seed`` alone (a fresh
        generator each time), so that a checkpoint's pairs give back its embedding."""
        return _features_with(self.graph, pairs, self.settings, torch.Generator().manual_seed(self.seed))

    def features(self) -> Tensor:
        """Features of the joined graph from the stored pairs :math:`(N_1 + N_2, D)`, cached."""
        if self._features is None or self._features_key != self._key():
            self._features = self._compute(torch.cat([self.seeds, self.pseudo], dim=1).cpu())
            self._features_key = self._key()
        return self._features

    @torch.no_grad()
    def fit(
        self,
        train_pairs: Tensor,
        *,
        chunk_size: int = 2048,
        echo: Callable[[str], None] | None = None,
    ) -> list[dict]:
        """All rounds of LightEA from the training pairs :math:`(2, K)`: features, then (between
        rounds) bootstrapping among the entities without a known pair. Returns one record per round
        (known pairs; pseudo pairs added and sources left in the pool after it)."""
        s = self.settings
        self.seeds = train_pairs.detach().cpu().clone()
        pseudo = torch.empty(2, 0, dtype=torch.long)
        history: list[dict] = []
        n1 = self.graph.offset
        for round_index in range(s.rounds):
            pairs = torch.cat([self.seeds, pseudo], dim=1)
            feats = self._compute(pairs)
            record = {"round": round_index + 1, "known": int(pairs.size(1))}
            history.append(record)
            if round_index == s.rounds - 1:
                break
            queries, cands = unpaired_entities(n1, self.graph.num_entities - n1, pairs)
            found = _bootstrap_with(feats[queries], feats[cands + n1], s, chunk_size)
            new = torch.stack([queries[found[0]], cands[found[1]]])
            record.update(new_pairs=int(new.size(1)), pool=int(queries.numel() - new.size(1)))
            if echo is not None:
                echo(
                    f"LightEA round {round_index + 1}: {new.size(1):,} pseudo pairs ({pseudo.size(1) + new.size(1):,} "
                    f"in all; {queries.numel() - new.size(1):,} sources left in the pool)"
                )
            if new.size(1) == 0:
                break
            pseudo = torch.cat([pseudo, new], dim=1)
        self.pseudo = pseudo
        self._features, self._features_key = feats, self._key()
        return history

    # ------------------------------------------------------------------ the AlignmentModel interface
    def structure(self, data: HeteroData, side: str, hidden: Tensor | None = None) -> Tensor:
        feats = self.features()
        part = feats[: self.graph.offset] if side == "source" else feats[self.graph.offset :]
        return part.to(self.seeds.device)

    def encode(self, data: HeteroData, side: str, index: Tensor, structure: Tensor) -> dict[str, Tensor]:
        return {"M": structure[index]}

    def training_losses(self, data, pairs, pseudo_pairs, generator):  # pragma: no cover - not trained
        raise MMEAError("LightEA has no training step; the trainer calls LightEA.fit")

    def update_pseudo_seeds(self, pairs: Tensor) -> None:
        """LightEA bootstraps its own pairs (:meth:`fit`)."""

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # The buffers' sizes depend on the pairs found: resize them to the stored ones first.
        sizes = (self.graph.offset, self.graph.num_entities - self.graph.offset)
        for name in ("seeds", "pseudo"):
            if name in state_dict:
                pairs = state_dict[name]
                bad = pairs.dim() != 2 or pairs.size(0) != 2 or pairs.dtype != torch.long
                if not bad and pairs.numel():
                    bad = bool(pairs.min() < 0) or any(int(pairs[i].max()) >= sizes[i] for i in range(2))
                if bad:
                    raise RuntimeError(f"{name}: not (2, K) entity pairs of these graphs")
                setattr(self, name, torch.empty_like(pairs))  # resized; the ordinary load copies into it
        self._features = None
        return super().load_state_dict(state_dict, strict, assign)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"{self.__class__.__name__}(entities={self.graph.num_entities:,}, relations={self.graph.num_relations:,}, "
            f"ent_dim={s.ent_dim}, rel_dim={s.relation_dim}, mini_dim={s.mini_dim}, rounds={s.rounds})"
        )


@torch.no_grad()
def lightea_protocol(
    data: HeteroData,
    train_pairs: Tensor,
    test_pairs: Tensor,
    config,
    *,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
) -> list[dict[str, float]]:
    """LightEA's own protocol, as its notebook runs it, for reproducing its published figures: each
    round, the test sources are ranked among the distinct test targets by the sparse Sinkhorn of
    their ``top_k`` candidates (a gold target outside counts as a miss; ties by list position), and
    bootstrapping draws from the test entities only. Returns Hits@1 / Hits@10 / MRR per round.

    This reads the test links to choose the pool: it is a reproduction, not mmea-pyg's protocol.
    """
    s = config
    graph = LightEAGraph.from_data(data)
    pairs = train_pairs.cpu()
    test = test_pairs.cpu()
    pool_x = list(dict.fromkeys(test[0].tolist()))
    pool_y = list(dict.fromkeys(test[1].tolist()))
    right = torch.unique(test[1])
    out = []
    for round_index in range(s.rounds):
        feats = _features_with(graph, pairs, s, torch.Generator().manual_seed(seed * 1009 + round_index))
        probs, index = sinkhorn_top_k(
            feats[test[0]], feats[right + graph.offset], s.top_k, iters=s.sinkhorn_iters, tau=s.tau
        )
        order = torch.argsort(probs, dim=1, descending=True, stable=True)
        ranked = index.gather(1, order)
        gold = torch.searchsorted(right, test[1])
        hit = ranked == gold.unsqueeze(1)
        position = torch.where(hit.any(1), hit.float().argmax(1), torch.full_like(gold, -1))
        found = position >= 0
        metrics = {
            "round": round_index + 1,
            "hits@1": float((position == 0).float().mean()),
            "hits@10": float((found & (position < 10)).float().mean()),
            "mrr": float(torch.where(found, 1.0 / (position + 1).float(), torch.zeros(1)).mean()),
            "known": int(pairs.size(1)),
        }
        out.append(metrics)
        if echo is not None:
            echo(f"LightEA protocol, round {round_index + 1}: {metrics}")
        if round_index == s.rounds - 1 or not pool_x or not pool_y:
            break
        x, y = torch.tensor(pool_x, dtype=torch.long), torch.tensor(pool_y, dtype=torch.long)
        found_pairs = _bootstrap_with(feats[x], feats[y + graph.offset], s)
        new = torch.stack([x[found_pairs[0]], y[found_pairs[1]]])
        if new.size(1) == 0:
            break
        taken_x, taken_y = set(new[0].tolist()), set(new[1].tolist())
        pool_x = [e for e in pool_x if e not in taken_x]
        pool_y = [e for e in pool_y if e not in taken_y]
        pairs = torch.cat([pairs, new], dim=1)
    return out
