"""Images for the models: robust loading, resizing, normalisation and augmentation (no torchvision).

- :func:`load_rgb` reads any image PIL can (JPEG, PNG, grey, RGBA, EXIF-rotated) as RGB, upright;
  an unreadable file raises ``ValueError`` naming it.
- :func:`to_tensor` resizes (bicubic) and normalises with the CLIP statistics BLIP-2's image
  processors use, giving ``float32 [B, 3, S, S]``.
- :class:`Augment` is the paper's training augmentation: random resized crop and horizontal flip,
  seeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps, UnidentifiedImageError

MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP / BLIP-2 image statistics
STD = (0.26862954, 0.26130258, 0.27577711)


def load_rgb(path: str | Path) -> Image.Image:
    """An upright RGB image from any format PIL reads; ``ValueError`` naming an unreadable file."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "P"):
                background = Image.new("RGB", image.size, (255, 255, 255))
                rgba = image.convert("RGBA")
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from None


def to_tensor(images: Sequence[Image.Image | np.ndarray], size: int) -> torch.Tensor:
    """``float32 [B, 3, size, size]``, resized and normalised."""
    arrays = []
    for image in images:
        image = Image.fromarray(image) if isinstance(image, np.ndarray) else image
        image = image if image.mode == "RGB" else image.convert("RGB")
        arrays.append(np.asarray(image.resize((size, size), Image.Resampling.BICUBIC)))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (batch - mean) / std


def from_tensor(batch: torch.Tensor) -> list[np.ndarray]:
    """The inverse of :func:`to_tensor`'s normalisation: ``uint8 [H, W, 3]`` arrays to look at."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    pixels = (batch.detach().float().cpu() * std + mean).clamp(0, 1).mul(255).round()
    return list(pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy())


class Augment:
    """Random resized crop (scale 0.5-1 of the area, aspect 3/4-4/3) and horizontal flip; with
    ``color`` > 0 also SimCLR's colour distortion (Chen et al. 2020): brightness, contrast and
    saturation each scaled by a factor in [1 - color, 1 + color] in random order, with
    probability 0.8, then grey with probability 0.2."""

    def __init__(
        self,
        seed: int = 0,
        scale: tuple[float, float] = (0.5, 1.0),
        flip: float = 0.5,
        color: float = 0.0,
    ):
        self.rng = np.random.default_rng(seed)
        self.scale, self.flip, self.color = scale, flip, color

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        for _ in range(10):
            area = w * h * self.rng.uniform(*self.scale)
            ratio = np.exp(self.rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            cw, ch = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                x, y = int(self.rng.integers(0, w - cw + 1)), int(self.rng.integers(0, h - ch + 1))
                image = image.crop((x, y, x + cw, y + ch))
                break
        if self.rng.uniform() < self.flip:
            image = ImageOps.mirror(image)
        if self.color > 0:
            image = self._distort_colour(image)
        return image

    def _distort_colour(self, image: Image.Image) -> Image.Image:
        if self.rng.uniform() < 0.8:
            enhancers = [ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]
            for i in self.rng.permutation(len(enhancers)):
                factor = self.rng.uniform(1 - self.color, 1 + self.color)
                image = enhancers[i](image).enhance(factor)
        if self.rng.uniform() < 0.2:
            image = ImageOps.grayscale(image).convert("RGB")
        return image
