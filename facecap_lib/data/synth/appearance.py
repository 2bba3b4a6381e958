"""What each Action Unit does to renderer 3's face: displacement fields after the FACS manual.

Renderer 2's fields (:mod:`.actions`) were sized so that every AU changes a few pixels of a 64-px
face; a face model trained on real photos read almost none of its expressions (the FER2013
classifier of ``benchmarks/realism.py`` agreed with 24% of one-emotion renders). Renderer 3's
fields follow the appearance changes that the FACS manual (Ekman, Friesen & Hager, 2002)
describes for each AU, at the amplitude of a strong real action (E), in centimetres on the
canonical head (17.7 cm forehead to chin). What changes, by AU (x is the subject's left):

- 1, inner brow raiser: the inner third of the brow rises (1.3 cm), the brow turns oblique,
  horizontal furrows across the middle of the forehead (the relief, :data:`~.actions.WRINKLES`);
- 2, outer brow raiser: the outer brow rises and arches (1.2 cm), furrows at the forehead's sides;
  each point of the brow carries its own rise (:func:`_brow`), so 1 + 2 lift the whole brow by
  about 1.3 cm and keep its arch (the two fields once added up to a 3 cm peak at its middle);
- 4, brow lowerer: the brows come down (1.05 cm, inner end 1.5 cm) and together (0.7 cm), the
  upper lid is covered, vertical furrows between the brows; with 1 it gives sadness's oblique brow;
- 5, upper lid raiser: the upper lid rises (0.55 cm), white shows above the iris;
- 6, cheek raiser: the cheek and infraorbital triangle lift (1.2 cm) and bulge, the lower lid is
  pushed up, the eye narrows from below, crow's feet;
- 7, lid tightener: the lower lid rises and straightens (0.45 cm), the upper lid comes down a little;
- 9, nose wrinkler: the sides of the nose and the upper lip rise, the inner brows are pulled
  down, wrinkles across the bridge, the nasolabial furrow deepens;
- 10, upper lip raiser: the middle of the upper lip rises (0.9 cm), the lips part above,
  the nasolabial furrow deepens;
- 12, lip corner puller: the corners go up (1.0 cm), out (0.7 cm) and back, the cheeks lift,
  the nasolabial furrow deepens, the infraorbital triangle rises;
- 14, dimpler: the corners tighten inwards and back, dimples beside them;
- 15, lip corner depressor: the corners go down (1.4 cm) and a little out, the lower lip stretches;
- 16, lower lip depressor: the lower lip goes down and out (0.9 cm), showing the lower teeth;
- 17, chin raiser: the chin boss and the lower lip are pushed up (1.0 cm, 0.6 cm), the mouth
  curves down at its middle, the chin wrinkles;
- 20, lip stretcher: the corners are pulled out sideways (1.2 cm), the lips flatten;
- 23, lip tightener: the red of the lips narrows (each lip 0.45 cm), the mouth gets smaller;
- 24, lip pressor: the lips press together, narrow and bulge above and below;
- 25, lips part; 26, jaw drop (2.5 cm); 27, mouth stretch (3 cm, the corners drawn in);
  43, eyes closed;
- and the seven renderer 2 does not draw: 8, lips toward each other (they tense and meet);
  11, nasolabial deepener (the skin beside the furrow rises, the furrow deepens); 18, lip pucker
  (the corners drawn in hard, the lips pushed forward); 19, tongue show (:mod:`.painted`);
  21, neck tightener (the neck's cords, :mod:`.painted`; the corners pulled down and out);
  22, lip funneler (the lips pushed out and turned out, a little apart); 28, lip suck (the red
  of the lips rolled in).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from facecap_lib.data.synth import mesh as M
from facecap_lib.data.synth.actions import RENDERED_AUS as _RENDERER_2_AUS
from facecap_lib.data.synth.actions import (
    WRINKLES,
    _both_lids,
    _bump,
    _corners,
    _eyes_closed,
    _jaw,
    _lip_region,
    _lips,
    _mirror,
)


def _brow(v: np.ndarray, rise, inward: float, sigma: float = 0.6) -> np.ndarray:
    """Both brows raised by ``rise`` (cm at E), outer end to inner, the skin above following; each
    point of the brow's upper and lower edge carries its own rise, so the brow keeps its shape
    (an arch) and two raises add up without a peak where their regions meet."""
    rows = list(M.RIGHT_BROW_UPPER) + list(M.RIGHT_BROW_LOWER)
    lift = np.array([(inward * r, r, 0.05 * r) for r in rise] * 2)
    return _bump(v, *_mirror(v[rows], lift), sigma)


def fields(v: np.ndarray) -> dict[int, np.ndarray]:
    """Renderer 3's displacement field of every rendered AU at E, ``[N, 3]`` each (both sides)."""
    brow_inner = v[[66, 107, 65, 55]]
    brow_outer = v[[70, 63, 46, 53]]
    brow_all = v[list(M.RIGHT_BROW_UPPER + M.RIGHT_BROW_LOWER)]
    nose_side = np.array([[-0.9, 1.2], [-1.1, 0.2], [-1.4, -1.7], [-0.6, 1.8]])
    cheek = np.array([[-3.6, -0.8], [-4.2, -1.6], [-3.0, -1.5], [-4.6, 0.2], [-3.4, 0.6]])
    chin = np.array([[0.0, -7.4], [-1.0, -7.8], [0.0, -8.6], [1.0, -7.8], [0.0, -9.2]])
    f: dict[int, np.ndarray] = {}
    f[1] = _brow(v, (0.0, 0.15, 0.5, 1.0, 1.3), 0.1)
    f[2] = _brow(v, (1.2, 1.2, 0.75, 0.25, 0.0), -0.1)
    f[4] = (
        _bump(v, *_mirror(brow_all, (0.0, -1.05, 0.2)), 0.9)
        + _bump(v, *_mirror(brow_inner, (0.7, -0.5, 0.14)), 0.7)
        + _both_lids(v, (0, -0.2, 0), (0, 0, 0))
    )
    f[5] = _both_lids(v, (0, 0.55, 0.03), (0, -0.08, 0))
    f[6] = (
        _bump(v, *_mirror(cheek, (0.1, 1.2, 0.45)), 1.2)
        + _both_lids(v, (0, -0.05, 0), (0, 0.45, 0.05))
        + _bump(v, *_mirror(brow_outer[:2], (0.0, -0.25, 0.0)), 0.8)
    )
    f[7] = _both_lids(v, (0, -0.12, 0), (0, 0.45, 0.05))
    f[9] = (
        _bump(v, *_mirror(nose_side, (0.1, 0.75, 0.05)), 0.7)
        + _lips(v, outer_upper=(0, 0.45, 0), inner_upper=(0, 0.3, 0))
        + _bump(v, *_mirror(brow_inner, (0.3, -0.6, 0.0)), 0.7)
    )
    f[10] = _lip_region(v, (0, 0.85, 0.08), upper=True) + _lips(
        v, outer_upper=(0, 0.2, 0), inner_upper=(0, 0.25, 0), sigma=0.3
    )
    f[12] = (
        _corners(v, (-0.7, 1.0, -0.45), 0.9)
        + _bump(v, *_mirror(cheek, (0.0, 0.5, 0.25)), 1.1)
        + _lips(v, inner_lower=(0, -0.1, 0), sigma=0.3)
    )
    f[14] = _corners(v, (0.6, 0.1, -0.4), 0.6)
    f[15] = _corners(v, (-0.35, -1.4, -0.07), 0.9) + _lips(v, outer_lower=(0, -0.2, 0), sigma=0.4)
    f[16] = _lip_region(v, (0, -0.9, 0.2), upper=False)
    f[17] = _bump(v, chin, (0.0, 1.0, 0.25), 1.1) + _lips(
        v, outer_lower=(0, 0.6, 0.25), inner_lower=(0, 0.3, 0.1)
    )
    f[20] = _corners(v, (-1.2, -0.2, -0.15), 1.0) + _lips(
        v, outer_upper=(0, -0.2, 0), outer_lower=(0, 0.2, 0), sigma=0.25
    )
    f[23] = _lips(
        v, outer_upper=(0, -0.45, 0.05), outer_lower=(0, 0.45, 0.05), sigma=0.25
    ) + _corners(v, (0.2, 0.0, 0.0), 0.5)
    f[24] = (
        _lips(v, outer_upper=(0, -0.5, 0), outer_lower=(0, 0.5, 0), sigma=0.25)
        + _corners(v, (-0.2, 0.0, -0.1), 0.5)
        + _bump(v, [[0, -2.9], [0, -6.1]], (0, 0, 0.35), 0.8)
    )
    f[25] = _lip_region(v, (0, -0.7, 0), upper=False) + _lip_region(v, (0, 0.15, 0), upper=True)
    f[26] = _jaw(v, 2.5)
    f[27] = _jaw(v, 3.0) + _corners(v, (0.45, -0.3, 0.0), 0.7)
    f[43] = _eyes_closed(v)
    # the AUs renderer 2 does not draw
    f[8] = _lips(
        v,
        outer_upper=(0, -0.3, 0.15),
        outer_lower=(0, 0.3, 0.15),
        inner_upper=(0, -0.1, 0.1),
        inner_lower=(0, 0.1, 0.1),
        sigma=0.3,
    )
    f[11] = _bump(v, *_mirror([[-1.9, -2.6], [-2.3, -3.2]], (-0.2, 0.35, -0.2)), 0.6)
    f[18] = _corners(v, (0.9, 0.05, 0.3), 0.8) + _lips(
        v, outer_upper=(0, 0.05, 0.55), outer_lower=(0, -0.05, 0.55), sigma=0.6
    )
    f[19] = _jaw(v, 0.9) + _lip_region(v, (0, -0.3, 0), upper=False)
    f[21] = _corners(v, (-0.35, -0.45, 0.0), 0.9) + _lip_region(v, (0, -0.2, 0), upper=False)
    f[22] = (
        _corners(v, (0.6, 0.0, 0.35), 0.7)
        + _lips(v, outer_upper=(0, 0.25, 0.7), outer_lower=(0, -0.25, 0.7), inner_upper=(0, 0.15, 0.5), inner_lower=(0, -0.3, 0.5), sigma=0.6)
    )  # fmt: skip
    f[28] = _lips(v, outer_upper=(0, -0.55, -0.35), outer_lower=(0, 0.55, -0.35), sigma=0.3)
    return f


