"""Time and peak memory of building a benchmark from its raw files, and of loading it from the cache.

    python benchmarks/dataset_build.py fb15k-db15k [--mirror DIR] [--json OUT]

Downloads into a fresh temporary root (so nothing is cached, text features included), then runs
the build and the cached load each in its own child process and reports wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys, time
t = time.perf_counter()
from mmea_pyg.data.mmkg import MMKGDataset
t_import = time.perf_counter()
ds = MMKGDataset(sys.argv[1], name=sys.argv[2], log=False)
ds[0]
print(t_import - t, time.perf_counter() - t_import)
"""


def run_child(root: str, name: str) -> tuple[float, float, list[float]]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, root, name], check=True, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    # ru_maxrss of the children is the maximum over every child so far: the build runs first.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024**2, [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?", default="fb15k-db15k")
    parser.add_argument("--mirror", default=os.environ.get("MMEA_MIRROR"))
    parser.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    from mmea_pyg.data.download import download_dataset

    with tempfile.TemporaryDirectory() as root:
        download_dataset(args.name, root=root, mirror=args.mirror, progress=False)
        build_wall, build_peak, _ = run_child(root, args.name)
        load_wall, _, (import_s, load_s) = run_child(root, args.name)
    import torch

    result = {
        "dataset": args.name,
        "build_from_raw_s": round(build_wall, 1),
        "build_peak_rss_gib": round(build_peak, 2),
        "load_from_cache_s": round(load_s, 2),
        "import_torch_and_pyg_s": round(import_s, 2),
        "load_process_wall_s": round(load_wall, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
