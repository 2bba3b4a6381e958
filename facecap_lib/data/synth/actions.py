"""What each Action Unit does to the SynthFACS face: displacement fields and wrinkle lines.

Each rendered AU is a displacement field over the mesh vertices at full intensity (FACS E = 5),
split into a left and a right half so that unilateral actions (``R12`` in contempt) can be drawn;
intensity scales the field by :func:`~.render.response` (A draws 45% of E). Fields are built once
from the canonical mesh by placing Gaussian "bumps" (a displacement and a radius in centimetres)
at anatomical points, following the appearance changes the FACS manual describes for each AU.
Some AUs also darken wrinkle lines (forehead, glabella, crow's feet, nasolabial fold, dimples,
chin), listed in :data:`WRINKLES`.

Faces are shown frontally at about 5 px per centimetre at 128 px, so displacements are larger
than anatomy would have them: the point of SynthFACS is that every AU is visible and learnable,
and each one stays recognisable in combination. The test suite holds the renderer to that at the
``tiny`` preset's 64 pixels: every AU at C changes at least 8 pixels by more than 20 levels (the
subtle ones, AU6, 7, 9, 14, 17, 23 and 24, got larger fields and darker wrinkles for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecap_lib.data.synth import mesh as M

RENDERED_AUS: tuple[int, ...] = (
    1,
    2,
    4,
    5,
    6,
    7,
    9,
    10,
    12,
    14,
    15,
    16,
    17,
    20,
    23,
    24,
    25,
    26,
    27,
    43,
)
"""AUs the renderer draws; any other AU with a non-zero intensity is an error, never a silent no-op."""


def _bump(vertices: np.ndarray, centers, displacements, sigma: float) -> np.ndarray:
    """Displacement [N, 3]: each center pulls nearby vertices by its displacement, Gaussian in
    distance (x, y only); overlapping centers are averaged, so a row of centers moves a region as one."""
    centers = np.atleast_2d(np.asarray(centers, dtype=np.float64))[:, :2]
    disp = np.broadcast_to(np.asarray(displacements, dtype=np.float64), (len(centers), 3))
    d2 = ((vertices[:, None, :2] - centers[None, :, :]) ** 2).sum(-1)
    w = np.exp(-d2 / (2 * sigma**2))  # [N, K]
    total = w.sum(1, keepdims=True)
    return (w @ disp) / np.maximum(total, 1.0)


def _mirror(points, displacement) -> tuple[np.ndarray, np.ndarray]:
    """Centers and displacements for both sides from the right-side ones (x mirrored)."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))[:, :2]
    disp = np.broadcast_to(np.asarray(displacement, dtype=np.float64), (len(points), 3))
    flip = np.array([-1.0, 1.0, 1.0])
    return np.vstack([points, points * flip[:2]]), np.vstack([disp, disp * flip])


def _taper(n: int) -> np.ndarray:
    """Weights along a lid or lip line, 0 at both corners and 1 in the middle."""
    return np.sin(np.linspace(0, np.pi, n))


def _line_move(vertices, line, displacement, sigma, profile=True):
    """Move a landmark line (e.g. a lid) by ``displacement``, tapered towards its corners."""
    pts = vertices[list(line)]
    w = _taper(len(line)) if profile else np.ones(len(line))
    return pts, w[:, None] * np.asarray(displacement, dtype=np.float64)[None, :]


def _jaw(vertices: np.ndarray, drop: float) -> np.ndarray:
    """Lower the jaw: everything below the lips' meeting line moves down, less towards the ears."""
    x, y = vertices[:, 0], vertices[:, 1]
    below = np.clip((-4.05 - y) / 0.6, 0.0, 1.0)  # 0 at the upper lip, 1 from the lower lip down
    lateral = 1.0 - 0.55 * np.clip(np.abs(x) / 7.5, 0.0, 1.0)
    out = np.zeros_like(vertices, dtype=np.float64)
    out[:, 1] = -drop * below * lateral
    out[:, 2] = -0.15 * drop * below
    return out


