"""Contrastive pre-training of the image encoder, without labels, as a task of
:func:`~facecap_lib.training.fit.fit`.

SimCLR (Chen et al. 2020): two augmented views of each image (crops, flips, colour
distortion), an MLP projection head, and the NT-Xent loss, which makes each view pick out its
twin among every other view of the batch. What the encoder learns is what tells the images of a
batch apart. Faces of different people differ most in who they are and where they were taken;
the expression, the thing a captioner needs, is a small part of that. So batches are made of
**sessions**: a few images of one person in one setting
(:mod:`facecap_lib.data.synth.pretraining`), which differ in little but the expression. Telling
those apart is the hard part of the task, and the encoder must look at the face's actions to do
it, as time-contrastive methods learn facial actions from the frames of one video (Lu et al.,
"Self-supervised learning of facial action representations", 2020). The grouping is how the
images were collected, not a label: nothing says which expression an image shows.

The loss reads the mean of the encoder's output tokens (class token and patches), so every token
the Q-Former will read is trained, not only the class token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facecap_lib.models.presets import Preset, build_vision_encoder
from facecap_lib.training import distributed
from facecap_lib.training.checkpoints import read_weights, write_weights
from facecap_lib.training.config import FitConfig, own_settings
from facecap_lib.training.data import group_indices, image_batches
from facecap_lib.training.fit import Task, building_on, fit

WEIGHTS_FILE = "contrastive.safetensors"


@dataclass(frozen=True)
class ContrastiveConfig:
    """SimCLR's settings (Chen et al. 2020) scaled to a small encoder: AdamW with warm-up and
    cosine decay, temperature 0.1, a 2-layer projection head, colour distortion 0.4."""

    fit: FitConfig = FitConfig(
        max_steps=3000, batch_size=128, lr=1e-3, warmup_steps=150, weight_decay=0.05,
        log_every=50, save_every=250,
    )  # fmt: skip
    temperature: float = 0.1
    session: int = 4  # consecutive images of one session, kept together in a batch
    projection: int = 128  # the head's output width
    color: float = 0.4  # colour distortion of each view (data.images.Augment)
    # the chance that a view is mirrored. SimCLR mirrors half; an encoder that must not confuse
    # a head turned left with one turned right (the general captioner's pose) is given 0
    flip: float = 0.5

    def __post_init__(self):
        if not 0 <= self.flip <= 1:
            raise ValueError(f"flip is a chance, between 0 and 1, got {self.flip}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.session < 1 or self.fit.batch_size % self.session:
            raise ValueError(
                f"session ({self.session}) must divide the batch size ({self.fit.batch_size})"
            )


class ContrastiveEncoder(nn.Module):
    """A BLIP-2 image encoder and SimCLR's projection head on the mean of its output tokens."""

    def __init__(self, vision: nn.Module, projection: int):
        super().__init__()
        hidden = vision.config.hidden_size
        self.vision = vision
        self.head = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, projection)
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` pixels to ``[B, projection]`` embeddings (not normalised)."""
        tokens = self.vision(pixel_values=pixel_values).last_hidden_state  # [B, 1 + patches, D]
        return self.head(tokens.mean(dim=1))


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: row ``i`` of ``first`` and of ``second`` are two views of one image; each
    view must find its twin among all ``2N - 1`` other views of the global batch (every rank's,
    under torchrun), by cosine similarity over ``temperature``."""
    first, second = F.normalize(first.float(), dim=-1), F.normalize(second.float(), dim=-1)
    every_first = distributed.gather_with_grad(first)
    every_second = distributed.gather_with_grad(second)
    n, b = len(every_first), len(first)
    own = torch.arange(b, device=first.device) + distributed.rank() * b
    queries = torch.cat([first, second])  # [2b, d]
    keys = torch.cat([every_first, every_second])  # [2N, d]
    logits = queries @ keys.T / temperature
    itself = torch.cat([own, own + n])
    twin = torch.cat([own + n, own])
    rows = torch.arange(2 * b, device=first.device)
    logits = logits.index_put((rows, itself), torch.tensor(float("-inf"), device=first.device))
    return F.cross_entropy(logits, twin)


class ContrastiveTask(Task):
    """The preset's image encoder learns from two views of each of ``images``, in sessions of
    ``config.session`` consecutive images."""

    name = "contrastive encoder"

    def __init__(self, spec: Preset, images: Sequence, config: ContrastiveConfig):
        self.spec, self.images, self.config = spec, images, config

    def build(self, device):
        with building_on(device):
            return ContrastiveEncoder(build_vision_encoder(self.spec), self.config.projection)

    def load(self, folder: Path):
        model = ContrastiveEncoder(build_vision_encoder(self.spec), self.config.projection)
        model.load_state_dict(read_weights(folder / WEIGHTS_FILE))
        return model

    def save(self, model, folder: Path, weights: dict | None) -> None:
        write_weights(model, weights, folder / WEIGHTS_FILE)

    def batches(self, model, config: FitConfig, device):
        n, session = len(self.images), self.config.session
        if n < config.batch_size:  # a batch would hold an image twice: twins that are not
            raise ValueError(f"{n} images, fewer than one batch ({config.batch_size})")

        def order(step: int, micro: int):
            return group_indices(n, session, step, micro, config)

        size = self.spec.vision.image_size
        return image_batches(
            self.images,
            config,
            size,
            device,
            True,
            views=2,
            color=self.config.color,
            flip=self.config.flip,
            order=order,
        )

    def loss(self, model, batch: dict) -> dict:
        embeddings = model(batch["pixel_values"])  # both views, stacked
        first, second = embeddings.chunk(2)
        return {"loss": nt_xent(first, second, self.config.temperature)}

    def settings(self) -> dict:
        return {"preset": self.spec.name, "images": len(self.images), **own_settings(self.config)}


def pretrain_contrastive(
    spec: Preset,
    images: Sequence,
    out_dir: str | Path,
    config: ContrastiveConfig | None = None,
    *,
    device: str | torch.device = "auto",
    log=None,
    progress: bool = False,
) -> ContrastiveEncoder:
    """Contrastive pre-training (or its resumption, or loading) of the preset's image encoder on
    ``images`` (files or PIL images, sessions consecutive) in ``out_dir``; returns the model on
    the CPU, in eval mode (its ``vision`` is a ``Blip2VisionModel``)."""
    config = config or ContrastiveConfig()
    task = ContrastiveTask(spec, images, config)
    result = fit(task, out_dir, config.fit, device=device, log=log, progress=progress)
    return result.model.cpu().eval()
