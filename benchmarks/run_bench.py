"""Train and evaluate models on the benchmarks, recording metrics, wall time and peak memory.

    python benchmarks/run_bench.py --datasets fb15k-db15k fb15k-yago15k --ratios 0.2 \
        --config clamea [--ablation "w/o V"] [--set key=value] [--tag NAME] [--skip-existing]

Each run is `mmea train` then `mmea eval --csls --json` in child processes (so peak RSS is the run's
own); results go to results/<tag or dataset_model_ratio>.json and BENCHMARKS.md is regenerated from
every results/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmea_pyg.config import ablation_slug

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
RUNS = REPO / "runs" / "bench"
MMEA = [sys.executable, "-m", "mmea_pyg.cli"]


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``: an interrupted
    run leaves the previous file whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, {gpu}, torch {torch.__version__}"


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak RSS GiB of this child, stdout)."""
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
    return wall, usage.ru_maxrss / 1024**2, stdout


def display(cmd: list[str]) -> str:
    """A recorded command as a user would type it in the repository root."""
    words = ["python" if w == sys.executable else w.replace(f"{REPO}/", "") for w in cmd]
    return shlex.join(words)


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
) -> dict:
    """Train and evaluate one configuration in child processes (run folder ``runs/<tag>``); write and
    return its result record (with ``skip_existing``, return the record already in ``results``
    instead, if there is one)."""
    tag = (tag or f"{dataset}_{model}_r{ratio:g}") + ablation_slug(ablations)
    path = results / f"{tag}.json"
    if skip_existing and path.exists():
        print(f"{tag}: kept {path.relative_to(REPO)}", flush=True)
        return json.loads(path.read_text())
    out = runs / tag
    train = [*MMEA, "train", "--dataset", dataset, "--ratio", str(ratio), "--model", model]
    train += ["--config", config, "--out", str(out), "--device", device, "--quiet"]
    for ablation in ablations:
        train += ["--ablation", ablation]
    for assignment in sets:
        train += ["--set", assignment]
    train_wall, train_peak, train_log = run(train)
    evaluate = [*MMEA, "eval", "--checkpoint", str(out / "best.pt"), "--csls", "--json", "--device", device]
    eval_wall, eval_peak, eval_out = run(evaluate)
    result = json.loads(eval_out)
    # The "+ propagation" row: the same checkpoint with LightEA's seed labels appended (an add-on).
    propagate = [*evaluate, "--propagation"]
    prop_wall, prop_peak, prop_out = run(propagate) if propagation else (0.0, 0.0, "")
    history = [json.loads(line) for line in train_log.splitlines() if line.startswith("{")]
    record = {
        "tag": tag,
        "dataset": dataset,
        "model": model,
        "ratio": ratio,
        "ablations": list(ablations),
        "sets": list(sets),
        "config_file": config,
        "metrics": result["metrics"],
        "propagation": {
            "embedding": "model + LightEA propagation (eval-time add-on, not part of the model)",
            "metrics": json.loads(prop_out)["metrics"],
            "eval_wall_s": round(prop_wall, 1),
            "command": display(propagate),
        }
        if propagation
        else None,
        "best_epoch": result["epoch"],
        "train_wall_s": round(train_wall, 1),
        "eval_wall_s": round(eval_wall, 1),
        "peak_rss_gib": round(max(train_peak, eval_peak, prop_peak), 2),
        "machine": machine(),
        "commands": [display(train), display(evaluate)] + ([display(propagate)] if propagation else []),
        "validation_curve": [{"epoch": h["epoch"], **h["valid"]} for h in history],
        "config": json.loads((out / "eval_test.json").read_text())["config"],
    }
    results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2))
    m = record["metrics"]
    extra = ""
    if propagation:
        extra = f" (+ propagation: hits@1 {record['propagation']['metrics'].get('hits@1', float('nan')):.4f})"
    print(
        f"{tag}: hits@1 {m.get('hits@1', float('nan')):.4f} csls {m.get('csls/hits@1', float('nan')):.4f} "
        f"mrr {m.get('mrr', float('nan')):.4f}{extra} train {train_wall:.0f}s peak {record['peak_rss_gib']} GiB",
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
            )
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "report.py")], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
