"""SynthFACS faces composited into larger photos: group photos with known face boxes.

A face is rendered twice, on a black and on a white background; where the two differ the
background shows through, which gives its exact alpha matte (antialiased edges included). The
matted faces are pasted at any size, turned any way, on a plain, gradient, textured or cluttered
background. Each placed face keeps its truth: the spec it was rendered from and the box of its 68
landmarks in the photo. The face detector's benchmark (``benchmarks/detection.py``) and the
describing chapter's group photo are made here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from facecap_lib.data.synth.batch import FaceSpec
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.render import FACE_FRACTION, RENDERER_VERSION, Renderer, Scene
from facecap_lib.data.synth.sampling import spontaneous_aus

BACKGROUNDS = ("plain", "gradient", "texture", "clutter")
RENDER_SIZE = 256  # faces are rendered at this size, then scaled to their place


@dataclass(frozen=True)
class Placed:
    """One face of a composed photo: what was rendered, where the render was pasted (top-left
    ``x``, ``y`` and its ``side``), and its landmarks' box ``(x, y, w, h)`` in the photo."""

    spec: FaceSpec
    x: int
    y: int
    side: int
    box: tuple[int, int, int, int]


def side_for(face_height: float, photo_height: int) -> int:
    """The pasted render's side for a face (forehead to chin) of ``face_height`` of the photo's
    height."""
    return max(8, round(face_height * photo_height / FACE_FRACTION))


def matte(renderer: Renderer, spec: FaceSpec) -> tuple[np.ndarray, np.ndarray]:
    """The face of ``spec`` as ``uint8 [S, S, 3]`` colours over black and its alpha ``[S, S]``
    in 0-1 (``spec.scene``'s background and noise are replaced)."""
    identity = Identity.from_seed(spec.identity)
    layers = []
    for level in (0.0, 1.0):
        plain = ((level,) * 3, (level,) * 3)
        scene = replace(spec.scene, background=plain, noise=0.0)
        layers.append(renderer.render(spec.intensities, identity, scene, spec.sides).astype(float))
    black, white = layers
    alpha = np.clip(1.0 - (white - black).mean(-1) / 255.0, 0.0, 1.0)
    return black.astype(np.uint8), alpha


def background(kind: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A ``width`` x ``height`` background: ``plain``, ``gradient``, ``texture`` (smoothed noise)
    or ``clutter`` (random shapes)."""
    if kind not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {kind!r}")
    a, b = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    if kind == "plain":
        return Image.new("RGB", (width, height), tuple(int(v) for v in a))
    if kind == "gradient":
        t = np.linspace(0, 1, width)[None, :, None]
        rows = np.broadcast_to(a + t * (b - a), (height, width, 3))
        return Image.fromarray(np.ascontiguousarray(rows.astype(np.uint8)))
    if kind == "texture":
        noise = rng.uniform(0, 255, (height // 8 + 1, width // 8 + 1, 3)).astype(np.uint8)
        image = Image.fromarray(noise).resize((width, height), Image.Resampling.BICUBIC)
        return image.filter(ImageFilter.GaussianBlur(2))
    image = Image.new("RGB", (width, height), tuple(int(v) for v in a))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(10, width / 3), rng.uniform(10, height / 3)
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        shape = draw.ellipse if rng.uniform() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    return image


def compose(
    faces: Sequence[tuple[FaceSpec, int, int, int]],
    width: int,
    height: int,
    *,
    backdrop: str = "gradient",
    seed: int = 0,
    renderer: Renderer | None = None,
) -> tuple[Image.Image, list[Placed]]:
    """A photo of ``faces`` (spec, x, y, side: where each render is pasted, later ones on top)
    on ``backdrop``; returns the photo and each face's truth."""
    renderer = renderer or Renderer(RENDER_SIZE, version=RENDERER_VERSION)
    rng = np.random.default_rng(seed)
    photo = background(backdrop, width, height, rng)
    placed = []
    for spec, x, y, side in faces:
        colours, alpha = matte(renderer, spec)
        face = Image.fromarray(colours).resize((side, side), Image.Resampling.LANCZOS)
        mask = Image.fromarray((alpha * 255).astype(np.uint8)).resize(
            (side, side), Image.Resampling.LANCZOS
        )
        photo.paste(face, (x, y), mask)
        marks = renderer.landmarks(
            spec.intensities, Identity.from_seed(spec.identity), spec.scene, spec.sides
        )
        marks = marks * side / renderer.size + [x, y]
        (x0, y0), (x1, y1) = marks.min(0), marks.max(0)
        box = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        placed.append(Placed(spec, x, y, side, box))
    return photo, placed


def random_photo(
    rng: np.random.Generator,
    n_faces: int,
    *,
    width: int = 640,
    height: int = 480,
    yaws: Sequence[float] = (0, 15, 30, 45, 60),
    face_heights: Sequence[float] = (0.05, 0.1, 0.2, 0.35, 0.5),
    first_identity: int = 6_000_000,
    renderer: Renderer | None = None,
) -> tuple[Image.Image, list[Placed]]:
    """A photo of up to ``n_faces`` people who do not overlap, each with a spontaneous
    expression, a yaw drawn from ``yaws`` (either way) and a face height drawn from
    ``face_heights`` (of the photo's height), on a random background. A face that finds no free
    place after 50 tries is left out, so crowded photos hold smaller faces."""
    specs, taken = [], []
    for _ in range(n_faces):
        action = spontaneous_aus(rng)
        yaw = float(rng.choice(yaws)) * (1 if rng.uniform() < 0.5 else -1)
        scene = replace(Scene.sample(rng, jitter=0.5), yaw=yaw, occluder=None, shift=(0.0, 0.0))
        spec = FaceSpec(
            action.intensities, first_identity + int(rng.integers(10**6)), scene, action.sides
        )
        side = side_for(float(rng.choice(face_heights)), height)
        for _ in range(50):
            if side > min(width, height):
                break
            x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
            inner = (x + side * 0.15, y + side * 0.1, x + side * 0.85, y + side * 0.95)
            if all(
                inner[2] <= o[0] or o[2] <= inner[0] or inner[3] <= o[1] or o[3] <= inner[1]
                for o in taken
            ):
                taken.append(inner)
                specs.append((spec, x, y, side))
                break
    backdrop = str(rng.choice(BACKGROUNDS))
    return compose(
        specs, width, height, backdrop=backdrop, seed=int(rng.integers(2**31)), renderer=renderer
    )
