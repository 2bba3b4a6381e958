"""The face mesh SynthFACS deforms: MediaPipe's canonical face model and named landmark groups.

The mesh (468 vertices, 898 triangles; Apache-2.0, credited in NOTICE) is stored in
``assets/canonical_face_mesh.npz``. Coordinates are in centimetres: x to the image's right (the
subject's left), y up, z towards the camera. The mesh is closed over the eyes and the mouth;
:class:`FaceMesh` finds the triangles that fill those openings (they are left out when drawing, so
the eyeballs and the inside of the mouth show through) and the triangles of the lips.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from matplotlib.path import Path as PolygonPath

# Landmark index groups of the MediaPipe face mesh (as in MediaPipe's face_mesh_connections),
# each ordered from one corner to the other. "left"/"right" are the subject's.
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_BROW_UPPER = (70, 63, 105, 66, 107)  # outer → inner
RIGHT_BROW_LOWER = (46, 53, 52, 65, 55)
LEFT_BROW_UPPER = (300, 293, 334, 296, 336)
LEFT_BROW_LOWER = (276, 283, 282, 295, 285)
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
NOSE_TIP, NOSE_BOTTOM, RIGHT_ALA, LEFT_ALA = 1, 2, 98, 327
CHIN, FOREHEAD, GLABELLA = 152, 10, 9
RIGHT_CHEEK, LEFT_CHEEK = 205, 425
LANDMARKS_68 = (
    162,
    234,
    93,
    58,
    172,
    136,
    149,
    148,
    152,
    377,
    378,
    365,
    397,
    288,
    323,
    454,
    389,  # jaw
    71,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    301,  # brows
    168,
    197,
    5,
    4,
    75,
    97,
    2,
    326,
    305,  # nose
    33,
    160,
    158,
    133,
    153,
    144,
    362,
    385,
    387,
    263,
    373,
    380,  # eyes
    61,
    39,
    37,
    0,
    267,
    269,
    291,
    405,
    314,
    17,
    84,
    181,  # outer lips
    78,
    82,
    13,
    312,
    308,
    317,
    14,
    87,  # inner lips
)
"""Mesh vertices closest to the 68 iBUG/dlib landmarks, in their order (AffectNet's landmarks)."""


def _ring(upper: tuple[int, ...], lower: tuple[int, ...]) -> tuple[int, ...]:
    """A closed contour: the upper line, then the lower line back (corners once)."""
    return tuple(upper) + tuple(reversed(lower[1:-1]))


@dataclass(frozen=True)
class FaceMesh:
    """The canonical mesh and the triangle sets the renderer treats specially."""

    vertices: np.ndarray  # [468, 3] float32, centimetres
    triangles: np.ndarray  # [898, 3] int
    eye_hole: np.ndarray  # bool [898]: triangles inside either eye opening
    mouth_hole: np.ndarray  # bool [898]: triangles inside the inner lip contour
    lips: np.ndarray  # bool [898]: triangles of the lip red

    @property
    def drawn(self) -> np.ndarray:
        """Triangles the renderer draws (everything but the eye and mouth openings)."""
        return ~(self.eye_hole | self.mouth_hole)


def _inside(vertices: np.ndarray, triangles: np.ndarray, ring: tuple[int, ...]) -> np.ndarray:
    centroids = vertices[triangles].mean(axis=1)[:, :2]
    return PolygonPath(vertices[list(ring), :2]).contains_points(centroids)


@lru_cache(maxsize=1)
def load_mesh() -> FaceMesh:
    """Load the canonical face mesh shipped with facecap (cached)."""
    asset = resources.files("facecap_lib.data.synth") / "assets" / "canonical_face_mesh.npz"
    with resources.as_file(asset) as path, np.load(path) as data:
        vertices = data["vertices"].astype(np.float32)
        triangles = data["triangles"].astype(np.int64)
    eyes = _inside(vertices, triangles, _ring(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER)) | _inside(
        vertices, triangles, _ring(LEFT_EYE_UPPER, LEFT_EYE_LOWER)
    )
    mouth = _inside(vertices, triangles, _ring(LIPS_INNER_UPPER, LIPS_INNER_LOWER))
    outer = _inside(vertices, triangles, _ring(LIPS_OUTER_UPPER, LIPS_OUTER_LOWER))
    return FaceMesh(vertices, triangles, eyes, mouth, outer & ~mouth)


EYE_RINGS = (_ring(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER), _ring(LEFT_EYE_UPPER, LEFT_EYE_LOWER))
MOUTH_RING = _ring(LIPS_INNER_UPPER, LIPS_INNER_LOWER)
