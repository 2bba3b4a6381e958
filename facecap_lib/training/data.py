"""What every training task reads: the data order, and images decoded ahead of the step.

The order is a function of the step alone (:func:`batch_indices`: a seeded permutation per
epoch), and so are the crops and flips (:func:`load_images`: a seed of run seed, step and
example), so a run resumed from a checkpoint sees exactly the batches an uninterrupted one would.
:class:`ImagePrefetch` decodes the next micro-batch in background threads while this one trains.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from torch.profiler import record_function

from facecap_lib.data.images import Augment, load_rgb, to_tensor
from facecap_lib.training import distributed


@dataclass(frozen=True)
class Pair:
    """One training example: an image file and its caption."""

    image: str
    caption: str


def batch_indices(n: int, step: int, micro: int, config) -> np.ndarray:
    """Which of ``n`` examples micro-batch ``micro`` of optimizer step ``step`` uses (``config``:
    a :class:`~facecap_lib.training.config.FitConfig`): a seeded permutation per epoch, so the
    order depends only on the step (exact resume) and an epoch sees every example once."""
    per_step = config.batch_size * config.grad_accumulation
    start = step * per_step + micro * config.batch_size
    out = []
    for position in range(start, start + config.batch_size):
        epoch, offset = divmod(position, n)
        out.append(_epoch_order(config.seed, epoch, n)[offset])
    return np.array(out)


def group_indices(n: int, group: int, step: int, micro: int, config) -> np.ndarray:
    """:func:`batch_indices` over groups of ``group`` consecutive examples (examples ``g * group``
    to ``g * group + group - 1`` are group ``g``; a last incomplete group is left out): each
    micro-batch holds ``config.batch_size // group`` whole groups."""
    if config.batch_size % group:
        raise ValueError(f"batch_size {config.batch_size} is not a multiple of the group, {group}")
    groups = batch_indices(
        n // group, step, micro, replace(config, batch_size=config.batch_size // group)
    )
    return (groups[:, None] * group + np.arange(group)).reshape(-1)


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
    ones), so a cached image is shared safely by threads and epochs. A PIL image given instead of
    a file is used as it is."""

    def __init__(self, budget_mb: float = 1024):
        self.budget, self.used = int(budget_mb * 2**20), 0
        self.images: dict[str, Image.Image] = {}

    def __call__(self, path) -> Image.Image:
        if isinstance(path, Image.Image):
            return path.convert("RGB") if path.mode != "RGB" else path
        image = self.images.get(path)
        if image is None:
            image = load_rgb(path)
            size = image.width * image.height * len(image.getbands())
            if path not in self.images and self.used + size <= self.budget:  # (another thread)
                self.images[path] = image
                self.used += size
        return image


def load_images(
    images: Sequence,
    indices,
    step: int,
    *,
    seed: int,
    augment: bool,
    color: float = 0.0,
    flip: float = 0.5,
    views: int = 1,
    pool=None,
    read=load_rgb,
) -> list[Image.Image]:
    """The images ``indices`` of ``images`` (files, or PIL images with a :class:`DecodedImages`
    reader), augmented with a seed of (run seed, step, example, view): the same crops, flips and
    (with ``color``) colour distortions after a resume, whichever thread of ``pool`` (if given)
    decodes them. With ``views`` > 1 each image is read once and augmented ``views`` ways; the
    result holds every example's first view, then every example's second, and so on. ``read``
    opens an image file (:func:`load_rgb`, or a :class:`DecodedImages`). ``flip``: the chance of
    a mirror image (0 where the text names sides: a head turned left, mirrored, is turned right)."""

    def one(i) -> list[Image.Image]:
        image = read(images[i])
        if not augment:
            return [image] * views
        out = []
        for view in range(views):  # view 0: the seeds single-view runs always had
            tag = f"/{view}" if view else ""
            out.append(
                Augment(
                    seed=zlib.crc32(f"{seed}/{step}/{i}{tag}".encode()), color=color, flip=flip
                )(image)
            )
        return out

    each = list(pool.map(one, indices)) if pool is not None else [one(i) for i in indices]
    return [example[view] for view in range(views) for example in each]


class ImagePrefetch:
    """The pixels of the next micro-batch, decoded in background threads while this one trains
    (and kept decoded in memory up to ``cache_mb``: :class:`DecodedImages`).

    Decoding, augmenting and resizing a batch of images costs more than a small model's step on
    a GPU. Here ``pixels(step, micro)`` returns the batch's indices and pixel tensor and starts
    the following micro-batch at once; images decode on a few threads (PIL releases the GIL).
    Tokenizing stays in the caller's thread: a fast tokenizer must not be shared across threads.
    The batches are exactly those of a serial loop (same indices, same augmentation seeds).

    Args:
        images: image files (or PIL images) indexed by :func:`batch_indices`.
        config: the :class:`~facecap_lib.training.config.FitConfig` (batch size, accumulation,
            seed, steps).
        image_size: pixels per side of the batch.
        augment: random resized crops and flips (:class:`~facecap_lib.data.images.Augment`).
        color: the strength of colour distortion when augmenting (0: none).
        flip: the chance that an augmented image is mirrored.
        views: differently augmented copies of each example, stacked view after view: a batch
            of ``B`` examples gives ``views * B`` images (contrastive pre-training uses 2).
        order: which examples a micro-batch takes, ``(step, micro) -> indices`` (default
            :func:`batch_indices`; contrastive pre-training keeps sessions together,
            :func:`group_indices`).
    """

    def __init__(
        self,
        images: Sequence,
        config,
        image_size: int,
        *,
        augment: bool = True,
        color: float = 0.0,
        flip: float = 0.5,
        views: int = 1,
        order: Callable[[int, int], np.ndarray] | None = None,
        threads: int | None = None,
        background: bool = True,
        cache_mb: float = 1024,
        pin: bool = False,
    ):
        self.images, self.config, self.size, self.augment = images, config, image_size, augment
        self.background, self.pin = background, pin
        self.color, self.flip, self.views = color, flip, views
        self.order = order or (lambda step, micro: batch_indices(len(images), step, micro, config))
        self.read = DecodedImages(cache_mb)
        threads = threads or min(8, os.cpu_count() or 1)
        self.decoders = ThreadPoolExecutor(threads, thread_name_prefix="facecap-decode")
        self.ahead = ThreadPoolExecutor(1, thread_name_prefix="facecap-prefetch")
        self.pending: dict[tuple[int, int], Future] = {}

    @classmethod
    def for_device(
        cls,
        images: Sequence,
        config,
        image_size: int,
        device: torch.device,
        augment: bool = True,
        **options,
    ) -> ImagePrefetch:
        """In the background on a GPU, in page-locked memory (so that the copy to the GPU does
        not hold up the host); in the training thread on a CPU, whose cores the model's own
        threads already use (threads there made the tiny preset 9% slower on 2 cores)."""
        gpu = device.type == "cuda"
        return cls(
            images, config, image_size, augment=augment, background=device.type != "cpu", pin=gpu,
            **options,
        )  # fmt: skip

    def _build(self, step: int, micro: int) -> tuple[np.ndarray, torch.Tensor]:
        indices = distributed.shard(self.order(step, micro))
        pool = self.decoders if self.background else None
        images = load_images(
            self.images, indices, step, seed=self.config.seed, augment=self.augment,
            color=self.color, flip=self.flip, views=self.views, pool=pool, read=self.read,
        )  # fmt: skip
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


@contextmanager
def image_batches(
    images: Sequence,
    config,
    image_size: int,
    device: torch.device,
    augment: bool,
    more: Callable[[np.ndarray, int, int], dict] | None = None,
    **options,
):
    """A task's batches of images, decoded ahead (:meth:`ImagePrefetch.for_device`, which takes
    ``options``): a function of (step, micro-batch) to ``{"pixel_values": ...}`` and what
    ``more(indices, step, micro)`` adds for those examples (captions, labels)."""
    with ImagePrefetch.for_device(images, config, image_size, device, augment, **options) as ahead:

        def batch_at(step: int, micro: int) -> dict:
            indices, pixels = ahead.pixels(step, micro)
            return {"pixel_values": pixels, **(more(indices, step, micro) if more else {})}

        yield batch_at
