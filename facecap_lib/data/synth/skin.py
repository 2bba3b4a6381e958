"""How renderer 3 shades the face surface, pixel by pixel: skin, furrows, light and shadow.

Every covered pixel (:mod:`.raster`) gets its surface point, smooth normal and *surface
coordinates* (the canonical mesh's x, y in centimetres, which move with the skin). On those:

- **albedo**: the person's skin tone, redder on the cheeks, nose tip and lips, with a texture of
  blotches and pores drawn from the identity's seed in surface coordinates (so it moves with the
  skin when an AU stretches it);
- **furrows and bulges** (:data:`~.actions.WRINKLES`): a height field in surface coordinates,
  grooves along each wrinkle's line and bulges where the FACS manual describes them, as deep as
  the AUs that make them act. It bends the normal (so a furrow is lit on one wall and dark on the
  other, as the light falls) and darkens the groove's floor (ambient occlusion); no line is drawn;
- **light**: the scene's key light (Lambert, wrapped a little for the soft falloff of skin),
  Blinn-Phong highlights (stronger on the forehead, nose and lips), ambient light dimmed in the
  mesh's concave places (eye sockets, nasolabial folds: mean curvature of the deformed mesh), and
  soft shadows from a shadow map rendered from the light (the nose's shadow on the cheek).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from facecap_lib.data.synth.appearance import FURROWS
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.mesh import FaceMesh
from facecap_lib.data.synth.raster import Fragments, rasterize

WRAP = 0.25  # light wrap of skin's diffuse term (subsurface scattering, roughly)
SHININESS = 24.0
SHADOW_SIZE = 96  # pixels of the shadow map
SHADOW_SOFTNESS = 1.5  # shadow map pixels of the percentage-closer filter's reach
TEXTURE_CELLS = 256  # the skin texture's grid over the canonical face (19 cm square)
TEXTURE_EXTENT = 9.5  # the texture spans -9.5 .. 9.5 cm in both surface coordinates


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Smooth vertex normals ``[N, 3]``: area-weighted sums of the faces' normals."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    return normals / (np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12)


def neighbours(triangles: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's edges both ways ``[E, 2]`` and each vertex's degree ``[n]``, for :func:`concavity`."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    edges = np.concatenate([edges, edges[:, ::-1]])
    degree = np.bincount(edges[:, 0], minlength=n).astype(np.float64)
    return edges, np.maximum(degree, 1.0)


def concavity(vertices: np.ndarray, normals: np.ndarray, edges, degree) -> np.ndarray:
    """How far each vertex sits below its neighbours along its normal (cm; positive in a hollow):
    the umbrella Laplacian projected on the normal, a cheap stand-in for ambient occlusion.
    ``edges``, ``degree``: :func:`neighbours` of the mesh."""
    mean = np.zeros_like(vertices)
    np.add.at(mean, edges[:, 0], vertices[edges[:, 1]])
    mean /= degree[:, None]
    return ((mean - vertices) * normals).sum(axis=1)


def _value_noise(rng: np.random.Generator, cells: int, octaves) -> np.ndarray:
    """A ``[cells, cells]`` map of smooth noise: white noise upsampled bilinearly, several scales."""
    out = np.zeros((cells, cells))
    for grid, weight in octaves:
        coarse = rng.normal(0.0, 1.0, (grid + 1, grid + 1))
        t = np.linspace(0, grid, cells)
        i = np.minimum(t.astype(int), grid - 1)
        f = t - i
        rows = coarse[i] * (1 - f)[:, None] + coarse[i + 1] * f[:, None]
        out += weight * (rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :])
    return out


@lru_cache(maxsize=64)
def skin_texture(seed: int) -> np.ndarray:
    """The person's skin in surface coordinates, ``[TEXTURE_CELLS, TEXTURE_CELLS, 4]``: the pores'
    slope d/du and d/dv, a zero height (furrows add theirs) and the albedo factor (blotches and
    freckles, about 1)."""
    rng = np.random.default_rng([int(seed), 0x5C1])
    blotch = _value_noise(rng, TEXTURE_CELLS, ((6, 0.05), (20, 0.03)))
    pores = 0.012 * _value_noise(rng, TEXTURE_CELLS, ((80, 1.0),))
    freckles = np.clip(_value_noise(rng, TEXTURE_CELLS, ((55, 1.0),)) - 1.6, 0, None)
    factor = 1.0 + blotch - 0.25 * freckles * rng.uniform(0.0, 1.0)
    dy, dx = np.gradient(pores, 2 * TEXTURE_EXTENT / (TEXTURE_CELLS - 1))
    return np.stack([dx, dy, np.zeros_like(pores), factor], axis=-1).astype(np.float32)


def _sample(grid: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a texture map ``[cells, cells(, C)]`` at surface coordinates ``uv``
    ``[K, 2]`` (cm): ``[K(, C)]``."""
    cells = grid.shape[0]
    t = (uv + TEXTURE_EXTENT) / (2 * TEXTURE_EXTENT) * (cells - 1)
    t = np.clip(t, 0, cells - 1.001)
    i = t.astype(int)
    f = t - i
    x0, y0 = i[:, 0], i[:, 1]
    fx, fy = f[:, :1], f[:, 1:]
    if grid.ndim == 2:
        fx, fy = fx[:, 0], fy[:, 0]
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


