"""The stage-2 training loop: a BLIP-2 captioner learns to caption faces (paper Sec. 3.2).

It reads top to bottom: schedule, forward, loss, backward, clip, step, log, save. The language
model is frozen (BLIP-2); the Q-Former, the projection and the image encoder learn, the encoder
with layer-wise learning-rate decay. Resuming is exact: a checkpoint holds the weights, the
optimizer, the step, the loss history and the RNG state, and the data order is a function of the
step, so a run killed after a checkpoint and resumed ends with the same weights as one that was
never interrupted.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.profiler import record_function
from transformers import Blip2ForConditionalGeneration

from facecap_lib.data.images import Augment, load_rgb, to_tensor
from facecap_lib.models.captions import encode_captions
from facecap_lib.models.device import resolve_device
from facecap_lib.models.language import install_language_model
from facecap_lib.models.lavis import load_lavis_checkpoint
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.pretrained import load_pretrained
from facecap_lib.models.stem import from_pretrained
from facecap_lib.models.tokenizer import load_tokenizer, train_tokenizer
from facecap_lib.training import distributed
from facecap_lib.training.checkpoints import (
    finished,
    latest_checkpoint,
    load_state,
    restore_rng,
    save_checkpoint,
)
from facecap_lib.training.compile import compile_blocks
from facecap_lib.training.config import TrainConfig
from facecap_lib.training.schedule import adamw, cosine_with_warmup, parameter_groups


@dataclass(frozen=True)
class Pair:
    """One training example: an image file and its caption."""

    image: str
    caption: str


def batch_indices(n: int, step: int, micro: int, config: TrainConfig) -> np.ndarray:
    """Which examples micro-batch ``micro`` of optimizer step ``step`` uses: a seeded permutation
    per epoch, so the order depends only on the step (exact resume)."""
    per_step = config.batch_size * config.grad_accumulation
    start = step * per_step + micro * config.batch_size
    out = []
    for position in range(start, start + config.batch_size):
        epoch, offset = divmod(position, n)
        out.append(_epoch_order(config.seed, epoch, n)[offset])
    return np.array(out)


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    order = np.random.default_rng([seed, epoch]).permutation(n)
    order.flags.writeable = False  # shared by every call of this epoch
    return order


class DecodedImages:
    """Decoded images kept in memory, up to ``budget_mb`` of pixels; images past the budget are
    decoded at every use. A small corpus (the default data: 128-pixel JPEGs, 0.4 ms each to decode,
    14 ms of a 200 ms ``tiny`` step on two cores) is decoded once; a paper-scale one fills the
    budget and costs what it did. Images are never modified in place (crops and flips make new
    ones), so a cached image is shared safely by threads and epochs."""

    def __init__(self, budget_mb: float = 1024):
        self.budget, self.used = int(budget_mb * 2**20), 0
        self.images: dict[str, Image.Image] = {}

    def __call__(self, path: str) -> Image.Image:
        image = self.images.get(path)
        if image is None:
            image = load_rgb(path)
            size = image.width * image.height * len(image.getbands())
            if path not in self.images and self.used + size <= self.budget:  # (another thread)
                self.images[path] = image
                self.used += size
        return image


def load_images(
    pairs: Sequence[Pair], indices, config: TrainConfig, step: int, pool=None, read=load_rgb
) -> list:
    """The images of a batch, augmented with a seed of (run seed, step, example): the same
    crops and flips after a resume, whichever thread of ``pool`` (if given) decodes them.
    ``read`` opens an image file (:func:`load_rgb`, or a :class:`DecodedImages`)."""

    def one(i) -> Image.Image:
        image = read(pairs[i].image)
        if config.augment:
            image = Augment(seed=zlib.crc32(f"{config.seed}/{step}/{i}".encode()))(image)
        return image

    return list(pool.map(one, indices)) if pool is not None else [one(i) for i in indices]


class ImagePrefetch:
    """The pixels of the next micro-batch, decoded in background threads while this one trains
    (and kept decoded in memory up to ``cache_mb``: :class:`DecodedImages`).

    Decoding, augmenting and resizing a batch of images costs more than a small model's step on
    a GPU. Here ``pixels(step, micro)`` returns the batch's indices and pixel tensor and starts
    the following micro-batch at once; images decode on a few threads (PIL releases the GIL).
    Tokenizing stays in the caller's thread: a fast tokenizer must not be shared across threads.
    The batches are exactly those of a serial loop (same indices, same augmentation seeds).
    """

    def __init__(
        self,
        pairs,
        config: TrainConfig,
        image_size: int,
        threads: int | None = None,
        background: bool = True,
        cache_mb: float = 1024,
        pin: bool = False,
    ):
        self.pairs, self.config, self.size = pairs, config, image_size
        self.background, self.pin = background, pin
        self.read = DecodedImages(cache_mb)
        threads = threads or min(8, os.cpu_count() or 1)
        self.decoders = ThreadPoolExecutor(threads, thread_name_prefix="facecap-decode")
        self.ahead = ThreadPoolExecutor(1, thread_name_prefix="facecap-prefetch")
        self.pending: dict[tuple[int, int], Future] = {}

    @classmethod
    def for_device(cls, pairs, config: TrainConfig, image_size: int, device: torch.device):
        """In the background on a GPU, in page-locked memory (so that the copy to the GPU does
        not hold up the host); in the training thread on a CPU, whose cores the model's own
        threads already use (threads there made the tiny preset 9% slower on 2 cores)."""
        gpu = device.type == "cuda"
        return cls(pairs, config, image_size, background=device.type != "cpu", pin=gpu)

    def _build(self, step: int, micro: int) -> tuple[np.ndarray, torch.Tensor]:
        indices = distributed.shard(batch_indices(len(self.pairs), step, micro, self.config))
        pool = self.decoders if self.background else None
        images = load_images(self.pairs, indices, self.config, step, pool, self.read)
        pixels = to_tensor(images, self.size)
        return indices, pixels.pin_memory() if self.pin else pixels

    def pixels(self, step: int, micro: int) -> tuple[np.ndarray, torch.Tensor]:
        if not self.background:
            return self._build(step, micro)
        future = self.pending.pop((step, micro), None)
        for key in list(self.pending):  # a resume or skip leaves stale work: drop it
            self.pending.pop(key).cancel()
        upcoming = (step, micro + 1)
        if micro + 1 >= self.config.grad_accumulation:
            upcoming = (step + 1, 0)
        if upcoming[0] < self.config.max_steps:
            self.pending[upcoming] = self.ahead.submit(self._build, *upcoming)
        with record_function("facecap.wait_for_images"):
            return future.result() if future is not None else self._build(step, micro)

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.ahead.shutdown(wait=True)
        self.decoders.shutdown(wait=True)

    def __enter__(self) -> ImagePrefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def building_on(device: torch.device):
    """Where a new model's random weights are drawn: on a GPU, on the GPU itself (ViT-g and
    OPT-2.7B take about a minute to initialise on two CPU cores, far less on a GPU); on a
    CPU, where it would be anyway. Same seed, same device: same weights."""
    return torch.device(device) if device.type == "cuda" else nullcontext()


def check_finite(loss: float, where, step: int) -> float:
    """``loss``, or ``FloatingPointError`` naming the run and the step, before the optimizer
    writes NaN into the weights: the last checkpoint stays good, and no GPU time goes into a
    run that can no longer learn."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"{where}: the loss is {loss} at step {step}; the weights are unchanged and the last "
            "checkpoint is good. Lower the learning rate, or train in fp32 (precision='fp32')."
        )
    return loss


