"""Stage 2 of BLIP-2: a captioner learns to caption faces (paper Sec. 3.2), as a task of
:func:`~facecap_lib.training.fit.fit`.

The language model is frozen (BLIP-2); the Q-Former, the projection and the image encoder learn,
the encoder with layer-wise learning-rate decay. A captioner starts from a preset's random weights
(with a pre-trained language model and a stage-1 Q-Former put in by the recipe), from a
pre-trained Blip2 captioner (``init``), and optionally from the authors' LAVIS weights over it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Blip2ForConditionalGeneration

from facecap_lib.models.captions import (
    CaptionLengths,
    caption_lengths,
    encode_captions,
    label_tokens,
)
from facecap_lib.models.language import install_language_model
from facecap_lib.models.lavis import load_lavis_checkpoint
from facecap_lib.models.presets import Preset, build_model, preset
from facecap_lib.models.pretrained import load_pretrained
from facecap_lib.models.stem import from_pretrained
from facecap_lib.models.tokenizer import load_tokenizer, train_tokenizer
from facecap_lib.training import distributed
from facecap_lib.training.config import FitConfig, own_settings
from facecap_lib.training.data import Pair, image_batches
from facecap_lib.training.fit import FitResult, Task, building_on, fit
from facecap_lib.training.schedule import parameter_groups


@dataclass(frozen=True)
class CaptionerConfig:
    """A captioner's settings: how it trains (``fit``) and what it starts from and learns."""

    fit: FitConfig = FitConfig()
    init: str | None = None  # a Hugging Face id or folder of a Blip2 captioner to start from
    lavis_checkpoint: str | None = None  # the authors' LAVIS .pth, loaded over the start weights
    # keys (or prefixes) of that checkpoint to leave out, e.g. a timm ViT's "visual_encoder.norm":
    # any key the mapping cannot place is an error otherwise (models.lavis)
    lavis_ignore: tuple[str, ...] = ()
    layer_decay: float = 0.95  # layer-wise lr decay of the ViT, paper
    freeze_lm: bool = True  # BLIP-2 keeps the language model frozen
    # "bf16": the frozen language model's weights kept in bf16, so that autocast does not cast
    # them again at every step (a GPU speed setting; its matrix products ran in bf16 anyway)
    frozen_lm_dtype: str = "fp32"
    # True: the frozen language model trains with its dropout on, as in LAVIS (whose model.train()
    # reaches the frozen OPT: 0.1 in OPT's configs); False: it runs in eval mode, deterministic,
    # e.g. to compare a torchrun run with one process's losses (ranks draw their own masks)
    frozen_lm_dropout: bool = True
    freeze_vision: bool = False  # the authors' config trains the ViT (freeze_vit: False)
    max_caption_tokens: int | None = (
        None  # None: the longest training caption (reported, with what is cut)
    )
    augment: bool = True  # random resized crop and flip, as the paper
    # mirror half the augmented images; off where the captions name sides (the general
    # captioner's "turned to the left", "lit from the right": a mirror image says the opposite)
    flip: bool = True

    def __post_init__(self):
        if self.frozen_lm_dtype not in ("fp32", "bf16"):
            raise ValueError(
                f"frozen_lm_dtype must be 'fp32' or 'bf16', got {self.frozen_lm_dtype!r}"
            )
        if self.frozen_lm_dtype != "fp32" and not self.freeze_lm:
            raise ValueError("frozen_lm_dtype: the language model is not frozen (freeze_lm=False)")
        if not self.frozen_lm_dropout and not self.freeze_lm:
            raise ValueError(
                "frozen_lm_dropout: the language model is not frozen (freeze_lm=False)"
            )

    @classmethod
    def smoke(cls) -> CaptionerConfig:
        return cls(fit=FitConfig.smoke(eval_every=4))


