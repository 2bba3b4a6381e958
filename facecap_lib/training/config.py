"""Training settings, one frozen dataclass; each default says where it comes from."""

from __future__ import annotations

from dataclasses import dataclass

# Settings that change how fast a run goes or how often it reports; the weights it ends with change
# at most by rounding.
RUNTIME_ONLY = ("log_every", "save_every", "fused_optimizer", "compile")


@dataclass(frozen=True)
class TrainConfig:
    """Stage-2 (caption generation) training. Paper values: supplementary Table 12 and the authors'
    step-2 YAML, for fine-tuning pretrained weights; from-scratch presets need a larger rate."""

    preset: str = "tiny"  # the shape of a from-scratch model (ignored with ``init``)
    init: str | None = None  # a Hugging Face id or folder of a Blip2 captioner to start from
    lavis_checkpoint: str | None = None  # the authors' LAVIS .pth, loaded over the start weights
    max_steps: int = (
        2000  # optimizer steps (the paper trains 20 epochs; steps make runs comparable)
    )
    batch_size: int = 32  # paper: 32
    grad_accumulation: int = 1
    lr: float = 1e-4  # paper fine-tuning: 1e-5 (step-2 YAML); 1e-4 peak in the main text
    min_lr: float = 0.0  # step-2 YAML: 0
    warmup_steps: int = 100  # paper: 1000 (of ~230k steps); scaled to short runs
    weight_decay: float = 0.05  # paper
    betas: tuple[float, float] = (0.9, 0.999)  # paper
    layer_decay: float = 0.95  # layer-wise lr decay of the ViT, paper
    clip_norm: float = 1.0
    freeze_lm: bool = True  # BLIP-2 keeps the language model frozen
    freeze_vision: bool = False  # the authors' config trains the ViT (freeze_vit: False)
    max_caption_tokens: int = 96
    augment: bool = True  # random resized crop and flip, as the paper
    log_every: int = 10
    eval_every: int = 200  # sample captions and held-out loss
    save_every: int = 200  # checkpoints (the last two are kept)
    seed: int = 0
    precision: str = "auto"  # bf16 autocast on a GPU, fp32 on a CPU
    gradient_checkpointing: bool = False
    # How the step runs, not what it computes (left out of run fingerprints, RUNTIME_ONLY):
    fused_optimizer: bool | None = None  # AdamW's one-kernel update; None: on a GPU (PyTorch's)
    compile: bool = False  # torch.compile each repeated block (training.compile)
    parallel: str = "ddp"  # under torchrun: "ddp" (copies) or "fsdp" (shards, for OPT-6.7B)

    @classmethod
    def stage1(cls, **changes) -> TrainConfig:
        """Stage 1 (Q-Former representation learning), the authors' step-1 YAML: batch 28, peak
        lr 1e-4, minimum 1e-5, image encoder frozen (warm-up 5000 of ~130k steps; scaled)."""
        values = dict(batch_size=28, lr=1e-4, min_lr=1e-5, freeze_vision=True)
        return cls(**{**values, **changes})

    @classmethod
    def smoke(cls) -> TrainConfig:
        return cls(
            max_steps=8, batch_size=4, warmup_steps=2, log_every=2, eval_every=4, save_every=4
        )