def _both_lids(vertices, upper_disp, lower_disp, sigma=0.35):
    fields = []
    for upper, lower in (
        (M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER),
        (M.LEFT_EYE_UPPER, M.LEFT_EYE_LOWER),
    ):
        p1, d1 = _line_move(vertices, upper, upper_disp, sigma)
        p2, d2 = _line_move(vertices, lower, lower_disp, sigma)
        fields.append(_bump(vertices, np.vstack([p1, p2]), np.vstack([d1, d2]), sigma))
    return fields[0] + fields[1]


def _eyes_closed(vertices):
    fields = []
    for upper, lower in (
        (M.RIGHT_EYE_UPPER, M.RIGHT_EYE_LOWER),
        (M.LEFT_EYE_UPPER, M.LEFT_EYE_LOWER),
    ):
        up, lo = vertices[list(upper)], vertices[list(lower)]
        target = lo + [0.0, 0.05, 0.0]  # the upper lid comes down onto the lower one
        fields.append(_bump(vertices, up, target - up, 0.3))
    return fields[0] + fields[1]


def _lips(
    vertices,
    outer_upper=(0, 0, 0),
    inner_upper=(0, 0, 0),
    inner_lower=(0, 0, 0),
    outer_lower=(0, 0, 0),
    sigma=0.45,
):
    lines = [
        (M.LIPS_OUTER_UPPER, outer_upper),
        (M.LIPS_INNER_UPPER, inner_upper),
        (M.LIPS_INNER_LOWER, inner_lower),
        (M.LIPS_OUTER_LOWER, outer_lower),
    ]
    pts, disp = [], []
    for line, d in lines:
        p, dd = _line_move(vertices, line, d, sigma)
        pts.append(p)
        disp.append(dd)
    return _bump(vertices, np.vstack(pts), np.vstack(disp), sigma)


LIP_LINE = -4.27  # canonical y where the closed lips meet


def _lip_region(vertices, displacement, upper: bool):
    """Move the upper or the lower lip (and the skin next to it) as one, still at the corners."""
    x, y = vertices[:, 0], vertices[:, 1]
    side = 1.0 / (1.0 + np.exp(-(y - LIP_LINE) / 0.06))
    side = side if upper else 1.0 - side
    reach = np.exp(-((y - LIP_LINE) ** 2) / (2 * 1.0**2))
    taper = np.clip(1.0 - (np.abs(x) / 2.5) ** 2, 0.0, 1.0)
    return (side * reach * taper)[:, None] * np.asarray(displacement, dtype=np.float64)[None, :]


def _corners(vertices, displacement, sigma):
    right = vertices[[61, 78]]
    centers, disp = _mirror(right, displacement)
    return _bump(vertices, centers, disp, sigma)


def base_field(vertices: np.ndarray) -> np.ndarray:
    """The neutral face: lips closed (the canonical mesh's are slightly parted), eyes a little wider."""
    closed = _lips(vertices, inner_upper=(0, -0.27, 0), inner_lower=(0, 0.27, 0), sigma=0.2)
    wider = _both_lids(vertices, (0, 0.14, 0), (0, -0.08, 0), sigma=0.3)
    return closed + wider


