"""Checkpoints shared by the trainers: atomic folders, the newest one, the trainer state.

A checkpoint is a folder ``checkpoint-<step>`` (``final`` at the end) holding the model in
``save_pretrained`` form, its tokenizer and ``trainer_state.pt``: the step, the optimizer, the loss
history, the RNG state and the settings. It is written to a hidden temporary folder and renamed
into place, so a crash while saving never leaves a half-written checkpoint that looks complete.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

STATE_FILE = "trainer_state.pt"


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-<step>`` folder in ``out_dir``, or ``None``."""
    found = [p for p in out_dir.glob("checkpoint-*") if (p / STATE_FILE).exists()]
    return max(found, key=lambda p: int(p.name.split("-")[1])) if found else None


def finished(out_dir: Path) -> Path | None:
    """``out_dir/final`` if a run there has finished."""
    final = out_dir / "final"
    return final if (final / STATE_FILE).exists() else None


def save_checkpoint(
    out_dir: Path,
    name: str,
    write_model: Callable[[Path], None],
    *,
    optimizer_state: dict,
    step: int,
    history: list,
    config,
    keep: int = 2,
) -> Path:
    """Write ``out_dir/name`` atomically; ``write_model(folder)`` saves the weights and tokenizer.
    Older ``checkpoint-*`` folders beyond the newest ``keep`` are removed."""
    final = out_dir / name
    tmp = out_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp)
    torch.save(
        {
            "step": step,
            "optimizer": optimizer_state,
            "history": history,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "config": asdict(config),
        },
        tmp / STATE_FILE,
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    checkpoints = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in checkpoints[:-keep]:
        shutil.rmtree(old)
    return final


def load_state(folder: Path) -> dict:
    """The trainer state of a checkpoint (step, optimizer, history, RNG, settings), on the CPU
    whichever device wrote it (the optimizer moves its state to the parameters when loaded)."""
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)


def restore_rng(state: dict) -> None:
    """The random state a checkpoint saved: the CPU's, and the GPUs' when both runs have them
    (dropout on a GPU draws from the GPU's generator)."""
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