@dataclass(frozen=True)
class Relief:
    """The furrows and bulges acting on a face: each a unit relief (:func:`feature_map`) and its
    current amplitude (cm; negative for a furrow)."""

    maps: tuple[tuple[tuple[slice, slice], np.ndarray], ...] = ()  # (window, unit relief in it)
    amplitude: tuple[float, ...] = ()


def feature_map(points: np.ndarray, width: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """A furrow's or bulge's unit relief along the polyline ``points`` ``[P, 2]`` (surface cm):
    the window of the texture's grid where it is not zero, and in it ``[rows, columns, 3]``
    holding d/du, d/dv and the height ``exp(-d² / 2 width²)`` of the distance d to the line (to
    the nearest segment, so the height stays 1 where segments meet)."""
    cells = TEXTURE_CELLS
    step = 2 * TEXTURE_EXTENT / (cells - 1)
    height = np.zeros((cells, cells))
    for start, end in zip(points[:-1], points[1:], strict=True):
        lo = np.floor((np.minimum(start, end) - 3 * width + TEXTURE_EXTENT) / step).astype(int)
        hi = np.ceil((np.maximum(start, end) + 3 * width + TEXTURE_EXTENT) / step).astype(int)
        lo, hi = np.clip(lo, 0, cells - 1), np.clip(hi, 0, cells - 1)
        gx = -TEXTURE_EXTENT + step * np.arange(lo[0], hi[0] + 1)
        gy = -TEXTURE_EXTENT + step * np.arange(lo[1], hi[1] + 1)
        px, py = np.meshgrid(gx, gy)
        d = end - start
        t = np.clip(
            ((px - start[0]) * d[0] + (py - start[1]) * d[1]) / max(float(d @ d), 1e-12), 0, 1
        )
        dist2 = (px - start[0] - t * d[0]) ** 2 + (py - start[1] - t * d[1]) ** 2
        window = (slice(lo[1], hi[1] + 1), slice(lo[0], hi[0] + 1))
        height[window] = np.maximum(height[window], np.exp(-dist2 / (2 * width * width)))
    dy, dx = np.gradient(height, step)
    rows, columns = np.nonzero(height > 1e-4)
    if not len(rows):
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0, 3), np.float32)
    window = (slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1))
    return window, np.stack([dx, dy, height], axis=-1)[window].astype(np.float32)


@dataclass(frozen=True)
class Light:
    direction: np.ndarray  # unit vector towards the light, camera frame
    ambient: float


