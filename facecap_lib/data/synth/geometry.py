"""Small drawing helpers shared by the renderer's painted parts."""

from __future__ import annotations

import numpy as np


def ellipse(cx: float, cy: float, cz: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    """``n`` points ``[n, 3]`` of an ellipse in the plane z = ``cz``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t), np.full(n, cz)], axis=1)


def rgb(colour, factor: float = 1.0) -> tuple[int, int, int]:
    """A 0-1 colour scaled by ``factor`` as 0-255 integers."""
    c = np.clip(np.asarray(colour) * factor * 255.0, 0, 255)
    return int(c[0]), int(c[1]), int(c[2])
