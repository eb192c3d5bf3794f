"""Regenerate BENCHMARKS.md from results/*.json (written by benchmarks/run_bench.py)."""

from __future__ import annotations

import json
import re
import shlex
import statistics

from run_bench import REPO, RESULTS, stale_preset_note, write_text_atomic

from mmea_pyg.config import ABLATIONS
from mmea_pyg.data.registry import DATASETS


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _config_of(command: str) -> str:
    """The ``--config`` argument of a recorded training command."""
    words = shlex.split(command)
    return words[words.index("--config") + 1] if "--config" in words else "(defaults)"


def _paper_delta(r: dict, metric: str) -> str:
    """The published Table 2 difference of a single-switch ablation row to the full model, or blank."""
    card = DATASETS.get(r["dataset"])
    ablations = r.get("ablations") or []
    if card is None or r["ratio"] != 0.2 or len(ablations) != 1 or ablations[0] not in card.paper_ablations:
        return ""
    return f"{card.paper_ablations[ablations[0]][metric] - card.paper[metric]:+.4f}"


def _order(r: dict) -> tuple:
    """Rows of a table: by benchmark and ratio, the full model first, then runs with ``--set``
    assignments, then the ablations in the order of the paper's Table 2."""
    ablations = r.get("ablations") or []
    rank = [list(ABLATIONS).index(a) for a in ablations if a in ABLATIONS]
    kind = 2 if ablations else (1 if r.get("sets") else 0)
    return (r["dataset"], r["ratio"], kind, rank, r["tag"])


