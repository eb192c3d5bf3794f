"""Pictures of a run: PNG plots (matplotlib) and a short Markdown page from a
:class:`~mmea_pyg.results.RunResult`.

Plots written by :func:`write_report`:

* ``losses.png``: each loss term (unweighted, mean over the epoch's steps) against epochs;
* ``validation.png``: validation Hits@1 and MRR against epochs, the selected epoch marked;
* ``pseudo_seeds.png``: the pseudo-seed count at each validation (it changes once per round);
* ``modality_weights.png``: the distribution of the per-entity modality weights (CLAMEA's Dsum
  weights, RICEA's calibrated weights, MIMEA's normalised Beta means), one panel per weight, one
  curve per group of entities with the same modalities (skipped when the model weighs none);
* ``scores.png``: the cosine of each test match against a random and the hardest non-match.

matplotlib is an optional dependency (``pip install mmea-pyg[plot]``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmea_pyg.errors import MMEAError
from mmea_pyg.io import (
    atomic_write,
    atomic_write_text,
    check_writable_dir,
    made_dirs,
    temporary_sibling_dir,
)
from mmea_pyg.runs import describe_machine

if TYPE_CHECKING:
    from mmea_pyg.results import RunResult

__all__ = ["write_report"]

#: The plots a report may hold (``<key>.png``), besides ``report.md``.
PLOTS = ("losses", "validation", "pseudo_seeds", "modality_weights", "scores")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MMEAError(
            "reports need matplotlib, an optional dependency: pip install 'mmea-pyg[plot]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write (atomically) and close ``fig``."""
    try:
        fig.tight_layout()
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


def _centres(hist: dict[str, Any]) -> list[float]:
    bins = len(hist["counts"])
    width = (hist["high"] - hist["low"]) / bins
    return [hist["low"] + (i + 0.5) * width for i in range(bins)]


def _mean(hist: dict[str, Any]) -> str:
    return "-" if hist["mean"] is None else f"{hist['mean']:.2f}"


def _density(hist: dict[str, Any]) -> list[float]:
    total = max(sum(hist["counts"]), 1)
    return [c / total for c in hist["counts"]]


