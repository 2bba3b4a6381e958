"""The SynthFACS renderer: AU intensities + identity + scene → an RGB face image.

Intensities follow the FACS scale: 0 (absent) and 1-5 for A (trace) to E (maximum); letters are
accepted through :func:`intensity_value`. An AU may act on one side only (``sides={12: "R"}`` for
the right-sided AU12 of contempt). Only the AUs in :data:`~.actions.RENDERED_AUS` can be drawn;
asking for any other with a non-zero intensity raises ``ValueError``, so a label never claims an
action the image does not show.

Drawing order: background, hair behind the head, neck and shirt, ears, eyeballs and the inside
of the mouth, the face mesh (without the eye and mouth openings), brows, lids, nostrils, hair in
front, an optional occluder; then the image is downsampled from ``supersample`` times the size
(anti-aliasing) and noise is added.

Two renderers (``Renderer(version=...)``, :data:`RENDERERS`), the same faces, labels and landmarks:

- **2** (the default corpus's, :data:`RENDERER_VERSION`): the mesh's triangles flat shaded and
  painted far to near, the AU fields of :mod:`.actions`, wrinkles as darker lines;
- **3**: the mesh z-buffered (:mod:`.raster`) and shaded per pixel with smooth normals,
  specular highlights, a shadow map and a skin texture (:mod:`.skin`); the AU fields of
  :mod:`.appearance` (the FACS manual's appearance changes at a strong action's amplitude, with
  the interactions it describes); furrows and bulges as relief that the light shows, not lines.
  ``benchmarks/realism.py`` measures how real-face models read both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from facecap_lib.data.synth import appearance, painted
from facecap_lib.data.synth import mesh as M
from facecap_lib.data.synth import skin as S
from facecap_lib.data.synth.actions import WRINKLES, build_fields
from facecap_lib.data.synth.geometry import ellipse as _ellipse
from facecap_lib.data.synth.geometry import rgb as _rgb
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.occluders import OCCLUDERS, draw_occluder

FACE_HEIGHT_CM = 17.7  # forehead to chin of the canonical mesh
FACE_FRACTION = 0.6  # of the image height, at scale 1
CENTRE_Y = 0.52  # where the pivot lands, fraction of the image height
PIVOT = np.array([0.0, -0.6, 0.0])  # the point of the face the pose rotates about
FACS_LETTERS = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5}
# Bump whenever the same FaceSpec draws another image: cached corpora (and the models trained on
# them) are keyed by it. 2: AU response sqrt(level / 5), stronger subtle AUs and wrinkles.
RENDERER_VERSION = 2
RENDERERS = (2, 3)  # 2: flat-shaded polygons, painted; 3: z-buffered, shaded per pixel
# renderer 3's iris: 11 mm across, as an adult's (renderer 2's, 8.4 mm, left a ring of white
# round the iris of an eye at rest, the stare of AU5)
IRIS_RADIUS_CM = 0.55
WRINKLE_DARKNESS = 0.7  # a fully acting wrinkle line is drawn at 30% of the skin's brightness


def response(level: float) -> float:
    """How much of an AU's full (E) appearance change a FACS intensity draws: ``sqrt(level / 5)``.

    FACS intensities are ordinal, and a trace (A) is defined as the least change a coder can see.
    A linear scale drew A at a fifth of E: on a 64-pixel face most AUs at A or B moved less than a
    pixel, so the labels of a video's onset frames named actions the image did not show. The
    square root keeps the order and draws A at 45% of E, B at 63%, C at 77%. Both renderers
    use it (renderer 3 was measured with a power of 0.7 too: its one-emotion renders, of
    intensities B to E, lost 3 points of FER2013 agreement, 40% against 43%)."""
    return float(np.sqrt(level / 5.0))


def intensity_value(value: float | int | str) -> float:
    """A FACS intensity as a number 0-5: ``"C"`` → 3, ``2.5`` → 2.5; errors name the bad value."""
    if isinstance(value, str):
        key = value.strip().upper()
        if key in FACS_LETTERS:
            return float(FACS_LETTERS[key])
        try:
            value = float(key)
        except ValueError:
            raise ValueError(f"AU intensity {value!r} is neither 0-5 nor a letter A-E") from None
    number = float(value)
    if not 0.0 <= number <= 5.0:
        raise ValueError(f"AU intensity {value!r} is outside the FACS range 0-5")
    return number


@dataclass(frozen=True)
class Scene:
    """Everything about the picture that is not the face: pose, framing, light, noise, occluder."""

    yaw: float = 0.0  # degrees, positive turns the face to the image's right
    pitch: float = 0.0
    roll: float = 0.0
    scale: float = 1.0  # 1.0: the face (forehead to chin) fills 60% of the image height
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the image size
    light: tuple[float, float, float] = (0.3, 0.4, 1.0)  # direction towards the light
    ambient: float = 0.55
    background: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (0.55, 0.6, 0.9),
        (0.35, 0.4, 0.7),
    )
    noise: float = 0.0  # standard deviation of Gaussian pixel noise, in 0-255 units
    gaze: tuple[float, float] = (0.0, 0.0)  # iris offset, fraction of the iris radius
    occluder: str | None = None
    occluder_seed: int = 0

    @classmethod
    def sample(
        cls, rng: np.random.Generator, jitter: float = 1.0, occluder_rate: float = 0.0
    ) -> Scene:
        """Random nuisance parameters; ``jitter`` scales pose/framing variation (0 = frontal, centred)."""
        u = rng.uniform
        light = np.array([u(-0.8, 0.8), u(-0.2, 0.9), 1.0])
        top = rng.uniform(0.15, 0.95, 3)
        occluder = str(rng.choice(OCCLUDERS)) if rng.uniform() < occluder_rate else None
        return cls(
            yaw=jitter * u(-18, 18),
            pitch=jitter * u(-10, 10),
            roll=jitter * u(-9, 9),
            scale=1.0 + jitter * u(-0.1, 0.08),
            shift=(jitter * u(-0.05, 0.05), jitter * u(-0.04, 0.04)),
            light=tuple((light / np.linalg.norm(light)).tolist()),
            ambient=u(0.45, 0.65),
            background=(tuple(top.tolist()), tuple((top * u(0.5, 0.9)).tolist())),
            noise=jitter * u(0.0, 6.0),
            gaze=(u(-0.3, 0.3), u(-0.2, 0.2)),
            occluder=occluder,
            occluder_seed=int(rng.integers(2**31)),
        )


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ rx @ ry


class Renderer:
    """Renders SynthFACS faces. Build once (fields are precomputed), then call :meth:`render`."""

    def __init__(self, size: int = 128, supersample: int = 2, version: int = RENDERER_VERSION):
        if size < 16:
            raise ValueError(f"image size {size} is too small to show a face (minimum 16 px)")
        if version not in RENDERERS:
            raise ValueError(f"renderer version {version!r} is not one of {RENDERERS}")
        self.version = int(version)
        self.size = int(size)
        self.supersample = int(supersample)
        self.mesh = M.load_mesh()
        self.fields = (
            build_fields(self.mesh.vertices, appearance.fields, appearance.interactions)
            if version >= 3
            else build_fields(self.mesh.vertices)
        )
        self._drawn = np.flatnonzero(self.mesh.drawn)
        self._is_lip = self.mesh.lips
        v = self.mesh.vertices
        self._anchors = [self._anchor(w) for w in WRINKLES]
        self._identities: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._shader = S.FaceShader(self.mesh) if version >= 3 else None
        self._oval = np.array(M.FACE_OVAL)
        self._oval_xy = v[self._oval, :2]

    @property
    def aus(self) -> tuple[int, ...]:
        """The AUs this renderer draws (renderer 2: :data:`~.actions.RENDERED_AUS`, renderer 3:
        :data:`~.appearance.RENDERED_AUS`)."""
        return tuple(sorted(self.fields.left))

    # --- geometry ---------------------------------------------------------------------------
    def _anchor(self, wrinkle):
        """Nearest vertex and offset of each wrinkle point, so that lines follow the skin."""
        v = self.mesh.vertices
        sides = [1.0, -1.0] if wrinkle.mirrored else [1.0]
        out = []
        for sign in sides:
            pts = np.array(wrinkle.points) * [sign, 1.0]
            idx = np.argmin(((v[None, :, :2] - pts[:, None, :]) ** 2).sum(-1), axis=1)
            offset = np.zeros((len(pts), 3))
            offset[:, :2] = pts - v[idx, :2]
            offset[:, 2] = 0.05
            out.append((idx, offset, "L" if sign < 0 else "R"))
        return out

    def _identity(self, identity: Identity) -> tuple[np.ndarray, np.ndarray]:
        cached = self._identities.get(identity.seed)
        if cached is None:
            if len(self._identities) > 256:
                self._identities.clear()
            cached = (identity.shape(self.mesh.vertices), identity.eye_centres(self.mesh.vertices))
            self._identities[identity.seed] = cached
        return cached

    def deform(
        self, aus: Mapping[int, float], identity: Identity, sides: Mapping[int, str] | None = None
    ):
        """The posed 3-D vertices [N, 3] of a face and its per-side intensities {au: (right, left)}."""
        sides = dict(sides or {})
        shaped, _ = self._identity(identity)
        v = shaped + self.fields.base
        per_side: dict[int, tuple[float, float]] = {}
        for au, value in aus.items():
            level = intensity_value(value)
            if level == 0:
                continue
            if au not in self.fields.left:
                drawn = sorted(self.fields.left)
                raise ValueError(
                    f"AU{au} cannot be rendered by SynthFACS renderer {self.version} (rendered AUs: {drawn})"
                )
            side = sides.get(au, "B").upper()
            if side not in ("L", "R", "B"):
                raise ValueError(f"AU{au}: side {side!r} must be 'L', 'R' or 'B' (both)")
            amount = response(level)
            right = amount if side in ("R", "B") else 0.0
            left = amount if side in ("L", "B") else 0.0
            v = v + right * self.fields.right[au] + left * self.fields.left[au]
            per_side[au] = (right, left)
        for (a, b), (on_right, on_left) in self.fields.pairs.items():
            if a in per_side and b in per_side:
                right = min(per_side[a][0], per_side[b][0])
                left = min(per_side[a][1], per_side[b][1])
                v = v + right * on_right + left * on_left
        return v, per_side

    def landmarks(
        self,
        aus: Mapping[int, float],
        identity: Identity,
        scene: Scene | None = None,
        sides: Mapping[int, str] | None = None,
        indices: tuple[int, ...] = M.LANDMARKS_68,
    ) -> np.ndarray:
        """Image coordinates ``[len(indices), 2]`` (pixels of the output image) of mesh vertices of
        the face :meth:`render` would draw; by default the 68 points of the iBUG/dlib scheme."""
        scene = scene or Scene()
        verts, _ = self.deform(aus, identity, sides)
        rot = _rotation(scene.yaw, scene.pitch, scene.roll)
        scale = self.size * FACE_FRACTION * scene.scale / FACE_HEIGHT_CM
        p = (verts[list(indices)] - PIVOT) @ rot.T
        cx, cy = self.size * (0.5 + scene.shift[0]), self.size * (CENTRE_Y + scene.shift[1])
        return np.stack([cx + scale * p[:, 0], cy - scale * p[:, 1]], axis=1)

    # --- drawing ----------------------------------------------------------------------------
    def render(
        self,
        aus: Mapping[int, float],
        identity: Identity,
        scene: Scene | None = None,
        sides: Mapping[int, str] | None = None,
    ) -> np.ndarray:
        """Render one face.

        Args:
            aus: FACS intensities by AU number, 0-5 or ``"A"``-``"E"``; absent AUs are 0.
            identity: the person (see :meth:`Identity.from_seed`).
            scene: pose, light, background, noise, occluder; default: frontal and plain.
            sides: ``{au: "L" | "R"}`` for unilateral actions (subject's side); default both.

        Returns:
            ``uint8`` array ``[size, size, 3]``.
        """
        scene = scene or Scene()
        size = self.size * self.supersample
        verts, per_side = self.deform(aus, identity, sides)
        _, eye_centres = self._identity(identity)
        rot = _rotation(scene.yaw, scene.pitch, scene.roll)
        scale = size * FACE_FRACTION * scene.scale / FACE_HEIGHT_CM
        cx = size * (0.5 + scene.shift[0])
        cy = size * (CENTRE_Y + scene.shift[1])
        pivot = PIVOT

        def project(points: np.ndarray) -> np.ndarray:
            p = (points - pivot) @ rot.T
            return np.stack([cx + scale * p[:, 0], cy - scale * p[:, 1], p[:, 2]], axis=1)

        img = self._background(scene, size)
        draw = ImageDraw.Draw(img)
        self._draw_behind(draw, identity, project, scale)
        if self.version >= 3:
            painted.draw_neck_cords(draw, identity, project, per_side.get(21), scale, scene.light)
        self._draw_eyes(draw, identity, project, verts, eye_centres, scene, scale)
        self._draw_mouth(draw, project, verts, identity)

        p3 = (verts - pivot) @ rot.T
        xy = np.stack([cx + scale * p3[:, 0], cy - scale * p3[:, 1]], axis=1)
        if self.version >= 3:
            img = self._shader.shade_into(img, identity, scene, p3, xy, per_side, rot)
            draw = ImageDraw.Draw(img)
            painted.draw_tongue(draw, project, verts, per_side.get(19), scale)
        else:
            self._paint_face(draw, identity, scene, p3, xy)
        self._draw_features(draw, identity, project, verts, per_side, scale)
        self._draw_hair_front(draw, identity, project, verts, scale)
        if scene.occluder:
            draw_occluder(draw, scene, identity, project, verts, self._oval, self._oval_xy, scale)
        if self.supersample > 1:
            img = img.resize((self.size, self.size), Image.Resampling.BOX)
        out = np.asarray(img, dtype=np.uint8)
        if scene.noise > 0:
            rng = np.random.default_rng(scene.occluder_seed + 7)
            noisy = out.astype(np.float32) + rng.normal(0, scene.noise, out.shape).astype(
                np.float32
            )
            out = np.clip(noisy, 0, 255).astype(np.uint8)
        return out

    def _paint_face(self, draw, identity, scene, p3, xy) -> None:
        """Renderer 2: the face mesh flat shaded, far triangles first (painter's algorithm)."""
        tri = self.mesh.triangles[self._drawn]
        a, b, c = p3[tri[:, 0]], p3[tri[:, 1]], p3[tri[:, 2]]
        normals = np.cross(b - a, c - a)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-9
        shade = scene.ambient + (1 - scene.ambient) * np.clip(normals @ np.array(scene.light), 0, 1)
        base = np.where(
            self._is_lip[self._drawn][:, None], np.array(identity.lips), np.array(identity.skin)
        )
        colours = np.clip(base * shade[:, None] * 255.0, 0, 255).astype(np.int64)
        order = np.argsort(a[:, 2] + b[:, 2] + c[:, 2])
        polygon = draw.polygon
        for triangle, colour in zip(xy[tri[order]].tolist(), colours[order].tolist(), strict=True):
            polygon([tuple(q) for q in triangle], fill=tuple(colour))

    def _background(self, scene: Scene, size: int) -> Image.Image:
        top, bottom = np.array(scene.background[0]), np.array(scene.background[1])
        t = np.linspace(0, 1, size)[:, None]
        column = (top + t * (bottom - top)) * 255.0
        rows = np.broadcast_to(column[:, None, :], (size, size, 3))
        return Image.fromarray(np.ascontiguousarray(rows.astype(np.uint8)))

    def _draw_behind(self, draw, identity: Identity, project, scale) -> None:
        hair = _rgb(identity.hair)
        skin = np.array(identity.skin)
        width = 7.9 * identity.face_width
        if identity.hair_style != "bald":
            back = _ellipse(0.0, 2.2, -5.0, width + 0.9, 9.4)
            draw.polygon([tuple(p) for p in project(back)[:, :2]], fill=hair)
            if identity.hair_style in ("long", "bob"):
                low = -13.0 if identity.hair_style == "long" else -7.5
                drape = np.array(
                    [
                        [-width - 1.0, 2.0, -5],
                        [width + 1.0, 2.0, -5],
                        [width + 1.6, low, -5],
                        [-width - 1.6, low, -5],
                    ]
                )
                draw.polygon([tuple(p) for p in project(drape)[:, :2]], fill=hair)
        neck = np.array(
            [[-3.9, -5.0, -3.0], [3.9, -5.0, -3.0], [4.3, -16.0, -3.0], [-4.3, -16.0, -3.0]]
        )
        draw.polygon([tuple(p) for p in project(neck)[:, :2]], fill=_rgb(skin, 0.72))
        shirt = np.array(
            [
                [-5.0, -13.2, -3.0],
                [5.0, -13.2, -3.0],
                [16.0, -17.5, -3.0],
                [16.0, -30.0, -3.0],
                [-16.0, -30.0, -3.0],
                [-16.0, -17.5, -3.0],
            ]
        )
        draw.polygon([tuple(p) for p in project(shirt)[:, :2]], fill=_rgb(identity.shirt))
        for side in (-1.0, 1.0):
            ear = _ellipse(side * (7.45 * identity.face_width), 0.6, -2.6, 0.9, 2.1, n=14)
            draw.polygon([tuple(p) for p in project(ear)[:, :2]], fill=_rgb(skin, 0.85))

    def _draw_eyes(self, draw, identity, project, verts, eye_centres, scene, scale) -> None:
        iris = _rgb(identity.iris)
        v3 = self.version >= 3  # a dark limbal ring and a glint
        radius = (IRIS_RADIUS_CM if v3 else 0.42) * scale * identity.eye_size
        for ring, centre in zip(M.EYE_RINGS, eye_centres, strict=True):
            outline = project(verts[list(ring)])[:, :2]
            draw.polygon([tuple(p) for p in outline], fill=(236, 232, 228))
            c = project(centre[None, :] + [0.0, -0.02, 0.3])[0]
            x = c[0] + scene.gaze[0] * radius
            y = c[1] - scene.gaze[1] * radius
            if v3:
                draw.ellipse(
                    [x - radius, y - radius, x + radius, y + radius], fill=_rgb(identity.iris, 0.45)
                )
                radius *= 0.88
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=iris)
            r = radius * 0.42
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(15, 12, 12))
            if v3:
                gx, gy = x + 0.35 * radius * scene.light[0], y - 0.35 * radius * scene.light[1]
                g = radius * 0.16
                draw.ellipse([gx - g, gy - g, gx + g, gy + g], fill=(235, 235, 235))

    def _draw_mouth(self, draw, project, verts, identity) -> None:
        ring = project(verts[list(M.MOUTH_RING)])[:, :2]
        draw.polygon([tuple(p) for p in ring], fill=(70, 22, 24))
        lower = verts[list(M.LIPS_INNER_LOWER)]
        shaped, _ = self._identity(identity)
        neutral = shaped + self.fields.base
        top = neutral[list(M.LIPS_INNER_UPPER)][2:-2] + [0.0, 0.35, -0.2]
        teeth_upper = np.vstack([top, (top + [0.0, -0.62, 0.0])[::-1]])
        jaw_drop = lower[2:-2, 1] - neutral[list(M.LIPS_INNER_LOWER)][2:-2, 1]
        bottom = neutral[list(M.LIPS_INNER_LOWER)][2:-2] + [0.0, -0.35, -0.2]
        bottom[:, 1] += np.minimum(jaw_drop, 0.0)
        teeth_lower = np.vstack([bottom, (bottom + [0.0, 0.5, 0.0])[::-1]])
        draw.polygon([tuple(p) for p in project(teeth_lower)[:, :2]], fill=(214, 206, 190))
        draw.polygon([tuple(p) for p in project(teeth_upper)[:, :2]], fill=(236, 230, 214))

    def _draw_features(self, draw, identity, project, verts, per_side, scale) -> None:
        skin = np.array(identity.skin)
        brow = _rgb(identity.brows)
        for upper, lower in (
            (M.RIGHT_BROW_UPPER, M.RIGHT_BROW_LOWER),
            (M.LEFT_BROW_UPPER, M.LEFT_BROW_LOWER),
        ):
            up, lo = verts[list(upper)], verts[list(lower)]
            lo = up + (lo - up) * identity.brow_thickness
            pts = np.vstack([up, lo[::-1]])
            draw.polygon([tuple(p) for p in project(pts)[:, :2]], fill=brow)
        if self.version >= 3:  # the lashes: a dark line along each upper lid, fainter below
            lash = _rgb(np.minimum(skin, identity.brows) * 0.5)
            for line, width in ((M.RIGHT_EYE_UPPER, 0.1), (M.LEFT_EYE_UPPER, 0.1)):
                points = [tuple(p) for p in project(verts[list(line)])[:, :2]]
                draw.line(points, fill=lash, width=max(1, int(round(scale * width))))
        else:
            lid = _rgb(skin, 0.35)
            width = max(1, int(round(scale * 0.09)))
            for line in (M.RIGHT_EYE_UPPER, M.LEFT_EYE_UPPER):
                draw.line(
                    [tuple(p) for p in project(verts[list(line)])[:, :2]], fill=lid, width=width
                )
        nostril = _rgb(skin, 0.4)
        for ala in (M.RIGHT_ALA, M.LEFT_ALA):
            centre = (verts[ala] + verts[M.NOSE_BOTTOM]) / 2 + [0.0, -0.05, 0.2]
            c = project(centre[None, :])[0]
            rx, ry = 0.32 * scale, 0.15 * scale
            draw.ellipse([c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry], fill=nostril)
        if self.version >= 3:
            return  # renderer 3's furrows are the surface's relief (:meth:`_relief`), not lines
        line_width = max(1, int(round(scale * 0.2)))
        for wrinkle, anchors in zip(WRINKLES, self._anchors, strict=True):
            for idx, offset, side in anchors:
                k = 1 if side == "L" else 0
                weight = max(
                    (w * per_side.get(au, (0.0, 0.0))[k] for au, w in wrinkle.weights), default=0
                )
                if weight < 0.08:
                    continue
                pts = project(verts[idx] + offset)[:, :2]
                colour = _rgb(skin, 1.0 - WRINKLE_DARKNESS * min(weight, 1.0))
                draw.line([tuple(p) for p in pts], fill=colour, width=line_width)

    def _draw_hair_front(self, draw, identity, project, verts, scale) -> None:
        if identity.hair_style == "bald":
            return
        oval = verts[self._oval]
        top = oval[self._oval_xy[:, 1] > identity.hairline - 0.8]
        centre = np.array([0.0, 1.0, 0.0])
        outer = centre + (top - centre) * [1.12, 1.08, 1.0] + [0.0, 0.0, 0.6]
        order = np.argsort(np.arctan2(outer[:, 1] - centre[1], outer[:, 0]))
        outer = outer[order]
        xs = np.linspace(outer[-1, 0], outer[0, 0], 9)
        sag = 0.9 if identity.hair_style == "bob" else 0.45
        line_y = identity.hairline - sag * (1 - (xs / (np.abs(xs).max() + 1e-9)) ** 2)
        hairline = np.stack([xs, line_y * identity.face_length, np.full_like(xs, 3.0)], axis=1)
        pts = np.vstack([outer, hairline])
        draw.polygon([tuple(p) for p in project(pts)[:, :2]], fill=_rgb(identity.hair))


def frontal(scene: Scene) -> Scene:
    """The same scene seen from the front, centred, without noise or occluder (for figures)."""
    return replace(scene, yaw=0.0, pitch=0.0, roll=0.0, shift=(0.0, 0.0), noise=0.0, occluder=None)
