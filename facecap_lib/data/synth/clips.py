"""SynthFACS clips: BP4D-like sequences from neutral to the apex and back, with their truth.

Each person of a clip starts neutral, moves their AUs through onset (a linear rise), apex (held)
and offset (a linear fall), and ends neutral, while the head turns slowly, composited into a larger frame
(:func:`facecap_lib.data.synth.scenes.compose`). The truth of every frame and person is the
intensity of each AU (0-5) the renderer drew and the box of the face's landmarks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

from facecap_lib.data.synth.batch import FaceSpec
from facecap_lib.data.synth.render import Renderer, Scene
from facecap_lib.data.synth.scenes import RENDER_SIZE, compose


@dataclass(frozen=True)
class Person:
    """One person of a clip: the AUs at the apex, who, and where the render is pasted."""

    apex: Mapping[int, int]
    identity: int
    x: int
    y: int
    side: int
    yaw: tuple[float, float] = (-8.0, 8.0)  # the head turns from the first to the second
    sides: dict[int, str] = field(default_factory=dict)


def time_course(
    n_frames: int, neutral: float = 0.2, onset: float = 0.15, apex: float = 0.3
) -> np.ndarray:
    """The share of the apex intensity at each frame: neutral for the first and last ``neutral``
    share of the clip, rising linearly over the ``onset`` share, held for the ``apex`` share and
    falling over what is left."""
    offset = 1.0 - 2 * neutral - onset - apex
    if min(neutral, onset, apex, offset) < 0:
        raise ValueError(f"neutral {neutral}, onset {onset} and apex {apex} leave no offset")
    t = np.linspace(0.0, 1.0, n_frames)
    rise = (t - neutral) / max(onset, 1e-9)
    fall = (1.0 - neutral - t) / max(offset, 1e-9)
    return np.clip(np.minimum(rise, fall), 0.0, 1.0)


def expression_clip(
    people: Sequence[Person],
    *,
    n_frames: int = 75,
    width: int = 320,
    height: int = 240,
    neutral: float = 0.2,
    onset: float = 0.15,
    apex: float = 0.3,
    backdrop: str = "gradient",
    seed: int = 0,
    renderer: Renderer | None = None,
) -> tuple[list[Image.Image], pd.DataFrame]:
    """The frames of a clip of ``people`` and its truth: one row per frame and person with
    ``person``, ``frame``, the landmarks' box ``x``, ``y``, ``width``, ``height`` and the
    intensity of every AU of the apexes (``AU<n>`` columns, 0-5)."""
    renderer = renderer or Renderer(RENDER_SIZE)
    course = time_course(n_frames, neutral, onset, apex)
    aus = sorted({au for p in people for au in p.apex})
    frames, rows = [], []
    for k, share in enumerate(course):
        faces = []
        for p in people:
            levels = {au: int(round(level * share)) for au, level in p.apex.items()}
            levels = {au: v for au, v in levels.items() if v > 0}
            yaw = p.yaw[0] + (p.yaw[1] - p.yaw[0]) * k / max(n_frames - 1, 1)
            spec = FaceSpec(levels, p.identity, Scene(yaw=yaw), dict(p.sides))
            faces.append((spec, p.x, p.y, p.side))
        frame, placed = compose(
            faces, width, height, backdrop=backdrop, seed=seed, renderer=renderer
        )
        frames.append(frame)
        for i, place in enumerate(placed):
            x, y, w, h = place.box
            truth = {f"AU{au}": place.spec.intensities.get(au, 0) for au in aus}
            rows.append({"person": i, "frame": k, "x": x, "y": y, "width": w, "height": h, **truth})
    return frames, pd.DataFrame(rows)


CLIP_FPS = 25  # the frame rate SynthFACS clips are written at (BP4D's)


def prototype_people(level: int = 4, first_identity: int = 7_100_000) -> list[tuple[str, Person]]:
    """One person per basic emotion (contempt, one-sided, left out), each reaching that emotion's
    prototype (:data:`~facecap_lib.lexicon.BASIC_PROTOTYPES`) at intensity ``level``, framed
    in the middle of a 320 x 240 clip."""
    from facecap_lib.lexicon.prototypes import BASIC_PROTOTYPES

    return [
        (p.emotion, Person(dict.fromkeys(sorted(p.aus), level), first_identity + i, 60, 20, 200))
        for i, p in enumerate(BASIC_PROTOTYPES)
        if p.emotion != "contempt"
    ]
