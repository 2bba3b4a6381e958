"""Face crops made as the training faces are: eyes level, the face at the size and place it has
in SynthFACS renders (or in any other template of eye and mouth positions).

A detected face with keypoints (BlazeFace's eyes and mouth centre) is mapped onto the template
by the similarity transform (rotation, uniform scale, shift) that fits the three points best in
least squares, so a tilted head comes out upright. A face without keypoints (the Haar cascade's)
gets a square crop around its box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Template:
    """Where the right eye, left eye and mouth centre lie in a crop, as fractions of its side
    (the subject's right eye is on the image's left)."""

    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    mouth: tuple[float, float]

    def points(self) -> np.ndarray:
        return np.array([self.right_eye, self.left_eye, self.mouth], dtype=np.float64)


@lru_cache(maxsize=1)
def synthfacs_template() -> Template:
    """The template of SynthFACS's framing: its 68 landmarks of 50 neutral, frontal people in the
    default scene (the centre of the corpus's pose jitter), averaged."""
    from facecap_lib.data.synth.identity import Identity
    from facecap_lib.data.synth.render import Renderer

    renderer = Renderer(128)
    marks = np.mean([renderer.landmarks({}, Identity.from_seed(s)) for s in range(50)], axis=0)
    marks = marks / renderer.size
    return Template(
        tuple(marks[36:42].mean(0)), tuple(marks[42:48].mean(0)), tuple(marks[48:68].mean(0))
    )


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the rotation, uniform scale and shift taking ``source`` points [N, 2]
    onto ``target`` points in least squares (Umeyama, without reflection)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(source))
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, d]) @ vt
    scale = (sigma * [1.0, d]).sum() / s.var(0).sum()
    matrix = scale * rotation
    return np.hstack([matrix, (mu_t - matrix @ mu_s)[:, None]])


def aligned_crop(
    image: Image.Image,
    keypoints: np.ndarray,
    size: int = 224,
    template: Template | None = None,
) -> Image.Image:
    """A ``size`` x ``size`` crop whose eyes and mouth centre (``keypoints`` [>=4, 2] in
    BlazeFace's order: right eye, left eye, nose, mouth) land on ``template``'s (SynthFACS's by
    default). Outside the photo is black."""
    template = template or synthfacs_template()
    source = np.asarray(keypoints, dtype=np.float64)[[0, 1, 3]]
    forward = similarity(source, template.points() * size)  # photo -> crop
    inverse = np.linalg.inv(np.vstack([forward, [0.0, 0.0, 1.0]]))[:2]  # crop -> photo
    return image.transform(
        (size, size), Image.Transform.AFFINE, inverse.ravel().tolist(), Image.Resampling.BICUBIC
    )


def box_crop(
    image: Image.Image, box: tuple[int, int, int, int], margin: float = 0.35
) -> Image.Image:
    """A square crop around ``box`` (x, y, w, h) enlarged by ``margin`` on each side, clipped
    to the image."""
    x, y, w, h = box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h) * (0.5 + margin)
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(image.width, int(cx + half)), min(image.height, int(cy + half))
    return image.crop((left, top, right, bottom))
