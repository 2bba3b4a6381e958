"""Running the trainers on several processes: DDP through ``torch.distributed``.

The trainers are ordinary functions; under ``torchrun`` or ``accelerate launch`` (both set
``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``) :func:`init` joins the process group (NCCL on GPUs,
gloo on CPUs) and the same code runs data-parallel: every rank takes its share of each global
batch (:func:`shard`), DDP averages the gradients, only rank 0 writes checkpoints and logs. In one
plain process every function here is a no-op, so nothing else changes.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch
import torch.distributed as dist


def init() -> bool:
    """Join the process group if launched by torchrun / accelerate; True when distributed."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def device(requested: torch.device) -> torch.device:
    """This rank's device: its own GPU under NCCL."""
    if active() and requested.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return requested


def shard(indices):
    """This rank's share of a global batch (the batch must divide evenly)."""
    if world() == 1:
        return indices
    if len(indices) % world():
        raise ValueError(f"batch of {len(indices)} does not split evenly over {world()} processes")
    return indices[rank() :: world()]


def wrap(model: torch.nn.Module, where: torch.device) -> torch.nn.Module:
    """The model in DistributedDataParallel when distributed, else itself."""
    if not active():
        return model
    ids = [where.index] if where.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def no_sync(wrapped: torch.nn.Module, skip: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step."""
    if skip and isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        return wrapped.no_sync()
    return nullcontext()


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor of every rank along dim 0 (no gradient)."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor of every rank along dim 0; gradients flow back to each rank's part."""
    if not active():
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()))


def mean(value: float) -> float:
    """The mean over ranks of a float (for logging losses)."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.item() / world()


def barrier() -> None:
    if active():
        dist.barrier()
