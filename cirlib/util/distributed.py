"""Process-group plumbing for ``torchrun --nproc_per_node N``: one process per device, NCCL on N GPUs
(process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``), gloo on CPU. A single process is world size 1 and
none of this does anything.

It lives in the encoders layer because feature extraction uses the process group too (each process
encodes its share of the batches, see :mod:`cirlib.features.extract`); the training loops use it from above.
Every collective here must be called by all processes in the same order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def single_process(context: DistContext | None) -> bool:
    """True without a group of several processes (no context, or world size 1): collectives do nothing."""
    return context is None or context.world_size == 1


def is_main(context: DistContext | None) -> bool:
    """True on the process that alone touches files and shows progress (any process that is on its own)."""
    return context is None or context.is_main


def rank_device(device: str | torch.device, local_rank: int, cuda_count: int) -> torch.device:
    """The device of the process ``local_rank`` on a node with ``cuda_count`` GPUs: ``auto`` is CUDA when
    there are GPUs, else the CPU; CUDA without an index is ``cuda:local_rank`` (one GPU per process);
    anything else (``cpu``, ``cuda:K`` for a single process) is kept. Pure, so it is tested without GPUs."""
    resolved = torch.device(("cuda" if cuda_count else "cpu") if str(device) == "auto" else device)
    if resolved.type != "cuda":
        return resolved
    if resolved.index is not None:
        if resolved.index >= cuda_count:
            raise ValueError(f"device {str(device)!r} was asked for but {cuda_count} CUDA device(s) are visible")
        return resolved
    if local_rank >= cuda_count:
        fix = f"torchrun --nproc_per_node <= {cuda_count} (one process per GPU), or " if cuda_count else ""
        raise ValueError(f"LOCAL_RANK {local_rank} needs cuda:{local_rank} but {cuda_count} CUDA device(s) are "
                         f"visible: use {fix}device 'cpu'")
    return torch.device("cuda", local_rank)


def backend_for(device: torch.device) -> str:
    """The process-group backend for processes on ``device``: NCCL between GPUs, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), or an
    already initialised one; else a single process on ``device`` (see :func:`rank_device`)."""
    resolved = rank_device(device, int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count())
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)  # before the group: NCCL binds each process to its own GPU
        dist.init_process_group(backend=backend_for(resolved))
    if not dist.is_initialized():
        return DistContext(0, 1, resolved)
    return DistContext(dist.get_rank(), dist.get_world_size(), resolved)


def gather_rows(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Every process's rows (the same shape on each, on ``context.device``), concatenated in rank order
    (no gradient flows back through them)."""
    if single_process(context):
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(context.world_size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts)


def mean_over_processes(value: float, context: DistContext) -> float:
    """The mean of a number over all processes."""
    if single_process(context):
        return value
    total = torch.tensor([value], dtype=torch.float64, device=context.device)
    dist.all_reduce(total)
    return float(total.item()) / context.world_size


def main_decides(flag: bool, context: DistContext | None) -> bool:
    """The main process's ``flag`` on every process, so that all of them take the same collective path."""
    if single_process(context):
        return flag
    value = torch.tensor([int(flag)], device=context.device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def broadcast_from_main(tensor: torch.Tensor | None, context: DistContext | None) -> torch.Tensor:
    """The main process's ``tensor`` (other processes pass None) on every process, on the CPU."""
    if single_process(context):
        return tensor
    header = [(tensor.shape, tensor.dtype) if context.is_main else None]
    dist.broadcast_object_list(header, src=0, device=context.device)
    shape, dtype = header[0]
    buffer = tensor.to(context.device) if context.is_main else torch.empty(shape, dtype=dtype, device=context.device)
    dist.broadcast(buffer, src=0)
    return buffer.cpu()


def shard_batches(items: Sequence, batch_size: int, context: DistContext | None) -> list:
    """This process's share of ``items``: of the batches of ``batch_size``, those numbered rank, rank + N,
    rank + 2N, ... Split into ``batch_size`` again, they are the very batches one process would encode."""
    if single_process(context):
        return list(items)
    starts = range(context.rank * batch_size, len(items), context.world_size * batch_size)
    return [item for start in starts for item in items[start:start + batch_size]]


def gather_batches(local: torch.Tensor, count: int, batch_size: int, context: DistContext | None) -> torch.Tensor:
    """The rows of all ``count`` items on every process, in order, from each process's rows of its
    :func:`shard_batches` share (on the CPU). One all-gather, of shares padded to the longest."""
    if single_process(context) or count == 0:
        return local
    world, batches = context.world_size, math.ceil(count / batch_size)
    longest = math.ceil(batches / world) * batch_size
    padded = local.new_zeros(longest, *local.shape[1:])
    padded[:len(local)] = local
    every = gather_rows(padded.to(context.device), context).cpu()
    starts = [(b % world) * longest + (b // world) * batch_size for b in range(batches)]
    return torch.cat([every[s:s + min(batch_size, count - b * batch_size)] for b, s in enumerate(starts)])
