"""Renderer 3: the z-buffer rasterizer, per-pixel shading, the FACS fields, and the realism figures."""

import numpy as np
import pytest

from facecap_lib.data.synth import appearance, realism
from facecap_lib.data.synth import mesh as M
from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.batch import FaceSpec, render_arrays
from facecap_lib.data.synth.identity import Identity
from facecap_lib.data.synth.raster import rasterize
from facecap_lib.data.synth.render import Renderer, Scene
from facecap_lib.data.synth.skin import Relief, feature_map
from facecap_lib.lexicon import AU_NUMBERS

ALL = tuple(range(468))


@pytest.fixture(scope="module")
def renderer():
    return Renderer(96, 2, version=3)


def square(x0, y0, x1, y1):
    """Two triangles covering a rectangle, clockwise on screen (y down): front faces."""
    xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
    return xy, np.array([[0, 3, 2], [0, 2, 1]])


def test_rasterizer_covers_the_pixel_centres_inside_and_no_others():
    xy, tri = square(2.0, 3.0, 7.0, 5.0)
    frags = rasterize(xy, np.zeros(4), tri, 10, 8)
    mask = frags.mask()
    expected = np.zeros((8, 10), bool)
    expected[3:5, 2:7] = True  # centres 2.5 .. 6.5 and 3.5 .. 4.5
    assert np.array_equal(mask, expected)
    assert len(np.unique(frags.pixel)) == len(frags.pixel)  # each pixel once, no crack, no double
    np.testing.assert_allclose(frags.bary.sum(axis=1), 1.0, atol=1e-5)
    centre = frags.interpolate(np.column_stack([xy, np.zeros(4)]), tri)[:, :2]
    ys, xs = np.divmod(frags.pixel, 10)
    np.testing.assert_allclose(centre, np.column_stack([xs + 0.5, ys + 0.5]), atol=1e-4)


def test_rasterizer_keeps_the_nearest_surface_and_culls_back_faces():
    near_xy, tri = square(0.0, 0.0, 6.0, 6.0)
    far_xy, _ = square(3.0, 0.0, 9.0, 6.0)
    xy = np.vstack([near_xy, far_xy])
    triangles = np.vstack([tri, tri + 4])
    depth = np.array([2.0] * 4 + [1.0] * 4)  # larger is nearer
    frags = rasterize(xy, depth, triangles, 10, 6)
    owner = np.full(60, -1)
    owner[frags.pixel] = frags.triangle // 2  # 0: the near square, 1: the far one
    owner = owner.reshape(6, 10)
    assert (owner[:, :6] == 0).all() and (owner[:, 6:9] == 1).all() and (owner[:, 9] == -1).all()
    back = rasterize(near_xy, np.zeros(4), tri[:, ::-1], 10, 6)  # counter-clockwise: a back face
    assert len(back.pixel) == 0
    assert len(rasterize(near_xy, np.zeros(4), tri[:, ::-1], 10, 6, cull_back=False).pixel) == 36


def test_renderer_versions_are_checked():
    with pytest.raises(ValueError, match="renderer version 4"):
        Renderer(64, 1, version=4)


def test_renderer3_is_deterministic_and_sees_people_and_light(renderer):
    person = Identity.from_seed(3)
    a = renderer.render({12: 4}, person, Scene())
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(
        a, Renderer(96, 2, version=3).render({12: 4}, Identity.from_seed(3), Scene())
    )
    other_light = renderer.render({12: 4}, person, Scene(light=(-0.6, 0.2, 0.77)))
    assert np.abs(a.astype(int) - other_light.astype(int)).mean() > 2


def test_a_furrow_is_relief_lit_from_the_side_not_a_drawn_line(renderer):
    """AU4's glabellar furrows: with the light from one side, one wall of each furrow brightens
    and the other darkens (a drawn line only darkens)."""
    person = Identity.from_seed(5)
    lit = dict(light=(0.8, 0.2, 0.57), ambient=0.4)
    shader = renderer._shader
    window, unit = feature_map(np.array([[-0.5, 4.9], [-0.5, 3.8]]), 0.16)
    assert unit.shape[-1] == 3 and unit[..., 2].max() == pytest.approx(1.0, abs=0.02)
    with_furrows = renderer.render({4: 5}, person, Scene(**lit))
    shader.relief = lambda per_side: Relief()  # the same face without its relief
    try:
        without = renderer.render({4: 5}, person, Scene(**lit))
    finally:
        del shader.relief
    change = with_furrows.astype(int).sum(axis=2) - without.astype(int).sum(axis=2)
    assert (change > 8).sum() >= 3 and (change < -8).sum() >= 8


