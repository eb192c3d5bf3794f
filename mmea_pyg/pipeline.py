r"""The library pipeline: build a run's config, load its data, train, select on validation, evaluate
on test, and return a :class:`RunResult` that saves and loads itself as JSON.

Every entry point goes through these functions: ``mmea train`` / ``mmea eval`` / ``mmea report`` /
``mmea align``, ``make bench``, ``make compare``, ``make ablation`` and ``make bench-align`` are thin
layers over them, and a notebook needs nothing else::

    from mmea_pyg import pipeline

    result = pipeline.run("fb15k-db15k", model="clamea", overrides=["train.epochs=20"])
    result.metrics("test")["hits@1"]          # the model's own embedding, source -> target
    result.metrics("test", "csls")["hits@1"]  # CSLS re-scored
    result.save("run.json"); pipeline.RunResult.load("run.json")
    result.report("report/")                  # PNG plots + report.md
    aligned = pipeline.align("../shared/ea/jape/SRPRS_EN_DE_15K_V1", out="runs/srprs")
    aligned.pairs[:3], aligned.metrics["alignment"]["f1"]

Model selection uses the validation pairs only (the best validation MRR, :class:`~mmea_pyg.training.
trainer.Trainer`); the test pairs are evaluated once, with the selected checkpoint. The "+ propagation"
add-on (:class:`~mmea_pyg.training.propagation.LightEAPropagation`) is not part of any model; when asked
for, it is a separate evaluation of the same checkpoint, named as such.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import HeteroData

from mmea_pyg import __version__
from mmea_pyg.config import Config, ablation_slug
from mmea_pyg.data import content_key
from mmea_pyg.data.base import SIDES
from mmea_pyg.errors import ConfigError, MMEAError
from mmea_pyg.evaluation import evaluate_embedder
from mmea_pyg.io import atomic_write_json, atomic_write_text, check_writable_dir, resolve_device

__all__ = [
    "AlignmentResult",
    "Evaluation",
    "RunResult",
    "align",
    "align_model",
    "default_out",
    "evaluate_checkpoint",
    "evaluate_model",
    "load_dataset",
    "make_config",
    "run",
    "train",
]

#: Version of the JSON layout of :class:`RunResult`.
RESULT_FORMAT = 1
#: The result file of a run folder.
RESULT_NAME = "result.json"
#: Embedding names of an :class:`Evaluation`.
MODEL = "model"
PROPAGATION = "model + LightEA propagation"
#: Run folders of ``mmea train`` and the pointer to the latest one (relative to the working directory).
RUNS = Path("runs")
LATEST = RUNS / "LATEST"


# ------------------------------------------------------------------------------------------ records
class Histogram(TypedDict):
    """A histogram of :func:`diagnostics`: ``counts`` of equal bins over ``[low, high]``, ``n`` values
    of mean ``mean`` (:obj:`None` when there are none)."""

    low: float
    high: float
    counts: list[int]
    n: int
    mean: float | None


class Diagnostics(TypedDict, total=False):
    """:func:`diagnostics`: the split, the score histograms per kind of pair, and the modality-weight
    histograms per weight label and group of entities."""

    split: str
    scores: dict[str, Histogram]
    modality_weights: dict[str, dict[str, Histogram]]


class HistoryRecord(TypedDict, total=False):
    """One validation of a run (a line of ``metrics.jsonl``): epoch, seconds so far, the epoch's mean
    loss terms, the validation metrics, the pseudo-seed count and the best epoch so far."""

    epoch: int
    time_s: float
    loss: dict[str, float]
    valid: dict[str, float]
    pseudo_seeds: int
    best_epoch: int


class MalformedResultError(MMEAError):
    """A run result (``result.json``) does not follow the layout :meth:`RunResult.save` writes."""


def _type_name(annotation: Any) -> str:
    """``annotation`` in words, for a message: ``a list``, ``a mapping``, ``a number`` ..."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is list:
        return "a list"
    if origin is dict or typing.is_typeddict(annotation) or dataclasses.is_dataclass(annotation):
        return "a mapping"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(annotation, str(annotation))