def _shadow_map(points: np.ndarray, triangles: np.ndarray, light: np.ndarray):
    """Depth of the mesh seen from the light: ``(basis, origin, scale, depth map)``."""
    z = light / np.linalg.norm(light)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    basis = np.stack([x, y, z])
    q = points @ basis.T
    origin = q[:, :2].min(axis=0)
    scale = (SHADOW_SIZE - 1) / max(float((q[:, :2].max(axis=0) - origin).max()), 1e-6)
    xy = (q[:, :2] - origin) * scale
    xy[:, 1] = SHADOW_SIZE - 1 - xy[:, 1]  # y down for the rasterizer's winding
    frags = rasterize(xy, q[:, 2], triangles, SHADOW_SIZE, SHADOW_SIZE, cull_back=False)
    depth = np.full(SHADOW_SIZE * SHADOW_SIZE, -np.inf)
    depth[frags.pixel] = frags.interpolate(q[:, 2:3], triangles)[:, 0]
    return basis, origin, scale, depth.reshape(SHADOW_SIZE, SHADOW_SIZE)


def _lit_fraction(points: np.ndarray, shadow) -> np.ndarray:
    """Share of a 3 x 3 percentage-closer filter around each point that the light reaches."""
    basis, origin, scale, depth = shadow
    q = points @ basis.T
    xy = (q[:, :2] - origin) * scale
    xy[:, 1] = SHADOW_SIZE - 1 - xy[:, 1]
    bias = 0.25  # cm: self-shadowing acne below this
    lit = np.zeros(len(points))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ix = np.clip(np.rint(xy[:, 0] + dx * SHADOW_SOFTNESS).astype(int), 0, SHADOW_SIZE - 1)
            iy = np.clip(np.rint(xy[:, 1] + dy * SHADOW_SOFTNESS).astype(int), 0, SHADOW_SIZE - 1)
            lit += q[:, 2] >= depth[iy, ix] - bias
    return lit / 9.0


