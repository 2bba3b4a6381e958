"""Every task of the one training loop, built the same way for the tests that run them all
(tests/test_training.py and the two-process worker, tests/workers/ddp_train.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facecap_lib.captions.mentions import mentioned_aus
from facecap_lib.captions.rules import au_caption
from facecap_lib.data.synth.batch import FaceSpec, render_to_files
from facecap_lib.models.presets import build_model, preset
from facecap_lib.training.captioner import CaptionerConfig, CaptionerTask
from facecap_lib.training.config import FitConfig
from facecap_lib.training.contrastive import ContrastiveConfig, ContrastiveTask
from facecap_lib.training.data import Pair
from facecap_lib.training.finetune import FineTuneConfig, FineTuneTask
from facecap_lib.training.fit import Task
from facecap_lib.training.pretrain import (
    LanguageModelConfig,
    LanguageModelTask,
    MAEConfig,
    MAETask,
)
from facecap_lib.training.stage1 import QFormerConfig, QFormerTask

TASKS = ("captioner", "qformer", "language_model", "mae", "contrastive", "fine_tune")
AU_SETS = [{1, 2}, {6, 12}, {4, 7}, {25, 26}, {12, 25}, {9, 10}]
PROBED = (1, 4, 6, 12, 25)  # the fine-tuning probe's AUs


def render(folder: Path, au_sets=AU_SETS) -> list[Pair]:
    specs = [
        FaceSpec({au: 4 for au in aus}, identity=i, path=f"{i}.png")
        for i, aus in enumerate(au_sets)
    ]
    render_to_files(specs, folder, size=64, workers=1, progress=False)
    return [
        Pair(str(folder / s.path), au_caption(aus)) for s, aus in zip(specs, au_sets, strict=True)
    ]


def make(name: str, pairs: list[Pair], tokenizer, **settings) -> Task:
    """A new ``name`` task on ``pairs`` with the tiny preset; ``settings`` go to its config."""
    spec = preset("tiny")
    if name == "captioner":
        return CaptionerTask(pairs, spec, CaptionerConfig(**settings), tokenizer=tokenizer)
    if name == "qformer":
        return QFormerTask(pairs, spec, QFormerConfig(**settings), tokenizer=tokenizer)
    if name == "language_model":
        texts = [p.caption for p in pairs]
        return LanguageModelTask(spec, tokenizer, texts, LanguageModelConfig(**settings))
    if name == "mae":
        return MAETask(spec, [p.image for p in pairs], MAEConfig(**settings))
    if name == "contrastive":  # sessions of one image: the tests' batches are of 2 and 3
        return ContrastiveTask(
            spec, [p.image for p in pairs], ContrastiveConfig(session=1, **settings)
        )
    if name == "fine_tune":
        torch.manual_seed(1)
        vision = build_model(spec, tokenizer).vision_model
        y = np.array([[float(a in mentioned_aus(p.caption)) for a in PROBED] for p in pairs])
        return FineTuneTask(vision, [p.image for p in pairs], y, FineTuneConfig(**settings))
    raise ValueError(name)


def small_fit(**changes) -> FitConfig:
    """A few steps of three examples, checkpoints every two steps."""
    values = dict(max_steps=4, batch_size=3, warmup_steps=1, lr=1e-3, save_every=2, log_every=100)
    return FitConfig(**{**values, **changes})


def assert_same_weights(got: dict, expected: dict, *, rtol: float = 0.0, atol: float) -> None:
    """Every weight of ``got`` close to ``expected``, except what only rounding moves: attention
    key biases add the same amount to every score of a query, which softmax ignores, so their
    gradient is zero up to rounding and Adam turns rounding into steps of the learning rate's
    size. A fused ``qkv`` bias is compared on its query and value thirds."""
    for key, value in got.items():
        value, target = value.float().cpu(), expected[key].float().cpu()
        if key.endswith("attention.key.bias"):
            continue
        if key.endswith("qkv.bias"):
            third = len(value) // 3
            value = torch.cat([value[:third], value[2 * third :]])
            target = torch.cat([target[:third], target[2 * third :]])
        torch.testing.assert_close(value, target, rtol=rtol, atol=atol, msg=key)
