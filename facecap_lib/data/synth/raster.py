"""A z-buffer triangle rasterizer in numpy: which triangle each pixel sees, and where on it.

SynthFACS renderer 3 shades its face mesh per pixel (:mod:`.skin`), so it needs, for every pixel,
the nearest triangle and the pixel's barycentric coordinates in it. Why our own rasterizer and not
OpenGL (moderngl, pyrender on EGL or OSMesa): the default corpus is built on every machine that
runs the book, two CPU cores and no GPU, and its images are keyed by content, so they must be the
same on every machine; a GL stack needs system libraries that a fresh machine lacks, and its
rasterization rules and precision vary by driver. A mesh of under a thousand triangles at a few
hundred pixels is small work for vectorised numpy: a few milliseconds a face.

How: triangles are grouped by the size of their pixel bounding box (powers of two in width and
height); each group
tests every pixel centre of its boxes at once (edge functions), keeps those inside, and the
nearest candidate of each pixel wins (one sort by pixel, then depth). Pixel centres are at
``+0.5``; a pixel on an edge shared by two triangles goes to one of them (a small tolerance
closes cracks between neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Fragments:
    """What each covered pixel sees: ``pixel`` (flat index ``y * width + x``), ``triangle`` (its
    row in the triangles given) and ``bary`` (``[K, 3]`` barycentric weights of the triangle's
    three vertices), for the K covered pixels in increasing pixel order."""

    pixel: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray
    width: int
    height: int

    def mask(self) -> np.ndarray:
        """``bool [height, width]``: the pixels some triangle covers."""
        out = np.zeros(self.height * self.width, bool)
        out[self.pixel] = True
        return out.reshape(self.height, self.width)

    def interpolate(self, values: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """Per-vertex ``values`` ``[N, C]`` interpolated at each fragment: ``[K, C]``."""
        corners = values[triangles[self.triangle]]  # [K, 3, C]
        return np.einsum("kj,kjc->kc", self.bary, corners)


def rasterize(
    xy: np.ndarray, depth: np.ndarray, triangles: np.ndarray, width: int, height: int,
    cull_back: bool = True,
) -> Fragments:  # fmt: skip
    """The nearest triangle at each pixel.

    Args:
        xy: ``[N, 2]`` vertex positions in pixels (x to the right, y down).
        depth: ``[N]`` vertex depth, larger nearer the camera.
        triangles: ``[T, 3]`` vertex indices, counter-clockwise in ``xy`` when they face the
            camera (y down: clockwise on screen); back faces are skipped when ``cull_back``.
    """
    xy = np.asarray(xy, np.float64)
    depth = np.asarray(depth, np.float64)
    tri = np.asarray(triangles, np.int64)
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    keep = (area < 0) if cull_back else (area != 0)  # y down: front faces turn clockwise
    index = np.flatnonzero(keep & (np.abs(area) > 1e-12))
    lo = np.floor(np.minimum(np.minimum(a, b), c)[index] - 0.5).astype(np.int64)
    hi = np.ceil(np.maximum(np.maximum(a, b), c)[index] - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    inside_frame = (hi >= lo).all(axis=1)
    index, lo, hi = index[inside_frame], lo[inside_frame], hi[inside_frame]
    span = hi - lo + 1  # [T, 2]
    buckets = np.maximum(1, 2 ** np.ceil(np.log2(np.maximum(span, 1)))).astype(np.int64)
    keys = buckets[:, 0] * 4096 + buckets[:, 1]
    # each barycentric weight is linear in the pixel centre: w = ex * x + ey * y + e0
    ta, tb, tc = a[index], b[index], c[index]
    inv = 1.0 / area[index]
    ex0, ey0 = (tb[:, 1] - tc[:, 1]) * inv, (tc[:, 0] - tb[:, 0]) * inv
    e00 = (tb[:, 0] * tc[:, 1] - tc[:, 0] * tb[:, 1]) * inv
    ex1, ey1 = (tc[:, 1] - ta[:, 1]) * inv, (ta[:, 0] - tc[:, 0]) * inv
    e01 = (tc[:, 0] * ta[:, 1] - ta[:, 0] * tc[:, 1]) * inv
    coefficients = np.stack([ex0, ey0, e00, ex1, ey1, e01], axis=1).astype(np.float32)
    pixels, tris, weights, depths = [], [], [], []
    for key in np.unique(keys):
        chosen = np.flatnonzero(keys == key)
        bw, bh = int(key // 4096), int(key % 4096)
        origin, limit = lo[chosen], hi[chosen]
        oy, ox = np.divmod(np.arange(bw * bh), bw)
        px = origin[:, :1] + ox[None, :]  # [G, bw * bh]
        py = origin[:, 1:] + oy[None, :]
        valid = (px <= limit[:, :1]) & (py <= limit[:, 1:])
        cx, cy = (px + 0.5).astype(np.float32), (py + 0.5).astype(np.float32)
        e = coefficients[chosen]
        w0 = e[:, :1] * cx + e[:, 1:2] * cy + e[:, 2:3]
        w1 = e[:, 3:4] * cx + e[:, 4:5] * cy + e[:, 5:6]
        w2 = 1.0 - w0 - w1
        hit = valid & (w0 >= -EDGE_TOLERANCE) & (w1 >= -EDGE_TOLERANCE) & (w2 >= -EDGE_TOLERANCE)
        g, k = np.nonzero(hit)
        bary = np.stack([w0[g, k], w1[g, k], w2[g, k]], axis=1)
        t = index[chosen][g]
        pixels.append(py[g, k] * width + px[g, k])
        tris.append(t)
        weights.append(bary)
        depths.append((bary * depth[tri[t]]).sum(axis=1))
    if not pixels:
        empty = np.zeros(0, np.int64)
        return Fragments(empty, empty, np.zeros((0, 3), np.float32), width, height)
    pixel, triangle = np.concatenate(pixels), np.concatenate(tris)
    bary, z = np.concatenate(weights), np.concatenate(depths)
    # one sort, by pixel and then nearest first: depth scaled into [0, 0.5) below each pixel
    span_z = max(float(z.max() - z.min()), 1e-9)
    order = np.argsort(pixel + 0.5 * (z.max() - z) / span_z * (1 - 1e-9), kind="stable")
    pixel, triangle, bary = pixel[order], triangle[order], bary[order]
    first = np.ones(len(pixel), bool)
    first[1:] = pixel[1:] != pixel[:-1]
    return Fragments(pixel[first], triangle[first], bary[first], width, height)
