"""The fine-tuning probe as a task of :func:`~facecap_lib.training.fit.fit`: a BLIP-2 image
encoder and one linear layer on its CLS output (:class:`FineTuneTask`), or the encoder, the
Q-Former and its queries and one linear layer on the mean query output
(:class:`QFormerFineTuneTask`), trained end to end on AU detection (multi-label) or emotion
classification (multi-class), the paper's second probing strategy (supplementary Tables 6-7).
:func:`facecap_lib.evaluation.probes.fine_tune` runs them and scores new images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecap_lib.models.stem import install_conv_stem
from facecap_lib.training import distributed
from facecap_lib.training.checkpoints import read_weights, write_weights
from facecap_lib.training.config import FitConfig, own_settings
from facecap_lib.training.data import image_batches
from facecap_lib.training.distributed import sharded
from facecap_lib.training.fit import Task

OBJECTIVES = ("multilabel", "multiclass")
WEIGHTS_FILE = "fine_tuned.safetensors"


@dataclass(frozen=True)
class FineTuneConfig:
    """The probe's settings: AdamW with cosine decay and no warm-up, no clipping."""

    fit: FitConfig = FitConfig(
        max_steps=300, batch_size=32, lr=5e-4, warmup_steps=0, weight_decay=0.05,
        clip_norm=None, log_every=50, save_every=None,
    )  # fmt: skip
    objective: str = "multilabel"  # per-AU sigmoids (NaN labels left out), or "multiclass"
    augment: bool = False  # the faces as they are, as the linear probe sees them

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")


