"""How `mmea align` grows with the graph: ContEA JA-EN snapshots (DBP15K JA-EN grown over five batches,
ids only), structure only, with the large-graph preset.

    python benchmarks/bench_scale.py [--snapshots 0 1 3 5] [--config clamea] [--set key=value]
        [--skip-existing] [--no-addons]

Per snapshot K, one child process (its peak RSS and CPU time are its own) runs

    mmea align ../shared/ea/contea/JA-EN --snapshot K --config clamea --no-refit --quiet

which trains on ContEA's base training links, selects the epoch on its validation links, and aligns
every source entity without a training link among every target entity without one. ``--no-refit``
keeps the validation sources among the queries, so the P / R / F1 of ``alignment.tsv`` are also given
at a score threshold chosen on them (and for the mutual pairs alone). Test figures: snapshot K's test
links (``batchK/all_test_links``) ranked among the test targets (the benchmark protocol) and among all
unaligned targets (what a user aligning the whole graph meets). At the last snapshot the same checkpoint
is aligned again with ``--sinkhorn 10`` (sparse, each source's 500 best candidates) and with
``--one-to-one greedy``.

Writes results/scale/<tag>.json, results/scale.md (table, fitted growth) and results/scale.png (wall
time, CPU time and peak memory against entities + triples). The folder is read in place from
../shared/ea (or $MMEA_EA_DATA), never copied.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from run_bench import REPO, RESULTS, display, run_measured, stale_preset_note, write_text_atomic

from mmea_pyg.data.formats import read_graph_pair
from mmea_pyg.pipeline import ALIGNMENT_JSON, describe_machine

SCALE = RESULTS / "scale"
RUNS = REPO / "runs" / "bench-scale"
SHARED = Path(os.environ.get("MMEA_EA_DATA", REPO.parent / "shared" / "ea"))
FOLDER = SHARED / "contea" / "JA-EN"
#: The add-on rows of the last snapshot: tag suffix, what, `mmea align --checkpoint` options.
ADD_ONS = (
    ("_sinkhorn", " + sparse Sinkhorn (10 iterations, top-500, all unaligned)", ["--sinkhorn", "10"]),
    ("_greedy", ", greedy one-to-one", ["--one-to-one", "greedy"]),
)


def graph_size(snapshot: int) -> dict[str, int]:
    """Entities and distinct relation triples of each graph of a snapshot."""
    pair = read_graph_pair(FOLDER, snapshot=snapshot)
    size = {}
    for side, kg in (("source", pair.source), ("target", pair.target)):
        size[f"{side}_entities"] = len(kg.entities)
        size[f"{side}_triples"] = int(np.unique(kg.triples, axis=0).shape[0]) if len(kg.triples) else 0
    size["entities"] = size["source_entities"] + size["target_entities"]
    size["triples"] = size["source_triples"] + size["target_triples"]
    size["test_links"] = int((pair.link_split == 2).sum())
    return size


def _record(tag: str, snapshot: int, what: str, cmd: list[str], out: Path, size: dict, trained) -> dict:
    wall, peak, cpu, _ = run_measured(cmd)
    record = json.loads((out / ALIGNMENT_JSON).read_text())
    run = record["run"]
    if run is None:  # an add-on row: aligned from the checkpoint of ``trained`` (its summary)
        trained_fields = {k: trained[k] for k in ("best_epoch", "validation_curve", "machine", "config")}
        train_wall = 0.0
    else:
        trained_fields = {
            "best_epoch": run["best_epoch"],
            "validation_curve": [{"epoch": h["epoch"], **h["valid"]} for h in run["history"]],
            "machine": describe_machine(run["machine"]),
            "config": run["config"],
        }
        train_wall = run["timings"]["train"]
    summary = {
        "tag": tag,
        "snapshot": snapshot,
        "what": what,
        **size,
        "metrics": record["metrics"],
        "options": record["options"],
        "checkpoint": record["checkpoint"],
        "train_wall_s": train_wall,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_gib": round(peak, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "command": display(cmd).replace(str(SHARED), "../shared/ea"),
        **trained_fields,
    }
    SCALE.mkdir(parents=True, exist_ok=True)
    write_text_atomic(SCALE / f"{tag}.json", json.dumps(summary, indent=2) + "\n")
    t, u = summary["metrics"]["test"], summary["metrics"].get("test_among_unaligned", {})
    print(
        f"{tag}: {size['entities']:,} entities {size['triples']:,} triples; test hits@1 {t['hits@1']:.4f} "
        f"(among all unaligned {u.get('hits@1', float('nan')):.4f}); wall {wall / 60:.1f} min, CPU {cpu:.0f} s, "
        f"peak {peak:.2f} GiB",
        flush=True,
    )
    return summary


def bench_snapshot(
    snapshot: int, config: str, sets: list[str], skip_existing: bool, addons: bool
) -> list[dict]:
    tag = f"contea-ja-en-s{snapshot}"
    path = SCALE / f"{tag}.json"
    size = graph_size(snapshot)
    if skip_existing and path.exists():
        rows = [json.loads(path.read_text())]
        print(f"{tag}: kept {path.relative_to(REPO)}", flush=True)
    else:
        cmd = [sys.executable, "-m", "mmea_pyg.cli", "align", str(FOLDER), "--snapshot", str(snapshot)]
        cmd += ["--config", config, "--no-refit", "--out", str(RUNS / tag), "--quiet"]
        for assignment in sets:
            cmd += ["--set", assignment]
        what = f"CLAMEA, structure only, preset {config}, no refit"
        rows = [_record(tag, snapshot, what, cmd, RUNS / tag, size, None)]
    if not addons:
        return rows
    for suffix, what, options in ADD_ONS:
        sub = tag + suffix
        if skip_existing and (SCALE / f"{sub}.json").exists():
            rows.append(json.loads((SCALE / f"{sub}.json").read_text()))
            continue
        out = RUNS / sub
        cmd = [sys.executable, "-m", "mmea_pyg.cli", "align", "--checkpoint", rows[0]["checkpoint"]]
        cmd += ["--out", str(out), "--quiet", *options]
        rows.append(_record(sub, snapshot, rows[0]["what"] + what, cmd, out, size, rows[0]))
    return rows


def fit_growth(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares of ``log y = log c + b log x`` (the growth exponent ``b``: 1 is linear) and of
    ``y = a + s x`` (with its R^2)."""
    lx, ly = np.log(xs), np.log(ys)
    b, logc = np.polyfit(lx, ly, 1)
    s, a = np.polyfit(xs, ys, 1)
    pred = a + s * np.asarray(xs)
    total = float(np.sum((np.asarray(ys) - np.mean(ys)) ** 2))
    r2 = 1.0 - float(np.sum((np.asarray(ys) - pred) ** 2)) / total if total > 0 else 1.0
    return {
        "exponent": float(b),
        "coefficient": float(math.exp(logc)),
        "intercept": float(a),
        "slope": float(s),
        "r2": r2,
    }


