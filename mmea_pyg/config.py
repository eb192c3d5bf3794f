"""Run configuration as dataclasses: loadable from YAML, overridable from the command line, saved with
every checkpoint and result (seed included), so that any figure can be traced to the exact settings.

Defaults are the paper's hyperparameters (CLAMEA App. F) where it gives them, and the choices of
``docs/CLAMEA.md`` where it does not.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmea_pyg.errors import ConfigError

#: Table 2 of the paper: every ablation row is a named switch.
ABLATIONS = {
    "w/o R": "drop the relational modality from the final concatenation and the losses",
    "w/o V": "drop the visual modality from the final concatenation and the losses",
    "w/o A": "drop the attribute modality from the final concatenation and the losses",
    "w/o MFE": "no modal feature enhancement (self-attention over tokens)",
    "w/o DMAFF": "no dynamic modal attention flow fusion: fused pairs are plain means of the two modalities",
    "w/o DMMG": "no missing-modality generation: missing modalities keep their learned mask embedding",
    "w/o CMAE": "no cross-modal association extraction (and no orthogonality loss)",
    "w/o IT": "no iterative (mutual nearest neighbour) pseudo seeds",
    "w/o MAF": "DMAFF without the inter/intra modal attention flows (plain Dsum of the inputs)",
    "w/o L_m": "no latent alignment loss L_m",
    "w/o L_s": "no orthogonality loss L_s",
    "w/o G": "DMAFF gate G set to 0",
}


def normalize_ablation(name: str) -> str:
    """Map user spellings (``wo_v``, ``w/o v``, ``without-DMMG``, ``w/o Lm``) to the canonical Table 2 name."""
    key = name.strip().lower().replace("without", "w/o").replace("wo_", "w/o ").replace("wo-", "w/o ")
    key = key.replace("w/o_", "w/o ").replace("w/o-", "w/o ").replace("l_", "l").replace(" ", "")
    for canonical in ABLATIONS:
        if canonical.lower().replace("l_", "l").replace(" ", "") == key:
            return canonical
    raise ConfigError(f"unknown ablation {name!r}; choose from: {', '.join(ABLATIONS)}")


def ablation_slug(ablations) -> str:
    """File-name suffix of a run with these ablations, in the given order: ``["w/o V", "w/o L_m"]`` ->
    ``"_wo-V_wo-Lm"`` (empty without ablations)."""
    return "".join("_" + a.replace("w/o ", "wo-").replace("_", "") for a in ablations)


@dataclass
class DataConfig:
    """Which benchmark and split."""

    #: A registered name (``fb15k-db15k``, ``dbp15k-zh-en``, ``srprs-en-de``, ...) or a graph-pair folder
    #: (see :func:`mmea_pyg.data.open_dataset`).
    dataset: str = "fb15k-db15k"
    #: Data root (``None``: ``MMEA_DATA`` or ``./datasets``).
    root: str | None = None
    #: Split ratio, read by the dataset (``None``: the dataset's default, filled in by
    #: :func:`mmea_pyg.pipeline.make_config`). MMKG benchmarks: the fraction of the seed pairs used for
    #: training (default 0.2). Graph pairs (:class:`~mmea_pyg.data.graph_pair.GraphPairDataset`): the
    #: fraction known to the model, training + validation (default 0.3: 20% train, 10% valid, 70% test);
    #: layouts that ship a split ignore it.
    ratio: float | None = None
    #: Fraction of all seed pairs used for validation.
    valid_ratio: float = 0.1
    #: Seed of the split (``None``: the run seed).
    split_seed: int | None = None
    #: Train on the validation links too, leaving no validation split: the refit that `mmea align`
    #: runs after the schedule was chosen on validation (:func:`mmea_pyg.data.splits.with_valid_in_train`).
    #: Saved with the refit's checkpoint, so that reloading it rebuilds the same split.
    valid_in_train: bool = False
    #: Text encoder for the attribute sentences (``None``: the packaged all-MiniLM-L6-v2).
    text_model: str | None = None
    #: Mirror of the raw files (``None``: ``MMEA_MIRROR`` for MMKG, ``MMEA_EA_MIRROR`` for the
    #: entity-alignment benchmarks).
    mirror: str | None = None
    #: Layout of a graph-pair folder: ``auto`` (detected), ``openea``, ``jape``, ``meaformer``, ``plain``
    #: or ``contea`` (:mod:`mmea_pyg.data.formats`); registered datasets know their own.
    format: str = "auto"
    #: OpenEA fold (``721_5fold/<fold>/``); only for OpenEA folders.
    fold: int = 1
    #: ContEA snapshot (0 = base, K = base + batches 1..K; ``None``: the base); only for ContEA folders.
    snapshot: int | None = None
    #: Allow a MEAformer ``*_id_img_feature_dict.pkl`` to be unpickled. Unpickling can run code: set it
    #: only for files from a source you trust (the ``.npz`` form needs no trust).
    trust_pickle: bool = False


@dataclass
class ModelConfig:
    """Architecture (CLAMEA App. F and docs/CLAMEA.md)."""

    name: str = "clamea"
    #: Dimension d of every modality embedding.
    dim: int = 100
    #: Tokens T per modality embedding (d must be divisible by T).
    num_tokens: int = 4
    #: Relational encoder: ``transe`` (the paper), ``gat`` (free entity embeddings), ``gat-attr`` /
    #: ``gcn-attr`` (inductive GAT / GCN over the attribute features) or ``propagation`` (learned
    #: seed-pair codes propagated over the relation graph; the validated presets).
    structure: str = "transe"
    #: Attention heads of MFE, DMAFF and CMAE.
    heads: int = 2
    #: Heads N_h of the Dsum modality weights (App. C).
    dsum_heads: int = 5
    #: Latent size of the VAEs.
    latent_dim: int = 64
    #: TransE margin gamma.
    transe_margin: float = 1.0
    #: GAT layers when ``structure`` is ``gat`` or ``gat-attr``.
    gat_layers: int = 2
    #: Seed anchors (inductive encoders; needed by ``propagation``): both entities of a training seed pair get the
    #: same learned code at the encoder's input, so that message passing carries seed identity.
    anchors: bool = False
    #: With ``anchors``: ``learned`` codes of width ``dim`` added at the encoder's input, or
    #: ``propagated``: fixed random codes of width ``anchor_dim`` propagated ``anchor_hops`` steps over
    #: the relation graph (LightEA's entity view), then projected to ``dim``. With
    #: ``structure == "propagation"`` the learned codes are ``anchor_dim`` wide and propagated
    #: ``anchor_hops`` steps by the encoder itself.
    anchor_features: str = "learned"
    anchor_dim: int = 512
    anchor_hops: int = 2
    #: With ``anchors``: pseudo seeds of the iterative strategy become anchors too (until replaced).
    anchor_pseudo: bool = False
    #: With ``structure == "propagation"``: weight of an anchor's own code in its embedding (LightEA's
    #: layer-0 label; needs ``anchor_dim == dim``). 0: an entity is described by its neighbourhood
    #: alone, so structural twins tie; see :class:`~mmea_pyg.nn.structure.SeedPropagationEncoder`.
    anchor_self: float = 0.0
    #: Relation-type features (inductive encoders only): each entity's mean direction-aware
    #: relation-type embedding (one table per KG) is added at the encoder's input.
    relation_context: bool = False
    #: With ``structure == "propagation"``: every hop reflects each neighbour's code by its edge's
    #: relation and direction (:class:`~mmea_pyg.nn.structure.RelationReflection`, one table per KG)
    #: instead of the plain mean over the undirected graph.
    relation_reflection: bool = False
    #: With ``structure == "propagation"``: width of LightEA's relation view over the seed codes (each
    #: entity sums, over its edges, the product of the relation's features, taken from the codes of the
    #: entities it leaves, and the neighbour's codes; :class:`~mmea_pyg.nn.relation_view.RelationView`),
    #: an input of the read-out. 0: off.
    relation_view: int = 0
    #: CLAMEA's DMMG: reconstruct detached embeddings, so that L_vae trains the VAEs only and does not
    #: pull the modality embeddings towards what a VAE reconstructs easily (the paper trains jointly).
    detach_vae_targets: bool = False
    #: CLAMEA's CMAE: the query of MH_xy(h^y, h^x) comes from the ``source`` h^y (multi-head attention's
    #: argument order; the association stays in h^x's values, as Eq. 25 reads) or the ``target`` h^x.
    cmae_query: str = "source"
    #: CLAMEA's stack starts as the identity on the encoder's embeddings: the tokenizers at W = I and
    #: the output projections of MFE's and CMAE's attention blocks at zero (the ``zero_init_residual`` of
    #: torchvision's ResNets), so that random projections and attention do not scramble the embeddings
    #: before anything is learnt. The paper leaves the initialisation open; False: PyTorch's defaults
    #: (Xavier for the attention projections).
    identity_init: bool = False
    #: Entropic regularisation of MIMEA's optimal-transport plan.
    ot_reg: float = 0.05
    #: Sinkhorn iterations of MIMEA's plan per modality and step; its training time grows as
    #: ``ot_max_iter * B^2`` for a batch of ``B`` pairs (``train.pair_batch_size``).
    ot_max_iter: int = 100
    #: Table 2 ablation switches, e.g. ``["w/o V"]``.
    ablations: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    """Optimisation and the iterative strategy."""

    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    #: Relation triples per TransE step (per KG).
    transe_batch_size: int = 5000
    #: Seed pairs per alignment step.
    pair_batch_size: int = 1024
    #: TransE margin loss over a batch: ``sum`` (Eq. 30, TMEA) or ``mean``.
    transe_reduction: str = "sum"
    #: Steps per epoch (``0``: one pass over the training pairs).
    steps_per_epoch: int = 0
    #: Contrastive loss: ``msnea`` (Eq. 35 as MSNEA computes it) or ``infonce``.
    contrastive: str = "msnea"
    cl_margin: float = 2.0
    temperature: float = 0.1
    #: With ``model.anchors``: fraction of a step's seed pairs whose anchor codes are hidden; the
    #: alignment loss is computed on those pairs, which must be aligned from their context.
    anchor_holdout: float = 0.5
    alpha: float = 0.01
    beta: float = 0.01
    #: MIMEA: weights of the optimal-transport modal alignment and of the Beta KL terms.
    ot_weight: float = 1.0
    kl_weight: float = 0.01
    #: Weight of the pseudo-seed alignment loss (TMEA: 0.1).
    pseudo_weight: float = 0.1
    #: Epochs at which mutual nearest neighbours become pseudo seeds (empty: every ``iterative_every``).
    iterative_epochs: list[int] = field(default_factory=list)
    iterative_every: int = 20
    iterative_start: int = 20
    #: Mutual-nearest-neighbour passes of one pseudo-seed round (at most): each further pass pairs,
    #: among the entities the passes before it left unpaired, those whose best candidates tie (the
    #: other member of a group of structural twins); 1: one pass, MRAEA's mutual nearest neighbours.
    #: See :func:`~mmea_pyg.training.iterative.propose_pseudo_seeds`.
    pseudo_bootstrap: int = 1
    #: Nearest-neighbour search of the pseudo seeds (mutual nearest neighbours among all unaligned
    #: entities): ``torch`` (exact blocked products), ``faiss`` (exact index), ``faiss-hnsw``
    #: (approximate: near-linear in the entities, may miss a mutual pair) or ``auto`` (faiss's exact
    #: index on large graphs when installed); see :func:`mmea_pyg.similarity.top_k_search`.
    pseudo_search: str = "torch"
    #: Pseudo seeds by sparse Sinkhorn (LightEA's bootstrapping, bidirectional): when > 0, a round's first
    #: pass pairs entities that are each other's best candidate after Sinkhorn normalisation over their
    #: ``pseudo_top_k`` best cosines, both with a probability above this value; 0: mutual nearest
    #: neighbours on cosine. ``pseudo_tau`` is the temperature of one modality block's cosine: h^M
    #: concatenates B normalised blocks, its cosine is their mean, so the Sinkhorn runs at
    #: ``pseudo_tau / B``. See :func:`~mmea_pyg.training.iterative.propose_pseudo_seeds`.
    pseudo_sinkhorn: float = 0.0
    pseudo_tau: float = 0.05
    pseudo_top_k: int = 50
    eval_every: int = 5
    #: Stop after this many evaluations without a better validation MRR (0: never).
    patience: int = 0
    grad_clip: float = 0.0
    device: str = "auto"
    seed: int = 0


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    csls_k: int = 10
    chunk_size: int = 2048
    #: Nearest-neighbour search of alignment (``mmea align --search``): ``auto`` (faiss's exact index on
    #: large graphs when faiss is installed, else the blocked product), ``torch``, ``faiss`` or
    #: ``faiss-hnsw`` (approximate; its recall against exact is measured and written in metrics.json).
    search: str = "auto"
    #: The "+ propagation" add-on (``mmea eval --propagation``, not part of any model): LightEA's seed
    #: labels (codes of width ``propagation_dim``, ``propagation_hops`` steps, block norm
    #: ``propagation_weight``) appended to the model's embedding, re-anchored ``propagation_rounds`` times
    #: by mutual nearest neighbours (:class:`mmea_pyg.addons.propagation.LightEAPropagation`).
    propagation_dim: int = 512
    propagation_hops: int = 2
    propagation_weight: float = 2.0
    propagation_rounds: int = 3


@dataclass
class LightEAConfig:
    """LightEA (``--model lightea``, :mod:`mmea_pyg.models.lightea`): the settings of its public
    notebook (Mao et al., EMNLP 2022 Findings); nothing here is trained."""

    #: Width of the random seed-pair codes (the notebook's ``ent_dim``).
    ent_dim: int = 1024
    #: Propagation steps over the joined graph (``depth``).
    depth: int = 2
    #: Width of the projected relation features, one "head" each (``rel_dim``; 0: ``ent_dim // 2``, the
    #: notebook's cross-lingual setting; it uses ``ent_dim // 3`` for English cross-KG pairs).
    rel_dim: int = 0
    #: Width of each head's projection of the entity features (``mini_dim``).
    mini_dim: int = 16
    #: Candidates per query kept for the sparse Sinkhorn (``top_k``).
    top_k: int = 500
    #: Sinkhorn iterations and temperature.
    sinkhorn_iters: int = 15
    tau: float = 0.02
    #: Rounds of features; between two rounds, bootstrapping adds pseudo pairs.
    rounds: int = 3
    #: A query whose best Sinkhorn probability exceeds this becomes a pseudo pair with it.
    threshold: float = 0.5
    #: Heads projected and propagated at a time (memory ~ triples x chunk x mini_dim floats).
    head_chunk: int = 32

    @property
    def relation_dim(self) -> int:
        return self.rel_dim or self.ent_dim // 2


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lightea: LightEAConfig = field(default_factory=LightEAConfig)
    #: Output folder of the run (checkpoints, metrics, config).
    out: str = "runs/latest"

    # ------------------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> Config:
        return _build(cls, values, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        """Load a YAML file, or a preset of :mod:`mmea_pyg.presets` by name (e.g. ``"paper"``)."""
        from mmea_pyg.presets import preset_names, preset_path

        path = Path(path)
        if not path.exists() and path.suffix == "" and preset_path(str(path)) is not None:
            path = preset_path(str(path))
        elif not path.exists() and path.suffix == "":
            raise ConfigError(
                f"config {str(path)!r} is neither a file nor a preset; presets: {', '.join(preset_names())}"
            )
        values = _read_yaml(path)
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, eval)")
        return cls.from_dict(values, source=str(path))

    @classmethod
    def recommended(cls, model: str = "clamea") -> Config:
        """The best configuration validated for ``model`` (its preset in :mod:`mmea_pyg.presets`):
        what ``mmea train`` runs without ``--config``. The dataclass defaults are the paper's
        hyperparameters, the ``paper`` preset."""
        from mmea_pyg.presets import preset_path

        path = preset_path(model.lower())
        if path is None:
            raise ConfigError(f"unknown model {model!r}; known models: clamea, lightea, mimea, ricea")
        return cls.load(path)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as YAML, atomically (:func:`mmea_pyg.io.atomic_write_text`)."""
        from mmea_pyg.io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    def override(self, assignments: list[str]) -> Config:
        """Apply ``section.key=value`` assignments (values parsed as YAML: ``0.5``, ``[1, 2]``, ``true``)."""
        parsed: dict[str, Any] = {}
        for assignment in assignments:
            if "=" not in assignment:
                raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.epochs=50")
            key, raw = assignment.split("=", 1)
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"--set {assignment!r}: cannot parse value {raw!r}: {exc}") from exc
            parsed.pop(key.strip(), None)  # the last assignment of a key wins, in its place
            parsed[key.strip()] = value
        return self.with_values(parsed, source="--set")

    def with_values(self, values: Mapping[str, Any], source: str = "the arguments") -> Config:
        """A copy with each ``section.key`` of ``values`` set to its value *as given*, validated like any
        config. Nothing is parsed: a dataset folder named ``2024``, ``on`` or ``null`` stays that string
        (what the library and the CLI pass their arguments through; ``--set`` parses YAML first)."""
        tree = self.to_dict()
        for key, value in values.items():
            parts = key.split(".")
            node = tree
            for part in parts[:-1]:
                if not isinstance(node, dict) or part not in node:
                    raise ConfigError(f"{source}: unknown key {key!r}; {_known_keys(self)}")
                node = node[part]
            if not isinstance(node, dict) or parts[-1] not in node:
                raise ConfigError(f"{source}: unknown key {key!r}; {_known_keys(self)}")
            node[parts[-1]] = value
        return Config.from_dict(tree, source=source)

    @property
    def ablations(self) -> set[str]:
        return {normalize_ablation(a) for a in self.model.ablations}

    @property
    def split_seed(self) -> int:
        return self.train.seed if self.data.split_seed is None else self.data.split_seed