def _plot_losses(plt, history: list[dict], path: Path) -> Path | None:
    terms = sorted({k for h in history for k in h.get("loss", {})})
    if not history or not terms:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for term in terms:
        points = [(h["epoch"], h["loss"][term]) for h in history if term in h.get("loss", {})]
        ax.plot(*zip(*points, strict=True), marker=".", label=term)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (unweighted, epoch mean)")
    ax.set_title("Loss terms")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _plot_validation(plt, history: list[dict], best_epoch: int, path: Path) -> Path | None:
    points = [h for h in history if "valid" in h]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    epochs = [h["epoch"] for h in points]
    for key, label in (("hits@1", "Hits@1"), ("mrr", "MRR")):
        ax.plot(epochs, [h["valid"].get(key, float("nan")) for h in points], marker="o", label=label)
    if best_epoch > 0:
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"selected (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation")
    ax.set_title("Validation (model selection)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _plot_pseudo(plt, history: list[dict], path: Path) -> Path | None:
    points = [(h["epoch"], h.get("pseudo_seeds", 0)) for h in history]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.step(*zip(*points, strict=True), where="post", marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("pseudo seeds")
    ax.set_title("Pseudo seeds of the iterative strategy")
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def _plot_weights(plt, weights: dict[str, dict[str, dict]], path: Path) -> Path | None:
    if not weights:
        return None
    labels = sorted(weights)
    cols = min(3, len(labels))
    rows = (len(labels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(labels) :]:
        ax.axis("off")
    for ax, label in zip(axes.flat, labels, strict=False):
        for group, hist in sorted(weights[label].items()):
            ax.plot(_centres(hist), _density(hist), label=f"{group} (n={hist['n']:,}, mean {_mean(hist)})")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("weight")
        ax.set_ylabel("fraction of entities")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="entities with", title_fontsize=7)
    return _save(plt, fig, path)


def _plot_scores(plt, scores: dict[str, dict], path: Path) -> Path | None:
    if not scores:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, hist in scores.items():
        ax.plot(_centres(hist), _density(hist), label=f"{name} (mean {_mean(hist)})")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("fraction of test pairs")
    ax.set_title("Scores of matches and non-matches (test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def _relative(text: str | None) -> str | None:
    """``text`` with the current directory's absolute path removed (a page that travels with a repo)."""
    return None if text is None else text.replace(f"{Path.cwd()}/", "")


def _markdown(result: RunResult, plots: dict[str, Path]) -> str:
    lines = [
        f"# {result.model.upper()} on {_relative(result.dataset)}",
        "",
        f"Run folder `{_relative(result.run_dir)}`; seed {result.seed} (split seed {result.split_seed}); modalities "
        f"{', '.join(result.modalities) or '-'}; selected epoch {result.best_epoch} of {result.epochs} "
        f"(best validation MRR).",
        "",
        "| split | what is ranked | pairs | Hits@1 | Hits@10 | MRR | CSLS Hits@1 | CSLS MRR |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    for e in result.evaluations:
        m = e.metrics
        lines.append(
            f"| {e.split} | {e.embedding} | {e.pairs:,} | {fmt(m.get('hits@1'))} | {fmt(m.get('hits@10'))} | "
            f"{fmt(m.get('mrr'))} | {fmt(m.get('csls/hits@1'))} | {fmt(m.get('csls/mrr'))} |"
        )
    t = result.timings
    lines += [
        "",
        f"Time: data {t.get('data', 0):.0f} s, training {t.get('train', 0) / 60:.1f} min, evaluation "
        f"{t.get('eval', 0):.0f} s. Peak memory {result.peak_memory.get('rss_gib', 0):.2f} GiB RSS"
        + (f", {result.peak_memory['cuda_gib']:.2f} GiB CUDA" if result.peak_memory.get("cuda_gib") else "")
        + f". Machine: {describe_machine(result.machine) if result.machine else '-'}."
        + (f" Command: `{_relative(result.command)}`." if result.command else ""),
        "",
    ]
    captions = {
        "losses": "Loss terms against epochs",
        "validation": "Validation Hits@1 and MRR against epochs (the selected epoch dashed)",
        "pseudo_seeds": "Pseudo seeds per round of the iterative strategy",
        "modality_weights": "Per-entity modality weights, by which modalities an entity has",
        "scores": "Cosine of test matches against random and hardest non-matches",
    }
    for key, caption in captions.items():
        if key in plots:
            lines += [f"## {caption}", "", f"![{caption}]({plots[key].name})", ""]
    if "modality_weights" not in plots:
        lines += [
            "## Modality weights",
            "",
            "This model and configuration weigh no modality per entity (e.g. CLAMEA without images builds no "
            "fused DMAFF pair that a later module reads), so there is no weight distribution to show.",
            "",
        ]
    return "\n".join(lines)


def write_report(result: RunResult, out_dir: Path) -> list[Path]:
    """Write the plots and ``report.md`` of ``result`` into ``out_dir``, all or none: they are rendered
    into a temporary sibling folder first, which then becomes ``out_dir`` (or, when ``out_dir`` exists,
    whose files replace those of an earlier report there, leaving other files alone). Returns the
    written paths (``report.md`` last).

    Raises:
        NotWritableError: ``out_dir`` cannot be created or written (nothing is rendered).
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    check_writable_dir(out_dir, "report folder (--out)", "pass another --out")
    with made_dirs(out_dir.parent):
        staging = temporary_sibling_dir(out_dir)
        try:
            names = [path.name for path in _render(plt, result, staging)]
            if out_dir.exists():
                for key in PLOTS:  # plots of an earlier report this one does not have
                    if f"{key}.png" not in names:
                        (out_dir / f"{key}.png").unlink(missing_ok=True)
                for name in names:
                    os.replace(staging / name, out_dir / name)
            else:
                os.rename(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in names]


def _render(plt, result: RunResult, out_dir: Path) -> list[Path]:
    """Write the plots and ``report.md`` of ``result`` into the existing folder ``out_dir``."""
    diagnostics = result.diagnostics or {}
    makers = {  # one per key of PLOTS
        "losses": lambda p: _plot_losses(plt, result.history, p),
        "validation": lambda p: _plot_validation(plt, result.history, result.best_epoch, p),
        "pseudo_seeds": lambda p: _plot_pseudo(plt, result.history, p),
        "modality_weights": lambda p: _plot_weights(plt, diagnostics.get("modality_weights", {}), p),
        "scores": lambda p: _plot_scores(plt, diagnostics.get("scores", {}), p),
    }
    plots = {}
    for key, make in makers.items():
        path = make(out_dir / f"{key}.png")
        if path is not None:
            plots[key] = path
    page = out_dir / "report.md"
    atomic_write_text(page, _markdown(result, plots))
    return [*plots.values(), page]
