"""Renderer 3's actions that move what the face mesh does not hold: the tongue and the neck.

- AU19, tongue show: the tongue comes out between the parted lips, over the lower lip, as long
  as the action is strong (its field, :func:`~.appearance.fields`, drops the jaw a little);
- AU21, neck tightener: the platysma's two cords stand out on the neck, lit on one side and
  shadowed on the other (its field pulls the lip corners down and out).
"""

from __future__ import annotations

import numpy as np

from facecap_lib.data.synth import mesh as M
from facecap_lib.data.synth.geometry import ellipse, rgb
from facecap_lib.data.synth.identity import Identity

TONGUE = (0.78, 0.38, 0.42)


def _amount(per_side) -> float:
    return max(per_side) if per_side else 0.0


def draw_tongue(draw, project, verts: np.ndarray, per_side, scale: float) -> None:
    """AU19: the tongue over the lower lip, ``per_side`` the action's (right, left) amounts."""
    amount = _amount(per_side)
    if amount <= 0:
        return
    mouth = verts[[13, 14]].mean(axis=0)
    lower = verts[M.LIPS_OUTER_LOWER[5]]
    length = 0.6 + 1.6 * amount  # cm below the middle of the mouth
    centre = (mouth[0], (mouth[1] + lower[1] - length) / 2, lower[2] + 0.6)
    height = (mouth[1] - (lower[1] - length)) / 2
    body = ellipse(*centre, 1.25, height, n=24)
    draw.polygon([tuple(p) for p in project(body)[:, :2]], fill=rgb(TONGUE))
    groove = np.array(
        [
            [mouth[0], mouth[1] - 0.3, centre[2] + 0.1],
            [mouth[0], centre[1] - 0.5 * height, centre[2] + 0.1],
        ]
    )
    draw.line(
        [tuple(p) for p in project(groove)[:, :2]],
        fill=rgb(TONGUE, 0.8),
        width=max(1, int(scale * 0.12)),
    )


def draw_neck_cords(
    draw, identity: Identity, project, per_side, scale: float, light=(0.3, 0.4, 1.0)
) -> None:
    """AU21: two cords from under the jaw to the collarbones, a light and a dark band each."""
    skin = np.array(identity.skin)
    for k, side in enumerate((-1.0, 1.0)):
        amount = per_side[k] if per_side else 0.0
        if amount <= 0:
            continue
        lit = side * light[0] < 0  # the cord's inner wall faces the light on this side
        for offset, brighter in ((-0.3, lit), (0.3, not lit)):
            x0, x1 = side * (2.0 + offset), side * (3.4 + offset)
            band = np.array([
                [x0, -10.2, -2.9], [x0 + side * 0.6, -10.2, -2.9],
                [x1 + side * 0.6, -15.5, -2.9], [x1, -15.5, -2.9],
            ])  # fmt: skip
            colour = rgb(skin, 0.72 * (1 + (0.1 if brighter else -0.12) * amount))
            draw.polygon([tuple(p) for p in project(band)[:, :2]], fill=colour)