def _fields(v: np.ndarray) -> dict[int, np.ndarray]:
    rb_in = v[[66, 107, 65, 55]]
    rb_out = v[[70, 63, 46, 53]]
    rb_all = v[list(M.RIGHT_BROW_UPPER + M.RIGHT_BROW_LOWER)]
    nose_side = np.array([[-0.9, 1.2], [-1.1, 0.2], [-1.4, -1.7], [-0.6, 1.8]])
    cheek = np.array([[-3.6, -0.8], [-4.2, -1.6], [-3.0, -1.5], [-4.6, 0.2]])
    chin = np.array([[0.0, -7.0], [-1.0, -7.3], [0.0, -8.2]])
    f: dict[int, np.ndarray] = {}
    f[1] = _bump(v, *_mirror(rb_in, (0.0, 0.85, 0.05)), 1.0)
    f[2] = _bump(v, *_mirror(rb_out, (0.0, 0.8, 0.05)), 1.0)
    f[4] = _bump(v, *_mirror(rb_all, (0.0, -0.5, 0.0)), 0.9) + _bump(
        v, *_mirror(rb_in, (0.35, -0.15, 0.0)), 0.8
    )
    f[5] = _both_lids(v, (0, 0.5, 0.02), (0, -0.06, 0))
    f[6] = _bump(v, *_mirror(cheek, (0.05, 0.9, 0.2)), 1.1) + _both_lids(v, (0, 0, 0), (0, 0.3, 0))
    f[7] = _both_lids(v, (0, -0.2, 0), (0, 0.65, 0.02))
    f[9] = _bump(v, *_mirror(nose_side, (0.0, 0.6, 0.0)), 0.7) + _lips(v, outer_upper=(0, 0.3, 0))
    f[10] = _lip_region(v, (0, 0.5, 0.05), upper=True) + _lips(
        v, outer_upper=(0, 0.15, 0), sigma=0.3
    )
    f[12] = _corners(v, (-0.6, 0.55, -0.15), 0.9) + _bump(v, *_mirror(cheek, (0, 0.15, 0.05)), 1.0)
    f[14] = _corners(v, (0.4, 0.05, -0.5), 0.6)
    f[15] = _corners(v, (-0.1, -0.6, 0.0), 0.9)
    f[16] = _lip_region(v, (0, -0.6, 0.12), upper=False)
    f[17] = _bump(v, chin, (0.0, 0.8, 0.15), 1.1) + _lips(
        v, outer_lower=(0, 0.5, 0.15), inner_lower=(0, 0.2, 0.05)
    )
    f[20] = _corners(v, (-1.0, -0.12, -0.1), 1.0) + _lips(
        v, outer_upper=(0, -0.15, 0), outer_lower=(0, 0.15, 0), sigma=0.25
    )
    f[23] = _lips(
        v, outer_upper=(0, -0.45, 0.05), outer_lower=(0, 0.45, 0.05), sigma=0.25
    ) + _corners(v, (0.45, 0.0, 0.0), 0.5)
    f[24] = (
        _lips(v, outer_upper=(0, -0.5, 0), outer_lower=(0, 0.5, 0), sigma=0.25)
        + _corners(v, (-0.2, 0.0, -0.1), 0.5)
        + _bump(v, [[0, -2.9], [0, -6.1]], (0, 0, 0.3), 0.8)
    )
    f[25] = _lip_region(v, (0, -0.5, 0), upper=False) + _lip_region(v, (0, 0.12, 0), upper=True)
    f[26] = _jaw(v, 1.1)
    f[27] = _jaw(v, 2.2) + _corners(v, (0.35, -0.2, 0.0), 0.7)
    f[43] = _eyes_closed(v)
    return f


@dataclass(frozen=True)
class Wrinkle:
    """A line drawn darker as the AUs in ``weights`` act (weights × intensity, max over AUs)."""

    points: tuple[tuple[float, float], ...]  # right side, canonical cm; mirrored to the left
    weights: tuple[tuple[int, float], ...]
    mirrored: bool = True
    bulge: bool = False  # renderer 3: skin pushed up along the line, not a furrow


def _arc(x0, x1, y, sag, n=6):
    xs = np.linspace(x0, x1, n)
    mid = (x0 + x1) / 2
    ys = y - sag * (1 - ((xs - mid) / ((x1 - x0) / 2 + 1e-9)) ** 2)
    return tuple((float(a), float(b)) for a, b in zip(xs, ys, strict=True))