def test_renderer3_draws_all_27_aus_of_the_paper(renderer):
    assert renderer.aus == AU_NUMBERS == appearance.RENDERED_AUS
    assert Renderer(64, 1).aus == RENDERED_AUS
    with pytest.raises(ValueError, match="AU8 cannot be rendered by SynthFACS renderer 2"):
        Renderer(64, 1).render({8: 3}, Identity.from_seed(1))


@pytest.mark.parametrize("au", AU_NUMBERS)
def test_every_au_changes_renderer3s_face_more_at_e_than_at_b(renderer, au):
    person = Identity.from_seed(7)
    neutral = renderer.render({}, person).astype(int)
    weak, strong = (renderer.render({au: level}, person).astype(int) for level in (2, 5))
    assert 0 < np.abs(weak - neutral).sum() < np.abs(strong - neutral).sum()


@pytest.mark.parametrize("version", [2, 3])
def test_every_measurable_au_moves_its_landmark_measure_one_way(version):
    """The FACS directions of realism.AU_MEASURES hold on the mesh each renderer draws, from 0
    through A to E (what MediaPipe reads is the benchmark's business)."""
    drawn = Renderer(64, 1, version=version)
    for au, (name, direction) in realism.AU_MEASURES.items():
        if au not in drawn.aus:
            continue
        mesh = np.stack([
            drawn.landmarks({au: level} if level else {}, Identity.from_seed(s), Scene(), indices=ALL)
            for level in range(6) for s in range(2)
        ])  # fmt: skip
        series = realism.geometry(mesh, list(range(6)))[name]
        assert realism.monotonic(series, direction), (au, name, series.round(4).tolist())


def test_brows_raised_by_1_and_2_together_keep_their_arch():
    """AU1 lifts the inner brow, AU2 the outer; together (surprise) the whole brow rises by about
    the same amount, never the sum of both at the brow's middle (a peak of 3 cm, once)."""
    drawn = Renderer(64, 1, version=3)
    person = Identity.from_seed(4)
    brow = list(M.RIGHT_BROW_UPPER + M.RIGHT_BROW_LOWER + M.LEFT_BROW_UPPER + M.LEFT_BROW_LOWER)
    rest = drawn.deform({}, person)[0][brow, 1]
    rise = {
        key: drawn.deform(aus, person)[0][brow, 1] - rest
        for key, aus in {"1": {1: 5}, "2": {2: 5}, "1+2": {1: 5, 2: 5}}.items()
    }
    inner, outer = (M.RIGHT_BROW_UPPER.index(i) for i in (107, 70))
    assert rise["1"][inner] > 1.0 > rise["1"][outer]
    assert rise["2"][outer] > 1.0 > rise["2"][inner]
    assert 1.0 < rise["1+2"].min() and rise["1+2"].max() < 1.6, rise["1+2"].round(2)


def test_renderer3_is_fast_enough_to_measure():
    """Not a timing test (benchmarks/realism.py prints faces per second): the batch path renders
    with renderer 3 and gives the same images as one renderer."""
    specs = [FaceSpec({12: 3, 6: 2}, 4), FaceSpec({1: 4, 4: 4, 15: 3}, 9, Scene(yaw=10.0))]
    images = render_arrays(specs, size=64, workers=1, renderer=3)
    one = Renderer(64, 2, version=3)
    for spec, image in zip(specs, images, strict=True):
        assert np.array_equal(
            image, one.render(spec.intensities, Identity.from_seed(spec.identity), spec.scene)
        )


def test_emotion_agreement_counts_faces_not_found_as_disagreeing():
    labels = ["happiness", "happiness", "sadness", "neutral"]
    scores = np.full((4, 7), 0.01)
    scores[0, 3] = scores[2, 6] = scores[3, 6] = (
        0.9  # happy right, sad read as neutral, neutral right
    )
    scores[1] = np.nan  # no face found
    result = realism.emotion_agreement(labels, scores)
    assert result["agreement"] == 0.5 and result["no_face"] == 1
    assert result["per_emotion"] == {"happiness": 0.5, "sadness": 0.0, "neutral": 1.0}
    assert result["confusion"]["sadness"] == {"neutral": 1}
    assert result["confusion"]["happiness"] == {"happiness": 1, "no face": 1}


def test_monotonic_means_strictly_one_way():
    assert realism.monotonic([1, 2, 3], +1) and realism.monotonic([3, 2, 1], -1)
    assert not realism.monotonic([1, 2, 2], +1) and not realism.monotonic([1, 3, 2], +1)
