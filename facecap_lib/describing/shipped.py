"""The captioners that ship with the package, so that ``facecap describe photo.jpg`` works right
after install: a tiny Exp-BLIP (AUs and emotions) and AU-BLIP (AUs), trained by the book's
recipe on SynthFACS (``facecap train exp`` on the embedded default data).

:func:`ship` copies a run's final checkpoints here with their weights stored as float16 (half
the bytes; :func:`facecap_lib.inference.load_captioner` loads them as float32 on a CPU) and
writes ``manifest.json``: the command, commit, device and time that made them, every file's
sha256, and the figures the shipped weights themselves reach on chapter 4's held-out faces.
:func:`verify` checks the files against it.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from facecap_lib.training.provenance import file_entry, file_sha256, git_commit

SHIPPED = Path(__file__).resolve().parents[1] / "captioners" / "tiny"
ASPECTS = ("exp-blip", "au-blip")  # the first is describe's default
COPIED = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "training_data.json",
)  # fmt: skip


def shipped_captioner(aspect: str = "exp-blip", folder: Path = SHIPPED) -> Path:
    """The folder of a shipped captioner (``exp-blip`` or ``au-blip``)."""
    if aspect not in ASPECTS:
        raise ValueError(f"the shipped captioners are {ASPECTS}, not {aspect!r}")
    path = folder / aspect
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(
            f"no shipped {aspect} in {folder}: give --checkpoint, or make them with "
            "facecap ship-captioners"
        )
    return path


def manifest(folder: Path = SHIPPED) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def verify(folder: Path = SHIPPED) -> None:
    """Raise ``ValueError`` naming the first file that differs from the manifest."""
    for name, entry in manifest(folder)["files"].items():
        path = folder / name
        if not path.exists() or file_sha256(path) != entry["sha256"]:
            raise ValueError(f"{path} does not match {folder / 'manifest.json'}")


def _half(source: Path, target: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(source)
    halved = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(halved, target, metadata={"format": "pt"})


def ship(
    checkpoints: Mapping[str, Path],
    out: Path = SHIPPED,
    *,
    command: str,
    run: str,
    device: str,
    figures=None,
    started: float | None = None,
) -> dict:
    """Copy ``checkpoints`` (aspect -> a final checkpoint folder) into ``out`` as shipped
    captioners and write their manifest. ``figures``, if given, is called with each shipped
    folder (aspect -> folder) once they are written and returns what they measure, for the
    manifest. ``run``: the run folder's name (what trained them); ``device``: what it ran on.
    The manifest lists the files of these aspects only."""
    import time

    out = Path(out)
    for aspect in checkpoints:
        if aspect not in ASPECTS:
            raise ValueError(f"the shipped captioners are {ASPECTS}, not {aspect!r}")
    shipped = {}
    for aspect, source in checkpoints.items():
        source, target = Path(source), out / aspect
        if not (source / "model.safetensors").exists():
            raise FileNotFoundError(f"no model.safetensors in {source}")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in COPIED:
            if (source / name).exists():
                shutil.copy2(source / name, target / name)
        _half(source / "model.safetensors", target / "model.safetensors")
        shipped[aspect] = target
    files = sorted(p for a in checkpoints for p in (out / a).rglob("*") if p.is_file())
    data = {
        "what": "tiny captioners for facecap describe, trained on SynthFACS renders only",
        "aspects": list(checkpoints),
        "dtype": "float16",
        "command": command,
        "run": run,
        "commit": git_commit(),
        "device": device,
        "torch": torch.__version__,
        "created": datetime.date.today().isoformat(),
        "files": {str(p.relative_to(out)): file_entry(p) for p in files},
        "bytes": sum(p.stat().st_size for p in files),
    }
    if figures is not None:
        data["figures"] = figures(shipped)
    if started is not None:
        data["wall_time_s"] = round(time.time() - started, 1)
    (out / "manifest.json").write_text(json.dumps(data, indent=1) + "\n")
    return data
