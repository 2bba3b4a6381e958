"""Who the face is: face shape, colouring and hair, reproducible from an integer seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecap_lib.data.synth import mesh as M

SKIN_LIGHT = np.array([0.97, 0.82, 0.71])
SKIN_DARK = np.array([0.33, 0.21, 0.14])
HAIR_COLOURS = {
    "black": (0.07, 0.06, 0.06),
    "dark brown": (0.22, 0.14, 0.09),
    "brown": (0.42, 0.27, 0.15),
    "blond": (0.80, 0.66, 0.40),
    "red": (0.62, 0.26, 0.12),
    "grey": (0.62, 0.62, 0.62),
    "white": (0.90, 0.90, 0.88),
}
IRIS_COLOURS = {
    "brown": (0.36, 0.22, 0.12),
    "hazel": (0.52, 0.42, 0.22),
    "blue": (0.32, 0.50, 0.72),
    "green": (0.32, 0.52, 0.36),
    "grey": (0.50, 0.54, 0.58),
}
HAIR_STYLES = ("short", "long", "bald", "bob")


@dataclass(frozen=True)
class Identity:
    """Shape and colour parameters of one synthetic person (see :meth:`from_seed`)."""

    seed: int
    face_width: float
    face_length: float
    jaw_width: float
    nose_width: float
    nose_length: float
    eye_size: float
    eye_spacing: float
    lip_fullness: float
    mouth_width: float
    brow_thickness: float
    brow_height: float
    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    hair: tuple[float, float, float]
    brows: tuple[float, float, float]
    iris: tuple[float, float, float]
    shirt: tuple[float, float, float]
    hair_style: str
    hair_colour: str  # the name of HAIR_COLOURS the hair was drawn around
    hairline: float  # canonical y (cm) where the hair starts on the forehead
    bumps: tuple[tuple[float, float, float, float, float], ...]  # x, y, dx, dy, dz: asymmetry

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """A random but reproducible person: the same seed always gives the same face."""
        rng = np.random.default_rng([int(seed), 0x1D])
        u = rng.uniform
        tone = u(0.0, 1.0) ** 1.1
        skin = SKIN_LIGHT + tone * (SKIN_DARK - SKIN_LIGHT) + rng.normal(0, 0.02, 3)
        lips = np.clip(skin * [0.86, 0.58, 0.58] + [0.08, 0.0, 0.0] + rng.normal(0, 0.02, 3), 0, 1)
        hair_name = str(rng.choice(list(HAIR_COLOURS), p=[0.3, 0.22, 0.16, 0.12, 0.06, 0.09, 0.05]))
        hair = np.clip(np.array(HAIR_COLOURS[hair_name]) + rng.normal(0, 0.03, 3), 0, 1)
        brows = np.clip(
            hair * 0.7 if hair_name not in ("grey", "white", "blond") else hair * 0.55, 0, 1
        )
        style = str(rng.choice(HAIR_STYLES, p=[0.42, 0.28, 0.1, 0.2]))
        bumps = tuple((u(-5, 5), u(-8, 7), *rng.normal(0, 0.18, 3)) for _ in range(3))
        return cls(
            seed=int(seed),
            face_width=u(0.88, 1.12),
            face_length=u(0.93, 1.07),
            jaw_width=u(0.86, 1.12),
            nose_width=u(0.8, 1.25),
            nose_length=u(0.88, 1.12),
            eye_size=u(0.92, 1.15),
            eye_spacing=u(-0.25, 0.25),
            lip_fullness=u(0.75, 1.3),
            mouth_width=u(0.9, 1.1),
            brow_thickness=u(0.55, 1.25),
            brow_height=u(-0.25, 0.25),
            skin=tuple(np.clip(skin, 0, 1).tolist()),
            lips=tuple(lips.tolist()),
            hair=tuple(hair.tolist()),
            brows=tuple(brows.tolist()),
            iris=tuple(IRIS_COLOURS[str(rng.choice(list(IRIS_COLOURS)))]),
            shirt=tuple(rng.uniform(0.1, 0.9, 3).tolist()),
            hair_style=style,
            hair_colour=hair_name,
            hairline=u(6.6, 7.6) if style != "bald" else 9.5,
            bumps=bumps,
        )

    def shape(self, vertices: np.ndarray) -> np.ndarray:
        """This person's neutral mesh: the canonical vertices reshaped by the identity parameters."""
        v = vertices.astype(np.float64).copy()
        x, y = v[:, 0].copy(), v[:, 1].copy()

        def near(cx, cy, radius):
            return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))

        # regions first (on canonical coordinates), then the global face shape
        nose = near(0.0, -0.9, 1.6)
        v[:, 0] += nose * x * (self.nose_width - 1.0)
        v[:, 1] += nose * (y + 0.9) * (self.nose_length - 1.0) * 0.6
        for side in (-1.0, 1.0):
            eye = near(side * 3.15, 2.62, 1.1)
            v[:, 0] += eye * ((x - side * 3.15) * (self.eye_size - 1.0) + side * self.eye_spacing)
            v[:, 1] += eye * (y - 2.62) * (self.eye_size - 1.0)
            brow = near(side * 3.4, 4.6, 1.3)
            v[:, 1] += brow * self.brow_height
        mouth = near(0.0, -4.3, 1.7)
        v[:, 0] += mouth * x * (self.mouth_width - 1.0)
        lip_line = -4.27
        lips = near(0.0, lip_line, 1.2) * (np.abs(x) < 2.6)
        v[:, 1] += lips * (y - lip_line) * (self.lip_fullness - 1.0)
        for bx, by, dx, dy, dz in self.bumps:
            w = near(bx, by, 2.2)[:, None]
            v += w * [dx, dy, dz]
        jaw = np.clip((-3.0 - y) / 5.0, 0.0, 1.0)
        v[:, 0] *= self.face_width * (1.0 + jaw * (self.jaw_width - 1.0))
        v[:, 1] *= self.face_length
        return v

    def eye_centres(self, vertices: np.ndarray) -> np.ndarray:
        """[2, 3] centre of each eyeball in this person's neutral mesh (right, left)."""
        v = self.shape(vertices)
        rings = (M.RIGHT_EYE_UPPER + M.RIGHT_EYE_LOWER, M.LEFT_EYE_UPPER + M.LEFT_EYE_LOWER)
        return np.stack([v[list(ring)].mean(axis=0) for ring in rings])
