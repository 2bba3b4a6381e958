"""Pre-training the parts a from-scratch preset lacks: its language model and its image encoder.

- :func:`pretrain_language_model`: next-token prediction on the caption corpus (see
  :mod:`facecap_lib.models.language` for why that is the right text), then frozen in BLIP-2;
- :func:`pretrain_mae`: masked-autoencoder pre-training of the image encoder on face images, as the
  paper's ViT-B was (on AffectNet); :func:`facecap_lib.models.mae.install_mae_encoder` moves it in.

Both use AdamW with the warm-up and cosine schedule of :mod:`.schedule`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers import OPTForCausalLM, ViTMAEForPreTraining

from facecap_lib.data.images import Augment, load_rgb, to_tensor
from facecap_lib.models.device import resolve_device
from facecap_lib.models.language import language_model_config
from facecap_lib.models.mae import build_mae
from facecap_lib.models.presets import Preset
from facecap_lib.training.loop import autocast_for, check_finite
from facecap_lib.training.schedule import cosine_with_warmup


def _set_lr(optimizer, step: int, steps: int, lr: float, warmup: int) -> None:
    for group in optimizer.param_groups:
        group["lr"] = cosine_with_warmup(step, steps, warmup, lr, 0.0)


def pretrain_language_model(
    spec: Preset,
    tokenizer,
    texts: Sequence[str],
    *,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    log=None,
) -> OPTForCausalLM:
    """Train the preset's OPT from scratch on ``texts`` (next-token prediction) on ``device``
    (default: a GPU if there is one); returns it on the CPU. In fp32 everywhere: under bf16
    autocast the ``small`` OPT diverged to NaN after ~150 steps on an H200 (2026-11-26), and
    a model this small trains fast enough without it."""
    torch.manual_seed(seed)
    device_ = resolve_device(device or "auto")
    model = OPTForCausalLM(language_model_config(spec, tokenizer)).to(device_)
    rng = np.random.default_rng(seed)
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:126] for t in texts]
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    for step in range(steps):
        rows = [[bos, *encoded[i], eos] for i in rng.integers(0, len(encoded), batch_size)]
        ids = torch.full((len(rows), max(map(len, rows))), pad)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
        ids = ids.to(device_)
        mask = (ids != pad).long()
        _set_lr(optimizer, step, steps, lr, warmup=20)
        loss = model(
            input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)
        ).loss
        optimizer.zero_grad()
        loss.backward()
        value = check_finite(loss.item(), "language-model pre-training", step + 1)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if log and (step + 1) % 50 == 0:
            log(f"language model step {step + 1}/{steps} loss {value:.3f}")
    return model.cpu().eval()


def _image(item) -> Image.Image:
    return item if isinstance(item, Image.Image) else load_rgb(item)


def pretrain_mae(
    spec: Preset,
    images: Sequence[str | Image.Image],
    *,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 1.5e-4,
    seed: int = 0,
    device: str | torch.device | None = None,
    log=None,
) -> ViTMAEForPreTraining:
    """Masked-autoencoder pre-training of the preset's encoder on face images (files or PIL), on
    ``device`` (default: a GPU if there is one); returns it on the CPU."""
    torch.manual_seed(seed)
    device_ = resolve_device(device or "auto")
    model = build_mae(spec).to(device_)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    model.train()
    for step in range(steps):
        chosen = rng.integers(0, len(images), batch_size)
        faces = [
            Augment(seed=int(seed * 1_000_003 + step * batch_size + j))(_image(images[i]))
            for j, i in enumerate(chosen)
        ]
        _set_lr(optimizer, step, steps, lr, warmup=max(1, steps // 20))
        with autocast_for(device_):
            loss = model(pixel_values=to_tensor(faces, spec.vision.image_size).to(device_)).loss
        optimizer.zero_grad()
        loss.backward()
        value = check_finite(loss.item(), "MAE pre-training", step + 1)
        optimizer.step()
        if log and (step + 1) % 50 == 0:
            log(f"MAE step {step + 1}/{steps} loss {value:.4f}")
    return model.cpu().eval()
