"""Checkpoints shared by the trainers: atomic folders, the newest one, the trainer state.

A checkpoint is a folder ``checkpoint-<step>`` (``final`` at the end) holding the model in
``save_pretrained`` form, its tokenizer and ``trainer_state.pt``: the step, the optimizer, the loss
history, the RNG state and the settings. It is written to a hidden temporary folder and renamed
into place, so a crash while saving never leaves a half-written checkpoint that looks complete.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
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
    settings: dict,
    random_states: list[dict] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``out_dir/name`` atomically; ``write_model(folder)`` saves the weights and tokenizer.
    ``random_states``: every rank's :func:`random_state` (default: this process's). Older
    ``checkpoint-*`` folders beyond the newest ``keep`` are removed."""
    final = out_dir / name
    tmp = out_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp)
    torch.save(
        {
            "step": step,
            "optimizer": optimizer_state,
            "history": history,
            "random_states": random_states or [random_state()],
            "settings": settings,
        },
        tmp / STATE_FILE,
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    checkpoints = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in checkpoints[:-keep]:
        shutil.rmtree(old)
    return final


def write_weights(model, weights: dict | None, path: Path) -> None:
    """``model``'s state dict (or ``weights``, gathered from shards) as one safetensors file,
    keys as they are (for models that ``save_pretrained`` would rename or cannot describe)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if weights is None else weights
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, path)


def read_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def load_state(folder: Path) -> dict:
    """The trainer state of a checkpoint (step, optimizer, history, RNG, settings), on the CPU
    whichever device wrote it (the optimizer moves its state to the parameters when loaded)."""
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)


def random_state() -> dict:
    """This process's random state: the CPU's generator and the GPUs' (dropout on a GPU draws
    from the GPU's)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore_rng(state: dict, rank: int = 0) -> None:
    """The random state a checkpoint saved for ``rank``. Ranks draw differently (dropout over
    batches of different lengths), so each gets its own back; a run resumed on more processes
    than saved gives the new ones rank 0's. Checkpoints from before per-rank states hold one."""
    if "random_states" not in state:  # written before 2026-12-04
        state = {"random_states": [{"torch": state["torch_rng"], "cuda": state.get("cuda_rng")}]}
    states = state["random_states"]
    mine = states[rank] if rank < len(states) else states[0]
    torch.set_rng_state(mine["torch"])
    if mine.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(mine["cuda"])