class CaptionerTask(Task):
    """Stage 2 on ``pairs`` (image files and captions).

    Args:
        pairs: the training examples.
        spec: the preset a from-scratch captioner is built as (unused with ``config.init``).
        config: see :class:`CaptionerConfig`.
        tokenizer: for a from-scratch preset; trained on the captions unless given.
        language_model: pre-trained LM weights to install in a new captioner.
        initialize: called with a new captioner to put weights in (a stage-1 Q-Former, an MAE
            encoder).
        name: in log lines.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        spec: Preset,
        config: CaptionerConfig,
        *,
        tokenizer=None,
        language_model=None,
        initialize: Callable[[Blip2ForConditionalGeneration], None] | None = None,
        log: Callable[[str], None] | None = None,
        name: str = "captioner",
    ):
        self.pairs, self.spec, self.config = pairs, spec, config
        self.tokenizer, self.language_model, self.initialize = tokenizer, language_model, initialize
        self.log, self.name = log, name

    def build(self, device):
        config = self.config
        if config.init:  # pre-trained weights and their own tokenizer
            model, self.tokenizer = load_pretrained(config.init)
        else:
            self.tokenizer = self.tokenizer or train_tokenizer([p.caption for p in self.pairs])
            with building_on(device):
                model = build_model(self.spec, self.tokenizer)
            if self.language_model is not None:
                install_language_model(model, self.language_model)
        if config.lavis_checkpoint:
            report = load_lavis_checkpoint(model, config.lavis_checkpoint, config.lavis_ignore)
            if self.log and distributed.is_main():
                self.log(f"{config.lavis_checkpoint}: {report.summary()}")
        if self.initialize is not None:
            self.initialize(model)
        return model

    def load(self, folder: Path):
        self.tokenizer = load_tokenizer(folder)
        return from_pretrained(Blip2ForConditionalGeneration, folder)

    def save(self, model, folder: Path, weights: dict | None) -> None:
        model.save_pretrained(folder, state_dict=weights)
        self.tokenizer.save_pretrained(folder)

    def freeze(self, model) -> None:
        if self.config.freeze_lm:
            model.language_model.requires_grad_(False)
        if self.config.frozen_lm_dtype == "bf16":
            model.language_model.to(torch.bfloat16)
        if self.config.freeze_vision:
            model.vision_model.requires_grad_(False)

    def parameter_groups(self, model, config: FitConfig) -> list[dict]:
        return parameter_groups(model, config.weight_decay, self.config.layer_decay)

    def train_mode(self, model) -> None:
        """``model.train()``, except a frozen image encoder, which stays in eval mode as LAVIS's
        ``disabled_train`` keeps it: frozen means its outputs do not change, and a conv stem's
        BatchNorm statistics would otherwise move with every batch. The frozen language model
        keeps its dropout unless ``frozen_lm_dropout`` is off."""
        model.train()
        if self.config.freeze_vision:
            model.vision_model.eval()
        if self.config.freeze_lm and not self.config.frozen_lm_dropout:
            model.language_model.eval()

    def caption_lengths(self, model) -> CaptionLengths:
        """The training captions' token lengths and the limit they are cut at (logged once)."""
        queries = model.config.num_query_tokens
        positions = model.config.text_config.max_position_embeddings - queries
        texts = [p.caption for p in self.pairs]
        lengths = caption_lengths(self.tokenizer, texts, self.config.max_caption_tokens, positions)
        if self.log and distributed.is_main():
            self.log(f"{self.name}: {lengths.summary()}")
        return lengths

    def batches(self, model, config: FitConfig, device):
        """Images decoded ahead (:func:`image_batches`), captions tokenized in this thread."""
        queries = model.config.num_query_tokens
        limit = self.caption_lengths(model).limit

        def captions(indices, step: int, micro: int) -> dict:
            texts = [self.pairs[i].caption for i in indices]
            return encode_captions(self.tokenizer, texts, queries, limit)

        size = model.config.vision_config.image_size
        images = [p.image for p in self.pairs]
        flip = 0.5 if self.config.flip else 0.0
        return image_batches(images, config, size, device, self.config.augment, captions, flip=flip)

    def loss(self, model, batch: dict) -> dict:
        """The mean over the caption tokens of the whole global batch (every rank's)."""
        loss = model(**batch, use_cache=False).loss
        return {"loss": distributed.global_mean(loss, label_tokens(batch["labels"]))}

    def settings(self) -> dict:
        return {"preset": self.spec.name, **own_settings(self.config)}


def train_captioner(
    pairs: Sequence[Pair],
    out_dir: str | Path,
    config: CaptionerConfig | None = None,
    *,
    spec: Preset | str = "tiny",
    device: str = "auto",
    tokenizer=None,
    language_model=None,
    initialize: Callable[[Blip2ForConditionalGeneration], None] | None = None,
    evaluate: Callable[[Blip2ForConditionalGeneration, object, int], dict] | None = None,
    log: Callable[[str], None] | None = print,
    progress: bool = False,
    stop_after: int | None = None,
    name: str = "captioner",
) -> FitResult:
    """Train (or resume, or load) a BLIP-2 captioner on ``pairs`` in ``out_dir``: the
    :class:`CaptionerTask` through :func:`~facecap_lib.training.fit.fit`. ``evaluate`` is called
    with the model, the tokenizer and the step every ``config.fit.eval_every`` steps; the result
    carries the tokenizer."""
    config = config or CaptionerConfig()
    spec = preset(spec) if isinstance(spec, str) else spec
    task = CaptionerTask(
        pairs, spec, config, tokenizer=tokenizer, language_model=language_model,
        initialize=initialize, log=log, name=name,
    )  # fmt: skip
    hook = None
    if evaluate is not None:

        def hook(model, step: int) -> dict:
            return evaluate(model, task.tokenizer, step)

    return fit(
        task, out_dir, config.fit, device=device, evaluate=hook, log=log, progress=progress,
        stop_after=stop_after,
    )  # fmt: skip
