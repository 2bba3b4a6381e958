"""The one training loop: every model facecap trains goes through :func:`fit`.

BLIP-2's stage 1 (:mod:`.stage1`), the captioners of stage 2 (:mod:`.captioner`), the language
model's and the image encoder's pre-training (:mod:`.pretrain`) and chapter 5's fine-tuning probe
(:mod:`.finetune`) differ in what they build, what a batch is, what the loss is, which parameters
learn and what a checkpoint holds. Each says so in a small :class:`Task`; everything else lives
here once, for every task:

- the schedule (warm-up and cosine, :mod:`.schedule`), AdamW (fused on a GPU) over the task's
  parameter groups, gradient accumulation, clipping, bf16 autocast on a GPU;
- a check that no non-finite loss or gradient reaches the weights (:class:`LossBook`), raising
  ``FloatingPointError`` with the run and the step;
- checkpoints every ``save_every`` steps and exact resume: the weights, the optimizer, the step,
  the loss history and the RNG state are saved, and the data order is a function of the step
  (:mod:`.data`), so a run killed after a checkpoint and resumed ends with the same weights as
  one that was never interrupted; a finished run is loaded, not redone;
- data-parallel training under ``torchrun`` (DDP, or FSDP: :mod:`.distributed`), compiled blocks
  (:mod:`.compile`), gradient checkpointing, profiling regions (``facecap.batch``,
  ``facecap.forward``, ``facecap.backward``, ``facecap.optimizer``), log lines and a progress bar
  on rank 0.

The loop reads top to bottom: schedule, forward, loss, backward, clip, step, log, evaluate,
checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.profiler import record_function

from facecap_lib.models.device import resolve_device
from facecap_lib.progress import progress_bar
from facecap_lib.training import distributed
from facecap_lib.training.checkpoints import (
    finished,
    latest_checkpoint,
    load_state,
    random_state,
    restore_rng,
    save_checkpoint,
)
from facecap_lib.training.compile import compile_blocks
from facecap_lib.training.config import FitConfig
from facecap_lib.training.schedule import adamw, cosine_with_warmup, parameter_groups

Batch = dict  # tensors (moved to the device by the loop) and anything else the loss needs
BatchSource = Callable[[int, int], Batch]  # (step, micro-batch) -> batch


class Task(ABC):
    """What one kind of training supplies to :func:`fit`: the abstract methods, and the others
    where their defaults do not suit.

    A task holds its data and settings. ``build`` makes a new model (random or pre-trained
    weights, on ``device`` where it can: see :func:`building_on`), ``load`` reads one that
    ``save`` wrote, ``freeze`` stops what must not learn, ``batches`` opens the data (a function
    of step and micro-batch), and ``loss`` computes a dict of losses whose ``"loss"`` is
    minimised (any others are logged and kept in the history).
    """

    name = "model"  # in log lines and the progress bar
    tokenizer = None  # a task with text keeps its tokenizer here (loaded back on resume)

    @abstractmethod
    def build(self, device: torch.device) -> nn.Module:
        """A new model with its starting weights."""

    @abstractmethod
    def load(self, folder: Path) -> nn.Module:
        """The model :meth:`save` wrote into ``folder``."""

    @abstractmethod
    def save(self, model: nn.Module, folder: Path, weights: dict | None) -> None:
        """Write ``model`` into ``folder`` (``weights``: its gathered state dict when sharded)."""

    def freeze(self, model: nn.Module) -> None:  # noqa: B027 (a default: nothing is frozen)
        """Turn off the gradients of what stays fixed (nothing, by default)."""

    def parameter_groups(self, model: nn.Module, config: FitConfig) -> list[dict]:
        return parameter_groups(model, config.weight_decay)

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    @abstractmethod
    def batches(
        self, model: nn.Module, config: FitConfig, device: torch.device
    ) -> AbstractContextManager[BatchSource]:
        """The data, opened for the run: a function of (step, micro-batch) to a batch."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        """The batch's losses; ``"loss"`` is minimised."""

    def settings(self) -> dict:
        """The task's own settings, recorded in every checkpoint beside the fit settings."""
        return {}


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict]
    final: Path  # the ``final`` checkpoint (or the run folder, after ``stop_after``)
    resumed_from: int  # the step this call started from
    tokenizer: object | None = None


