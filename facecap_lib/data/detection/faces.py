"""Every face of a photo: ``find_faces(image)``.

BlazeFace's full-range model (:mod:`.blazeface`) looks at the whole photo, then at overlapping
tiles of it (grids of 2 x 2, 4 x 4 and 7 x 7 by default), so that a face of a few percent of a large
photo is still seen at a size the network knows. A tile keeps only faces whose centre lies in its
own part of the grid and that are small for it (larger ones are the whole photo's business);
weighted non-maximum suppression then merges what several views found, and a box whose centre lies
in a better face's box is dropped (a part of that face, seen at another size). Each face left is
looked at a second time in a view four times its size, where it must be found again (score
>= 0.5): texture that a tile took for a small face is not, seen closer. The short-range model
looks at the whole photo too, for faces that fill it. When BlazeFace finds nothing, OpenCV's Haar
cascade is asked. Each face says which detector found it; BlazeFace's come with six keypoints for
:func:`.align.aligned_crop`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from facecap_lib.data.detection import blazeface, haar
from facecap_lib.data.detection.align import Template, aligned_crop, box_crop

DETECTORS = ("auto", "blazeface", "haar")  # auto: BlazeFace, the Haar cascade when it finds none
SECOND_LOOK = (4.0, 0.5)  # a view of 4 times the face's size must find it with a score >= 0.5
TILES = (2, 4, 7)  # grids of overlapping tiles searched after the whole photo
MIN_SIDE = 16  # pixels: no photo or tile smaller than this is searched


@dataclass(frozen=True)
class Face:
    """One face found in a photo: box ``(x, y, w, h)`` in its pixels, the detector's score (1.0
    for the Haar cascade, which gives none), which detector found it, and keypoints (BlazeFace's
    six, :data:`.blazeface.KEYPOINTS`) or ``None``."""

    box: tuple[int, int, int, int]
    score: float
    detector: str
    keypoints: tuple[tuple[float, float], ...] | None = None


def _tiles(width: int, height: int, grid: int):
    """``grid`` x ``grid`` square tiles of side ``2 * max(width, height) / (grid + 1)`` (clipped to
    the photo), overlapping by half along the longer axis and more along the shorter one, as
    (x0, y0, x1, y1) with the core each one answers for. The cores cover the photo: along the
    longer axis they partition it, along the shorter one they overlap (what two tiles both find,
    non-maximum suppression merges). Square tiles keep the views of a 4:3 photo's rows as many
    as its columns, which finds more of its small and turned faces than tiles of the photo's
    shape (benchmarks/detection.py, 300 photos: 98.5% against 96.6% of the faces turned up to 45
    degrees, 95.9% against 93.5% of all)."""
    out = []
    side = 2 * max(width, height) / (grid + 1)
    for i in range(grid):
        for j in range(grid):
            x0 = max(0.0, min(i * (width - side) / max(grid - 1, 1), width - side))
            y0 = max(0.0, min(j * (height - side) / max(grid - 1, 1), height - side))
            tile = (x0, y0, min(x0 + side, width), min(y0 + side, height))
            core_x = (0 if i == 0 else x0 + side / 4, width if i == grid - 1 else x0 + 3 * side / 4)
            core_y = (
                0 if j == 0 else y0 + side / 4,
                height if j == grid - 1 else y0 + 3 * side / 4,
            )
            out.append((tile, (core_x[0], core_y[0], core_x[1], core_y[1])))
    return out


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def _blazeface(image: Image.Image, tiles: tuple[int, ...], min_score) -> list[Face]:
    """Both BlazeFace models on the whole photo (short range: large faces), the full-range one on
    its tiles too, merged by weighted non-maximum suppression."""
    found = [blazeface.detect(image, model, min_score) for model in ("full", "short")]
    model = "full"
    for grid in tiles:
        for (x0, y0, x1, y1), (cx0, cy0, cx1, cy1) in _tiles(image.width, image.height, grid):
            if min(x1 - x0, y1 - y0) < MIN_SIDE:
                continue  # too small a view to hold a face
            crop = image.crop((round(x0), round(y0), round(x1), round(y1)))
            c, p, s = blazeface.detect(crop, model, min_score)
            offset = np.array([round(x0), round(y0)], np.float64)
            c, p = c + np.tile(offset, 2), p + offset
            centre = (c[:, :2] + c[:, 2:]) / 2
            mine = (
                (centre[:, 0] >= cx0) & (centre[:, 0] < cx1)
                & (centre[:, 1] >= cy0) & (centre[:, 1] < cy1)
                & (c[:, 2] - c[:, 0] < 0.5 * (x1 - x0))
            )  # fmt: skip
            found.append((c[mine], p[mine], s[mine]))
    corners, points, scores = (np.concatenate(parts) for parts in zip(*found, strict=True))
    faces: list[Face] = []
    for box, keypoints, score in blazeface.weighted_nms(corners, points, scores):
        centre = (box[:2] + box[2:]) / 2
        if any(_inside(centre, f.box) for f in faces):
            continue  # a part of a face found better (the views see it at different sizes)
        x0, y0 = max(0.0, box[0]), max(0.0, box[1])
        x1, y1 = min(float(image.width), box[2]), min(float(image.height), box[3])
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        rect = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        if _second_look(image, box) < SECOND_LOOK[1]:
            continue  # not a face when seen closer: texture the tiles mistook for one
        kps = tuple((float(x), float(y)) for x, y in keypoints)
        faces.append(Face(rect, round(score, 4), "blazeface", kps))
    return faces


def _second_look(image: Image.Image, box: np.ndarray) -> float:
    """The best full-range score of a face overlapping ``box`` (corners) by IoU > 0.3, in a view
    of :data:`SECOND_LOOK`'s times the box's size around it."""
    side = SECOND_LOOK[0] * max(box[2] - box[0], box[3] - box[1])
    left, top = round((box[0] + box[2] - side) / 2), round((box[1] + box[3] - side) / 2)
    crop = image.crop((left, top, left + round(side), top + round(side)))
    corners, _, scores = blazeface.detect(crop, "full", min_score=0.05)
    corners = corners + np.array([left, top, left, top], np.float64)
    overlapping = blazeface.iou(np.asarray(box, np.float64), corners) > 0.3
    return float(scores[overlapping].max()) if overlapping.any() else 0.0


def find_faces(
    image: Image.Image,
    detector: str = "auto",
    *,
    tiles: tuple[int, ...] = TILES,
    min_score: float | None = None,
) -> list[Face]:
    """Every face in ``image``, in reading order (left to right by the box's centre).

    ``detector``: ``"auto"`` (BlazeFace: the full-range model on the photo and its ``tiles``,
    the short-range model on the photo; the Haar cascade only when BlazeFace found nothing),
    ``"blazeface"`` or ``"haar"``. ``min_score``: BlazeFace's threshold for both models (by
    default :data:`.blazeface.MODELS`': 0.6 full range, as MediaPipe's; 0.75 short range)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    image = image.convert("RGB")
    if min(image.size) < MIN_SIDE:
        return []  # smaller than any face a detector can see
    faces: list[Face] = []
    if detector in ("auto", "blazeface"):
        faces = _blazeface(image, tuple(tiles), min_score)
    if not faces and detector in ("auto", "haar"):
        faces = [Face(box, 1.0, "haar") for box in haar.find(image)]
    return sorted(faces, key=lambda f: f.box[0] + f.box[2] / 2)


def face_crop(
    image: Image.Image, face: Face, size: int, template: Template | None = None
) -> Image.Image:
    """The crop of ``face`` to caption: aligned on ``template`` (SynthFACS's framing by default)
    at ``size`` pixels where the detector gave keypoints, else a square around its box."""
    if face.keypoints:
        return aligned_crop(image, np.array(face.keypoints), size, template)
    return box_crop(image, face.box)
