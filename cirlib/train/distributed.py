"""DistributedDataParallel plumbing for the training loops: one process per device, started by
``torchrun --nproc_per_node N`` (gloo on CPU, nccl on CUDA). A single process is world size 1
and none of this does anything."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..encoders.device import resolve_device


@dataclass(frozen=True)
class DistContext:
    """This process's rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), or an
    already initialised one; else a single process on ``device``."""
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        resolved = resolve_device(device)
        if resolved.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    if not dist.is_initialized():
        return DistContext(0, 1, resolve_device(device))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return DistContext(dist.get_rank(), dist.get_world_size(), resolved)


def gather_rows(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Every process's rows, concatenated in rank order (no gradient flows back through them)."""
    if context.world_size == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(context.world_size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts)


def mean_over_processes(value: float, context: DistContext) -> float:
    """The mean of a number over all processes."""
    if context.world_size == 1:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(total)
    return float(total.item()) / context.world_size


def barrier(context: DistContext) -> None:
    if context.world_size > 1:
        dist.barrier()