def building_on(device: torch.device):
    """Where a new model's random weights are drawn: on a GPU, on the GPU itself (ViT-g and
    OPT-2.7B take about a minute to initialise on two CPU cores, far less on a GPU); on a
    CPU, where it would be anyway. Same seed, same device: same weights."""
    return torch.device(device) if device.type == "cuda" else nullcontext()


def autocast_for(device: torch.device, precision: str = "auto"):
    """bf16 autocast on a GPU (unless ``precision`` is ``"fp32"``), nothing on a CPU."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def check_finite(value: float, where, step: int, what: str = "the loss") -> float:
    """``value``, or ``FloatingPointError`` naming the run and the step, before the optimizer
    writes NaN into the weights: the last checkpoint stays good, and no GPU time goes into a
    run that can no longer learn."""
    if not math.isfinite(value):
        raise FloatingPointError(
            f"{where}: {what} is {value} at step {step}; the weights are unchanged and the last "
            "checkpoint is good. Lower the learning rate, or train in fp32 (precision='fp32')."
        )
    return value


class LossBook:
    """Each step's losses, and a guard that no non-finite update reaches the weights.

    Reading a value from the GPU (``.item()``) makes the host wait, and the GPU then idles while
    the host prepares the next step. Two paths, both checking the loss and the gradient norm:

    - **deferred** (the fused AdamW of an unsharded model, the GPU default): :meth:`guard` tells
      the optimizer, on the device, to skip the update if the gradient norm is not finite
      (PyTorch's ``found_inf``, as its gradient scaler does), and the loss and the norm are read
      one step late, by :meth:`settle`, after the next step's work is queued, so the GPU never
      waits. A non-finite value raises there, before any later update is queued;
    - **immediate** (otherwise): :meth:`guard` reads the loss and the norm before the update and
      raises at once if either is not finite.

    Either way the weights never take a non-finite update and the run stops, naming the step
    (:func:`check_finite`). Losses are kept as one stacked tensor per step (the total first), so
    a log line costs one read per step and one all-reduce across ranks (:meth:`settle` is
    collective: every rank calls it at the same steps).
    """

    def __init__(self, optimizer, model, where):
        fused = bool(optimizer.defaults.get("fused"))
        self.optimizer, self.where = optimizer, where
        self.deferred = fused and not distributed.sharded(model)
        self.pending: list[tuple[int, list[str], torch.Tensor | list[float], float]] = []
        self.values: torch.Tensor | list[float] | None = None

    def guard(self, step: int, losses: dict[str, torch.Tensor], norm: torch.Tensor) -> None:
        """Before ``optimizer.step()``: skip it on the device if ``norm`` is not finite, or check
        the losses and ``norm`` now (and raise) when the check cannot be deferred."""
        if self.deferred:
            self.optimizer.found_inf = (~torch.isfinite(norm)).float()
            self.values = torch.cat([_stack(losses), norm.detach().float().reshape(1)])
            return
        self.values = distributed.mean_all(_stack(losses).tolist()) + [_full(norm).item()]
        self._check(step, self.values)

    def add(self, step: int, losses: dict[str, torch.Tensor], lr: float) -> None:
        """After ``optimizer.step()``: the step's losses, checked already or to be read later."""
        self.pending.append((step, list(losses), self.values, lr))

    def settle(self) -> list[dict]:
        """History entries (``step``, ``loss``, any other losses, ``lr``) of the steps whose
        values were not read yet: the means over ranks."""
        out = []
        for step, names, values, lr in self.pending:
            if isinstance(values, torch.Tensor):
                values = distributed.mean_all(values.tolist())
                self._check(step, values)
            losses = dict(zip(names, values[:-1], strict=True))
            out.append({"step": step, **losses, "lr": lr})
        self.pending.clear()
        return out

    def _check(self, step: int, values: list[float]) -> None:
        check_finite(values[0], self.where, step)
        check_finite(values[-1], self.where, step, "the gradient norm")


def _stack(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.stack([v.float() for v in losses.values()])


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """A sharded (DTensor) value gathered whole; any other tensor as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def gradient_norm(parameters: list[torch.Tensor], clip: float | None) -> torch.Tensor:
    """The total gradient norm, after clipping the gradients to ``clip`` when it is set."""
    if clip:
        return torch.nn.utils.clip_grad_norm_(parameters, clip)
    return torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Recompute activations in the backward pass, in every outermost transformers model inside
    ``model`` (a ``ValueError`` if there is none that supports it)."""
    from transformers import PreTrainedModel

    found, inside = [], set()
    for module in model.modules():
        if id(module) in inside or not isinstance(module, PreTrainedModel):
            continue
        if not module.supports_gradient_checkpointing:
            raise ValueError(f"gradient_checkpointing: {type(module).__name__} does not support it")
        found.append(module)
        inside.update(id(m) for m in module.modules())
    if not found:
        raise ValueError(
            f"gradient_checkpointing: {type(model).__name__} holds no model that has it"
        )
    for module in found:
        enable = getattr(module, "activation_checkpointing_enable", None)  # transformers >= 5.2x
        (enable or module.gradient_checkpointing_enable)()


def _on(batch: Batch, device: torch.device) -> Batch:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def _progress(task: Task, config: FitConfig, start: int, show: bool):
    return progress_bar(
        total=config.max_steps, initial=start, desc=task.name, unit="step",
        disable=not (show and distributed.is_main()), dynamic_ncols=True,
    )  # fmt: skip


def fit(
    task: Task,
    out_dir: str | Path,
    config: FitConfig,
    *,
    device: str | torch.device = "auto",
    evaluate: Callable[[nn.Module, int], dict] | None = None,
    log: Callable[[str], None] | None = print,
    progress: bool = False,
    stop_after: int | None = None,
) -> FitResult:
    """Train (or resume, or load when finished) ``task``'s model; checkpoints go to ``out_dir``.

    Args:
        task: what is trained and on what (see :class:`Task`).
        out_dir: the run folder: ``checkpoint-<step>/`` while training, ``final/`` at the end
            (with ``history.json``).
        config: optimiser, schedule and runtime settings (:class:`FitConfig`).
        device: ``"auto"`` (CUDA if present), ``"cpu"`` or ``"cuda"``.
        evaluate: called every ``config.eval_every`` steps with the model (in eval mode) and the
            step, on every rank; what it returns joins that step's history entry.
        log: where rank 0's log lines go (``None``: nowhere).
        progress: a progress bar on rank 0.
        stop_after: stop after this many steps of this call, as a crash would (for tests).

    Under ``torchrun`` / ``accelerate launch`` the same call trains data-parallel:
    ``config.batch_size`` is the global batch; ``config.parallel="fsdp"`` shards the weights.
    """
    if (evaluate is None) != (config.eval_every is None):
        raise ValueError(
            "eval_every: set it together with an evaluate function"
            if evaluate is None
            else "eval_every: an evaluate function was given but eval_every is not set"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    distributed.init()
    where = distributed.device(resolve_device(device))
    say = log if log is not None and distributed.is_main() else None
    if done := finished(out_dir):  # finished before: nothing to redo
        state = load_state(done)
        model = task.load(done).to(where)
        return FitResult(model, state["history"], done, state["step"], task.tokenizer)

    torch.manual_seed(config.seed)
    resume = latest_checkpoint(out_dir)
    model = task.load(resume) if resume is not None else task.build(where)
    model.to(where)
    task.freeze(model)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if config.compile and not compile_blocks(model):
        raise ValueError(f"compile: {type(model).__name__} has no repeated blocks to compile")
    wrapped = distributed.wrap(model, where, config.parallel)  # before the optimizer (FSDP)
    optimizer = adamw(task.parameter_groups(model, config), config, where)
    trained = [p for p in model.parameters() if p.requires_grad]
    step, history = 0, []
    if resume is not None:
        state = load_state(resume)
        distributed.load_optimizer(model, optimizer, state["optimizer"])
        step, history = state["step"], state["history"]
        restore_rng(state, distributed.rank())
        if say:
            say(f"{task.name}: resumed from {resume.name} (step {step})")
    settings = {"fit": asdict(config), "task": task.settings()}

    def save(name: str) -> Path:
        """Every rank calls it (FSDP gathers the shards, every rank's random state is kept);
        rank 0 writes."""
        weights, optimizer_state = distributed.full_state(model, optimizer)
        states = distributed.gather_objects(random_state())
        if not distributed.is_main():
            return out_dir / name
        return save_checkpoint(
            out_dir, name, lambda folder: task.save(model, folder, weights),
            optimizer_state=optimizer_state, step=step, history=history, settings=settings,
            random_states=states,
        )  # fmt: skip

    autocast = autocast_for(where, config.precision)
    accumulation = config.grad_accumulation
    book = LossBook(optimizer, model, out_dir)
    task.train_mode(model)
    started, clock = step, time.perf_counter()
    with (
        task.batches(model, config, where) as batch_at,
        _progress(task, config, step, progress) as bar,
    ):
        while step < config.max_steps:
            lr = cosine_with_warmup(
                step, config.max_steps, config.warmup_steps, config.lr, config.min_lr
            )
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            total: dict[str, torch.Tensor] = {}
            for micro in range(accumulation):
                with record_function("facecap.batch"):
                    batch = _on(batch_at(step, micro), where)
                with autocast, distributed.no_sync(wrapped, micro < accumulation - 1):
                    with record_function("facecap.forward"):
                        losses = task.loss(wrapped, batch)
                    with record_function("facecap.backward"):
                        (losses["loss"] / accumulation).backward()
                _accumulate(total, losses, accumulation)
            history += book.settle()  # the last step's losses, read while this one runs
            with record_function("facecap.optimizer"):
                norm = gradient_norm(trained, config.clip_norm)
                book.guard(step + 1, total, norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            book.add(step + 1, total, lr)
            step += 1
            bar.update()
            if step % config.log_every == 0 or step == config.max_steps:
                history += book.settle()  # on every rank: the mean over ranks is collective
                rate = (step - started) / (time.perf_counter() - clock)
                bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", refresh=False)
                if say:
                    say(f"{task.name}: {_log_line(history[-1], config.max_steps, rate)}")
            if evaluate is not None and step % config.eval_every == 0:
                history += book.settle()
                model.eval()  # every rank evaluates: a sharded model needs all of them
                history[-1].update(evaluate(model, step))
                task.train_mode(model)
            if config.save_every and step % config.save_every == 0 and step < config.max_steps:
                history += book.settle()
                save(f"checkpoint-{step}")
            distributed.barrier()
            if stop_after is not None and step - started >= stop_after:
                history += book.settle()
                return FitResult(model, history, out_dir, started, task.tokenizer)
    history += book.settle()
    final = save("final")
    if distributed.is_main():
        (final / "history.json").write_text(json.dumps(history))
    distributed.barrier()
    if distributed.sharded(model):  # hand back an ordinary model: the saved, gathered one
        model = task.load(final).to(where)
    return FitResult(model, history, final, started, task.tokenizer)


def _accumulate(total: dict, losses: dict, accumulation: int) -> None:
    """Add a micro-batch's losses, each divided by ``accumulation``, into ``total`` (the total
    loss first, as :class:`LossBook` reads them)."""
    for name in ["loss", *(k for k in losses if k != "loss")]:
        part = losses[name].detach() / accumulation
        total[name] = total[name] + part if name in total else part


def _log_line(entry: dict, steps: int, rate: float) -> str:
    """``step 50/400 loss 3.2100 itc 1.000 ... lr 1.00e-04 (2.10 steps/s)``."""
    others = " ".join(f"{k} {v:.3f}" for k, v in entry.items() if k not in ("step", "loss", "lr"))
    return (
        f"step {entry['step']}/{steps} loss {entry['loss']:.4f} {others + ' ' if others else ''}"
        f"lr {entry['lr']:.2e} ({rate:.2f} steps/s)"
    )
