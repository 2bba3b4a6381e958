"""The settings of the paper's three stages (:class:`RecipeConfig`) and the presets the chapters
and ``facecap train`` use (:func:`recipe_config`): the one place each default is written."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

import torch

from facecap_lib.models.presets import preset
from facecap_lib.training import foundations as foundations_module
from facecap_lib.training.captioner import CaptionerConfig
from facecap_lib.training.config import RUNTIME_ONLY, FitConfig
from facecap_lib.training.pretrain import LanguageModelConfig
from facecap_lib.training.stage1 import QFormerConfig


@dataclass(frozen=True)
class RecipeConfig:
    """Settings of every stage. Defaults: the ``tiny`` preset on two CPU cores (minutes per
    captioner); :meth:`smoke` for tests; :meth:`small_gpu` for one GPU. ``captioner.init`` (a
    pre-trained captioner) replaces the language model's pre-training and stage 1."""

    preset: str = "tiny"  # the shape of every from-scratch model: the one place it is set
    # what a from-scratch preset starts from (training.foundations): "shipped" (the package's
    # pre-trained encoder and language model, where it ships them for the preset), a folder of
    # `facecap pretrain`, or None: random weights, the language model pre-trained here
    foundations: str | None = "shipped"
    language_model: LanguageModelConfig = LanguageModelConfig(
        fit=replace(LanguageModelConfig().fit, max_steps=1000, lr=2e-3, save_every=500)
    )
    qformer: QFormerConfig = QFormerConfig(
        fit=replace(
            QFormerConfig().fit, max_steps=400, batch_size=32, lr=5e-4, warmup_steps=50,
            save_every=200, log_every=50,
        )
    )  # fmt: skip
    captioner: CaptionerConfig = CaptionerConfig(
        fit=FitConfig(
            max_steps=750, batch_size=32, lr=1e-3, warmup_steps=50, save_every=250,
            eval_every=250, log_every=50,
        ),
        layer_decay=0.95,
    )  # fmt: skip
    pseudo_beams: int = 5  # the paper's beam size
    pseudo_chunk: int = 256  # images per saved chunk of pseudo-captions
    samples: int = 16  # held-out faces captioned and scored at every evaluation

    def settings(self) -> dict:
        """Everything that shapes the trained models: these settings (less the ``RUNTIME_ONLY``
        fit settings) and the preset's shapes."""
        recipe = asdict(self)
        folder = foundations_module.resolve(self.foundations, self.preset)
        recipe["foundations"] = foundations_module.manifest_digest(folder) if folder else None
        if folder:  # the language model comes pre-trained: its settings shape nothing
            del recipe["language_model"]
        for stage in ("language_model", "qformer", "captioner"):
            if stage not in recipe:
                continue
            fit = recipe[stage]["fit"]
            recipe[stage]["fit"] = {k: v for k, v in fit.items() if k not in RUNTIME_ONLY}
        return json.loads(
            json.dumps({"recipe": recipe, "preset": asdict(preset(self.preset))}, default=str)
        )

    def fingerprint(self) -> str:
        """12 hex digits of :meth:`settings`: a run folder name that changes when they do."""
        text = json.dumps(self.settings(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def fits(self) -> dict[str, FitConfig]:
        """The fit settings of each trained stage, by the name of its field."""
        return {k: getattr(self, k).fit for k in ("language_model", "qformer", "captioner")}

    def with_fits(self, **changes) -> RecipeConfig:
        """These settings with ``changes`` (e.g. ``parallel="fsdp"``) in every stage's fit."""
        stages = {
            name: replace(getattr(self, name), fit=replace(fit, **changes))
            for name, fit in self.fits().items()
        }
        return replace(self, **stages)

    @classmethod
    def smoke(cls) -> RecipeConfig:
        return cls(
            language_model=LanguageModelConfig(
                fit=replace(LanguageModelConfig().fit, max_steps=20)
            ),
            qformer=QFormerConfig.smoke(),
            captioner=CaptionerConfig.smoke(),
            pseudo_beams=1,
            pseudo_chunk=8,
            samples=2,
        )

    @classmethod
    def small_gpu(cls) -> RecipeConfig:
        """The ``small`` preset on one GPU in minutes, on 224-pixel faces and a 12-layer encoder
        and language model: each captioner sees 400 steps of 64 (25,600 examples, against 32,000
        in the ``tiny`` CPU run), sized so that the whole chapter fits one 10-minute GPU job."""
        base = cls()
        return cls(
            preset="small",
            language_model=LanguageModelConfig(
                fit=replace(base.language_model.fit, max_steps=1000, lr=5e-4)
            ),
            qformer=QFormerConfig(
                fit=replace(
                    base.qformer.fit, max_steps=300, batch_size=64, lr=5e-4, warmup_steps=30,
                    save_every=150,
                )
            ),
            captioner=CaptionerConfig(
                fit=replace(
                    base.captioner.fit, max_steps=400, batch_size=64, lr=5e-4, warmup_steps=40,
                    save_every=200, eval_every=200,
                )
            ),
        )  # fmt: skip


def default_device_config() -> RecipeConfig:
    """``small`` on a GPU, ``tiny`` on a CPU."""
    return RecipeConfig.small_gpu() if torch.cuda.is_available() else RecipeConfig()


def recipe_config(smoke: bool = False, preset_name: str = "auto") -> RecipeConfig:
    """The settings chapters and ``facecap train`` use: smoke, ``auto`` (``small`` on a GPU,
    ``tiny`` on a CPU), ``small`` (its one-GPU settings) or any preset with the defaults."""
    if smoke:
        return RecipeConfig.smoke()
    if preset_name == "auto":
        return default_device_config()
    if preset_name == "small":
        return RecipeConfig.small_gpu()
    preset(preset_name)  # unknown names fail here, naming the known ones
    return RecipeConfig(preset=preset_name)
