"""Train and evaluate models on the benchmarks, recording metrics, wall time and peak memory.

    python benchmarks/run_bench.py --datasets fb15k-db15k fb15k-yago15k --ratios 0.2 \
        --config clamea [--ablation "w/o V"] [--set key=value] [--tag NAME] [--skip-existing]

Each run is one `mmea train ... --propagation` in a child process (so that peak RSS is the run's own),
which goes through the library pipeline (:func:`mmea_pyg.pipeline.train`: train, select on
validation, evaluate the selected checkpoint on test, with the "+ propagation" add-on as its own
evaluation) and writes the run's ``result.json``. This script reads that result object back and
writes results/<tag or dataset_model_ratio>.json; BENCHMARKS.md is regenerated from every
results/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmea_pyg.config import ablation_slug
from mmea_pyg.io import atomic_write_text
from mmea_pyg.pipeline import PROPAGATION, RunResult, describe_machine

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
RUNS = REPO / "runs" / "bench"
MMEA = [sys.executable, "-m", "mmea_pyg.cli"]
#: Benchmark summaries (results/*.json) share one writer with the library.
write_text_atomic = atomic_write_text


def load_run(checkpoint: str):
    """A checkpoint's model (in eval mode, on the CPU), its config and the dataset it was trained on,
    ``(model, config, data)``: what the probes in benchmarks/ read."""
    from mmea_pyg.config import Config
    from mmea_pyg.pipeline import load_dataset
    from mmea_pyg.training.checkpoint import load_checkpoint, load_model

    saved = load_checkpoint(checkpoint)
    data = load_dataset(Config.from_dict(saved["config"], source=checkpoint), progress=False)
    model, config, _ = load_model(checkpoint, data, "cpu", checkpoint=saved)
    return model.eval(), config, data


#: Training settings of a preset that change what a model learns and that no benchmark varies on
#: purpose (seeds, learning rates and epochs are varied by the ablation and scale benchmarks).
STALE_TRAIN_KEYS = ("pseudo_bootstrap", "pseudo_sinkhorn", "pseudo_tau", "pseudo_top_k")


def stale_preset_note(configs: list[dict], preset: str, rerun: str) -> list[str]:
    """Markdown lines saying that rows made with ``configs`` (their saved run configs) used another
    value of a ``model.*`` setting (or a :data:`STALE_TRAIN_KEYS` ``train.*`` setting) the shipped
    ``preset`` fixes than it has today (e.g. the width, the initialisation, the pseudo-seed rule), so
    they are stale until ``rerun``; no line when they agree, when ``preset`` is not a shipped preset or
    when no row saved its config. A setting a row's config lacks (saved before the setting existed) had
    its default."""
    from dataclasses import asdict

    import yaml

    from mmea_pyg.config import Config
    from mmea_pyg.presets import preset_path

    path = preset_path(preset)
    saved = [c for c in configs if c.get("model")]
    if path is None or not saved:
        return []
    today, defaults = asdict(Config.load(path)), asdict(Config())
    fixed = yaml.safe_load(path.read_text()) or {}
    keys = [("model", k) for k in fixed.get("model", {})]
    keys += [("train", k) for k in fixed.get("train", {}) if k in STALE_TRAIN_KEYS]
    differ = {}
    for section, key in keys:
        used = {repr(c.get(section, {}).get(key, defaults[section].get(key))) for c in saved}
        if used != {repr(today[section][key])}:
            differ[f"{section}.{key}"] = (sorted(used), today[section][key])
    if not differ:
        return []
    settings = "; ".join(f"`{k}` = {', '.join(v)} (now {now!r})" for k, (v, now) in differ.items())
    return [
        f"**Stale.** These rows were made with {settings}: the `{preset}` preset has changed since. Rerun "
        f"`{rerun}` to refresh them.",
        "",
    ]


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS GiB of this child, stdout)."""
    wall, peak, _, stdout = run_measured(cmd)
    return wall, peak, stdout


def run_measured(cmd: list[str]) -> tuple[float, float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS GiB, CPU seconds (user + system) of this child,
    stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(cmd)}")
    return wall, usage.ru_maxrss / 1024**2, usage.ru_utime + usage.ru_stime, stdout


def display(cmd: list[str]) -> str:
    """A recorded command as a user would type it in the repository root."""
    words = ["python" if w == sys.executable else w.replace(f"{REPO}/", "") for w in cmd]
    return shlex.join(words)


