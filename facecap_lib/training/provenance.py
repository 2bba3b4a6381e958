"""What a manifest of shipped weights records: the commit that made them, the device, and each
file's sha256, size and (for safetensors) tensor shapes."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path

import torch


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str:
    """The checkout's commit, marked when tracked files have uncommitted changes."""
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's kind, how many threads torch uses and the vector kernels it
    runs (ATen's CPU capability; oneDNN's, where ``ONEDNN_MAX_CPU_ISA`` limits them): another
    set of kernels sums in another order, and training's figures move with it (chapter 4)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    kernels = torch.backends.cpu.get_cpu_capability()
    if limit := os.environ.get("ONEDNN_MAX_CPU_ISA"):
        kernels += f", oneDNN up to {limit}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {torch.get_num_threads()} threads, {kernels} kernels)"


def file_entry(path: Path) -> dict:
    """A manifest's entry of one file: sha256, bytes and, for safetensors, the tensors' shapes."""
    entry = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            entry["shapes"] = {k: list(f.get_slice(k).get_shape()) for k in sorted(f.keys())}
    return entry