def train_mode(model, config: TrainConfig) -> None:
    """``model.train()``, except a frozen image encoder, which stays in eval mode as LAVIS's
    ``disabled_train`` keeps it: frozen means its outputs do not change, and a conv stem's
    BatchNorm statistics would otherwise move with every batch."""
    model.train()
    vision = getattr(model, "vision_model", None) or model.retrieval.vision_model
    if config.freeze_vision:
        vision.eval()


def autocast_for(device: torch.device, precision: str = "auto"):
    """bf16 autocast on a GPU (unless ``precision`` is ``"fp32"``), nothing on a CPU."""
    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def make_batch(
    pairs: Sequence[Pair],
    indices: np.ndarray,
    pixel_values: torch.Tensor,
    tokenizer,
    queries: int,
    config: TrainConfig,
) -> dict[str, torch.Tensor]:
    """A training batch: the captions of ``indices``, tokenized here (in the training thread),
    and their images' pixels from :class:`ImagePrefetch`."""
    batch = encode_captions(
        tokenizer, [pairs[i].caption for i in indices], queries, config.max_caption_tokens
    )
    batch["pixel_values"] = pixel_values
    return batch


class LossBook:
    """Each step's loss, checked finite before its update reaches the weights.

    Reading a loss (``.item()``) makes the host wait for the GPU, which then idles while the
    host prepares the next step. With the fused AdamW of one unsharded model the check needs no
    wait: :meth:`guard` tells the optimizer, on the device, to skip an update whose gradient norm
    is not finite (PyTorch's ``found_inf``, as its gradient scaler does), and the loss is read one
    step late, by :meth:`settle`, after the next step's work is queued: the GPU never waits, and a
    NaN still raises :func:`check_finite` before any later update is queued. Otherwise each loss
    is read at once. Either way the weights never take a non-finite update."""

    def __init__(self, optimizer, model, where):
        fused = bool(optimizer.defaults.get("fused"))
        self.optimizer, self.where = optimizer, where
        self.deferred = fused and not distributed.sharded(model)
        self.pending: list[tuple[int, torch.Tensor | float, float]] = []
        self.checked: float | None = None

    def guard(self, step: int, loss: torch.Tensor, norm: torch.Tensor) -> None:
        """Before ``optimizer.step()``: skip it on the device if ``norm`` is not finite, or check
        ``loss`` now (and raise) when the check cannot be deferred."""
        if self.deferred:
            self.optimizer.found_inf = (~torch.isfinite(norm)).float()
        else:
            self.checked = check_finite(distributed.mean(loss.item()), self.where, step)

    def add(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """After ``optimizer.step()``: the step's loss, checked already or to be read later."""
        self.pending.append((step, loss if self.deferred else self.checked, lr))

    def settle(self) -> list[dict]:
        """History entries of the steps whose loss was not read yet (the mean over ranks: every
        rank must call it at the same steps)."""
        out = []
        for step, loss, lr in self.pending:
            if isinstance(loss, torch.Tensor):
                loss = check_finite(distributed.mean(loss.item()), self.where, step)
            out.append({"step": step, "loss": loss, "lr": lr})
        self.pending.clear()
        return out


@dataclass
class TrainResult:
    model: Blip2ForConditionalGeneration
    tokenizer: object
    history: list[dict]
    final: Path
    resumed_from: int


def train_captioner(
    pairs: Sequence[Pair],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    device: str = "auto",
    tokenizer=None,
    language_model=None,
    initialize: Callable[[Blip2ForConditionalGeneration], None] | None = None,
    evaluate: Callable[[Blip2ForConditionalGeneration, object, int], dict] | None = None,
    log: Callable[[str], None] | None = print,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume training) a BLIP-2 captioner on ``pairs``; checkpoints go to ``out_dir``.

    Args:
        pairs: image files with captions.
        out_dir: run folder: ``checkpoint-<step>/`` folders and, at the end, ``final/``.
        config: see :class:`TrainConfig` (default: its defaults).
        device: ``"auto"`` (CUDA if present), ``"cpu"`` or ``"cuda"``.
        tokenizer: for a from-scratch preset, one is trained on the captions unless given.
        language_model: pre-trained LM weights to install in a new captioner (see
            :func:`facecap_lib.training.pretrain.pretrain_language_model`); ignored on resume.
        initialize: called with a new captioner to put weights in (a stage-1 Q-Former, an MAE
            encoder, converted LAVIS weights); ignored on resume.
        evaluate: called every ``config.eval_every`` steps with the model (in eval mode), the
            tokenizer and the step; what it returns (held-out loss, sample captions) joins the
            step's history entry.
        stop_after: stop after this many steps of this call, as a crash would (for tests).

    Under ``torchrun`` / ``accelerate launch`` the same call trains data-parallel (see
    :mod:`facecap_lib.training.distributed`): ``config.batch_size`` is the global batch;
    ``config.parallel="fsdp"`` shards the weights instead of copying them.
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    distributed.init()
    device_ = distributed.device(resolve_device(device))
    if done := finished(out_dir):  # finished before: nothing to redo
        state = load_state(done)
        model = from_pretrained(Blip2ForConditionalGeneration, done).to(device_)
        return TrainResult(model, load_tokenizer(done), state["history"], done, state["step"])
    torch.manual_seed(config.seed)
    resume = latest_checkpoint(out_dir)
    if resume is not None:
        tokenizer = load_tokenizer(resume)
        model = from_pretrained(Blip2ForConditionalGeneration, resume)
    else:
        if config.init:  # pre-trained weights and their own tokenizer
            model, tokenizer = load_pretrained(config.init)
        else:
            tokenizer = tokenizer or train_tokenizer([p.caption for p in pairs])
            with building_on(device_):
                model = build_model(preset(config.preset), tokenizer)
            if language_model is not None:
                install_language_model(model, language_model)
        if config.lavis_checkpoint:
            report = load_lavis_checkpoint(model, config.lavis_checkpoint)
            if log and distributed.is_main():
                log(f"{config.lavis_checkpoint}: {report.summary()}")
        if initialize is not None:
            initialize(model)
    model.to(device_)
    if config.freeze_lm:
        model.language_model.requires_grad_(False)
    if config.freeze_vision:
        model.vision_model.requires_grad_(False)
    if config.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.2x
        (enable or model.gradient_checkpointing_enable)()
    if config.compile:
        compile_blocks(model)
    wrapped = distributed.wrap(model, device_, config.parallel)  # before the optimizer (FSDP)
    optimizer = adamw(
        parameter_groups(model, config.weight_decay, config.layer_decay), config, device_
    )
    step, history = 0, []
    if resume is not None:
        state = load_state(resume)
        distributed.load_optimizer(model, optimizer, state["optimizer"])
        step, history = state["step"], state["history"]
        restore_rng(state)
        if log and distributed.is_main():
            log(f"resumed from {resume.name} (step {step})")
    started = step
    autocast = autocast_for(device_, config.precision)
    size = model.config.vision_config.image_size
    queries = model.config.num_query_tokens

    def save(name: str) -> Path:
        """Every rank calls it (FSDP gathers the shards); rank 0 writes."""
        weights, optimizer_state = distributed.full_state(model, optimizer)

        def write(folder: Path) -> None:
            model.save_pretrained(folder, state_dict=weights)
            tokenizer.save_pretrained(folder)

        if not distributed.is_main():
            return out_dir / name
        return save_checkpoint(
            out_dir, name, write, optimizer_state=optimizer_state, step=step, history=history,
            config=config,
        )  # fmt: skip

    train_mode(model, config)
    clock = time.perf_counter()
    losses = LossBook(optimizer, model, out_dir)
    with ImagePrefetch.for_device(pairs, config, size, device_) as prefetch:
        while step < config.max_steps:
            lr = cosine_with_warmup(
                step, config.max_steps, config.warmup_steps, config.lr, config.min_lr
            )
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            total = torch.zeros((), device=device_)
            for micro in range(config.grad_accumulation):
                with record_function("facecap.batch"):
                    indices, pixels = prefetch.pixels(step, micro)
                    batch = make_batch(pairs, indices, pixels, tokenizer, queries, config)
                    batch = {k: v.to(device_, non_blocking=True) for k, v in batch.items()}
                with autocast, distributed.no_sync(wrapped, micro < config.grad_accumulation - 1):
                    with record_function("facecap.forward"):
                        loss = wrapped(**batch, use_cache=False).loss / config.grad_accumulation
                    with record_function("facecap.backward"):
                        loss.backward()
                total += loss.detach()
            history += losses.settle()  # the last step's loss, read while this one runs
            with record_function("facecap.optimizer"):
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                losses.guard(step + 1, total, norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            losses.add(step + 1, total, lr)
            step += 1
            if step % config.log_every == 0 or step == config.max_steps:
                history += losses.settle()  # on every rank: the mean over ranks is collective
                rate = (step - started) / (time.perf_counter() - clock)
                if log and distributed.is_main():
                    log(
                        f"step {step}/{config.max_steps} loss {history[-1]['loss']:.4f} "
                        f"lr {lr:.2e} ({rate:.2f} steps/s)"
                    )
            if evaluate is not None and step % config.eval_every == 0:
                history += losses.settle()
                model.eval()  # every rank evaluates: a sharded model needs all of them
                history[-1].update(evaluate(model, tokenizer, step))
                train_mode(model, config)
            if step % config.save_every == 0 and step < config.max_steps:
                history += losses.settle()
                save(f"checkpoint-{step}")
            distributed.barrier()
            if stop_after is not None and step - started >= stop_after:
                history += losses.settle()
                return TrainResult(model, tokenizer, history, out_dir, started)
    history += losses.settle()
    final = save("final")
    if distributed.is_main():
        (final / "history.json").write_text(json.dumps(history))
    distributed.barrier()
    if distributed.sharded(model):  # hand back an ordinary model: the saved, gathered one
        model = from_pretrained(Blip2ForConditionalGeneration, final).to(device_)
    return TrainResult(model, tokenizer, history, final, started)
