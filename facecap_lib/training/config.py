"""Training settings by role, as frozen dataclasses.

- :class:`FitConfig`: how any job optimises and runs (schedule, AdamW, batch, precision,
  checkpoints, parallelism); :func:`facecap_lib.training.fit.fit` uses every field for every task;
- each task's own settings live beside the task and hold a ``fit``: ``CaptionerConfig``
  (:mod:`.captioner`), ``QFormerConfig`` (:mod:`.stage1`), ``LanguageModelConfig`` and
  ``MAEConfig`` (:mod:`.pretrain`), ``FineTuneConfig`` (:mod:`.finetune`). A setting a task does not
  use is not one of its fields, so setting it is an error that names it
  (:func:`settings_from_dict` for saved settings; the dataclass itself for keywords).

The model's shape (the preset) is not a training setting: it is given once, to the task.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass

# Settings that change how fast a run goes or how often it reports; the weights it ends with change
# at most by rounding.
RUNTIME_ONLY = ("log_every", "save_every", "fused_optimizer", "compile")
PRECISIONS = ("auto", "bf16", "fp32")
STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class FitConfig:
    """Optimiser, schedule and runtime settings of one training job. Defaults: BLIP-2's stage 2
    (supplementary Table 12, the authors' step-2 YAML) for fine-tuning pre-trained weights;
    from-scratch presets and the other tasks set their own (see each task's config)."""

    max_steps: int = (
        2000  # optimizer steps (the paper trains 20 epochs; steps make runs comparable)
    )
    batch_size: int = 32  # paper: 32 (the global batch under torchrun)
    grad_accumulation: int = 1  # micro-batches of batch_size per step
    lr: float = 1e-4  # peak; paper fine-tuning: 1e-5 (step-2 YAML), 1e-4 in the main text
    min_lr: float = 0.0  # the cosine's floor; step-2 YAML: 0
    warmup_steps: int = 100  # linear warm-up; paper: 1000 (of ~230k steps), scaled to short runs
    weight_decay: float = 0.05  # paper; never on biases, norms or query tokens (schedule.py)
    betas: tuple[float, float] = (0.9, 0.999)  # paper
    clip_norm: float | None = 1.0  # gradient-norm clipping; None: none (MAE does not clip)
    seed: int = 0  # weights, data order, augmentation, dropout
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on a CPU; "fp32" everywhere
    gradient_checkpointing: bool = False  # recompute activations: less memory, ~30% slower
    log_every: int = 10  # log lines (the losses are read from the GPU only then)
    eval_every: int | None = None  # steps between evaluations (needs an evaluate function)
    save_every: int | None = 200  # checkpoints (the last two are kept); None: only the final one
    # How the step runs, not what it computes (left out of run fingerprints, RUNTIME_ONLY):
    fused_optimizer: bool | None = None  # AdamW's one-kernel update; None: on a GPU (PyTorch's)
    compile: bool = False  # torch.compile each repeated block (training.compile)
    parallel: str = "ddp"  # under torchrun: "ddp" (copies) or "fsdp" (shards, for OPT-6.7B)

    def __post_init__(self):
        positive = ("max_steps", "batch_size", "grad_accumulation", "log_every")
        for name in positive:
            if getattr(self, name) < (0 if name == "max_steps" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("eval_every", "save_every", "clip_norm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.parallel not in STRATEGIES:
            raise ValueError(f"parallel must be one of {STRATEGIES}, got {self.parallel!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must lie in [0, lr={self.lr}], got {self.min_lr}")

    @classmethod
    def smoke(cls, **changes) -> FitConfig:
        """A few steps of a few examples: every code path, in seconds (tests, SMOKE chapters)."""
        values = dict(max_steps=8, batch_size=4, warmup_steps=2, log_every=2, save_every=4)
        return cls(**{**values, **changes})


def own_settings(config) -> dict:
    """A task config's own settings as a dict: everything but its ``fit``."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "fit"}


def settings_from_dict(cls, values: dict, where: str = ""):
    """``cls`` (a settings dataclass, nested ones included) from a dict such as a saved
    ``recipe.json`` or a project file: a key that is not a field is a ``ValueError`` naming it
    and the fields there are, never silently dropped."""
    if not isinstance(values, dict):
        raise ValueError(f"{where or cls.__name__}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"{where}{unknown[0]}: not a setting of {cls.__name__} (its settings: "
            f"{', '.join(fields)})"
        )
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        kind = _dataclass_in(hints[name])
        if kind is not None and isinstance(value, dict):
            value = settings_from_dict(kind, value, f"{where}{name}.")
        elif isinstance(value, list):
            value = tuple(value)
        out[name] = value
    return cls(**out)


def _dataclass_in(hint):
    """The dataclass a field's type names (``X`` or ``X | None``), or None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None
