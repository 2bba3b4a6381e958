"""Learning-rate schedule and parameter groups (layer-wise decay for the image encoder)."""

from __future__ import annotations

import math
import re

import torch


def cosine_with_warmup(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def _vision_depth(name: str, layers: int) -> int | None:
    """0 for the patch embeddings, i + 1 for encoder layer i, layers + 1 after it; None if not ViT."""
    if not name.startswith("vision_model."):
        return None
    match = re.search(r"encoder\.layers\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return 0 if ".embeddings." in name else layers + 1


def no_decay(name: str, parameter: torch.nn.Parameter) -> bool:
    """Parameters AdamW does not decay, in every task: biases and other vectors, norms, and
    BLIP-2's query tokens (learned inputs, like a ViT's class token in timm's rule)."""
    return parameter.ndim < 2 or "norm" in name.lower() or name.endswith("query_tokens")


def parameter_groups(model, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups of the trainable parameters: ``weight_decay`` except for :func:`no_decay`;
    with ``layer_decay`` < 1, a BLIP-2 model's ViT layer i gets ``layer_decay ** (layers + 1 -
    depth)`` of the learning rate (``lr_scale``; 1 everywhere else)."""
    layers = model.config.vision_config.num_hidden_layers if layer_decay != 1.0 else 0
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        depth = _vision_depth(name, layers) if layer_decay != 1.0 else None
        scale = 1.0 if depth is None else layer_decay ** (layers + 1 - depth)
        decay = 0.0 if no_decay(name, parameter) else weight_decay
        groups.setdefault((decay, scale), []).append(parameter)
    return [{"params": p, "weight_decay": wd, "lr_scale": s} for (wd, s), p in groups.items()]


def adamw(groups: list[dict], config, device: torch.device) -> torch.optim.AdamW:
    """AdamW over ``groups`` with ``config``'s rate and betas. On a GPU (or with
    ``config.fused_optimizer``) PyTorch's fused kernel updates every tensor of a group in one pass
    over memory instead of one pass per arithmetic step; the results are the same up to rounding."""
    fused = config.fused_optimizer
    if fused is None:
        fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=fused)