def _read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (``{}`` when empty), read as UTF-8 with PyYAML's safe loader.

    Raises:
        ConfigError: The file is missing or unreadable, not UTF-8, or not valid YAML, in one line
            naming the file and, where there is one, the line and column.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        context = getattr(exc, "context", None)
        detail = f"{problem} ({' '.join(context.split())})" if context else problem
        raise ConfigError(
            f"{where}: not valid YAML: {detail}; fix that line (indentation, quotes, a missing ':')"
        ) from None


def _known_keys(config: Config) -> str:
    keys = [
        f"{section}.{key}"
        for section, fields in config.to_dict().items()
        if isinstance(fields, dict)
        for key in fields
    ]
    return "known keys: " + ", ".join(keys)


#: Lower bounds of the values a run cannot start without (checked when a config is built, so that a
#: bad ``--set``/YAML value is refused before any folder is created or any data is built).
AT_LEAST = {
    "train.epochs": 1,
    "train.eval_every": 1,
    "train.pseudo_bootstrap": 1,
    "model.anchor_self": 0.0,
    "model.relation_view": 0,
    "train.pseudo_sinkhorn": 0.0,
    "train.pseudo_top_k": 1,
}

#: Values that must stay strictly below (or above) a bound, checked with :data:`AT_LEAST`.
BELOW = {"train.pseudo_sinkhorn": 1.0}
ABOVE = {"train.pseudo_tau": 0.0}


