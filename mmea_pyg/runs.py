r"""Run folders and what a run records about where it ran: the default folder (``runs/...``), the
``runs/LATEST`` pointer, the command line, the machine and the peak memory.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mmea_pyg.config import Config, ablation_slug
from mmea_pyg.distributed import is_main
from mmea_pyg.errors import MMEAError
from mmea_pyg.io import atomic_write_text, check_writable_dir

__all__ = [
    "LATEST",
    "RUNS",
    "check_run_folder",
    "command_line",
    "default_out",
    "describe_machine",
    "latest_run",
    "machine_info",
    "mark_latest",
    "peak_memory",
]

#: Run folders of ``mmea train`` and the pointer to the latest one (relative to the working directory).
RUNS = Path("runs")


LATEST = RUNS / "LATEST"


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


def default_out(config: Config) -> str:
    """``runs/<dataset>_<model>_r<ratio>_s<seed>[_ablations]`` (``<dataset>``: the folder's name when
    the dataset is a folder)."""
    ablations = ablation_slug(sorted(config.ablations))
    dataset = Path(config.data.dataset.rstrip("/\\")).name or "dataset"
    return str(RUNS / f"{dataset}_{config.model.name}_r{config.data.ratio:g}_s{config.train.seed}{ablations}")


def check_run_folder(out: str | os.PathLike) -> None:
    """Refuse, before the data build and training, a run folder that cannot be written
    (:func:`~mmea_pyg.io.check_writable_dir`; nothing is created)."""
    check_writable_dir(out, "run folder (--out)", "pass another --out")


def latest_run() -> Path:
    """The run folder of the latest ``mmea train`` in this working directory."""
    if not LATEST.exists():
        raise MMEAError("no run yet: train one first (`mmea train`) or name the run folder / checkpoint")
    return Path(LATEST.read_text(encoding="utf-8").strip())


def mark_latest(run_dir: str | os.PathLike) -> None:
    """Point ``runs/LATEST`` at ``run_dir`` (rank 0's job under torchrun)."""
    if not is_main():
        return
    atomic_write_text(LATEST, str(Path(run_dir).resolve()) + "\n")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The current command line as a user would type it (``mmea ...``)."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(("mmea", "__main__.py")):
        argv[0] = "mmea"
    return shlex.join(argv)