class EncoderWithHead(nn.Module):
    """An image encoder (``Blip2VisionModel``) and a linear layer on its ``pooler_output``."""

    def __init__(self, vision: nn.Module, head: nn.Linear):
        super().__init__()
        self.vision, self.head = vision, head

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` pixels to ``[B, outputs]`` logits."""
        return self.head(self.vision(pixel_values=pixel_values).pooler_output)


class FineTuneTask(Task):
    """``vision`` (changed in place) and a new linear layer learn ``targets`` of ``images``.

    Args:
        vision: a BLIP-2 vision encoder, e.g. a loaded captioner's ``vision_model``.
        images: image files (or PIL images).
        targets: ``(n, k)`` 0/1 with NaN for "not labelled" (multilabel) or ``(n,)`` class indices.
        config: see :class:`FineTuneConfig`.
    """

    name = "fine-tune"

    def __init__(self, vision: nn.Module, images: Sequence, targets, config: FineTuneConfig):
        self.vision, self.images, self.config = vision, images, config
        if config.objective == "multilabel":
            self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))
            self.outputs = self.targets.shape[1]
        else:
            self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.long)
            self.outputs = int(self.targets.max()) + 1
        if len(self.targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.targets)} targets")

    def _head(self) -> nn.Linear:
        """The linear layer, starting at the label frequencies (or the features collapse)."""
        head = nn.Linear(self.width(), self.outputs)
        with torch.no_grad():
            if self.config.objective == "multilabel":
                rate = torch.nan_to_num(torch.nanmean(self.targets, 0), nan=0.5).clamp(0.01, 0.99)
                head.bias.copy_(torch.log(rate / (1 - rate)))
            else:
                counts = torch.bincount(self.targets, minlength=self.outputs).float()
                head.bias.copy_(counts.div(len(self.targets)).clamp_min(0.01).log())
        return head

    def width(self) -> int:
        """The width of the features the linear layer reads."""
        return self.vision.config.hidden_size

    def build(self, device):
        self.vision.requires_grad_(True)
        return EncoderWithHead(self.vision, self._head())

    def load(self, folder: Path):
        """The saved encoder and layer: into ``vision`` itself, or into a new encoder of its
        shape once ``vision`` has been sharded (FSDP's final hand-back)."""

        vision = self.vision
        if any(sharded(m) for m in vision.modules()):
            vision = type(vision)(vision.config)
            install_conv_stem(vision)
        model = EncoderWithHead(vision, self._head())
        model.load_state_dict(read_weights(folder / WEIGHTS_FILE))
        return model

    def save(self, model, folder: Path, weights: dict | None) -> None:
        write_weights(model, weights, folder / WEIGHTS_FILE)

    def batches(self, model, config: FitConfig, device):
        def targets(indices, step: int, micro: int) -> dict:
            return {"targets": self.targets[indices]}

        size = self.vision.config.image_size
        return image_batches(self.images, config, size, device, self.config.augment, targets)

    def loss(self, model, batch: dict) -> dict:
        logits, target = model(batch["pixel_values"]), batch["targets"]
        if self.config.objective == "multiclass":
            return {"loss": nn.functional.cross_entropy(logits.float(), target)}
        known = ~torch.isnan(target)
        each = nn.functional.binary_cross_entropy_with_logits(
            logits.float(), torch.nan_to_num(target), reduction="none"
        )
        mean = (each * known).sum() / known.sum().clamp_min(1)
        return {"loss": distributed.global_mean(mean, known.sum())}  # over every rank's labels

    def settings(self) -> dict:
        return {"images": len(self.images), "outputs": self.outputs, **own_settings(self.config)}


def mean_query_output(vision: nn.Module, qformer: nn.Module, queries, pixel_values):
    """``[B, hidden]``: the Q-Former's query outputs on the image encoder's output, averaged over
    the queries (what the language model reads, before the projection): the ``qformer``
    features of the linear probe and the input of the fine-tuned Q-Former's linear layer."""
    hidden = vision(pixel_values=pixel_values).last_hidden_state
    out = qformer(
        query_embeds=queries.expand(hidden.shape[0], -1, -1), encoder_hidden_states=hidden
    ).last_hidden_state
    return out.mean(1)


class QFormerWithHead(nn.Module):
    """A BLIP-2 model's image encoder, Q-Former and queries, and a linear layer on the mean of the
    query outputs: the features the linear probe reads as ``qformer``."""

    def __init__(self, vision: nn.Module, qformer: nn.Module, queries: nn.Parameter, head):
        super().__init__()
        self.vision, self.qformer, self.head = vision, qformer, head
        self.query_tokens = queries

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` pixels to ``[B, outputs]`` logits."""
        return self.head(
            mean_query_output(self.vision, self.qformer, self.query_tokens, pixel_values)
        )


class QFormerFineTuneTask(FineTuneTask):
    """:class:`FineTuneTask` through the Q-Former: ``model`` (a ``Blip2ForConditionalGeneration``,
    whose image encoder, Q-Former and queries are changed in place) and a new linear layer on
    the mean query output learn ``targets`` of ``images``. The language model is not used."""

    name = "fine-tune (Q-Former)"

    def __init__(self, model: nn.Module, images: Sequence, targets, config: FineTuneConfig):
        super().__init__(model.vision_model, images, targets, config)
        self.model = model

    def width(self) -> int:
        return self.model.config.qformer_config.hidden_size

    def _parts(self, head: nn.Linear) -> QFormerWithHead:
        m = self.model
        return QFormerWithHead(m.vision_model, m.qformer, m.query_tokens, head)

    def build(self, device):
        parts = self._parts(self._head())
        parts.requires_grad_(True)
        return parts

    def load(self, folder: Path):
        """The saved encoder, Q-Former, queries and layer: into ``model``'s own modules, or into
        new ones of their shapes once those have been sharded (FSDP's final hand-back)."""

        m = self.model
        if not any(sharded(x) for x in (*m.vision_model.modules(), *m.qformer.modules())):
            parts = self._parts(self._head())
        else:
            vision = type(m.vision_model)(m.vision_model.config)
            install_conv_stem(vision)
            queries = nn.Parameter(torch.zeros(tuple(m.query_tokens.shape)))
            qformer = type(m.qformer)(m.qformer.config)
            parts = QFormerWithHead(vision, qformer, queries, self._head())
        parts.load_state_dict(read_weights(folder / WEIGHTS_FILE))
        return parts

    def settings(self) -> dict:
        return {**super().settings(), "source": "qformer"}
