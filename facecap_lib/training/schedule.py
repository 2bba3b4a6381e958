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


def parameter_groups(model, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW groups: no decay for biases, norms and query tokens; ViT layer i gets
    ``layer_decay ** (layers + 1 - depth)`` of the learning rate (``lr_scale``)."""
    layers = model.config.vision_config.num_hidden_layers
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        no_decay = parameter.ndim < 2 or "norm" in name.lower() or name.endswith("query_tokens")
        depth = _vision_depth(name, layers)
        scale = 1.0 if depth is None else layer_decay ** (layers + 1 - depth)
        groups.setdefault((0.0 if no_decay else weight_decay, scale), []).append(parameter)
    return [{"params": p, "weight_decay": wd, "lr_scale": s} for (wd, s), p in groups.items()]


def adamw(groups: list[dict], config, device: torch.device) -> torch.optim.AdamW:
    """AdamW over ``groups`` with ``config``'s rate and betas. On a GPU (or with
    ``config.fused_optimizer``) PyTorch's fused kernel updates every tensor of a group in one pass
    over memory instead of one pass per arithmetic step; the results are the same up to rounding."""
    fused = config.fused_optimizer
    if fused is None:
        fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=fused)