def _check_bounds(key: str, value: Any, where: str) -> None:
    low = AT_LEAST.get(key)
    if low is not None and value < low:
        example = max(low, 10) if isinstance(low, int) else low
        raise ConfigError(f"{where}: must be at least {low}, got {value!r} (e.g. --set {key}={example})")
    high = BELOW.get(key)
    if high is not None and not value < high:
        raise ConfigError(f"{where}: must be below {high}, got {value!r} (e.g. --set {key}={high / 2})")
    floor = ABOVE.get(key)
    if floor is not None and not value > floor:
        raise ConfigError(f"{where}: must be above {floor}, got {value!r} (e.g. --set {key}=0.05)")


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce/validate ``value`` against a field annotation of the config dataclasses."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [_check_type(v, args[0], where) for v in value] if args else value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # PyYAML follows YAML 1.1, where exponent floats need a dot: ``1e-3`` loads as a string.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected float, got {value!r}") from None
    if annotation in (int, float, str, bool) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(prefix + u for u in sorted(unknown))}; "
            f"valid: {', '.join(prefix + n for n in sorted(names))}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, source, prefix + name + ".")
        else:
            kwargs[name] = _check_type(value, hint, f"{source}: {prefix}{name}")
            _check_bounds(prefix + name, kwargs[name], f"{source}: {prefix}{name}")
    return cls(**kwargs)
