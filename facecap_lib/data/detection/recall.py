"""Which true faces a detector found: one-to-one matching of found boxes to true boxes."""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x, y, w, h


def _matches(found: Box, truth: Box, size_ratio: float) -> bool:
    """``found``'s centre lies in ``truth`` and their sizes (square roots of areas) are within
    ``size_ratio`` of each other: a detector's square box against a landmarks' box."""
    fx, fy = found[0] + found[2] / 2, found[1] + found[3] / 2
    tx, ty, tw, th = truth
    inside = tx <= fx <= tx + tw and ty <= fy <= ty + th
    ratio = ((found[2] * found[3]) / max(tw * th, 1e-9)) ** 0.5
    return inside and 1 / size_ratio <= ratio <= size_ratio


def match(found: Sequence[Box], truth: Sequence[Box], size_ratio: float = 2.5) -> list[int | None]:
    """For each true box, the index of the found box matched to it, or ``None``; each found box
    matches at most one true face, nearest centres first."""
    pairs = []
    for i, t in enumerate(truth):
        for j, f in enumerate(found):
            if _matches(f, t, size_ratio):
                dx = (f[0] + f[2] / 2) - (t[0] + t[2] / 2)
                dy = (f[1] + f[3] / 2) - (t[1] + t[3] / 2)
                pairs.append((dx * dx + dy * dy, i, j))
    out: list[int | None] = [None] * len(truth)
    used = set()
    for _, i, j in sorted(pairs):
        if out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out
