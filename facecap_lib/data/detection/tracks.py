"""Faces followed from frame to frame: which face of each sampled frame is which person.

:class:`Tracker` matches each frame's faces to the tracks alive, greedily by the overlap (IoU)
of the face's box with the track's last box, best pairs first; a face that overlaps no track by
``min_iou`` starts a new one, and a track unseen for more than ``patience`` sampled frames in a
row ends (a face seen again after that is a new track). Between frames sampled a fifth of a second apart a face
moves little, so overlap is enough; no appearance model is needed for the clips this is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from facecap_lib.data.detection import blazeface

Box = tuple[float, float, float, float]  # x, y, w, h


def iou(a: Box, b: Box) -> float:
    """The overlap of two ``(x, y, w, h)`` boxes (intersection over union)."""
    corners = np.array([[x, y, x + w, y + h] for x, y, w, h in (a, b)], np.float64)
    return float(blazeface.iou(corners[0], corners[1:])[0])


@dataclass
class Tracker:
    """Assigns track numbers (0, 1, ... in order of first appearance) to each frame's boxes."""

    min_iou: float = 0.3
    patience: int = 10
    _last: dict[int, Box] = field(default_factory=dict)
    _missed: dict[int, int] = field(default_factory=dict)
    _next: int = 0

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """The track of each of one frame's ``boxes``, in their order."""
        pairs = sorted(
            ((iou(box, last), i, track) for i, box in enumerate(boxes) for track, last in self._last.items()),
            reverse=True,
        )  # fmt: skip
        out: list[int | None] = [None] * len(boxes)
        taken = set()
        for overlap, i, track in pairs:
            if overlap < self.min_iou:
                break
            if out[i] is None and track not in taken:
                out[i] = track
                taken.add(track)
        for i in range(len(boxes)):
            if out[i] is None:
                out[i] = self._next
                self._next += 1
        for track in list(self._last):
            if track not in taken:
                self._missed[track] += 1
                if self._missed[track] > self.patience:
                    del self._last[track], self._missed[track]
        for i, track in enumerate(out):
            self._last[track], self._missed[track] = tuple(boxes[i]), 0
        return [int(t) for t in out]