def summarise(result: RunResult, **fields) -> dict:
    """The benchmark record of a run: ``fields`` (tag, commands, ...), the figures report.py tabulates
    (test metrics of the model's own embedding; the "+ propagation" evaluation apart), and the whole
    result object under ``result``."""
    test = result.evaluation("test")
    try:
        added = result.evaluation("test", PROPAGATION)
    except KeyError:
        added = None
    return {
        **fields,
        "dataset": result.dataset,
        "model": result.model,
        "ratio": result.config["data"]["ratio"],
        "metrics": test.metrics,
        "propagation": None
        if added is None
        else {
            "embedding": "model + LightEA propagation (eval-time add-on, not part of the model)",
            "metrics": added.metrics,
            "eval_wall_s": added.seconds,
        },
        "best_epoch": result.best_epoch,
        "train_wall_s": result.timings["train"],
        "eval_wall_s": round(result.timings["eval"] - (added.seconds if added else 0.0), 1),
        "peak_rss_gib": round(result.peak_memory["rss_gib"], 2),
        "machine": describe_machine(result.machine),
        "validation_curve": [{"epoch": h["epoch"], **h["valid"]} for h in result.history],
        "config": result.config,
        "result": result.to_dict(),
    }


def bench_one(
    dataset: str,
    ratio: float,
    model: str,
    config: str,
    ablations: list[str] = (),
    sets: list[str] = (),
    tag: str | None = None,
    device: str = "auto",
    results: Path = RESULTS,
    skip_existing: bool = False,
    runs: Path = RUNS,
    propagation: bool = True,
    report: bool = False,
) -> dict:
    """Train and evaluate one configuration through the pipeline in a child process (run folder
    ``runs/<tag>``); write and return its benchmark record (with ``skip_existing``, return the record
    already in ``results`` instead, if there is one). With ``report``, also write the run's plots and
    report.md to ``results/reports/<tag>/``."""
    tag = (tag or f"{dataset}_{model}_r{ratio:g}") + ablation_slug(ablations)
    path = results / f"{tag}.json"
    if skip_existing and path.exists():
        print(f"{tag}: kept {path.relative_to(REPO)}", flush=True)
        return json.loads(path.read_text())
    out = (runs / tag).relative_to(REPO) if (runs / tag).is_relative_to(REPO) else runs / tag  # cwd is REPO
    train = [*MMEA, "train", "--dataset", dataset, "--ratio", str(ratio), "--model", model]
    train += ["--config", config, "--out", str(out), "--device", device, "--quiet"]
    train += ["--propagation"] if propagation else []
    for ablation in ablations:
        train += ["--ablation", ablation]
    for assignment in sets:
        train += ["--set", assignment]
    wall, peak, _ = run(train)
    result = RunResult.load(REPO / out)
    record = summarise(
        result,
        tag=tag,
        ablations=list(ablations),
        sets=list(sets),
        config_file=config,
        commands=[display(train)],
        wall_s=round(wall, 1),
    )
    record["peak_rss_gib"] = round(peak, 2)  # the child's own peak, measured from outside
    results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    if report:
        result.report(results / "reports" / tag)
    m = record["metrics"]
    extra = ""
    if record["propagation"]:
        extra = f" (+ propagation: hits@1 {record['propagation']['metrics'].get('hits@1', float('nan')):.4f})"
    print(
        f"{tag}: hits@1 {m.get('hits@1', float('nan')):.4f} csls {m.get('csls/hits@1', float('nan')):.4f} "
        f"mrr {m.get('mrr', float('nan')):.4f}{extra} train {record['train_wall_s']:.0f}s "
        f"peak {record['peak_rss_gib']} GiB",
        flush=True,
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["fb15k-db15k", "fb15k-yago15k"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.2])
    parser.add_argument("--model", default="clamea")
    parser.add_argument("--config", default="clamea", help="YAML file or preset name")
    parser.add_argument("--ablation", action="append", default=[])
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--tag", default=None)
    parser.add_argument(
        "--no-propagation",
        action="store_true",
        help="skip the '+ propagation' evaluation (e.g. ablation rows)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--report", action="store_true", help="also write each run's plots to results/reports/<tag>/"
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="keep results already in results/ (resume a series)"
    )
    args = parser.parse_args()

    for dataset in args.datasets:
        for ratio in args.ratios:
            bench_one(
                dataset,
                ratio,
                args.model,
                args.config,
                args.ablation,
                args.sets,
                args.tag,
                args.device,
                skip_existing=args.skip_existing,
                propagation=not args.no_propagation,
                report=args.report,
            )
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "report.py")], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
