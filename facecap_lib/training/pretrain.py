"""Pre-training the parts a from-scratch preset lacks, as tasks of
:func:`~facecap_lib.training.fit.fit`: its language model and its image encoder.

- :class:`LanguageModelTask`: next-token prediction on the caption corpus (see
  :mod:`facecap_lib.models.language` for why that is the right text), then frozen in BLIP-2;
- :class:`MAETask`: masked-autoencoder pre-training of the image encoder on face images, as the
  paper's ViT-B was (on AffectNet); :func:`facecap_lib.models.mae.install_mae_encoder` moves it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import OPTForCausalLM, ViTMAEForPreTraining

from facecap_lib.models.captions import label_tokens
from facecap_lib.models.language import language_model_config
from facecap_lib.models.mae import build_mae, mae_loss
from facecap_lib.models.presets import Preset
from facecap_lib.models.tokenizer import load_tokenizer
from facecap_lib.training import distributed
from facecap_lib.training.checkpoints import read_weights, write_weights
from facecap_lib.training.config import FitConfig, own_settings
from facecap_lib.training.data import batch_indices, image_batches
from facecap_lib.training.fit import Task, building_on, fit

# ---------------------------------------------------------------- the language model


@dataclass(frozen=True)
class LanguageModelConfig:
    """Next-token pre-training of a from-scratch preset's OPT. In fp32 everywhere: under bf16
    autocast the ``small`` OPT diverged to NaN after ~150 steps on an H200 (2026-11-26), and a
    model this small trains fast enough without it."""

    fit: FitConfig = FitConfig(
        max_steps=300, batch_size=32, lr=2e-3, warmup_steps=20, weight_decay=0.01,
        precision="fp32", log_every=50, save_every=None,
    )  # fmt: skip
    max_tokens: int = 128  # per text, </s> at both ends included


class LanguageModelTask(Task):
    """The preset's OPT learns ``texts`` from scratch (``</s>`` text ``</s>``, right-padded)."""

    name = "language model"

    def __init__(self, spec: Preset, tokenizer, texts: Sequence[str], config: LanguageModelConfig):
        self.spec, self.tokenizer, self.config = spec, tokenizer, config
        limit = config.max_tokens - 2
        self.encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:limit] for t in texts]

    def build(self, device):
        with building_on(device):
            return OPTForCausalLM(language_model_config(self.spec, self.tokenizer))

    def load(self, folder: Path):
        self.tokenizer = load_tokenizer(folder)
        return OPTForCausalLM.from_pretrained(folder)

    def save(self, model, folder: Path, weights: dict | None) -> None:
        model.save_pretrained(folder, state_dict=weights)
        self.tokenizer.save_pretrained(folder)

    def batches(self, model, config: FitConfig, device):
        t = self.tokenizer
        bos, eos, pad = t.bos_token_id, t.eos_token_id, t.pad_token_id

        def batch_at(step: int, micro: int) -> dict:
            indices = distributed.shard(batch_indices(len(self.encoded), step, micro, config))
            rows = [[bos, *self.encoded[i], eos] for i in indices]
            ids = torch.full((len(rows), max(map(len, rows))), pad)
            for r, row in enumerate(rows):
                ids[r, : len(row)] = torch.tensor(row)
            mask = (ids != pad).long()
            labels = ids.masked_fill(mask == 0, -100)
            return {"input_ids": ids, "attention_mask": mask, "labels": labels}

        return nullcontext(batch_at)

    def loss(self, model, batch: dict) -> dict:
        """The mean over the tokens of the whole global batch (every rank's)."""
        loss = model(**batch, use_cache=False).loss
        return {"loss": distributed.global_mean(loss, label_tokens(batch["labels"]))}

    def settings(self) -> dict:
        return {"preset": self.spec.name, "texts": len(self.encoded), **own_settings(self.config)}


def pretrain_language_model(
    spec: Preset,
    tokenizer,
    texts: Sequence[str],
    out_dir: str | Path,
    config: LanguageModelConfig | None = None,
    *,
    device: str | torch.device = "auto",
    log=None,
    progress: bool = False,
) -> OPTForCausalLM:
    """Train (or resume, or load) the preset's OPT on ``texts`` in ``out_dir`` (default device:
    a GPU if there is one); returns it on the CPU, in eval mode."""
    config = config or LanguageModelConfig()
    task = LanguageModelTask(spec, tokenizer, texts, config)
    result = fit(task, out_dir, config.fit, device=device, log=log, progress=progress)
    return result.model.cpu().eval()


# ---------------------------------------------------------------- the image encoder (MAE)

MAE_WEIGHTS = "mae.safetensors"


@dataclass(frozen=True)
class MAEConfig:
    """MAE pre-training (He et al. 2022): AdamW with betas (0.9, 0.95), weight decay 0.05, no
    gradient clipping, 75% of the patches masked, warm-up a twentieth of the steps."""

    fit: FitConfig = FitConfig(
        max_steps=500, batch_size=64, lr=1.5e-4, warmup_steps=25, betas=(0.9, 0.95),
        weight_decay=0.05, clip_norm=None, log_every=50, save_every=None,
    )  # fmt: skip
    mask_ratio: float = 0.75
    augment: bool = True  # random resized crops and flips


class MAETask(Task):
    """``ViTMAEForPreTraining`` of the preset's encoder shape learns to rebuild masked patches of
    ``images`` (files or PIL images)."""

    name = "MAE"

    def __init__(self, spec: Preset, images: Sequence[str | Image.Image], config: MAEConfig):
        self.spec, self.images, self.config = spec, images, config

    def build(self, device):
        with building_on(device):
            return build_mae(self.spec, self.config.mask_ratio)

    def load(self, folder: Path):
        model = build_mae(self.spec, self.config.mask_ratio)  # a conv stem included
        model.load_state_dict(read_weights(folder / MAE_WEIGHTS))
        return model

    def save(self, model, folder: Path, weights: dict | None) -> None:
        """The state dict as it is, and the config: transformers' ``save_pretrained`` renames
        ViTMAE's keys to its older layout, and a conv stem's ``layers.N`` with them."""
        write_weights(model, weights, folder / MAE_WEIGHTS)
        model.config.save_pretrained(folder)

    def batches(self, model, config: FitConfig, device):
        size = self.spec.vision.image_size
        return image_batches(self.images, config, size, device, self.config.augment)

    def loss(self, model, batch: dict) -> dict:
        return {"loss": mae_loss(model, batch["pixel_values"])[0]}

    def settings(self) -> dict:
        return {"preset": self.spec.name, "images": len(self.images), **own_settings(self.config)}


def pretrain_mae(
    spec: Preset,
    images: Sequence[str | Image.Image],
    out_dir: str | Path,
    config: MAEConfig | None = None,
    *,
    device: str | torch.device = "auto",
    log=None,
    progress: bool = False,
) -> ViTMAEForPreTraining:
    """Masked-autoencoder pre-training (or its resumption, or loading) of the preset's encoder
    on face images in ``out_dir`` (default device: a GPU if there is one); returns the model on
    the CPU, in eval mode."""
    config = config or MAEConfig()
    task = MAETask(spec, images, config)
    result = fit(task, out_dir, config.fit, device=device, log=log, progress=progress)
    return result.model.cpu().eval()
