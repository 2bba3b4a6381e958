"""Rendering many faces at once, on every core, straight to image files.

A :class:`FaceSpec` says what one image shows; :func:`render_to_files` renders a list of them in
worker processes (one :class:`~.render.Renderer` each) and writes each image atomically, skipping
files that already exist, so an interrupted corpus build resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.render import RENDERER_VERSION, Renderer, Scene
from facecap_lib.progress import progress_bar


@dataclass(frozen=True)
class FaceSpec:
    """One image to render: FACS intensities (0-5), one-sided AUs, who, and the scene."""

    intensities: dict[int, int]
    identity: int
    scene: Scene = field(default_factory=Scene)
    sides: dict[int, str] = field(default_factory=dict)
    path: str = ""  # relative to the output root; "" for in-memory rendering


_RENDERER: Renderer | None = None


def _init(size: int, supersample: int, version: int = RENDERER_VERSION) -> None:
    global _RENDERER
    _RENDERER = Renderer(size, supersample, version)


def _render(spec: FaceSpec) -> np.ndarray:
    assert _RENDERER is not None
    return _RENDERER.render(
        spec.intensities, Identity.from_seed(spec.identity), spec.scene, spec.sides
    )


def _write(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(image).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    tmp.replace(path)


def _render_chunk(args: tuple[list[FaceSpec], str | None]) -> list[np.ndarray] | int:
    specs, root = args
    if root is None:
        return [_render(s) for s in specs]
    done = 0
    for spec in specs:
        target = Path(root) / spec.path
        if target.exists() and target.stat().st_size > 0:
            continue
        _write(_render(spec), target)
        done += 1
    return done


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def _run(specs, root, size, supersample, workers, progress, desc, version=RENDERER_VERSION):
    chunk = 32
    chunks = [(list(specs[i : i + chunk]), root) for i in range(0, len(specs), chunk)]
    workers = workers or default_workers()
    bar = progress_bar(total=len(specs), desc=desc, unit="face", disable=not progress)
    results = []
    if workers == 1 or len(chunks) == 1:
        _init(size, supersample, version)
        for c in chunks:
            results.append(_render_chunk(c))
            bar.update(len(c[0]))
    else:
        # fork: workers only need numpy and PIL, and fork works from scripts, stdin and notebooks
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init, initargs=(size, supersample, version)
        ) as pool:
            for c, result in zip(chunks, pool.map(_render_chunk, chunks), strict=True):
                results.append(result)
                bar.update(len(c[0]))
    bar.close()
    return results


def render_to_files(
    specs: Sequence[FaceSpec],
    root: str | Path,
    *,
    size: int = 128,
    supersample: int = 2,
    workers: int | None = None,
    progress: bool = True,
    renderer: int = RENDERER_VERSION,
) -> int:
    """Render ``specs`` to ``root / spec.path`` (JPEG or PNG by extension) with renderer version
    ``renderer``; return how many were rendered (existing files are kept: the build resumes)."""
    missing = [s.path for s in specs if not s.path]
    if missing:
        raise ValueError("render_to_files needs a path in every FaceSpec")
    return sum(
        _run(list(specs), str(root), size, supersample, workers, progress, "render", renderer)
    )


def render_arrays(
    specs: Sequence[FaceSpec],
    *,
    size: int = 128,
    supersample: int = 2,
    workers: int | None = None,
    progress: bool = False,
    renderer: int = RENDERER_VERSION,
) -> np.ndarray:
    """Render ``specs`` in memory: ``uint8 [len(specs), size, size, 3]``, with renderer version
    ``renderer`` (:data:`~.render.RENDERERS`)."""
    chunks = _run(list(specs), None, size, supersample, workers, progress, "render", renderer)
    return np.stack([image for chunk in chunks for image in chunk])