def _check_json(value: Any, annotation: Any, where: str) -> None:
    """Check a value read from JSON against a type of the result schema (the annotations of
    :class:`RunResult`, :class:`Evaluation` and the typed dicts above), recursively.

    Raises:
        MalformedResultError: The first value of the wrong type, named by its path (``history[3].loss``).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        inner = [a for a in args if a is not type(None)]
        return _check_json(value, inner[0], where)
    if origin is list and isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, args[0] if args else Any, f"{where}[{i}]")
        return
    if origin is dict and isinstance(value, dict):
        for key, item in value.items():
            _check_json(item, args[1] if args else Any, f"{where}.{key}")
        return
    if (typing.is_typeddict(annotation) or dataclasses.is_dataclass(annotation)) and isinstance(value, dict):
        _check_fields(value, annotation, where)
        return
    if annotation in (int, float, str, bool):
        allowed = (int, float) if annotation is float else annotation
        if isinstance(value, allowed) and (annotation is bool or not isinstance(value, bool)):
            return
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise MalformedResultError(
        f"{where} must be {_type_name(annotation)}, got {type(value).__name__} {shown}"
    )


def _check_fields(values: dict[str, Any], schema: type, where: str) -> None:
    """The fields of a mapping against a dataclass or typed dict: required ones present, known ones of
    their type (keys the schema does not know are left alone)."""
    hints = typing.get_type_hints(schema)
    if dataclasses.is_dataclass(schema):
        required = {
            f.name
            for f in dataclasses.fields(schema)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
    else:
        required = set(schema.__required_keys__)
    missing = sorted(required - set(values))
    if missing:
        raise MalformedResultError(f"{where or 'the result'} lacks {', '.join(missing)}")
    prefix = f"{where}." if where else ""
    for key, value in values.items():
        if key in hints:
            _check_json(value, hints[key], prefix + key)


@dataclass
class Evaluation:
    """Metrics of one embedding on one split.

    Attributes:
        split: ``"valid"`` or ``"test"``.
        embedding: :data:`MODEL` (the model's own embedding) or :data:`PROPAGATION` (the add-on).
        pairs: Number of evaluated pairs.
        metrics: :func:`~mmea_pyg.evaluation.evaluate`'s flat dict: ``hits@k``/``mrr``/``mr`` source ->
            target, ``t2s/...`` target -> source, ``csls/...`` CSLS re-scored where ``csls_k > 0``.
        csls_k: CSLS neighbourhood (0: none).
        seconds: Wall time of the evaluation (embedding, add-on and ranking).
        ranked_among: Distinct target entities of the split, among which each source is ranked (the
            scale of its Hits@k: validation and test figures rank among different numbers).
    """

    split: str
    embedding: str
    pairs: int
    metrics: dict[str, float]
    csls_k: int = 0
    seconds: float = 0.0
    ranked_among: int = 0


@dataclass
class RunResult:
    """Everything a run produced, as plain data: saved as ``result.json`` in the run folder.

    Attributes:
        dataset, model: What was aligned, with what.
        config: The full config (:meth:`Config.to_dict`), seed included.
        seed, split_seed: Training seed and seed of the split.
        modalities: The modalities the model ran on (``r``, ``a``, ``v``).
        best_epoch, epochs: Epoch of the selected checkpoint (best validation MRR) and epochs trained.
        evaluations: :class:`Evaluation` of the selected checkpoint per split and embedding.
        history: One record per validation (losses, validation metrics, pseudo-seed count).
        timings: Seconds: ``data`` (load/build), ``train``, ``eval`` (all evaluations), ``total``.
        peak_memory: ``rss_gib`` (this process's peak resident memory so far, which includes
            whatever ran before in the same process) and ``cuda_gib`` (peak CUDA allocation, or 0).
        machine: :func:`machine_info`.
        checkpoints: Paths of ``best.pt`` and ``last.pt``.
        run_dir: The run folder.
        diagnostics: Histograms for the report: ``scores`` (cosine of matches and non-matches of the
            test pairs) and ``modality_weights`` (per label, per group of entities with the same
            modalities).
        command: The command line that produced the run, where one did.
    """

    dataset: str
    model: str
    config: dict[str, Any]
    seed: int
    split_seed: int
    modalities: list[str] = field(default_factory=list)
    best_epoch: int = -1
    epochs: int = 0
    evaluations: list[Evaluation] = field(default_factory=list)
    history: list[HistoryRecord] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    peak_memory: dict[str, float] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)
    run_dir: str | None = None
    diagnostics: Diagnostics = field(default_factory=dict)
    command: str | None = None
    version: str = __version__
    created: str = ""
    format: int = RESULT_FORMAT

    # ------------------------------------------------------------------------------------ access
    def evaluation(self, split: str = "test", embedding: str = MODEL) -> Evaluation:
        """The evaluation of ``split`` (``"test"``/``"valid"``) and ``embedding`` (``"model"`` or
        ``"propagation"``/:data:`PROPAGATION`)."""
        embedding = PROPAGATION if embedding == "propagation" else embedding
        for record in self.evaluations:
            if record.split == split and record.embedding == embedding:
                return record
        have = ", ".join(f"{e.split}/{e.embedding}" for e in self.evaluations) or "none"
        raise KeyError(f"no evaluation of split {split!r} with embedding {embedding!r} (have: {have})")

    def metrics(self, split: str = "test", kind: str = "cosine", embedding: str = MODEL) -> dict[str, float]:
        """Metrics of ``split``: ``kind`` ``"cosine"`` (``hits@k``, ``mrr``, ``mr``, ``t2s/...``) or
        ``"csls"`` (the same names, CSLS re-scored)."""
        values = self.evaluation(split, embedding).metrics
        if kind == "cosine":
            return {k: v for k, v in values.items() if not k.startswith("csls/")}
        if kind == "csls":
            return {k.removeprefix("csls/"): v for k, v in values.items() if k.startswith("csls/")}
        raise ValueError(f"kind must be 'cosine' or 'csls', got {kind!r}")

    # -------------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "result") -> RunResult:
        """The result :meth:`to_dict` gave, checked field by field against the schema it writes (the
        annotations of this class, :class:`Evaluation` and the typed dicts of its parts).

        Raises:
            MalformedResultError: Not a run result of this format, an unknown or missing field, or a
                value of the wrong type (named by its path, e.g. ``history[2].loss``).
        """
        if not isinstance(values, dict) or values.get("format") != RESULT_FORMAT:
            raise MalformedResultError(f"{source}: not an mmea-pyg run result (format {RESULT_FORMAT})")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        try:
            if unknown:
                raise MalformedResultError(f"unknown field(s) {', '.join(unknown)}")
            _check_fields(values, cls, "")
        except MalformedResultError as exc:
            raise MalformedResultError(
                f"{source}: malformed run result: {exc}; rerun the training that writes it"
            ) from None
        values = dict(values)
        values["evaluations"] = [Evaluation(**e) for e in values.get("evaluations", [])]
        return cls(**values)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the result as JSON (default: ``<run_dir>/result.json``), atomically."""
        if path is None:
            if self.run_dir is None:
                raise ConfigError("this result has no run folder; pass a path to save it to")
            path = Path(self.run_dir) / RESULT_NAME
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunResult:
        """Read a result written by :meth:`save` (a file, or a run folder holding ``result.json``)."""
        path = Path(path)
        if path.is_dir() and path.name != RESULT_NAME:  # a run folder (a folder named result.json is refused)
            path = path / RESULT_NAME
        if not path.exists():
            raise MMEAError(
                f"{path} not found: train the run with this version (`mmea train --out {path.parent}`), "
                "which writes it when training ends"
            )
        if not path.is_file():
            raise MalformedResultError(f"{path} is not a file; pass a run folder or its {RESULT_NAME}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MMEAError(f"{path}: not valid JSON ({exc}); retrain the run") from None
        except OSError as exc:
            raise MMEAError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        return cls.from_dict(values, source=str(path))

    def report(self, out_dir: str | os.PathLike | None = None) -> list[Path]:
        """Write PNG plots and ``report.md`` (default: ``<run_dir>/report``); returns their paths.
        Needs matplotlib (``pip install mmea-pyg[plot]``)."""
        from mmea_pyg.report import write_report

        if out_dir is None:
            if self.run_dir is None:
                raise ConfigError("this result has no run folder; pass the folder to write the report to")
            out_dir = Path(self.run_dir) / "report"
        return write_report(self, Path(out_dir))

    def summary(self) -> str:
        """One line per evaluation: split, embedding, Hits@1 / Hits@10 / MRR (and CSLS Hits@1)."""
        lines = []
        for e in self.evaluations:
            m = e.metrics
            csls = f"  csls hits@1 {m['csls/hits@1']:.4f}" if "csls/hits@1" in m else ""
            lines.append(
                f"{e.split:<5} {e.embedding:<28} hits@1 {m['hits@1']:.4f}  hits@10 "
                f"{m.get('hits@10', float('nan')):.4f}  mrr {m['mrr']:.4f}{csls}  ({e.pairs:,} pairs"
                + (f", ranked among {e.ranked_among:,} {e.split} targets)" if e.ranked_among else ")")
            )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ context
def machine_info() -> dict[str, Any]:
    """The machine a run used: architecture, cores, memory, GPU, torch and Python versions."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        memory = float("nan")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return {
        "arch": platform.machine(),
        "system": platform.system(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def describe_machine(info: dict[str, Any] | None = None) -> str:
    """:func:`machine_info` as one line, e.g. ``x86_64, 2 cores, 24 GiB, no GPU, torch 2.13.0``."""
    info = info or machine_info()
    return f"{info['arch']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['gpu']}, torch {info['torch']}"


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process and peak CUDA allocation, in GiB."""
    try:
        import resource  # POSIX only
    except ImportError:  # pragma: no cover - Windows: no portable peak-RSS counter in the standard library
        rss_bytes = 0
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_bytes = rss if sys.platform == "darwin" else rss * 1024  # macOS reports bytes, Linux KiB
    cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    return {"rss_gib": round(rss_bytes / 1024**3, 3), "cuda_gib": round(cuda / 1024**3, 3)}


# ------------------------------------------------------------------------------------------- config
def default_out(config: Config) -> str:
    """``runs/<dataset>_<model>_r<ratio>_s<seed>[_ablations]`` (``<dataset>``: the folder's name when
    the dataset is a folder)."""
    ablations = ablation_slug(sorted(config.ablations))
    dataset = Path(config.data.dataset.rstrip("/\\")).name or "dataset"
    return str(RUNS / f"{dataset}_{config.model.name}_r{config.data.ratio:g}_s{config.train.seed}{ablations}")


def default_ratio(dataset: str) -> float:
    """The split ratio a dataset reads by default: 0.2 (training share) for the MMKG benchmarks, 0.3
    (known share: training + validation) for graph pairs (:class:`~mmea_pyg.config.DataConfig`)."""
    from mmea_pyg.data.registry import DATASETS

    return 0.2 if dataset.strip().lower() in DATASETS else 0.3


def make_config(
    model: str | None = None,
    dataset: str | None = None,
    config: str | os.PathLike | Config | None = None,
    overrides: Iterable[str] = (),
    ablations: Iterable[str] = (),
    out: str | os.PathLike | None = None,
    **options: Any,
) -> Config:
    """The config of a run: ``config`` (a :class:`Config`, YAML file or preset name; default the
    model's validated preset) < explicit arguments < ``overrides`` (``"section.key=value"``).

    Args:
        model: ``clamea``, ``ricea`` or ``mimea``.
        dataset: A registered dataset name.
        config: Base config.
        overrides: ``--set`` assignments, applied last.
        ablations: Table 2 switches (``"w/o V"``, ``"wo_v"`` ...).
        out: Run folder (default :func:`default_out`).
        **options: Shortcuts ``ratio``, ``epochs``, ``seed``, ``device``, ``root``, ``mirror``
            (:obj:`None` values are ignored).
    """
    keys = {
        "ratio": "data.ratio",
        "epochs": "train.epochs",
        "seed": "train.seed",
        "device": "train.device",
        "root": "data.root",
        "mirror": "data.mirror",
    }
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    if isinstance(config, Config):
        base, from_file = Config.from_dict(config.to_dict()), True
    elif config is not None:
        base, from_file = Config.load(config), True
    else:
        base, from_file = Config.recommended(model or Config().model.name), False
    # Explicit arguments are values, never YAML: a folder named 2024, on or "my graphs" stays a string.
    explicit: dict[str, Any] = {"data.dataset": str(dataset)} if dataset is not None else {}
    explicit |= {"model.name": model} if model is not None else {}
    explicit |= {keys[k]: str(v) if k in ("root", "mirror") else v for k, v in options.items() if v is not None}
    ablations = list(ablations)
    if ablations:
        explicit["model.ablations"] = ablations
    result = base.with_values(explicit).override(list(overrides))
    result.model.ablations = sorted(result.ablations)  # canonical Table 2 names (validated)
    if result.data.ratio is None:
        result.data.ratio = default_ratio(result.data.dataset)
    if out is not None:
        result.out = str(out)
    elif not (from_file and result.out != Config().out):
        result.out = default_out(result)
    return result


# --------------------------------------------------------------------------------------------- data
def load_dataset(config: Config, progress: bool = True, root: str | os.PathLike | None = None) -> HeteroData:
    """The graph pair of ``config.data`` (a registered name or a folder, :func:`mmea_pyg.data.open_dataset`)
    with the run's split, built and cached on first use."""
    from mmea_pyg.data import open_dataset

    d = config.data
    dataset = open_dataset(
        d.dataset,
        root=root or d.root,
        format=d.format,
        ratio=d.ratio,
        split_seed=config.split_seed,
        valid_ratio=d.valid_ratio,
        fold=d.fold,
        snapshot=d.snapshot,
        text_model=d.text_model,
        mirror=d.mirror,
        trust_pickle=d.trust_pickle,
        log=progress,
    )
    if d.valid_in_train:
        from mmea_pyg.data.splits import with_valid_in_train

        return with_valid_in_train(dataset[0])
    return dataset[0]


def split_pairs(data: HeteroData, split: str) -> Tensor:
    """The seed pairs :math:`(2, P)` of ``split`` (``train``, ``valid`` or ``test``)."""
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"split must be train, valid or test, got {split!r}")
    aligned = data["source", "aligned", "target"]
    return aligned.edge_index[:, aligned[f"{split}_mask"]]


# ------------------------------------------------------------------------------------ evaluation
def _check_propagation(config: Config, where: str) -> None:
    e = config.eval
    if (
        e.propagation_weight <= 0
        or e.propagation_rounds < 0
        or min(e.propagation_dim, e.propagation_hops) < 1
    ):
        raise ConfigError(
            f"{where}: eval.propagation_weight must be > 0, eval.propagation_rounds >= 0 and "
            "eval.propagation_dim/hops >= 1"
        )


def evaluate_model(
    model,
    data: HeteroData,
    config: Config,
    split: str = "test",
    *,
    csls: bool = True,
    propagation: bool = False,
    pseudo_pairs: Tensor | None = None,
    progress: bool = False,
) -> Evaluation:
    """Rank ``split``'s pairs with ``model``'s embedding (or, with ``propagation``, the embedding with
    LightEA's seed labels appended; seeds: the training pairs and ``pseudo_pairs``)."""
    started = time.perf_counter()
    pairs = split_pairs(data, split)
    if pairs.numel() == 0:
        raise MMEAError(f"the {split} split has no links to evaluate; evaluate another split")
    chunk = config.eval.chunk_size
    name = getattr(model, "embedding_name", MODEL)
    model.eval()
    if propagation:
        from mmea_pyg.addons.propagation import LightEAPropagation

        _check_propagation(config, "config")
        e = config.eval
        model = LightEAPropagation(
            model,
            data,
            split_pairs(data, "train"),
            pseudo_pairs,
            code_dim=e.propagation_dim,
            hops=e.propagation_hops,
            weight=e.propagation_weight,
            rounds=e.propagation_rounds,
            chunk_size=chunk,
        )
    csls_k = config.eval.csls_k if csls else 0
    desc = f"eval {split}" + (" + propagation" if propagation else "")
    metrics = evaluate_embedder(
        lambda side, index: model.embed(data, side, index, chunk),
        pairs,
        ks=tuple(config.eval.ks),
        csls_k=csls_k,
        chunk_size=chunk,
        progress=progress,
        desc=desc,
    )
    return Evaluation(
        split=split,
        embedding=PROPAGATION if propagation else name,
        pairs=int(pairs.size(1)),
        metrics=metrics,
        csls_k=csls_k,
        seconds=round(time.perf_counter() - started, 2),
        ranked_among=int(torch.unique(pairs[1]).numel()),
    )


def _histogram(values: Tensor, low: float, high: float, bins: int = 40) -> dict[str, Any]:
    values = values.detach().float().cpu()
    counts = torch.histc(values.clamp(low, high), bins=bins, min=low, max=high)
    return {
        "low": low,
        "high": high,
        "counts": [int(c) for c in counts.tolist()],
        "n": int(values.numel()),
        "mean": round(float(values.mean()), 6) if values.numel() else None,
    }


def entity_modalities(data: HeteroData, side: str) -> list[str]:
    """A label per entity of ``side`` naming the modalities it has (``"r+a"``, ``"a"``, ``"none"``):
    ``r`` at least one relation triple, ``a`` attribute features, ``v`` image features."""
    store = data[side]
    num = store.num_nodes
    edges = data[side, "relation", side].edge_index
    degree = torch.zeros(num, dtype=torch.long)
    if edges.numel():
        degree += torch.bincount(edges.reshape(-1).cpu(), minlength=num)
    has = {
        "r": degree > 0,
        "a": store.attr_mask.cpu() if "attr_mask" in store else torch.zeros(num, dtype=torch.bool),
        "v": store.img_mask.cpu() if "img_mask" in store else torch.zeros(num, dtype=torch.bool),
    }
    return ["+".join(m for m in ("r", "a", "v") if bool(has[m][i])) or "none" for i in range(num)]


@torch.no_grad()
def diagnostics(
    model, data: HeteroData, config: Config, split: str = "test", seed: int = 0
) -> dict[str, Any]:
    """Histograms for the report: cosine scores of the matches of ``split``, of a random non-match
    and of the hardest non-match per source entity; and the model's per-entity modality weights
    (:meth:`~mmea_pyg.models.base.AlignmentModel.modality_weights`) per group of entities with the
    same modalities."""
    model.eval()
    pairs = split_pairs(data, split)
    chunk = config.eval.chunk_size
    src = F.normalize(model.embed(data, "source", pairs[0], chunk), dim=-1)
    tgt = F.normalize(model.embed(data, "target", pairs[1], chunk), dim=-1)
    count = pairs.size(1)
    match = (src * tgt).sum(-1)
    generator = torch.Generator().manual_seed(seed)
    other = (torch.arange(count) + torch.randint(1, max(count, 2), (count,), generator=generator)) % count
    random_non = (src * tgt[other.to(tgt.device)]).sum(-1)
    hardest = torch.empty(count, device=src.device)
    for start in range(0, count, chunk):
        block = src[start : start + chunk] @ tgt.T
        rows = torch.arange(block.size(0), device=block.device)
        block[rows, rows + start] = -2.0  # the row's own match is no non-match
        hardest[start : start + chunk] = block.max(dim=1).values
    scores = {
        "match": _histogram(match, -1.0, 1.0),
        "random non-match": _histogram(random_non, -1.0, 1.0),
        "hardest non-match": _histogram(hardest, -1.0, 1.0),
    }
    weights: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        groups = entity_modalities(data, side)
        for label, values in model.modality_weights(data, side, chunk_size=chunk).items():
            values = values.cpu()
            per_group = weights.setdefault(label, {})
            for group in sorted(set(groups)):
                mask = torch.tensor([g == group for g in groups])
                per_group.setdefault(group, []).append(values[mask])
    modality_weights = {
        label: {group: _histogram(torch.cat(parts), 0.0, 1.0) for group, parts in groups.items()}
        for label, groups in weights.items()
    }
    return {"split": split, "scores": scores, "modality_weights": modality_weights}


# ---------------------------------------------------------------------------------------- training
def train(
    config: Config,
    data: HeteroData | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    propagation: bool = False,
    log_stream=None,
    command: str | None = None,
    echo=None,
) -> RunResult:
    """Train ``config`` (resuming from ``<out>/last.pt`` with ``resume``), select the checkpoint with
    the best validation MRR, evaluate it on the validation and test pairs (cosine and CSLS; with
    ``propagation`` also the "+ propagation" add-on), save ``result.json`` in the run folder and return
    the :class:`RunResult`.

    Args:
        config: The run config (:func:`make_config`).
        data: The graph pair (default: :func:`load_dataset`).
        resume: Continue from the run folder's ``last.pt``.
        progress: Progress bars on the dataset build, epochs and evaluation.
        propagation: Also evaluate the "+ propagation" add-on (not part of the model).
        log_stream: Where the JSON line of each validation goes (default stdout).
        command: The command line to record.
        echo: Callable receiving one-line notices (default: print to stderr).
    """
    return _fit(
        config,
        data,
        resume=resume,
        progress=progress,
        propagation=propagation,
        log_stream=log_stream,
        command=command,
        echo=echo,
    )[0]


def check_run_folder(out: str | os.PathLike) -> None:
    """Refuse, before the data build and training, a run folder that cannot be written
    (:func:`~mmea_pyg.io.check_writable_dir`; nothing is created)."""
    check_writable_dir(out, "run folder (--out)", "pass another --out")


def _fit(
    config: Config,
    data: HeteroData | None,
    *,
    resume: bool,
    progress: bool,
    propagation: bool,
    log_stream,
    command: str | None,
    echo,
) -> tuple[RunResult, Any, HeteroData]:
    """:func:`train`, also returning the model with the selected checkpoint's weights (eval mode) and
    the data on its device, for callers that go on with them (:func:`align`)."""
    from mmea_pyg.training.checkpoint import load_checkpoint
    from mmea_pyg.training.trainer import Trainer

    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    if propagation:
        _check_propagation(config, "--propagation")
    check_run_folder(config.out)
    started = time.perf_counter()
    if data is None:
        data = load_dataset(config, progress=progress)
    data_s = time.perf_counter() - started
    trainer = Trainer(config, data, progress=progress, log_stream=log_stream)
    model = trainer.model
    echo(f"run folder: {config.out}  model: {model}  device: {trainer.device}")
    kept = list(getattr(model, "kept", ()))
    missing = [m for m in ("v", "r", "a") if m not in kept]
    if kept:
        echo(
            f"modalities: {', '.join(kept)}"
            + (f" (not used: {', '.join(missing)}: ablated or absent from the data)" if missing else "")
        )
    if resume:
        trainer.resume()
    fit_started = time.perf_counter()
    state = trainer.fit()
    train_s = time.perf_counter() - fit_started

    out = Path(config.out)
    best = load_checkpoint(out / "best.pt", trainer.device)
    model.load_state_dict(best["model"])
    pseudo = best.get("pseudo_pairs")
    pseudo = None if pseudo is None else pseudo.to(trainer.device)
    eval_started = time.perf_counter()
    # Graphs without gold test links (an alignment of one's own graphs) are evaluated on validation only.
    splits = [s for s in ("valid", "test") if split_pairs(trainer.data, s).numel()]
    evaluations = [evaluate_model(model, trainer.data, config, s, progress=progress) for s in splits]
    if propagation and "test" in splits:
        evaluations.append(
            evaluate_model(
                model, trainer.data, config, "test", propagation=True, pseudo_pairs=pseudo, progress=progress
            )
        )
    extra = diagnostics(model, trainer.data, config, splits[-1], seed=config.train.seed) if splits else {}
    eval_s = time.perf_counter() - eval_started
    result = RunResult(
        dataset=config.data.dataset,
        model=config.model.name,
        config=config.to_dict(),
        seed=config.train.seed,
        split_seed=config.split_seed,
        modalities=kept,
        best_epoch=state.best_epoch,
        epochs=state.epoch,
        evaluations=evaluations,
        history=list(state.history),
        timings={
            "data": round(data_s, 2),
            "train": round(train_s, 2),
            "eval": round(eval_s, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        peak_memory=peak_memory(),
        machine=machine_info(),
        checkpoints={"best": str(out / "best.pt"), "last": str(out / "last.pt")},
        run_dir=str(out),
        diagnostics=extra,
        command=command,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    result.save()
    return result, model, trainer.data


def run(
    dataset: str | None = None,
    model: str | None = None,
    config: str | os.PathLike | Config | None = None,
    overrides: Sequence[str] = (),
    ablations: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    *,
    data: HeteroData | None = None,
    resume: bool = False,
    progress: bool = True,
    propagation: bool = False,
    **options: Any,
) -> RunResult:
    """:func:`make_config` then :func:`train`: the whole run in one call (see the module docstring)."""
    cfg = make_config(model, dataset, config, overrides, ablations, out, **options)
    return train(cfg, data, resume=resume, progress=progress, propagation=propagation)


# -------------------------------------------------------------------------------------- checkpoints
@dataclass
class CheckpointEvaluation:
    """:func:`evaluate_checkpoint`'s result: the evaluation and where it came from."""

    checkpoint: str
    dataset: str
    ratio: float
    seed: int
    epoch: int
    evaluation: Evaluation
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        e = self.evaluation
        return {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "split": e.split,
            "ratio": self.ratio,
            "seed": self.seed,
            "epoch": self.epoch,
            "embedding": e.embedding,
            "pairs": e.pairs,
            "csls_k": e.csls_k,
            "seconds": e.seconds,
            "metrics": e.metrics,
            "config": self.config,
        }

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write as JSON (default: ``eval_<split>[_propagation].json`` beside the checkpoint)."""
        e = self.evaluation
        suffix = "_propagation" if e.embedding == PROPAGATION else ""
        path = (
            Path(path) if path is not None else Path(self.checkpoint).parent / f"eval_{e.split}{suffix}.json"
        )
        atomic_write_json(path, self.to_dict())
        return path


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    split: str = "test",
    *,
    csls: bool = True,
    propagation: bool = False,
    device: str = "auto",
    root: str | os.PathLike | None = None,
    data: HeteroData | None = None,
    progress: bool = True,
) -> CheckpointEvaluation:
    """Evaluate a checkpoint on its own dataset and split (rebuilt from the config it carries)."""
    from mmea_pyg.training.checkpoint import load_checkpoint, load_model

    path = Path(checkpoint)
    saved = load_checkpoint(path)
    config = Config.from_dict(saved["config"], source=str(path))
    if propagation:
        _check_propagation(config, f"{path}")
    if data is None:
        data = load_dataset(config, progress=False, root=root)
    model, config, _ = load_model(path, data, device, checkpoint=saved)
    dev = resolve_device(device)
    data = data.to(dev)
    pseudo = saved.get("pseudo_pairs")
    evaluation = evaluate_model(
        model,
        data,
        config,
        split,
        csls=csls,
        propagation=propagation,
        pseudo_pairs=None if pseudo is None else pseudo.to(dev),
        progress=progress,
    )
    return CheckpointEvaluation(
        checkpoint=str(path),
        dataset=config.data.dataset,
        ratio=config.data.ratio,
        seed=config.train.seed,
        epoch=int(saved["epoch"]),
        evaluation=evaluation,
        config=config.to_dict(),
    )


def latest_run() -> Path:
    """The run folder of the latest ``mmea train`` in this working directory."""
    if not LATEST.exists():
        raise MMEAError("no run yet: train one first (`mmea train`) or name the run folder / checkpoint")
    return Path(LATEST.read_text(encoding="utf-8").strip())


def mark_latest(run_dir: str | os.PathLike) -> None:
    """Point ``runs/LATEST`` at ``run_dir``."""
    atomic_write_text(LATEST, str(Path(run_dir).resolve()) + "\n")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The current command line as a user would type it (``mmea ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(("mmea", "__main__.py")):
        argv[0] = "mmea"
    return shlex.join(argv)


# ---------------------------------------------------------------------------------------- alignment
ALIGNMENT_TSV = "alignment.tsv"
CANDIDATES_TSV = "candidates.tsv"
ALIGNMENT_JSON = "alignment.json"


def _tsv_field(text: str) -> str:
    """A URI as one TSV field: tabs and line breaks (which no URI should hold) become spaces."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


@dataclass
class AlignmentResult:
    """An alignment of two graphs: pairs, candidates and, with gold links, metrics.

    Attributes:
        pairs: ``(source URI, target URI, score, mutual)`` per aligned source entity, in decreasing
            score; ``mutual`` says the target's best source is this source.
        candidates: ``(source URI, rank, target URI, score)``, the top-k targets of each query.
        metrics: With gold test links: ``test`` (Hits@k / MRR of the test links ranked among the test
            entities, as ``mmea eval`` computes them) and ``alignment`` (precision / recall / F1 of
            ``pairs`` against the test links, judged on every query that is not in a validation link,
            so an entity without a gold counterpart that gets a pair counts as wrong). Always:
            ``queries`` and ``candidates`` (entity counts) and ``pairs``.
        options: ``top_k``, ``one_to_one``, ``threshold``, ``csls_k``.
        run: The training run's :class:`RunResult` (:obj:`None` for a loaded checkpoint).
        checkpoint: The checkpoint the embeddings came from.
        out_dir: Where :meth:`save` wrote the files.
    """

    pairs: list[tuple[str, str, float, bool]]
    candidates: list[tuple[str, int, str, float]]
    metrics: dict[str, Any]
    options: dict[str, Any]
    run: RunResult | None = None
    checkpoint: str | None = None
    out_dir: str | None = None

    def save(self, out_dir: str | os.PathLike | None = None) -> list[Path]:
        """Write ``alignment.tsv``, ``candidates.tsv``, ``metrics.json`` (when there are gold links)
        and ``alignment.json`` (options, metrics, the run result) into ``out_dir``, each atomically."""
        out = Path(out_dir if out_dir is not None else (self.out_dir or "."))
        self.out_dir = str(out)
        paths = []
        from mmea_pyg.io import atomic_write

        with atomic_write(out / ALIGNMENT_TSV) as handle:
            handle.write("source\ttarget\tscore\tmutual\n")
            for src, tgt, score, mutual in self.pairs:
                handle.write(f"{_tsv_field(src)}\t{_tsv_field(tgt)}\t{score:.6f}\t{int(mutual)}\n")
        paths.append(out / ALIGNMENT_TSV)
        with atomic_write(out / CANDIDATES_TSV) as handle:
            handle.write("source\trank\ttarget\tscore\n")
            for src, rank, tgt, score in self.candidates:
                handle.write(f"{_tsv_field(src)}\t{rank}\t{_tsv_field(tgt)}\t{score:.6f}\n")
        paths.append(out / CANDIDATES_TSV)
        if "alignment" in self.metrics:
            atomic_write_json(out / "metrics.json", self.metrics)
            paths.append(out / "metrics.json")
        record = {
            "format": RESULT_FORMAT,
            "options": self.options,
            "metrics": self.metrics,
            "checkpoint": self.checkpoint,
            "run": None if self.run is None else self.run.to_dict(),
        }
        atomic_write_json(out / ALIGNMENT_JSON, record)
        paths.append(out / ALIGNMENT_JSON)
        return paths

    @classmethod
    def load(cls, out_dir: str | os.PathLike) -> AlignmentResult:
        """Read what :meth:`save` wrote."""
        out = Path(out_dir)
        try:
            record = json.loads((out / ALIGNMENT_JSON).read_text(encoding="utf-8"))
            pairs = [
                (s, t, float(score), mutual == "1")
                for s, t, score, mutual in (
                    line.split("\t") for line in (out / ALIGNMENT_TSV).read_text("utf-8").splitlines()[1:]
                )
            ]
            candidates = [
                (s, int(rank), t, float(score))
                for s, rank, t, score in (
                    line.split("\t") for line in (out / CANDIDATES_TSV).read_text("utf-8").splitlines()[1:]
                )
            ]
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise MMEAError(
                f"{out}: not a complete alignment folder ({exc}); run `mmea align` again"
            ) from None
        run = record.get("run")
        return cls(
            pairs=pairs,
            candidates=candidates,
            metrics=record["metrics"],
            options=record["options"],
            run=None if run is None else RunResult.from_dict(run, source=str(out / ALIGNMENT_JSON)),
            checkpoint=record.get("checkpoint"),
            out_dir=str(out),
        )

    def summary(self) -> str:
        m = self.metrics
        lines = [
            f"{m['pairs']:,} pairs for {m['queries']:,} source entities without a training pair "
            f"({m['candidates']:,} target candidates); {sum(p[3] for p in self.pairs):,} mutual best"
        ]
        if "test" in m:
            t = m["test"]
            among = (
                f", each ranked among the {t['ranked_among']:,} test targets" if "ranked_among" in t else ""
            )
            lines.append(
                f"test links ({t['pairs']:,}{among}): hits@1 {t['hits@1']:.4f}  hits@10 "
                f"{t.get('hits@10', float('nan')):.4f}  mrr {t['mrr']:.4f}"
            )
            if "tied_top" in t and "target_twins" in t:
                lines.append(
                    f"  truth tied at the top for {t['tied_top']:.1%} of them; {t['target_twins']:.1%} of the "
                    "true targets have a structural twin among the test targets (data.twins)"
                )
        if "alignment" in m:
            a = m["alignment"]
            lines.append(
                f"alignment.tsv against the test links: precision {a['precision']:.4f}  recall {a['recall']:.4f}"
                f"  f1 {a['f1']:.4f} ({a['correct']:,} correct of {a['predicted']:,} judged pairs)"
            )
        return "\n".join(lines)


@torch.no_grad()
def align_model(
    model,
    data: HeteroData,
    config: Config,
    *,
    top_k: int = 10,
    one_to_one: str | None = None,
    threshold: float | None = None,
    csls: bool = False,
    names: dict[str, Tensor] | None = None,
    names_weight: float = 1.0,
    known_pairs: Tensor | None = None,
    sinkhorn: int = 0,
    sinkhorn_tau: float = 0.02,
    sinkhorn_top_k: int = 500,
    progress: bool = True,
) -> AlignmentResult:
    """Align the graphs of ``data`` with a trained ``model``: every source entity without a training
    pair is a query, every target entity without a training pair a candidate (no test or validation
    link is looked at to choose them). See :mod:`mmea_pyg.alignment`.

    Args:
        top_k: Candidates per query in ``candidates``.
        one_to_one: :obj:`None`, ``"greedy"`` or ``"hungarian"``.
        threshold: Drop pairs whose score is below it.
        csls: Score by CSLS (``config.eval.csls_k``) instead of cosine.
        names: Name vectors per side (:func:`mmea_pyg.training.names.name_vectors`): the "+ names"
            add-on is appended to the model's embedding with norm ``names_weight``.
        known_pairs: The links given as known :math:`(2, K)`, whose entities are neither queries nor
            candidates (default: the training links of ``data``, and the sources of its validation
            links are aligned but not judged; pivots induced from names are not given, so with
            ``known_pairs`` empty every entity is aligned and judged).
        sinkhorn: Sinkhorn iterations over all queries x candidates (0: off; an add-on, see
            :mod:`mmea_pyg.alignment`), temperature ``sinkhorn_tau``, over each query's
            ``sinkhorn_top_k`` best candidates (LightEA's sparse form; 0: the dense matrix). Scores,
            pairs and the test metrics then come from the normalised scores.
    """
    from mmea_pyg.alignment import (
        Candidates,
        assignment_from_scores,
        candidates_from_scores,
        check_options,
        greedy_one_to_one,
        hungarian_one_to_one,
        pair_block,
        positions,
        precision_recall_f1,
        ranks_from_scores,
        sinkhorn_scores,
        sparse_sinkhorn_candidates,
        top_k_candidates,
    )
    from mmea_pyg.evaluation import ranked_metrics
    from mmea_pyg.data.twins import twin_share
    from mmea_pyg.similarity import sparse_ranks
    from mmea_pyg.training.iterative import unaligned_candidates

    check_options(top_k, one_to_one, threshold, sinkhorn, sinkhorn_tau, sinkhorn_top_k)
    model.eval()
    if names is not None:
        from mmea_pyg.addons.names import NameAddOn

        model = NameAddOn(model, names, names_weight)
    chunk = config.eval.chunk_size
    csls_k = config.eval.csls_k if csls else 0
    train = split_pairs(data, "train")
    known = train if known_pairs is None else known_pairs.to(train.device)
    queries, cands = unaligned_candidates(data, known)
    if queries.numel() == 0 or cands.numel() == 0:
        raise MMEAError("nothing to align: every entity of one graph is in a training pair")
    device = train.device
    src = model.embed(data, "source", queries.to(device), chunk)
    tgt = model.embed(data, "target", cands.to(device), chunk)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=queries.numel() + cands.numel(), desc="align", unit="entity", file=sys.stderr, leave=False
        )
    dense = listed = None
    try:
        if sinkhorn and sinkhorn_top_k:
            listed = sparse_sinkhorn_candidates(
                src,
                tgt,
                k=sinkhorn_top_k,
                iters=sinkhorn,
                tau=sinkhorn_tau,
                csls_k=csls_k,
                chunk_size=chunk,
                bar=bar,
            )
            found = Candidates(listed.scores[:, :top_k], listed.index[:, :top_k], listed.mutual)
        elif sinkhorn:
            dense = sinkhorn_scores(
                src, tgt, tau=sinkhorn_tau, iters=sinkhorn, csls_k=csls_k, chunk_size=chunk
            )
            found = candidates_from_scores(dense, top_k)
        else:
            found = top_k_candidates(src, tgt, top_k, csls_k=csls_k, chunk_size=chunk, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    if dense is not None:  # log-probabilities rank; the files show the probabilities
        found.scores = found.scores.exp()
    scores, index, mutual = found.scores.cpu(), found.index.cpu(), found.mutual.cpu()
    if one_to_one == "greedy":
        rows, cols, values = greedy_one_to_one(found)
    elif one_to_one == "hungarian" and dense is not None:
        rows, cols, values = assignment_from_scores(dense)
        values = values.exp()
    elif one_to_one == "hungarian":
        rows, cols, values = hungarian_one_to_one(src, tgt, csls_k=csls_k, chunk_size=chunk)
    else:
        order = torch.argsort(scores[:, 0], descending=True, stable=True)
        rows, cols, values = order, index[order, 0], scores[order, 0]
    flags = torch.zeros(rows.numel(), dtype=torch.bool)
    if rows.numel():
        flags = mutual[rows] & (index[rows, 0] == cols)
    if threshold is not None:
        keep = values >= threshold
        rows, cols, values, flags = rows[keep], cols[keep], values[keep], flags[keep]
    src_uri, tgt_uri = data["source"].uri, data["target"].uri
    q_ids, c_ids = queries.tolist(), cands.tolist()
    pairs = [
        (src_uri[q_ids[r]], tgt_uri[c_ids[c]], float(v), bool(f))
        for r, c, v, f in zip(rows.tolist(), cols.tolist(), values.tolist(), flags.tolist(), strict=True)
    ]
    candidates = [
        (src_uri[q_ids[r]], rank + 1, tgt_uri[c_ids[c]], float(scores[r, rank]))
        for r in range(index.size(0))
        for rank, c in enumerate(index[r].tolist())
    ]
    metrics: dict[str, Any] = {"queries": len(q_ids), "candidates": len(c_ids), "pairs": len(pairs)}
    test = split_pairs(data, "test")
    if test.numel() and listed is not None:
        # The test links ranked among the test targets by the sparse probabilities (unlisted: 0).
        rows = positions(test[0], queries, data["source"].num_nodes)
        cols = positions(test[1], cands, data["target"].num_nodes)
        ranks = sparse_ranks(listed.scores.cpu(), listed.index.cpu(), rows, cols)
        metrics["test"] = {"pairs": int(test.size(1)), **ranked_metrics(ranks, tuple(config.eval.ks))}
    elif test.numel() and dense is not None:
        # The test links ranked among the test targets, by the scores normalised over all candidates.
        block, rows_, cols_ = pair_block(
            dense, queries, cands, test, data["source"].num_nodes, data["target"].num_nodes
        )
        ranks = ranks_from_scores(block, rows_, cols_)
        metrics["test"] = {"pairs": int(test.size(1)), **ranked_metrics(ranks, tuple(config.eval.ks))}
    elif test.numel():
        evaluation = evaluate_model(model, data, config, "test", csls=csls, progress=False)
        metrics["test"] = {"pairs": evaluation.pairs, **evaluation.metrics}
    if test.numel():
        metrics["test"]["ranked_among"] = int(torch.unique(test[1]).numel())
        # The share of truths that have a structural twin, which structure can at best tie with.
        metrics["test"].update(twin_share(data, test))
        valid_sources = set(split_pairs(data, "valid")[0].tolist()) if known_pairs is None else set()
        judged = {
            (q_ids[r], c_ids[c])
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
            if q_ids[r] not in valid_sources
        }
        gold = set(zip(test[0].tolist(), test[1].tolist(), strict=True))
        metrics["alignment"] = precision_recall_f1(judged, gold)
    options = {
        "top_k": top_k,
        "one_to_one": one_to_one,
        "threshold": threshold,
        "csls_k": csls_k,
        "embedding": ("model + names" if names is not None else MODEL) + (" + Sinkhorn" if sinkhorn else ""),
        "names_weight": names_weight if names is not None else None,
        "sinkhorn": sinkhorn,
        "sinkhorn_tau": sinkhorn_tau if sinkhorn else None,
        "sinkhorn_top_k": (sinkhorn_top_k or None) if sinkhorn else None,
    }
    return AlignmentResult(pairs=pairs, candidates=candidates, metrics=metrics, options=options)


def _refit(
    config: Config, data: HeteroData, selected: RunResult, *, progress: bool, command: str | None, echo
) -> tuple[RunResult, Any, HeteroData]:
    """Train ``config``'s model afresh on the training and validation links of ``data`` for the
    ``selected`` run's best epoch count (its schedule, chosen on validation), in ``<run>/refit``.

    The refit's config says ``data.valid_in_train``, so its checkpoint reloads onto the same split."""
    from mmea_pyg.data.splits import with_valid_in_train

    refit = Config.from_dict(config.to_dict())
    refit.data.valid_in_train = True
    refit.train.epochs = refit.train.eval_every = max(selected.best_epoch, 1)
    refit.train.patience = 0
    refit.out = str(Path(config.out) / "refit")
    known = with_valid_in_train(data)
    echo(
        f"refit on the training and validation links ({split_pairs(known, 'train').size(1):,}) for "
        f"{refit.train.epochs} epoch(s), the schedule chosen on validation"
    )
    return _fit(
        refit, known, resume=False, progress=progress, propagation=False, log_stream=None, command=command, echo=echo
    )


def _name_vectors(
    data: HeteroData, config: Config, names: bool, text: bool = True, progress: bool = False
) -> dict[str, Tensor] | None:
    if not names:
        return None
    from mmea_pyg.addons.names import name_vectors
    from mmea_pyg.data.features.text import DEFAULT_TEXT_MODEL

    text_model = (config.data.text_model or DEFAULT_TEXT_MODEL) if text else None
    device = str(resolve_device(config.train.device))
    return {side: name_vectors(data, side, text_model, device=device, progress=progress) for side in SIDES}


def align(
    source: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    config: str | os.PathLike | Config | None = None,
    overrides: Sequence[str] = (),
    checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    data: HeteroData | None = None,
    top_k: int = 10,
    one_to_one: str | None = None,
    threshold: float | None = None,
    csls: bool = False,
    names: bool = False,
    names_weight: float = 1.0,
    names_text: bool = True,
    pivot_score: float = 0.9,
    sinkhorn: int = 0,
    sinkhorn_tau: float = 0.02,
    sinkhorn_top_k: int = 500,
    refit: bool = True,
    progress: bool = True,
    echo=None,
    command: str | None = None,
    **options: Any,
) -> AlignmentResult:
    """Align two graphs end to end: train ``model`` on ``source`` (a registered dataset or a folder in
    one of the supported layouts; or load ``checkpoint``), then :func:`align_model`, and save the
    files into the run folder ``out`` (default :func:`default_out`; with ``checkpoint``, its folder).

    ``options`` are :func:`make_config`'s shortcuts (``ratio``, ``epochs``, ``seed``, ``device``,
    ``root``, ``mirror``); ``overrides`` ``section.key=value`` assignments (e.g. ``data.format=jape``).

    With ``names``, the entities' name vectors (:mod:`mmea_pyg.training.names`) are appended to the
    model's embedding (weight ``names_weight``; ``names_text=False`` leaves out the text embedding of
    the labels and keeps their character n-grams); when the graphs come without any training link, the
    mutual best name matches scoring at least ``pivot_score`` become the training links first.

    With ``refit`` (the default) and validation links, the model trained with validation-based
    selection only chooses the schedule: it is then trained afresh on the training *and* validation
    links for the selected number of epochs, in the run folder's ``refit/``, and that model aligns
    (:func:`_refit`). The run's validation figures stay those of the first fit.
    """
    from mmea_pyg.alignment import check_options

    check_options(top_k, one_to_one, threshold, sinkhorn, sinkhorn_tau, sinkhorn_top_k)  # before any training
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    if checkpoint is not None:
        from mmea_pyg.training.checkpoint import load_checkpoint, load_model

        saved = load_checkpoint(checkpoint)
        cfg = Config.from_dict(saved["config"], source=str(checkpoint))
        out_dir = Path(out) if out is not None else Path(checkpoint).parent
        check_writable_dir(out_dir, "alignment folder (--out)", "pass another --out")
        if source is not None:
            cfg.data.dataset = str(source)  # the graphs the user names; checked against the checkpoint below
        elif saved.get("dataset_path") and Path(saved["dataset_path"]).is_dir():
            cfg.data.dataset = saved["dataset_path"]  # found from any working directory
        if data is None:
            data = load_dataset(cfg, progress=progress, root=options.get("root"))
        elif cfg.data.valid_in_train:  # a refit's checkpoint: its split (load_dataset does the same)
            from mmea_pyg.data.splits import with_valid_in_train

            data = with_valid_in_train(data)
        key = saved.get("dataset_key")
        if key is not None and key != content_key(data):
            raise MMEAError(
                f"{source if source is not None else cfg.data.dataset} is not the dataset {checkpoint} was trained "
                f"on (its graphs or links differ); pass that dataset, or train on this one"
            )
        device = resolve_device(options.get("device") or "auto")
        net, cfg, _ = load_model(checkpoint, data, str(device), checkpoint=saved)
        data = data.to(device)
        vectors = _name_vectors(data, cfg, names, names_text, progress)
        known = None
        run_result = None
        refit_result = None
    else:
        refit_result = None
        cfg = make_config(
            model, None if source is None else str(source), config, overrides, (), out, **options
        )
        check_run_folder(cfg.out)
        if data is None:
            data = load_dataset(cfg, progress=progress)
        vectors = _name_vectors(data, cfg, names, names_text, progress)
        known = None
        if vectors is not None and split_pairs(data, "train").numel() == 0:
            from mmea_pyg.addons.names import name_pivots, with_pivots

            pivots = name_pivots(vectors, pivot_score, cfg.eval.chunk_size)
            echo(
                f"no training links: {pivots.size(1):,} pivot pairs induced from names (score >= {pivot_score})"
            )
            if pivots.size(1) < 2:
                raise MMEAError(
                    f"no training links and only {pivots.size(1)} name pivots scoring >= {pivot_score}: give "
                    "some known pairs (a links file) or lower the pivot score"
                )
            data = with_pivots(data, pivots, seed=cfg.split_seed)
            known = torch.empty(2, 0, dtype=torch.long)
        elif split_pairs(data, "train").numel() == 0:
            raise MMEAError(
                "the graphs come without training links: give some known pairs (a links file) or pass "
                "--names to induce pivot pairs from entity names"
            )
        run_result, net, data = _fit(
            cfg,
            data,
            resume=False,
            progress=progress,
            propagation=False,
            log_stream=None,
            command=command,
            echo=echo,
        )
        out_dir = Path(cfg.out)
        if refit and split_pairs(data, "valid").numel():
            refit_result, net, data = _refit(cfg, data, run_result, progress=progress, command=command, echo=echo)
    result = align_model(
        net,
        data,
        cfg,
        top_k=top_k,
        one_to_one=one_to_one,
        threshold=threshold,
        csls=csls,
        names=vectors,
        names_weight=names_weight,
        known_pairs=known,
        sinkhorn=sinkhorn,
        sinkhorn_tau=sinkhorn_tau,
        sinkhorn_top_k=sinkhorn_top_k,
        progress=progress,
    )
    result.run = run_result
    if refit_result is not None:
        result.options["refit"] = {
            "epochs": refit_result.epochs,
            "links": int(split_pairs(data, "train").size(1)),
            "run_dir": refit_result.run_dir,
        }
        result.checkpoint = refit_result.checkpoints["best"]
    else:
        result.checkpoint = str(checkpoint) if checkpoint is not None else run_result.checkpoints["best"]
    result.save(out_dir)
    return result
