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


def start_weights(task: Task, config: FitConfig) -> dict:
    """The weights the loop starts ``task`` from under ``config``: seeded, built and frozen as
    :func:`~facecap_lib.training.fit.fit` does, on the CPU."""
    torch.manual_seed(config.seed)
    model = task.build(torch.device("cpu"))
    task.freeze(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _compared(key: str, value: torch.Tensor) -> torch.Tensor | None:
    """The part of weight ``key`` that training determines, as float on the CPU; ``None`` for
    what only rounding moves: attention key biases add the same amount to every score of a query,
    which softmax ignores, so their gradient is zero up to rounding and Adam turns rounding into
    steps of the learning rate's size. A fused ``qkv`` bias keeps its query and value thirds."""
    value = value.float().cpu()
    if key.endswith(("attention.key.bias", "k_proj.bias")):  # BERT's, ViT's; OPT's, ViTMAE's
        return None
    if key.endswith("qkv.bias"):
        third = len(value) // 3
        return torch.cat([value[:third], value[2 * third :]])
    return value


def assert_same_weights(got: dict, expected: dict, *, rtol: float = 0.0, atol: float) -> None:
    """Every weight of ``got`` close to ``expected``, element by element (:func:`_compared` says
    which part of each)."""
    for key, value in got.items():
        value, target = _compared(key, value), _compared(key, expected[key])
        if value is not None:
            torch.testing.assert_close(value, target, rtol=rtol, atol=atol, msg=key)


def assert_same_updates(got: dict, expected: dict, start: dict, *, rel: float) -> None:
    """Every weight of ``got`` moved from ``start`` as ``expected`` did, tensor by tensor: the
    two moves differ by at most ``rel`` of ``expected``'s (in norm), and a weight that
    ``expected`` left as it was, ``got`` left exactly so.

    For runs whose arithmetic is the same but summed in another order (DDP's all-reduce against
    FSDP's reduce-scatter, kernels picked for other memory): Adam's first steps are
    ``lr * g / |g|`` whatever ``g``'s size, so a weight whose gradient nearly cancels moves by a
    sizeable part of ``lr`` either way, and no element-wise tolerance both allows that and still
    means something. A rank whose gradients were not reduced, or an update applied twice or to
    one shard only, moves a tensor by a different amount altogether."""
    for key, value in got.items():
        if not value.is_floating_point():  # counters (BatchNorm's steps)
            continue
        value, target, origin = (_compared(key, w[key]) for w in (got, expected, start))
        if value is None:
            continue
        moved, ours = target - origin, value - origin
        if not moved.any():
            assert not ours.any(), f"{key}: left as it was by one run, moved by the other"
            continue
        error = ((ours - moved).norm() / moved.norm()).item()
        assert error <= rel, f"{key}: moves differ by {error:.2e} of their size (allowed {rel})"
