"""`mmea align` on public entity-alignment benchmarks at their shipped splits, recording Hits@k, MRR,
the precision / recall / F1 of alignment.tsv, wall time and peak memory.

    python benchmarks/bench_align.py [--datasets srprs-en-de openea-d-y-15k-v1] [--set key=value] \
        [--skip-existing]

Per dataset, one `mmea align FOLDER --quiet` in a child process (peak RSS is the run's own) trains the
recommended preset through the library pipeline (:func:`mmea_pyg.pipeline.align`: train, select on
validation, refit on the training and validation links for the selected epoch count, align every
source entity without a known link): the row "model". The add-on rows align from the same (refit)
checkpoint (`mmea align --checkpoint ...`): "+ Sinkhorn" (`--sinkhorn 10`, over
all unaligned entities), "+ names" (`--names`) and "+ names + Sinkhorn". The folders are read in place
from ../shared/ea (or $MMEA_EA_DATA). Results go to results/align/<tag>.json and results/align.md is
regenerated from every JSON file there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from run_bench import REPO, RESULTS, display, run_measured, write_text_atomic

from mmea_pyg.pipeline import ALIGNMENT_JSON, describe_machine

ALIGN = RESULTS / "align"
RUNS = REPO / "runs" / "bench-align"
SHARED = Path(os.environ.get("MMEA_EA_DATA", REPO.parent / "shared" / "ea"))
#: Benchmark name -> folder under SHARED (read in place, never copied).
FOLDERS = {
    "srprs-en-de": "jape/SRPRS_EN_DE_15K_V1",
    "openea-d-y-15k-v1": "openea/D_Y_15K_V1",
    "contea-ja-en-base": "contea/JA-EN",
}
#: Benchmarks given by registered name (relations only: LightEA reads nothing else).
NAMED = {"fb15k-db15k"}
#: LightEA's relation-view width for English cross-KG pairs (its notebook: ent_dim // 3); cross-lingual
#: pairs keep the default ent_dim // 2.
LIGHTEA_SETS = {
    "openea-d-y-15k-v1": ["lightea.rel_dim=341"],
    "fb15k-db15k": ["lightea.rel_dim=341"],
}
#: The CLAMEA preset's extra settings per benchmark: FB15K-DB15K's attribute features are left out, so
#: that its row reads the relation triples alone, as LightEA's does.
CLAMEA_SETS = {"fb15k-db15k": ['model.ablations=["w/o A", "w/o V"]']}
#: Benchmarks without entity names (ContEA ships ids only): no "+ names" rows.
NO_NAMES = {"contea-ja-en-base"}
#: Published structure-only figures (Hits@1, Hits@10, MRR) and where they come from; filled from the
#: papers' tables (see docs), ``None`` where a paper does not report the dataset.
PUBLISHED: dict[str, list[tuple[str, float | None, float | None, float | None, str]]] = {}
#: LightEA's public code run by the project on this machine (issue 12): SRPRS EN-DE under its own,
#: looser protocol (merged sup+ref links, a redrawn random 30% training split, pseudo seeds mined
#: among the test entities, Sinkhorn over the test set).
MEASURED_PEERS = {
    "srprs-en-de": [("LightEA, public code, its protocol (measured here)", 0.614, 0.812, 0.683, "issue 12")],
    "contea-ja-en-base": [
        (
            "LightEA, public code, ContEA's split, test pool (PEERS.md)",
            0.783,
            0.904,
            0.828,
            "shared/docs/PEERS.md",
        )
    ],
    "fb15k-db15k": [
        (
            "LightEA, public code, our 20% split, test pool (PEERS.md)",
            0.275,
            0.517,
            0.355,
            "shared/docs/PEERS.md",
        )
    ],
}


#: The rows of a dataset: tag suffix, what is ranked, extra `mmea align --checkpoint` options.
ADD_ONS = (
    ("_sinkhorn", " + Sinkhorn (all unaligned)", ["--sinkhorn", "10", "--sinkhorn-top-k", "0"]),
    ("_names", " + names", ["--names"]),
    ("_names_sinkhorn", " + names + Sinkhorn", ["--names", "--sinkhorn", "10", "--sinkhorn-top-k", "0"]),
)


def _source(dataset: str) -> str:
    if dataset in NAMED:
        return dataset
    folder = SHARED / FOLDERS[dataset]
    if not folder.is_dir():
        raise SystemExit(f"{folder} not found: set MMEA_EA_DATA to the folder holding jape/ and openea/")
    return str(folder)


def bench_lightea(dataset: str, sets: list[str], skip_existing: bool) -> list[dict]:
    """LightEA in the library under our protocol: ``mmea align --model lightea --sinkhorn 15`` (its
    features from the training links, validation figures, then the refit: its features from the
    training and validation links; then its sparse Sinkhorn over each source's 500 best candidates among
    all unaligned entities). The row's test figures rank the test links among the test targets by
    those scores."""
    tag = f"{dataset}_lightea"
    cmd = [sys.executable, "-m", "mmea_pyg.cli", "align", _source(dataset), "--model", "lightea"]
    cmd += ["--sinkhorn", "15", "--out", str(RUNS / tag), "--quiet"]
    for assignment in LIGHTEA_SETS.get(dataset, []) + sets:
        cmd += ["--set", assignment]
    what = "LightEA (library): its features from every known link + sparse Sinkhorn (top-500, all unaligned)"
    return [_row(tag, dataset, what, cmd, RUNS / tag, skip_existing, None)]


def bench_one(dataset: str, sets: list[str], skip_existing: bool, addons: bool = True) -> list[dict]:
    """The model row (training) and the add-on rows (same checkpoint) of ``dataset``."""
    folder = _source(dataset)
    base = f"{dataset}_clamea"
    train = [sys.executable, "-m", "mmea_pyg.cli", "align", str(folder), "--out", str(RUNS / base), "--quiet"]
    for assignment in CLAMEA_SETS.get(dataset, []) + sets:
        train += ["--set", assignment]
    what = "CLAMEA preset, structure only" + (" (relation triples only)" if dataset in CLAMEA_SETS else "")
    rows = [_row(base, dataset, what, train, RUNS / base, skip_existing, None)]
    # The checkpoint that aligned: the refit on training + validation links (mmea align's default).
    checkpoint = rows[0]["checkpoint"]
    for suffix, what, options in ADD_ONS if addons else ():
        if "--names" in options and dataset in NO_NAMES:
            continue
        out = RUNS / (base + suffix)
        cmd = [
            sys.executable,
            "-m",
            "mmea_pyg.cli",
            "align",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
        ]
        cmd += ["--quiet", *options]
        rows.append(_row(base + suffix, dataset, "CLAMEA preset" + what, cmd, out, skip_existing, rows[0]))
    return rows


def _row(tag: str, dataset: str, what: str, cmd: list[str], out: Path, skip_existing: bool, trained) -> dict:
    path = ALIGN / f"{tag}.json"
    if skip_existing and path.exists():
        print(f"{tag}: kept {path.relative_to(REPO)}", flush=True)
        return json.loads(path.read_text())
    wall, peak, cpu, _ = run_measured(cmd)
    record = json.loads((out / ALIGNMENT_JSON).read_text())
    run_result = record["run"] or trained["run"]
    shown = display(cmd).replace(str(SHARED), "../shared/ea")
    summary = {
        "tag": tag,
        "dataset": dataset,
        "what": what,
        "metrics": record["metrics"],
        "options": record["options"],
        "best_epoch": run_result["best_epoch"],
        "checkpoint": record["checkpoint"],
        "train_wall_s": run_result["timings"]["train"] if record["run"] else 0.0,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_gib": round(peak, 2),
        # What else the machine ran: above its core count, the times are upper bounds.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": describe_machine(run_result["machine"]),
        "modalities": run_result["modalities"],
        "command": shown,
        "config": run_result["config"],
        "run": run_result,
    }
    ALIGN.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
    t, a = summary["metrics"]["test"], summary["metrics"]["alignment"]
    print(
        f"{tag}: hits@1 {t['hits@1']:.4f} hits@10 {t['hits@10']:.4f} mrr {t['mrr']:.4f} "
        f"P {a['precision']:.4f} R {a['recall']:.4f} F1 {a['f1']:.4f} wall {wall / 60:.1f} min peak {peak:.2f} GiB",
        flush=True,
    )
    return summary


def _order(record: dict) -> tuple:
    suffixes = ["", *(suffix for suffix, _, _ in ADD_ONS)]
    suffix = record["tag"].removeprefix(f"{record['dataset']}_clamea")
    return (record["dataset"], suffixes.index(suffix) if suffix in suffixes else len(suffixes), record["tag"])


def _share(test: dict, key: str) -> str:
    return f"{test[key]:.4f}" if key in test else "-"


def _cpu(record: dict) -> str:
    return f"{record['cpu_s']:.0f} s" if "cpu_s" in record else "-"


def write_table(note: str = "") -> None:
    records = sorted((json.loads(p.read_text()) for p in ALIGN.glob("*.json")), key=_order)
    lines = [
        "# `mmea align` on public entity-alignment benchmarks",
        "",
        "Generated by `benchmarks/bench_align.py` (`make bench-align`) from `results/align/*.json`. Each",
        "row is one `mmea align FOLDER` at the layout's shipped split (SRPRS: `sup_ent_ids` 4,500 links,",
        "of which 1,500 are drawn for validation, `ref_ent_ids` 10,500 test; OpenEA D-Y fold 1: 3,000 /",
        "1,500 / 10,500). Hits@k and MRR rank each test source among the test targets (the benchmark",
        "protocol); P / R / F1 judge `alignment.tsv`, where every source without a known pair is aligned",
        "among *all* targets without a known pair (nothing looks at which entities are in the test set).",
        "`mmea align` refits on the training and validation links by default (the first fit chooses the",
        "epoch count on validation): the rows align with that model (`options.refit` in each JSON).",
        "",
        "| dataset | what | Hits@1 | Hits@10 | MRR | tied at top | truth has a twin | P | R | F1 | wall | CPU "
        "| peak RSS | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        t, a = r["metrics"]["test"], r["metrics"]["alignment"]
        lines.append(
            f"| {r['dataset']} | {r['what']} | {t['hits@1']:.4f} | {t['hits@10']:.4f} | {t['mrr']:.4f} | "
            f"{_share(t, 'tied_top')} | {_share(t, 'target_twins')} | {a['precision']:.4f} | {a['recall']:.4f} | {a['f1']:.4f} | {r['wall_s'] / 60:.1f} min | "
            f"{_cpu(r)} | {r['peak_rss_gib']} GiB | {r['machine']} |"
        )
    for dataset in sorted({r["dataset"] for r in records}):
        for name, h1, h10, mrr, source in MEASURED_PEERS.get(dataset, []) + PUBLISHED.get(dataset, []):
            cells = " | ".join("-" if v is None else f"{v:.3f}" for v in (h1, h10, mrr))
            lines.append(f"| {dataset} | {name} ({source}) | {cells} | - | - | - | - | - | - | - | - | - |")
    lines += [
        "",
        'Rows from one training run (and its refit) per dataset: "model" is CLAMEA\'s own embedding; the others add, at',
        "alignment time and from the same (refit) checkpoint, Sinkhorn normalisation over all unaligned entities",
        "(`--sinkhorn 10`) and/or the entity-name view (`--names`), add-ons that are not part of CLAMEA.",
        "The wall time of an add-on row is its own `mmea align --checkpoint` (no training).",
        "",
        '"tied at top": the share of test sources whose true target ties at the top. "truth has a twin": the',
        "share whose true target has a structural twin among the test targets (the same neighbours by the",
        "same relations in the same directions; `mmea_pyg.data.twins`): swapping twins is an automorphism of",
        "the graph, so structure alone can at best tie them, and that share of the ties belongs to the data.",
        *(["", note] if note else []),
        "",
        "## Commands",
        "",
    ]
    for r in records:
        lines += [f"`{r['tag']}`:", "", "```bash", r["command"], "```", ""]
    write_text_atomic(RESULTS / "align.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["srprs-en-de", "openea-d-y-15k-v1"],
        choices=sorted({*FOLDERS, *NAMED}),
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["clamea", "lightea"],
        choices=["clamea", "lightea"],
        help="clamea: the recommended preset and its add-on rows; lightea: LightEA in the library",
    )
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--skip-existing", action="store_true")
    parser.add_argument("--no-addons", action="store_true", help="only the model rows, no add-on rows")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--note", default="", help="a paragraph to add under the table (how it was run)")
    args = parser.parse_args()
    if not args.report_only:
        for dataset in args.datasets:
            if "lightea" in args.models:
                bench_lightea(dataset, args.sets, args.skip_existing)
            if "clamea" in args.models:
                bench_one(dataset, args.sets, args.skip_existing, addons=not args.no_addons)
    write_table(args.note)
    print(f"wrote {RESULTS / 'align.md'}")


if __name__ == "__main__":
    main()