RENDERED_AUS = tuple(sorted((*_RENDERER_2_AUS, 8, 11, 18, 19, 21, 22, 28)))
"""The AUs renderer 3 draws: all 27 of the paper's."""


def interactions(v: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Fields added where two AUs act together, at the lesser intensity of the two (both sides).

    - 1 + 4 (the brow of sadness and fear): AU1 wins at the brow's inner end, which rises and
      is drawn in while the outer brow stays down; AU4 alone would lower the inner end most.
      The sum of the two fields would leave the inner brow flat.
    """
    brow_inner = v[[66, 107, 65, 55]]
    return {(1, 4): _bump(v, *_mirror(brow_inner, (0.15, 0.9, 0.0)), 0.7)}


def _raised(wrinkle, by: float):
    return replace(wrinkle, points=tuple((x, y + by) for x, y in wrinkle.points))


def _renderer3(wrinkle):
    aus = {au for au, _ in wrinkle.weights}
    if aus & {1, 2}:
        return _raised(wrinkle, 0.8)
    if 10 in aus and 12 in aus:  # the nasolabial furrow: AU11 deepens it
        return replace(wrinkle, weights=(*wrinkle.weights, (11, 1.0)))
    return wrinkle


FURROWS = tuple(_renderer3(w) for w in WRINKLES)
"""Renderer 3's furrows and bulges: :data:`~.actions.WRINKLES`, with the forehead's lines 0.8 cm
higher and AU11 deepening the nasolabial furrow. The frontalis gathers the skin *above* the brow it raises: at renderer 3's brow raise
(1.3 cm) the lower forehead line would sit on the raised brow itself."""
