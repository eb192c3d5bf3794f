r"""The records of a run, as plain data that saves and loads itself: :class:`Evaluation` (one
embedding on one split), :class:`RunResult` (everything a training run produced, ``result.json``),
:class:`CheckpointEvaluation` (``mmea eval``) and :class:`AlignmentResult` (``mmea align``'s files).

Loading checks every field against the schema the class writes (:class:`MalformedResultError` names
the path of a bad value), so a hand-edited or truncated file is refused in one line.

One concept, the records and their one schema check, which is why this module is ~500 lines: splitting
the four records apart would split the schema they share.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from mmea_pyg import __version__
from mmea_pyg.errors import ConfigError, MMEAError
from mmea_pyg.io import atomic_write, atomic_write_json

__all__ = [
    "ALIGNMENT_JSON",
    "ALIGNMENT_TSV",
    "CANDIDATES_TSV",
    "MODEL",
    "PROPAGATION",
    "RESULT_NAME",
    "AlignmentResult",
    "CheckpointEvaluation",
    "Evaluation",
    "MalformedResultError",
    "RunResult",
]

#: Version of the JSON layout of :class:`RunResult`.
RESULT_FORMAT = 1


#: The result file of a run folder.
RESULT_NAME = "result.json"


#: Embedding names of an :class:`Evaluation`.
MODEL = "model"


PROPAGATION = "model + LightEA propagation"


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
        if m.get("test_among_unaligned"):
            u = m["test_among_unaligned"]
            lines.append(
                f"  the same sources among all {u['ranked_among']:,} targets without a known pair "
                f"({u['scores']}): hits@1 {u['hits@1']:.4f}  hits@10 {u.get('hits@10', float('nan')):.4f}  "
                f"mrr {u['mrr']:.4f}"
            )
        for key, what in (
            ("alignment", "alignment.tsv"),
            ("alignment_mutual", "  its mutual pairs"),
            ("alignment_valid_threshold", "  its pairs above the threshold chosen on validation"),
        ):
            if key in m:
                a = m[key]
                cut = f" ({a['threshold']:.4g})" if "threshold" in a else ""
                lines.append(
                    f"{what}{cut} against the test links: precision {a['precision']:.4f}  recall {a['recall']:.4f}"
                    f"  f1 {a['f1']:.4f} ({a['correct']:,} correct of {a['predicted']:,} judged pairs)"
                )
        return "\n".join(lines)
