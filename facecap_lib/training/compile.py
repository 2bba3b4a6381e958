"""``torch.compile`` for the training step, one repeated block at a time.

A transformer is a stack of identical blocks: the ViT's encoder layers, the Q-Former's layers, the
language model's decoder layers. Compiling each block (PyTorch's "regional compilation") fuses the
elementwise work around the matrix products (layer norms, GELU, bias, residual adds, dtype casts)
into a few kernels, and costs the compile time of one block per kind rather than of the whole
model: every block of a stack shares the compiled code. The arithmetic changes only by rounding;
dropout's masks are drawn by the compiled code's own generator (seeded from PyTorch's, so a seeded
run is still reproducible and resumes exactly), so they differ from an uncompiled run's.
"""

from __future__ import annotations

from torch import nn


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of every outermost ``ModuleList`` of two or more modules of one class."""
    blocks: list[nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, nn.ModuleList) and len(module) > 1:
            if len({type(child) for child in module}) == 1:
                blocks += list(module)
                inside.update(id(m) for child in module for m in child.modules())
    return blocks


def compile_blocks(model: nn.Module) -> int:
    """Compile every repeated block of ``model`` in place; returns how many."""
    blocks = repeated_blocks(model)
    for block in blocks:
        block.compile()
    return len(blocks)