WRINKLES: tuple[Wrinkle, ...] = (
    # forehead: AU1 in the middle, AU2 at the sides
    Wrinkle(_arc(-2.2, 0.0, 6.0, -0.15), ((1, 1.0), (2, 0.3))),
    Wrinkle(_arc(-2.0, 0.0, 6.7, -0.15), ((1, 0.9), (2, 0.3))),
    Wrinkle(_arc(-4.2, -1.8, 5.9, -0.2), ((2, 1.0), (1, 0.3))),
    Wrinkle(_arc(-4.0, -1.9, 6.6, -0.2), ((2, 0.9),)),
    # glabella (AU4): vertical lines between the brows
    Wrinkle(((-0.45, 4.9), (-0.55, 4.3), (-0.5, 3.8)), ((4, 1.0), (9, 0.3))),
    # crow's feet (AU6)
    Wrinkle(((-4.8, 3.2), (-5.5, 3.5)), ((6, 1.0), (12, 0.3))),
    Wrinkle(((-4.9, 2.6), (-5.7, 2.6)), ((6, 1.0), (12, 0.3))),
    Wrinkle(((-4.8, 2.1), (-5.5, 1.8)), ((6, 1.0), (12, 0.3))),
    # lower-lid bulge (AU6, AU7)
    Wrinkle(((-4.2, 2.0), (-3.3, 1.8), (-2.4, 1.95)), ((6, 0.8), (7, 0.7)), bulge=True),
    # nose bridge (AU9)
    Wrinkle(((-0.9, 2.0), (0.0, 1.85)), ((9, 1.0),)),
    Wrinkle(((-1.0, 1.4), (0.0, 1.3)), ((9, 1.0),)),
    # nasolabial fold (AU10, AU12, AU9, AU6)
    Wrinkle(
        ((-1.55, -1.5), (-2.3, -2.5), (-2.8, -3.6), (-3.0, -4.6)),
        ((10, 1.0), (12, 0.85), (9, 0.6), (6, 0.35)),
    ),
    # dimple (AU14)
    Wrinkle(((-2.85, -3.9), (-2.95, -4.35), (-2.85, -4.8)), ((14, 1.0),)),
    # lip-corner line down to the jaw (AU15)
    Wrinkle(((-2.6, -4.6), (-2.9, -5.4), (-3.0, -6.0)), ((15, 1.0),)),
    # chin boss (AU17) and mentolabial furrow
    Wrinkle(_arc(-1.2, 1.2, -6.0, 0.15), ((17, 1.0), (24, 0.4)), mirrored=False),
    Wrinkle(((-0.7, -7.2), (-0.4, -7.6), (0.4, -7.6), (0.7, -7.2)), ((17, 0.8),), mirrored=False),
)


@dataclass(frozen=True)
class ActionFields:
    """Displacement fields per AU and side, the neutral base and wrinkle anchors for one mesh."""

    base: np.ndarray  # [N, 3]
    left: dict[int, np.ndarray]  # AU -> [N, 3] (subject's left = +x)
    right: dict[int, np.ndarray]
    # where FACS says two AUs act otherwise together than each alone: (a, b) -> (right, left)
    # fields added at the lesser of the two intensities (renderer 3)
    pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def build_fields(vertices: np.ndarray, table=None, pairs=None) -> ActionFields:
    """Split each AU field into the subject's left and right halves (smoothly across the midline).
    ``table``: the fields at E of ``vertices`` (default: renderer 2's; renderer 3 passes
    :func:`~.appearance.fields`); ``pairs``: the fields of AU pairs that interact (renderer 3:
    :func:`~.appearance.interactions`)."""
    v = vertices.astype(np.float64)
    left_weight = (1.0 / (1.0 + np.exp(-v[:, 0] / 0.35)))[:, None]
    both = {
        key: ((f * (1 - left_weight)).astype(np.float32), (f * left_weight).astype(np.float32))
        for key, f in (pairs(v) if pairs else {}).items()
    }
    fields = (table or _fields)(v)
    missing = set(RENDERED_AUS) - set(fields)
    if missing:
        raise RuntimeError(f"no displacement field for AUs {sorted(missing)}")
    left = {au: (field * left_weight).astype(np.float32) for au, field in fields.items()}
    right = {au: (field * (1 - left_weight)).astype(np.float32) for au, field in fields.items()}
    return ActionFields(base_field(v).astype(np.float32), left, right, both)
