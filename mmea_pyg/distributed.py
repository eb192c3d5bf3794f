r"""Data parallelism on :mod:`torch.distributed`: the process group, and query blocks over its ranks.

``torchrun --nproc-per-node K mmea train ...`` (or ``--nnodes N --node-rank R --rdzv-endpoint HOST:PORT``
across machines) starts ``K`` processes with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. :func:`init_from_env` joins them into one process group (gloo on the CPU, NCCL on
GPUs, each process on its ``LOCAL_RANK`` GPU); the trainer then wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel` and each rank takes its shard of every batch of seed
pairs (:mod:`mmea_pyg.training.trainer`).

The cost that grows fastest with the graphs, comparing every query with every candidate (evaluation,
CSLS terms, pseudo-seed mining), is split the same way: a :class:`Sharding` gives each rank one
contiguous block of the query rows (:meth:`Sharding.rows`), and :meth:`Sharding.gather` joins the blocks
of every rank back in order with :func:`torch.distributed.all_gather`, so that every rank holds the
whole result and a K-rank run computes what a 1-rank run computes (up to floating-point order).
:mod:`mmea_pyg.similarity` and :mod:`mmea_pyg.evaluation` take a sharding as an argument and import
nothing from here but the type: this module sits below them and imports nothing of the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "Sharding",
    "all_ranks_agree",
    "barrier",
    "current_sharding",
    "init_from_env",
    "is_main",
    "leave_group",
    "mean_over_ranks",
    "rank_and_world",
]


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or no process group)."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait for every rank (a no-op outside a process group)."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def all_ranks_agree(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank (``flag`` itself outside a group): one rank's non-finite
    loss stops all of them together rather than leaving the others waiting in a collective."""
    if rank_and_world()[1] == 1:
        return flag
    value = torch.tensor([float(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean over the ranks of each named value (``values`` itself outside a group), e.g. the
    losses one epoch logs; every rank passes the same names."""
    world = rank_and_world()[1]
    if world == 1 or not values:
        return values
    names = sorted(values)
    summed = torch.tensor([values[n] for n in names], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(summed)
    return {n: v / world for n, v in zip(names, summed.tolist(), strict=True)}


def _collective_device() -> torch.device:
    """Where a collective's tensor lives: this rank's GPU under NCCL, the CPU under gloo."""
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )


def leave_group() -> None:
    """Destroy this process's group, if any (after the models that use it: a DDP wrapper outliving its
    group can hang the process's exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def init_from_env(device: torch.device) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1):
    NCCL when ``device`` is a GPU (which becomes ``cuda:LOCAL_RANK``), gloo otherwise. Returns whether
    this process is part of a group of more than one; a group that is already initialised is kept."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return dist.get_world_size() > 1


@dataclass(frozen=True)
class Sharding:
    """Rank ``rank`` of ``world`` ranks: which block of ``n`` query rows it computes, and how the
    blocks come back together."""

    rank: int
    world: int

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """``[start, end)`` of ``rank``'s block of ``n`` rows (default: this rank's): contiguous blocks
        whose sizes differ by at most one."""
        r = self.rank if rank is None else rank
        base, extra = divmod(n, self.world)
        start = r * base + min(r, extra)
        return start, start + base + (1 if r < extra else 0)

    def rows(self, n: int) -> slice:
        """This rank's block of ``n`` rows."""
        return slice(*self.bounds(n))

    def gather(self, block: Tensor, n: int) -> Tensor:
        """The blocks of every rank, in rank order: this rank's ``block`` (its :meth:`rows` of ``n``
        along dimension 0) joined with the others' by :func:`torch.distributed.all_gather` (blocks padded
        to one size, as ``all_gather`` needs)."""
        sizes = [end - start for start, end in (self.bounds(n, r) for r in range(self.world))]
        if block.size(0) != sizes[self.rank]:
            raise ValueError(
                f"rank {self.rank} holds {block.size(0)} rows, its block of {n} has {sizes[self.rank]}"
            )
        flags = block.dtype == torch.bool  # gloo gathers no bool tensors
        padded = block.new_zeros((max(sizes), *block.shape[1:]), dtype=torch.uint8 if flags else None)
        padded[: block.size(0)] = block
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        joined = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
        return joined.bool() if flags else joined


def current_sharding() -> Sharding | None:
    """The sharding of this process's group, or ``None`` outside a group of more than one."""
    rank, world = rank_and_world()
    return Sharding(rank, world) if world > 1 else None
