"""Running the trainers on several processes: DDP through ``torch.distributed``.

The trainers are ordinary functions; under ``torchrun`` or ``accelerate launch`` (both set
``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR``) :func:`init` joins the process group (NCCL on GPUs,
gloo on CPUs) and the same code runs data-parallel: every rank takes its share of each global
batch (:func:`shard`), DDP averages the gradients (or FSDP shards the weights, see :func:`wrap`),
only rank 0 writes checkpoints and logs. In one
plain process every function here is a no-op, so nothing else changes.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

from facecap_lib.training.compile import repeated_blocks
from facecap_lib.training.config import STRATEGIES


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
    """This rank's share of a global batch (the batch must divide evenly): a contiguous block, so
    that every rank's rows gathered in rank order (:func:`gather`) are the global batch in its
    own order, as one process sees it."""
    if world() == 1:
        return indices
    if len(indices) % world():
        raise ValueError(f"batch of {len(indices)} does not split evenly over {world()} processes")
    size = len(indices) // world()
    return indices[rank() * size : (rank() + 1) * size]


def global_mean(local_mean: torch.Tensor, local_count) -> torch.Tensor:
    """This rank's share of a mean over the whole global batch: ``local_mean`` (a mean over this
    rank's ``local_count`` items: tokens, labelled AUs, pairs) weighted by its part of the count
    over every rank, so that the mean of the shares over ranks, which DDP's gradient averaging
    and the logged loss take, is the global batch's mean, as one process computes it. Ranks
    whose counts differ (captions of other lengths) would otherwise weigh each token unequally.
    In one process: ``local_mean`` itself."""
    if not active():
        return local_mean
    count = torch.as_tensor(local_count, dtype=torch.float64, device=local_mean.device).detach()
    total = count.clone()
    dist.all_reduce(total)
    if count.item() == 0:  # nothing on this rank (its mean may be 0/0): no share, no NaN
        return local_mean.nan_to_num(0.0) * 0
    return local_mean * (count * world() / total).to(local_mean.dtype)


def gather_padded(tensor: torch.Tensor, value: int) -> torch.Tensor:
    """:func:`gather` of ``[B, T]`` tensors whose ``T`` differs between ranks (captions padded to
    each rank's longest): each is padded with ``value`` to the longest first."""
    if not active():
        return tensor
    length = torch.tensor([tensor.shape[1]], device=tensor.device)
    dist.all_reduce(length, op=dist.ReduceOp.MAX)
    padded = torch.nn.functional.pad(tensor, (0, int(length) - tensor.shape[1]), value=value)
    return gather(padded)


class GlobalBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm over the global batch on CPUs, where PyTorch's ``SyncBatchNorm`` does not run:
    in training under ``torch.distributed`` each rank's per-channel sums and sums of squares are
    all-reduced (gradients flow back through the reduction), so every rank normalises with the
    statistics one process would take over the whole batch. Otherwise an ordinary BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(x)
        channels, dims = x.shape[1], [0, 2, 3]
        count = torch.tensor([x.numel() / channels], dtype=x.dtype, device=x.device)
        sums = _SumWithGrad.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = sums[-1]
        mean = sums[:channels] / n
        var = (sums[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum
                if m is None:  # a cumulative moving average
                    m = 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1).clamp_min(1))
        shape = (1, channels, 1, 1)
        y = (x - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def global_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every ``BatchNorm2d`` replaced by a :class:`GlobalBatchNorm2d` holding the
    same weights and statistics (the state dict is unchanged)."""
    if type(module) is torch.nn.BatchNorm2d:
        norm = GlobalBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        norm.load_state_dict(module.state_dict())
        if module.affine:
            norm.weight.requires_grad_(module.weight.requires_grad)
            norm.bias.requires_grad_(module.bias.requires_grad)
        norm.train(module.training)
        state = list(module.state_dict().values())
        return norm.to(state[0].device) if state else norm
    for name, child in module.named_children():
        setattr(module, name, global_batchnorm(child))
    return module


def wrap(model: torch.nn.Module, where: torch.device, strategy: str = "ddp") -> torch.nn.Module:
    """The model ready for data-parallel training, or itself in one process.

    ``ddp``: DistributedDataParallel (every rank holds all weights). ``fsdp``: PyTorch's FSDP2
    ``fully_shard`` on every repeated transformer block (the image encoder's, the Q-Former's, the
    language model's: :func:`facecap_lib.training.compile.repeated_blocks`), then on the whole
    model: each rank holds a shard of every weight, frozen ones included, which is what lets
    OPT-6.7B and ViT-g train on 40 GB cards. Build the optimizer after wrapping.

    BatchNorm (the conv stem of from-scratch presets) normalises with the global batch's
    statistics: PyTorch's SyncBatchNorm on GPUs, :class:`GlobalBatchNorm2d` on CPUs (where
    SyncBatchNorm does not run), so every rank keeps the running statistics one process would.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"parallel strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not active():
        return model
    # a conv stem's BatchNorm: statistics of the global batch
    if where.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = global_batchnorm(model)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in repeated_blocks(model):
            fully_shard(block)
        fully_shard(model)
        return model
    ids = [where.index] if where.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sharded(model: torch.nn.Module) -> bool:
    """True for a model wrapped by FSDP2."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextmanager
def no_sync(wrapped: torch.nn.Module, skip: bool):
    """Skip the gradient reduction on all but the last micro-batch of an accumulated step."""
    if skip and isinstance(wrapped, torch.nn.parallel.DistributedDataParallel):
        with wrapped.no_sync():
            yield
    elif skip and sharded(wrapped):
        wrapped.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            wrapped.set_requires_gradient_sync(True)
    else:
        yield


def full_state(model: torch.nn.Module, optimizer) -> tuple[dict | None, dict]:
    """The whole model's state dict (``None`` when the model is not sharded: save it directly)
    and the optimizer's, gathered on CPU. Collective under FSDP: every rank must call it."""
    if not sharded(model):
        return None, optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return (
        get_model_state_dict(model, options=options),
        get_optimizer_state_dict(model, optimizer, options=options),
    )


def load_optimizer(model: torch.nn.Module, optimizer, state: dict) -> None:
    """Load a full optimizer state dict (as :func:`full_state` saved it) into any layout."""
    if not sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(
        model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
    )


def gather_objects(value) -> list:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
    if not active():
        return [value]
    out = [None] * world()
    dist.all_gather_object(out, value)
    return out


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor of every rank along dim 0 (no gradient)."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient of the gathered tensor and hands each
    rank its own rows (as LAVIS's ``GatherLayer``). PyTorch's deprecated ``torch.distributed.nn``
    all-gather is not used: on gloo (torch 2.13) it gave stage 1's ITC other gradients than one
    process computes, which the one-process comparison test caught (not traced further)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return gather(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        rows = grad.shape[0] // world()
        return grad[rank() * rows : (rank() + 1) * rows]


class _SumWithGrad(torch.autograd.Function):
    """All-reduce (sum) whose backward sums every rank's gradient of the sum (each rank's part
    of the sum moves every rank's loss), for :class:`GlobalBatchNorm2d`'s statistics."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor of every rank along dim 0; the gradient of each rank's part is the
    sum of every rank's gradient of it."""
    if not active():
        return tensor
    return _GatherWithGrad.apply(tensor)


def mean_all(values: list[float]) -> list[float]:
    """The means over ranks of a few floats, in one all-reduce (for logging losses)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return [v / world() for v in t.tolist()]


def barrier() -> None:
    if active():
        dist.barrier()


def main_first(make):
    """``make()`` on the main process only, then a barrier: for an artifact that one rank writes
    and every rank then reads. Returns its result on the main process, ``None`` elsewhere."""
    result = make() if is_main() else None
    barrier()
    return result


def write_once(path, make) -> None:
    """``make()`` on the main process unless ``path`` (what it writes) exists, then a barrier on
    every rank. The barrier is reached whatever each rank finds on disk: a rank that checked for
    the file itself could find it written by a faster main process, skip the barrier and leave
    the main process waiting in it while it enters the next collective (a deadlock)."""
    from pathlib import Path

    main_first(lambda: None if Path(path).exists() else make())


def main_sees(value: bool) -> bool:
    """The main process's ``value`` on every rank: for a decision (e.g. "the report exists")
    that every rank must take alike."""
    if not active():
        return value
    decided = [value]
    dist.broadcast_object_list(decided, src=0)
    return bool(decided[0])


def main_then_others(make):
    """``make()`` on the main process, then, after a barrier, on the others: for a cached artifact
    that every rank needs in memory (the main process builds and saves it; the others' call finds
    it saved and loads it). Returns its result on every rank."""
    if is_main():
        result = make()
        barrier()
        return result
    barrier()
    return make()