def _table(config_file: str, rows: list[dict]) -> list[str]:
    """One table per config file; ablation rows also show their difference to the full-model row and
    the difference the paper's Table 2 reports for the same switch."""
    reference = next((r for r in rows if not r.get("ablations") and not r.get("sets")), None)
    ablated = any(r.get("ablations") or r.get("sets") for r in rows)
    lines = [
        f"## `{config_file}`",
        "",
        "| run | what is ranked | dataset | ratio | H@1 | H@5 | H@10 | MRR | CSLS H@1 | CSLS MRR |"
        + (" ΔH@1 | ΔMRR | paper ΔH@1 | paper ΔMRR |" if ablated else "")
        + " best epoch | train time | peak RSS | machine |",
        "|---|---|---|---|---|---|---|---|---|---|"
        + ("---|---|---|---|" if ablated else "")
        + "---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        delta = ""
        if ablated:
            if reference is None or r is reference:
                delta = " | | | |"
            else:
                ref = reference["metrics"]
                delta = (
                    f" {m['hits@1'] - ref['hits@1']:+.4f} | {m['mrr'] - ref['mrr']:+.4f} |"
                    f" {_paper_delta(r, 'hits@1')} | {_paper_delta(r, 'mrr')} |"
                )
        lines.append(
            f"| {r['tag']} | {r['model']} embedding | {r['dataset']} | {r['ratio']:g} | {_metrics(m)} |{delta} "
            f"{r['best_epoch']} | {r['train_wall_s'] / 60:.1f} min | {r['peak_rss_gib']} GiB | {r['machine']} |"
        )
        if r.get("propagation"):  # the add-on's row: same checkpoint, LightEA labels appended
            p = r["propagation"]
            lines.append(
                f"| {r['tag']} + propagation | {r['model']} embedding + LightEA labels (add-on) | "
                f"{r['dataset']} | {r['ratio']:g} | {_metrics(p['metrics'])} |{' | | | |' if ablated else ''} "
                f"{r['best_epoch']} | + {p['eval_wall_s'] / 60:.1f} min eval | {r['peak_rss_gib']} GiB | "
                f"{r['machine']} |"
            )
    return [*lines, ""]


def _metrics(m: dict) -> str:
    keys = ("hits@1", "hits@5", "hits@10", "mrr", "csls/hits@1", "csls/mrr")
    return " | ".join(fmt(m.get(k)) for k in keys)


SEED_TAG = re.compile(r"_seed\d+")
TRAIN_SEED_TAG = re.compile(r"_train-seed(\d+)$")


def _mean_sd(rows: list[dict], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one row) of metric ``key`` over the rows that have it."""
    values = [r["metrics"][key] for r in rows if key in r["metrics"]]
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _seeds_section(records: list[dict]) -> list[str]:
    """``make bench-seeds``: a preset's runs over several training seeds on the split of the
    ``make bench`` row (which is seed 0), mean ± std of the model's own embedding per benchmark."""
    by_tag = {r["tag"]: r for r in records}
    groups: dict[str, list[dict]] = {}
    for r in records:
        if TRAIN_SEED_TAG.search(r["tag"]):
            groups.setdefault(TRAIN_SEED_TAG.sub("", r["tag"]), []).append(r)
    if not groups:
        return []
    lines = [
        "## Over training seeds (`make bench-seeds`)",
        "",
        "The `make bench` row (training seed 0) and the same command with other training seeds on the same",
        "split (`--set train.seed=N --set data.split_seed=0`); the model's own embedding, test split, mean ±",
        "sample std over the seeds.",
        "",
        "| run | seeds | H@1 | per seed | MRR | CSLS H@1 |",
        "|---|---|---|---|---|---|",
    ]
    stale = []
    for base, rows in sorted(groups.items()):
        rows = ([by_tag[base]] if base in by_tag else []) + sorted(rows, key=lambda r: r["tag"])
        seeds = [r.get("config", {}).get("train", {}).get("seed") for r in rows]
        per_seed = " / ".join(f"{r['metrics']['hits@1']:.4f}" for r in rows)
        preset = rows[0].get("config_file") or "clamea"
        note = stale_preset_note([r.get("config", {}) for r in rows], preset, "make bench-seeds")
        if note:  # rows of two presets: no mean of them
            stale.append(f"`{base}`: {note[0].removeprefix('**Stale.** These rows ')}")
            lines.append(f"| {base} | {', '.join(map(str, seeds))} | stale (below) | {per_seed} | - | - |")
            continue
        stats = {
            key: "{:.4f} ± {:.4f}".format(*_mean_sd(rows, key)) for key in ("hits@1", "mrr", "csls/hits@1")
        }
        lines.append(
            f"| {base} | {', '.join(map(str, seeds))} | {stats['hits@1']} | {per_seed} | {stats['mrr']} | "
            f"{stats['csls/hits@1']} |"
        )
    if stale:
        lines += [
            "",
            "**Stale.** Some of these rows were made with other preset settings, so no mean is shown:",
        ]
        lines += [f"- {line}" for line in stale]
    return [*lines, ""]


def _ablation_section(records: list[dict]) -> list[str]:
    """``make ablation``: each Table 2 switch over several training seeds on one split, mean ± std of
    the model's own embedding, its difference to the full model and whether that difference exceeds
    the full model's seed spread (max - min over its seeds), beside the paper's difference."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(SEED_TAG.sub("", r["tag"]), []).append(r)
    full_key = next(
        (k for k, rows in groups.items() if not rows[0].get("ablations") and not k.endswith("_untrained")),
        None,
    )
    if full_key is None:
        return []

    full = groups[full_key]
    spread = max(r["metrics"]["hits@1"] for r in full) - min(r["metrics"]["hits@1"] for r in full)
    full_h1 = _mean_sd(full, "hits@1")[0]
    full_mrr = _mean_sd(full, "mrr")[0]
    lines = [
        "## Ablation: each Table 2 switch over several training seeds (`make ablation`)",
        "",
        f"Mean ± std over the seeds of the model's own embedding (no add-on), test split. The full model's "
        f"seed spread (max - min Hits@1) is {spread:.4f}: a switch's difference counts as an effect only "
        "beyond it.",
        "",
        *stale_preset_note(
            [r.get("config", {}) for r in full], full[0].get("config_file") or "clamea", "make ablation"
        ),
        "| switch | seeds | H@1 | MRR | CSLS H@1 | ΔH@1 | ΔMRR | effect? | paper ΔH@1 | paper ΔMRR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def order(key: str) -> tuple:
        ablations = groups[key][0].get("ablations") or []
        rank = [list(ABLATIONS).index(a) for a in ablations if a in ABLATIONS]
        return (key != full_key, "untrained" not in key, rank, key)

    for key in sorted(groups, key=order):
        rows = groups[key]
        h1, h1_sd = _mean_sd(rows, "hits@1")
        mrr, mrr_sd = _mean_sd(rows, "mrr")
        csls, csls_sd = _mean_sd(rows, "csls/hits@1")
        ablations = rows[0].get("ablations") or []
        name = "full model" if key == full_key else (" + ".join(ablations) or key.rsplit("_", 1)[-1])
        delta = "" if key == full_key else f"{h1 - full_h1:+.4f} | {mrr - full_mrr:+.4f} |"
        effect = "" if key == full_key else ("yes" if abs(h1 - full_h1) > spread else "no")
        delta = delta or " | |"
        lines.append(
            f"| {name} | {len(rows)} | {h1:.4f} ± {h1_sd:.4f} | {mrr:.4f} ± {mrr_sd:.4f} | "
            f"{csls:.4f} ± {csls_sd:.4f} | {delta} {effect} | {_paper_delta(rows[0], 'hits@1')} | "
            f"{_paper_delta(rows[0], 'mrr')} |"
        )
    return [*lines, ""]


def main() -> None:
    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    records = [r for r in records if "metrics" in r and "tag" in r]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `results/*.json`; every row was produced by the commands",
        "recorded in its JSON file (`make bench` runs them). Test split, ranks with realistic ties,",
        "source -> target direction; CSLS (k = 10) reported separately from plain cosine.",
        "",
        "**Caveat.** The offline mirror has no image features and 64% of the FB15K relation triples",
        "(see README, *Provenance caveat*). The comparable published setting is CLAMEA's `w/o V` row",
        "(Table 2); the full-model figures (Table 1) use images and all FB15K triples.",
        "",
        "**What is ranked.** Each run has two rows from the same checkpoint: the model's own embedding",
        "(`<model> embedding`: nothing else), and the same embedding with LightEA's propagated seed labels",
        "appended at evaluation time (`+ propagation`: an add-on that is not part of the model, `mmea eval",
        "--propagation`). Figures from before issue 11, when such labels were appended inside every model,",
        "are in `results/previous/` (not listed here).",
        "",
    ]
    seeded = [r for r in records if SEED_TAG.search(r["tag"]) and not TRAIN_SEED_TAG.search(r["tag"])]
    seed_runs = [r for r in records if TRAIN_SEED_TAG.search(r["tag"])]
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r not in seeded and r not in seed_runs:
            groups.setdefault(r.get("config_file") or _config_of(r["commands"][0]), []).append(r)
    for config_file, rows in groups.items():
        lines += _table(config_file, sorted(rows, key=_order))
    lines += _seeds_section(records)
    lines += _ablation_section(seeded)
    lines += [
        "",
        "## Published CLAMEA figures (20% seeds)",
        "",
        "| dataset | H@1 | H@5 | H@10 | MRR | `w/o V` H@1 | `w/o V` H@10 | `w/o V` MRR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, card in DATASETS.items():
        p, wo_v = card.paper, card.paper_ablations["w/o V"]
        lines.append(
            f"| {name} | {p['hits@1']} | {p['hits@5']} | {p['hits@10']} | {p['mrr']} | "
            f"{wo_v['hits@1']} | {wo_v['hits@10']} | {wo_v['mrr']} |"
        )
    lines += [
        "",
        "## Against the comparable published setting (`w/o V`, 20% seeds)",
        "",
        "| run | H@1 | paper `w/o V` H@1 | difference | MRR | paper `w/o V` MRR | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        card = DATASETS.get(r["dataset"])
        if r.get("ablations") or r.get("sets") or card is None or r["ratio"] != 0.2 or "short" in r["tag"]:
            continue
        m, p = r["metrics"], card.paper_ablations["w/o V"]
        lines.append(
            f"| {r['tag']} | {fmt(m['hits@1'])} | {p['hits@1']} | {m['hits@1'] - p['hits@1']:+.4f} | "
            f"{fmt(m['mrr'])} | {p['mrr']} | {m['mrr'] - p['mrr']:+.4f} |"
        )
    lines += ["", "## Commands", ""]
    for r in records:
        lines += [f"`{r['tag']}`:", "", "```bash", *r["commands"], "```", ""]
    write_text_atomic(REPO / "BENCHMARKS.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
