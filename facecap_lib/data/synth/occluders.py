"""What can cover a SynthFACS face: sunglasses, a mask or a hand, drawn over the rendered face."""

from __future__ import annotations

import numpy as np

from facecap_lib.data.synth import mesh as M
from facecap_lib.data.synth.geometry import ellipse as _ellipse
from facecap_lib.data.synth.geometry import rgb as _rgb

OCCLUDERS = ("sunglasses", "mask", "hand")


def draw_occluder(draw, scene, identity, project, verts, oval_index, oval_xy, scale) -> None:
    """Draw ``scene.occluder`` over the face: sunglasses, a mask or a hand
    (one of :data:`OCCLUDERS`); ``project`` maps posed points to pixels, ``verts`` are the
    face's vertices, ``oval_index`` and ``oval_xy`` the face oval's vertices and their canonical
    x, y, ``scale`` pixels per centimetre."""
    rng = np.random.default_rng(scene.occluder_seed)
    if scene.occluder == "sunglasses":
        tint = _rgb(rng.uniform(0.0, 0.25, 3))
        centres = [verts[list(ring)].mean(axis=0) for ring in M.EYE_RINGS]
        for c in centres:
            lens = _ellipse(c[0], c[1] + 0.1, c[2] + 1.2, 1.75, 1.25, n=16)
            draw.polygon([tuple(p) for p in project(lens)[:, :2]], fill=tint)
        bridge = np.array([centres[0] + [1.6, 0.3, 1.2], centres[1] + [-1.6, 0.3, 1.2]])
        draw.line(
            [tuple(p) for p in project(bridge)[:, :2]],
            fill=tint,
            width=max(1, int(scale * 0.3)),
        )
    elif scene.occluder == "mask":
        colour = _rgb(rng.choice([[0.82, 0.9, 0.96], [0.95, 0.95, 0.95], [0.15, 0.15, 0.18]]))
        oval = verts[oval_index]
        lower = oval[oval_xy[:, 1] < 0.4]
        lower = lower[np.argsort(np.arctan2(lower[:, 1] - 2.0, lower[:, 0]))]  # left, chin, right
        top = np.array(
            [
                [6.8, 0.4, 3.0],
                [2.5, 0.9, 5.5],
                [0.0, 1.4, 7.6],
                [-2.5, 0.9, 5.5],
                [-6.8, 0.4, 3.0],
            ]
        )
        pts = np.vstack([lower + [0, 0, 1.0], top])
        draw.polygon([tuple(p) for p in project(pts)[:, :2]], fill=colour)
    elif scene.occluder == "hand":
        skin = np.clip(np.array(identity.skin) * rng.uniform(0.9, 1.08), 0, 1)
        target = rng.choice(["mouth", "right eye", "left cheek", "chin"])
        centre = {
            "mouth": (0.0, -4.6),
            "right eye": (-3.2, 2.6),
            "left cheek": (3.8, -2.0),
            "chin": (0.0, -7.6),
        }[target]
        palm = _ellipse(centre[0], centre[1] - 1.2, 8.0, 2.6, 3.0, n=18)
        draw.polygon([tuple(p) for p in project(palm)[:, :2]], fill=_rgb(skin, 0.95))
        for k in range(4):
            x0 = centre[0] - 2.4 + 1.25 * k
            finger = np.array(
                [
                    [x0, centre[1] + 0.2, 8],
                    [x0 + 1.05, centre[1] + 0.2, 8],
                    [x0 + 1.05, centre[1] + 3.2 - 0.3 * abs(k - 1.5), 8],
                    [x0, centre[1] + 3.2 - 0.3 * abs(k - 1.5), 8],
                ]
            )
            draw.polygon(
                [tuple(p) for p in project(finger)[:, :2]], fill=_rgb(skin, 0.9 + 0.03 * k)
            )
    else:
        raise ValueError(f"unknown occluder {scene.occluder!r}; expected one of {OCCLUDERS}")