def shade(
    frags: Fragments, triangles: np.ndarray, points: np.ndarray, surface: np.ndarray,
    albedo: np.ndarray, shine: np.ndarray, relief: Relief, light: Light, rotation: np.ndarray,
    seed: int, edges: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:  # fmt: skip
    """Linear RGB ``[K, 3]`` (0-1) of each fragment.

    Args:
        points: ``[N, 3]`` posed vertices (camera frame, cm; z towards the camera).
        surface: ``[N, 2]`` surface coordinates (the canonical mesh's x, y).
        albedo: ``[N, 3]`` per-vertex base colour; ``shine``: ``[N]`` specular strength.
        rotation: the head's rotation (canonical to camera), to turn surface slopes into normals.
        edges: :func:`neighbours` of ``triangles`` (made here when not given).
    """
    normals = vertex_normals(points, triangles)
    hollow = concavity(points, normals, *(edges or neighbours(triangles, len(points))))
    channels = np.concatenate(
        [normals, surface, points, albedo, shine[:, None], hollow[:, None]], axis=1
    )
    values = frags.interpolate(channels, triangles)
    n, uv, p, base = values[:, 0:3], values[:, 3:5], values[:, 5:8], values[:, 8:11]
    spec_strength, hollow_at = values[:, 11], values[:, 12]
    occlusion = np.clip(1.0 - 2.2 * hollow_at, 0.45, 1.0)

    maps = skin_texture(seed)
    if relief.maps:
        maps = maps.copy()
        for (window, unit), amplitude in zip(relief.maps, relief.amplitude, strict=True):
            maps[window][..., :3] += amplitude * unit
    sampled = _sample(maps, uv)
    slope, height, texture = sampled[:, :2], sampled[:, 2], sampled[:, 3]
    tangent_u, tangent_v = rotation[:, 0], rotation[:, 1]
    n = n - slope[:, :1] * tangent_u[None, :] - slope[:, 1:] * tangent_v[None, :]
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    occlusion = occlusion * np.clip(1.0 + 2.5 * np.minimum(height, 0.0), 0.35, 1.0)
    base = base * texture[:, None]

    l_dir = light.direction / np.linalg.norm(light.direction)
    lit = _lit_fraction(p, _shadow_map(points, triangles, l_dir))
    lambert = np.clip((n @ l_dir + WRAP) / (1 + WRAP), 0.0, 1.0)
    half = l_dir + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    highlight = spec_strength * np.clip(n @ half, 0.0, 1.0) ** SHININESS
    diffuse = light.ambient * occlusion + (1 - light.ambient) * lambert * lit * (
        0.6 + 0.4 * occlusion
    )
    return base * diffuse[:, None] + (highlight * lit)[:, None]


GROOVE_DEPTH = 0.16  # cm: a furrow of a fully acting wrinkle
GROOVE_WIDTH = 0.16  # cm
BULGE_HEIGHT = 0.22  # cm


class FaceShader:
    """Renderer 3's face surface for one mesh: its furrows (unit reliefs, made once), colours and
    the per-pixel shading of :func:`shade`, composited into the picture."""

    def __init__(self, mesh: FaceMesh):
        self.mesh = mesh
        self.triangles = mesh.triangles[mesh.drawn]
        self.surface = mesh.vertices[:, :2].astype(np.float64)
        self._features: dict[tuple[int, float], tuple] = {}
        lips = np.zeros(len(mesh.vertices))
        lips[np.unique(mesh.triangles[mesh.lips])] = 1.0
        self._lips = lips
        self.edges = neighbours(self.triangles, len(mesh.vertices))

    def relief(self, per_side: Mapping[int, tuple[float, float]]) -> Relief:
        """The furrows and bulges (:data:`~.appearance.FURROWS`) as deep as their AUs act
        (``per_side``: each acting AU's right and left amount)."""
        maps, amplitude = [], []
        for index, wrinkle in enumerate(FURROWS):
            for sign, k in ((1.0, 0), (-1.0, 1)) if wrinkle.mirrored else ((1.0, 0),):
                weight = max(
                    (w * per_side.get(au, (0.0, 0.0))[k] for au, w in wrinkle.weights), default=0
                )
                if weight < 0.05:
                    continue
                key = (index, sign)
                if key not in self._features:
                    points = np.array(wrinkle.points) * [sign, 1.0]
                    width = GROOVE_WIDTH * (2.5 if wrinkle.bulge else 1.0)
                    self._features[key] = feature_map(points, width)
                maps.append(self._features[key])
                depth = BULGE_HEIGHT if wrinkle.bulge else -GROOVE_DEPTH
                amplitude.append(depth * min(weight, 1.0))
        return Relief(tuple(maps), tuple(amplitude))

    def colours(self, identity: Identity) -> tuple[np.ndarray, np.ndarray]:
        """Per-vertex albedo (skin, redder cheeks and nose tip, the lips) and specular strength
        (stronger on the forehead and nose)."""
        x, y = self.surface[:, 0], self.surface[:, 1]

        def near(cx, cy, r):
            return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))

        skin = np.array(identity.skin)
        flush = skin * [1.04, 0.9, 0.9]
        red = np.clip(
            near(3.6, -1.2, 1.6) + near(-3.6, -1.2, 1.6) + 0.6 * near(0.0, -0.6, 0.8), 0, 1
        )
        albedo = skin + 0.5 * red[:, None] * (flush - skin)
        lips = self._lips[:, None]
        albedo = albedo * (1 - lips) + np.array(identity.lips) * lips
        shine = 0.1 + 0.12 * near(0.0, 6.0, 2.5) + 0.18 * near(0.0, 0.0, 1.2) + 0.04 * self._lips
        return albedo, shine

    def shade_into(
        self, img: Image.Image, identity: Identity, scene, points, xy, per_side, rotation
    ):
        """``img`` with the face mesh z-buffered over it and shaded per pixel: ``points`` the
        posed vertices (camera frame), ``xy`` their pixels, ``scene`` the light."""
        size = img.size[0]
        frags = rasterize(xy, points[:, 2], self.triangles, size, size)
        albedo, shine = self.colours(identity)
        light = Light(np.array(scene.light, dtype=np.float64), scene.ambient)
        colour = shade(
            frags, self.triangles, points, self.surface, albedo, shine, self.relief(per_side),
            light, rotation, identity.seed, self.edges,
        )  # fmt: skip
        out = np.asarray(img, dtype=np.float32).reshape(-1, 3).copy()
        out[frags.pixel] = np.clip(colour * 255.0, 0, 255)
        return Image.fromarray(out.reshape(size, size, 3).astype(np.uint8))