def _base_rows() -> list[dict]:
    rows = [json.loads(p.read_text()) for p in sorted(SCALE.glob("contea-ja-en-s*.json"))]
    return sorted(rows, key=lambda r: (r["snapshot"], r["tag"]))


def write_report() -> None:
    rows = _base_rows()
    if not rows:
        return
    base = [r for r in rows if r["tag"] == f"contea-ja-en-s{r['snapshot']}"]
    size = [r["entities"] + r["triples"] for r in base]
    fits = {}
    if len(base) >= 2:
        for key in ("wall_s", "cpu_s", "peak_rss_gib"):
            fits[key] = fit_growth(size, [r[key] for r in base])
    lines = [
        "# `mmea align` on growing graphs: ContEA JA-EN snapshots",
        "",
        "Generated by `benchmarks/bench_scale.py` (`make bench-scale`) from `results/scale/*.json`. Each row is",
        "one `mmea align ../shared/ea/contea/JA-EN --snapshot K` in its own process: structure only, trained on",
        "ContEA's base training links (3,750), the epoch chosen on its validation links (1,875), no refit, every",
        'source without a training link aligned among every target without one. "test" ranks snapshot K\'s test',
        'links among the test targets (the benchmark protocol); "among all" ranks the same sources among every',
        "unaligned target. P / R / F1 judge `alignment.tsv` (all pairs; its mutual pairs; its pairs above the",
        "score threshold that maximises F1 on the validation sources). Figures are the model's own embedding",
        "unless the row names an add-on.",
        "",
        *stale_preset_note([r.get("config", {}) for r in base], "clamea", "make bench-scale"),
        "| snapshot | what | entities | triples | test H@1 | H@10 | MRR | among all: H@1 | H@10 | MRR | targets | F1 all | F1 mutual (P/R) | F1 threshold (P/R) | best epoch | wall | CPU | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        t, u = m["test"], m.get("test_among_unaligned", {})
        mutual, cut = m.get("alignment_mutual", {}), m.get("alignment_valid_threshold", {})

        def pr(a):
            return f"{a['f1']:.4f} ({a['precision']:.3f}/{a['recall']:.3f})" if a else "-"

        lines.append(
            f"| {r['snapshot']} | {r['what']} | {r['entities']:,} | {r['triples']:,} | {t['hits@1']:.4f} | "
            f"{t['hits@10']:.4f} | {t['mrr']:.4f} | {u.get('hits@1', float('nan')):.4f} | "
            f"{u.get('hits@10', float('nan')):.4f} | {u.get('mrr', float('nan')):.4f} | {u.get('ranked_among', 0):,} | "
            f"{m['alignment']['f1']:.4f} | {pr(mutual)} | {pr(cut)} | {r['best_epoch']} | {r['wall_s'] / 60:.1f} min | "
            f"{r['cpu_s']:.0f} s | {r['peak_rss_gib']} GiB |"
        )
    if fits:
        lines += [
            "",
            "## Growth with entities + triples (snapshots "
            + ", ".join(str(r["snapshot"]) for r in base)
            + ")",
            "",
            "| measure | exponent b of c·x^b | linear fit a + s·x | R² of the linear fit |",
            "|---|---|---|---|",
        ]
        for key, name in (
            ("wall_s", "wall seconds"),
            ("cpu_s", "CPU seconds"),
            ("peak_rss_gib", "peak RSS GiB"),
        ):
            f = fits[key]
            lines.append(
                f"| {name} | {f['exponent']:.2f} | {f['intercept']:.3g} + {f['slope']:.3g}·x | {f['r2']:.3f} |"
            )
    machines = sorted({r["machine"] for r in rows})
    lines += ["", "Machine: " + "; ".join(machines) + ".", "", "## Commands", ""]
    for r in rows:
        lines += [
            f"`{r['tag']}` (load average {r['load_average_1min']} when it ended):",
            "",
            "```bash",
            r["command"],
            "```",
            "",
        ]
    write_text_atomic(RESULTS / "scale.md", "\n".join(lines) + "\n")
    write_text_atomic(SCALE / "growth.json", json.dumps({"sizes": size, "fits": fits}, indent=2) + "\n")
    if len(base) >= 2:
        _plot(base, size, fits)


def _plot(base: list[dict], size: list[int], fits: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("matplotlib is not installed (pip install mmea-pyg[plot]): results/scale.png not drawn")
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    grid = np.linspace(min(size), max(size), 50)
    for ax, key, label in zip(
        axes,
        ("wall_s", "cpu_s", "peak_rss_gib"),
        ("wall time (s)", "CPU time (s)", "peak RSS (GiB)"),
        strict=True,
    ):
        ys = [r[key] for r in base]
        ax.plot(size, ys, "o", color="C0")
        for x, y, r in zip(size, ys, base, strict=True):
            ax.annotate(f"s{r['snapshot']}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        f = fits[key]
        ax.plot(grid, f["intercept"] + f["slope"] * grid, "--", color="C1", label=f"linear, R²={f['r2']:.3f}")
        ax.plot(
            grid, f["coefficient"] * grid ** f["exponent"], ":", color="C2", label=f"∝ x^{f['exponent']:.2f}"
        )
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:.0f}k"))
        ax.set_xlabel("entities + triples (both graphs)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("mmea align on ContEA JA-EN snapshots (structure only, clamea preset)")
    fig.tight_layout()
    tmp = RESULTS / ".scale.png.tmp"
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, RESULTS / "scale.png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--snapshots", type=int, nargs="+", default=[0, 1, 3, 5])
    parser.add_argument("--config", default="clamea", help="preset or YAML file of the runs")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-existing", action="store_true", help="keep rows whose JSON exists")
    parser.add_argument(
        "--no-addons", action="store_true", help="no Sinkhorn / greedy rows at the last snapshot"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="regenerate results/scale.md and .png only"
    )
    args = parser.parse_args()
    if not args.report_only:
        if not FOLDER.is_dir():
            raise SystemExit(f"{FOLDER} not found: set MMEA_EA_DATA to the folder holding contea/")
        last = max(args.snapshots)
        for k in sorted(args.snapshots):
            bench_snapshot(
                k, args.config, args.sets, args.skip_existing, addons=not args.no_addons and k == last
            )
    write_report()
    print(f"wrote {(RESULTS / 'scale.md').relative_to(REPO)}")


if __name__ == "__main__":
    main()
